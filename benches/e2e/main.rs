//! End-to-end benchmark (issue 6): mxpva against the pvxs limit and against a Python
//! bridge, in the same run, on loopback, with the same simulator and the same clients.
//!
//!     cargo bench --bench e2e                      # full: N up to 100,000 (about 10 min)
//!     cargo bench --bench e2e -- --quick           # N up to 10,000, shorter phases
//!     cargo bench --bench e2e -- --max-n 1000 --runs 2 --no-peer
//!     cargo bench --bench e2e -- --write-plots      # also redraw docs/performance/*.svg
//!     cargo bench --bench e2e -- --buffered-only    # scenario 5 alone (limit, mxpva)
//!     MXPVA_BIN=path cargo bench --bench e2e ...    # mxpva: another build (the simulator
//!                                                   # stays this one's)
//!     cargo bench --bench e2e -- --rss-only --no-peer  # only RSS per PV (N = 1 and the largest;
//!                                                     # 5 starts of each, --rss-rounds K)
//!     cargo bench --bench e2e -- --quick --no-peer --streams-only --sizes 10000
//!     cargo bench --bench e2e -- --only puts --no-peer --put-seconds 5   # the puts alone
//!
//! Systems, each serving N float64 PVs B:0..B:<N-1>:
//! - limit: benches/cpp/e2e.cpp `limit`, posting the same stream straight into pvxs
//!   SharedPVs (no gateway at all);
//! - mxpva: `mxpva run` on a generated config, against `mxpva sim` with a generated Galaxy;
//! - peer: benches/peers/p4p_bridge.py (grpcio + asyncio + p4p), against the same simulator.
//!
//! Clients: benches/cpp/e2e.cpp `monitor` (one pvxs client monitoring every PV) and
//! `put` (pvxs puts). Scenarios, per system:
//! 1. streams (`stream.rs`), N in 1, 1,000, 10,000, 100,000: *flood*, M events round
//!    robin over the N tags as fast as the system takes them (the simulator's burst that
//!    waits for queue room; the limit posts in a loop): updates delivered/s, the share
//!    mxpva coalesced (`Updates:Coalesced`) and pvxs squashed; *sustained* (N > 1), the
//!    highest paced rate at which the client receives every event on time, by a ladder
//!    of paced rounds; *CPU per update* at 20,000 events/s. The paced rounds run with the
//!    simulator on a CPU of its own (`--no-pin`: not).
//! 2. latency: 1,000 and 10,000 events/s over 1,000 tags; client receipt - timeStamp,
//!    where timeStamp is the simulator's source time (the limit: the time of its post).
//! 3. scale: from spawning the server until the client has a valid value of every
//!    one of the largest N PVs; RSS per PV = (VmRSS at largest N - VmRSS at N = 1) / N.
//! 4. put round trip: pvxs puts, 1 and 100 writers (one put in flight each), until
//!    OnWriteComplete completes them (the limit: a mailbox PV answers at once).
//! 5. buffered samples per second delivered to a queued monitor (`buffered.rs`; the limit
//!    and mxpva, at N = 1,000): 100 buffered PVs, 1,000 samples each per round (one
//!    OnBufferedDataChange per item), a pvxs monitor with `queueSize=1000` counting
//!    every sample it receives.
//!
//! Prints a table; writes target/bench/e2e.json and the latency samples under
//! target/bench/. The plots (benches/plot.py, matplotlib) go into docs/performance/ only
//! with `--write-plots`: a plain run leaves the work tree alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mxpva::sim::RemoteSim;
use serde_json::{json, Value};

mod buffered;
mod procfs;
mod report;
mod rss;
mod stream;
#[path = "../support/mod.rs"]
mod support;
use support::{
    bench_dir, bench_tag, build_cpp, logged_at, median, pva_env, spawn_sim, wait_port,
    write_bench_galaxy, Proc, Pva,
};

/// Tags of the latency and put scenarios.
const LAT_N: usize = 1000;
const PREFIX: &str = "B:";
/// Python packages of the peer and the plots, pinned.
const PACKAGES: &[&str] = &[
    "p4p==4.3.0",
    "pvxslibs==1.5.3",
    "epicscorelibs==7.0.10.99.0.2",
    "numpy==2.4.6",
    "grpcio==1.85.1",
    "grpcio-tools==1.85.1",
    "protobuf==7.36.2",
    "matplotlib==3.11.2",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Limit,
    Mxpva,
    Peer,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Limit => "limit",
            System::Mxpva => "mxpva",
            System::Peer => "peer",
        }
    }
    /// The gateway session name, for systems that have one.
    fn session_name(self) -> Option<&'static str> {
        match self {
            System::Limit => None,
            System::Mxpva => Some("mxpva-bench"),
            System::Peer => Some("p4p-peer"),
        }
    }
}

struct Opts {
    sizes: Vec<usize>,
    rounds: usize,
    runs: usize,
    lat_seconds: f64,
    put_seconds: f64,
    peer: bool,
    plots: bool,
    /// Only the buffered scenario (5), at N = LAT_N, on the limit and mxpva.
    buffered_only: bool,
    /// Only the scale phase at N = 1 and the largest N: RSS per PV, monitored and with
    /// no client; no throughput rounds, latency, puts or buffered samples.
    rss_only: bool,
    /// Starts per system and N for the RSS rows with `--rss-only` (`--rss-rounds K`,
    /// default 5), alternating which system goes first; the rows give the median.
    rss_rounds: usize,
    /// The monitor of the RSS rows subscribes this many PVs at a time, each batch once the
    /// one before has every value (`--rss-pace K`, default 500; 0: all at once, in
    /// batches of 5,000 that wait only for the channels to connect).
    rss_pace: usize,
    /// The stream scenarios only (no latency, puts, buffered samples, RSS alone).
    streams_only: bool,
    /// The paced stream rounds with the simulator on a CPU of its own (`--no-pin`: not).
    pin: bool,
    /// `--only puts`: the put scenario alone (N = 1,000, no throughput, latency,
    /// buffered or RSS phases).
    only_puts: bool,
}

impl Opts {
    fn parse() -> Opts {
        let mut o = Opts {
            sizes: vec![1, 1_000, 10_000, 100_000],
            rounds: 3,
            runs: 1,
            lat_seconds: 5.0,
            put_seconds: 3.0,
            peer: true,
            plots: false,
            buffered_only: false,
            rss_only: false,
            rss_rounds: 5,
            rss_pace: 500,
            streams_only: false,
            pin: true,
            only_puts: false,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        let value = |i: &mut usize| {
            *i += 1;
            args.get(*i).cloned().expect("option needs a value")
        };
        while i < args.len() {
            match args[i].as_str() {
                "--quick" => {
                    o.sizes.retain(|&n| n <= 10_000);
                    o.rounds = 2;
                    o.lat_seconds = 3.0;
                    o.put_seconds = 2.0;
                }
                "--max-n" => {
                    let max: usize = value(&mut i).parse().unwrap();
                    o.sizes.retain(|&n| n <= max);
                }
                "--sizes" => {
                    o.sizes = value(&mut i)
                        .split(',')
                        .map(|n| n.parse().unwrap())
                        .collect()
                }
                "--rounds" => o.rounds = value(&mut i).parse().unwrap(),
                "--runs" => o.runs = value(&mut i).parse().unwrap(),
                "--no-peer" => o.peer = false,
                "--buffered-only" => {
                    o.buffered_only = true;
                    o.sizes = vec![LAT_N];
                    o.peer = false;
                }
                "--rss-only" => o.rss_only = true,
                "--rss-pace" => o.rss_pace = value(&mut i).parse().unwrap(),
                "--rss-rounds" => o.rss_rounds = value(&mut i).parse::<usize>().unwrap().max(1),
                "--put-seconds" => o.put_seconds = value(&mut i).parse().unwrap(),
                "--only" => match value(&mut i).as_str() {
                    "puts" => o.only_puts = true,
                    other => panic!("--only {other}: the one scenario to run alone is `puts`"),
                },
                "--write-plots" => o.plots = true,
                "--streams-only" => o.streams_only = true,
                "--no-pin" => o.pin = false,
                // The default since `--write-plots` came: accepted, changes nothing.
                "--no-plots" => o.plots = false,
                _ => {} // cargo bench passes --bench
            }
            i += 1;
        }
        if o.rss_only {
            let big = o.sizes.last().copied().unwrap_or(1);
            o.sizes = if big > 1 { vec![1, big] } else { vec![1] };
            o.rounds = 0;
        }
        if o.only_puts {
            o.sizes = vec![LAT_N];
            o.rounds = 0;
        }
        o
    }

    fn systems(&self) -> Vec<System> {
        let mut v = vec![System::Limit, System::Mxpva];
        if self.peer {
            v.push(System::Peer);
        }
        v
    }
}

/// Events per throughput round: a few seconds of work for each system.
fn events_for(sys: System, n: usize) -> u64 {
    match sys {
        System::Peer => (n as u64).max(20_000),
        _ => (2 * n as u64).max(200_000),
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// mxpva's config: PV B:i on tag i, writable; PVAccess ports from EPICS_PVAS_*.
fn write_mxpva_config(dir: &Path, n: usize, gateway: &str) -> PathBuf {
    let mut t = format!(
        "[gateway]\nendpoint = \"http://{gateway}\"\nclient_name = \"mxpva-bench\"\n\n\
         [defaults]\nwritable = true\n"
    );
    for i in 0..n {
        t += &format!(
            "\n[[pv]]\nname = \"{PREFIX}{i}\"\ntag = \"{}\"\n",
            bench_tag(i)
        );
    }
    let path = dir.join(format!("mxpva-{n}.toml"));
    std::fs::write(&path, t).unwrap();
    path
}

/// The peer's mapping file: "PV TAG" lines.
fn write_peer_mapping(dir: &Path, n: usize) -> PathBuf {
    let t: String = (0..n)
        .map(|i| format!("{PREFIX}{i} {}\n", bench_tag(i)))
        .collect();
    let path = dir.join(format!("peer-{n}.txt"));
    std::fs::write(&path, t).unwrap();
    path
}

/// target/bench/venv with PACKAGES, made on first use.
fn python() -> PathBuf {
    let venv = bench_dir().join("venv");
    let stamp = venv.join("mxpva-packages.txt");
    let wanted = PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&venv);
        let py = std::env::var("MXPVA_PYTHON").unwrap_or_else(|_| "python3".into());
        println!(
            "e2e: installing {} into {}",
            PACKAGES.join(" "),
            venv.display()
        );
        let ok = Command::new(py)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/python"))
                .args(
                    "-m pip install --quiet --disable-pip-version-check --only-binary=:all:"
                        .split(' '),
                )
                .args(PACKAGES)
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok,
            "could not make the Python environment {}",
            venv.display()
        );
        std::fs::write(&stamp, wanted).unwrap();
    }
    venv.join("bin/python")
}

/// The unix time (ns) of a "READY <ns>" line.
fn ready_time(lines: &[String]) -> i64 {
    let last = lines.last().unwrap();
    last.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// p50, p99, max of samples written one a line.
fn read_samples(path: &Path) -> Vec<f64> {
    let mut v: Vec<f64> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

fn summary(sorted: &[f64]) -> Value {
    json!({
        "count": sorted.len(),
        "p50": percentile(sorted, 0.5),
        "p99": percentile(sorted, 0.99),
        "max": sorted.last().copied().unwrap_or(f64::NAN),
    })
}

/// Everything shared by the scenarios of one run.
struct Bench {
    opts: Opts,
    dir: PathBuf,
    e2e: PathBuf,
    python: Option<PathBuf>,
    rt: tokio::runtime::Runtime,
}

/// One system serving N PVs, with its monitoring client.
struct Served {
    sys: System,
    /// PVs served, for the systems with a gateway session.
    n: Option<usize>,
    proc: Proc,
    pva: Pva,
    session: Option<String>,
    monitor: Proc,
    /// From spawn until the client had a valid value of every PV.
    served_s: f64,
    /// From spawn until the server had every tag subscribed (the limit: every PV open).
    subscribed_s: f64,
    rss_kb: f64,
}

/// A standalone simulator for one N.
struct Sim {
    proc: Proc,
    addr: String,
    remote: RemoteSim,
}

impl Bench {
    fn start_sim(&self, n: usize) -> Sim {
        // Attributes that never move on their own: every event comes from the bursts.
        let galaxy = write_bench_galaxy(&self.dir, &format!("galaxy-{n}.toml"), n, 10, |_| {
            "initial = 0.0\n".into()
        });
        let (proc, addr) = spawn_sim(&galaxy, &self.dir.join(format!("logs/sim-{n}.log")));
        let remote = self
            .rt
            .block_on(RemoteSim::connect(&addr, None))
            .expect("connect to the simulator's control service");
        Sim { proc, addr, remote }
    }

    /// Spawns the server of `sys` for `n` PVs, logging into `log`.
    fn spawn_server(
        &self,
        sys: System,
        n: usize,
        sim: Option<&Sim>,
        pva: &Pva,
        log: &Path,
    ) -> Proc {
        match sys {
            System::Limit => {
                let mut c = Command::new(&self.e2e);
                c.args(["limit", PREFIX, &n.to_string()]);
                Proc::spawn_with(c, &pva.server, Some(log))
            }
            System::Mxpva => {
                let config = write_mxpva_config(&self.dir, n, &sim.unwrap().addr);
                // MXPVA_BIN: another build of mxpva (the simulator stays this one's), for
                // before/after runs.
                let bin = std::env::var_os("MXPVA_BIN")
                    .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mxpva")), PathBuf::from);
                let mut c = Command::new(bin);
                c.args(["run", "--config"]).arg(config);
                Proc::spawn_with(c, &pva.server, Some(log))
            }
            System::Peer => {
                let mapping = write_peer_mapping(&self.dir, n);
                let mut c = Command::new(self.python.as_ref().unwrap());
                c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/p4p_bridge.py"))
                    .args(["--gateway", &sim.unwrap().addr, "--mapping"])
                    .arg(mapping)
                    .arg("--stubs")
                    .arg(self.dir.join("peer-stubs"));
                Proc::spawn_with(c, &pva.server, Some(log))
            }
        }
    }

    /// The gateway session of `sys` once it is Ready with every one of the `n` tags.
    fn wait_session(&self, sys: System, n: usize, sim: &Sim) -> String {
        let name = sys.session_name().unwrap();
        let t0 = Instant::now();
        loop {
            let sessions = self.rt.block_on(sim.remote.sessions()).unwrap();
            if let Some(s) = sessions
                .iter()
                .find(|s| s.client_session_name == name && s.state == "Ready" && s.item_count == n)
            {
                break s.session_id.clone();
            }
            assert!(t0.elapsed() < Duration::from_secs(300), "no {name} session");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn start(&self, sys: System, n: usize, sim: Option<&Sim>) -> Served {
        let pva = pva_env();
        let log = self.dir.join(format!("logs/{}-{n}.log", sys.name()));
        let spawned = now_ns();
        let mut server_ready = None;
        let mut proc = self.spawn_server(sys, n, sim, &pva, &log);
        if sys == System::Limit {
            server_ready = Some(ready_time(&proc.expect("READY")));
        }
        wait_port(pva.tcp);
        let mut monitor = Proc::spawn(
            &self.e2e,
            &["monitor".into(), PREFIX.into(), n.to_string()],
            &pva.client,
        );
        let ready = monitor.expect("READY");
        let ready_ns = ready_time(&ready);
        let valid: usize = ready[ready.len() - 1]
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if valid < n {
            eprintln!("e2e: {} served {valid} of {n} PVs; see its log", sys.name());
        }
        let served_s = if valid < n {
            f64::NAN
        } else {
            (ready_ns - spawned) as f64 / 1e9
        };
        // Read as with no client: once RSS holds still (pvxs may still be sending values
        // the client has taken, and freeing their buffers), the same rule for each system.
        let rss_kb = if valid < n {
            procfs::rss_kb(proc.child.id())
        } else {
            procfs::steady_rss_kb(proc.child.id())
        };
        match sys {
            // A peer that gave up has ended: it has no READY to read.
            System::Peer if valid == n => server_ready = Some(ready_time(&proc.expect("READY"))),
            System::Peer => {}
            System::Mxpva => server_ready = logged_at(&log, "gateway session up"),
            System::Limit => {}
        }
        let subscribed_s = server_ready.map_or(f64::NAN, |t| (t - spawned) as f64 / 1e9);
        let session = sys
            .session_name()
            .filter(|_| valid == n)
            .map(|_| self.wait_session(sys, n, sim.unwrap()));
        Served {
            sys,
            n: sim.map(|_| n),
            proc,
            pva,
            session,
            monitor,
            served_s,
            subscribed_s,
            rss_kb,
        }
    }

    fn stop(&self, s: Served) {
        s.monitor.finish();
        self.stop_server(s.sys, s.proc);
    }

    fn stop_server(&self, sys: System, proc: Proc) {
        match sys {
            // The limit ends when its stdin closes.
            System::Limit => proc.finish(),
            _ => proc.terminate(Duration::from_secs(10)),
        }
    }

    /// Latency at `rate` events/s; returns the sorted samples (us).
    fn latency(&self, s: &mut Served, sim: Option<&Sim>, rate: f64) -> Vec<f64> {
        let count = (rate * self.opts.lat_seconds) as u64;
        s.monitor.say("lat");
        std::thread::sleep(Duration::from_millis(50));
        match s.sys {
            System::Limit => {
                s.proc.say(&format!("rate {count} {rate}"));
                s.proc.expect("done");
            }
            _ => {
                let remote = &sim.unwrap().remote;
                let id = s.session.as_deref().unwrap();
                if let Err(e) = self.rt.block_on(remote.burst_at_rate(id, count, rate)) {
                    // A session that faulted (its event queue overflowed) has no figure.
                    eprintln!("e2e: {} latency at {rate}/s failed: {e}", s.sys.name());
                    s.monitor.say("stop /dev/null");
                    s.monitor.expect("done");
                    self.renew_session(s, sim);
                    return Vec::new();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let file = self
            .dir
            .join(format!("lat-{}-{}.txt", s.sys.name(), rate as u64));
        s.monitor.say(&format!("stop {}", file.display()));
        s.monitor.expect("done");
        read_samples(&file)
    }

    /// Put round trips with `writers` concurrent writers; sorted samples (us) and errors.
    /// Also the server's and the simulator's CPU time (s) over the puts.
    fn puts(&self, s: &Served, sim: Option<&Sim>, writers: usize) -> (Vec<f64>, String, f64, f64) {
        let cpu = |pid: Option<u32>| pid.map_or(f64::NAN, procfs::cpu_s);
        let (server_pid, sim_pid) = (Some(s.proc.child.id()), sim.map(|x| x.proc.child.id()));
        let (server_cpu0, sim_cpu0) = (cpu(server_pid), cpu(sim_pid));
        let file = self.dir.join(format!("put-{}-{writers}.txt", s.sys.name()));
        let mut p = Proc::spawn(
            &self.e2e,
            &[
                "put".into(),
                PREFIX.into(),
                writers.to_string(),
                self.opts.put_seconds.to_string(),
                file.display().to_string(),
            ],
            &s.pva.client,
        );
        let done = p.expect("done").pop().unwrap();
        p.finish();
        let errors = done.splitn(4, ' ').skip(2).collect::<Vec<_>>().join(" ");
        let (server_cpu, sim_cpu) = (cpu(server_pid) - server_cpu0, cpu(sim_pid) - sim_cpu0);
        (read_samples(&file), errors, server_cpu, sim_cpu)
    }

    /// Every scenario for every system; one JSON object per system and N.
    fn run_once(&self) -> Vec<Value> {
        let mut results = Vec::new();
        for &n in &self.opts.sizes {
            let sim_n = self.start_sim(n);
            for sys in self.opts.systems() {
                let sim = (sys != System::Limit).then_some(&sim_n);
                if self.opts.buffered_only {
                    let r = json!({
                        "system": sys.name(),
                        "n": n,
                        "buffered": self.buffered(sys, sim),
                    });
                    results.push(r);
                    continue;
                }
                let mut s = self.start(sys, n, sim);
                let served = !s.served_s.is_nan();
                let mut rounds = Vec::new();
                for _ in 0..self.opts.rounds * usize::from(served) {
                    rounds.push(self.flood(&mut s, sim, events_for(sys, n)));
                }
                let med = |key: &str| {
                    let v: Vec<f64> = rounds
                        .iter()
                        .map(|x| x[key].as_f64().unwrap_or(f64::NAN))
                        .collect();
                    if v.is_empty() {
                        f64::NAN
                    } else {
                        median(v)
                    }
                };
                let mut flood = json!({ "rounds": rounds });
                for key in [
                    "delivered_per_s",
                    "events_per_s",
                    "coalesced",
                    "squashed",
                    "cpu_us_per_event",
                    "cpu_us_per_update",
                    "sim_cpu_us_per_event",
                ] {
                    flood[key] = json!(med(key));
                }
                let mut r = json!({
                    "system": sys.name(),
                    "n": n,
                    "served_s": s.served_s,
                    "subscribed_s": s.subscribed_s,
                    "rss_kb": s.rss_kb,
                    "flood": flood,
                });
                // The paced streams: not at N = 1 (pvxs merges the updates of one PV
                // that a client has not taken yet, for the limit as for mxpva), nor for
                // the peer, whose session faults once it falls behind.
                if served && n > 1 && sys != System::Peer && self.opts.rounds > 0 {
                    let (sustained, paced) = self.pinned(&mut s, &sim_n, |s| {
                        let paced = self.paced_cpu(s, sim, n);
                        (self.sustained(s, sim, n, &paced), paced)
                    });
                    r["sustained"] = sustained;
                    r["paced"] = paced;
                }
                if n == LAT_N && served && !self.opts.streams_only && !self.opts.rss_only {
                    let rates: &[f64] = if self.opts.only_puts {
                        &[]
                    } else {
                        &[1000.0, 10000.0]
                    };
                    for &rate in rates {
                        let samples = self.latency(&mut s, sim, rate);
                        r[format!("latency_{}", rate as u64)] = summary(&samples);
                    }
                    for writers in [1, 100] {
                        let (samples, errors, server_cpu, sim_cpu) = self.puts(&s, sim, writers);
                        let mut sum = summary(&samples);
                        sum["errors"] = json!(errors);
                        let count = samples.len() as f64;
                        sum["cpu_us_per_put"] = json!(server_cpu * 1e6 / count);
                        sum["sim_cpu_us_per_put"] = json!(sim_cpu * 1e6 / count);
                        sum["per_s"] = json!(samples.len() as f64 / self.opts.put_seconds);
                        r[format!("put_{writers}")] = sum;
                    }
                }
                self.stop(s);
                if n == LAT_N
                    && sys != System::Peer
                    && !self.opts.streams_only
                    && !self.opts.rss_only
                    && !self.opts.only_puts
                {
                    r["buffered"] = self.buffered(sys, sim);
                }
                let big = self.opts.sizes.last() == Some(&n);
                if sys != System::Peer
                    && (n == 1 || big)
                    && !self.opts.streams_only
                    && !self.opts.only_puts
                {
                    r["rss_alone_kb"] = json!(self.rss_alone(sys, n, sim));
                }
                println!("e2e: {r}");
                results.push(r);
            }
            sim_n.proc.terminate(Duration::from_secs(5));
        }
        results
    }
}

fn main() {
    let opts = Opts::parse();
    let dir = bench_dir();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let e2e = build_cpp("e2e");
    let python = (opts.peer || opts.plots).then(python);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "e2e: N = {:?}, {} throughput rounds, latency {} s per rate over {LAT_N} PVs, puts {} s, {} run(s); \
         systems {:?}; clients: pvxs C++ (benches/cpp/e2e.cpp); loopback, {} CPUs",
        opts.sizes,
        opts.rounds,
        opts.lat_seconds,
        opts.put_seconds,
        opts.runs,
        opts.systems(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let bench = Bench {
        opts,
        dir,
        e2e,
        python,
        rt,
    };
    let mut runs = Vec::new();
    let mut machine = Vec::new();
    for k in 1..=bench.opts.runs {
        let t0 = Instant::now();
        let (load0, (steal0, all0)) = (procfs::load_average(), procfs::machine_ticks());
        let run = if bench.opts.rss_only {
            bench.rss_only()
        } else {
            bench.run_once()
        };
        let (load1, (steal1, all1)) = (procfs::load_average(), procfs::machine_ticks());
        // Time the hypervisor gave other guests: a figure that moves between runs for no
        // reason of mxpva's or pvxs's may show here.
        let steal =
            100.0 * steal1.saturating_sub(steal0) as f64 / all1.saturating_sub(all0).max(1) as f64;
        println!(
            "\ne2e: run {k} took {:.0} s; machine: load {load0:.1} at the start, {load1:.1} at the end, steal {steal:.1}% of CPU time\n",
            t0.elapsed().as_secs_f64()
        );
        machine.push(json!({"load_start": load0, "load_end": load1, "steal_percent": steal}));
        println!("{}", report::table(&bench.opts, &run));
        if bench.opts.rss_only {
            println!("{}", report::rss_rounds(&bench.opts, &run));
        }
        runs.push(run);
    }
    if runs.len() > 1 {
        println!(
            "Spread over {} runs:\n\n{}",
            runs.len(),
            report::spread(&bench.opts, &runs)
        );
    }
    let out = json!({
        "sizes": bench.opts.sizes,
        "rounds": bench.opts.rounds,
        "lat_n": LAT_N,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "runs": runs,
        "machine": machine,
        "table": report::table(&bench.opts, runs.last().unwrap()),
        "spread": report::spread(&bench.opts, &runs),
    });
    let path = bench.dir.join("e2e.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("wrote {}", path.display());
    if let (true, Some(py)) = (bench.opts.plots, &bench.python) {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/performance");
        let ok = Command::new(py)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/plot.py"))
            .arg(&path)
            .arg(&docs)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            println!("wrote the plots into {}", docs.display());
        } else {
            eprintln!("e2e: plotting failed");
        }
    }
}
