//! Discovery benchmark (issue 12): a Galaxy mapped by one `[[discover]]` rule, a monitor
//! on every PV, then ten deploys.
//!
//!     cargo bench --bench discover                # N = 100,000 attributes (10 per object)
//!     cargo bench --bench discover -- --quick     # N = 2,000
//!     cargo bench --bench discover -- 20000       # N
//!     cargo bench --bench discover -- 20000 --deploys 30   # N, and 30 deploys (default 10)
//!
//! `mxpva sim` serves N Double attributes `O<k>.X<i>` (10 per object), each ramping once
//! a tick (1 s, or N/10 ms past N = 10,000: 10,000 changes a second in all); the
//! simulated gateway's event queue holds 2 N (default 10,000), since a tick changes all N
//! at the same instant. `mxpva run` has no `[[pv]]`, only the rule `name = "{attribute}"` with the
//! prefix `D:`, so the PVs are `D:X<i>`. A pvxs client (benches/cpp/e2e.cpp `monitor`)
//! watches the PVs that every deploy leaves alone (`D:X0 .. D:X<S-1>`). Reported:
//! 1. start: from spawning `mxpva run` until the monitor has a valid value of every PV
//!    it watches, and the discovery's share (mxpva's `discovery_ms` and `total_ms`);
//! 2. ten deploys, each removing N/100 attributes, adding N/100 and retyping N/1000
//!    (Double <-> Float): from the simulator's "Galaxy deployed" log line until the
//!    bridge's "discovered mapping applied"; and in a window over the deploys, the
//!    fewest updates of one watched PV and the longest time between two of its updates
//!    (a disconnect or INVALID of a watched PV shows as a gap past the tick);
//! 3. mxpva run's RSS before the first deploy and after the tenth (the PV count is the
//!    same: each deploy adds as many as it removes).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;
use support::{bench_dir, build_cpp, free_port, pva_env, wait_port, Proc, Pva};

const PER_OBJECT: usize = 10;
/// Deploys by default (`--deploys N` for more).
const DEPLOYS: usize = 10;

/// The Galaxy: attribute i for i in `stable` (Double, or Float when `retyped` holds it),
/// `retyped`, and `block` (the ones deploys remove and add).
fn write_galaxy(
    path: &Path,
    tick_ms: u64,
    queue: usize,
    n_ids: impl Iterator<Item = usize>,
    float: impl Fn(usize) -> bool,
) -> usize {
    let mut t = format!(
        "[galaxy]\nname = \"Bench\"\ntick_ms = {tick_ms}\nfirst_update_delay_ms = 10\nsecurity_enabled = false\n\
         event_queue_capacity = {queue}\n\n\
         [[areas]]\nname = \"Area\"\n",
    );
    let mut object = usize::MAX;
    let mut count = 0;
    for i in n_ids {
        if i / PER_OBJECT != object {
            object = i / PER_OBJECT;
            t += &format!("\n[[objects]]\ntag = \"O{object}\"\narea = \"Area\"\n");
        }
        let ty = if float(i) { "Float" } else { "Double" };
        t += &format!(
            "[[objects.attributes]]\nname = \"X{i}\"\ntype = \"{ty}\"\n\
             dynamics = {{ kind = \"ramp\", min = 1.0, max = 1e9, rate = 1.0 }}\n"
        );
        count += 1;
    }
    std::fs::write(path, t).unwrap();
    count
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The unix times (ns) of every log line holding `needle`.
fn logged_all(log: &Path, needle: &str) -> Vec<i64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| {
            let stamp = humantime::parse_rfc3339(l.split_whitespace().next()?).ok()?;
            Some(stamp.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos() as i64)
        })
        .collect()
}

/// The unix times (ns) of the bridge's "applied" lines of deploys (not of its start).
fn deploys_applied(log: &Path) -> Vec<i64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let marked: String = text
        .lines()
        .filter(|l| {
            l.split("applied why=deploy ")
                .nth(1)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let tmp = log.with_extension("deploys");
    std::fs::write(&tmp, marked).unwrap();
    logged_all(&tmp, "applied")
}

/// A `key=value` field of the last log line holding `needle`.
fn field(log: &Path, needle: &str, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().rev().find(|l| l.contains(needle))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

fn wait_deploys(log: &Path, count: usize, within: Duration) {
    let t0 = Instant::now();
    while deploys_applied(log).len() < count {
        assert!(
            t0.elapsed() < within,
            "{}: fewer than {count} deploys applied",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let deploys = args
        .iter()
        .position(|a| a == "--deploys")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
        .unwrap_or(DEPLOYS);
    let n = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || args.get(i - 1).map(String::as_str) != Some("--deploys"))
        .find_map(|(_, a)| a.parse::<usize>().ok())
        .unwrap_or(if quick { 2_000 } else { 100_000 });
    let churn = (n / 100).max(1);
    let retype = (n / 1000).max(1);
    // X0..X<stable-1> stay; the next `retype` are retyped; the last `churn` churn.
    let stable = n - churn - retype;
    // Every attribute ramps once a tick: at most 10,000 data changes a second in all
    // (1 s up to N = 10,000, 10 s at 100,000), well below what mxpva and pvxs pass.
    let tick_ms = (n as u64 / 10).max(1000);
    // Each tick changes every attribute at the same instant, and the simulator queues the
    // whole tick at once: N events. The gateway's queue (10,000 by default, configurable)
    // must hold one tick, so past N = 5,000 the simulated gateway gets 2 N.
    let queue = (2 * n).max(10_000);
    let dir = bench_dir().join("discover");
    std::fs::create_dir_all(&dir).unwrap();
    let e2e = build_cpp("e2e");
    println!(
        "discover: N = {n} attributes, one rule; each of {deploys} deploys removes {churn}, adds {churn}, retypes {retype}; {stable} PVs watched"
    );

    let galaxy = dir.join("galaxy.toml");
    let retyped = stable..stable + retype;
    write_galaxy(&galaxy, tick_ms, queue, 0..n, |_| false);
    let sim_port = free_port();
    let gateway = format!("127.0.0.1:{sim_port}");
    let sim_log = dir.join("sim.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mxpva"));
    cmd.args(["sim", "--listen", &gateway, "--galaxy"])
        .arg(&galaxy)
        .env("RUST_LOG", "mxpva::sim::deploy=info,warn")
        .env("NO_COLOR", "1");
    let sim = Proc::spawn_with(cmd, &[], Some(&sim_log));
    wait_port(sim_port);

    let config = dir.join("discover.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nendpoint = \"http://{gateway}\"\nclient_name = \"mxpva-discover-bench\"\n\n\
             [defaults]\nprefix = \"D:\"\n\n[alarms]\nenabled = false\n\n\
             [[discover]]\nname = \"{{attribute}}\"\n"
        ),
    )
    .unwrap();
    let Pva {
        server: server_env,
        client: client_env,
        ..
    } = pva_env();
    let log = dir.join("mxpva.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mxpva"));
    cmd.args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "mxpva::bridge::mapping::deploys=info,warn")
        .env("NO_COLOR", "1");
    let started = Instant::now();
    let bridge = Proc::spawn_with(cmd, &server_env, Some(&log));
    let mut monitor = Proc::spawn(
        &e2e,
        &["monitor".into(), "D:X".into(), stable.to_string()],
        &client_env,
    );
    let ready = monitor.expect("READY");
    let served = started.elapsed();
    let valid: usize = ready
        .last()
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let applied = "discovered mapping applied";
    println!(
        "discover: start -> {valid} of {stable} watched PVs with a valid value: {:.2} s; \
         discovery {:.0} ms, discovery + validate + apply {:.0} ms (mxpva's log)",
        served.as_secs_f64(),
        field(&log, applied, "discovery_ms").unwrap_or(f64::NAN),
        field(&log, applied, "total_ms").unwrap_or(f64::NAN),
    );

    let rss_before = rss_kib(bridge.child.id());
    // The window: the deploys, one after another, each when the last one was applied.
    let sim_pid = sim.child.id().to_string();
    let galaxy2 = galaxy.clone();
    let log2 = log.clone();
    let bridge_pid = bridge.child.id();
    let deployer = std::thread::spawn(move || {
        let mut rss = Vec::new();
        std::thread::sleep(Duration::from_secs(2));
        for d in 1..=deploys {
            // Deploy d: the churned block moves up by `churn`; the retyped ones toggle.
            let block = n + (d - 1) * churn..n + d * churn;
            let ids = (0..stable + retype).chain(block);
            write_galaxy(&galaxy2, tick_ms, queue, ids, |i| {
                retyped.contains(&i) && d % 2 == 1
            });
            let ok = Command::new("kill")
                .args(["-HUP", &sim_pid])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill -HUP");
            wait_deploys(&log2, d, Duration::from_secs(600));
            rss.push(rss_kib(bridge_pid) / 1024);
        }
        rss
    });
    let window = (deploys as f64 * 5.0).max(20.0);
    monitor.say(&format!("count 1 {window}"));
    let done = monitor.expect("done").pop().unwrap();
    let rss_each = deployer.join().unwrap();
    let w: Vec<&str> = done.split_whitespace().collect();
    let rss_after = rss_kib(bridge.child.id());

    let deployed = logged_all(&sim_log, "Galaxy deployed");
    let applied_at = deploys_applied(&log);
    let times: Vec<f64> = deployed
        .iter()
        .zip(&applied_at)
        .map(|(a, b)| (b - a) as f64 / 1e6)
        .collect();
    println!(
        "discover: DeployEvent -> applied, each of {} deploys: {} ms",
        times.len(),
        times
            .iter()
            .map(|t| format!("{t:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "discover: the {stable} watched PVs over {:.0} s of deploys: {} updates, at least {} per PV, \
         longest time between two updates of one PV {:.0} ms (the ramp ticks every {tick_ms} ms)",
        window,
        w.get(1).unwrap_or(&"?"),
        w.get(4).unwrap_or(&"?"),
        w.get(5).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN) / 1e6
    );
    println!(
        "discover: mxpva run RSS {} MiB before the deploys, {} MiB after {deploys} (same PV count); after each: {:?} MiB",
        rss_before / 1024,
        rss_after / 1024,
        rss_each
    );
    monitor.finish();
    bridge.terminate(Duration::from_secs(10));
    sim.terminate(Duration::from_secs(10));
}
