// A pvxs server, as the Rust `pva::Server` sees it.
#pragma once

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
    void stop() const;
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
};

std::unique_ptr<PvServer> server_new(const WireServerSettings& settings);

}  // namespace mxpva
