// ExecOp::timerOneShot is part of pvxs's "expert" API.
#define PVXS_ENABLE_EXPERT_API
#include "cpp/loop.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include <pvxs/client.h>
#include <pvxs/source.h>

#include "cpp/handoff.h"

namespace mxpva {
namespace {

using pvxs::server::ChannelControl;
using pvxs::server::ExecOp;

// What the source and the thread waiting in reach_loop() share.
struct Ask {
    std::string name;
    std::mutex lock;
    std::condition_variable taken_cv;
    bool taken = false;
    // Held from onCreate until the RPC came (or reach_loop gives up).
    std::shared_ptr<ChannelControl> chan;
};

// Claims the one secret name, once, and keeps its RPC's operation. Lists nothing.
class LoopSource : public pvxs::server::Source {
public:
    explicit LoopSource(std::shared_ptr<Ask> ask) : ask_(std::move(ask)) {}

    void onSearch(Search& search) override {
        if (done()) return;
        for (auto& n : search)
            if (ask_->name == n.name()) n.claim();
    }

    void onCreate(std::unique_ptr<ChannelControl>&& op) override {
        if (done() || op->name() != ask_->name) return;
        std::shared_ptr<ChannelControl> chan(std::move(op));
        std::weak_ptr<Ask> weak = ask_;
        chan->onRPC([weak](std::unique_ptr<ExecOp>&& exec, pvxs::Value&&) {
            // On the server's loop.
            auto ask = weak.lock();
            if (!ask) {
                exec->error("no such operation");
                return;
            }
            std::lock_guard<std::mutex> g(ask->lock);
            if (ask->taken) {
                exec->error("no such operation");
                return;
            }
            exec->reply();
            handoff::attach_loop(std::move(exec));
            ask->taken = true;
            ask->taken_cv.notify_all();
        });
        std::lock_guard<std::mutex> g(ask_->lock);
        ask_->chan = std::move(chan);
    }

    List onList() override { return List(); }

private:
    bool done() {
        std::lock_guard<std::mutex> g(ask_->lock);
        return ask_->taken;
    }
    std::shared_ptr<Ask> ask_;
};

std::string secret_name() {
    std::random_device rd;
    char buf[80];
    std::snprintf(buf, sizeof buf, "mxpva:loop:%08x%08x%08x%08x", rd(), rd(), rd(), rd());
    return buf;
}

// Where this server's own client finds it: over TCP, at each interface it listens on
// (a wildcard as loopback), so no UDP search goes anywhere (the beacon destinations
// may name other hosts or ports).
pvxs::client::Config own_client(const pvxs::server::Server& server) {
    const auto& eff = server.config();
    pvxs::client::Config conf;
    // (pvxs shares the UDP port between a server and clients; searches go over TCP.)
    conf.udp_port = eff.udp_port;
    conf.tcp_port = eff.tcp_port;
    conf.autoAddrList = false;
    conf.interfaces = {"127.0.0.1"};
    const std::string port = ":" + std::to_string(eff.tcp_port);
    bool loopback = eff.interfaces.empty();
    for (const auto& iface : eff.interfaces) {
        // "0.0.0.0", "127.0.0.1", "10.1.2.3", perhaps with "%scope"; IPv6 not used here.
        const std::string host = iface.substr(0, iface.find_first_of("%:"));
        if (host.empty() || iface.find('[') != std::string::npos) continue;
        if (host == "0.0.0.0" || host.rfind("127.", 0) == 0)
            loopback = true;
        else
            conf.nameServers.push_back(host + port);
    }
    if (loopback) conf.nameServers.insert(conf.nameServers.begin(), "127.0.0.1" + port);
    return conf;
}

}  // namespace

LoopReach reach_loop(pvxs::server::Server& server, double timeout) {
    if (handoff::loop_attached()) return LoopReach::HeldElsewhere;
    auto ask = std::make_shared<Ask>();
    ask->name = secret_name();
    const std::string source_name = "mxpva-loop";
    // Before the read gate (-2) and the PVs (-1): the name is this source's alone.
    server.addSource(source_name, std::make_shared<LoopSource>(ask), -3);
    bool taken = false;
    try {
        auto client = own_client(server).build();
        auto op = client.rpc(ask->name).exec();
        {
            std::unique_lock<std::mutex> g(ask->lock);
            ask->taken_cv.wait_for(g, std::chrono::duration<double>(timeout),
                                   [&] { return ask->taken; });
            taken = ask->taken;
        }
        try {
            op->wait(taken ? 1.0 : 0.0);
        } catch (std::exception&) {
            // The reply matters not: the server kept the operation or it did not.
        }
        op.reset();
        client.close();
    } catch (std::exception&) {
        // Could not reach the server: posts are handed over as before.
    }
    std::shared_ptr<ChannelControl> chan;
    {
        std::lock_guard<std::mutex> g(ask->lock);
        ask->taken = true;  // the source claims nothing more
        chan = std::move(ask->chan);
    }
    chan.reset();
    server.removeSource(source_name, -3);
    return taken ? LoopReach::Reached : LoopReach::NotReached;
}

}  // namespace mxpva
