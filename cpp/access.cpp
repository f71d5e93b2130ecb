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

WireAccess acf_check(rust::Str group, int32_t level, rust::Str user, rust::Str host,
                     rust::Slice<const rust::String> roles) {
    std::vector<std::string> identities;
    identities.emplace_back(user.data(), user.size());
    for (const auto& role : roles) identities.push_back("role/" + std::string(role.data(), role.size()));
    // asAddClient takes a writable host (it lower-cases names when not checking by IP).
    std::vector<char> host_buf(host.data(), host.data() + host.size());
    host_buf.push_back('\0');

    std::lock_guard<std::mutex> guard(as_lock());
    if (!asActive) throw std::logic_error("no access security file is loaded");
    auto& known = members();
    std::string name(group.data(), group.size());
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

void acf_want_roles(bool on) { roles_wanted.store(on); }

void fill_roles(const std::shared_ptr<const pvxs::server::ClientCredentials>& cred,
                rust::Vec<rust::String>& out) {
    if (!cred || !roles_wanted.load()) return;
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
        if (it != cache.end() && it->second.owner.lock() == cred) {
            for (const auto& r : it->second.roles) out.push_back(to_rust(r));
            return;
        }
    }
    auto found = cred->roles();  // may ask NSS: outside the lock
    Entry entry{cred, std::vector<std::string>(found.begin(), found.end())};
    for (const auto& r : entry.roles) out.push_back(to_rust(r));
    std::lock_guard<std::mutex> guard(lock);
    if (cache.size() >= max_entries) {
        for (auto it = cache.begin(); it != cache.end();)
            it = it->second.owner.expired() ? cache.erase(it) : std::next(it);
        if (cache.size() >= max_entries) cache.clear();
    }
    cache[cred.get()] = std::move(entry);
}

}  // namespace mxpva
