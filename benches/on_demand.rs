//! On-demand benchmark (issue 14): N PVs mapped with `subscribe = "on_demand"`, W of them
//! watched.
//!
//!     cargo bench --bench on_demand                # N = 100,000, W = 1,000
//!     cargo bench --bench on_demand -- --quick     # N = 10,000, W = 100
//!     cargo bench --bench on_demand -- 20000 500   # N and W
//!
//! `mxpva sim` serves a Galaxy of N Double attributes (held values; the first data
//! change after an advise comes `first_update_delay_ms` = 50 ms later, as in
//! config/sim-galaxy.toml). `mxpva run` maps all N as on-demand PVs B:0..B:<N-1>
//! (`linger = "2s"`). The simulator's control service counts the items of the bridge's
//! session. Measured:
//! 1. at start: the items added and advised at the gateway (0 and 0 expected), and the
//!    time from starting mxpva until its session is up;
//! 2. ten single first clients, one after the other, each a pvxs monitor of a PV
//!    nobody watched: the time from creating the monitor to its first value;
//! 3. W first clients at once (one pvxs client monitoring B:0..B:<W-1>): the time to
//!    each PV's first value (median, p99, max), how many first values were INVALID, the
//!    time until all W had one, and the items advised while they watch (W expected);
//! 4. the W clients leave: the time until the gateway holds no advised item again
//!    (linger, then UnsubscribeBulk).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;
use support::{
    bench_dir, bench_tag as tag, build_cpp, pva_env, spawn_sim, wait_port, write_bench_galaxy,
    Proc, Pva,
};

const PREFIX: &str = "B:";
const LINGER: &str = "2s";
const CLIENT: &str = "mxpva-on-demand-bench";

fn write_galaxy(dir: &Path, n: usize) -> std::path::PathBuf {
    write_bench_galaxy(dir, "on-demand-galaxy.toml", n, 50, |i| {
        format!("initial = {}.5\n", i % 1000)
    })
}

fn write_config(path: &Path, gateway: &str, n: usize) {
    let mut t = format!(
        "[gateway]\nendpoint = \"http://{gateway}\"\nclient_name = \"{CLIENT}\"\n\n\
         [alarms]\nenabled = false\n\n\
         [defaults]\nsubscribe = \"on_demand\"\nlinger = \"{LINGER}\"\n"
    );
    for i in 0..n {
        t += &format!(
            "\n[[pv]]\nname = \"{PREFIX}{i}\"\ntag = \"{}\"\ntype = \"float64\"\n",
            tag(i)
        );
    }
    std::fs::write(path, t).unwrap();
}

/// The bridge's session at the simulator: (items, advised), once it is up.
fn items(rt: &tokio::runtime::Runtime, control: &mxpva::sim::RemoteSim) -> Option<(usize, usize)> {
    let sessions = rt.block_on(control.sessions()).ok()?;
    sessions
        .into_iter()
        .find(|s| s.client_session_name == CLIENT && s.state == "Ready" && s.subscriber_attached)
        .map(|s| (s.item_count, s.advised_count))
}

/// Polls until the session's advised count is `advised`; returns how long that took.
fn until_advised(
    rt: &tokio::runtime::Runtime,
    control: &mxpva::sim::RemoteSim,
    advised: usize,
) -> Duration {
    let t0 = Instant::now();
    loop {
        if items(rt, control).is_some_and(|(_, a)| a == advised) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "the session never had {advised} advised items: {:?}",
            items(rt, control)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `e2e first PREFIX from n`; returns each PV's (ms to its first value, severity),
/// and the client, still watching.
fn first_values(
    e2e: &Path,
    env: &[(String, String)],
    from: usize,
    n: usize,
) -> (Vec<(f64, i32)>, Proc) {
    let mut client = Proc::spawn(
        e2e,
        &[
            "first".into(),
            PREFIX.into(),
            from.to_string(),
            n.to_string(),
        ],
        env,
    );
    let lines = client.expect("READY");
    let firsts = lines
        .iter()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["first", _, ns, sev] => Some((ns.parse::<f64>().ok()? / 1e6, sev.parse().ok()?)),
                _ => None,
            }
        })
        .collect();
    (firsts, client)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let nums: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = nums
        .first()
        .copied()
        .unwrap_or(if quick { 10_000 } else { 100_000 });
    let w = nums
        .get(1)
        .copied()
        .unwrap_or(if quick { 100 } else { 1_000 })
        .min(n.saturating_sub(10));
    let dir = bench_dir().join("on_demand");
    std::fs::create_dir_all(&dir).unwrap();
    let e2e = build_cpp("e2e");
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("on_demand: N = {n} on-demand PVs, W = {w} watched, linger {LINGER}");

    let galaxy = write_galaxy(&dir, n);
    let (sim, gateway) = spawn_sim(&galaxy, &dir.join("sim.log"));
    let control = rt
        .block_on(mxpva::sim::RemoteSim::connect(&gateway, None))
        .expect("the simulator's control service");

    let config = dir.join("on-demand.toml");
    write_config(&config, &gateway, n);
    let Pva {
        tcp,
        server: server_env,
        client: client_env,
    } = pva_env();
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mxpva"));
    cmd.args(["run", "--config"]).arg(&config);
    let bridge = Proc::spawn_with(cmd, &server_env, Some(&dir.join("mxpva.log")));
    wait_port(tcp);
    until_advised(&rt, &control, 0);
    let up = started.elapsed();
    let at_start = items(&rt, &control).unwrap_or_default();
    println!(
        "on_demand: at start, {} items added and {} advised at the gateway for {n} on-demand PVs \
         (mxpva started -> session up {:.0} ms)",
        at_start.0,
        at_start.1,
        up.as_secs_f64() * 1e3
    );

    // Single first clients, one after the other, on PVs nobody watched.
    let mut singles = Vec::new();
    for k in 0..10 {
        let (firsts, client) = first_values(&e2e, &client_env, n - 1 - k, 1);
        singles.extend(firsts);
        client.finish();
    }
    let mut single_ms: Vec<f64> = singles.iter().map(|(ms, _)| *ms).collect();
    single_ms.sort_by(f64::total_cmp);
    println!(
        "on_demand: a single first client (x{}): first value after {:.1} ms median, {:.1} ms max \
         (search + connect + advise + the simulator's 50 ms first-update delay); INVALID first values: {}",
        single_ms.len(),
        quantile(&single_ms, 0.5),
        quantile(&single_ms, 1.0),
        singles.iter().filter(|(_, sev)| *sev >= 3).count()
    );
    until_advised(&rt, &control, 0);

    // W first clients at once.
    let t0 = Instant::now();
    let (firsts, client) = first_values(&e2e, &client_env, 0, w);
    let all = t0.elapsed();
    let watched = items(&rt, &control).unwrap_or_default();
    let mut ms: Vec<f64> = firsts.iter().map(|(ms, _)| *ms).collect();
    ms.sort_by(f64::total_cmp);
    let invalid = firsts.iter().filter(|(_, sev)| *sev >= 3).count();
    if ms.is_empty() {
        println!("on_demand: no first value came for the {w} PVs watched");
    } else {
        println!(
            "on_demand: {w} first clients at once: {} first values, {invalid} INVALID; \
             first value after {:.1} ms median, {:.1} ms p99, {:.1} ms max; all within {:.0} ms",
            ms.len(),
            quantile(&ms, 0.5),
            quantile(&ms, 0.99),
            quantile(&ms, 1.0),
            all.as_secs_f64() * 1e3
        );
    }
    println!(
        "on_demand: while {w} of {n} are watched, the gateway holds {} items, {} advised",
        watched.0, watched.1
    );

    // The W clients leave.
    client.finish();
    let gone = until_advised(&rt, &control, 0);
    println!(
        "on_demand: the {w} clients left -> no item advised after {:.0} ms (linger {LINGER})",
        gone.as_secs_f64() * 1e3
    );
    bridge.terminate(Duration::from_secs(10));
    sim.terminate(Duration::from_secs(10));
}
