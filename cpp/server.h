// A pvxs server, as the Rust `pva::Server` sees it.
#pragma once

#include <atomic>

#include <pvxs/server.h>

#include "rust/cxx.h"

namespace mxpva {

struct WireServerSettings;
struct WireServerInfo;
struct WireClient;
class PvHandle;
class ReadGate;

class PvServer {
public:
    PvServer(pvxs::server::Server server, std::shared_ptr<ReadGate> gate)
        : server_(std::move(server)), gate_(std::move(gate)) {}

    void start() const;
    // Asks the server for a way onto its loop (cpp/loop.h): a LoopReach.
    uint8_t reach_loop(double timeout) const;
    bool holds_loop() const { return holds_loop_.load(); }
    void stop() const;
    ~PvServer();
    WireServerInfo info() const;
    rust::Vec<WireClient> clients() const;
    void add_pv(rust::Str name, const PvHandle& pv) const;
    void remove_pv(rust::Str name) const;

private:
    // pvxs::server::Server is a reference-counted handle whose methods lock internally;
    // `mutable` lets the const methods the bridge exposes call them.
    mutable pvxs::server::Server server_;
    // The read gate of this server (cpp/gate.h): told which PVs the server holds.
    std::shared_ptr<ReadGate> gate_;
    // reach_loop() succeeded: stop() takes the turns' work off the loop first.
    mutable std::atomic<bool> holds_loop_{false};
};

std::unique_ptr<PvServer> server_new(const WireServerSettings& settings);

}  // namespace mxpva
