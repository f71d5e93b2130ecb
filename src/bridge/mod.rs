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
//! - the **registry** (`mapping/registry.rs`): mapped PVs by a stable `PvId` (never
//!   reused), by name, and by item handle of the current session. Everything that names
//!   a PV outside the registry (write messages, alarm owners, the dirty list, strays)
//!   holds an id, so a late message about a removed PV finds nothing;
//! - the **desired mapping and its diff** (`mapping/diff.rs`, pure): the config's PVs
//!   compared by name with the registry give added, removed and changed PVs, a change
//!   named by its kinds (tag, type, metadata, writability, write mode, alarms, limits,
//!   timestamp). Start is the first diff, against an empty registry (see
//!   [`run_reloading`]);
//! - **applying a diff while serving** (`mapping/apply.rs`): removed PVs are retired
//!   (puts fail, clients disconnected, `:ACK` gone) and unsubscribed; tag/type/writability
//!   changes re-open the PV under the same id and re-subscribe its tag; other changes are
//!   taken in place; added PVs are served and subscribed. Gateway work goes in bulk
//!   (UnsubscribeBulk, SubscribeBulk) in the live session, in a task whose item handles
//!   come back as `Internal::Subscribed`; data changes of items not known yet are held
//!   meanwhile. `reload.rs` re-reads the file on SIGHUP (validate, then diff;
//!   `[gateway]` and `[users]` changes reconnect; settings that need a restart are named).
//!
//! Files, by concern:
//! - `mod.rs` (this file): the `Bridge`, its start ([`run`], [`run_reloading`]), the
//!   end of a turn, and the session events demultiplexed to their PVs; `serve.rs`: the
//!   tokio adapter (the loop, the gateway calls made as tasks); `reload.rs`: SIGHUP
//!   (every part's settings, then the mapping); `pv_id.rs`: the id every part names a
//!   PV by (a leaf).
//! - `values/`: how an MXAccess value, quality and source time become a PV's `value`,
//!   `alarm` and `timeStamp`: `convert.rs` (MXAccess values <-> PV values, exact or
//!   refused; `isotime.rs`: Time text; `convert_props.rs`: generated inputs, tests only),
//!   `quality.rs` (quality -> `alarm`), `limits.rs` (local `value_alarm` limits),
//!   `combine.rs` (how the parts of a PV's alarm join, shared by `mapping/pv.rs` and
//!   `alarms/`, so neither imports the other's file), `stamp.rs` (the rule that keeps
//!   each PV's posted `timeStamp` from going back). It imports nothing else of the bridge.
//! - `mapping/`: the PVs served and a change of them: `registry.rs`, `diff.rs` (tests in
//!   `diff/tests.rs`), `apply.rs`, `deploys.rs` (above), and `pv.rs`: one
//!   mapped PV (its structure, metadata and pending writes).
//! - `link/`: the gateway link: `mod.rs` (connect, session, lost links and their stale
//!   sessions), `subscriptions.rs` (which tags are advised, paced in chunks; no I/O),
//!   `advise.rs` (the PVs asked for, and SubscribeBulk results bound to them),
//!   `demand.rs` (on-demand PVs, `subscribe = "on_demand"`: advised while watched, pvxs
//!   first connect / last disconnect, un-advised `linger` after the last client left),
//!   `strays.rs` (events the bridge ignores: unknown items, undecodable; logged once).
//! - `writes/`: the write path: `mod.rs` (puts -> gateway writes, caps, completion),
//!   `calls.rs` (the write calls, in bulk, and the write timers), `failure.rs` (which layer
//!   failed a write, for the client's message and the audit), `guard.rs` (access
//!   security, the ACF, and the audit trail, before the write path).
//! - `alarms/`: System Platform alarms: the feed, their PVs, `:ACK`, the table
//!   (`table.rs`), the `kind` severity scheme (`severity.rs`), following a changed
//!   mapping (`remap.rs`) and reloaded alarm settings (`reload.rs`).
//! - `operate.rs`: the status PVs (`crate::status`) and systemd notifications: state
//!   changes as they happen, one relaxed atomic add per data change, and a tick (at
//!   least once a second) that counts INVALID PVs and feeds systemd's watchdog.
//! - `interleavings/` (tests only): generated interleavings of inputs, with the
//!   bridge's invariants checked after every step.
//!
//! A diff applied while a connect is under way is caught up after it: PVs added or
//! re-tagged meanwhile are subscribed then, items of PVs removed meanwhile unsubscribed.
//! The figure: `benches/reload.rs` (docs/performance.md).
//!
//! `[alarms]` and `[[alarm_pv]]` changes apply too (`alarms/reload.rs`: alarm PVs, the
//! table, `:ACK` names, the feed restarted on a new filter).
//!
//! `[[discover]]` rules are a source of diffs too (`mapping/deploys.rs`, issue 12): a task
//! follows WatchDeployEvents, re-discovers on each deploy, and the rule-made PVs join the
//! config's (`Config::merge_rule_pvs`) in the diff applied here.
//!
//! Still to do: the `[limits]` sizes need a restart.

mod alarms;
#[cfg(test)]
mod interleavings;
mod link;
mod mapping;
mod operate;
mod pv_id;
mod reload;
mod serve;
mod values;
mod writes;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::access::audit::AuditTrail;
use crate::config::{self, Config};
use crate::gateway::{ClientOptions, SessionEvent};
use crate::pva::{self, PvEvent, Server, ServerConfig};

pub use values::convert::{default_pv_type, iso8601, to_mx, to_nt};
pub use values::quality::quality_alarm;

pub(crate) use link::client_options;
use link::Link;
use link::{demand, strays, subscriptions};
use mapping::registry::Registry;
use mapping::{deploys, diff};
use pv_id::PvId;

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
    let server = Arc::new(Server::new(&pva_config)?);
    let (events_tx, mut pv_events) = pva::event_channel_with(pva::PutLimits {
        max_queued: config.limits.max_puts_queued,
        max_array_length: config.limits.max_array_length,
        max_string_length: config.limits.max_string_length,
    });
    // Puts refused in pvxs's callback meet access security and the audit trail too.
    events_tx.forward_refused_puts();
    let mut bridge = Bridge::new(config, server.clone(), events_tx)?;
    bridge.audit_early_refusals();
    let close_audit = bridge.audit_closer();
    server.start()?;
    let info = server.info()?;
    info!(
        pvs = bridge.pvs.len(),
        tcp_port = info.tcp_port,
        udp_port = info.udp_port,
        interfaces = ?info.interfaces,
        "serving PVs"
    );
    bridge.follow_rules();
    serve::serve(&mut bridge, &mut pv_events, shutdown, reload).await;
    // Puts still waiting are answered (and audited) as the bridge goes.
    drop(bridge);
    drop(server);
    let _ = tokio::task::spawn_blocking(close_audit).await;
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
    /// Which tags are advised in the live session, and when (`link/subscriptions.rs`).
    subs: subscriptions::Subscriptions,
    /// The live session, if any.
    link: Option<Link>,
    /// The subscriptions of a new session are under way ("gateway session up" when done).
    starting: Option<link::SessionStart>,
    /// The subscriptions of a reload are under way (logged when done).
    reload_subscribing: bool,
    /// Why the link is down, as last posted to the PVs.
    lost_reason: Option<String>,
    /// Puts to send, write calls in flight, write timeouts and settle bounds.
    writes: writes::calls::WriteCalls,
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
    /// The ACF in force (`writes/guard.rs`).
    access: crate::access::Access,
    /// The audit trail of puts; `audit.health()` is for the status PVs.
    audit: AuditTrail,
    /// PVs the `[[discover]]` rules made of the last discovery (`mapping/deploys.rs`).
    rule_pvs: Vec<config::RulePv>,
    /// The task that follows deploys, while the config has rules.
    follower: Option<deploys::Follower>,
    /// Its discoveries.
    discovered: (
        mpsc::UnboundedSender<deploys::Found>,
        mpsc::UnboundedReceiver<deploys::Found>,
    ),
}

impl Bridge {
    /// The bridge of `config`, serving its PVs on `server` (not started yet), with no
    /// gateway session yet. Start is the first diff, against an empty registry.
    fn new(
        config: Config,
        server: Arc<Server>,
        events: pva::EventSender,
    ) -> Result<Self, BridgeError> {
        let opts = client_options(&config.gateway, &config.limits)?;
        let access = crate::access::Access::start(&config)?;
        let audit = AuditTrail::start(config.audit.as_ref().map(|a| a.file.as_path()))
            .map_err(BridgeError::Audit)?;
        let mut pvs = Registry::default();
        let start = diff::diff(std::iter::empty(), &diff::desired(&config));
        for cfg in start.added {
            pvs.add(cfg, &config.defaults, &server, &events)?;
        }
        let alarms = alarms::Alarms::new(&config, &opts, server.clone(), &events, &pvs)?;
        let writes = writes::calls::WriteCalls::default();
        let ops = operate::Ops::new(&config, &server, &events, &writes.in_flight)?;
        Ok(Bridge {
            opts,
            server,
            events,
            subs: subscriptions::Subscriptions::new(
                config.gateway.subscribe_chunk.get(),
                config.gateway.request_timeout,
            ),
            config,
            pvs,
            link: None,
            starting: None,
            reload_subscribing: false,
            lost_reason: None,
            writes,
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
        })
    }

    fn on_session_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::DataChange(dc) => {
                let item = self.pvs.id_of_item(dc.item_handle);
                if let Some(i) = item {
                    self.subs.first_value(i);
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
                    if self.subs.hold_early(SessionEvent::DataChange(dc)).is_some() {
                        self.strays.unknown_item("data change", handle);
                    }
                }
            }
            SessionEvent::Undecodable(u) => {
                let item = self.pvs.id_of_item(u.item_handle);
                if let Some(i) = item.filter(|_| u.data_change) {
                    self.subs.first_value(i);
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
                let now = tokio::time::Instant::now();
                let waiting = item
                    .and_then(|i| self.pvs.get_mut(i))
                    .is_some_and(|pv| pv.writes.awaits_completion(now));
                let Some(i) = item.filter(|_| waiting) else {
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

    /// The end of a turn: on-demand PVs whose first client came in it are advised, and
    /// each PV with news posts once.
    fn end_turn(&mut self) {
        self.advise_watched();
        for i in self.dirty.drain(..) {
            if let Some(pv) = self.pvs.get_mut(i) {
                pv.flush();
            }
        }
    }

    /// The last of a turn, after [`Bridge::end_turn`] and a lost link: the puts queued go
    /// out, and the gateway calls to make now are handed out.
    fn turn_done(
        &mut self,
    ) -> (
        Vec<subscriptions::AdviseCall>,
        Vec<writes::calls::WriteCall>,
    ) {
        self.send_writes();
        let advise = self.advise_calls();
        let writes = std::mem::take(&mut self.writes.outbox);
        self.subscriptions_done();
        (advise, writes)
    }

    /// The next moment something is due: a write timer, an on-demand deadline, a chunk
    /// that waits for room in the subscription window.
    fn next_deadline(&self) -> Option<tokio::time::Instant> {
        [
            self.writes.next_deadline(),
            self.demand.next_deadline(),
            self.subs.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A deadline came: whatever is due now.
    fn on_timers(&mut self) {
        self.on_write_timers();
        self.on_demand_deadline();
    }

    /// The advise calls to make now (`link/subscriptions.rs`): each PV asked for is advised
    /// with the tag it maps to at this moment, if it is still wanted.
    fn advise_calls(&mut self) -> Vec<subscriptions::AdviseCall> {
        let mut calls = Vec::new();
        let mut dropped = Vec::new();
        let now = tokio::time::Instant::now();
        loop {
            let (pvs, demand) = (&self.pvs, &self.demand);
            let tag_of = |id: PvId| {
                let tag = pvs
                    .get(id)
                    .filter(|pv| pv.item.is_none() && demand.wants_item(pvs, id))
                    .map(|pv| pv.cfg.tag.as_str().to_string());
                if tag.is_none() {
                    dropped.push(id);
                }
                tag
            };
            match self.subs.next_call(now, tag_of) {
                Some(call) => calls.push(call),
                None => break,
            }
        }
        // PVs no longer to be advised: an on-demand one is not being advised any more.
        if !dropped.is_empty() {
            self.advised(&dropped);
        }
        calls
    }

    fn on_pv_event(&mut self, ev: PvEvent) {
        match ev {
            PvEvent::Put(put) => self.on_put(put),
            PvEvent::Connected { pv } => self.on_watch(&pv, true),
            PvEvent::Disconnected { pv } => self.on_watch(&pv, false),
        }
    }
}
