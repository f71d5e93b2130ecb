//! Tags advised in the live session: the PVs asked for, and the results of their
//! SubscribeBulk calls bound to PVs (`subscriptions.rs` decides when calls go).

use tracing::{debug, warn};

use super::subscriptions::Advised;
use crate::bridge::mapping::registry::Bound;
use crate::bridge::pv_id::PvId;
use crate::bridge::Bridge;
use crate::gateway::ItemHandle;

impl Bridge {
    /// Advises the tags of `ids` in the live session, if any (of `ids`, those
    /// [`Bridge::wants_item`]: on-demand PVs only while watched or lingering).
    pub(in crate::bridge) fn advise(&mut self, ids: Vec<PvId>) {
        if self.link.is_none() || ids.is_empty() {
            return;
        }
        for id in self.wanted_for_advise(ids) {
            self.subs.advise(id);
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
        let done = self
            .subs
            .on_subscribed(call, results, |id, tag, r| match r {
                Ok(item) => match pvs.bind(id, tag, item) {
                    Ok(Bound::New) => {
                        over.push(id);
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
                Err(reason) => {
                    // A failure of a tag the PV no longer maps to says nothing of the PV.
                    if let Some(pv) = pvs.get_mut(id).filter(|pv| pv.cfg.tag.as_str() == tag) {
                        warn!(pv = %pv.cfg.name.as_str(), %tag, %reason, "subscribe failed");
                        pv.subscribe_failed(&reason);
                        failed += 1;
                        over.push(id);
                    }
                    false
                }
            });
        if done.is_none() {
            return;
        }
        if let Some(start) = self.starting.as_mut() {
            start.failed += failed;
        }
        self.subs.unadvise(unwanted);
        self.advised(&over);
        // Data changes held for items known now are taken; the others are strays.
        for ev in self.subs.take_early() {
            self.on_session_event(ev);
        }
    }
}
