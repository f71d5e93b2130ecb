//! Subscribe while watched: PVs with `subscribe = "on_demand"`.
//!
//! Such a PV is in the registry and named at the PVAccess server from the start, but its
//! tag is not advised at the gateway and its SharedPV is not open. pvxs tells the bridge
//! when a PV's first client connects and when its last one leaves (SharedPV
//! onFirstConnect / onLastDisconnect, as [`PvEvent::Connected`] / `Disconnected` through
//! the event channel, in the order pvxs saw them). Then:
//! - **first client**: the tag is advised (one SubscribeBulk for every PV whose first
//!   client came in the same turn). The client's GET, monitor or put waits, as pvxs
//!   holds a channel's operations until its SharedPV opens, and the PV opens with the
//!   first data change: the client's first value is a real one. The wait is bounded:
//!   a gateway known to be down serves the PV at once, INVALID "gateway connection
//!   lost: ..."; a failed advise serves it with the reason (CONF); no value within
//!   `[gateway] request_timeout` serves it INVALID "no value from System Platform
//!   within ...". A first data change whose quality is "Bad: waiting for initial data"
//!   is a placeholder, not a value: the PV waits on for the next one (within the bound);
//! - **last client left**: the PV lingers, advised and served, for `linger`; a client
//!   that comes back meanwhile finds it as it was. Then the tag is un-advised
//!   (UnsubscribeBulk) and the SharedPV closed (it has no clients), so that the next
//!   first client waits for a fresh value instead of seeing an old one. A PV with puts
//!   waiting for System Platform lingers until they are answered;
//! - **puts**: a put reaches the bridge only once the PV is open (pvxs holds the
//!   operation until then), so its tag is advised and its item handle known, as for
//!   any PV. One that comes while the advise is still under way (the PV served without
//!   a value after the bound) is held until the advise is done, then sent;
//! - **the link**: a connect advises the always PVs and the on-demand PVs watched now;
//!   a lost link serves the watched PVs INVALID as any PV, and closes the lingering ones
//!   (their items died with the session, and nobody watches them);
//! - **reload**: `subscribe` and `linger` change in place ([`Change::Subscribe`]): a
//!   PV that becomes `always` is advised at once; one that becomes `on_demand` while
//!   nobody watches it lingers from the reload on; a new `linger` restarts one under way.
//!
//! pvxs reports first connect / last disconnect for every PV; the bridge keeps which
//! PVs are watched whatever their mode, so that a reload switching a PV's mode knows.
//!
//! [`PvEvent::Connected`]: crate::pva::PvEvent::Connected
//! [`Change::Subscribe`]: crate::bridge::mapping::diff::Change::Subscribe

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info};

use crate::bridge::mapping::registry::Registry;
use crate::bridge::pv_id::PvId;
use crate::bridge::Bridge;
use crate::config::Subscribe;
use crate::gateway::Quality;
use crate::pva::{Alarm, AlarmStatus, PutRequest, Severity};

/// A PV lingering past its linger with puts still waiting for System Platform is looked
/// at again after this long.
const WRITES_RECHECK: Duration = Duration::from_secs(1);

/// PVs with a deadline each, soonest first.
#[derive(Default)]
struct Deadlines {
    at: HashMap<PvId, Instant>,
    order: BTreeSet<(Instant, PvId)>,
}

impl Deadlines {
    fn set(&mut self, id: PvId, at: Instant) {
        self.remove(id);
        self.at.insert(id, at);
        self.order.insert((at, id));
    }

    fn remove(&mut self, id: PvId) {
        if let Some(at) = self.at.remove(&id) {
            self.order.remove(&(at, id));
        }
    }

    fn contains(&self, id: PvId) -> bool {
        self.at.contains_key(&id)
    }

    fn next(&self) -> Option<Instant> {
        self.order.first().map(|(at, _)| *at)
    }

    /// Takes out the PVs whose deadline is `now` or past.
    fn take_due(&mut self, now: Instant) -> Vec<PvId> {
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.order.first() {
            if at > now {
                break;
            }
            self.order.pop_first();
            self.at.remove(&id);
            due.push(id);
        }
        due
    }

    fn drain(&mut self) -> Vec<PvId> {
        self.order.clear();
        self.at.drain().map(|(id, _)| id).collect()
    }
}

/// The state of on-demand subscription (see the module's note).
#[derive(Default)]
pub(in crate::bridge) struct Demand {
    /// PVs with at least one PVAccess client now, whatever their mode.
    watched: HashSet<PvId>,
    /// On-demand PVs advised and not watched: when to un-advise them.
    lingering: Deadlines,
    /// On-demand PVs not open whose first client waits for the first value: until when.
    waiting: Deadlines,
    /// On-demand PVs whose SubscribeBulk is under way in the live session.
    advising: HashSet<PvId>,
    /// On-demand PVs whose first client came in this turn: advised at its end.
    to_advise: Vec<PvId>,
    /// Puts that came while their PV's advise was under way, sent once it is done.
    held: HashMap<PvId, Vec<PutRequest>>,
}

impl Demand {
    /// Whether the PV's tag is to be advised in the session: every always PV, and the
    /// on-demand PVs watched or lingering. The one rule, for the bridge and its tests.
    pub fn wants_item(&self, pvs: &Registry, id: PvId) -> bool {
        match pvs.get(id) {
            None => false,
            Some(pv) if !pv.cfg.subscribe.is_on_demand() => true,
            Some(_) => self.watched.contains(&id) || self.lingering.contains(id),
        }
    }

    /// The next moment something is due (an un-advise, the end of a first-value wait).
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.lingering.next(), self.waiting.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn lost_alarm(reason: &str) -> Alarm {
    Alarm::new(
        Severity::Invalid,
        AlarmStatus::Driver,
        format!("gateway connection lost: {reason}"),
    )
}

impl Bridge {
    fn linger_of(&self, id: PvId) -> Option<Duration> {
        match self.pvs.get(id)?.cfg.subscribe {
            Subscribe::OnDemand { linger } => Some(linger),
            Subscribe::Always => None,
        }
    }

    /// Whether the PV's tag is to be advised in the session: every always PV, and the
    /// on-demand PVs watched or lingering.
    pub(in crate::bridge) fn wants_item(&self, id: PvId) -> bool {
        self.demand.wants_item(&self.pvs, id)
    }

    /// Of `ids` about to be subscribed in the live session, those whose tag is wanted;
    /// the on-demand ones among them count as being advised.
    pub(in crate::bridge) fn wanted_for_advise(&mut self, ids: Vec<PvId>) -> Vec<PvId> {
        let ids: Vec<PvId> = ids.into_iter().filter(|&id| self.wants_item(id)).collect();
        for &id in &ids {
            if self.linger_of(id).is_some() {
                self.demand.advising.insert(id);
            }
        }
        ids
    }

    /// pvxs: the PV named `pv` got its first client (`watched`) or lost its last one.
    pub(in crate::bridge) fn on_watch(&mut self, pv: &str, watched: bool) {
        // `:ACK` PVs, alarm PVs and the table are not in the registry.
        let Some(id) = self.pvs.id_of_name(pv) else {
            return;
        };
        if watched {
            self.first_client(id);
        } else {
            self.last_client_left(id);
        }
    }

    fn first_client(&mut self, id: PvId) {
        self.demand.watched.insert(id);
        if self.linger_of(id).is_none() {
            return;
        }
        self.demand.lingering.remove(id);
        let link_up = self.link.is_some();
        let wait = self.config.gateway.request_timeout;
        let Some(pv) = self.pvs.get_mut(id) else {
            return;
        };
        debug!(pv = %pv.cfg.name.as_str(), "first client of an on-demand PV");
        if !pv.pv.is_open() {
            match (&self.lost_reason, link_up) {
                // The gateway is known to be down: no value can come soon.
                (Some(reason), false) => pv.serve_without_value(lost_alarm(reason)),
                _ => self.demand.waiting.set(id, Instant::now() + wait),
            }
        }
        if link_up && pv.item.is_none() && !self.demand.advising.contains(&id) {
            self.demand.to_advise.push(id);
        }
    }

    fn last_client_left(&mut self, id: PvId) {
        // pvxs reports a closed PV's channels one by one: only the first counts.
        if !self.demand.watched.remove(&id) {
            return;
        }
        let Some(linger) = self.linger_of(id) else {
            return;
        };
        self.demand.waiting.remove(id);
        self.demand.to_advise.retain(|&x| x != id);
        let advising = self.demand.advising.contains(&id);
        let Some(pv) = self.pvs.get_mut(id) else {
            return;
        };
        debug!(pv = %pv.cfg.name.as_str(), ?linger, "last client of an on-demand PV left");
        if pv.item.is_some() || advising {
            self.demand.lingering.set(id, Instant::now() + linger);
        } else {
            // Not advised (the gateway is down): nothing to linger for.
            pv.close_unwatched();
        }
    }

    /// The end of a turn: the PVs whose first client came in it are advised together.
    pub(in crate::bridge) fn advise_watched(&mut self) {
        if self.demand.to_advise.is_empty() || self.link.is_none() {
            self.demand.to_advise.clear();
            return;
        }
        let mut ids = std::mem::take(&mut self.demand.to_advise);
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|&id| {
            !self.demand.advising.contains(&id)
                && self.pvs.get(id).is_some_and(|pv| pv.item.is_none())
        });
        if ids.is_empty() {
            return;
        }
        info!(
            pvs = ids.len(),
            "advising on-demand PVs for their first clients"
        );
        self.advise(ids);
    }

    /// A deadline came: PVs that lingered long enough are un-advised and closed; PVs whose
    /// first client waited long enough for a value are served without one.
    pub(in crate::bridge) fn on_demand_deadline(&mut self) {
        let now = Instant::now();
        let mut items = Vec::new();
        let mut closed = 0usize;
        for id in self.demand.lingering.take_due(now) {
            if self.demand.watched.contains(&id) || self.linger_of(id).is_none() {
                continue;
            }
            // Lingers anew once its advise is done (`advised`).
            if self.demand.advising.contains(&id) {
                continue;
            }
            let Some(pv) = self.pvs.get_mut(id) else {
                continue;
            };
            if pv.writes_waiting() > 0 {
                self.demand.lingering.set(id, now + WRITES_RECHECK);
                continue;
            }
            pv.close_unwatched();
            debug!(pv = %pv.cfg.name.as_str(), "on-demand PV un-advised after its linger");
            items.extend(pv.item);
            self.pvs.unbind(id);
            self.subs.forget(id);
            closed += 1;
        }
        if closed > 0 {
            info!(
                pvs = closed,
                advised = self.pvs.subscribed(),
                "un-advising on-demand PVs nobody watches"
            );
        }
        self.subs.unadvise(items);
        let wait = self.config.gateway.request_timeout;
        for id in self.demand.waiting.take_due(now) {
            let Some(pv) = self.pvs.get_mut(id) else {
                continue;
            };
            if !pv.pv.is_open() {
                pv.serve_without_value(Alarm::new(
                    Severity::Invalid,
                    AlarmStatus::Undefined,
                    format!(
                        "no value from System Platform within {} of the first client",
                        humantime::format_duration(wait)
                    ),
                ));
            }
        }
    }

    /// Whether a data change of the PV is to be set aside: the placeholder ("Bad:
    /// waiting for initial data") an on-demand PV not open yet waits past.
    pub(in crate::bridge) fn is_first_placeholder(&self, id: PvId, quality: Quality) -> bool {
        quality == Quality::BAD_WAITING_FOR_INITIAL_DATA
            && self.demand.waiting.contains(id)
            && self.pvs.get(id).is_some_and(|pv| !pv.pv.is_open())
    }

    /// After a data change of the PV: a first client waiting for it has it.
    pub(in crate::bridge) fn value_seen(&mut self, id: PvId) {
        if self.pvs.get(id).is_some_and(|pv| pv.pv.is_open()) {
            self.demand.waiting.remove(id);
        }
    }

    /// The advise of `ids` in the live session is done (or failed, or the session is
    /// gone): on-demand PVs left meanwhile linger; held puts are sent (or fail).
    pub(in crate::bridge) fn advised(&mut self, ids: &[PvId]) {
        let now = Instant::now();
        for &id in ids {
            if !self.demand.advising.remove(&id) {
                continue;
            }
            let linger = self.linger_of(id);
            if let (Some(linger), Some(pv)) = (linger, self.pvs.get(id)) {
                let watched = self.demand.watched.contains(&id);
                if pv.item.is_some() && !watched && !self.demand.lingering.contains(id) {
                    self.demand.lingering.set(id, now + linger);
                }
                if pv.pv.is_open() {
                    self.demand.waiting.remove(id);
                }
            }
            for put in self.demand.held.remove(&id).unwrap_or_default() {
                self.on_put(put);
            }
        }
    }

    /// The link is lost: lingering PVs close (their items died with the session), the
    /// first clients still waiting get the lost state, held puts fail.
    pub(in crate::bridge) fn on_demand_link_lost(&mut self, reason: &str) {
        self.demand.advising.clear();
        self.demand.to_advise.clear();
        for id in self.demand.lingering.drain() {
            if let Some(pv) = self.pvs.get_mut(id) {
                pv.close_unwatched();
            }
        }
        for id in self.demand.waiting.drain() {
            if let Some(pv) = self.pvs.get_mut(id) {
                if !pv.pv.is_open() {
                    pv.serve_without_value(lost_alarm(reason));
                }
            }
        }
        for (_, puts) in self.demand.held.drain() {
            for put in puts {
                let message = format!("{}: gateway unavailable: write not sent", put.pv);
                put.completion.complete(Err(message));
            }
        }
    }

    /// A put to a PV whose advise is under way waits for it (at most `max_puts_per_pv`
    /// per PV); `None` when it was held or refused.
    pub(in crate::bridge) fn hold_put(&mut self, id: PvId, put: PutRequest) -> Option<PutRequest> {
        let advising = self.demand.advising.contains(&id)
            && self.pvs.get(id).is_some_and(|pv| pv.item.is_none());
        if !advising {
            return Some(put);
        }
        let max = self.config.limits.max_puts_per_pv;
        let held = self.demand.held.entry(id).or_default();
        if held.len() >= max {
            let message = format!(
                "{}: {max} puts already wait for the PV's tag to be advised ([limits] max_puts_per_pv {max}): put refused",
                put.pv
            );
            put.completion.complete(Err(message));
        } else {
            held.push(put);
        }
        None
    }

    /// A PV is re-opened (a new tag, type or writability): the puts held for its advise
    /// were accepted for what it was, and fail; its clients and their linger stay.
    pub(in crate::bridge) fn fail_held_puts(&mut self, id: PvId, why: &str) {
        for put in self.demand.held.remove(&id).unwrap_or_default() {
            let message = format!("{}: {why}: put not sent", put.pv);
            put.completion.complete(Err(message));
        }
    }

    /// A PV leaves the mapping: it is forgotten here; its held puts fail.
    pub(in crate::bridge) fn forget_on_demand(&mut self, id: PvId, why: &str) {
        self.demand.watched.remove(&id);
        self.demand.lingering.remove(id);
        self.demand.waiting.remove(id);
        self.demand.advising.remove(&id);
        self.demand.to_advise.retain(|&x| x != id);
        for put in self.demand.held.remove(&id).unwrap_or_default() {
            let message = format!("{}: {why}: put not sent", put.pv);
            put.completion.complete(Err(message));
        }
    }

    /// A reload changed the PV's `subscribe` or `linger` in place (its config is the new
    /// one already). True when its tag is to be advised now.
    pub(in crate::bridge) fn subscribe_changed(&mut self, id: PvId) -> bool {
        let watched = self.demand.watched.contains(&id);
        let advising = self.demand.advising.contains(&id);
        let now = Instant::now();
        let Some(pv) = self.pvs.get_mut(id) else {
            return false;
        };
        match pv.cfg.subscribe {
            Subscribe::Always => {
                self.demand.lingering.remove(id);
                self.demand.waiting.remove(id);
                if !pv.pv.is_open() && pv.cfg.pv_type.is_some() {
                    // As a PV mapped always from the start: served at once.
                    pv.serve_without_value(Alarm::new(
                        Severity::Invalid,
                        AlarmStatus::Undefined,
                        "waiting for initial data from System Platform",
                    ));
                }
                pv.item.is_none() && !advising
            }
            Subscribe::OnDemand { linger } => {
                if watched {
                    // Advised already (it was always), or its advise is under way.
                    false
                } else if pv.item.is_some() || advising {
                    self.demand.lingering.set(id, now + linger);
                    false
                } else {
                    pv.close_unwatched();
                    false
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_come_soonest_first_and_a_new_one_replaces_the_old() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let (a, b, c) = (PvId::for_test(1), PvId::for_test(2), PvId::for_test(3));
        let mut d = Deadlines::default();
        assert_eq!(d.next(), None);
        d.set(a, ms(300));
        d.set(b, ms(100));
        d.set(c, ms(200));
        assert_eq!(d.next(), Some(ms(100)));
        // A client that came back and left again: its linger starts over.
        d.set(b, ms(400));
        assert_eq!(d.next(), Some(ms(200)));
        d.remove(c);
        assert!(!d.contains(c));
        assert_eq!(d.take_due(ms(350)), vec![a]);
        assert_eq!(d.take_due(ms(350)), Vec::<PvId>::new());
        assert!(d.contains(b));
        assert_eq!(d.drain(), vec![b]);
        assert_eq!(d.next(), None);
    }
}
