// A turn's posts and put replies, made back to back at the turn's end (issue 23).
//
// pvxs runs every post and put reply on its one TCP loop: made from another thread,
// each is dispatched there and wakes or races the loop. While the bridge thread collects
// (between handoff_begin() and handoff_end()), PvHandle::post and PutOp's replies are
// kept in the order they were made instead, and handoff_end() makes them all at once:
// the loop then takes them in far fewer wakeups, and the bridge's own work of the turn
// (audit, gRPC) no longer comes between them. Anything that needs the PV as posted
// (open, close, fetch) makes what was collected first (handoff::settle()).
#pragma once

#include <memory>
#include <string>

#include <pvxs/data.h>
#include <pvxs/sharedpv.h>
#include <pvxs/source.h>

#include "rust/cxx.h"

namespace mxpva {
namespace handoff {

// This thread collects: post() and reply() keep the work instead of doing it.
bool collecting();
void post(const pvxs::server::SharedPV& pv, pvxs::Value&& value);
// An empty `error` replies success.
void reply(std::unique_ptr<pvxs::server::ExecOp>&& op, std::string&& error);
// Makes what this thread collected so far, in order (before an open, close or fetch).
void settle();

}  // namespace handoff

// This thread collects its posts and put replies until handoff_end().
void handoff_begin();
// Stops collecting and makes what was collected, in order. Returns why any failed
// (a post to a PV closed meanwhile), for the caller to log.
rust::Vec<rust::String> handoff_end();

}  // namespace mxpva
