//! The alarm side follows the mapping when it changes while serving: owners are found
//! again, `:ACK` PVs of PVs gone go with them (`reload.rs` takes reloaded `[alarms]`
//! settings and `[[alarm_pv]]` PVs).

use std::collections::HashSet;
use std::sync::Arc;

use tracing::info;

use super::state::{owner_maps, AckPv, Alarms, Changed, Owner};
use crate::bridge::mapping::registry::Registry;
use crate::bridge::pv_id::PvId;
use crate::config;

impl Alarms {
    /// The mapped PVs changed: every alarm's owner is found again, the `:ACK` PVs of PVs
    /// gone (or no longer acknowledging) stop being served, and the PVs whose alarms
    /// changed are re-posted with the table (value PVs through `dirty`): those whose
    /// alarms moved, those in `touched` (new or re-opened PVs, changed alarm settings),
    /// and every one when the `[alarms]` settings changed. Others are not posted.
    pub fn remap(&mut self, pvs: &mut Registry, dirty: &mut Vec<PvId>, touched: &HashSet<PvId>) {
        let own_cfgs: Vec<config::AlarmPv> = self.own.iter().map(|o| o.cfg.clone()).collect();
        let (named, by_tag) = owner_maps(pvs, &own_cfgs);
        self.named = named;
        self.by_tag = by_tag;
        let mut owners: Changed = Vec::new();
        let active: Vec<(String, Option<Owner>)> = self
            .active
            .values()
            .map(|e| (e.reference.clone(), self.owner_of(e)))
            .collect();
        let all = std::mem::take(&mut self.settings_changed);
        owners.append(&mut self.repost);
        for (reference, owner) in active {
            if let Some(e) = self.active.get_mut(&reference) {
                let repost = all
                    || e.owner != owner
                    || matches!(owner, Some(Owner::Value(id)) if touched.contains(&id));
                if repost {
                    owners.extend(e.owner.map(|o| (o, None)));
                    owners.extend(owner.map(|o| (o, None)));
                }
                e.owner = owner;
            }
        }
        if let Some(pending) = &self.pending {
            let found: Vec<(String, Option<Owner>)> = pending
                .values()
                .map(|e| (e.reference.clone(), self.owner_of(e)))
                .collect();
            if let Some(pending) = self.pending.as_mut() {
                for (reference, owner) in found {
                    if let Some(e) = pending.get_mut(&reference) {
                        e.owner = owner;
                    }
                }
            }
        }
        // `:ACK` PVs whose PV is gone, no longer acknowledges, or was renamed.
        let stale: Vec<Arc<str>> = self
            .acks
            .iter()
            .filter(
                |(name, (owner, _))| match self.owner_settings(*owner, pvs) {
                    Some((pv, acknowledge, _)) => {
                        !self.cfg.enabled
                            || !acknowledge
                            || name.as_ref() != format!("{pv}{}", self.cfg.ack_suffix).as_str()
                    }
                    None => true,
                },
            )
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some((_, ack)) = self.acks.remove(&name) {
                if let Err(e) = self.server.remove_pv(&name) {
                    tracing::warn!(pv = %name, error = %e, "cannot stop serving the acknowledgement PV");
                }
                AckPv::close(ack);
                info!(pv = %name, "acknowledgement PV removed");
            }
        }
        // Owners without an `:ACK` PV are looked at again (a PV may now acknowledge).
        let served: HashSet<Owner> = self.acks.values().map(|(owner, _)| *owner).collect();
        self.ack_done.retain(|owner, _| served.contains(owner));
        if self.cfg.enabled {
            let known: Vec<Owner> = self.named.values().copied().collect();
            for owner in known {
                self.ensure_ack(owner, pvs);
            }
        }
        if !owners.is_empty() {
            self.refresh(owners, pvs, dirty);
        }
        // Owners of PVs gone are forgotten.
        self.ack_done.retain(|owner, _| match owner {
            Owner::Value(id) => pvs.get(*id).is_some(),
            Owner::Own(_) => true,
        });
    }
}
