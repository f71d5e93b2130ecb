// Reference program for benches/pva_post.rs, written directly against pvxs.
//
//   pvxs_post serve N SECONDS   serve N float64 PVs BENCH:0..N-1 on an isolated loopback
//                               server; print its client env and READY; on a line from
//                               stdin post round-robin as fast as possible for SECONDS,
//                               then print "posts <count> <seconds>".
//   pvxs_post monitor N         monitor BENCH:0..N-1 (client env from EPICS_PVA_*);
//                               print READY once every PV delivered its first value,
//                               count updates until stdin closes, print "updates <count>".
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <pvxs/client.h>
#include <pvxs/nt.h>
#include <pvxs/server.h>
#include <pvxs/sharedpv.h>

#include "bench.h"

namespace {

std::string name_of(size_t i) { return "BENCH:" + std::to_string(i); }

int serve(size_t n, double seconds) {
    auto server = pvxs::server::Server(pvxs::server::Config::isolated());
    auto prototype = pvxs::nt::NTScalar{pvxs::TypeCode::Float64}.create();
    std::vector<pvxs::server::SharedPV> pvs;
    for (size_t i = 0; i < n; i++) {
        auto pv = pvxs::server::SharedPV::buildReadonly();
        auto initial = prototype.cloneEmpty();
        initial["value"] = 0.0;
        pv.open(initial);
        server.addPV(name_of(i), pv);
        pvs.push_back(pv);
    }
    server.start();
    pvxs::client::Config::defs_t defs;
    server.clientConfig().updateDefs(defs);
    for (const auto& kv : defs) std::printf("ENV %s=%s\n", kv.first.c_str(), kv.second.c_str());
    std::printf("READY\n");
    std::fflush(stdout);

    std::string line;
    std::getline(std::cin, line);

    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    uint64_t posts = 0;
    while (clock::now() < end) {
        for (int k = 0; k < 256; k++, posts++) {
            auto v = prototype.cloneEmpty();
            v["value"] = double(posts);
            pvs[posts % n].post(v);
        }
    }
    const double took = std::chrono::duration<double>(clock::now() - start).count();
    std::printf("posts %llu %.6f\n", (unsigned long long)posts, took);
    std::fflush(stdout);
    std::getline(std::cin, line);  // wait to be told to stop, so the client can drain
    server.stop();
    return 0;
}

int monitor(size_t n) {
    auto ctxt = pvxs::client::Config::fromEnv().build();
    bench::Counter c;
    c.counting = false;
    c.watch(ctxt, n, name_of);
    c.counting = true;
    std::printf("READY\n");
    std::fflush(stdout);
    std::string line;
    while (std::getline(std::cin, line)) {
    }
    std::printf("updates %llu\n", (unsigned long long)c.updates.load());
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char* argv[]) {
    try {
        if (argc >= 4 && std::string(argv[1]) == "serve")
            return serve(std::stoul(argv[2]), std::stod(argv[3]));
        if (argc >= 3 && std::string(argv[1]) == "monitor") return monitor(std::stoul(argv[2]));
    } catch (std::exception& e) {
        std::fprintf(stderr, "pvxs_post: %s\n", e.what());
        return 1;
    }
    std::fprintf(stderr, "usage: pvxs_post serve N SECONDS | monitor N\n");
    return 2;
}
