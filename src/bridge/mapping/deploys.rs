//! Following Galaxy deploys: `[[discover]]` rules made live.
//!
//! A task of its own (so discovery never blocks the serving loop) watches
//! WatchDeployEvents. Each event (the first, which is the current state, included) leads
//! to a full re-discovery of the rules (`crate::discover`); a sequence gap or a reconnect
//! of the watch does too (the log says which). Requests that come while a discovery runs
//! are coalesced into one more. The task validates the candidates with the config it was
//! given (`Config::rule_pvs`) and hands the PVs to the bridge as [`Found`]; the bridge
//! merges them with the explicit `[[pv]]` tables and applies the diff through the live
//! core (`core/mapping.rs`), the only part done in the serving loop:
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

use crate::config::{Config, RulePv, RulePvs};
use crate::discover::{discover, Discovery};
use crate::gateway::{Backoff, ClientOptions, GatewayClient};

/// The `[[discover]]` rules as the bridge holds them: the PVs they made of the last
/// discovery, the task that follows deploys (while the config has rules), and its
/// discoveries.
pub(in crate::bridge) struct Rules {
    pub pvs: Vec<RulePv>,
    pub follower: Option<Follower>,
    pub discovered: (mpsc::UnboundedSender<Found>, mpsc::UnboundedReceiver<Found>),
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            pvs: Vec::new(),
            follower: None,
            discovered: mpsc::unbounded_channel(),
        }
    }
}

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
struct TaskRules {
    generation: u64,
    /// The config whose rules, `[defaults]` and `[users]` make the PVs.
    config: Arc<Config>,
    opts: ClientOptions,
}

/// The deploy-following task.
pub(in crate::bridge) struct Follower {
    requests: mpsc::UnboundedSender<TaskRules>,
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
        let first = TaskRules {
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
        let _ = self.requests.send(TaskRules {
            generation: self.generation,
            config,
            opts,
        });
    }
}

async fn run_discovery(
    client: &GatewayClient,
    r: &TaskRules,
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
    mut rules: TaskRules,
    mut requests: mpsc::UnboundedReceiver<TaskRules>,
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
