// EPICS access security for puts: libCom's asLib, driven from Rust.
//
// asLib keeps process-global state (the parsed ACF, its members and clients, and a
// parser with static buffers). Every asLib call in mxpva is made in access.cpp under
// one mutex, so the shim is the single owner of that state: Rust may call these
// functions from any thread.
#pragma once

#include <memory>

#include <pvxs/source.h>

#include "rust/cxx.h"

namespace mxpva {

struct WireAcfSummary;
struct WireAccess;
struct WireAcfPv;

// Parses `text` as an ACF and, when it parses, installs it in place of the rules before
// (asInitMem). HAG host names are resolved now, once (asCheckClientIP = 1). Throws with
// asLib's own messages when the file does not parse; the rules before then stay.
WireAcfSummary acf_load(rust::Str text);

// The access that `user` (and each `role/<role>`) from `host` (an IPv4 address) has to a
// PV of group `group` at access-security level `level`: the best of them, as QSRV2 does.
WireAccess acf_check(rust::Str group, int32_t level, rust::Str user, rust::Str host,
                     rust::Slice<const rust::String> roles);

// Whether put callbacks look up the client's roles (only worth it with an ACF).
void acf_want_roles(bool on);

// The PVs whose channels the read gate checks, and the group of any other name. With
// `active` false the gate lets every channel through.
void acf_set_read_rules(bool active, rust::Slice<const WireAcfPv> pvs, rust::Str other_group,
                        int32_t other_level);

// The read gate: a pvxs Source consulted before the PVs' own (add it first). It claims the
// channel of a client the rules give no READ access, and answers its GETs, PUTs and
// monitors with "<op> denied by access security: ..."; any other channel it leaves alone.
std::shared_ptr<pvxs::server::Source> read_gate();

// Fills `out` with the roles of the client behind `cred`, cached per connection (a role
// lookup asks the OS for the account's groups), when acf_want_roles(true) was called.
void fill_roles(const std::shared_ptr<const pvxs::server::ClientCredentials>& cred,
                rust::Vec<rust::String>& out);

}  // namespace mxpva
