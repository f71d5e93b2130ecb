// Pieces shared by the benchmarks' C++ programs (e2e.cpp, pvxs_batch.cpp, pvxs_post.cpp).
// Each program is built as one file by benches/support/mod.rs `build_cpp`; the compiler
// finds this header next to it (#include "bench.h").
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <pvxs/client.h>
#include <pvxs/data.h>
#include <pvxs/nt.h>
#include <pvxs/sharedArray.h>

namespace bench {

// The structure mxpva serves for a Double attribute: NTScalar with display and
// display.form (pvinfo shows it), so that memory and post cost compare like for like.
inline pvxs::Value double_prototype() {
    return pvxs::nt::NTScalar{pvxs::TypeCode::Float64, true, false, false, true}.create();
}

// The choices of display.form, as mxpva's shim serves them: a new frozen array (pvxs
// arrays are immutable and shared by reference: one may serve every PV).
inline pvxs::shared_array<const std::string> form_choices() {
    pvxs::shared_array<std::string> form(
        {"Default", "String", "Binary", "Decimal", "Hex", "Exponential", "Engineering"});
    return form.freeze();
}

// A client that monitors N PVs and counts each PV's first value (`first`), then the
// updates after it (`updates`, while `counting`). It must stay where it is while its
// subscriptions live: their handlers refer to it.
struct Counter {
    std::atomic<uint64_t> updates{0};
    std::atomic<size_t> first{0};
    std::atomic<bool> counting{true};
    std::vector<std::shared_ptr<pvxs::client::Subscription>> subs;

    // Monitors name(0) .. name(n-1); returns once every one has shown its first value.
    template <class Name>
    void watch(pvxs::client::Context& ctxt, size_t n, Name name) {
        for (size_t i = 0; i < n; i++) {
            auto seen = std::make_shared<bool>(false);
            subs.push_back(ctxt.monitor(name(i))
                               .maskConnected(true)
                               .maskDisconnected(true)
                               .event([this, seen](pvxs::client::Subscription& sub) {
                                   try {
                                       while (auto v = sub.pop()) {
                                           if (!*seen) {
                                               *seen = true;
                                               first++;
                                           } else if (counting) {
                                               updates++;
                                           }
                                       }
                                   } catch (std::exception& e) {
                                       std::fprintf(stderr, "monitor error: %s\n", e.what());
                                   }
                               })
                               .exec());
        }
        while (first < n) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
};

}  // namespace bench
