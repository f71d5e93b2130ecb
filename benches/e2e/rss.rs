//! The RSS rows alone (`--rss-only`): several starts of each system at N = 1 and the
//! largest N, each read by the same rules (issue 23; docs/performance.md "Memory per PV").

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{logged_at, median, pva_env, wait_port, Proc, Pva};
use crate::{procfs, Bench, Sim, System, PREFIX};

impl Bench {
    /// VmRSS (KiB) of the server of `sys` serving `n` PVs with no client connected: once
    /// every tag is subscribed (the limit: every PV open) and RSS holds still for 0.5 s.
    pub(crate) fn rss_alone(&self, sys: System, n: usize, sim: Option<&Sim>) -> f64 {
        let pva = pva_env();
        let log = self.dir.join(format!("logs/{}-{n}-alone.log", sys.name()));
        let proc = self.spawn_up(sys, n, sim, &pva, &log);
        let rss = procfs::steady_rss_kb(proc.child.id());
        self.stop_server(sys, proc);
        rss
    }

    /// VmRSS (KiB) of the server of `sys` serving `n` PVs, with one client monitoring
    /// every PV: the server is up first (as for [`Bench::rss_alone`]), then the monitor
    /// starts (`rss_pace` PVs at a time), and RSS is read once the monitor has a valid
    /// value of every PV and RSS holds still. NaN when the monitor did not get every PV.
    fn rss_monitored(&self, sys: System, n: usize, sim: Option<&Sim>) -> f64 {
        let pva = pva_env();
        let log = self
            .dir
            .join(format!("logs/{}-{n}-monitored.log", sys.name()));
        let proc = self.spawn_up(sys, n, sim, &pva, &log);
        wait_port(pva.tcp);
        let mut args = vec!["monitor".to_string(), PREFIX.into(), n.to_string()];
        if self.opts.rss_pace > 0 {
            args.push(self.opts.rss_pace.to_string());
        }
        let mut monitor = Proc::spawn(&self.e2e, &args, &pva.client);
        let ready = monitor.expect("READY");
        let valid: usize = ready[ready.len() - 1]
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let rss = if valid < n {
            eprintln!("e2e: {} served {valid} of {n} PVs; see its log", sys.name());
            f64::NAN
        } else {
            procfs::steady_rss_kb(proc.child.id())
        };
        monitor.finish();
        self.stop_server(sys, proc);
        rss
    }

    /// Spawns the server of `sys` and returns once it is up: the limit has opened every
    /// PV; a bridge has every tag subscribed and has logged its session up.
    fn spawn_up(&self, sys: System, n: usize, sim: Option<&Sim>, pva: &Pva, log: &Path) -> Proc {
        let mut proc = self.spawn_server(sys, n, sim, pva, log);
        match (sys, sim) {
            (System::Limit, _) => {
                proc.expect("READY");
            }
            (_, Some(sim)) => {
                self.wait_session(sys, n, sim);
                while logged_at(&log, "gateway session up").is_none() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            (_, None) => unreachable!("a bridge needs a simulator"),
        }
        proc
    }

    /// The RSS rows alone (`--rss-only`): at each N, `rss_rounds` starts of each system,
    /// the limit first in even rounds and mxpva first in odd ones: a start with the
    /// monitor on every PV, then a start with no client, each read by the same rules
    /// for both systems (`rss_monitored`, `rss_alone`). One JSON
    /// object per system and N: the medians as `rss_kb` and `rss_alone_kb` (what the
    /// table reads), every round's figure under `rss_rounds`.
    pub(crate) fn rss_only(&self) -> Vec<Value> {
        let systems: Vec<System> = self
            .opts
            .systems()
            .into_iter()
            .filter(|&s| s != System::Peer)
            .collect();
        let mut results = Vec::new();
        for &n in &self.opts.sizes {
            let sim_n = self.start_sim(n);
            let mut monitored = vec![Vec::new(); systems.len()];
            let mut alone = vec![Vec::new(); systems.len()];
            for round in 0..self.opts.rss_rounds {
                let mut order: Vec<usize> = (0..systems.len()).collect();
                if round % 2 == 1 {
                    order.reverse();
                }
                for k in order {
                    let sys = systems[k];
                    let sim = (sys != System::Limit).then_some(&sim_n);
                    monitored[k].push(self.rss_monitored(sys, n, sim));
                    alone[k].push(self.rss_alone(sys, n, sim));
                    eprintln!(
                        "e2e: RSS {} N={n} round {}: monitored {:.0} KiB, no client {:.0} KiB",
                        sys.name(),
                        round + 1,
                        monitored[k].last().copied().unwrap_or(f64::NAN),
                        alone[k].last().copied().unwrap_or(f64::NAN),
                    );
                }
            }
            for (k, &sys) in systems.iter().enumerate() {
                let r = json!({
                    "system": sys.name(),
                    "n": n,
                    "rss_kb": median(monitored[k].clone()),
                    "rss_alone_kb": median(alone[k].clone()),
                    "rss_rounds": { "monitored": monitored[k], "alone": alone[k] },
                });
                println!("e2e: {r}");
                results.push(r);
            }
            sim_n.proc.terminate(Duration::from_secs(5));
        }
        results
    }
}
