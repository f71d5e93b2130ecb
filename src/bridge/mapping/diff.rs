//! The desired mapping and its diff with the registry.
//!
//! The config yields the desired set of PVs ([`desired`]). Compared by PV name with what
//! the registry serves, it gives the PVs to add, to remove, and to change, each change
//! named by its kinds ([`Change`]). A PV whose name changed is a removal and an addition:
//! its clients follow names, not ids. A PV the diff does not name is not touched.
//!
//! Start is the first diff, against an empty registry: everything is added.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::config::{self, Config};

use crate::bridge::pv_id::PvId;

/// The PVs the config asks for, in its order.
pub(in crate::bridge) fn desired(config: &Config) -> Vec<Arc<config::Pv>> {
    config.pvs.clone()
}

/// One kind of change of a PV that stays (same name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(in crate::bridge) enum Change {
    /// Another tag: the old one is unsubscribed and the new one subscribed.
    Tag,
    /// The served type (`type`, or how a Boolean is served): the PV is re-opened.
    Type,
    /// `units`, `precision`, `description`, `display`, enum `choices`: posted in place.
    Metadata,
    /// Read-only <-> writable: the PV is re-opened with its new access.
    Writability,
    /// How puts are sent (`write` mode, users), the PV staying writable.
    WriteMode,
    /// `alarms`, `acknowledge`, `alarm_severity`: which System Platform alarms it carries.
    Alarms,
    /// `value_alarm` and `control` limits.
    Limits,
    /// Which time is posted (`timestamp`).
    Timestamp,
    /// When the tag is advised (`subscribe`, `linger`): taken in place (`link/demand.rs`).
    Subscribe,
    /// `access_group`, `access_level`: taken in place by the next put.
    Access,
    /// `buffered`: taken in place, without a disconnect: the item is un-advised and the
    /// tag advised again the new way (its first value is posted by the timeStamp rule).
    Buffered,
}

/// How a PV's config changed: each kind once, in [`Change`] order; empty when it did not.
pub(in crate::bridge) fn changes(old: &config::Pv, new: &config::Pv) -> Vec<Change> {
    let mut out = Vec::new();
    let mut note = |differs: bool, kind: Change| {
        if differs {
            out.push(kind);
        }
    };
    note(old.tag != new.tag, Change::Tag);
    note(
        old.pv_type != new.pv_type || old.boolean != new.boolean,
        Change::Type,
    );
    note(
        old.meta.units != new.meta.units
            || old.meta.precision != new.meta.precision
            || old.meta.description != new.meta.description
            || old.meta.display != new.meta.display
            || old.choices != new.choices,
        Change::Metadata,
    );
    note(old.writable() != new.writable(), Change::Writability);
    note(
        old.writable() && new.writable() && old.write != new.write,
        Change::WriteMode,
    );
    note(
        old.meta.alarms != new.meta.alarms
            || old.acknowledge != new.acknowledge
            || old.meta.alarm_severity != new.meta.alarm_severity,
        Change::Alarms,
    );
    note(
        old.meta.value_alarm != new.meta.value_alarm || old.meta.control != new.meta.control,
        Change::Limits,
    );
    note(old.timestamp != new.timestamp, Change::Timestamp);
    note(old.subscribe != new.subscribe, Change::Subscribe);
    note(
        old.access_group != new.access_group || old.access_level != new.access_level,
        Change::Access,
    );
    note(old.buffered != new.buffered, Change::Buffered);
    out
}

/// A PV that stays, with its new config and how it changed.
#[derive(Debug, Clone)]
pub(in crate::bridge) struct Changed {
    pub id: PvId,
    pub cfg: Arc<config::Pv>,
    pub changes: Vec<Change>,
}

/// What turns the registry into the desired mapping.
#[derive(Debug, Default)]
pub(in crate::bridge) struct Diff {
    /// New PVs, in the config's order.
    pub added: Vec<Arc<config::Pv>>,
    /// PVs no longer wanted.
    pub removed: Vec<PvId>,
    /// PVs that stay under their name with another config.
    pub changed: Vec<Changed>,
    /// PVs whose config did not change, with the desired config (equal to theirs but
    /// another copy: a reload reads the file anew), which they take so that each PV's
    /// config is held once (issue 23). Not a change: [`Diff::is_empty`] ignores them.
    pub same: Vec<(PvId, Arc<config::Pv>)>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The diff from `current` (what the registry serves: id and config of each PV, ids in
/// the order the PVs were added) to `desired`. A name the desired list holds twice (which
/// config validation refuses) counts once, the first.
pub(in crate::bridge) fn diff<'a>(
    current: impl IntoIterator<Item = (PvId, &'a config::Pv)>,
    desired: &[Arc<config::Pv>],
) -> Diff {
    let current: Vec<(PvId, &config::Pv)> = current.into_iter().collect();
    let by_name: HashMap<&str, (PvId, &config::Pv)> = current
        .iter()
        .map(|&(id, cfg)| (cfg.name.as_str(), (id, cfg)))
        .collect();
    let mut wanted: HashSet<&str> = HashSet::with_capacity(desired.len());
    let mut out = Diff::default();
    for new in desired {
        if !wanted.insert(new.name.as_str()) {
            continue;
        }
        match by_name.get(new.name.as_str()) {
            None => out.added.push(new.clone()),
            Some(&(id, old)) => {
                let changes = changes(old, new);
                if !changes.is_empty() {
                    out.changed.push(Changed {
                        id,
                        cfg: new.clone(),
                        changes,
                    });
                } else if !std::ptr::eq(old, &**new) {
                    out.same.push((id, new.clone()));
                }
            }
        }
    }
    out.removed = current
        .iter()
        .filter(|(_, cfg)| !wanted.contains(cfg.name.as_str()))
        .map(|&(id, _)| id)
        .collect();
    out
}

#[cfg(test)]
mod tests;
