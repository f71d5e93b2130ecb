// EPICS access security: libCom's asLib, driven from Rust.
//
// asLib keeps process-global state (the parsed ACF, its members and clients, and a
// parser with static buffers). Every asLib call in mxpva is made in access.cpp under
// one mutex, so the shim is the single owner of that state: Rust may call these
// functions from any thread. The read gate that uses it is in gate.h.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "rust/cxx.h"

namespace mxpva {

struct WireAcfSummary;
struct WireAccess;

// The address asLib would make of a HAG host (aToIPAddr: a name is resolved, which may
// take the resolver's timeout), as "a.b.c.d"; empty when it does not resolve. Takes no
// lock: call it off pvxs's threads and off the bridge's task.
rust::String acf_resolve_host(rust::Str host);

// Parses `text` as an ACF and, when it parses, installs it in place of the rules before
// (asInitMem). Its HAG hosts must be addresses already (acf_resolve_host): asLib resolves
// nothing here (asCheckClientIP = 0), so the lock is never held across a resolver. Throws
// with asLib's own messages when the file does not parse; the rules before then stay.
WireAcfSummary acf_load(rust::Str text);

// The access that `user` (and each `role/<role>`) from `host` (an IPv4 address) has to a
// PV of group `group` at access-security level `level`: the best of them, as QSRV2 does.
WireAccess acf_check(rust::Str group, int32_t level, rust::Str user, rust::Str host,
                     rust::Slice<const rust::String> roles);

// acf_check for C++ callers (the read gate). Throws when no file is loaded.
WireAccess check_access(const std::string& group, int32_t level, const std::string& user,
                        const std::string& host, const std::vector<std::string>& roles);

}  // namespace mxpva
