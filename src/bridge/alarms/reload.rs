//! Reloaded `[alarms]` settings and `[[alarm_pv]]` PVs, applied while serving and only
//! where they changed: `[[alarm_pv]]` PVs added are served, removed ones closed (with
//! their `:ACK`), changed ones taken in place (re-opened when their type changed); a
//! renamed table is closed and served under its new name; a changed `enabled` or
//! `filter_prefix` restarts the feed task (its first snapshot rebuilds the set). The
//! `:ACK` PVs follow in [`Alarms::remap`], which the bridge calls after this.

use std::collections::{BTreeMap, HashMap};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::feed::spawn_feed;
use super::state::{AckPv, Alarms, OwnPv, Owner, OWN_CHOICES};
use super::table::table_columns;
use crate::bridge::mapping::registry::Registry;
use crate::bridge::values::stamp::Stamps;
use crate::config::{self, AlarmPvType};
use crate::gateway::{Backoff, ClientOptions};
use crate::pva::{
    Access, Alarm, AlarmStatus, Display, EventSender, NtValue, PvType, PvaError, ScalarType,
    Server, Severity, SharedPv, TablePv, TableUpdate, Update,
};

const WAITING: &str = "waiting for the alarm feed";

impl OwnPv {
    /// Serves an `[[alarm_pv]]`, waiting for the feed; its posts continue from `stamps`
    /// (the last posted time of the alarm PV it replaces under the same name, if any).
    pub(super) fn open(
        c: &config::AlarmPv,
        server: &Server,
        events: &EventSender,
        mut stamps: Stamps,
    ) -> Result<Self, PvaError> {
        let mut pv = SharedPv::new(c.name.as_str(), Access::ReadOnly, events)?;
        let (ty, value) = match c.pv_type {
            AlarmPvType::Enum => (PvType::Enum, NtValue::Enum(0)),
            AlarmPvType::Int32 => (PvType::Scalar(ScalarType::Int32), NtValue::Int32(0)),
        };
        let mut initial = Update::value(value)
            .with_alarm(Alarm::new(
                Severity::Invalid,
                AlarmStatus::Undefined,
                WAITING,
            ))
            .with_display(Display {
                description: c.description.clone().unwrap_or_default(),
                ..Default::default()
            });
        if ty == PvType::Enum {
            initial = initial.with_choices(OWN_CHOICES);
        }
        initial.time = Some(stamps.now(c.name.as_str()));
        pv.open(ty, &initial)?;
        server.add_pv(&pv)?;
        Ok(OwnPv {
            cfg: c.clone(),
            pv,
            stamps,
        })
    }

    /// Stops serving it: its clients see a disconnect.
    fn close(mut self, server: &Server) {
        let name = self.cfg.name.as_str();
        if let Err(e) = server.remove_pv(name) {
            warn!(pv = %name, error = %e, "cannot stop serving the alarm PV");
        }
        let _ = self.pv.close();
    }
}

/// Serves the active-alarm table, empty and waiting for the feed.
pub(super) fn open_table(
    name: &str,
    server: &Server,
    events: &EventSender,
    pvs: &Registry,
    stamps: &mut Stamps,
) -> Result<TablePv, PvaError> {
    let mut t = TablePv::new(name, table_columns(), events)?;
    let empty = TableUpdate {
        columns: Some(Alarms::rows(&BTreeMap::new(), pvs, &[], 0).0),
        alarm: Some(Alarm::new(
            Severity::Invalid,
            AlarmStatus::Undefined,
            WAITING,
        )),
        time: Some(stamps.now(name)),
    };
    t.open(&empty)?;
    server.add_table(&t)?;
    Ok(t)
}

/// Where a new feed task connects: the gateway client options and its reconnect backoff.
pub(in crate::bridge) struct FeedLink<'a> {
    pub opts: &'a ClientOptions,
    pub gateway: &'a config::Gateway,
    /// The gateway settings changed: the feed connects again with them.
    pub changed: bool,
}

impl Alarms {
    /// Takes the reloaded `[alarms]` settings and `[[alarm_pv]]` PVs. Severities, priority
    /// bands and the severity scheme apply with the next [`Alarms::remap`], as do the
    /// `:ACK` PVs (a changed `ack_suffix` or `acknowledge` renames, adds or removes them).
    pub fn reload_settings(&mut self, new: &config::Config, link: &FeedLink<'_>, pvs: &Registry) {
        let new_alarms = &new.alarms;
        self.settings_changed |= self.cfg.returned_unacked != new_alarms.returned_unacked
            || self.cfg.priorities != new_alarms.priorities
            || self.cfg.severity != new_alarms.severity
            || self.cfg.ack_suffix != new_alarms.ack_suffix;
        let restart = self.cfg.enabled != new_alarms.enabled
            || self.cfg.filter_prefix != new_alarms.filter_prefix
            || (link.changed && new_alarms.enabled);
        let old_table = self.cfg.table.clone().filter(|_| self.cfg.enabled);
        self.cfg = new_alarms.clone();
        if restart {
            self.restart_feed(link);
        }
        self.reload_own(&new.alarm_pvs);
        let table = self.cfg.table.clone().filter(|_| self.cfg.enabled);
        if table != old_table {
            self.reload_table(table.as_ref().map(|t| t.as_str()), pvs);
        }
    }

    /// Stops the feed task and, when the feed is enabled, starts one with the settings in
    /// `self.cfg`. Stopped for good, the active set is emptied and its PVs lose their parts.
    fn restart_feed(&mut self, link: &FeedLink<'_>) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let (tx, feed) = mpsc::unbounded_channel();
        self.feed = feed;
        self.client = None;
        self.pending = None;
        self.pending_dropped = 0;
        self.synced = false;
        if self.cfg.enabled {
            let gw = link.gateway;
            self.task = Some(spawn_feed(
                link.opts.clone(),
                self.cfg.filter_prefix.clone(),
                Backoff::new(gw.reconnect_initial, gw.reconnect_max),
                tx,
            ));
            info!(filter_prefix = %self.cfg.filter_prefix, "alarm feed restarted");
            return;
        }
        // The value PVs that showed alarms, or "alarm feed lost", show neither.
        let gone = std::mem::take(&mut self.active);
        let shown = gone.values().filter_map(|e| e.owner);
        self.repost.extend(
            shown
                .chain(self.ack_done.keys().copied())
                .filter(|o| matches!(o, Owner::Value(_)))
                .map(|o| (o, None)),
        );
        self.lost = None;
        self.dropped = 0;
        let alarm = Alarm::new(
            Severity::Invalid,
            AlarmStatus::Undefined,
            "the alarm feed is off ([alarms] enabled = false)",
        );
        for own in &mut self.own {
            let time = own.stamps.now(own.cfg.name.as_str());
            let _ = own
                .pv
                .post(&Update::default().with_alarm(alarm.clone()).with_time(time));
        }
        info!("alarm feed stopped ([alarms] enabled = false)");
    }

    /// Serves the `[[alarm_pv]]` PVs of `wanted`, keeping those whose name and type stay.
    fn reload_own(&mut self, wanted: &[config::AlarmPv]) {
        // Where a table sits in the file is no change.
        let unplaced = |a: &config::AlarmPv| config::AlarmPv {
            location: String::new(),
            ..a.clone()
        };
        let shown = self.synced || self.lost.is_some();
        let mut old: Vec<Option<OwnPv>> = std::mem::take(&mut self.own)
            .into_iter()
            .map(Some)
            .collect();
        // Old index -> new index, for the owners of alarms and `:ACK` PVs.
        let mut moved: HashMap<usize, usize> = HashMap::new();
        for c in wanted {
            let found = old
                .iter()
                .position(|o| o.as_ref().is_some_and(|o| o.cfg.name == c.name));
            let kept = found.and_then(|i| Some((i, old.get_mut(i)?.take()?)));
            let name = c.name.as_str();
            let j = self.own.len();
            let pv = match kept {
                Some((i, mut o)) if o.cfg.pv_type == c.pv_type => {
                    moved.insert(i, j);
                    if unplaced(&o.cfg) != unplaced(c) {
                        info!(pv = %name, "alarm PV changed in place");
                        if o.cfg.description != c.description {
                            let display = Display {
                                description: c.description.clone().unwrap_or_default(),
                                ..Default::default()
                            };
                            let time = o.stamps.now(name);
                            let update = Update::default().with_display(display).with_time(time);
                            if let Err(e) = o.pv.post(&update) {
                                warn!(pv = %name, error = %e, "post failed");
                            }
                        }
                        if shown {
                            self.repost.push((Owner::Own(j), None));
                        }
                    }
                    o.cfg = c.clone();
                    Some(o)
                }
                kept => {
                    let reopen = kept.is_some();
                    // A re-opened PV's posts continue from the old one's (`values/stamp.rs`).
                    let mut stamps = Stamps::default();
                    if let Some((i, o)) = kept {
                        // Its `:ACK` PV stays.
                        moved.insert(i, j);
                        stamps = o.stamps.clone();
                        o.close(&self.server);
                    }
                    match OwnPv::open(c, &self.server, &self.events, stamps) {
                        Ok(o) => {
                            if reopen {
                                info!(pv = %name, "alarm PV re-opened (its type changed)");
                            } else {
                                info!(pv = %name, "alarm PV added");
                            }
                            if shown {
                                self.repost.push((Owner::Own(j), None));
                            }
                            Some(o)
                        }
                        Err(e) => {
                            moved.retain(|_, to| *to != j);
                            warn!(pv = %name, error = %e, "cannot serve the alarm PV");
                            None
                        }
                    }
                }
            };
            self.own.extend(pv);
        }
        for o in old.into_iter().flatten() {
            info!(pv = %o.cfg.name.as_str(), "alarm PV removed");
            o.close(&self.server);
        }
        self.renumber_own(&moved);
    }

    /// `[[alarm_pv]]` owners get their new index, or none when their PV is gone (their
    /// `:ACK` PV with it).
    fn renumber_own(&mut self, moved: &HashMap<usize, usize>) {
        let map = |o: Owner| match o {
            Owner::Own(i) => moved.get(&i).map(|&j| Owner::Own(j)),
            v => Some(v),
        };
        let pending = self.pending.iter_mut().flat_map(|p| p.values_mut());
        for e in self.active.values_mut().chain(pending) {
            e.owner = e.owner.and_then(map);
        }
        self.ack_done = std::mem::take(&mut self.ack_done)
            .into_iter()
            .filter_map(|(o, done)| Some((map(o)?, done)))
            .collect();
        let mut gone = Vec::new();
        for (name, (owner, _)) in self.acks.iter_mut() {
            match map(*owner) {
                Some(o) => *owner = o,
                None => gone.push(name.clone()),
            }
        }
        for name in gone {
            if let Some((_, ack)) = self.acks.remove(&name) {
                if let Err(e) = self.server.remove_pv(&name) {
                    warn!(pv = %name, error = %e, "cannot stop serving the acknowledgement PV");
                }
                AckPv::close(ack);
                info!(pv = %name, "acknowledgement PV removed");
            }
        }
    }

    /// Closes the table in service, if any, and serves `name`, if any, with the current
    /// rows (once the feed has shown them).
    fn reload_table(&mut self, name: Option<&str>, pvs: &Registry) {
        if let Some(mut t) = self.table.take() {
            if let Err(e) = self.server.remove_pv(t.name()) {
                warn!(pv = %t.name(), error = %e, "cannot stop serving the alarm table");
            }
            let _ = t.close();
            info!(pv = %t.name(), "alarm table removed");
        }
        let Some(name) = name else { return };
        self.table_stamps = Stamps::default();
        match open_table(
            name,
            &self.server,
            &self.events,
            pvs,
            &mut self.table_stamps,
        ) {
            Ok(t) => {
                info!(pv = %name, "alarm table served");
                self.table = Some(t);
                if self.synced || self.lost.is_some() {
                    self.post_table(pvs);
                }
            }
            Err(e) => warn!(pv = %name, error = %e, "cannot serve the alarm table"),
        }
    }
}
