// The read gate (see gate.h).
#define PVXS_ENABLE_EXPERT_API
#include "cpp/gate.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cpp/access.h"
#include "cpp/name_set.h"
#include "mxpva/src/pva/ffi.rs.h"

namespace mxpva {

using pvxs::server::ChannelControl;
using pvxs::server::ClientCredentials;
using pvxs::server::ConnectOp;
using pvxs::server::ExecOp;
using pvxs::server::MonitorSetupOp;
using pvxs::server::Source;

namespace {

rust::String to_rust(const std::string& s) { return rust::String::lossy(s.data(), s.size()); }

std::atomic<bool> roles_wanted{false};

// ------------------------------------------------------------------------ roles

struct RoleEntry {
    std::weak_ptr<const ClientCredentials> owner;
    std::vector<std::string> roles;
};

// The state below is never destroyed: the gate's threads (role lookups, re-checks) may
// still use it as the process exits, after static destructors ran.

// Per connection: pvxs hands every op of one connection the same credentials object.
std::mutex& role_lock = *new std::mutex;
std::map<const ClientCredentials*, RoleEntry>& role_cache =
    *new std::map<const ClientCredentials*, RoleEntry>;

bool cached_roles(const std::shared_ptr<const ClientCredentials>& cred,
                  std::vector<std::string>& out) {
    std::lock_guard<std::mutex> guard(role_lock);
    auto it = role_cache.find(cred.get());
    if (it == role_cache.end() || it->second.owner.lock() != cred) return false;
    out = it->second.roles;
    return true;
}

// The OS groups of `account` on this host; none when the host does not know the account.
// (pvxs's ClientCredentials::roles() gives an account that getpwnam does not know a role
// of its own name: a client claiming `ops` would then match "role/ops".)
std::vector<std::string> os_groups(const std::string& account) {
    std::vector<std::string> out;
    if (account.empty()) return out;
    std::vector<char> buf(16384);
    struct passwd pw {};
    struct passwd* found = nullptr;
    int rc;
    while ((rc = getpwnam_r(account.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE &&
           buf.size() < (1u << 20))
        buf.resize(buf.size() * 2);
    if (rc != 0 || !found) return out;
    const std::string name = found->pw_name;
    const gid_t primary = found->pw_gid;
    std::vector<gid_t> gids(64);
    for (;;) {
        int n = static_cast<int>(gids.size());
        if (getgrouplist(name.c_str(), primary, gids.data(), &n) >= 0) {
            gids.resize(n > 0 ? static_cast<size_t>(n) : 0);
            break;
        }
        size_t want = n > static_cast<int>(gids.size()) ? static_cast<size_t>(n) : gids.size() * 2;
        if (want > 65536) {
            gids.assign(1, primary);
            break;
        }
        gids.resize(want);
    }
    std::set<std::string> names;
    for (gid_t gid : gids) {
        struct group gr {};
        struct group* got = nullptr;
        while ((rc = getgrgid_r(gid, &gr, buf.data(), buf.size(), &got)) == ERANGE &&
               buf.size() < (1u << 24))
            buf.resize(buf.size() * 2);
        if (rc == 0 && got && got->gr_name) names.insert(got->gr_name);
    }
    out.assign(names.begin(), names.end());
    return out;
}

// The account of `cred` as the rules see it (acf_user, in Rust).
std::string rules_account(const std::shared_ptr<const pvxs::server::ClientCredentials>& cred) {
    // No std::string crosses to cxx's runtime (see shim.h): (data, size) both ways.
    rust::String user =
        cred ? acf_user(rust::Str(cred->method.data(), cred->method.size()),
                        rust::Str(cred->account.data(), cred->account.size()))
             : acf_user(rust::Str(), rust::Str());
    return std::string(user.data(), user.size());
}

// May ask NSS (seconds with a slow directory): never on pvxs's event loop.
std::vector<std::string> roles_of(const std::shared_ptr<const ClientCredentials>& cred) {
    std::vector<std::string> roles;
    if (cached_roles(cred, roles)) return roles;
    // Roles are the OS groups of a `ca` account as the rules see it, known to this host;
    // any other method has none. May ask NSS: outside the lock.
    if (cred->method == "ca") roles = os_groups(rules_account(cred));
    const size_t max_entries = 1024;
    std::lock_guard<std::mutex> guard(role_lock);
    if (role_cache.size() >= max_entries) {
        for (auto it = role_cache.begin(); it != role_cache.end();)
            it = it->second.owner.expired() ? role_cache.erase(it) : std::next(it);
        if (role_cache.size() >= max_entries) role_cache.clear();
    }
    role_cache[cred.get()] = RoleEntry{cred, roles};
    return roles;
}

// ------------------------------------------------------------------------ rules

// The client's IP address, without the port ("127.0.0.1:5075", "[::1]:5075").
std::string peer_host(const std::string& peer) {
    if (!peer.empty() && peer[0] == '[') {
        auto end = peer.find(']');
        return peer.substr(1, end == std::string::npos ? std::string::npos : end - 1);
    }
    auto colon = peer.rfind(':');
    if (colon != std::string::npos && peer.find(':') == colon) return peer.substr(0, colon);
    return peer;
}

struct ReadRules {
    bool active = false;
    std::map<std::string, std::pair<std::string, int32_t>> pvs;
    std::string other_group;
    int32_t other_level = 0;
};

std::mutex& read_lock = *new std::mutex;
std::shared_ptr<const ReadRules>& read_rules =
    *new std::shared_ptr<const ReadRules>(std::make_shared<ReadRules>());

std::shared_ptr<const ReadRules> current_rules() {
    std::lock_guard<std::mutex> guard(read_lock);
    return read_rules;
}

// What the rules in force say about one client's READ of one name.
struct Verdict {
    bool read = true;
    std::string group, account, host, method;
};

Verdict judge(const ReadRules& rules, const std::string& name,
              const std::shared_ptr<const ClientCredentials>& cred,
              const std::vector<std::string>& roles) {
    Verdict v;
    v.account = rules_account(cred);
    v.host = cred ? peer_host(cred->peer) : "";
    v.method = cred ? cred->method : std::string();
    if (!rules.active) return v;
    auto it = rules.pvs.find(name);
    v.group = it != rules.pvs.end() ? it->second.first : rules.other_group;
    int32_t level = it != rules.pvs.end() ? it->second.second : rules.other_level;
    try {
        v.read = check_access(v.group, level, v.account, v.host, roles).read;
    } catch (std::exception&) {
        v.read = false;  // fails closed, as a put does
    }
    return v;
}

struct Refusal {
    std::string pv, group, account, host, method;
    std::string message(const char* op) const {
        return std::string(op) + " denied by access security: " + pv + " (group " + group +
               ", " + account + "@" + host + ")";
    }
    void report(const char* op) const {
        try {
            on_read_denied(to_rust(pv), to_rust(group), to_rust(account), to_rust(host),
                           rust::Str(op));
        } catch (...) {
        }
    }
    // A put refused so is audited (outcome `denied_no_read`).
    void audit_put() const {
        try {
            on_read_denied_put(to_rust(pv), to_rust(group), to_rust(account), to_rust(host),
                               to_rust(method));
        } catch (...) {
        }
    }
};

void refuse(const Refusal& r, std::unique_ptr<ConnectOp>&& c) {
    bool put = c->op() == pvxs::server::OpBase::Put;
    r.report(put ? "put" : "get");
    if (put) r.audit_put();
    c->error(r.message(put ? "put" : "get"));
}
void refuse(const Refusal& r, std::unique_ptr<MonitorSetupOp>&& m) {
    r.report("monitor");
    m->error(r.message("monitor"));
}
void refuse(const Refusal& r, std::unique_ptr<ExecOp>&& x) {
    r.report("rpc");
    x->error(r.message("rpc"));
}

// ------------------------------------------------------------------------ channels

// One channel the gate claimed. Its operations go where its state says: held while the
// decision waits for the client's roles, to the PV's own source when READ is granted,
// refused otherwise.
struct Chan {
    enum class State { Pending, Allowed, Denied, Closed };

    std::shared_ptr<ChannelControl> ctrl;  // pvxs's; set once, before sharing
    std::string name;
    std::shared_ptr<const ClientCredentials> cred;
    std::vector<std::shared_ptr<Source>> sources;  // the PV's own source(s), in order

    std::mutex lock;
    State state = State::Pending;
    Refusal refusal;
    // Handlers the PV's own source set (through Proxy).
    std::function<void(std::unique_ptr<ConnectOp>&&)> on_op;
    std::function<void(std::unique_ptr<ExecOp>&&, pvxs::Value&&)> on_rpc;
    std::function<void(std::unique_ptr<MonitorSetupOp>&&)> on_sub;
    std::function<void(const std::string&)> on_close;
    // Operations that came while Pending.
    std::vector<std::unique_ptr<ConnectOp>> held_ops;
    std::vector<std::unique_ptr<MonitorSetupOp>> held_subs;
    std::vector<std::pair<std::unique_ptr<ExecOp>, pvxs::Value>> held_rpcs;

    State state_now() {
        std::lock_guard<std::mutex> guard(lock);
        return state;
    }

    void op(std::unique_ptr<ConnectOp>&& c) {
        std::unique_lock<std::mutex> guard(lock);
        switch (state) {
            case State::Pending: held_ops.push_back(std::move(c)); return;
            case State::Allowed: {
                auto fn = on_op;
                guard.unlock();
                if (fn) fn(std::move(c));
                return;
            }
            case State::Denied: {
                auto r = refusal;
                guard.unlock();
                refuse(r, std::move(c));
                return;
            }
            case State::Closed: return;
        }
    }

    void sub(std::unique_ptr<MonitorSetupOp>&& m) {
        std::unique_lock<std::mutex> guard(lock);
        switch (state) {
            case State::Pending: held_subs.push_back(std::move(m)); return;
            case State::Allowed: {
                auto fn = on_sub;
                guard.unlock();
                if (fn) fn(std::move(m));
                return;
            }
            case State::Denied: {
                auto r = refusal;
                guard.unlock();
                refuse(r, std::move(m));
                return;
            }
            case State::Closed: return;
        }
    }

    void rpc(std::unique_ptr<ExecOp>&& x, pvxs::Value&& arg) {
        std::unique_lock<std::mutex> guard(lock);
        switch (state) {
            case State::Pending: held_rpcs.emplace_back(std::move(x), std::move(arg)); return;
            case State::Allowed: {
                auto fn = on_rpc;
                guard.unlock();
                if (fn) fn(std::move(x), std::move(arg));
                return;
            }
            case State::Denied: {
                auto r = refusal;
                guard.unlock();
                refuse(r, std::move(x));
                return;
            }
            case State::Closed: return;
        }
    }

    // The channel is gone (the client closed it, its connection ended, or close()).
    void closed(const std::string& why) {
        std::function<void(const std::string&)> fn;
        std::vector<std::unique_ptr<ConnectOp>> ops;
        std::vector<std::unique_ptr<MonitorSetupOp>> subs;
        std::vector<std::pair<std::unique_ptr<ExecOp>, pvxs::Value>> rpcs;
        {
            std::lock_guard<std::mutex> guard(lock);
            state = State::Closed;
            fn = std::move(on_close);
            on_op = nullptr;
            on_rpc = nullptr;
            on_sub = nullptr;
            on_close = nullptr;
            ops.swap(held_ops);
            subs.swap(held_subs);
            rpcs.swap(held_rpcs);
        }
        if (fn) fn(why);
    }
};

// The ChannelControl the PV's own source gets: its handlers are kept by the gate's
// Chan, which forwards the channel's operations to them while READ is granted.
class Proxy final : public ChannelControl {
public:
    explicit Proxy(const std::shared_ptr<Chan>& chan)
        : ChannelControl(chan->name, chan->cred, None), chan_(chan) {}
    ~Proxy() override = default;

    void onOp(std::function<void(std::unique_ptr<ConnectOp>&&)>&& fn) override {
        std::lock_guard<std::mutex> guard(chan_->lock);
        if (chan_->state != Chan::State::Closed) chan_->on_op = std::move(fn);
    }
    void onRPC(std::function<void(std::unique_ptr<ExecOp>&&, pvxs::Value&&)>&& fn) override {
        std::lock_guard<std::mutex> guard(chan_->lock);
        if (chan_->state != Chan::State::Closed) chan_->on_rpc = std::move(fn);
    }
    void onSubscribe(std::function<void(std::unique_ptr<MonitorSetupOp>&&)>&& fn) override {
        std::lock_guard<std::mutex> guard(chan_->lock);
        if (chan_->state != Chan::State::Closed) chan_->on_sub = std::move(fn);
    }
    void onClose(std::function<void(const std::string&)>&& fn) override {
        std::lock_guard<std::mutex> guard(chan_->lock);
        if (chan_->state != Chan::State::Closed) chan_->on_close = std::move(fn);
    }
    void close() override { chan_->ctrl->close(); }

private:
    void _updateInfo(const std::shared_ptr<const pvxs::server::ReportInfo>& info) override {
        chan_->ctrl->updateInfo(info);
    }
    std::shared_ptr<Chan> chan_;
};

// The ChannelControl the PV's own source gets for a channel granted READ as it opened
// (no ACF in force, or the client's roles known already): its handlers go straight to
// pvxs's channel, so that the gate keeps nothing per channel but this and a weak entry
// in its list (issue 23: memory per monitored PV).
class DirectProxy final : public ChannelControl {
public:
    explicit DirectProxy(const std::shared_ptr<ChannelControl>& ctrl)
        : ChannelControl(ctrl->name(), ctrl->credentials(), None), ctrl_(ctrl) {}
    ~DirectProxy() override = default;

    void onOp(std::function<void(std::unique_ptr<ConnectOp>&&)>&& fn) override {
        ctrl_->onOp(std::move(fn));
    }
    void onRPC(std::function<void(std::unique_ptr<ExecOp>&&, pvxs::Value&&)>&& fn) override {
        ctrl_->onRPC(std::move(fn));
    }
    void onSubscribe(std::function<void(std::unique_ptr<MonitorSetupOp>&&)>&& fn) override {
        ctrl_->onSubscribe(std::move(fn));
    }
    void onClose(std::function<void(const std::string&)>&& fn) override {
        ctrl_->onClose(std::move(fn));
    }
    void close() override { ctrl_->close(); }

private:
    void _updateInfo(const std::shared_ptr<const pvxs::server::ReportInfo>& info) override {
        ctrl_->updateInfo(info);
    }
    std::shared_ptr<ChannelControl> ctrl_;
};

// Hands `ctrl` to the first of `sources` that claims it, through a DirectProxy; false
// when none does (the PV went away).
bool hand_over(const std::vector<std::shared_ptr<Source>>& sources,
               const std::shared_ptr<ChannelControl>& ctrl) {
    for (const auto& source : sources) {
        std::unique_ptr<ChannelControl> proxy(new DirectProxy(ctrl));
        try {
            source->onCreate(std::move(proxy));
        } catch (std::exception&) {
        }
        if (!proxy) return true;
    }
    return false;
}

// Grants READ: hands the channel to the PV's own source (once), then lets the
// operations held meanwhile through, in the order they came.
void allow(const std::shared_ptr<Chan>& chan) {
    if (chan->state_now() == Chan::State::Pending) {
        bool claimed = false;
        for (const auto& source : chan->sources) {
            std::unique_ptr<ChannelControl> proxy(new Proxy(chan));
            try {
                source->onCreate(std::move(proxy));
            } catch (std::exception&) {
            }
            if (!proxy) {
                claimed = true;
                break;
            }
        }
        if (!claimed) {
            // The PV went away meanwhile: the client searches again.
            chan->ctrl->close();
            return;
        }
    }
    std::vector<std::unique_ptr<ConnectOp>> ops;
    std::vector<std::unique_ptr<MonitorSetupOp>> subs;
    std::vector<std::pair<std::unique_ptr<ExecOp>, pvxs::Value>> rpcs;
    {
        std::lock_guard<std::mutex> guard(chan->lock);
        if (chan->state == Chan::State::Closed) return;
        chan->state = Chan::State::Allowed;
        ops.swap(chan->held_ops);
        subs.swap(chan->held_subs);
        rpcs.swap(chan->held_rpcs);
    }
    for (auto& c : ops) chan->op(std::move(c));
    for (auto& m : subs) chan->sub(std::move(m));
    for (auto& x : rpcs) chan->rpc(std::move(x.first), std::move(x.second));
}

void deny(const std::shared_ptr<Chan>& chan, const Verdict& v) {
    std::vector<std::unique_ptr<ConnectOp>> ops;
    std::vector<std::unique_ptr<MonitorSetupOp>> subs;
    std::vector<std::pair<std::unique_ptr<ExecOp>, pvxs::Value>> rpcs;
    {
        std::lock_guard<std::mutex> guard(chan->lock);
        if (chan->state == Chan::State::Closed) return;
        chan->state = Chan::State::Denied;
        chan->refusal = Refusal{chan->name, v.group, v.account, v.host, v.method};
        ops.swap(chan->held_ops);
        subs.swap(chan->held_subs);
        rpcs.swap(chan->held_rpcs);
    }
    for (auto& c : ops) chan->op(std::move(c));
    for (auto& m : subs) chan->sub(std::move(m));
    for (auto& x : rpcs) chan->rpc(std::move(x.first), std::move(x.second));
}

void decide(const std::shared_ptr<Chan>& chan, const std::vector<std::string>& roles) {
    auto v = judge(*current_rules(), chan->name, chan->cred, roles);
    if (v.read)
        allow(chan);
    else
        deny(chan, v);
}

// ------------------------------------------------------------------------ role lookups

// The thread that looks up roles, and the channels waiting for them. Never destroyed:
// its thread is detached and may outlive main().
struct Lookups {
    std::mutex lock;
    std::condition_variable wake;
    std::deque<std::shared_ptr<const ClientCredentials>> queue;
    std::map<const ClientCredentials*, std::vector<std::weak_ptr<Chan>>> waiting;
    bool running = false;

    void run() {
        std::unique_lock<std::mutex> guard(lock);
        for (;;) {
            wake.wait(guard, [this] { return !queue.empty(); });
            auto cred = std::move(queue.front());
            queue.pop_front();
            guard.unlock();
            std::vector<std::string> roles;
            try {
                roles = roles_of(cred);
            } catch (...) {
            }
            guard.lock();
            auto chans = std::move(waiting[cred.get()]);
            waiting.erase(cred.get());
            guard.unlock();
            for (const auto& weak : chans)
                if (auto chan = weak.lock()) decide(chan, roles);
            guard.lock();
        }
    }

    // `chan` is decided once its client's roles are known.
    void request(const std::shared_ptr<Chan>& chan) {
        std::lock_guard<std::mutex> guard(lock);
        auto& list = waiting[chan->cred.get()];
        if (list.empty()) queue.push_back(chan->cred);
        list.push_back(chan);
        if (!running) {
            running = true;
            std::thread([this] { run(); }).detach();
        }
        wake.notify_one();
    }
};

Lookups& lookups() {
    static auto* l = new Lookups;
    return *l;
}

}  // namespace

// ------------------------------------------------------------------------ the gate

class ReadGate : public Source {
public:
    explicit ReadGate(std::vector<std::shared_ptr<Source>> sources)
        : sources_(std::move(sources)) {}

    void onSearch(Search&) override {}

    void onCreate(std::unique_ptr<ChannelControl>&& op) override {
        if (!op) return;
        std::string name = op->name();
        bool served;
        {
            std::lock_guard<std::mutex> guard(lock_);
            served = served_.contains(name) || name == "server";
        }
        auto rules = current_rules();
        if (!served) {
            other(std::move(op), *rules);
            return;
        }
        const auto cred = op->credentials();
        std::vector<std::string> roles;
        const bool known = !rules->active || !cred || cached_roles(cred, roles);
        Verdict verdict;  // READ unless the rules in force say otherwise
        if (known && rules->active) verdict = judge(*rules, name, cred, roles);
        if (known && verdict.read) {
            // Granted as it opens: the PV's own source gets the channel straight away.
            std::shared_ptr<ChannelControl> ctrl(std::move(op));
            if (!hand_over(sources_, ctrl)) {
                // The PV went away meanwhile: the client searches again.
                ctrl->close();
                return;
            }
            {
                std::lock_guard<std::mutex> guard(lock_);
                if (direct_.size() >= direct_prune_at_) {
                    for (auto it = direct_.begin(); it != direct_.end();)
                        it = it->expired() ? direct_.erase(it) : std::next(it);
                    direct_prune_at_ = 2 * direct_.size() + 64;
                }
                direct_.push_back(ctrl);
            }
            // Rules that came meanwhile may have been re-checked before the channel was
            // listed: it meets them as it connects again.
            if (current_rules() != rules) ctrl->close();
            return;
        }
        // Refused, or waiting for the client's roles: the gate holds the channel's
        // operations itself (Chan).
        auto chan = std::make_shared<Chan>();
        chan->ctrl = std::shared_ptr<ChannelControl>(std::move(op));
        chan->name = name;
        chan->cred = chan->ctrl->credentials();
        chan->sources = sources_;
        std::weak_ptr<Chan> weak = chan;
        chan->ctrl->onOp([weak](std::unique_ptr<ConnectOp>&& c) {
            if (auto ch = weak.lock()) ch->op(std::move(c));
        });
        chan->ctrl->onSubscribe([weak](std::unique_ptr<MonitorSetupOp>&& m) {
            if (auto ch = weak.lock()) ch->sub(std::move(m));
        });
        chan->ctrl->onRPC([weak](std::unique_ptr<ExecOp>&& x, pvxs::Value&& arg) {
            if (auto ch = weak.lock()) ch->rpc(std::move(x), std::move(arg));
        });
        // The channel keeps its Chan while it is open.
        chan->ctrl->onClose([chan](const std::string& why) { chan->closed(why); });
        {
            std::lock_guard<std::mutex> guard(lock_);
            if (chans_.size() >= prune_at_) {
                for (auto it = chans_.begin(); it != chans_.end();)
                    it = it->expired() ? chans_.erase(it) : std::next(it);
                prune_at_ = 2 * chans_.size() + 64;
            }
            chans_.push_back(chan);
        }
        if (known)
            deny(chan, verdict);
        else
            lookups().request(chan);
    }

    void serve(const std::string& name, bool on) {
        std::lock_guard<std::mutex> guard(lock_);
        if (on)
            served_.insert(name);
        else
            served_.erase(name);
    }

    // The open channels granted READ as they opened (handed to the PV's source directly).
    std::vector<std::shared_ptr<ChannelControl>> direct_channels() {
        std::vector<std::shared_ptr<ChannelControl>> out;
        std::lock_guard<std::mutex> guard(lock_);
        for (auto it = direct_.begin(); it != direct_.end();) {
            if (auto ctrl = it->lock()) {
                out.push_back(std::move(ctrl));
                ++it;
            } else {
                it = direct_.erase(it);
            }
        }
        return out;
    }

    // The open channels the gate holds itself (refused, or decided after a role lookup).
    std::vector<std::shared_ptr<Chan>> open_channels() {
        std::vector<std::shared_ptr<Chan>> out;
        std::lock_guard<std::mutex> guard(lock_);
        for (auto it = chans_.begin(); it != chans_.end();) {
            if (auto chan = it->lock()) {
                out.push_back(std::move(chan));
                ++it;
            } else {
                it = chans_.erase(it);
            }
        }
        return out;
    }

private:
    // A name the server does not hold: checked as it opens, with the roles known so far
    // (a lookup is started for the next channel), and refused or left to pvxs.
    void other(std::unique_ptr<ChannelControl>&& op, const ReadRules& rules) {
        if (!rules.active) return;
        const auto& cred = op->credentials();
        std::vector<std::string> roles;
        if (cred && !cached_roles(cred, roles)) {
            auto probe = std::make_shared<Chan>();
            probe->cred = cred;
            probe->state = Chan::State::Closed;  // decides nothing: warms the cache
            lookups().request(probe);
        }
        auto v = judge(rules, op->name(), cred, roles);
        if (v.read) return;
        auto refusal = std::make_shared<Refusal>(Refusal{op->name(), v.group, v.account, v.host, v.method});
        op->onOp([refusal](std::unique_ptr<ConnectOp>&& c) { refuse(*refusal, std::move(c)); });
        op->onSubscribe(
            [refusal](std::unique_ptr<MonitorSetupOp>&& m) { refuse(*refusal, std::move(m)); });
        op->onRPC([refusal](std::unique_ptr<ExecOp>&& x, pvxs::Value&&) {
            refuse(*refusal, std::move(x));
        });
    }

    const std::vector<std::shared_ptr<Source>> sources_;
    std::mutex lock_;
    // One array of names (cpp/name_set.h), no node per PV (the names' characters are
    // shared with pvxs's map of the PV's source).
    NameSet served_;
    std::vector<std::weak_ptr<Chan>> chans_;
    size_t prune_at_ = 64;
    // pvxs's channel of each channel granted READ as it opened; expires as it closes
    // (its DirectProxy, which the PV's source keeps while the channel is open, holds it).
    // A deque, not a vector: no room doubled past the channels it lists (a vector of
    // 10,000 entries keeps room for 16,384).
    std::deque<std::weak_ptr<ChannelControl>> direct_;
    size_t direct_prune_at_ = 64;
};

namespace {

std::mutex& gates_lock = *new std::mutex;
std::vector<std::weak_ptr<ReadGate>>& gates = *new std::vector<std::weak_ptr<ReadGate>>;

}  // namespace

std::shared_ptr<ReadGate> read_gate_new(pvxs::server::Server& server) {
    std::vector<std::shared_ptr<Source>> sources;
    // pvxs's own sources, as it orders them: the PVs (addPV), then the "server" PV.
    for (const char* name : {"__builtin", "__server"})
        if (auto source = server.getSource(name, -1)) sources.push_back(std::move(source));
    auto gate = std::make_shared<ReadGate>(std::move(sources));
    std::lock_guard<std::mutex> guard(gates_lock);
    for (auto it = gates.begin(); it != gates.end();)
        it = it->expired() ? gates.erase(it) : std::next(it);
    gates.push_back(gate);
    return gate;
}

std::shared_ptr<Source> read_gate_source(const std::shared_ptr<ReadGate>& gate) { return gate; }

void read_gate_serve(ReadGate& gate, const std::string& name, bool served) {
    gate.serve(name, served);
}

void acf_want_roles(bool on) { roles_wanted.store(on); }

void fill_roles(const std::shared_ptr<const ClientCredentials>& cred,
                rust::Vec<rust::String>& out) {
    if (!cred || !roles_wanted.load()) return;
    // Known by now for a channel the gate decided with rules in force.
    for (const auto& r : roles_of(cred)) out.push_back(to_rust(r));
}

void acf_set_read_rules(bool active, rust::Slice<const WireAcfPv> pvs, rust::Str other_group,
                        int32_t other_level) {
    auto rules = std::make_shared<ReadRules>();
    rules->active = active;
    for (const auto& pv : pvs)
        rules->pvs[std::string(pv.name.data(), pv.name.size())] = {
            std::string(pv.group.data(), pv.group.size()), pv.level};
    rules->other_group.assign(other_group.data(), other_group.size());
    rules->other_level = other_level;
    std::lock_guard<std::mutex> guard(read_lock);
    read_rules = std::move(rules);
}

uint32_t acf_recheck_channels() {
    std::vector<std::shared_ptr<ReadGate>> live;
    {
        std::lock_guard<std::mutex> guard(gates_lock);
        for (const auto& weak : gates)
            if (auto gate = weak.lock()) live.push_back(std::move(gate));
    }
    auto rules = current_rules();
    std::vector<std::shared_ptr<ChannelControl>> changed;
    for (const auto& gate : live) {
        for (const auto& chan : gate->open_channels()) {
            auto state = chan->state_now();
            // A pending channel is decided with the rules in force when its roles come.
            if (state != Chan::State::Allowed && state != Chan::State::Denied) continue;
            std::vector<std::string> roles;
            if (rules->active && chan->cred) {
                try {
                    roles = roles_of(chan->cred);
                } catch (...) {
                }
            }
            bool read = judge(*rules, chan->name, chan->cred, roles).read;
            if (read != (state == Chan::State::Allowed)) changed.push_back(chan->ctrl);
        }
        for (const auto& ctrl : gate->direct_channels()) {
            const auto& cred = ctrl->credentials();
            std::vector<std::string> roles;
            if (rules->active && cred) {
                try {
                    roles = roles_of(cred);
                } catch (...) {
                }
            }
            if (!judge(*rules, ctrl->name(), cred, roles).read) changed.push_back(ctrl);
        }
    }
    // The client is told the channel is gone; it connects again and meets the rules.
    for (const auto& ctrl : changed) ctrl->close();
    return static_cast<uint32_t>(changed.size());
}

}  // namespace mxpva
