#include "cpp/handoff.h"

#include <vector>

#include "mxpva/src/pva/ffi.rs.h"

namespace mxpva {
namespace handoff {
namespace {

// One post (pv set) or one put reply (op set).
struct Work {
    pvxs::server::SharedPV pv;
    pvxs::Value value;
    std::unique_ptr<pvxs::server::ExecOp> op;
    std::string error;
};

thread_local bool t_collecting = false;
thread_local std::vector<Work> t_collected;
thread_local std::vector<std::string> t_failures;

// Makes the collected work in order; one that fails does not stop the others.
void run_collected() {
    std::vector<Work> batch;
    batch.swap(t_collected);
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
                t_failures.emplace_back(e.what());
            } catch (...) {
            }
        }
    }
    // The vector's room is kept for the next turn.
    batch.clear();
    if (t_collected.empty()) t_collected.swap(batch);
}

}  // namespace

bool collecting() { return t_collecting; }

void post(const pvxs::server::SharedPV& pv, pvxs::Value&& value) {
    t_collected.push_back(Work{pv, std::move(value), nullptr, std::string()});
}

void reply(std::unique_ptr<pvxs::server::ExecOp>&& op, std::string&& error) {
    t_collected.push_back(
        Work{pvxs::server::SharedPV(), pvxs::Value(), std::move(op), std::move(error)});
}

void settle() {
    if (!t_collected.empty()) run_collected();
}

}  // namespace handoff

void handoff_begin() { handoff::t_collecting = true; }

rust::Vec<rust::String> handoff_end() {
    handoff::t_collecting = false;
    handoff::run_collected();
    rust::Vec<rust::String> out;
    for (const auto& f : handoff::t_failures) out.push_back(rust::String::lossy(f.data(), f.size()));
    handoff::t_failures.clear();
    return out;
}

}  // namespace mxpva
