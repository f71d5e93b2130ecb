// What one wakeup of pvxs's TCP thread per post costs, and what posting a batch would
// save (issue 23). Built and run by benches/pvxs_batch.rs; written directly against pvxs.
//
//   pvxs_batch run N SECONDS WORK_US RATE
//       Serves N float64 NTScalar PVs (with display and display.form, as mxpva serves a
//       Double) on an isolated loopback server; forks a monitor client (this program,
//       `monitor`) that subscribes every PV; then runs rounds of SECONDS in each mode,
//       alternating, each event costing WORK_US of busy work on the posting thread (the
//       bridge's own work per event). RATE events/s in all, 0 for as fast as possible;
//       events due together are one turn (as mxpva takes what is ready in one turn).
//         each  post every event as soon as its work is done (one post per turn step)
//         turn  do the work of every event due, then post them back to back from the
//               posting thread (what mxpva's end_turn does)
//         loop  do the work, then make the same posts on pvxs's own TCP thread, in one
//               call: every reply is queued on that thread and sent in one pass
//       Prints per round: posts/s, updates the client received, CPU per post of the
//       process (less the busy work, counted in thread CPU time), of pvxs's TCP thread
//       (PVXTCP) alone, and the TCP thread's context switches per post (its wakeups).
//   pvxs_batch monitor N
//       The client (EPICS_PVA_* from the environment): READY once every PV has a value;
//       on "count" prints the updates received since the last "count".
//
// pvxs has no call to run a function on the server's loop: `loop` gets there through
// the one public door that does, `operator<<(std::ostream&, const Server&)` at detail 2,
// which writes part of its report from within the loop: a stream whose buffer makes the
// posts on its first write from another thread. A measurement device, not for mxpva.
#include <sys/resource.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <pvxs/client.h>
#include <pvxs/nt.h>
#include <pvxs/server.h>
#include <pvxs/sharedpv.h>
#include <pvxs/source.h>
#include <pvxs/util.h>

#include "bench.h"

namespace {

using steady = std::chrono::steady_clock;

std::string name_of(size_t i) { return "BATCH:" + std::to_string(i); }

// ---------------------------------------------------------------- server side

// The PVs, behind a Source whose show() prints nothing (the report would list them all).
struct Quiet : pvxs::server::Source {
    std::shared_ptr<pvxs::server::Source> inner;
    explicit Quiet(std::shared_ptr<pvxs::server::Source> s) : inner(std::move(s)) {}
    void onSearch(Search& op) override { inner->onSearch(op); }
    void onCreate(std::unique_ptr<pvxs::server::ChannelControl>&& op) override {
        inner->onCreate(std::move(op));
    }
    List onList() override { return inner->onList(); }
    void show(std::ostream&) override {}
};

// A stream buffer that runs `work` on its first write from a thread other than `owner`.
struct OnLoop : std::streambuf {
    std::thread::id owner = std::this_thread::get_id();
    std::function<void()> work;
    bool done = false;
    void hit() {
        if (!done && std::this_thread::get_id() != owner) {
            done = true;
            work();
        }
    }
    int overflow(int c) override {
        hit();
        return c == EOF ? 0 : c;
    }
    std::streamsize xsputn(const char*, std::streamsize n) override {
        hit();
        return n;
    }
};

double cpu_self_s() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// The task id of this process's thread named `comm`, or empty.
std::string tid_named(const std::string& comm) {
    DIR* d = opendir("/proc/self/task");
    std::string found;
    while (auto* e = d ? readdir(d) : nullptr) {
        if (e->d_name[0] == '.') continue;
        std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/comm");
        std::string c;
        std::getline(f, c);
        if (c == comm) found = e->d_name;
    }
    if (d) closedir(d);
    return found;
}

struct ThreadStat {
    double cpu_s = 0;
    double switches = 0;
};

ThreadStat thread_stat(const std::string& tid) {
    ThreadStat s;
    std::ifstream stat("/proc/self/task/" + tid + "/stat");
    std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = all.rfind(')');
    std::istringstream rest(all.substr(close + 2));
    std::string field;
    // Fields after the name start at 3 (state); utime is 14 and stime 15.
    for (int k = 3; k <= 15 && rest >> field; k++) {
        if (k == 14 || k == 15) s.cpu_s += std::stod(field) / sysconf(_SC_CLK_TCK);
    }
    std::ifstream status("/proc/self/task/" + tid + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("voluntary_ctxt_switches:", 0) == 0 ||
            line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
            s.switches += std::stod(line.substr(line.find(':') + 1));
    }
    return s;
}

double thread_cpu_us() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

// Busy work of `us` of this thread's CPU time (not wall time: on a loaded machine the
// thread may be preempted meanwhile), so that it can be taken off the process's CPU.
void spin_us(double us) {
    if (us <= 0) return;
    const double end = thread_cpu_us() + us;
    while (thread_cpu_us() < end) {
    }
}

struct Server {
    pvxs::Value prototype = bench::double_prototype();
    std::vector<pvxs::server::SharedPV> pvs;
    pvxs::server::Server server;

    void post(uint64_t k) {
        auto v = prototype.cloneEmpty();
        v["value"] = double(k);
        v["alarm.severity"] = 0;
        v["timeStamp.secondsPastEpoch"] = int64_t(k);
        pvs[k % pvs.size()].post(v);
    }

    // Posts events [from, to) on the server's TCP thread, returning when done.
    void post_on_loop(uint64_t from, uint64_t to) {
        OnLoop buf;
        buf.work = [&] {
            for (uint64_t k = from; k < to; k++) post(k);
        };
        std::ostream strm(&buf);
        pvxs::Detailed detail(strm, 2);
        strm << server;
        if (!buf.done) throw std::runtime_error("the report never ran on the server's loop");
    }
};

struct Round {
    double posts = 0, seconds = 0, cpu_s = 0, tcp_cpu_s = 0, tcp_switches = 0, updates = 0;
};

Round round(Server& s, const std::string& mode, double seconds, double work_us, double rate,
            const std::string& tcp_tid, uint64_t& k) {
    Round r;
    const auto t0 = steady::now();
    const auto end = t0 + std::chrono::duration<double>(seconds);
    const double cpu0 = cpu_self_s();
    const auto tcp0 = thread_stat(tcp_tid);
    uint64_t posted = 0;
    while (steady::now() < end) {
        // The events due now: at RATE, those whose time has come (at least one, waiting
        // for it); as fast as possible, a turn of 64.
        uint64_t due = 64;
        if (rate > 0) {
            for (;;) {
                const double elapsed = std::chrono::duration<double>(steady::now() - t0).count();
                const auto by_now = uint64_t(elapsed * rate);
                if (by_now > posted) {
                    due = by_now - posted;
                    break;
                }
                std::this_thread::sleep_until(
                    t0 + std::chrono::duration_cast<steady::duration>(
                             std::chrono::duration<double>((posted + 1) / rate)));
            }
        }
        const uint64_t from = k, to = k + due;
        if (mode == "each") {
            for (; k < to; k++) {
                spin_us(work_us);
                s.post(k);
            }
        } else {
            spin_us(work_us * due);
            if (mode == "turn")
                for (; k < to; k++) s.post(k);
            else {
                s.post_on_loop(from, to);
                k = to;
            }
        }
        posted += due;
    }
    r.seconds = std::chrono::duration<double>(steady::now() - t0).count();
    r.posts = double(posted);
    r.cpu_s = cpu_self_s() - cpu0 - work_us * 1e-6 * r.posts;
    const auto tcp1 = thread_stat(tcp_tid);
    r.tcp_cpu_s = tcp1.cpu_s - tcp0.cpu_s;
    r.tcp_switches = tcp1.switches - tcp0.switches;
    return r;
}

int run(size_t n, double seconds, double work_us, double rate, int rounds) {
    Server s;
    auto builtin = pvxs::server::StaticSource::build();
    s.server = pvxs::server::Server(pvxs::server::Config::isolated());
    for (size_t i = 0; i < n; i++) {
        auto pv = pvxs::server::SharedPV::buildReadonly();
        auto initial = s.prototype.cloneEmpty();
        initial["value"] = 0.0;
        initial["display.form.choices"] = bench::form_choices();
        pv.open(initial);
        builtin.add(name_of(i), pv);
        s.pvs.push_back(pv);
    }
    s.server.addSource("batch", std::make_shared<Quiet>(builtin.source()));
    s.server.start();
    const std::string tcp_tid = tid_named("PVXTCP");
    if (tcp_tid.empty()) throw std::runtime_error("no thread named PVXTCP");

    // The client, in a process of its own.
    int to_child[2], from_child[2];
    if (pipe(to_child) || pipe(from_child)) throw std::runtime_error("pipe");
    pvxs::client::Config::defs_t defs;
    s.server.clientConfig().updateDefs(defs);
    for (const auto& kv : defs) setenv(kv.first.c_str(), kv.second.c_str(), 1);
    const std::string n_text = std::to_string(n);
    const pid_t child = fork();
    if (child == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        close(to_child[1]);
        close(from_child[0]);
        execl("/proc/self/exe", "pvxs_batch", "monitor", n_text.c_str(), nullptr);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    FILE* cin_ = fdopen(from_child[0], "r");
    FILE* cout_ = fdopen(to_child[1], "w");
    char line[256];
    auto expect = [&](const char* word) {
        while (std::fgets(line, sizeof line, cin_)) {
            if (std::strncmp(line, word, std::strlen(word)) == 0) return std::string(line);
        }
        throw std::runtime_error(std::string("the monitor ended before ") + word);
    };
    expect("READY");

    std::printf("pvxs_batch: N = %zu, %g s rounds, %g us of work per event, %s\n", n, seconds,
                work_us, rate > 0 ? (std::to_string(uint64_t(rate)) + " events/s").c_str()
                                  : "as fast as possible (turns of 64 events)");
    std::printf("| mode | posts/s | updates/s | CPU per post (us) | TCP thread CPU per post (us) | "
                "TCP thread switches per post |\n|---|---:|---:|---:|---:|---:|\n");
    std::fflush(stdout);
    uint64_t k = 0;
    for (int i = 0; i < rounds; i++) {
        for (const char* mode : {"each", "turn", "loop"}) {
            std::fprintf(cout_, "count\n");
            std::fflush(cout_);
            expect("count");
            auto r = round(s, mode, seconds, work_us, rate, tcp_tid, k);
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            std::fprintf(cout_, "count\n");
            std::fflush(cout_);
            const auto got = expect("count");
            r.updates = std::stod(got.substr(6));
            std::printf("| %s | %.0f | %.0f | %.2f | %.2f | %.3f |\n", mode, r.posts / r.seconds,
                        r.updates / r.seconds, r.cpu_s * 1e6 / r.posts,
                        r.tcp_cpu_s * 1e6 / r.posts, r.tcp_switches / r.posts);
            std::fflush(stdout);
        }
    }
    std::fclose(cout_);
    waitpid(child, nullptr, 0);
    s.server.stop();
    return 0;
}

// ---------------------------------------------------------------- client

int monitor(size_t n) {
    auto ctxt = pvxs::client::Config::fromEnv().build();
    bench::Counter c;
    c.watch(ctxt, n, name_of);
    std::printf("READY\n");
    std::fflush(stdout);
    std::string line;
    while (std::getline(std::cin, line)) {
        std::printf("count %llu\n", (unsigned long long)c.updates.exchange(0));
        std::fflush(stdout);
    }
    std::_Exit(0);
}

}  // namespace

int main(int argc, char* argv[]) {
    try {
        if (argc >= 6 && std::string(argv[1]) == "run")
            return run(std::stoul(argv[2]), std::stod(argv[3]), std::stod(argv[4]),
                       std::stod(argv[5]), argc >= 7 ? std::stoi(argv[6]) : 3);
        if (argc >= 3 && std::string(argv[1]) == "monitor") return monitor(std::stoul(argv[2]));
    } catch (std::exception& e) {
        std::fprintf(stderr, "pvxs_batch: %s\n", e.what());
        return 1;
    }
    std::fprintf(stderr, "usage: pvxs_batch run N SECONDS WORK_US RATE [ROUNDS] | monitor N\n");
    return 2;
}
