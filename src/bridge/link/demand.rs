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
use crate::config::Subscribe;
use crate::gateway::{ItemHandle, Quality};
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

/// What the link is, for a first client: up, or down for `lost` (`None` while the
/// first connect is under way).
pub(in crate::bridge) struct LinkNow<'a> {
    pub up: bool,
    pub lost: Option<&'a str>,
}

fn linger_of(pvs: &Registry, id: PvId) -> Option<Duration> {
    match pvs.get(id)?.cfg.subscribe {
        Subscribe::OnDemand { linger } => Some(linger),
        Subscribe::Always => None,
    }
}

/// What a deadline did: items to un-advise, PVs no longer advised.
#[derive(Default)]
pub(in crate::bridge) struct Unadvised {
    pub items: Vec<ItemHandle>,
    pub pvs: Vec<PvId>,
}

impl Demand {
    /// Of `ids` about to be subscribed in the live session, those whose tag is wanted;
    /// the on-demand ones among them count as being advised.
    pub fn wanted_for_advise(&mut self, pvs: &Registry, ids: Vec<PvId>) -> Vec<PvId> {
        let ids: Vec<PvId> = ids
            .into_iter()
            .filter(|&id| self.wants_item(pvs, id))
            .collect();
        for &id in &ids {
            if linger_of(pvs, id).is_some() {
                self.advising.insert(id);
            }
        }
        ids
    }

    /// pvxs: the PV `id` got its first client (`watched`) or lost its last one.
    /// `wait` bounds a first client's wait for a value.
    pub fn on_watch(
        &mut self,
        pvs: &mut Registry,
        id: PvId,
        watched: bool,
        link: LinkNow<'_>,
        wait: Duration,
        now: Instant,
    ) {
        if watched {
            self.first_client(pvs, id, link, wait, now);
        } else {
            self.last_client_left(pvs, id, now);
        }
    }

    fn first_client(
        &mut self,
        pvs: &mut Registry,
        id: PvId,
        link: LinkNow<'_>,
        wait: Duration,
        now: Instant,
    ) {
        self.watched.insert(id);
        if linger_of(pvs, id).is_none() {
            return;
        }
        self.lingering.remove(id);
        let Some(pv) = pvs.get_mut(id) else {
            return;
        };
        debug!(pv = %pv.cfg.name.as_str(), "first client of an on-demand PV");
        if !pv.pv.is_open() {
            match (link.lost, link.up) {
                // The gateway is known to be down: no value can come soon.
                (Some(reason), false) => pv.serve_without_value(lost_alarm(reason)),
                _ => self.waiting.set(id, now + wait),
            }
        }
        if link.up && pv.item.is_none() && !self.advising.contains(&id) {
            self.to_advise.push(id);
        }
    }

    fn last_client_left(&mut self, pvs: &mut Registry, id: PvId, now: Instant) {
        // pvxs reports a closed PV's channels one by one: only the first counts.
        if !self.watched.remove(&id) {
            return;
        }
        let Some(linger) = linger_of(pvs, id) else {
            return;
        };
        self.waiting.remove(id);
        self.to_advise.retain(|&x| x != id);
        let advising = self.advising.contains(&id);
        let Some(pv) = pvs.get_mut(id) else {
            return;
        };
        debug!(pv = %pv.cfg.name.as_str(), ?linger, "last client of an on-demand PV left");
        if pv.item.is_some() || advising {
            self.lingering.set(id, now + linger);
        } else {
            // Not advised (the gateway is down): nothing to linger for.
            pv.close_unwatched();
        }
    }

    /// The end of a turn: the PVs whose first client came in it, to advise together.
    pub fn take_to_advise(&mut self, pvs: &Registry, link_up: bool) -> Vec<PvId> {
        let mut ids = std::mem::take(&mut self.to_advise);
        if ids.is_empty() || !link_up {
            return Vec::new();
        }
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|&id| {
            !self.advising.contains(&id) && pvs.get(id).is_some_and(|pv| pv.item.is_none())
        });
        if !ids.is_empty() {
            info!(
                pvs = ids.len(),
                "advising on-demand PVs for their first clients"
            );
        }
        ids
    }

    /// A deadline came: PVs that lingered long enough are un-advised and closed; PVs whose
    /// first client waited long enough for a value are served without one.
    pub fn on_deadline(&mut self, pvs: &mut Registry, wait: Duration, now: Instant) -> Unadvised {
        let mut out = Unadvised::default();
        for id in self.lingering.take_due(now) {
            if self.watched.contains(&id) || linger_of(pvs, id).is_none() {
                continue;
            }
            // Lingers anew once its advise is done (`advised`).
            if self.advising.contains(&id) {
                continue;
            }
            let Some(pv) = pvs.get_mut(id) else {
                continue;
            };
            if pv.writes_waiting() > 0 {
                self.lingering.set(id, now + WRITES_RECHECK);
                continue;
            }
            pv.close_unwatched();
            debug!(pv = %pv.cfg.name.as_str(), "on-demand PV un-advised after its linger");
            out.items.extend(pv.items());
            pvs.unbind(id);
            out.pvs.push(id);
        }
        if !out.pvs.is_empty() {
            info!(
                pvs = out.pvs.len(),
                advised = pvs.subscribed(),
                "un-advising on-demand PVs nobody watches"
            );
        }
        for id in self.waiting.take_due(now) {
            let Some(pv) = pvs.get_mut(id) else {
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
        out
    }

    /// Whether a data change of the PV is to be set aside: the placeholder ("Bad:
    /// waiting for initial data") an on-demand PV not open yet waits past.
    pub fn is_first_placeholder(&self, pvs: &Registry, id: PvId, quality: Quality) -> bool {
        quality == Quality::BAD_WAITING_FOR_INITIAL_DATA
            && self.waiting.contains(id)
            && pvs.get(id).is_some_and(|pv| !pv.pv.is_open())
    }

    /// After a data change of the PV: a first client waiting for it has it.
    pub fn value_seen(&mut self, pvs: &Registry, id: PvId) {
        if pvs.get(id).is_some_and(|pv| pv.pv.is_open()) {
            self.waiting.remove(id);
        }
    }

    /// The advise of `ids` in the live session is done (or failed, or the session is
    /// gone): on-demand PVs left meanwhile linger. Returns the puts held for them, to
    /// take now.
    pub fn advised(&mut self, pvs: &Registry, ids: &[PvId], now: Instant) -> Vec<PutRequest> {
        let mut puts = Vec::new();
        for &id in ids {
            if !self.advising.remove(&id) {
                continue;
            }
            if let (Some(linger), Some(pv)) = (linger_of(pvs, id), pvs.get(id)) {
                let watched = self.watched.contains(&id);
                if pv.item.is_some() && !watched && !self.lingering.contains(id) {
                    self.lingering.set(id, now + linger);
                }
                if pv.pv.is_open() {
                    self.waiting.remove(id);
                }
            }
            puts.extend(self.held.remove(&id).unwrap_or_default());
        }
        puts
    }

    /// The link is lost: lingering PVs close (their items died with the session), the
    /// first clients still waiting get the lost state, held puts fail.
    pub fn link_lost(&mut self, pvs: &mut Registry, reason: &str) {
        self.advising.clear();
        self.to_advise.clear();
        for id in self.lingering.drain() {
            if let Some(pv) = pvs.get_mut(id) {
                pv.close_unwatched();
            }
        }
        for id in self.waiting.drain() {
            if let Some(pv) = pvs.get_mut(id) {
                if !pv.pv.is_open() {
                    pv.serve_without_value(lost_alarm(reason));
                }
            }
        }
        for (_, puts) in self.held.drain() {
            for put in puts {
                let message = format!("{}: gateway unavailable: write not sent", put.pv);
                put.completion.complete(Err(message));
            }
        }
    }

    /// A put to a PV whose advise is under way waits for it (at most `max` per PV);
    /// `None` when it was held or refused.
    pub fn hold_put(
        &mut self,
        pvs: &Registry,
        id: PvId,
        put: PutRequest,
        max: usize,
    ) -> Option<PutRequest> {
        let advising =
            self.advising.contains(&id) && pvs.get(id).is_some_and(|pv| pv.item.is_none());
        if !advising {
            return Some(put);
        }
        let held = self.held.entry(id).or_default();
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
    pub fn fail_held_puts(&mut self, id: PvId, why: &str) {
        for put in self.held.remove(&id).unwrap_or_default() {
            let message = format!("{}: {why}: put not sent", put.pv);
            put.completion.complete(Err(message));
        }
    }

    /// A PV leaves the mapping: it is forgotten here; its held puts fail.
    pub fn forget(&mut self, id: PvId, why: &str) {
        self.watched.remove(&id);
        self.lingering.remove(id);
        self.waiting.remove(id);
        self.advising.remove(&id);
        self.to_advise.retain(|&x| x != id);
        self.fail_held_puts(id, why);
    }

    /// A reload changed the PV's `subscribe` or `linger` in place (its config is the new
    /// one already). True when its tag is to be advised now.
    pub fn subscribe_changed(&mut self, pvs: &mut Registry, id: PvId, now: Instant) -> bool {
        let watched = self.watched.contains(&id);
        let advising = self.advising.contains(&id);
        let Some(pv) = pvs.get_mut(id) else {
            return false;
        };
        match pv.cfg.subscribe {
            Subscribe::Always => {
                self.lingering.remove(id);
                self.waiting.remove(id);
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
                } else if pv.item.is_some() || advising {
                    self.lingering.set(id, now + linger);
                } else {
                    pv.close_unwatched();
                }
                false
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
