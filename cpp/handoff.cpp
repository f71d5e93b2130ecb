#include "cpp/handoff.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

#include "mxpva/src/pva/ffi.rs.h"

namespace mxpva {
namespace handoff {
namespace {

// A put arriving this recently means more are coming: the loop will take the queue.
constexpr std::chrono::nanoseconds FLOWING{std::chrono::microseconds(200)};
// Failure messages kept for handoff_failures(), at most.
constexpr size_t MAX_FAILURES = 16;

// One post (pv set) or one put reply (op set).
struct Work {
    pvxs::server::SharedPV pv;
    pvxs::Value value;
    std::unique_ptr<pvxs::server::ExecOp> op;
    std::string error;
};

struct Queue {
    // Held while a batch runs: one runner at a time, batches in the order published.
    std::mutex run;
    // Guards work and failures.
    std::mutex lock;
    std::vector<Work> work;
    std::vector<std::string> failures;
    std::atomic<bool> pending{false};
    std::atomic<int64_t> last_put{0};
    // Posts and replies queued that the loop ran, and that another thread ran.
    std::atomic<uint64_t> on_loop{0}, elsewhere{0};
};

// Never destroyed: work still queued at exit must not run from a static destructor.
Queue& queue() {
    static Queue* q = new Queue;
    return *q;
}

thread_local bool t_collecting = false;
thread_local std::vector<Work> t_collected;

int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void run_batch(std::vector<Work>& batch) {
    for (auto& w : batch) {
        try {
            if (w.op) {
                auto op = std::move(w.op);
                if (w.error.empty())
                    op->reply();
                else
                    op->error(w.error);
            } else {
                w.pv.post(w.value);
            }
        } catch (std::exception& e) {
            try {
                auto& q = queue();
                std::lock_guard<std::mutex> g(q.lock);
                if (q.failures.size() < MAX_FAILURES) q.failures.emplace_back(e.what());
            } catch (...) {
            }
        }
    }
    batch.clear();
}

// Runs the queue; with `wait`, after any batch another thread is running.
bool run_queued(bool wait, bool loop) {
    auto& q = queue();
    std::unique_lock<std::mutex> r(q.run, std::defer_lock);
    if (wait)
        r.lock();
    else if (!r.try_lock())
        return false;
    std::vector<Work> batch;
    {
        std::lock_guard<std::mutex> g(q.lock);
        batch.swap(q.work);
        q.pending.store(false, std::memory_order_relaxed);
    }
    bool any = !batch.empty();
    (loop ? q.on_loop : q.elsewhere).fetch_add(batch.size(), std::memory_order_relaxed);
    run_batch(batch);
    return any;
}

}  // namespace

bool collecting() { return t_collecting; }

void post(const pvxs::server::SharedPV& pv, pvxs::Value&& value) {
    t_collected.push_back(Work{pv, std::move(value), nullptr, std::string()});
}

void reply(std::unique_ptr<pvxs::server::ExecOp>&& op, std::string&& error) {
    t_collected.push_back(Work{pvxs::server::SharedPV(), pvxs::Value(), std::move(op), std::move(error)});
}

void settle() {
    if (queue().pending.load(std::memory_order_acquire)) run_queued(true, false);
    if (!t_collected.empty()) {
        std::lock_guard<std::mutex> r(queue().run);
        run_batch(t_collected);
    }
}

void take() {
    auto& q = queue();
    q.last_put.store(now_ns(), std::memory_order_relaxed);
    if (q.pending.load(std::memory_order_acquire)) run_queued(false, true);
}

}  // namespace handoff

void handoff_begin() { handoff::t_collecting = true; }

bool handoff_publish() {
    using namespace handoff;
    t_collecting = false;
    if (t_collected.empty()) return true;
    auto& q = queue();
    {
        std::lock_guard<std::mutex> g(q.lock);
        if (q.work.empty()) {
            q.work.swap(t_collected);
        } else {
            for (auto& w : t_collected) q.work.push_back(std::move(w));
            t_collected.clear();
        }
        q.pending.store(true, std::memory_order_release);
    }
    auto since = now_ns() - q.last_put.load(std::memory_order_relaxed);
    return since < FLOWING.count();
}

bool handoff_flush() {
    if (!handoff::queue().pending.load(std::memory_order_acquire)) return false;
    return handoff::run_queued(true, false);
}

uint64_t handoff_run_on_loop() { return handoff::queue().on_loop.load(std::memory_order_relaxed); }

uint64_t handoff_run_elsewhere() {
    return handoff::queue().elsewhere.load(std::memory_order_relaxed);
}

bool handoff_pending() { return handoff::queue().pending.load(std::memory_order_acquire); }

rust::Vec<rust::String> handoff_failures() {
    rust::Vec<rust::String> out;
    std::vector<std::string> failures;
    {
        auto& q = handoff::queue();
        std::lock_guard<std::mutex> g(q.lock);
        failures.swap(q.failures);
    }
    for (const auto& f : failures) out.push_back(rust::String::lossy(f.data(), f.size()));
    return out;
}

}  // namespace mxpva
