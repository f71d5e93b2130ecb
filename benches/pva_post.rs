//! Micro-benchmark: posts per second into SharedPVs from Rust through the FFI, next to
//! the same loop written directly in C++ against pvxs (benches/cpp/pvxs_post.cpp), in
//! the same run, each with one monitoring pvxs client in its own process.
//!
//!     cargo bench --bench pva_post                  # 3 rounds of 3 s
//!     cargo bench --bench pva_post -- --rounds 5 --seconds 5
//!
//! Prints a table (median over rounds, and the spread) and writes
//! target/bench/pva_post.json.

use std::path::Path;
use std::time::{Duration, Instant};

use mxpva::pva::*;

mod support;
use support::{build_cpp, median, target_dir, Proc};

const SIZES: [usize; 2] = [1, 1000];

#[derive(Debug, Clone, Copy)]
struct Sample {
    posts_per_s: f64,
    delivered_per_s: f64,
}

/// The monitoring client: starts, waits until every PV delivered its first value.
fn start_monitor(exe: &Path, n: usize, env: &[(String, String)]) -> Proc {
    let mut monitor = Proc::spawn(exe, &["monitor".into(), n.to_string()], env);
    monitor.expect("READY");
    monitor
}

fn stop_monitor(mut monitor: Proc) -> u64 {
    std::thread::sleep(Duration::from_millis(300)); // let the last updates arrive
    drop(monitor.stdin.take());
    let line = monitor.expect("updates").pop().unwrap();
    monitor.finish();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn run_rust(exe: &Path, n: usize, seconds: f64) -> Sample {
    let server = Server::new(&ServerConfig::isolated()).unwrap();
    let (events, _rx) = event_channel();
    let ty = PvType::Scalar(ScalarType::Float64);
    let pvs: Vec<SharedPv> = (0..n)
        .map(|i| {
            let mut pv = SharedPv::new(&format!("BENCH:{i}"), Access::ReadOnly, &events).unwrap();
            pv.open(ty, &Update::value(NtValue::Float64(0.0))).unwrap();
            server.add_pv(&pv).unwrap();
            pv
        })
        .collect();
    server.start().unwrap();
    let env = server.info().unwrap().client_env;
    let monitor = start_monitor(exe, n, &env);

    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut posts: u64 = 0;
    while Instant::now() < end {
        for _ in 0..256 {
            let update = Update::value(NtValue::Float64(posts as f64));
            pvs[(posts % n as u64) as usize].post(&update).unwrap();
            posts += 1;
        }
    }
    let took = start.elapsed().as_secs_f64();
    let delivered = stop_monitor(monitor);
    Sample {
        posts_per_s: posts as f64 / took,
        delivered_per_s: delivered as f64 / took,
    }
}

fn run_cpp(exe: &Path, n: usize, seconds: f64) -> Sample {
    let mut server = Proc::spawn(
        exe,
        &["serve".into(), n.to_string(), seconds.to_string()],
        &[],
    );
    let env: Vec<(String, String)> = server
        .expect("READY")
        .iter()
        .filter_map(|l| l.strip_prefix("ENV "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let monitor = start_monitor(exe, n, &env);
    server.say("go");
    let line = server.expect("posts").pop().unwrap();
    let mut words = line.split_whitespace().skip(1);
    let posts: f64 = words.next().unwrap().parse().unwrap();
    let took: f64 = words.next().unwrap().parse().unwrap();
    let delivered = stop_monitor(monitor);
    server.finish();
    Sample {
        posts_per_s: posts / took,
        delivered_per_s: delivered as f64 / took,
    }
}

fn spread(v: &[f64]) -> f64 {
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (hi - lo) / median(v.to_vec()) * 100.0
}

fn main() {
    let mut rounds = 3usize;
    let mut seconds = 3.0f64;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--rounds" => {
                rounds = args[i + 1].parse().unwrap();
                i += 1;
            }
            "--seconds" => {
                seconds = args[i + 1].parse().unwrap();
                i += 1;
            }
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    let exe = build_cpp("pvxs_post");
    println!("pva_post: {rounds} rounds x {seconds} s, one pvxs monitor client per run, loopback");
    println!(
        "{:>6} | {:>14} {:>14} {:>7} | {:>16} {:>16} | {:>9}",
        "PVs",
        "rust posts/s",
        "c++ posts/s",
        "ratio",
        "rust delivered/s",
        "c++ delivered/s",
        "spread %"
    );
    let mut json = Vec::new();
    for n in SIZES {
        let mut rust = Vec::new();
        let mut cpp = Vec::new();
        let mut ratios = Vec::new();
        for _ in 0..rounds {
            // Alternate so that drift on a noisy machine hits both sides alike.
            let r = run_rust(&exe, n, seconds);
            let c = run_cpp(&exe, n, seconds);
            ratios.push(r.posts_per_s / c.posts_per_s);
            rust.push(r);
            cpp.push(c);
        }
        let rp: Vec<f64> = rust.iter().map(|s| s.posts_per_s).collect();
        let cp: Vec<f64> = cpp.iter().map(|s| s.posts_per_s).collect();
        let rd = median(rust.iter().map(|s| s.delivered_per_s).collect());
        let cd = median(cpp.iter().map(|s| s.delivered_per_s).collect());
        let ratio = median(ratios.clone());
        println!(
            "{:>6} | {:>14.0} {:>14.0} {:>7.3} | {:>16.0} {:>16.0} | {:>4.0} {:>4.0}",
            n,
            median(rp.clone()),
            median(cp.clone()),
            ratio,
            rd,
            cd,
            spread(&rp),
            spread(&cp)
        );
        json.push(format!(
            "{{\"pvs\":{n},\"rust_posts_per_s\":{:.0},\"cpp_posts_per_s\":{:.0},\"ratio\":{ratio:.4},\
             \"ratios\":{ratios:?},\"rust_delivered_per_s\":{rd:.0},\"cpp_delivered_per_s\":{cd:.0}}}",
            median(rp),
            median(cp)
        ));
    }
    let path = target_dir().join("bench/pva_post.json");
    std::fs::write(&path, format!("[{}]\n", json.join(",\n"))).unwrap();
    println!("ratio = rust/c++ posts per second (median of per-round ratios); spread = (max-min)/median of posts/s, rust and c++");
    println!("wrote {}", path.display());
}
