//! A session up and lost, and the tags advised in it: the PVs asked for, and the
//! results of their SubscribeBulk calls bound to PVs (`link/subscriptions.rs` decides
//! when calls go).

use tracing::{debug, info, warn};

use super::Bridge;
use crate::bridge::link::subscriptions::{Advised, Role};
use crate::bridge::link::{Link, SessionStart};
use crate::bridge::mapping::registry::Bound;
use crate::bridge::pv_id::PvId;
use crate::gateway::ItemHandle;

impl Bridge {
    /// A session is up: every PV whose tag is wanted is advised in it (on-demand PVs only
    /// while watched or lingering), chunk by chunk (`subscriptions.rs`).
    pub(in crate::bridge) fn on_connected(&mut self, link: Link) {
        self.pvs.clear_items();
        self.link.strays.reset();
        self.link.lost_reason = None;
        self.link.subs.session_up();
        self.link.session = Some(link);
        self.link.starting = Some(SessionStart::default());
        // In the order the PVs were added.
        let ids = self.pvs.ids();
        self.advise(ids);
    }

    /// The end of a turn: once the subscriptions of a new session (or of a reload) are
    /// all answered, that is said (the log, the status PVs, systemd).
    pub(in crate::bridge) fn subscriptions_done(&mut self) {
        if !self.link.subs.is_idle() {
            return;
        }
        if let (Some(start), Some(link)) = (self.link.starting.take(), &self.link.session) {
            info!(
                session = %link.session,
                subscribed = self.pvs.subscribed(),
                failed = start.failed,
                first_values_to_come = self.link.subs.holding(),
                "gateway session up"
            );
            self.ops.status.gateway_up(&link.session);
            crate::systemd::status(&format!(
                "serving {} PVs, gateway session {}",
                self.pvs.len(),
                link.session
            ));
            self.ops.first_connect_over(&self.pvs, true);
            self.link.reload_subscribing = false;
        }
        if std::mem::take(&mut self.link.reload_subscribing) {
            info!(
                subscribed = self.pvs.subscribed(),
                first_values_to_come = self.link.subs.holding(),
                "subscriptions of the reload done"
            );
        }
    }

    /// The link is gone: every PV goes INVALID, pending writes fail. (Its session, which
    /// may live on at the gateway, is closed by the adapter's next connect.)
    pub(in crate::bridge) fn close_link(&mut self, reason: &str) {
        self.on_lost(reason);
    }

    pub(in crate::bridge) fn on_lost(&mut self, reason: &str) {
        self.link.session = None;
        self.coalesce = false;
        self.writes.link_lost();
        self.pvs.clear_items();
        // Calls in flight, room held and data changes held name the lost session.
        self.link.subs.session_lost();
        self.link.starting = None;
        self.link.reload_subscribing = false;
        self.demand.link_lost(&mut self.pvs, reason);
        self.ops.status.gateway_lost(reason);
        // Retries that fail the same way change nothing a client can see.
        if self.link.lost_reason.as_deref() == Some(reason) {
            tracing::debug!(%reason, "gateway still unavailable");
            return;
        }
        warn!(%reason, "gateway connection lost");
        crate::systemd::status(&format!("gateway connection lost: {reason}"));
        self.link.lost_reason = Some(reason.to_string());
        let message = format!("gateway connection lost: {reason}");
        for (_, pv) in self.pvs.iter_mut() {
            pv.connection_lost(&message);
        }
    }
}

impl Bridge {
    /// Advises the tags of `ids` in the live session, if any (of `ids`, those
    /// [`Bridge::wants_item`]: on-demand PVs only while watched or lingering).
    pub(in crate::bridge) fn advise(&mut self, ids: Vec<PvId>) {
        if self.link.session.is_none() || ids.is_empty() {
            return;
        }
        for id in self.demand.wanted_for_advise(&self.pvs, ids) {
            self.link.subs.advise(id);
        }
    }

    /// The results of SubscribeBulk `call` (`Err`: the whole call failed): each item is
    /// bound to its PV if the PV still maps to the tag it was advised for
    /// ([`Registry::bind`](super::registry::Registry::bind)); an item not bound is
    /// un-advised. Then the data changes held meanwhile are taken.
    pub(in crate::bridge) fn on_subscribed(
        &mut self,
        call: u64,
        results: Result<Vec<Advised>, String>,
    ) {
        let pvs = &mut self.pvs;
        let mut unwanted: Vec<ItemHandle> = Vec::new();
        let mut failed = 0usize;
        // PVs whose advise of the tag they map to is over (bound or failed); a PV
        // re-tagged meanwhile is advised again with its new tag, and waits for that.
        let mut over: Vec<PvId> = Vec::new();
        // Writable buffered PVs whose data item is bound: their write item is next.
        let mut again: Vec<PvId> = Vec::new();
        // PVs whose result no longer fits them (re-tagged, made buffered or plain, or
        // removed meanwhile): their advise is over too, unless another is queued.
        let mut changed: Vec<PvId> = Vec::new();
        let done = self
            .link
            .subs
            .on_subscribed(call, results, |id, tag, role, r| match r {
                Ok(item) => match pvs.bind(id, tag, role, item) {
                    Ok(Bound::New) => {
                        if pvs.get(id).is_some_and(|pv| pv.needs_write_item()) {
                            again.push(id);
                        } else {
                            over.push(id);
                        }
                        true
                    }
                    Ok(Bound::Already) => {
                        over.push(id);
                        false
                    }
                    Err(why) => {
                        debug!(item = item.0, %tag, %why, "item not bound");
                        if why.unsubscribe() {
                            unwanted.push(item);
                            changed.push(id);
                        } else if let Some(pv) = pvs.get_mut(id) {
                            // The gateway gave this tag's handle to another tag too.
                            let reason = format!("{tag}: {why}");
                            warn!(pv = %pv.cfg.name.as_str(), %tag, %reason, "subscribe failed");
                            pv.subscribe_failed(&reason);
                            over.push(id);
                        }
                        false
                    }
                },
                Err(reason) if role == Role::Write => {
                    // Its data is advised: only its puts fail, saying why.
                    if let Some(pv) = pvs.get(id).filter(|pv| pv.cfg.tag.as_str() == tag) {
                        warn!(pv = %pv.cfg.name.as_str(), %tag, %reason, "cannot add the plain item a buffered PV writes through: its puts fail");
                        over.push(id);
                    } else {
                        changed.push(id);
                    }
                    false
                }
                Err(reason) => {
                    // A failure of a tag the PV no longer maps to says nothing of the PV.
                    if let Some(pv) = pvs.get_mut(id).filter(|pv| pv.cfg.tag.as_str() == tag) {
                        warn!(pv = %pv.cfg.name.as_str(), %tag, %reason, "subscribe failed");
                        pv.subscribe_failed(&reason);
                        failed += 1;
                        over.push(id);
                    } else {
                        changed.push(id);
                    }
                    false
                }
            });
        if done.is_none() {
            return;
        }
        if let Some(start) = self.link.starting.as_mut() {
            start.failed += failed;
        }
        self.link.subs.unadvise(unwanted);
        for id in again {
            self.link.subs.advise(id);
        }
        // An on-demand PV stays "being advised" (its puts held) only while an advise of
        // it is queued or in flight.
        over.extend(
            changed
                .into_iter()
                .filter(|&id| !self.link.subs.is_advising(id)),
        );
        self.advised(&over);
        // Data changes held for items known now are taken; the others are strays.
        for ev in self.link.subs.take_early() {
            self.on_session_event(ev);
        }
    }
}
