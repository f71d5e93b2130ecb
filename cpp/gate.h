// The read gate: EPICS access security's READ check on every channel of a mapped PV.
//
// The gate is a pvxs Source consulted before the PVs' own (one per server, added first).
// It claims every channel of a PV the server holds and decides it with the rules in force
// (acf_set_read_rules, cpp/access.h): a channel the rules give READ is handed to the
// PV's own source (through a ChannelControl of the gate's, so that the gate can close it
// later); any other has its GETs, PUTs and monitors answered "<op> denied by access
// security: ...". A channel granted READ as it opens costs the gate only that
// ChannelControl, which hands the source's handlers straight to pvxs's channel, and a
// weak entry in a list (memory per monitored PV, issue 23). Names the server does not
// hold are checked as they open and otherwise left alone.
//
// The client's roles (its OS groups) are looked up once per connection, on a thread of
// the gate's own: a channel that waits for them holds its operations meanwhile, so pvxs's
// event loop never waits on NSS. acf_recheck_channels() decides every open channel again
// with the rules in force and closes each whose READ changed; its client reconnects and
// is then refused or served.
#pragma once

#include <memory>

#include <pvxs/server.h>
#include <pvxs/source.h>

#include "rust/cxx.h"

namespace mxpva {

struct WireAcfPv;
class ReadGate;

// A new gate for `server` (whose builtin source holds the PVs): add it before them.
std::shared_ptr<ReadGate> read_gate_new(pvxs::server::Server& server);
std::shared_ptr<pvxs::server::Source> read_gate_source(const std::shared_ptr<ReadGate>& gate);
// The server holds (`true`) or no longer holds the PV `name`.
void read_gate_serve(ReadGate& gate, const std::string& name, bool served);

// Whether put callbacks look up the client's roles (only worth it with an ACF).
void acf_want_roles(bool on);

// The PVs whose channels the read gate checks, and the group of any other name. With
// `active` false the gate lets every channel through.
void acf_set_read_rules(bool active, rust::Slice<const WireAcfPv> pvs, rust::Str other_group,
                        int32_t other_level);

// Decides every open channel of every gate again with the rules in force and closes each
// whose READ access changed. Blocks (role lookups, pvxs's loop): call it on a thread of
// its own. Returns how many channels it closed.
uint32_t acf_recheck_channels();

// Fills `out` with the roles of the client behind `cred`, cached per connection (a role
// lookup asks the OS for the account's groups), when acf_want_roles(true) was called.
void fill_roles(const std::shared_ptr<const pvxs::server::ClientCredentials>& cred,
                rust::Vec<rust::String>& out);

}  // namespace mxpva
