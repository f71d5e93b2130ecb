//! The bridge: serves mapped System Platform attributes as PVAccess PVs.
//!
//! One task owns all state. It keeps a link to the gateway (connect, open a session,
//! Register, SubscribeBulk in chunks, one event stream demultiplexed by item handle),
//! posts each data change to its PV with the quality as `alarm` and the source time as
//! `timeStamp`, and turns puts into gateway writes that complete on OnWriteComplete.
//!
//! When the gateway is lost every PV goes INVALID ("gateway connection lost"), keeping
//! its last value; puts then fail at once. The link comes back with capped exponential
//! backoff, a new session and one new subscription of every tag.
//!
//! The PV set changes while serving (issue 11). Three parts, one code path:
//! - the **registry** (`registry.rs`): mapped PVs by a stable `PvId` (never
//!   reused), by name, and by item handle of the current session. Everything that names
//!   a PV outside the registry (write messages, alarm owners, the dirty list, strays)
//!   holds an id, so a late message about a removed PV finds nothing;
//! - the **desired mapping and its diff** (`diff.rs`, pure): the config's PVs compared by
//!   name with the registry give added, removed and changed PVs, a change named by its
//!   kinds (tag, type, metadata, writability, write mode, alarms, limits, timestamp).
//!   Start is the first diff, against an empty registry (see [`run_reloading`]);
//! - **applying a diff while serving** (`apply.rs`): removed PVs are retired (puts fail,
//!   clients disconnected, `:ACK` gone) and unsubscribed; tag/type/writability changes
//!   re-open the PV under the same id and re-subscribe its tag; other changes are taken in
//!   place; added PVs are served and subscribed. Gateway work goes in bulk
//!   (UnsubscribeBulk, SubscribeBulk) in the live session, in a task whose item handles
//!   come back as `Internal::Subscribed`; data changes of items not known yet are held
//!   meanwhile. `reload.rs` re-reads the file on SIGHUP (validate, then diff; `[gateway]`
//!   and `[users]` changes reconnect; settings that need a restart are named).
//!
//! Files:
//! - `link.rs`: the gateway link: connect, session, subscribe, lost links and their
//!   stale sessions.
//! - `writes.rs`: the write path: puts -> gateway writes, caps, completion.
//! - `guard.rs`: access security (the ACF) and the audit trail, before the write path.
//! - `registry.rs`, `diff.rs` (tests in `diff/tests.rs`), `apply.rs`, `reload.rs`: above.
//! - `combine.rs`: how the parts of a PV's alarm join (shared by `pv.rs` and `alarms/`,
//!   so neither imports the other's file).
//! - `convert.rs`: MXAccess values <-> PV values, exact or refused (`isotime.rs`: Time text).
//! - `quality.rs`: quality -> `alarm`.
//! - `pv.rs`: one mapped PV (its structure, metadata and pending writes).
//! - `alarms/`: System Platform alarms: the feed, their PVs, `:ACK`, the table
//!   (`table.rs`), the `kind` severity scheme (`severity.rs`), following a changed
//!   mapping (`remap.rs`) and reloaded alarm settings (`reload.rs`).
//! - `limits.rs`: local `value_alarm` limits applied to `alarm`.
//! - `strays.rs`: events the bridge ignores (unknown items, undecodable), logged once.
//! - `stamp.rs`: the rule that keeps each PV's posted `timeStamp` from going back.
//! - `demand.rs`: on-demand PVs (`subscribe = "on_demand"`): advised while watched (pvxs
//!   first connect / last disconnect), un-advised `linger` after the last client left.
//! - `operate.rs`: the status PVs (`crate::status`) and systemd notifications: state
//!   changes as they happen, one relaxed atomic add per data change, and a tick (at
//!   least once a second) that counts INVALID PVs and feeds systemd's watchdog.
//!
//! A diff applied while a connect is under way is caught up after it: PVs added or
//! re-tagged meanwhile are subscribed then, items of PVs removed meanwhile unsubscribed.
//! The figure: `benches/reload.rs` (docs/performance.md).
//!
//! `[alarms]` and `[[alarm_pv]]` changes apply too (`alarms/reload.rs`: alarm PVs, the
//! table, `:ACK` names, the feed restarted on a new filter).
//!
//! `[[discover]]` rules are a source of diffs too (`deploys.rs`, issue 12): a task follows
//! WatchDeployEvents, re-discovers on each deploy, and the rule-made PVs join the config's
//! (`Config::merge_rule_pvs`) in the diff applied here.
//!
//! Still to do: the `[limits]` sizes need a restart.

mod alarms;
mod apply;
mod combine;
mod convert;
#[cfg(test)]
mod convert_props;
mod demand;
mod deploys;
mod diff;
mod guard;
mod isotime;
mod limits;
mod link;
mod operate;
mod pace;
mod pv;
mod quality;
mod registry;
mod reload;
mod stamp;
mod strays;
mod write_calls;
mod write_failure;
mod writes;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::lock::Mutex;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::access::audit::AuditTrail;
use crate::config::{self, Config};
use crate::gateway::{ClientOptions, EventStream, SessionEvent};
use crate::pva::{self, PvEvent, Server, ServerConfig};

pub use convert::{default_pv_type, iso8601, to_mx, to_nt};
pub use quality::quality_alarm;

pub(crate) use link::client_options;
use link::{close_stale_sessions, Connected, Link};
use registry::{PvId, Registry};
use writes::Internal;

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("PVAccess server: {0}")]
    Pva(#[from] pva::PvaError),
    #[error("gateway API key: {0}")]
    ApiKey(String),
    #[error("access security: {0}")]
    Access(#[from] crate::access::AccessError),
    #[error("audit trail: cannot start its writer: {0}")]
    Audit(std::io::Error),
}

/// The PVAccess server settings: `[server]`, falling back to `EPICS_PVAS_*`.
pub fn server_config(s: &config::Server) -> ServerConfig {
    let mut c = ServerConfig::from_env();
    if let Some(ifs) = &s.interfaces {
        c = c.interfaces(ifs.iter().map(|a| a.to_string()));
    }
    if let Some(p) = s.tcp_port {
        c = c.tcp_port(p);
    }
    if let Some(p) = s.udp_port {
        c = c.udp_port(p);
    }
    if let Some(b) = &s.beacon_destinations {
        c = c.beacon_destinations(b.iter().cloned());
    }
    if let Some(a) = s.auto_beacon {
        c = c.auto_beacon(a);
    }
    c
}

/// Reloads of the config: one message per request (SIGHUP), and the file to read.
pub struct Reload {
    pub path: PathBuf,
    pub requests: mpsc::UnboundedReceiver<()>,
}

/// Runs the bridge until `shutdown` resolves, serving the mapping of `config` as it is.
pub async fn run(
    config: Config,
    pva_config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BridgeError> {
    run_reloading(config, pva_config, shutdown, None).await
}

/// [`run`], reloading the config from [`Reload::path`] on each of its requests.
pub async fn run_reloading(
    config: Config,
    pva_config: ServerConfig,
    shutdown: impl Future<Output = ()>,
    reload: Option<Reload>,
) -> Result<(), BridgeError> {
    let opts = client_options(&config.gateway, &config.limits)?;
    let access = crate::access::Access::start(&config)?;
    let audit = AuditTrail::start(config.audit.as_ref().map(|a| a.file.as_path()))
        .map_err(BridgeError::Audit)?;
    let server = Arc::new(Server::new(&pva_config)?);
    let (events_tx, mut pv_events) = pva::event_channel_with(pva::PutLimits {
        max_queued: config.limits.max_puts_queued,
        max_array_length: config.limits.max_array_length,
        max_string_length: config.limits.max_string_length,
    });
    // Puts refused in pvxs's callback meet access security and the audit trail too.
    events_tx.forward_refused_puts();
    // Start is the first diff, against an empty registry: it adds every PV.
    let mut pvs = Registry::default();
    let start = diff::diff(std::iter::empty(), &diff::desired(&config));
    for cfg in start.added {
        pvs.add(cfg, &config.defaults, &server, &events_tx)?;
    }
    let alarms = alarms::Alarms::new(&config, &opts, server.clone(), &events_tx, &pvs)?;
    let in_flight = Arc::default();
    let ops = operate::Ops::new(&config, &server, &events_tx, &in_flight)?;
    server.start()?;
    let info = server.info()?;
    info!(
        pvs = pvs.len(),
        tcp_port = info.tcp_port,
        udp_port = info.udp_port,
        interfaces = ?info.interfaces,
        "serving PVs"
    );
    let mut bridge = Bridge {
        config,
        opts,
        server: server.clone(),
        events: events_tx,
        subscribing: 0,
        early: Vec::new(),
        pace: pace::Pacing::default(),
        pvs,
        link: None,
        lost_reason: None,
        stale_sessions: Arc::default(),
        next_write: 0,
        in_flight,
        writes: write_calls::WriteCalls::default(),
        internal: mpsc::unbounded_channel(),
        alarms,
        strays: strays::Strays::default(),
        dirty: Vec::new(),
        demand: demand::Demand::default(),
        ops,
        access,
        audit,
        rule_pvs: Vec::new(),
        follower: None,
        discovered: mpsc::unbounded_channel(),
    };
    bridge.follow_rules();
    bridge.serve(&mut pv_events, shutdown, reload).await;
    drop(bridge);
    drop(server);
    Ok(())
}

struct Bridge {
    config: Config,
    opts: ClientOptions,
    /// The mapped PVs, by id, by name and by item handle of the current session.
    pvs: Registry,
    /// Where PVs added while serving are served, and where their puts go.
    server: Arc<Server>,
    events: pva::EventSender,
    /// Subscriptions of diffs under way in the live session, and the data changes of
    /// items not known yet held meanwhile (see `apply.rs`).
    subscribing: usize,
    early: Vec<SessionEvent>,
    /// The room of the live session's subscription window held by PVs (`pace.rs`).
    pace: pace::Pacing,
    link: Option<Link>,
    /// Why the link is down, as last posted to the PVs.
    lost_reason: Option<String>,
    /// Sessions of lost links not yet closed at the gateway: the next connect closes them
    /// before it opens a new one, so the gateway never holds two subscriptions of a tag.
    stale_sessions: Arc<Mutex<Vec<String>>>,
    next_write: u64,
    /// Puts sent to the gateway and not yet answered, over all PVs (each
    /// [`PendingWrite`] holds one count; see [`pv::InFlight`]).
    in_flight: Arc<AtomicUsize>,
    /// Puts to send, write calls in flight, write timeouts and settle bounds.
    writes: write_calls::WriteCalls,
    /// Results of subscriptions made while serving, from helper tasks.
    internal: (
        mpsc::UnboundedSender<Internal>,
        mpsc::UnboundedReceiver<Internal>,
    ),
    /// System Platform alarms (their own feed, `:ACK` PVs, the table).
    alarms: alarms::Alarms,
    /// Events ignored, so each kind is logged once per session.
    strays: strays::Strays,
    /// PVs with news taken in this turn, each posted once at its end.
    dirty: Vec<PvId>,
    /// On-demand PVs: which are watched, lingering, waiting for a first value.
    demand: demand::Demand,
    /// The status PVs and systemd notifications (`operate.rs`).
    ops: operate::Ops,
    /// The ACF in force (`guard.rs`).
    access: crate::access::Access,
    /// The audit trail of puts; `audit.health()` is for the status PVs.
    audit: AuditTrail,
    /// PVs the `[[discover]]` rules made of the last discovery (`deploys.rs`).
    rule_pvs: Vec<config::RulePv>,
    /// The task that follows deploys, while the config has rules.
    follower: Option<deploys::Follower>,
    /// Its discoveries.
    discovered: (
        mpsc::UnboundedSender<deploys::Found>,
        mpsc::UnboundedReceiver<deploys::Found>,
    ),
}

/// At most this many gateway events are taken in one turn, so that puts are still
/// served during a flood.
const MAX_TURN: usize = 4096;

impl Bridge {
    async fn serve(
        &mut self,
        pv_events: &mut pva::EventReceiver,
        shutdown: impl Future<Output = ()>,
        reload: Option<Reload>,
    ) {
        tokio::pin!(shutdown);
        let (reload_path, mut reloads) = match reload {
            Some(r) => (Some(r.path), Some(r.requests)),
            None => (None, None),
        };
        let gw = &self.config.gateway;
        let mut backoff = crate::gateway::Backoff::new(gw.reconnect_initial, gw.reconnect_max);
        let mut connecting: Option<tokio::task::JoinHandle<Connected>> = Some(self.spawn_connect());
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut events: Option<EventStream> = None;
        // Why the event stream ended in this turn, if it did.
        let mut ended: Option<String> = None;
        loop {
            let demand_at = self.demand.next_deadline();
            self.writes.arm();
            tokio::select! {
                _ = &mut shutdown => break,
                Some(ev) = pv_events.recv() => {
                    self.on_pv_event(ev);
                    // First clients that came together are advised together.
                    for _ in 0..MAX_TURN {
                        match pv_events.try_recv() {
                            Ok(ev) => self.on_pv_event(ev),
                            Err(_) => break,
                        }
                    }
                }
                _ = async move { match demand_at { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } }, if demand_at.is_some() => {
                    self.on_demand_deadline();
                }
                Some(()) = async { match reloads.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => {
                    // Requests that came together are one reload.
                    while reloads.as_mut().is_some_and(|r| r.try_recv().is_ok()) {}
                    let relink = reload_path.as_deref().is_some_and(|p| self.reload(p));
                    if relink {
                        // The link is made again with the new settings, at once.
                        if let Some(task) = connecting.take() {
                            task.abort();
                        }
                        if events.is_some() {
                            ended = Some("the [gateway] settings changed: reconnecting".to_string());
                        } else {
                            retry_at = Some(tokio::time::Instant::now());
                        }
                        let gw = &self.config.gateway;
                        backoff = crate::gateway::Backoff::new(gw.reconnect_initial, gw.reconnect_max);
                    }
                }
                Some(msg) = self.internal.1.recv() => self.on_internal(msg),
                Some(done) = self.writes.calls.next(), if !self.writes.calls.is_empty() => {
                    self.on_call_done(done);
                }
                () = &mut self.writes.sleep, if self.writes.armed.is_some() => self.on_timers(),
                _ = self.ops.tick.tick() => self.on_tick(),
                Some(found) = self.discovered.1.recv() => self.on_discovered(found),
                Some(msg) = self.alarms.feed.recv() => {
                    self.alarms.on_feed(msg, &mut self.pvs, &mut self.dirty);
                    ended = self.take_ready(&mut events).await;
                }
                done = async { match connecting.as_mut() { Some(task) => task.await, None => std::future::pending().await } }, if connecting.is_some() => {
                    connecting = None;
                    match done {
                        Ok(Ok((link, stream, items, early))) => {
                            self.on_connected(link, items);
                            self.ops.first_connect_over(&self.pvs, true);
                            for ev in early {
                                self.on_session_event(ev);
                            }
                            events = Some(stream);
                            backoff.reset();
                        }
                        Ok(Err(reason)) => {
                            self.on_lost(&reason);
                            self.ops.first_connect_over(&self.pvs, false);
                            retry_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                        }
                        Err(e) => {
                            self.on_lost(&format!("connect task failed: {e}"));
                            self.ops.first_connect_over(&self.pvs, false);
                            retry_at = Some(tokio::time::Instant::now() + backoff.current());
                        }
                    }
                }
                _ = async { match retry_at { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } }, if retry_at.is_some() => {
                    retry_at = None;
                    connecting = Some(self.spawn_connect());
                }
                ev = async { match events.as_mut() { Some(stream) => stream.next().await, None => std::future::pending().await } }, if events.is_some() => {
                    ended = match ev {
                        Some(Ok(ev)) => {
                            self.on_session_event(ev);
                            self.take_ready(&mut events).await
                        }
                        Some(Err(e)) => Some(format!("event stream failed: {e}")),
                        None => Some("the gateway ended the event stream".to_string()),
                    };
                }
            }
            // The end of the turn: on-demand PVs whose first client came are advised,
            // and each PV with news posts once.
            self.advise_watched();
            for i in self.dirty.drain(..) {
                if let Some(pv) = self.pvs.get_mut(i) {
                    pv.flush();
                }
            }
            if let Some(reason) = ended.take() {
                events = None;
                self.close_link(&reason);
                retry_at = Some(tokio::time::Instant::now() + backoff.current());
            }
            self.send_writes();
        }
        crate::systemd::stopping();
        if let Some(link) = self.link.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), link.session.close()).await;
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                close_stale_sessions(link.session.client(), &self.stale_sessions),
            )
            .await;
        }
    }

    /// The rest of a turn that began with a gateway event or an alarm message: everything
    /// of the event stream and the alarm feed that is ready now (up to [`MAX_TURN`]
    /// events). Data changes and alarm transitions of one PV taken together are then
    /// posted as one update. Returns why the event stream ended, if it did.
    async fn take_ready(&mut self, events: &mut Option<EventStream>) -> Option<String> {
        // First let the tasks that read the gateway's connections run: what arrived
        // together (a data change and the alarm it raised) is then taken together.
        tokio::task::yield_now().await;
        let mut ended = None;
        if let Some(stream) = events.as_mut() {
            for _ in 0..MAX_TURN {
                match stream.next().now_or_never() {
                    None => break,
                    Some(Some(Ok(ev))) => self.on_session_event(ev),
                    Some(Some(Err(e))) => {
                        ended = Some(format!("event stream failed: {e}"));
                        break;
                    }
                    Some(None) => {
                        ended = Some("the gateway ended the event stream".to_string());
                        break;
                    }
                }
            }
        }
        self.alarms.on_ready(&mut self.pvs, &mut self.dirty);
        ended
    }

    fn on_session_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::DataChange(dc) => {
                let item = self.pvs.id_of_item(dc.item_handle);
                if let Some(i) = item {
                    self.pace.release(i);
                }
                if item.is_some_and(|i| self.is_first_placeholder(i, dc.quality)) {
                    return;
                }
                if let Some((i, pv)) = item.and_then(|i| Some((i, self.pvs.get_mut(i)?))) {
                    // Counted where it reaches its PV: a held one is counted when replayed.
                    self.ops.status.data_change();
                    if pv.data_change(&dc.value, dc.quality, dc.source_time, &dc.statuses) {
                        self.dirty.push(i);
                    }
                    self.value_seen(i);
                } else {
                    let handle = dc.item_handle.0;
                    if self.hold_early(SessionEvent::DataChange(dc)).is_some() {
                        self.strays.unknown_item("data change", handle);
                    }
                }
            }
            SessionEvent::Undecodable(u) => {
                let item = self.pvs.id_of_item(u.item_handle);
                if let Some(i) = item.filter(|_| u.data_change) {
                    self.pace.release(i);
                }
                let pv = item
                    .filter(|_| u.data_change)
                    .and_then(|i| Some((i, self.pvs.get_mut(i)?)));
                match pv {
                    Some((i, pv)) => {
                        self.strays.undecodable(&u, Some((i, pv.cfg.name.as_str())));
                        pv.value_not_shown(&u.reason);
                    }
                    None => self.strays.undecodable(&u, None),
                }
            }
            SessionEvent::WriteComplete(wc) => {
                let item = self.pvs.id_of_item(wc.item_handle);
                let waiting =
                    |i: PvId| self.pvs.get(i).is_some_and(|pv| pv.oldest_sent().is_some());
                let Some(i) = item.filter(|&i| waiting(i)) else {
                    match item.and_then(|i| self.pvs.get(i)) {
                        Some(pv) => self.strays.unexpected_write(pv.cfg.name.as_str()),
                        None => self
                            .strays
                            .unknown_item("write completion", wc.item_handle.0),
                    }
                    return;
                };
                let outcome = match wc.failure() {
                    None => Ok(()),
                    Some(status) => Err(format!(
                        "System Platform refused the write: {}",
                        status
                            .detail_name()
                            .map(str::to_string)
                            .unwrap_or_else(|| status.to_string())
                    )),
                };
                self.write_completed(i, outcome);
            }
            SessionEvent::ReplayGap(_) => {
                warn!("event replay gap: values refresh with the next data changes");
            }
            _ => {}
        }
    }

    fn on_pv_event(&mut self, ev: PvEvent) {
        match ev {
            PvEvent::Put(put) => self.on_put(put),
            PvEvent::Connected { pv } => self.on_watch(&pv, true),
            PvEvent::Disconnected { pv } => self.on_watch(&pv, false),
        }
    }
}
