//! Following Galaxy deploys: `[[discover]]` rules made live.
//!
//! A task of its own (so discovery never blocks the serving loop) watches
//! WatchDeployEvents. Each event (the first, which is the current state, included) leads
//! to a full re-discovery of the rules (`crate::discover`); a sequence gap or a reconnect
//! of the watch does too (the log says which). Requests that come while a discovery runs
//! are coalesced into one more. The task validates the candidates with the config it was
//! given (`Config::rule_pvs`) and hands the PVs to the bridge as [`Found`]; the bridge
//! merges them with the explicit `[[pv]]` tables and applies the diff through the live
//! core (`apply.rs`), the only part done in the serving loop:
//! added attributes become PVs, removed ones disconnect, retyped ones re-open, unchanged
//! ones are untouched. A discovery that fails keeps the mapping in service.
//!
//! A SIGHUP reload hands the new rules (and gateway settings) to the task, which
//! discovers again; meanwhile the rule-made PVs in service are made again at once under
//! the new rules (`Config::rule_pvs_in_force`, through `Config::merge_rule_pvs`), so their
//! access group and the other keys of the rules in force hold even if that discovery fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::diff::diff;
use crate::bridge::Bridge;
use crate::config::{Config, RulePvs};
use crate::discover::{discover, Discovery};
use crate::gateway::{Backoff, ClientOptions, GatewayClient};

/// A discovery's result, for the bridge: the PVs the rules made, validated in the task.
#[derive(Debug)]
pub(in crate::bridge) struct Found {
    /// The rules it was made with ([`Follower::generation`]).
    pub generation: u64,
    pub result: Result<(Discovery, RulePvs), String>,
    /// Why it ran (deploy, gap, reconnect, reload).
    pub why: String,
    pub started: Instant,
}

/// What the task discovers with.
#[derive(Clone)]
struct Rules {
    generation: u64,
    /// The config whose rules, `[defaults]` and `[users]` make the PVs.
    config: Arc<Config>,
    opts: ClientOptions,
}

/// The deploy-following task.
pub(in crate::bridge) struct Follower {
    requests: mpsc::UnboundedSender<Rules>,
    task: tokio::task::JoinHandle<()>,
    pub generation: u64,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Follower {
    pub fn spawn(
        config: Arc<Config>,
        opts: ClientOptions,
        backoff: (Duration, Duration),
        results: mpsc::UnboundedSender<Found>,
    ) -> Self {
        let (requests, rx) = mpsc::unbounded_channel();
        let first = Rules {
            generation: 1,
            config,
            opts,
        };
        let task = tokio::spawn(follow(first, rx, results, backoff));
        Follower {
            requests,
            task,
            generation: 1,
        }
    }

    /// A follower whose discoveries the tests deliver themselves (generation 1).
    #[cfg(test)]
    pub fn idle() -> Self {
        let (requests, _) = mpsc::unbounded_channel();
        Follower {
            requests,
            task: tokio::spawn(async {}),
            generation: 1,
        }
    }

    /// New rules (after a reload): discovered again at once.
    pub fn update(&mut self, config: Arc<Config>, opts: ClientOptions) {
        self.generation += 1;
        let _ = self.requests.send(Rules {
            generation: self.generation,
            config,
            opts,
        });
    }
}

async fn run_discovery(
    client: &GatewayClient,
    r: &Rules,
    why: String,
    results: &mpsc::UnboundedSender<Found>,
) {
    let started = Instant::now();
    info!(why = %why, "discovering the Galaxy");
    let c = &r.config;
    let result = discover(client.galaxy(), &c.discover, c.defaults.boolean)
        .await
        .map(|d| {
            // Validation here too: the serving loop only diffs and applies.
            let made = c.rule_pvs(&d.candidates);
            (d, made)
        })
        .map_err(|e| e.to_string());
    let _ = results.send(Found {
        generation: r.generation,
        result,
        why,
        started,
    });
}

async fn follow(
    mut rules: Rules,
    mut requests: mpsc::UnboundedReceiver<Rules>,
    results: mpsc::UnboundedSender<Found>,
    (initial, max): (Duration, Duration),
) {
    let mut backoff = Backoff::new(initial, max);
    let mut first = true;
    loop {
        if !first {
            // Wait before reconnecting; new rules cut the wait short.
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                r = requests.recv() => match r {
                    Some(r) => rules = r,
                    None => return,
                },
            }
        }
        first = false;
        let client = match GatewayClient::connect(&rules.opts).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "deploy watch: cannot reach the gateway; retrying");
                continue;
            }
        };
        let mut events = match client.galaxy().watch_deploy_events(None).await {
            Ok(ev) => ev,
            Err(e) => {
                warn!(error = %e, "deploy watch: WatchDeployEvents refused; discovering once, then retrying");
                run_discovery(&client, &rules, "no deploy watch".into(), &results).await;
                continue;
            }
        };
        let mut last: Option<u64> = None;
        let mut pending: Option<String> = None;
        loop {
            if let Some(why) = pending.take() {
                run_discovery(&client, &rules, why, &results).await;
            }
            let mut lost = false;
            tokio::select! {
                ev = events.next() => {
                    let mut ev = ev;
                    // Events that came together are one discovery.
                    loop {
                        match ev {
                            Some(Ok(e)) => {
                                backoff.reset();
                                let why = match last {
                                    None => format!("deploy watch (re)connected (deploy {})", e.sequence),
                                    Some(l) if e.sequence != l.wrapping_add(1) => format!(
                                        "deploy sequence gap ({l} -> {}): full re-discovery",
                                        e.sequence
                                    ),
                                    Some(_) => format!("deploy {}", e.sequence),
                                };
                                last = Some(e.sequence);
                                pending = Some(match pending.take() {
                                    Some(p) if p.contains("gap") || p.contains("connected") => p,
                                    _ => why,
                                });
                            }
                            Some(Err(e)) => {
                                warn!(error = %e, "deploy watch failed; reconnecting");
                                lost = true;
                                break;
                            }
                            None => {
                                warn!("the gateway ended the deploy watch; reconnecting");
                                lost = true;
                                break;
                            }
                        }
                        match events.next().now_or_never() {
                            Some(next) => ev = next,
                            None => break,
                        }
                    }
                }
                r = requests.recv() => match r {
                    Some(r) => {
                        let relink = r.opts.endpoint != rules.opts.endpoint;
                        rules = r;
                        lost = relink;
                        pending = Some("config reload".into());
                    }
                    None => return,
                },
            }
            if lost {
                // The next watch starts with the current state: a full re-discovery.
                break;
            }
        }
    }
}

impl Bridge {
    /// Starts, updates or stops following deploys after the config changed.
    pub(in crate::bridge) fn follow_rules(&mut self) {
        if self.config.discover.is_empty() {
            self.follower = None;
            self.rule_pvs.clear();
            return;
        }
        let config = Arc::new(self.config.clone());
        match self.follower.as_mut() {
            Some(f) => f.update(config, self.opts.clone()),
            None => {
                let gw = &self.config.gateway;
                self.follower = Some(Follower::spawn(
                    config,
                    self.opts.clone(),
                    (gw.reconnect_initial, gw.reconnect_max),
                    self.discovered.0.clone(),
                ));
            }
        }
    }

    /// A discovery finished: its PVs, with the explicit ones, become the mapping.
    pub(in crate::bridge) fn on_discovered(&mut self, found: Found) {
        let Some(generation) = self.follower.as_ref().map(|f| f.generation) else {
            return;
        };
        if found.generation != generation {
            // Made with rules since replaced; the discovery of the new ones follows.
            return;
        }
        let (discovery, made) = match found.result {
            Ok(d) => d,
            Err(e) => {
                warn!(why = %found.why, error = %e, "discovery failed: the mapping in service stays");
                return;
            }
        };
        let discovered_ms = found.started.elapsed().as_secs_f64() * 1e3;
        for line in discovery.skipped.iter().chain(&made.refused).take(20) {
            warn!("discovery: not mapped: {line}");
        }
        if !made.read_only_no_user.is_empty() {
            warn!(
                count = made.read_only_no_user.len(),
                first = %made.read_only_no_user.first().map_or("", String::as_str),
                "SecuredWrite/VerifiedWrite attributes served read-only: no `user`/`verifier` for them in [defaults] or the rule"
            );
        }
        self.rule_pvs = made.pvs;
        let (applied, _) = self.apply_mapping();
        info!(
            why = %found.why,
            objects = discovery.objects,
            rule_pvs = self.rule_pvs.len(),
            skipped = discovery.skipped.len() + made.refused.len(),
            added = applied.added,
            removed = applied.removed,
            reopened = applied.reopened,
            changed_in_place = applied.changed_in_place,
            discovery_ms = discovered_ms,
            total_ms = found.started.elapsed().as_secs_f64() * 1e3,
            "discovered mapping applied"
        );
    }

    /// Applies the desired mapping: the explicit PVs and the rule-made ones. An empty
    /// diff is applied too (applying also settles what a reload changed in the alarms).
    /// Returns what was done, and whether the diff was empty.
    pub(in crate::bridge) fn apply_mapping(&mut self) -> (super::apply::Applied, bool) {
        let merged = self.config.merge_rule_pvs(self.rule_pvs.clone());
        for e in &merged.errors {
            warn!("{e}: the first one is served");
        }
        for line in merged.refused.iter().take(20) {
            warn!("rule-made PVs under the reloaded rules: not mapped: {line}");
        }
        self.access.set_read_pvs(&self.config, &merged.pvs);
        let d = diff(self.pvs.configs(), &merged.pvs);
        let empty = d.is_empty();
        (self.apply(d), empty)
    }
}
