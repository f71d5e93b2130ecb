//! Reload benchmark (issue 11): a config reload while 10,000 PVs are served and monitored.
//!
//!     cargo bench --bench reload                 # N = 10,000, 100 added and 100 removed
//!     cargo bench --bench reload -- 2000 50      # N, and how many added and removed
//!
//! `mxpva sim` serves a Galaxy of N + K Double attributes, each ramping by 1 per second
//! (one data change per attribute per 1 s tick). `mxpva run` serves B:0..B:<N-1>. A pvxs
//! client (benches/cpp/e2e.cpp `monitor`) watches the N - K PVs that stay. Then:
//! 1. baseline: the updates the client receives in a window of W seconds, no reload;
//! 2. reload: the same window, with the config rewritten (B:<N-K>..B:<N-1> removed,
//!    B:N..B:<N+K-1> added) and SIGHUP sent 2 s into it.
//!
//! Prints the time from SIGHUP until the diff was applied (mxpva's own `ms` of the
//! reload, and from its "SIGHUP received" log line until "subscriptions of the reload
//! done"), and for both windows the updates, the fewest of one PV and the longest time
//! between two updates of one PV: a reload that touched the PVs that stay (a disconnect,
//! a resubscribe) would show as a PV with fewer updates and a gap past the 1 s tick.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;
use support::{
    bench_dir, bench_tag as tag, build_cpp, logged_at, pva_env, spawn_sim, wait_port,
    write_bench_galaxy, Proc, Pva,
};

const PREFIX: &str = "B:";
/// The counting window, seconds.
const WINDOW_S: f64 = 6.0;

/// N + K attributes ramping by 1 per second from 1 (never 0: the monitor's `count 1`
/// waits for a value 0 that never comes, so it counts for the whole window).
fn write_galaxy(dir: &Path, total: usize) -> std::path::PathBuf {
    write_bench_galaxy(dir, "reload-galaxy.toml", total, 10, |_| {
        "dynamics = { kind = \"ramp\", min = 1.0, max = 1e9, rate = 1.0 }\n".to_string()
    })
}

fn write_config(path: &Path, gateway: &str, range: impl Iterator<Item = usize>) {
    let mut t = format!(
        "[gateway]\nendpoint = \"http://{gateway}\"\nclient_name = \"mxpva-reload-bench\"\n\n\
         [alarms]\nenabled = false\n"
    );
    for i in range {
        t += &format!(
            "\n[[pv]]\nname = \"{PREFIX}{i}\"\ntag = \"{}\"\ntype = \"float64\"\n",
            tag(i)
        );
    }
    std::fs::write(path, t).unwrap();
}

/// The `ms=` field of the "config reloaded" line.
fn reload_ms(log: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("config reloaded"))?;
    let ms = line.split_whitespace().find_map(|w| {
        let w = w.split('\u{1b}').next().unwrap_or(w);
        w.strip_prefix("ms=")
    })?;
    ms.parse().ok()
}

/// What the monitor saw in one window.
struct Window {
    updates: u64,
    secs: f64,
    /// The fewest updates of one PV.
    fewest: u64,
    /// The longest time between two updates of one PV, ms.
    max_gap_ms: f64,
}

/// Counts the monitor's updates over the window.
fn count(monitor: &mut Proc) -> Window {
    let t0 = Instant::now();
    monitor.say(&format!("count 1 {WINDOW_S}"));
    let done = monitor.expect("done").pop().unwrap();
    let w: Vec<&str> = done.split_whitespace().collect();
    Window {
        updates: w[1].parse().unwrap(),
        secs: t0.elapsed().as_secs_f64(),
        fewest: w[4].parse().unwrap(),
        max_gap_ms: w[5].parse::<f64>().unwrap() / 1e6,
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(10_000);
    let k = args.get(1).copied().unwrap_or(100).min(n);
    let dir = bench_dir().join("reload");
    std::fs::create_dir_all(&dir).unwrap();
    let e2e = build_cpp("e2e");
    println!("reload: N = {n} PVs served, {k} added and {k} removed by the reload");

    let galaxy = write_galaxy(&dir, n + k);
    let (sim, gateway) = spawn_sim(&galaxy, &dir.join("sim.log"));

    let config = dir.join("reload.toml");
    write_config(&config, &gateway, 0..n);
    let Pva {
        tcp,
        server: server_env,
        client: client_env,
    } = pva_env();
    let log = dir.join("mxpva.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mxpva"));
    cmd.args(["run", "--config"]).arg(&config);
    let bridge = Proc::spawn_with(cmd, &server_env, Some(&log));
    wait_port(tcp);

    let stay = n - k;
    let mut monitor = Proc::spawn(
        &e2e,
        &["monitor".into(), PREFIX.into(), stay.to_string()],
        &client_env,
    );
    let ready = monitor.expect("READY");
    let valid: usize = ready
        .last()
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    println!("reload: the client monitors {valid} of the {stay} PVs that stay");

    let base = count(&mut monitor);

    write_config(&config, &gateway, (0..stay).chain(n..n + k));
    let pid = bridge.child.id().to_string();
    let hup = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        let ok = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -HUP");
    });
    let during = count(&mut monitor);
    hup.join().unwrap();

    let sighup = logged_at(&log, "SIGHUP received");
    let applied = logged_at(&log, "config reloaded");
    let subscribed = logged_at(&log, "subscriptions of the reload done");
    let ms = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.1} ms", (b - a) as f64 / 1e6),
        _ => "?".into(),
    };
    println!(
        "reload: SIGHUP -> diff applied {} (mxpva's own measure of read + validate + diff + apply: {} ms); \
         SIGHUP -> new tags subscribed {}",
        ms(sighup, applied),
        reload_ms(&log).map_or("?".into(), |v| format!("{v:.1}")),
        ms(sighup, subscribed),
    );
    for (what, w) in [("without a reload", &base), ("with a reload", &during)] {
        println!(
            "reload: the {stay} PVs that stay, {what}: {} updates in {:.2} s, at least {} per PV, \
             longest time between two updates of one PV {:.0} ms (the ramp ticks every 1,000 ms)",
            w.updates, w.secs, w.fewest, w.max_gap_ms
        );
    }
    monitor.finish();
    bridge.terminate(Duration::from_secs(10));
    sim.terminate(Duration::from_secs(10));
}
