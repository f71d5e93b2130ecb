// Server::report() is part of pvxs's "expert" API.
#define PVXS_ENABLE_EXPERT_API
#include "cpp/server.h"

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include <errlog.h>

#include <pvxs/client.h>
#include <pvxs/log.h>

#include "cpp/gate.h"
#include "cpp/handoff.h"
#include "cpp/loop.h"
#include "cpp/sharedpv.h"
#include "mxpva/src/pva/ffi.rs.h"

namespace mxpva {
namespace {

std::string to_std(rust::Str s) { return std::string(s.data(), s.size()); }

std::vector<std::string> to_std(const rust::Vec<rust::String>& in) {
    std::vector<std::string> out;
    out.reserve(in.size());
    for (const auto& s : in) out.emplace_back(s.data(), s.size());
    return out;
}

rust::Vec<rust::String> to_rust(const std::vector<std::string>& in) {
    rust::Vec<rust::String> out;
    out.reserve(in.size());
    for (const auto& s : in) out.push_back(rust::String(s.data(), s.size()));
    return out;
}

}  // namespace

std::unique_ptr<PvServer> server_new(const WireServerSettings& s) {
    pvxs::server::Config config;
    switch (s.base) {
        case 1: config = pvxs::server::Config::fromEnv(); break;
        case 2: config = pvxs::server::Config::isolated(); break;
        default: break;
    }
    if (s.set_interfaces) config.interfaces = to_std(s.interfaces);
    if (s.set_beacon_destinations) config.beaconDestinations = to_std(s.beacon_destinations);
    if (s.set_tcp_port) config.tcp_port = s.tcp_port;
    if (s.set_udp_port) config.udp_port = s.udp_port;
    if (s.set_auto_beacon) config.auto_beacon = s.auto_beacon;
    pvxs::server::Server server(config);
    // Before pvxs's builtin source (order -1), which holds the PVs: refuses reads the ACF
    // denies, and hands the PVs' channels it lets through to that source (cpp/gate.h).
    auto gate = read_gate_new(server);
    server.addSource("mxpva-access", read_gate_source(gate), -2);
    return std::unique_ptr<PvServer>(new PvServer(std::move(server), std::move(gate)));
}

void PvServer::start() const { server_.start(); }

uint8_t PvServer::reach_loop(double timeout) const {
    if (holds_loop_.load()) return static_cast<uint8_t>(LoopReach::Reached);
    const auto reach = mxpva::reach_loop(server_, timeout);
    holds_loop_.store(reach == LoopReach::Reached);
    return static_cast<uint8_t>(reach);
}

void PvServer::stop() const {
    if (holds_loop_.exchange(false)) handoff::detach_loop();
    server_.stop();
}

PvServer::~PvServer() {
    try {
        if (holds_loop_.exchange(false)) handoff::detach_loop();
    } catch (...) {
    }
}

WireServerInfo PvServer::info() const {
    const auto& c = server_.config();
    WireServerInfo out{};
    out.interfaces = to_rust(c.interfaces);
    out.beacon_destinations = to_rust(c.beaconDestinations);
    out.tcp_port = c.tcp_port;
    out.udp_port = c.udp_port;
    out.auto_beacon = c.auto_beacon;
    pvxs::client::Config::defs_t defs;
    server_.clientConfig().updateDefs(defs);
    for (const auto& kv : defs) {
        std::string line = kv.first + "=" + kv.second;
        out.client_env.push_back(rust::String(line.data(), line.size()));
    }
    return out;
}

rust::Vec<WireClient> PvServer::clients() const {
    rust::Vec<WireClient> out;
    const auto report = server_.report(false);
    for (const auto& conn : report.connections) {
        WireClient c{};
        c.peer = rust::String(conn.peer.data(), conn.peer.size());
        if (conn.credentials) {
            const auto& cred = *conn.credentials;
            c.method = rust::String(cred.method.data(), cred.method.size());
            c.account = rust::String(cred.account.data(), cred.account.size());
        }
        c.channels = static_cast<uint32_t>(conn.channels.size());
        c.tx = conn.tx;
        c.rx = conn.rx;
        out.push_back(std::move(c));
    }
    return out;
}

void PvServer::add_pv(rust::Str name, const PvHandle& pv) const {
    // One copy of the name, which pvxs's map and the gate's set share (the wheels' old
    // string ABI counts references).
    const std::string pv_name = to_std(name);
    server_.addPV(pv_name, pv.shared_pv());
    read_gate_serve(*gate_, pv_name, true);
}

void PvServer::remove_pv(rust::Str name) const {
    read_gate_serve(*gate_, to_std(name), false);
    server_.removePV(to_std(name));
}

void configure_logging_from_env() { pvxs::logger_config_env(); }

namespace {
std::atomic<int> native_log_muted{0};

void native_log_listener(void*, const char* message) {
    try {
        if (!message || native_log_muted.load() > 0) return;
        on_native_log(rust::Slice<const uint8_t>(
            reinterpret_cast<const uint8_t*>(message), std::strlen(message)));
    } catch (...) {
        // A log line is not worth an exception through errlog's thread.
    }
}
}  // namespace

namespace {
std::atomic<bool> routed{false};
}  // namespace

void route_native_log() {
    errlogAddListener(native_log_listener, nullptr);
    eltc(0);
    routed.store(true);
}

bool native_log_routed() { return routed.load(); }

NativeLogMuted::NativeLogMuted() { native_log_muted.fetch_add(1); }

NativeLogMuted::~NativeLogMuted() { native_log_muted.fetch_sub(1); }

}  // namespace mxpva
