//! Scenario 1 (issue 23): streams of data changes, three ways.
//!
//! - **Flood**: M events round robin over the N tags as fast as the system takes them
//!   (the simulator's burst that waits for room in the gateway's 10,000-event queue; the
//!   limit's posting loop). mxpva falls behind such a stream and coalesces data changes
//!   per PV (the latest value of each, every change of alarm kept), so the flood says
//!   what a client receives while the source outruns the server: *delivered/s* = updates
//!   the client received / time until it had the last value; *coalesced* = mxpva's
//!   `Updates:Coalesced` over the round / M; *squashed* = the rest of what did not arrive
//!   (pvxs merges updates a slow subscriber has not taken yet); *CPU per event* = the
//!   server's CPU / M.
//! - **Sustained**: the highest paced rate at which the client receives every event on
//!   time: rounds of M = max(N, rate x LADDER_SECS) events at a fixed rate (the
//!   simulator's burst with `rate_per_s`, which queues event k at k / rate and never
//!   waits for room, as a gateway does; the limit's `rate` loop, which posts event k at
//!   k / rate); a round *keeps up* when the client received all M updates (nothing
//!   coalesced, nothing squashed) and the last one by M / rate x (1 + LATE_SHARE) +
//!   LATE_S from the start. A ladder of rounds finds it: from PACED_RATE (the paced CPU
//!   rounds below are its first rung), up or down by LADDER_STEP until one round keeps
//!   up and one does not, then halving that bracket (geometrically) until it is within
//!   BRACKET.
//! - **Paced CPU**: CPU per update at PACED_RATE events/s, a rate both the limit and
//!   mxpva sustain, so that it is not inflated by draining coalesced events: the
//!   server's CPU (and the simulator's, on its own row) over the round / updates the
//!   client received.
//!
//! The paced rounds run with the simulator on the last CPU and the server and its client
//! on the others (`taskset`; `--no-pin` leaves them all free), as if the gateway were
//! another host: the limit has no simulator, so only then do both servers, each with its
//! client, have the same CPUs.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{median, Proc};
use crate::{now_ns, procfs, Bench, Served, Sim, System};

/// The rate of the CPU-per-update rounds (events/s): below what both systems sustain on
/// the 2-CPU machine of docs/performance.md (the limit about 20,000/s, mxpva 15,000 to
/// 19,000/s). At 20,000/s a round of mxpva's could fall behind and coalesce, and its CPU
/// was then divided by fewer updates (1.34x where the other runs gave 1.10x).
pub(crate) const PACED_RATE: f64 = 10_000.0;
/// Seconds of events in a ladder round and in a paced CPU round (at least N events).
const LADDER_SECS: f64 = 2.0;
/// A round keeps up when its last update arrives within this share of its length, and
/// this many seconds, after its paced end.
const LATE_SHARE: f64 = 0.03;
const LATE_S: f64 = 0.03;
/// The ladder's step, and the bracket it stops at.
const LADDER_STEP: f64 = 1.25;
const BRACKET: f64 = 1.06;
/// At most this many ladder rounds per system and N.
const LADDER_ROUNDS: usize = 10;
/// mxpva's status PV counting coalesced data changes (`[status] prefix` is the default).
const COALESCED_PV: &str = "mxpva:Updates:Coalesced";

/// How a round's events are offered.
#[derive(Clone, Copy)]
enum Pace {
    /// As fast as the system takes them.
    Flood,
    /// At this many events per second.
    Rate(f64),
}

/// Sets the CPUs of every thread of `pid` (`taskset -a -p -c`).
fn set_cpus(pid: u32, cpus: &str) {
    let ok = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("e2e: taskset -c {cpus} of {pid} failed");
    }
}

impl Bench {
    /// Runs `f` with the simulator on the last CPU and the server and the client on the
    /// others, as if the gateway were another host: the limit and mxpva, each with its
    /// client, then have the same CPUs. Everything may run anywhere again afterwards.
    pub(crate) fn pinned<T>(
        &self,
        s: &mut Served,
        sim: &Sim,
        f: impl FnOnce(&mut Served) -> T,
    ) -> T {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus < 2 || !self.opts.pin {
            return f(s);
        }
        let (all, last, rest) = (
            format!("0-{}", cpus - 1),
            format!("{}", cpus - 1),
            format!("0-{}", cpus - 2),
        );
        let pids = [s.proc.child.id(), s.monitor.child.id()];
        set_cpus(sim.proc.child.id(), &last);
        for &pid in &pids {
            set_cpus(pid, &rest);
        }
        let out = f(s);
        for pid in pids.into_iter().chain([sim.proc.child.id()]) {
            set_cpus(pid, &all);
        }
        out
    }

    /// mxpva's `Updates:Coalesced` now (read by a pvxs get).
    fn coalesced_count(&self, s: &Served) -> f64 {
        let mut get = Proc::spawn(
            &self.e2e,
            &["get".into(), COALESCED_PV.into()],
            &s.pva.client,
        );
        let line = get.expect("value").pop().unwrap_or_default();
        get.finish();
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// One round of `m` events offered at `pace`: updates received, when the last came,
    /// whether the last value came, the server's and the simulator's CPU (s), seconds
    /// from the start to the last update.
    fn round(&self, s: &mut Served, sim: Option<&Sim>, m: u64, pace: Pace) -> Value {
        let wait_s = match pace {
            Pace::Flood => 120.0,
            Pace::Rate(r) => m as f64 / r + 30.0,
        };
        s.monitor.say(&format!("count {m} {wait_s}"));
        std::thread::sleep(Duration::from_millis(50));
        let cpu = |pid: Option<u32>| pid.map_or(f64::NAN, procfs::cpu_s);
        let (server_pid, sim_pid) = (Some(s.proc.child.id()), sim.map(|x| x.proc.child.id()));
        let (server_cpu0, sim_cpu0) = (cpu(server_pid), cpu(sim_pid));
        let client_cpu0 = cpu(Some(s.monitor.child.id()));
        let switches0 = procfs::context_switches(s.proc.child.id());
        let t0 = now_ns();
        let burst = match s.sys {
            System::Limit => {
                match pace {
                    Pace::Flood => s.proc.say(&format!("burst {m}")),
                    Pace::Rate(r) => s.proc.say(&format!("rate {m} {r}")),
                }
                None
            }
            _ => {
                let remote = sim.unwrap().remote.clone();
                let id = s.session.clone().unwrap();
                Some(self.rt.spawn(async move {
                    match pace {
                        Pace::Flood => remote.burst(&id, m, true).await,
                        Pace::Rate(r) => remote.burst_at_rate(&id, m, r).await,
                    }
                }))
            }
        };
        let done = s.monitor.expect("done").pop().unwrap();
        let w: Vec<&str> = done.split_whitespace().collect();
        let updates: f64 = w[1].parse().unwrap();
        let last_ns: i64 = w[2].parse().unwrap();
        let complete = w[3] == "1";
        let mut failed = false;
        match burst {
            None => {
                s.proc.expect("done");
            }
            Some(b) => {
                if let Err(e) = self.rt.block_on(b).unwrap() {
                    eprintln!("e2e: {} burst of {m} failed: {e}", s.sys.name());
                    failed = true;
                    self.renew_session(s, sim);
                }
            }
        }
        let (server_cpu, sim_cpu) = (cpu(server_pid) - server_cpu0, cpu(sim_pid) - sim_cpu0);
        let client_cpu = cpu(Some(s.monitor.child.id())) - client_cpu0;
        // Updates still on their way (a round that fell behind) land before the next.
        s.monitor.say("quiet 100 30");
        s.monitor.expect("done");
        // The server's context switches per update, by thread.
        let switches: serde_json::Map<String, Value> = procfs::context_switches(s.proc.child.id())
            .into_iter()
            .map(|(name, n)| {
                let before = switches0.get(&name).copied().unwrap_or(0.0);
                (name, json!((n - before) / updates.max(1.0)))
            })
            .collect();
        json!({
            "switches_per_update": switches,
            "events": m,
            "updates": updates,
            "complete": complete,
            "failed": failed,
            "seconds": (last_ns - t0) as f64 / 1e9,
            "server_cpu_s": server_cpu,
            "sim_cpu_s": sim_cpu,
            "client_cpu_s": client_cpu,
        })
    }

    /// One flood round of `m` events.
    pub(crate) fn flood(&self, s: &mut Served, sim: Option<&Sim>, m: u64) -> Value {
        let mxpva = s.sys == System::Mxpva;
        let before = if mxpva {
            self.coalesced_count(s)
        } else {
            f64::NAN
        };
        let r = self.round(s, sim, m, Pace::Flood);
        let coalesced = if mxpva {
            // The status PVs are posted once a second: the count of the round is there
            // a second after its last coalesced change.
            std::thread::sleep(Duration::from_millis(1100));
            (self.coalesced_count(s) - before) / m as f64
        } else {
            f64::NAN
        };
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let (updates, secs) = (f("updates"), f("seconds"));
        let complete = r["complete"].as_bool() == Some(true);
        json!({
            "events": m,
            "complete": complete,
            "seconds": secs,
            "delivered_per_s": updates / secs,
            "events_per_s": if complete { m as f64 / secs } else { f64::NAN },
            "coalesced": coalesced,
            "squashed": 1.0 - updates / m as f64 - if coalesced.is_nan() { 0.0 } else { coalesced },
            "cpu_us_per_event": f("server_cpu_s") * 1e6 / m as f64,
            "cpu_us_per_update": f("server_cpu_s") * 1e6 / updates,
            "sim_cpu_us_per_event": f("sim_cpu_s") * 1e6 / m as f64,
        })
    }

    /// One round at `rate` events/s over `n` tags; whether it kept up.
    fn paced(&self, s: &mut Served, sim: Option<&Sim>, n: usize, rate: f64) -> Value {
        let m = (n as u64).max((rate * LADDER_SECS) as u64);
        let r = self.round(s, sim, m, Pace::Rate(rate));
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let (updates, secs) = (f("updates"), f("seconds"));
        let due = m as f64 / rate;
        let kept = r["complete"].as_bool() == Some(true)
            && r["failed"].as_bool() == Some(false)
            && updates == m as f64
            && secs <= due * (1.0 + LATE_SHARE) + LATE_S;
        json!({
            "rate": rate,
            "events": m,
            "updates": updates,
            "seconds": secs,
            "late_s": secs - due,
            "switches_per_update": r["switches_per_update"],
            "kept_up": kept,
            "cpu_us_per_update": f("server_cpu_s") * 1e6 / updates,
            "sim_cpu_us_per_update": f("sim_cpu_s") * 1e6 / updates,
            "client_cpu_us_per_update": f("client_cpu_s") * 1e6 / updates,
        })
    }

    /// The highest paced rate at which the client receives every event on time, by a
    /// ladder of rounds; `paced` ([`Bench::paced_cpu`]'s rounds at [`PACED_RATE`]) is its
    /// first rung: if they all kept up, it climbs from there, if none did, it steps down.
    pub(crate) fn sustained(
        &self,
        s: &mut Served,
        sim: Option<&Sim>,
        n: usize,
        paced: &Value,
    ) -> Value {
        let round3 = |x: f64| {
            let scale = 10f64.powf(x.log10().floor() - 2.0);
            (x / scale).round() * scale
        };
        let kept: Vec<bool> = paced["rounds"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|r| r["kept_up"].as_bool() == Some(true))
                    .collect()
            })
            .unwrap_or_default();
        let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
        let mut rate = PACED_RATE;
        if !kept.is_empty() && kept.iter().all(|&k| k) {
            lo = Some(PACED_RATE);
            rate = round3(PACED_RATE * LADDER_STEP);
        } else if !kept.is_empty() && kept.iter().all(|&k| !k) {
            hi = Some(PACED_RATE);
            rate = round3(PACED_RATE / LADDER_STEP);
        }
        let mut rounds = Vec::new();
        for _ in 0..LADDER_ROUNDS {
            let r = self.paced(s, sim, n, rate);
            let kept = r["kept_up"].as_bool() == Some(true);
            println!(
                "e2e: {} N={n} at {rate}/s: {} ({} of {} updates, {:+.3} s late)",
                s.sys.name(),
                if kept { "kept up" } else { "fell behind" },
                r["updates"],
                r["events"],
                r["late_s"].as_f64().unwrap_or(f64::NAN),
            );
            rounds.push(r);
            if kept {
                lo = Some(lo.map_or(rate, |l: f64| l.max(rate)));
            } else {
                hi = Some(hi.map_or(rate, |h: f64| h.min(rate)));
            }
            rate = match (lo, hi) {
                (Some(l), None) => round3(l * LADDER_STEP),
                (None, Some(h)) if h / LADDER_STEP < 1_000.0 => break,
                (None, Some(h)) => round3(h / LADDER_STEP),
                (Some(l), Some(h)) if h / l <= BRACKET => break,
                (Some(l), Some(h)) => round3((l * h).sqrt()),
                (None, None) => break,
            };
        }
        json!({
            "per_s": lo.unwrap_or(f64::NAN),
            "fell_behind_at": hi.unwrap_or(f64::NAN),
            "rounds": rounds,
        })
    }

    /// CPU per update at [`PACED_RATE`], the median of `rounds` rounds.
    pub(crate) fn paced_cpu(&self, s: &mut Served, sim: Option<&Sim>, n: usize) -> Value {
        println!(
            "e2e: {} N={n}: CPU per update at {PACED_RATE}/s (pid {})",
            s.sys.name(),
            s.proc.child.id()
        );
        let rounds: Vec<Value> = (0..self.opts.rounds.max(1))
            .map(|_| self.paced(s, sim, n, PACED_RATE))
            .collect();
        let med = |key: &str| {
            median(
                rounds
                    .iter()
                    .map(|r| r[key].as_f64().unwrap_or(f64::NAN))
                    .collect(),
            )
        };
        json!({
            "rate": PACED_RATE,
            "kept_up": rounds.iter().all(|r| r["kept_up"].as_bool() == Some(true)),
            "cpu_us_per_update": med("cpu_us_per_update"),
            "sim_cpu_us_per_update": med("sim_cpu_us_per_update"),
            "client_cpu_us_per_update": med("client_cpu_us_per_update"),
            "switches_per_update": rounds.last().map_or(Value::Null, |r| r["switches_per_update"].clone()),
            "rounds": rounds,
        })
    }

    /// After a burst failed (the session faulted), the session the system opened again.
    pub(crate) fn renew_session(&self, s: &mut Served, sim: Option<&Sim>) {
        if let (Some(sim), Some(n)) = (sim, s.n) {
            s.session = Some(self.wait_session(s.sys, n, sim));
        }
    }
}
