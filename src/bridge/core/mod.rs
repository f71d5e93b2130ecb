//! The bridge's state and its decisions, grouped by concern.
//!
//! [`Bridge`] holds one part per concern, each owning its state: the registry of mapped
//! PVs (`mapping/registry.rs`), the link and its subscriptions (`link::LinkState`),
//! on-demand PVs (`link/demand.rs`), the write calls (`writes/calls.rs`), access security
//! and the audit trail (`writes/guard.rs`), the alarms (`alarms/`), the status PVs
//! (`operate.rs`) and the `[[discover]]` rules (`mapping/deploys.rs`). The parts know
//! nothing of `Bridge`: what one part decides is handed to another here, the registry
//! passed in. The adapter (`serve.rs`) feeds inputs and makes the gateway calls handed
//! out.
//!
//! Files: `mod.rs` (the state, a turn, the session's events demultiplexed), `session.rs`
//! (a session up and lost, the advise calls and their results), `on_demand.rs` (on-demand
//! PVs), `puts.rs` (puts, write calls, timers), `mapping.rs` (a diff applied while
//! serving, discovered mappings), `reload.rs` (SIGHUP).

mod buffered;
mod mapping;
mod on_demand;
mod puts;
pub(super) mod reload;
mod session;

use std::sync::Arc;

use tracing::warn;

use super::alarms;
use super::error::BridgeError;
use super::link::subscriptions::Role;
use super::link::{self, client_options, demand, subscriptions};
use super::mapping::registry::Registry;
use super::mapping::{deploys, diff};
use super::operate;
use super::pv_id::PvId;
use super::writes;
use super::writes::guard::Guard;
use crate::access::audit::AuditTrail;
use crate::config::Config;
use crate::gateway::{ClientOptions, SessionEvent};
use crate::pva::{self, PvEvent, Server};

/// The bridge's state, one part per concern.
pub(super) struct Bridge {
    pub config: Config,
    pub opts: ClientOptions,
    /// The mapped PVs, by id, by name and by item handle of the current session.
    pub pvs: Registry,
    /// Where PVs added while serving are served, and where their puts go.
    pub server: Arc<Server>,
    pub events: pva::EventSender,
    /// The live session, its subscriptions and why it was lost (`link/mod.rs`).
    pub link: link::LinkState,
    /// On-demand PVs: which are watched, lingering, waiting for a first value.
    pub demand: demand::Demand,
    /// Puts to send, write calls in flight, write timeouts and settle bounds.
    pub writes: writes::calls::WriteCalls,
    /// Access security (the ACF in force) and the audit trail (`writes/guard.rs`).
    pub guard: Guard,
    /// System Platform alarms (their own feed, `:ACK` PVs, the table).
    pub alarms: alarms::Alarms,
    /// PVs with news taken in this turn, each posted once at its end (the adapter may
    /// leave some for later turns while it is behind, oldest first: `serve.rs`).
    pub dirty: Vec<PvId>,
    /// PVs whose news change whether they are INVALID (a first value after a lost link),
    /// and those whose System Platform alarms changed: posted at the end of the turn,
    /// never left for later.
    pub urgent: Vec<PvId>,
    /// The status PVs and systemd notifications (`operate.rs`).
    pub ops: operate::Ops,
    /// The `[[discover]]` rules: their PVs and the task that follows deploys.
    pub rules: deploys::Rules,
    /// The adapter found the bridge behind the gateway's events: a data change staged
    /// and not posted yet is replaced by a later one of its item, unless their alarms
    /// differ ([`MappedPv::sample`](super::mapping::pv::MappedPv::sample)).
    pub coalesce: bool,
}

impl Bridge {
    /// The bridge of `config`, serving its PVs on `server` (not started yet), with no
    /// gateway session yet. Start is the first diff, against an empty registry.
    pub(in crate::bridge) fn new(
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
        let writes = writes::calls::WriteCalls::new();
        let ops = operate::Ops::new(&config, &server, &events, &writes.in_flight)?;
        Ok(Bridge {
            opts,
            server,
            events,
            link: link::LinkState::new(&config.gateway),
            config,
            pvs,
            writes,
            guard: Guard { access, audit },
            alarms,
            dirty: Vec::new(),
            urgent: Vec::new(),
            demand: demand::Demand::default(),
            ops,
            rules: deploys::Rules::default(),
            coalesce: false,
        })
    }

    pub(in crate::bridge) fn on_session_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::DataChange(dc) => {
                let item = self.pvs.id_of_item(dc.item_handle);
                if let Some(i) = item {
                    self.link.subs.first_value(i);
                }
                if item.is_some_and(|i| self.demand.is_first_placeholder(&self.pvs, i, dc.quality))
                {
                    return;
                }
                if item.is_none() {
                    // The plain item a buffered PV writes through: its data is not posted.
                    if let Some(i) = self.pvs.id_of_write_item(dc.item_handle) {
                        self.link.subs.first_value(i);
                        return;
                    }
                }
                if let Some((i, pv)) = item.and_then(|i| Some((i, self.pvs.get_mut(i)?))) {
                    // Counted where it reaches its PV: a held one is counted when replayed.
                    self.ops.status.data_change();
                    let was_invalid = pv.is_invalid();
                    let taken = pv.sample(
                        &dc.value,
                        dc.quality,
                        dc.source_time,
                        &dc.statuses,
                        self.coalesce,
                    );
                    if taken.marked {
                        if was_invalid == pv.is_invalid() {
                            self.dirty.push(i);
                        } else {
                            self.urgent.push(i);
                        }
                    }
                    if taken.coalesced {
                        self.ops.status.coalesced();
                    }
                    self.demand.value_seen(&self.pvs, i);
                } else {
                    let handle = dc.item_handle.0;
                    if self
                        .link
                        .subs
                        .hold_early(SessionEvent::DataChange(dc))
                        .is_some()
                    {
                        self.link.strays.unknown_item("data change", handle);
                    }
                }
            }
            SessionEvent::Undecodable(u) => {
                let item = self.pvs.id_of_item(u.item_handle);
                if let Some(i) = item.filter(|_| u.data_change) {
                    self.link.subs.first_value(i);
                }
                let pv = item
                    .filter(|_| u.data_change)
                    .and_then(|i| Some((i, self.pvs.get_mut(i)?)));
                match pv {
                    Some((i, pv)) => {
                        self.link
                            .strays
                            .undecodable(&u, Some((i, pv.cfg.name.as_str())));
                        pv.value_not_shown(&u.reason);
                    }
                    None => self.link.strays.undecodable(&u, None),
                }
            }
            SessionEvent::BufferedDataChange(b) => self.on_buffered(vec![b]),
            SessionEvent::WriteComplete(wc) => {
                let item = self
                    .pvs
                    .id_of_item(wc.item_handle)
                    .or_else(|| self.pvs.id_of_write_item(wc.item_handle));
                let now = tokio::time::Instant::now();
                let waiting = item
                    .and_then(|i| self.pvs.get_mut(i))
                    .is_some_and(|pv| pv.writes.awaits_completion(now));
                let Some(i) = item.filter(|_| waiting) else {
                    match item.and_then(|i| self.pvs.get(i)) {
                        Some(pv) => self.link.strays.unexpected_write(pv.cfg.name.as_str()),
                        None => self
                            .link
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
    pub(in crate::bridge) fn end_turn(&mut self) {
        self.advise_watched();
        for i in self.urgent.drain(..).chain(self.dirty.drain(..)) {
            if let Some(pv) = self.pvs.get_mut(i) {
                pv.flush();
            }
        }
    }

    /// The last of a turn, after [`Bridge::end_turn`] and a lost link: the puts queued go
    /// out, and the gateway calls to make now are handed out.
    pub(in crate::bridge) fn turn_done(
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
    pub(in crate::bridge) fn next_deadline(&self) -> Option<tokio::time::Instant> {
        [
            self.writes.next_deadline(),
            self.demand.next_deadline(),
            self.link.subs.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A deadline came: whatever is due now.
    pub(in crate::bridge) fn on_timers(&mut self) {
        self.on_write_timers();
        self.on_demand_deadline();
    }

    /// The advise calls to make now (`link/subscriptions.rs`): each PV asked for is advised
    /// with the tag it maps to at this moment, if it is still wanted.
    pub(in crate::bridge) fn advise_calls(&mut self) -> Vec<subscriptions::AdviseCall> {
        let mut calls = Vec::new();
        let mut dropped = Vec::new();
        let now = tokio::time::Instant::now();
        loop {
            let (pvs, demand) = (&self.pvs, &self.demand);
            // Its data item first (buffered or plain), then, for a writable buffered PV,
            // the plain item its puts go through.
            let tag_of = |id: PvId| {
                let tag = pvs
                    .get(id)
                    .filter(|_| demand.wants_item(pvs, id))
                    .and_then(|pv| {
                        let role = match (pv.item, pv.cfg.buffered) {
                            (None, false) => Role::Plain,
                            (None, true) => Role::Buffered,
                            (Some(_), _) if pv.needs_write_item() => Role::Write,
                            (Some(_), _) => return None,
                        };
                        Some((pv.cfg.tag.as_str().to_string(), role))
                    });
                if tag.is_none() {
                    dropped.push(id);
                }
                tag
            };
            match self.link.subs.next_call(now, tag_of) {
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

    pub(in crate::bridge) fn on_pv_event(&mut self, ev: PvEvent) {
        match ev {
            PvEvent::Put(put) => self.on_put(put),
            PvEvent::Connected { pv } => self.on_watch(&pv, true),
            PvEvent::Disconnected { pv } => self.on_watch(&pv, false),
        }
    }

    /// The bridge's tick (`operate.rs`).
    pub(in crate::bridge) fn on_tick(&mut self) {
        let audit = self.config.audit.is_some().then_some(&self.guard.audit);
        self.ops.on_tick(&self.pvs, &self.alarms, audit);
    }
}
