// A turn's posts and put replies, made on pvxs's server loop in one go (issue 23).
//
// pvxs runs every post and put reply on its one TCP loop: made from another thread,
// each is dispatched there and races the loop, which then takes them one or two at a
// time. While the bridge thread collects (between handoff_begin() and
// handoff_publish()), PvHandle::post and PutOp's replies are kept in order instead;
// publish() hands them to a queue that the loop takes in one go when it next calls the
// shim (a put arriving: handoff::take()), or that the bridge runs itself
// (handoff_flush()) when the loop does not take it soon. One FIFO, run under one lock:
// nothing is lost or reordered, and a post or reply made directly runs what is queued
// first (handoff::settle()).
#pragma once

#include <cstdint>
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
// Runs whatever is queued, on this thread (and what this thread collected), before a
// post, reply, open, close or fetch made directly. Cheap when nothing is queued.
void settle();
// On pvxs's loop: runs the queue if another thread is not running it already.
void take();

}  // namespace handoff

void handoff_begin();
// True when the loop is expected to take the queue soon (puts keep arriving); the caller
// runs it itself otherwise, or when it was not taken soon.
bool handoff_publish();
// Runs what is queued on this thread; true if anything was queued.
bool handoff_flush();
bool handoff_pending();
// Posts and replies queued so far that pvxs's loop ran, and that another thread ran.
uint64_t handoff_run_on_loop();
uint64_t handoff_run_elsewhere();
// Failures of queued work since the last call (a post to a PV closed meanwhile), for the
// caller to log.
rust::Vec<rust::String> handoff_failures();

}  // namespace mxpva
