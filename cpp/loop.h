// Reaching pvxs's server loop (thread PVXTCP) to run a turn's posts and replies there
// (issue 23).
//
// pvxs runs every post and put reply on the server's one TCP loop. Handed over from
// another thread, each one takes the loop's lock and races its wakeups; made on the loop
// itself, a post costs about a third as much (docs/performance.md, "Batching posts in
// pvxs"). pvxs 1.5's one public way to run a function there is its expert
// `ExecOp::timerOneShot`: "cb runs on worker associated with Channel of this Operation".
// The server has one such worker for every connection, so any ExecOp of the server
// reaches it. At start the server asks itself for one: a client of its own makes one RPC
// to a channel name that only this process knows, whose operation the shim keeps
// (handoff::attach_loop) after answering it. That client then goes away.
#pragma once

#include <cstdint>

#include <pvxs/server.h>

namespace mxpva {

enum class LoopReach : uint8_t {
    // The server did not take the RPC in time: posts and replies are handed over from
    // the posting thread, as before.
    NotReached = 0,
    // This server's loop now runs the turns' posts and replies.
    Reached = 1,
    // Another server of this process holds the loop already.
    HeldElsewhere = 2,
};

// Makes the RPC and waits up to `timeout` seconds for the server to take it. Throws only
// when the server cannot be asked at all.
LoopReach reach_loop(pvxs::server::Server& server, double timeout);

}  // namespace mxpva
