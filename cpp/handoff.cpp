// ExecOp::timerOneShot and pvxs::Timer are part of pvxs's "expert" API.
#define PVXS_ENABLE_EXPERT_API
#include "cpp/handoff.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <pvxs/util.h>

#include "cpp/value.h"
#include "mxpva/src/pva/ffi.rs.h"

namespace mxpva {
namespace handoff {
namespace {

using pvxs::server::ExecOp;

// One post (pv set: of `value`, or of what `proto` builds from `update`) or one put
// reply (op set).
struct Work {
    pvxs::server::SharedPV pv;
    pvxs::Value value;
    std::unique_ptr<ExecOp> op;
    std::string error;
    std::shared_ptr<Prototype> proto;
    std::unique_ptr<WireUpdate> update;
};

void note(std::vector<std::string>& failures, const char* what) {
    try {
        failures.emplace_back(what);
    } catch (...) {
    }
}

// Makes `batch` in order; one that fails does not stop the others.
void run(std::vector<Work>& batch, std::vector<std::string>& failures) {
    for (auto& w : batch) {
        try {
            if (w.op) {
                auto op = std::move(w.op);
                if (w.error.empty())
                    op->reply();
                else
                    op->error(w.error);
            } else if (w.proto && w.update) {
                auto& pv = w.pv;
                w.proto->build(*w.update, [&pv](const pvxs::Value& value) { pv.post(value); });
            } else {
                w.pv.post(w.value);
            }
        } catch (std::exception& e) {
            note(failures, e.what());
        }
    }
}

// How long a thread waits for the loop to run what it handed over before going on.
constexpr std::chrono::seconds kWaitForLoop{5};

// At most about this many posts and replies wait for the loop: a thread that hands over
// more waits until the loop has made half of them, so nothing queues without bound. The
// bridge posts less long before (it stops a turn's posts while handoff_waiting() is
// past its own bound, and coalesces what is left, issue 23): this is the net for what
// it posts without a budget (a session's first values).
constexpr size_t kMaxPending = 65536;

// The work handed over to pvxs's loop, in order, and the one timer at a time that runs
// it there. Never destroyed: a timer may fire while the process exits.
class Runner {
public:
    static Runner& get() {
        static Runner* r = new Runner;
        return *r;
    }

    bool busy() const { return pending_.load(std::memory_order_acquire) != 0; }
    size_t pending() const { return pending_.load(std::memory_order_acquire); }

    bool attached() {
        std::lock_guard<std::mutex> g(lock_);
        return static_cast<bool>(anchor_);
    }

    void attach(std::unique_ptr<ExecOp>&& anchor) {
        std::lock_guard<std::mutex> g(lock_);
        if (!anchor_) anchor_ = std::shared_ptr<ExecOp>(std::move(anchor));
    }

    // Takes `batch`'s work (leaving its room): queued for the loop, or, with no loop,
    // made here once what was queued before has run.
    void submit(std::vector<Work>& batch, std::vector<std::string>& failures) {
        if (batch.empty()) return;
        std::shared_ptr<ExecOp> anchor;
        uint64_t k = 0;
        {
            std::unique_lock<std::mutex> g(lock_);
            if (anchor_ && pending_.load(std::memory_order_acquire) > kMaxPending &&
                std::this_thread::get_id() != loop_thread_) {
                // The loop is behind: wait for it, as a post made here would.
                if (!idle_cv_.wait_for(g, kWaitForLoop, [this] {
                        return pending_.load(std::memory_order_acquire) <= kMaxPending / 2 ||
                               !anchor_;
                    }))
                    note(failures, "pvxs's loop made no room for posts and put replies in 5 s");
            }
            if (!anchor_) {
                // No loop: made here, once what was handed over before has run.
                wait_idle_locked(g, failures);
                g.unlock();
                run(batch, failures);
                batch.clear();
                return;
            }
            for (auto& w : batch) queue_.push_back(std::move(w));
            pending_.fetch_add(batch.size(), std::memory_order_acq_rel);
            batch.clear();
            if (armed_) return;
            armed_ = true;
            k = ++seq_;
            anchor = anchor_;
        }
        arm(*anchor, k, failures);
    }

    // Waits until everything handed over has run (on the loop itself: runs it here).
    void wait_idle(std::vector<std::string>& failures) {
        std::unique_lock<std::mutex> g(lock_);
        wait_idle_locked(g, failures);
    }

    // The loop's server stops: what waits runs first (there, or here if it cannot).
    void detach(std::vector<std::string>& failures) {
        std::vector<std::pair<uint64_t, pvxs::Timer>> timers;
        std::shared_ptr<ExecOp> anchor;
        {
            std::unique_lock<std::mutex> g(lock_);
            wait_idle_locked(g, failures);
            anchor = std::move(anchor_);
            timers.swap(timers_);
            // What a stuck loop did not take in time runs here; nothing waits for it.
            if (!queue_.empty()) run_rest_here(g, failures);
        }
        // Each cancel waits for the loop once: at most a few.
        timers.clear();
        anchor.reset();
    }

    void take_failures(std::vector<std::string>& out) {
        std::lock_guard<std::mutex> g(lock_);
        for (auto& f : failures_) out.push_back(std::move(f));
        failures_.clear();
    }

private:
    Runner() = default;

    // Starts a timer that runs the queue on the anchor's loop. From another thread this
    // waits for the loop to take it once (pvxs's evbase::call); on the loop it does not.
    void arm(ExecOp& anchor, uint64_t k, std::vector<std::string>& failures) {
        try {
            pvxs::Timer t = anchor.timerOneShot(0.0, [this, k]() { fire(k); });
            std::lock_guard<std::mutex> g(lock_);
            timers_.emplace_back(k, t);
        } catch (std::exception& e) {
            // The loop is gone: nothing more goes there, and what waits runs here.
            note(failures, e.what());
            std::unique_lock<std::mutex> g(lock_);
            if (anchor_.get() == &anchor) anchor_.reset();
            run_rest_here(g, failures);
        }
    }

    // Runs the queue on this thread, once the loop runs none of it (or after the wait
    // for that), and nothing is armed any more. Returns with `g` locked.
    void run_rest_here(std::unique_lock<std::mutex>& g, std::vector<std::string>& failures) {
        running_cv_.wait_for(g, kWaitForLoop, [this] { return !running_; });
        std::vector<Work> left;
        left.swap(queue_);
        armed_ = false;
        g.unlock();
        std::vector<std::string> failed;
        run(left, failed);
        for (auto& f : failed) note(failures, f.c_str());
        failed.clear();
        done(left.size(), failed);
        g.lock();
    }

    // On the loop: runs what was queued, then re-arms if more came meanwhile (the
    // loop serves its sockets between two timers).
    void fire(uint64_t k) {
        std::vector<Work> todo;
        std::vector<pvxs::Timer> old;
        {
            std::lock_guard<std::mutex> g(lock_);
            loop_thread_ = std::this_thread::get_id();
            todo.swap(queue_);
            running_ = true;
            // Timers before this one have fired: release them here, where their
            // cancel does not wait.
            auto it = timers_.begin();
            while (it != timers_.end()) {
                if (it->first < k) {
                    old.push_back(it->second);
                    it = timers_.erase(it);
                } else {
                    ++it;
                }
            }
        }
        old.clear();
        std::vector<std::string> failures;
        run(todo, failures);
        const size_t n = todo.size();
        todo.clear();
        std::shared_ptr<ExecOp> anchor;
        uint64_t next = 0;
        {
            std::lock_guard<std::mutex> g(lock_);
            running_ = false;
            if (!queue_.empty() && anchor_) {
                next = ++seq_;
                anchor = anchor_;
            } else {
                armed_ = false;
            }
        }
        running_cv_.notify_all();
        if (anchor) arm(*anchor, next, failures);
        done(n, failures);
    }

    void done(size_t n, std::vector<std::string>& failures) {
        {
            std::lock_guard<std::mutex> g(lock_);
            pending_.fetch_sub(n, std::memory_order_acq_rel);
            for (auto& f : failures) failures_.push_back(std::move(f));
        }
        idle_cv_.notify_all();
    }

    void wait_idle_locked(std::unique_lock<std::mutex>& g, std::vector<std::string>& failures) {
        if (pending_.load(std::memory_order_acquire) == 0) return;
        if (std::this_thread::get_id() == loop_thread_ && !running_) {
            // On the loop between two timers: the queue cannot run while this waits.
            std::vector<Work> todo;
            todo.swap(queue_);
            g.unlock();
            run(todo, failures);
            g.lock();
            pending_.fetch_sub(todo.size(), std::memory_order_acq_rel);
            return;
        }
        if (!idle_cv_.wait_for(g, kWaitForLoop,
                               [this] { return pending_.load(std::memory_order_acquire) == 0; }))
            note(failures, "posts and put replies still wait for pvxs's loop after 5 s");
    }

    std::mutex lock_;
    std::condition_variable idle_cv_;
    std::condition_variable running_cv_;
    std::shared_ptr<ExecOp> anchor_;
    std::vector<Work> queue_;
    // A timer is started and has not yet taken the queue for the last time.
    bool armed_ = false;
    // fire() runs a batch on the loop.
    bool running_ = false;
    // Posts and replies queued or running.
    std::atomic<size_t> pending_{0};
    uint64_t seq_ = 0;
    std::vector<std::pair<uint64_t, pvxs::Timer>> timers_;
    std::vector<std::string> failures_;
    std::thread::id loop_thread_;
};

thread_local bool t_collecting = false;
thread_local std::vector<Work> t_collected;
thread_local std::vector<std::string> t_failures;

}  // namespace

bool takes() { return t_collecting || Runner::get().busy(); }

size_t waiting() { return Runner::get().pending() + t_collected.size(); }

namespace {
// Collected for the turn's end, or, outside a turn, handed over now (behind what waits).
void collect(Work&& w) {
    t_collected.push_back(std::move(w));
    if (!t_collecting) Runner::get().submit(t_collected, t_failures);
}
}  // namespace

void post(const pvxs::server::SharedPV& pv, pvxs::Value&& value) {
    collect(Work{pv, std::move(value), nullptr, std::string(), nullptr, nullptr});
}

void post_update(const pvxs::server::SharedPV& pv, std::shared_ptr<Prototype> proto,
                 std::unique_ptr<WireUpdate>&& update) {
    collect(Work{pv, pvxs::Value(), nullptr, std::string(), std::move(proto), std::move(update)});
}

void reply(std::unique_ptr<ExecOp>&& op, std::string&& error) {
    collect(Work{pvxs::server::SharedPV(), pvxs::Value(), std::move(op), std::move(error),
                 nullptr, nullptr});
}

void settle() {
    auto& runner = Runner::get();
    runner.submit(t_collected, t_failures);
    runner.wait_idle(t_failures);
}

void attach_loop(std::unique_ptr<ExecOp>&& anchor) { Runner::get().attach(std::move(anchor)); }

bool loop_attached() { return Runner::get().attached(); }

void detach_loop() {
    auto& runner = Runner::get();
    runner.submit(t_collected, t_failures);
    runner.detach(t_failures);
}

}  // namespace handoff

void handoff_begin() { handoff::t_collecting = true; }

size_t handoff_waiting() { return handoff::waiting(); }

rust::Vec<rust::String> handoff_end() {
    handoff::t_collecting = false;
    handoff::Runner::get().submit(handoff::t_collected, handoff::t_failures);
    handoff::Runner::get().take_failures(handoff::t_failures);
    rust::Vec<rust::String> out;
    for (const auto& f : handoff::t_failures) out.push_back(rust::String::lossy(f.data(), f.size()));
    handoff::t_failures.clear();
    return out;
}

}  // namespace mxpva
