// The pvxs side of the end-to-end benchmark (benches/e2e/main.rs), written directly
// against pvxs. Server and client settings come from EPICS_PVAS_* / EPICS_PVA_*.
//
//   e2e limit PREFIX N     The limit: serve N writable float64 NTScalar PVs PREFIX0..
//                          PREFIX<N-1> (valid value 0 from the start), print "READY <unix ns>", then
//                          obey stdin:
//                            burst M      post values 0..M-1 round robin, as fast as
//                                         possible, each stamped with the time of its
//                                         post; print "done"
//                            rate M R     the same at R posts per second; print "done"
//                            samples K F  post K values F, F+1, ... to each PV in turn
//                                         (PV 0 all K, then PV 1, ...), as fast as
//                                         possible, each stamped with the time of its
//                                         post; print "done"
//                          A put is posted and answered at once (the mailbox).
//   e2e monitor PREFIX N   Monitor PREFIX0..PREFIX<N-1>; print "READY <unix ns> <valid>" once
//                          every PV has shown a value that is not INVALID (or after 60 s
//                          with fewer valid), then obey stdin (`monitor PREFIX N PACE`:
//                          subscribe PACE PVs at a time, each batch once the one before
//                          has every value):
//                            count M SECS wait (at most SECS) for the value M-1; print
//                                         "done <updates> <unix ns of the last update>
//                                         <1 if M-1 was seen, else 0> <fewest updates
//                                         of one PV> <longest ns between two updates
//                                         of one PV>"
//                            quiet MS SECS
//                                         wait (at most SECS) until no update came for
//                                         MS ms; print "done <updates meanwhile>"
//                            lat          record now - timeStamp of every update from here
//                            stop FILE    stop recording, write the latencies (us, one a
//                                         line) to FILE, print "done <count>"
//   e2e queued PREFIX N Q  Monitor PREFIX0..PREFIX<N-1> with a queue of Q updates
//                          (record[queueSize=Q]); print "READY <unix ns> <valid>" as
//                          `monitor` does, then obey stdin:
//                            samples M F SECS
//                                         print "armed", wait (at most SECS) until M
//                                         updates of value F or more came (each PV's
//                                         values F, F+1, ...); print "done <updates>
//                                         <unix ns of the last> <gaps> <backwards>
//                                         <stale> <unix ns of the first>", where a gap is an update above the
//                                         next value its PV should show (samples lost),
//                                         backwards one below it (out of order), and
//                                         stale one below F (not counted)
//   e2e first PREFIX FROM N
//                          Monitor PREFIX<FROM>..PREFIX<FROM+N-1> (all at once) and print, per
//                          PV, "first <i> <ns from creating its monitor to its first value>
//                          <severity of that value>", then "READY <unix ns>" once every PV
//                          has shown one (or after 60 s with fewer); then keep watching until
//                          stdin closes.
//   e2e get NAME           Read NAME once (5 s at most) and print "value <its value field>"
//                          (mxpva's status counters).
//   e2e put PREFIX W SECS FILE
//                          W writers, writer w putting to PREFIX<w> in a loop (one put in
//                          flight each) for SECS; write each round trip (us, one a line)
//                          to FILE; print "done <puts> <errors> <first error>".
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <pvxs/client.h>
#include <pvxs/nt.h>
#include <pvxs/server.h>
#include <pvxs/sharedpv.h>

#include "bench.h"

namespace {

using steady = std::chrono::steady_clock;

int64_t unix_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void say(const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
}

// The commands on stdin, a line each: `cmd` is the line's first word, `words` the rest.
struct Commands {
    std::string cmd;
    std::istringstream words;

    // Reads the next line; false once stdin is closed.
    bool next() {
        std::string line;
        if (!std::getline(std::cin, line)) return false;
        words = std::istringstream(line);
        cmd.clear();
        words >> cmd;
        return true;
    }
};

void write_lines(const std::string& file, const std::vector<double>& values) {
    std::ofstream out(file);
    for (double v : values) out << v << '\n';
}

// ---------------------------------------------------------------- limit server

struct Limit {
    pvxs::Value prototype = bench::double_prototype();
    std::vector<pvxs::server::SharedPV> pvs;

    // Event `k` of a stream: value k to the PVs round robin.
    void post(size_t k) { post_to(k % pvs.size(), double(k)); }

    // `value` to PV `i`, stamped with the time of its post (also one sample of a
    // buffered PV).
    void post_to(size_t i, double value) {
        auto v = prototype.cloneEmpty();
        const int64_t now = unix_ns();
        v["value"] = value;
        v["alarm.severity"] = 0;
        v["alarm.status"] = 0;
        v["alarm.message"] = "";
        v["timeStamp.secondsPastEpoch"] = now / 1000000000;
        v["timeStamp.nanoseconds"] = int32_t(now % 1000000000);
        pvs[i].post(v);
    }
};

int limit(const std::string& prefix, size_t n) {
    Limit lim;
    auto server = pvxs::server::Config::fromEnv().build();
    // One choices array shared by every PV, as mxpva's shim shares it.
    const auto choices = bench::form_choices();
    for (size_t i = 0; i < n; i++) {
        auto pv = pvxs::server::SharedPV::buildMailbox();
        auto initial = lim.prototype.cloneEmpty();
        initial["value"] = 0.0;
        initial["display.form.choices"] = choices;
        pv.open(initial);
        server.addPV(prefix + std::to_string(i), pv);
        lim.pvs.push_back(pv);
    }
    server.start();
    say("READY " + std::to_string(unix_ns()));
    Commands c;
    while (c.next()) {
        const std::string& cmd = c.cmd;
        uint64_t m = 0;
        double rate = 0;
        c.words >> m >> rate;
        if (cmd == "burst") {
            for (uint64_t k = 0; k < m; k++) lim.post(k);
        } else if (cmd == "samples") {
            // `m` is K, `rate` the first value.
            for (size_t i = 0; i < lim.pvs.size(); i++)
                for (uint64_t k = 0; k < m; k++) lim.post_to(i, rate + double(k));
        } else if (cmd == "rate") {
            const auto start = steady::now();
            for (uint64_t k = 0; k < m; k++) {
                std::this_thread::sleep_until(
                    start + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(k / rate)));
                lim.post(k);
            }
        } else {
            continue;
        }
        say("done");
    }
    server.stop();
    return 0;
}

// ---------------------------------------------------------------- monitor clients

// The event handler of one PV's monitor for `w` (a Watch or a Queued): it counts
// connects; the PV's first value that is not INVALID counts it valid; each value after
// that goes to `update(value, unix ns of its arrival)`, with `w.lock` held. `what`
// names the monitor in its errors.
template <class State, class Update>
auto on_updates(State& w, const char* what, Update update) {
    auto seen = std::make_shared<bool>(false);
    return [&w, seen, what, update](pvxs::client::Subscription& sub) {
        for (;;) {
            try {
                auto v = sub.pop();
                if (!v) break;
                const int64_t now = unix_ns();
                std::lock_guard<std::mutex> g(w.lock);
                if (!*seen) {
                    if (v["alarm.severity"].as<int32_t>() >= 3) continue;
                    *seen = true;
                    w.valid++;
                    w.changed.notify_all();
                    continue;
                }
                update(v, now);
            } catch (pvxs::client::Connected&) {
                std::lock_guard<std::mutex> g(w.lock);
                w.connected++;
                w.changed.notify_all();
            } catch (std::exception& e) {
                std::fprintf(stderr, "%s: %s\n", what, e.what());
                break;
            }
        }
    };
}

struct Watch {
    std::mutex lock;
    std::condition_variable changed;
    size_t connected = 0;    // channels connected
    size_t valid = 0;        // PVs that have shown a valid value
    uint64_t updates = 0;    // since the last `count`
    int64_t last_ns = 0;     // unix time of the last update
    double marker = -1;      // the value `count` waits for
    bool marker_seen = false;
    bool recording = false;  // `lat`
    std::vector<double> latencies_us;
    // Per PV, since the last `count`: updates, the time of the last one, and the longest
    // time between two of its updates (a gap in its stream).
    std::vector<uint64_t> per_pv;
    std::vector<int64_t> last_pv_ns;
    int64_t max_gap_ns = 0;
};

// Channels the monitor creates before it waits for them to connect.
constexpr size_t kBatch = 5000;
// How long the monitor waits for every PV before it reports READY with fewer.
constexpr int kReadyLimitS = 60;

// `pace` > 0: create the channels `pace` at a time, each batch once the one before has a
// value of every PV (the RSS rows: the server's transient buffers then hold one batch's
// values, not thousands, so RSS is read nearer what the monitored PVs hold; issue 23).
int monitor(const std::string& prefix, size_t n, size_t pace = 0) {
    auto ctxt = pvxs::client::Config::fromEnv().build();
    Watch w;
    w.per_pv.assign(n, 0);
    w.last_pv_ns.assign(n, 0);
    std::vector<std::shared_ptr<pvxs::client::Subscription>> subs;
    subs.reserve(n);
    for (size_t i = 0; i < n; i++) {
        auto update = [&w, i](pvxs::Value& v, int64_t now) {
            w.updates++;
            w.last_ns = now;
            w.per_pv[i]++;
            if (w.last_pv_ns[i] != 0 && now - w.last_pv_ns[i] > w.max_gap_ns)
                w.max_gap_ns = now - w.last_pv_ns[i];
            w.last_pv_ns[i] = now;
            if (w.recording) {
                const int64_t stamp = v["timeStamp.secondsPastEpoch"].as<int64_t>() * 1000000000 +
                                      v["timeStamp.nanoseconds"].as<int64_t>();
                w.latencies_us.push_back(double(now - stamp) / 1000.0);
            }
            if (v["value"].as<double>() == w.marker) {
                w.marker_seen = true;
                w.changed.notify_all();
            }
        };
        subs.push_back(ctxt.monitor(prefix + std::to_string(i))
                           .maskConnected(false)
                           .maskDisconnected(true)
                           .event(on_updates(w, "monitor error", update))
                           .exec());
        // pvxs searches all new channels at once; with tens of thousands, replies are
        // lost and retried with backoff. Connect in batches instead.
        if (pace > 0 && ((i + 1) % pace == 0 || i + 1 == n)) {
            std::unique_lock<std::mutex> g(w.lock);
            w.changed.wait_for(g, std::chrono::seconds(10), [&] { return w.valid > i; });
        } else if ((i + 1) % kBatch == 0) {
            std::unique_lock<std::mutex> g(w.lock);
            w.changed.wait_for(g, std::chrono::seconds(10), [&] { return w.connected > i; });
        }
    }
    {
        std::unique_lock<std::mutex> g(w.lock);
        const auto give_up = steady::now() + std::chrono::seconds(kReadyLimitS);
        while (!w.changed.wait_for(g, std::chrono::seconds(5), [&] { return w.valid >= n; })) {
            std::fprintf(stderr, "monitor: %zu of %zu PVs valid\n", w.valid, n);
            if (steady::now() > give_up) break;
        }
    }
    say("READY " + std::to_string(unix_ns()) + " " + std::to_string(w.valid));
    Commands c;
    while (c.next()) {
        const std::string& cmd = c.cmd;
        auto& words = c.words;
        if (cmd == "count") {
            uint64_t m = 0;
            double secs = 0;
            words >> m >> secs;
            std::unique_lock<std::mutex> g(w.lock);
            w.updates = 0;
            std::fill(w.per_pv.begin(), w.per_pv.end(), 0);
            std::fill(w.last_pv_ns.begin(), w.last_pv_ns.end(), 0);
            w.max_gap_ns = 0;
            w.marker = double(m - 1);
            w.marker_seen = false;
            w.changed.wait_for(g, std::chrono::duration<double>(secs), [&] { return w.marker_seen; });
            // Updates still in flight to other PVs: let them land.
            g.unlock();
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            g.lock();
            const uint64_t fewest =
                w.per_pv.empty() ? 0 : *std::min_element(w.per_pv.begin(), w.per_pv.end());
            say("done " + std::to_string(w.updates) + " " + std::to_string(w.last_ns) + " " +
                (w.marker_seen ? "1" : "0") + " " + std::to_string(fewest) + " " +
                std::to_string(w.max_gap_ns));
            w.marker = -1;
        } else if (cmd == "quiet") {
            double ms = 0, secs = 0;
            words >> ms >> secs;
            const auto give_up = steady::now() + std::chrono::duration_cast<steady::duration>(
                                                     std::chrono::duration<double>(secs));
            std::unique_lock<std::mutex> g(w.lock);
            const uint64_t before = w.updates;
            while (steady::now() < give_up && unix_ns() - w.last_ns < int64_t(ms * 1e6)) {
                g.unlock();
                std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms / 4));
                g.lock();
            }
            say("done " + std::to_string(w.updates - before));
        } else if (cmd == "lat") {
            std::lock_guard<std::mutex> g(w.lock);
            w.latencies_us.clear();
            w.recording = true;
        } else if (cmd == "stop") {
            std::string file;
            words >> file;
            std::vector<double> got;
            {
                std::lock_guard<std::mutex> g(w.lock);
                w.recording = false;
                got.swap(w.latencies_us);
            }
            write_lines(file, got);
            say("done " + std::to_string(got.size()));
        }
    }
    // Tearing down tens of thousands of subscriptions (some still searching, when a server
    // gave up) takes long and measures nothing.
    std::_Exit(0);
}

// ---------------------------------------------------------------- queued monitor

struct Queued {
    std::mutex lock;
    std::condition_variable changed;
    size_t connected = 0;
    size_t valid = 0;
    uint64_t updates = 0;  // since the last `samples`
    uint64_t wanted = 0;   // what `samples` waits for
    int64_t first_ns = 0;  // the first counted update of this `samples`
    int64_t last_ns = 0;
    uint64_t gaps = 0;
    uint64_t backwards = 0;
    uint64_t stale = 0;
    double first = 0;          // the first value of this `samples`
    std::vector<double> next;  // per PV, the value it should show next
};

int queued(const std::string& prefix, size_t n, int32_t queue) {
    auto ctxt = pvxs::client::Config::fromEnv().build();
    Queued w;
    w.next.assign(n, 0.0);
    std::vector<std::shared_ptr<pvxs::client::Subscription>> subs;
    subs.reserve(n);
    for (size_t i = 0; i < n; i++) {
        auto update = [&w, i](pvxs::Value& v, int64_t now) {
            const double x = v["value"].as<double>();
            if (x < w.first) {
                w.stale++;
                return;
            }
            if (x > w.next[i]) w.gaps++;
            if (x < w.next[i]) w.backwards++;
            if (x >= w.next[i]) w.next[i] = x + 1;
            if (w.updates++ == 0) w.first_ns = now;
            w.last_ns = now;
            if (w.updates == w.wanted) w.changed.notify_all();
        };
        subs.push_back(ctxt.monitor(prefix + std::to_string(i))
                           .record("queueSize", queue)
                           .maskConnected(false)
                           .maskDisconnected(true)
                           .event(on_updates(w, "queued monitor error", update))
                           .exec());
    }
    {
        std::unique_lock<std::mutex> g(w.lock);
        w.changed.wait_for(g, std::chrono::seconds(kReadyLimitS), [&] { return w.valid >= n; });
    }
    say("READY " + std::to_string(unix_ns()) + " " + std::to_string(w.valid));
    Commands c;
    while (c.next()) {
        const std::string& cmd = c.cmd;
        auto& words = c.words;
        if (cmd != "samples") continue;
        uint64_t m = 0;
        double first = 0, secs = 0;
        words >> m >> first >> secs;
        std::unique_lock<std::mutex> g(w.lock);
        w.updates = 0;
        w.first_ns = 0;
        w.gaps = 0;
        w.backwards = 0;
        w.stale = 0;
        w.first = first;
        std::fill(w.next.begin(), w.next.end(), first);
        w.wanted = m;
        say("armed");
        w.changed.wait_for(g, std::chrono::duration<double>(secs), [&] { return w.updates >= m; });
        // Anything past M (there should be none) would land now.
        g.unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        g.lock();
        say("done " + std::to_string(w.updates) + " " + std::to_string(w.last_ns) + " " +
            std::to_string(w.gaps) + " " + std::to_string(w.backwards) + " " +
            std::to_string(w.stale) + " " + std::to_string(w.first_ns));
        w.wanted = 0;
    }
    std::_Exit(0);
}

// ---------------------------------------------------------------- first values

int first(const std::string& prefix, size_t from, size_t n) {
    auto ctxt = pvxs::client::Config::fromEnv().build();
    std::mutex lock;
    std::condition_variable changed;
    size_t seen = 0;
    std::vector<std::shared_ptr<pvxs::client::Subscription>> subs;
    subs.reserve(n);
    for (size_t i = 0; i < n; i++) {
        const auto t0 = steady::now();
        auto got = std::make_shared<bool>(false);
        subs.push_back(ctxt.monitor(prefix + std::to_string(from + i))
                           .maskConnected(true)
                           .maskDisconnected(true)
                           .event([&, got, t0, i](pvxs::client::Subscription& sub) {
                               for (;;) {
                                   try {
                                       auto v = sub.pop();
                                       if (!v) break;
                                       if (*got) continue;
                                       *got = true;
                                       const auto ns =
                                           std::chrono::duration_cast<std::chrono::nanoseconds>(
                                               steady::now() - t0)
                                               .count();
                                       say("first " + std::to_string(from + i) + " " +
                                           std::to_string(ns) + " " +
                                           std::to_string(v["alarm.severity"].as<int32_t>()));
                                       std::lock_guard<std::mutex> g(lock);
                                       seen++;
                                       changed.notify_all();
                                   } catch (std::exception& e) {
                                       std::fprintf(stderr, "first: %s\n", e.what());
                                       break;
                                   }
                               }
                           })
                           .exec());
    }
    {
        std::unique_lock<std::mutex> g(lock);
        changed.wait_for(g, std::chrono::seconds(kReadyLimitS), [&] { return seen >= n; });
    }
    say("READY " + std::to_string(unix_ns()));
    std::string line;
    while (std::getline(std::cin, line)) {
    }
    std::_Exit(0);
}

// ---------------------------------------------------------------- one read

int get(const std::string& name) {
    auto ctxt = pvxs::client::Config::fromEnv().build();
    auto v = ctxt.get(name).exec()->wait(5.0);
    say("value " + std::to_string(v["value"].as<double>()));
    std::_Exit(0);
}

// ---------------------------------------------------------------- put client

struct Writers {
    pvxs::client::Context ctxt;
    std::string prefix;
    steady::time_point end;
    std::mutex lock;
    std::condition_variable finished;
    size_t running = 0;
    uint64_t errors = 0;
    std::string first_error;
    std::vector<double> rtt_us;
    // The put in flight per writer, and the one before it: a put's handle is released
    // only after the put that followed it has completed, never inside its own callback.
    std::vector<std::shared_ptr<pvxs::client::Operation>> ops, previous;

    // One put on writer w's PV; the next starts from its completion.
    void put(size_t w, double x) {
        const auto t0 = steady::now();
        auto op = ctxt.put(prefix + std::to_string(w))
                      .set("value", x)
                      .syncCancel(false)
                      .result([this, w, x, t0](pvxs::client::Result&& r) {
                          const double us =
                              std::chrono::duration<double, std::micro>(steady::now() - t0).count();
                          bool again;
                          {
                              std::lock_guard<std::mutex> g(lock);
                              try {
                                  r();
                                  rtt_us.push_back(us);
                              } catch (std::exception& e) {
                                  if (errors++ == 0) first_error = e.what();
                              }
                              again = steady::now() < end;
                              if (!again && --running == 0) finished.notify_all();
                          }
                          if (again) put(w, x + 1);
                      })
                      .exec();
        std::lock_guard<std::mutex> g(lock);
        previous[w] = std::move(ops[w]);
        ops[w] = std::move(op);
    }
};

int put(const std::string& prefix, size_t writers, double secs, const std::string& file) {
    Writers w;
    w.ctxt = pvxs::client::Config::fromEnv().build();
    w.prefix = prefix;
    w.ops.resize(writers);
    w.previous.resize(writers);
    // Connect every channel first, so the timed puts do not include searches.
    for (size_t i = 0; i < writers; i++) w.ctxt.get(prefix + std::to_string(i)).exec()->wait(10.0);
    w.end = steady::now() + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(secs));
    w.running = writers;
    for (size_t i = 0; i < writers; i++) w.put(i, double(i));
    std::unique_lock<std::mutex> g(w.lock);
    w.finished.wait_for(g, std::chrono::duration<double>(secs + 30), [&] { return w.running == 0; });
    write_lines(file, w.rtt_us);
    say("done " + std::to_string(w.rtt_us.size()) + " " + std::to_string(w.errors) + " " +
        (w.first_error.empty() ? "-" : w.first_error));
    std::fflush(stdout);
    std::_Exit(0);  // operations may still be in flight on a timeout; do not wait for them
}

}  // namespace

int main(int argc, char* argv[]) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "limit" && argc == 4) return limit(argv[2], std::stoul(argv[3]));
        if (mode == "monitor" && argc == 4) return monitor(argv[2], std::stoul(argv[3]));
        if (mode == "monitor" && argc == 5)
            return monitor(argv[2], std::stoul(argv[3]), std::stoul(argv[4]));
        if (mode == "queued" && argc == 5)
            return queued(argv[2], std::stoul(argv[3]), int32_t(std::stol(argv[4])));
        if (mode == "first" && argc == 5)
            return first(argv[2], std::stoul(argv[3]), std::stoul(argv[4]));
        if (mode == "get" && argc == 3) return get(argv[2]);
        if (mode == "put" && argc == 6)
            return put(argv[2], std::stoul(argv[3]), std::stod(argv[4]), argv[5]);
    } catch (std::exception& e) {
        std::fprintf(stderr, "e2e: %s\n", e.what());
        return 1;
    }
    std::fprintf(stderr,
                 "usage: e2e limit PREFIX N | monitor PREFIX N [PACE] | queued PREFIX N QUEUE | first PREFIX FROM N | "
                 "get NAME | put PREFIX WRITERS SECS FILE\n");
    return 2;
}
