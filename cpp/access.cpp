#include "cpp/access.h"

#include <asLib.h>
#include <epicsStdio.h>
#include <errlog.h>

#include <cstdio>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "mxpva/src/pva/ffi.rs.h"

namespace mxpva {

namespace {

// The one lock around asLib (see access.h).
std::mutex& as_lock() {
    static std::mutex lock;
    return lock;
}

// One member per group name; asLib wants the name to outlive the member, which the
// map's node gives it. Groups come from the config, so the map stays small.
std::map<std::string, ASMEMBERPVT>& members() {
    static std::map<std::string, ASMEMBERPVT> m;
    return m;
}

std::atomic<bool> roles_wanted{false};

// Collects what asLib reports through errlog while it parses.
void capture(void* pvt, const char* message) {
    auto* lines = static_cast<std::vector<std::string>*>(pvt);
    if (!message) return;
    std::string text;
    // Drop ANSI colour escapes (ERL_ERROR is red) and the trailing newline.
    for (const char* p = message; *p; ++p) {
        if (*p == '\033') {
            while (*p && *p != 'm') ++p;
            if (!*p) break;
            continue;
        }
        if (*p != '\n') text.push_back(*p);
    }
    if (!text.empty()) lines->push_back(text);
}

const char* const input_names = "ABCDEFGHIJKL";

rust::String to_rust(const std::string& s) { return rust::String::lossy(s.data(), s.size()); }

}  // namespace

WireAcfSummary acf_load(rust::Str text) {
    std::string acf(text.data(), text.size());
    std::lock_guard<std::mutex> guard(as_lock());
    std::vector<std::string> lines;
    asCheckClientIP = 1;
    errlogFlush();
    errlogAddListener(&capture, &lines);
    eltc(0);  // mxpva reports what asLib says; errlog's console copy would repeat it
    // The parser reports some errors on this thread's stderr instead of errlog.
    std::unique_ptr<FILE, int (*)(FILE*)> parser_out(std::tmpfile(), &std::fclose);
    if (parser_out) epicsSetThreadStderr(parser_out.get());
    long status = asInitMem(acf.c_str(), nullptr);
    if (parser_out) epicsSetThreadStderr(nullptr);
    errlogFlush();
    eltc(1);
    errlogRemoveListeners(&capture, &lines);
    if (parser_out) {
        std::fflush(parser_out.get());
        std::rewind(parser_out.get());
        char buf[512];
        while (std::fgets(buf, sizeof buf, parser_out.get())) capture(&lines, buf);
    }
    if (status) {
        std::string why;
        for (const auto& line : lines) {
            if (!why.empty()) why += "; ";
            why += line;
        }
        if (why.empty()) why = "asLib refused the file (status " + std::to_string(status) + ")";
        throw std::runtime_error(why);
    }
    WireAcfSummary out{};
    for (const auto& line : lines) out.warnings.push_back(to_rust(line));
    if (!pasbase) return out;
    for (auto* asg = (ASG*)ellFirst(&pasbase->asgList); asg; asg = (ASG*)ellNext(&asg->node)) {
        WireAcfGroup group{};
        group.name = to_rust(asg->name ? asg->name : "");
        for (auto* inp = (ASGINP*)ellFirst(&asg->inpList); inp;
             inp = (ASGINP*)ellNext(&inp->node)) {
            std::string link = "INP";
            if (inp->inpIndex >= 0 && inp->inpIndex < 12) link += input_names[inp->inpIndex];
            link += "(" + std::string(inp->inp ? inp->inp : "") + ")";
            group.inputs.push_back(to_rust(link));
        }
        out.groups.push_back(std::move(group));
    }
    return out;
}

namespace {

WireAccess check_access(const std::string& name, int32_t level, const std::string& user,
                        const std::string& host, const std::vector<std::string>& roles) {
    std::vector<std::string> identities;
    identities.push_back(user);
    for (const auto& role : roles) identities.push_back("role/" + role);
    // asAddClient takes a writable host (it lower-cases names when not checking by IP).
    std::vector<char> host_buf(host.begin(), host.end());
    host_buf.push_back('\0');

    std::lock_guard<std::mutex> guard(as_lock());
    if (!asActive) throw std::logic_error("no access security file is loaded");
    auto& known = members();
    auto it = known.find(name);
    if (it == known.end()) {
        it = known.emplace(name, nullptr).first;
        long status = asAddMember(&it->second, it->first.c_str());
        if (status || !it->second) {
            known.erase(it);
            throw std::runtime_error("asAddMember failed for group " + name);
        }
    }
    WireAccess out{};
    for (const auto& who : identities) {
        ASCLIENTPVT client = nullptr;
        // On failure asLib leaves no client: no access, as QSRV2 treats it.
        if (asAddClient(&client, it->second, level, who.c_str(), host_buf.data()) || !client)
            continue;
        bool read = asCheckGet(client);
        bool write = asCheckPut(client);
        out.read = out.read || read;
        if (write) {
            out.write = true;
            out.trap = out.trap || (client->trapMask & AS_TRAP_WRITE) != 0;
        }
        asRemoveClient(&client);
    }
    return out;
}

}  // namespace

WireAccess acf_check(rust::Str group, int32_t level, rust::Str user, rust::Str host,
                     rust::Slice<const rust::String> roles) {
    std::vector<std::string> role_list;
    for (const auto& role : roles) role_list.emplace_back(role.data(), role.size());
    return check_access(std::string(group.data(), group.size()), level,
                        std::string(user.data(), user.size()),
                        std::string(host.data(), host.size()), role_list);
}

void acf_want_roles(bool on) { roles_wanted.store(on); }

namespace {

std::vector<std::string> roles_of(
    const std::shared_ptr<const pvxs::server::ClientCredentials>& cred) {
    struct Entry {
        std::weak_ptr<const pvxs::server::ClientCredentials> owner;
        std::vector<std::string> roles;
    };
    // Per connection: pvxs hands every op of one connection the same credentials object.
    static std::mutex lock;
    static std::map<const pvxs::server::ClientCredentials*, Entry> cache;
    const size_t max_entries = 1024;
    {
        std::lock_guard<std::mutex> guard(lock);
        auto it = cache.find(cred.get());
        if (it != cache.end() && it->second.owner.lock() == cred) return it->second.roles;
    }
    auto found = cred->roles();  // may ask NSS: outside the lock
    Entry entry{cred, std::vector<std::string>(found.begin(), found.end())};
    auto roles = entry.roles;
    std::lock_guard<std::mutex> guard(lock);
    if (cache.size() >= max_entries) {
        for (auto it = cache.begin(); it != cache.end();)
            it = it->second.owner.expired() ? cache.erase(it) : std::next(it);
        if (cache.size() >= max_entries) cache.clear();
    }
    cache[cred.get()] = std::move(entry);
    return roles;
}

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

std::mutex read_lock;
std::shared_ptr<const ReadRules> read_rules = std::make_shared<ReadRules>();

class ReadGate : public pvxs::server::Source {
public:
    void onSearch(Search&) override {}

    void onCreate(std::unique_ptr<pvxs::server::ChannelControl>&& op) override {
        std::shared_ptr<const ReadRules> rules;
        {
            std::lock_guard<std::mutex> guard(read_lock);
            rules = read_rules;
        }
        if (!rules->active || !op) return;
        std::string name = op->name();
        auto it = rules->pvs.find(name);
        const auto& group = it != rules->pvs.end() ? it->second.first : rules->other_group;
        int32_t level = it != rules->pvs.end() ? it->second.second : rules->other_level;
        const auto& cred = op->credentials();
        std::string account = cred && !cred->account.empty() ? cred->account : "anonymous";
        std::string host = cred ? peer_host(cred->peer) : "";
        WireAccess access{};
        try {
            access = check_access(group, level, account, host,
                                  cred ? roles_of(cred) : std::vector<std::string>{});
        } catch (std::exception&) {
            // Fails closed, as a put does.
        }
        if (access.read) return;  // the PV's own source serves it
        auto who = " (group " + group + ", " + account + "@" + host + ")";
        auto denied = std::make_shared<Denied>(
            Denied{name, group, account, host, cred ? cred->method : std::string()});
        auto message = [name, who](const char* what) {
            return std::string(what) + " denied by access security: " + name + who;
        };
        op->onOp([denied, message](std::unique_ptr<pvxs::server::ConnectOp>&& c) {
            bool put = c->op() == pvxs::server::OpBase::Put;
            denied->report(put ? "put" : "get");
            if (put) denied->audit_put();
            c->error(message(put ? "put" : "get"));
        });
        op->onSubscribe([denied, message](std::unique_ptr<pvxs::server::MonitorSetupOp>&& m) {
            denied->report("monitor");
            m->error(message("monitor"));
        });
        op->onRPC([denied, message](std::unique_ptr<pvxs::server::ExecOp>&& x, pvxs::Value&&) {
            denied->report("rpc");
            x->error(message("rpc"));
        });
    }

private:
    struct Denied {
        std::string pv, group, account, host, method;
        void audit_put() const {
            try {
                on_read_denied_put(to_rust(pv), to_rust(group), to_rust(account), to_rust(host),
                                   to_rust(method));
            } catch (...) {
            }
        }
        void report(const char* op) const {
            try {
                on_read_denied(to_rust(pv), to_rust(group), to_rust(account), to_rust(host),
                               rust::Str(op));
            } catch (...) {
            }
        }
    };
};

}  // namespace

void fill_roles(const std::shared_ptr<const pvxs::server::ClientCredentials>& cred,
                rust::Vec<rust::String>& out) {
    if (!cred || !roles_wanted.load()) return;
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

std::shared_ptr<pvxs::server::Source> read_gate() {
    static auto gate = std::make_shared<ReadGate>();
    return gate;
}

}  // namespace mxpva
