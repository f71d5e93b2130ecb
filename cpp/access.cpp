#include "cpp/access.h"

#include <asLib.h>
#include <epicsStdio.h>
#include <epicsTypes.h>
#include <osiSock.h>
#include <errlog.h>

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
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
// Never destroyed: threads of the read gate may still use it as the process exits.
std::mutex& as_lock() {
    static auto* lock = new std::mutex;
    return *lock;
}

// One member per group name; asLib wants the name to outlive the member, which the
// map's node gives it. Groups come from the config, so the map stays small.
std::map<std::string, ASMEMBERPVT>& members() {
    static auto* m = new std::map<std::string, ASMEMBERPVT>;
    return *m;
}

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

rust::String acf_resolve_host(rust::Str host) {
    // What asLib does with a HAG host when it resolves them itself (asHagAddHost with
    // asCheckClientIP = 1): aToIPAddr, then the address as "a.b.c.d".
    std::string name(host.data(), host.size());
    struct sockaddr_in addr {};
    if (aToIPAddr(name.c_str(), 0, &addr)) return rust::String();
    uint32_t ip = ntohl(addr.sin_addr.s_addr);
    char text[24];
    epicsSnprintf(text, sizeof text, "%u.%u.%u.%u", (ip >> 24) & 0xff, (ip >> 16) & 0xff,
                  (ip >> 8) & 0xff, ip & 0xff);
    return rust::String(text);
}

WireAcfSummary acf_load(rust::Str text) {
    std::string acf(text.data(), text.size());
    std::lock_guard<std::mutex> guard(as_lock());
    std::vector<std::string> lines;
    // The HAG hosts of `text` are addresses already, or `unresolved:<name>` where the name
    // did not resolve (crate::access::resolve, before this lock): asLib stores them as
    // they are, as it stores what it resolves itself with asCheckClientIP = 1, and waits
    // on no resolver while it holds this lock (and so while the read gate waits for it).
    asCheckClientIP = 0;
    errlogFlush();
    errlogAddListener(&capture, &lines);
    eltc(0);  // mxpva reports what asLib says; errlog's console copy would repeat it
    NativeLogMuted muted;  // and so would the copy routed to tracing
    // The parser reports some errors on this thread's stderr instead of errlog.
    std::unique_ptr<FILE, int (*)(FILE*)> parser_out(std::tmpfile(), &std::fclose);
    if (parser_out) epicsSetThreadStderr(parser_out.get());
    long status = asInitMem(acf.c_str(), nullptr);
    if (parser_out) epicsSetThreadStderr(nullptr);
    errlogFlush();
    eltc(native_log_routed() ? 0 : 1);  // as it was: mxpva may route errlog to tracing
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

WireAccess acf_check(rust::Str group, int32_t level, rust::Str user, rust::Str host,
                     rust::Slice<const rust::String> roles) {
    std::vector<std::string> role_list;
    for (const auto& role : roles) role_list.emplace_back(role.data(), role.size());
    return check_access(std::string(group.data(), group.size()), level,
                        std::string(user.data(), user.size()),
                        std::string(host.data(), host.size()), role_list);
}

}  // namespace mxpva
