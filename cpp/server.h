// A pvxs server, as the Rust `pva::Server` sees it.
#pragma once

#include <pvxs/server.h>

#include "rust/cxx.h"

namespace mxpva {

struct WireServerSettings;
struct WireServerInfo;
struct WireClient;
class PvHandle;

class PvServer {
public:
    explicit PvServer(pvxs::server::Server server) : server_(std::move(server)) {}

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
};

std::unique_ptr<PvServer> server_new(const WireServerSettings& settings);

}  // namespace mxpva
