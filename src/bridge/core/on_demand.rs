//! On-demand PVs (`link/demand.rs` holds their state and says how they behave), joined
//! with the bridge's other parts: first clients, advises, lingers, held puts.

use tokio::time::Instant;

use super::Bridge;
use crate::bridge::link::demand::LinkNow;
use crate::bridge::pv_id::PvId;

impl Bridge {
    /// pvxs: the PV named `pv` got its first client (`watched`) or lost its last one.
    pub(in crate::bridge) fn on_watch(&mut self, pv: &str, watched: bool) {
        // `:ACK` PVs, alarm PVs and the table are not in the registry.
        let Some(id) = self.pvs.id_of_name(pv) else {
            return;
        };
        let link = LinkNow {
            up: self.link.session.is_some(),
            lost: self.link.lost_reason.as_deref(),
        };
        let wait = self.config.gateway.request_timeout;
        self.demand
            .on_watch(&mut self.pvs, id, watched, link, wait, Instant::now());
    }

    /// The end of a turn: the PVs whose first client came in it are advised together.
    pub(in crate::bridge) fn advise_watched(&mut self) {
        let up = self.link.session.is_some();
        let ids = self.demand.take_to_advise(&self.pvs, up);
        self.advise(ids);
    }

    /// A deadline came: PVs that lingered long enough are un-advised; first clients that
    /// waited long enough are served without a value.
    pub(in crate::bridge) fn on_demand_deadline(&mut self) {
        let wait = self.config.gateway.request_timeout;
        let gone = self.demand.on_deadline(&mut self.pvs, wait, Instant::now());
        for id in gone.pvs {
            self.link.subs.forget(id);
        }
        self.link.subs.unadvise(gone.items);
    }

    /// The advise of `ids` is over: the puts held for it are taken now.
    pub(in crate::bridge) fn advised(&mut self, ids: &[PvId]) {
        for put in self.demand.advised(&self.pvs, ids, Instant::now()) {
            self.on_put(put);
        }
    }
}
