//! The alarm side follows the mapping when it changes while serving: owners are found
//! again, `:ACK` PVs of PVs gone go with them, and `[alarms]` settings reloaded apply.

use std::collections::HashSet;
use std::sync::Arc;

use tracing::info;

use super::ack::AckPv;
use super::{owner_maps, Alarms, Changed, Owner};
use crate::bridge::registry::{PvId, Registry};
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
                        !acknowledge
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
        // Value owners are looked at again (a PV may now acknowledge); `[[alarm_pv]]`
        // owners have not changed.
        let served: HashSet<Owner> = self.acks.values().map(|(owner, _)| *owner).collect();
        self.ack_done
            .retain(|owner, _| matches!(owner, Owner::Own(_)) || served.contains(owner));
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

    /// Takes reloaded `[alarms]` settings: severities, priority bands and the severity
    /// scheme apply at once (with the next [`Alarms::remap`]); the names of those that
    /// need a restart, when they changed, are returned.
    pub fn reload_settings(
        &mut self,
        new: &config::Alarms,
        alarm_pvs: &[config::AlarmPv],
    ) -> Vec<&'static str> {
        let mut restart = Vec::new();
        let old = &self.cfg;
        let mut note = |differs: bool, what: &'static str| {
            if differs {
                restart.push(what);
            }
        };
        note(old.enabled != new.enabled, "[alarms] enabled");
        note(
            old.filter_prefix != new.filter_prefix,
            "[alarms] filter_prefix",
        );
        note(old.table != new.table, "[alarms] table");
        note(old.ack_suffix != new.ack_suffix, "[alarms] ack_suffix");
        // Where a table sits in the file is no change.
        let unplaced = |a: &config::AlarmPv| config::AlarmPv {
            location: String::new(),
            ..a.clone()
        };
        note(
            self.own.len() != alarm_pvs.len()
                || self
                    .own
                    .iter()
                    .zip(alarm_pvs)
                    .any(|(a, b)| unplaced(&a.cfg) != unplaced(b)),
            "[[alarm_pv]]",
        );
        self.settings_changed |= self.cfg.returned_unacked != new.returned_unacked
            || self.cfg.priorities != new.priorities
            || self.cfg.severity != new.severity;
        self.cfg = config::Alarms {
            enabled: old.enabled,
            filter_prefix: old.filter_prefix.clone(),
            table: old.table.clone(),
            ack_suffix: old.ack_suffix.clone(),
            ..new.clone()
        };
        restart
    }
}
