//! Scenario 5 (issue 24): buffered samples per second delivered to a queued monitor.
//!
//! BUF_N PVs, each given BUF_K samples per round, watched by one pvxs client
//! (benches/cpp/e2e.cpp `queued`) whose monitors ask for a queue of BUF_K updates
//! (`record[queueSize=BUF_K]`), enough for every sample of a round: the client counts
//! every update it receives and checks that each PV's values come in order, none lost.
//! - mxpva: its BUF_N PVs are `buffered = true` (`[gateway] buffered_interval` =
//!   BUF_INTERVAL_MS); a round is the simulator's BufferedBurst of BUF_K samples on
//!   every buffered item, which leave as one OnBufferedDataChange per item (BUF_K = the
//!   1,000 samples a gateway keeps per item, and mxpva's default `max_buffered_samples`),
//!   each sample posted by mxpva as its own update;
//! - limit: benches/cpp/e2e.cpp `limit` posts the same samples (each PV's BUF_K in a
//!   row, PV after PV) straight into its SharedPVs.
//!
//! samples/s = updates the client received / (time of the last one - start of the
//! round); the median over the rounds. Rounds are at least BUF_INTERVAL_MS apart, so
//! that every round is one event per item, sent at once (the simulator's interval since
//! each item's last OnBufferedDataChange has passed: no round waits for it).
//!
//! Beside it, the delivery rate: (updates - 1) / (time of the last - time of the first
//! update the client received), and how long the first took from the round's start
//! (`first_ms`). The round's start is mxpva's handicap the limit does not have: the
//! BufferedBurst control call, the simulator building the OnBufferedDataChange events,
//! and the first event's way through gRPC to mxpva, before any sample is posted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{bench_tag, median, pva_env, wait_port, Proc};
use crate::{now_ns, procfs, Bench, Sim, System, PREFIX};

/// PVs of the scenario (tags 0.. of the N = LAT_N simulator).
const BUF_N: usize = 100;
/// Samples per PV per round: one OnBufferedDataChange of the most a gateway keeps.
const BUF_K: usize = 1000;
/// mxpva's `[gateway] buffered_interval`.
const BUF_INTERVAL_MS: u64 = 100;
/// mxpva's gateway session name here.
const SESSION: &str = "mxpva-bench-buffered";

/// mxpva's config: buffered PVs B:i on tag i.
fn write_config(dir: &Path, gateway: &str) -> PathBuf {
    let mut t = format!(
        "[gateway]\nendpoint = \"http://{gateway}\"\nclient_name = \"{SESSION}\"\n\
         buffered_interval = \"{BUF_INTERVAL_MS}ms\"\n\n[defaults]\nbuffered = true\n"
    );
    for i in 0..BUF_N {
        t += &format!(
            "\n[[pv]]\nname = \"{PREFIX}{i}\"\ntag = \"{}\"\n",
            bench_tag(i)
        );
    }
    let path = dir.join("mxpva-buffered.toml");
    std::fs::write(&path, t).unwrap();
    path
}

impl Bench {
    /// The buffered scenario for `sys` (the limit, or mxpva against `sim`).
    pub(crate) fn buffered(&self, sys: System, sim: Option<&Sim>) -> Value {
        let pva = pva_env();
        let log = self.dir.join(format!("logs/{}-buffered.log", sys.name()));
        let mut server = match (sys, sim) {
            (System::Limit, _) => {
                let mut c = Command::new(&self.e2e);
                c.args(["limit", PREFIX, &BUF_N.to_string()]);
                let mut p = Proc::spawn_with(c, &pva.server, Some(&log));
                p.expect("READY");
                p
            }
            (System::Mxpva, Some(sim)) => {
                // MXPVA_BIN: another build of mxpva (the simulator stays this one's),
                // for before/after runs of this scenario.
                let bin = std::env::var_os("MXPVA_BIN")
                    .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mxpva")), PathBuf::from);
                let mut c = Command::new(bin);
                c.args(["run", "--config"])
                    .arg(write_config(&self.dir, &sim.addr));
                Proc::spawn_with(c, &pva.server, Some(&log))
            }
            _ => unreachable!("the buffered scenario runs on the limit and mxpva"),
        };
        wait_port(pva.tcp);
        let mut client = Proc::spawn(
            &self.e2e,
            &[
                "queued".into(),
                PREFIX.into(),
                BUF_N.to_string(),
                BUF_K.to_string(),
            ],
            &pva.client,
        );
        let ready = client.expect("READY");
        let valid: usize = ready[ready.len() - 1]
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let session = sim.map(|sim| self.buffered_session(sim));
        let mut rounds = Vec::new();
        if valid < BUF_N {
            eprintln!("e2e: {} served {valid} of {BUF_N} buffered PVs", sys.name());
        }
        let cpu = |pid: u32| procfs::cpu_s(pid);
        let pid = server.child.id();
        let sim_pid = sim.map(|s| s.proc.child.id());
        let client_pid = client.child.id();
        let m = (BUF_N * BUF_K) as u64;
        let mut last_start: Option<Instant> = None;
        for r in 0..self.opts.rounds * usize::from(valid == BUF_N) {
            // The round before was one event per item: the next waits out the interval.
            if let Some(t) = last_start {
                let wait = Duration::from_millis(BUF_INTERVAL_MS + 20);
                std::thread::sleep(wait.saturating_sub(t.elapsed()));
            }
            // Round r: the values r*K+1 ..= (r+1)*K on every PV.
            let first = (r * BUF_K + 1) as f64;
            client.say(&format!("samples {m} {first} 60"));
            client.expect("armed");
            let cpu0 = cpu(pid);
            let sim_cpu0 = sim_pid.map(cpu);
            let client_cpu0 = cpu(client_pid);
            last_start = Some(Instant::now());
            let t0 = now_ns();
            match (&session, sim) {
                (Some(id), Some(sim)) => {
                    if let Err(e) =
                        self.rt
                            .block_on(sim.remote.buffered_burst(id, BUF_K as u32, first))
                    {
                        eprintln!("e2e: buffered burst failed: {e}");
                    }
                }
                _ => {
                    server.say(&format!("samples {BUF_K} {first}"));
                    server.expect("done");
                }
            }
            let done = client.expect("done").pop().unwrap();
            let server_cpu = cpu(pid) - cpu0;
            let sim_cpu = sim_pid.map(cpu).zip(sim_cpu0).map(|(a, b)| a - b);
            let client_cpu = cpu(client_pid) - client_cpu0;
            let w: Vec<f64> = done
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap())
                .collect();
            let (updates, last_ns, gaps, backwards, stale, first_ns) =
                (w[0], w[1] as i64, w[2], w[3], w[4], w[5] as i64);
            let secs = (last_ns - t0) as f64 / 1e9;
            let delivery = (last_ns - first_ns) as f64 / 1e9;
            rounds.push(json!({
                "samples": m,
                "received": updates,
                "gaps": gaps,
                "backwards": backwards,
                "stale": stale,
                "complete": updates == m as f64 && gaps == 0.0 && backwards == 0.0,
                "seconds": secs,
                "samples_per_s": updates / secs,
                "first_ms": (first_ns - t0) as f64 / 1e6,
                "delivery_s": delivery,
                "delivery_per_s": (updates - 1.0) / delivery,
                "cpu_us_per_sample": server_cpu * 1e6 / updates,
                "sim_cpu_us_per_sample": sim_cpu.map(|c| c * 1e6 / updates),
                "client_cpu_us_per_sample": client_cpu * 1e6 / updates,
            }));
        }
        client.finish();
        match sys {
            System::Limit => server.finish(),
            _ => server.terminate(Duration::from_secs(10)),
        }
        let med = |key: &str| {
            let v: Vec<f64> = rounds.iter().filter_map(|x| x[key].as_f64()).collect();
            if v.is_empty() {
                f64::NAN
            } else {
                median(v)
            }
        };
        let lost = rounds
            .iter()
            .map(|x| m as f64 - x["received"].as_f64().unwrap_or(0.0))
            .sum::<f64>();
        let r = json!({
            "pvs": BUF_N,
            "samples_per_pv": BUF_K,
            "queue_size": BUF_K,
            "interval_ms": BUF_INTERVAL_MS,
            "rounds": rounds,
            "complete": rounds.iter().all(|x| x["complete"] == true),
            "lost_percent": 100.0 * lost / (m as f64 * rounds.len().max(1) as f64),
            "samples_per_s": med("samples_per_s"),
            "first_ms": med("first_ms"),
            "delivery_per_s": med("delivery_per_s"),
            "cpu_us_per_sample": med("cpu_us_per_sample"),
            "sim_cpu_us_per_sample": med("sim_cpu_us_per_sample"),
            "client_cpu_us_per_sample": med("client_cpu_us_per_sample"),
        });
        println!("e2e: {} buffered {r}", sys.name());
        r
    }

    /// mxpva's session once every one of its BUF_N buffered items is advised.
    fn buffered_session(&self, sim: &Sim) -> String {
        let t0 = Instant::now();
        loop {
            let sessions = self.rt.block_on(sim.remote.sessions()).unwrap();
            if let Some(s) = sessions.iter().find(|s| {
                s.client_session_name == SESSION && s.state == "Ready" && s.advised_count >= BUF_N
            }) {
                break s.session_id.clone();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "no {SESSION} session"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
