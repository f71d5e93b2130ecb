// The pvxs shim: the C++ side of src/pva/ffi.rs.
//
// Thin and typed: it turns the shared structs of the bridge into pvxs Values and back,
// and forwards pvxs callbacks to Rust. Every function Rust calls either cannot throw or
// is declared `Result` in the bridge, so an exception becomes a Rust error. Strings
// cross as (data, size): the pvxs wheels use the old libstdc++ string ABI, and cxx's own
// runtime the new one, so no std::string ever crosses the boundary.
#pragma once

#include "cpp/server.h"
#include "cpp/sharedpv.h"
#include "cpp/putop.h"
#include "cpp/handoff.h"
#include "cpp/access.h"
#include "cpp/gate.h"

namespace mxpva {
void configure_logging_from_env();
void route_native_log();
// Whether route_native_log() was called: errlog's console copy stays off then.
bool native_log_routed();

// While one lives, errlog messages are not routed to tracing (mxpva reports them itself,
// as acf_load does asLib's). The holder flushes errlog before it ends.
struct NativeLogMuted {
    NativeLogMuted();
    ~NativeLogMuted();
    NativeLogMuted(const NativeLogMuted&) = delete;
    NativeLogMuted& operator=(const NativeLogMuted&) = delete;
};
}
