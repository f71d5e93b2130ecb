// A turn's posts and put replies, made back to back at the turn's end, on pvxs's own
// loop when it can be reached (issue 23).
//
// pvxs runs every post and put reply on its one TCP loop: made from another thread,
// each is dispatched there and wakes or races the loop. While the bridge thread collects
// (between handoff_begin() and handoff_end()), PvHandle::post and PutOp's replies are
// kept in the order they were made instead, and handoff_end() hands them all over at
// once. Once the server's loop is reached (cpp/loop.h), they run there, in that order, in
// one go; otherwise handoff_end() makes them from this thread back to back. Anything that
// needs the PV as posted (open, close, fetch) waits until what was handed over has run
// (handoff::settle()). A post or reply made outside a turn while handed-over work still
// waits for the loop queues behind it, so each PV's posts keep their order.
#pragma once

#include <memory>
#include <string>

#include <pvxs/data.h>
#include <pvxs/sharedpv.h>
#include <pvxs/source.h>

#include "rust/cxx.h"

namespace mxpva {

struct WireUpdate;
class Prototype;

namespace handoff {

// A post or reply made now goes through post() / reply() (this thread collects, or
// work handed over earlier has not run yet); otherwise the caller makes it itself.
bool takes();
void post(const pvxs::server::SharedPV& pv, pvxs::Value&& value);
// A post whose value `proto` builds from `update` when it is made.
void post_update(const pvxs::server::SharedPV& pv, std::shared_ptr<Prototype> proto,
                 std::unique_ptr<WireUpdate>&& update);
// An empty `error` replies success.
void reply(std::unique_ptr<pvxs::server::ExecOp>&& op, std::string&& error);
// Posts and replies that this thread collected or that wait for the loop.
size_t waiting();
// Makes what this thread collected so far and waits until everything handed over has
// run (before an open, close or fetch).
void settle();

// From now on, handed-over work runs on the loop that `anchor` belongs to.
void attach_loop(std::unique_ptr<pvxs::server::ExecOp>&& anchor);
bool loop_attached();
// The loop's server stops: what waits for it runs here, and nothing more goes there.
void detach_loop();

}  // namespace handoff

// handoff::waiting(), for Rust.
size_t handoff_waiting();
// This thread collects its posts and put replies until handoff_end().
void handoff_begin();
// Stops collecting and hands over what was collected, in order. Returns why any failed
// (a post to a PV closed meanwhile; failures on the loop are returned by a later call),
// for the caller to log.
rust::Vec<rust::String> handoff_end();

}  // namespace mxpva
