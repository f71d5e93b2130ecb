//! The registry of mapped PVs, keyed by a stable [`PvId`].
//!
//! An id is given once and never again within the process: a PV removed and a PV added
//! under the same name later are two ids, so a late message about the old one (a write
//! timeout, a settle) finds nothing instead of the new one. Item handles map to ids for
//! the current session only (cleared when the link goes).

use std::collections::HashMap;
use std::sync::Arc;

use crate::config;
use crate::gateway::ItemHandle;
use crate::pva::{EventSender, PvaError, Server};

use super::pv::MappedPv;

/// A mapped PV's id: stable while the PV is mapped, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct PvId(u64);

#[cfg(test)]
impl PvId {
    /// An id for tests of code that only compares ids.
    pub fn for_test(n: u64) -> Self {
        PvId(n)
    }
}

/// Why an advised item was not bound to a PV ([`Registry::bind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unbound {
    /// The PV was removed while its tag was being advised.
    Gone,
    /// The PV maps to another tag now.
    Retagged,
    /// Another PV holds this item handle.
    HeldByAnother,
    /// The PV holds another item already.
    HoldsAnother,
}

impl std::fmt::Display for Unbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unbound::Gone => "the PV was removed while its tag was being advised",
            Unbound::Retagged => "the PV was re-tagged while its old tag was being advised",
            Unbound::HeldByAnother => "the gateway gave this item handle to another tag too",
            Unbound::HoldsAnother => "the PV holds another item of its tag already",
        })
    }
}

#[derive(Default)]
pub(super) struct Registry {
    /// Boxed: a MappedPv is large, and a table of them moved every PV on each growth.
    pvs: HashMap<PvId, Box<MappedPv>>,
    by_name: HashMap<Arc<str>, PvId>,
    /// Item handle -> id, for the current session.
    by_item: HashMap<i32, PvId>,
    /// The next id to give; ids are given in increasing order, so sorting ids gives the
    /// order PVs were added in (the config's order at start).
    next: u64,
}

impl Registry {
    /// Adds a PV under a new id. A PV of the same name must have been removed first; if
    /// one is still there, the name then finds the new one.
    pub fn insert(&mut self, pv: MappedPv) -> PvId {
        let id = PvId(self.next);
        self.next = self.next.saturating_add(1);
        self.by_name.insert(Arc::from(pv.cfg.name.as_str()), id);
        if let Some(item) = pv.item {
            self.by_item.insert(item.0, id);
        }
        self.pvs.insert(id, Box::new(pv));
        id
    }

    /// Makes the PV of `cfg` and serves it on `server` under a new id.
    pub fn add(
        &mut self,
        cfg: config::Pv,
        defaults: &config::Defaults,
        server: &Server,
        events: &EventSender,
    ) -> Result<PvId, PvaError> {
        let mapped = MappedPv::new(cfg, defaults, events)?;
        server.add_pv(&mapped.pv)?;
        Ok(self.insert(mapped))
    }

    /// Puts `pv` in place of the PV of `id` (same id, same name), handing back the old
    /// one; its item handle no longer finds either.
    pub fn replace(&mut self, id: PvId, pv: MappedPv) -> Option<MappedPv> {
        let old = self.remove(id)?;
        self.by_name.insert(Arc::from(pv.cfg.name.as_str()), id);
        if let Some(item) = pv.item {
            self.by_item.insert(item.0, id);
        }
        self.pvs.insert(id, Box::new(pv));
        Some(old)
    }

    /// Each PV's id and config.
    pub fn configs(&self) -> impl Iterator<Item = (PvId, &config::Pv)> {
        self.pvs.iter().map(|(id, pv)| (*id, &pv.cfg))
    }

    /// Takes a PV out (its name and item handle no longer find it).
    pub fn remove(&mut self, id: PvId) -> Option<MappedPv> {
        let pv = *self.pvs.remove(&id)?;
        if self.by_name.get(pv.cfg.name.as_str()) == Some(&id) {
            self.by_name.remove(pv.cfg.name.as_str());
        }
        if let Some(item) = pv.item {
            if self.by_item.get(&item.0) == Some(&id) {
                self.by_item.remove(&item.0);
            }
        }
        Some(pv)
    }

    pub fn get(&self, id: PvId) -> Option<&MappedPv> {
        self.pvs.get(&id).map(|pv| &**pv)
    }

    pub fn get_mut(&mut self, id: PvId) -> Option<&mut MappedPv> {
        self.pvs.get_mut(&id).map(|pv| &mut **pv)
    }

    pub fn id_of_name(&self, name: &str) -> Option<PvId> {
        self.by_name.get(name).copied()
    }

    /// The PV of an item handle of the current session.
    pub fn id_of_item(&self, item: ItemHandle) -> Option<PvId> {
        self.by_item.get(&item.0).copied()
    }

    /// Records (or clears, with `None`) the PV's item handle in the current session.
    pub fn set_item(&mut self, id: PvId, item: Option<ItemHandle>) {
        let Some(pv) = self.pvs.get_mut(&id) else {
            return;
        };
        if let Some(old) = pv.item.take() {
            if self.by_item.get(&old.0) == Some(&id) {
                self.by_item.remove(&old.0);
            }
        }
        pv.item = item;
        if let Some(item) = item {
            self.by_item.insert(item.0, id);
        }
    }

    /// Binds `item`, advised for `tag`, to the PV of `id`: the one place an item handle
    /// meets a PV. Refused (and the item is then not wanted) when the PV is gone, when it
    /// no longer maps to `tag` (re-tagged while the advise was under way), when another
    /// PV holds the handle (the gateway gave it to two tags), or when the PV holds another
    /// item already.
    pub fn bind(&mut self, id: PvId, tag: &str, item: ItemHandle) -> Result<(), Unbound> {
        let Some(pv) = self.pvs.get(&id) else {
            return Err(Unbound::Gone);
        };
        if pv.cfg.tag.as_str() != tag {
            return Err(Unbound::Retagged);
        }
        match self.by_item.get(&item.0) {
            Some(&other) if other != id => return Err(Unbound::HeldByAnother),
            _ => {}
        }
        match pv.item {
            Some(held) if held == item => Ok(()),
            Some(_) => Err(Unbound::HoldsAnother),
            None => {
                self.set_item(id, Some(item));
                Ok(())
            }
        }
    }

    /// The session is gone: no PV has an item handle.
    pub fn clear_items(&mut self) {
        self.by_item.clear();
        for pv in self.pvs.values_mut() {
            pv.item = None;
        }
    }

    /// How many PVs have an item handle in the current session.
    pub fn subscribed(&self) -> usize {
        self.by_item.len()
    }

    pub fn len(&self) -> usize {
        self.pvs.len()
    }

    /// How many PVs are INVALID now (see [`MappedPv::is_invalid`]).
    pub fn invalid(&self) -> usize {
        self.pvs.values().filter(|pv| pv.is_invalid()).count()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (PvId, &mut MappedPv)> {
        self.pvs.iter_mut().map(|(id, pv)| (*id, &mut **pv))
    }

    /// Every id, in the order the PVs were added.
    pub fn ids(&self) -> Vec<PvId> {
        let mut ids: Vec<PvId> = self.pvs.keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn pv(config: &Config, name: &str, events: &crate::pva::EventSender) -> MappedPv {
        let cfg = config.pvs.iter().find(|p| p.name.as_str() == name).cloned();
        MappedPv::new(cfg.unwrap(), &config.defaults, events).unwrap()
    }

    #[test]
    fn ids_are_never_reused_and_a_removed_pv_is_not_found() {
        let text = r#"
[gateway]
endpoint = "http://127.0.0.1:1"
[[pv]]
name = "A"
tag = "Tank001.Level"
[[pv]]
name = "B"
tag = "Tank001.Temp"
"#;
        let config = Config::from_str_at(text, std::path::Path::new("registry.toml")).unwrap();
        let (events, _rx) = crate::pva::event_channel();
        let mut reg = Registry::default();
        let a = reg.insert(pv(&config, "A", &events));
        let b = reg.insert(pv(&config, "B", &events));
        assert_eq!(reg.ids(), vec![a, b]);
        reg.set_item(a, Some(ItemHandle(7)));
        assert_eq!(reg.id_of_item(ItemHandle(7)), Some(a));
        assert_eq!(reg.subscribed(), 1);

        let removed = reg.remove(a).unwrap();
        assert_eq!(removed.cfg.name.as_str(), "A");
        assert_eq!(reg.id_of_name("A"), None);
        assert_eq!(reg.id_of_item(ItemHandle(7)), None);
        assert!(reg.get(a).is_none());

        // The same name again is a new id; the old id still finds nothing.
        let again = reg.insert(pv(&config, "A", &events));
        assert_ne!(again, a);
        assert!(again > b);
        assert_eq!(reg.id_of_name("A"), Some(again));
        assert!(reg.get(a).is_none());
        assert_eq!(reg.ids(), vec![b, again]);

        reg.set_item(again, Some(ItemHandle(9)));
        reg.set_item(again, Some(ItemHandle(10)));
        assert_eq!(reg.id_of_item(ItemHandle(9)), None);
        assert_eq!(reg.id_of_item(ItemHandle(10)), Some(again));
        // A re-opened PV keeps its id and name; the old item handle no longer finds it.
        let old = reg.replace(again, pv(&config, "A", &events)).unwrap();
        assert_eq!(old.item, Some(ItemHandle(10)));
        assert_eq!(reg.id_of_item(ItemHandle(10)), None);
        assert_eq!(reg.id_of_name("A"), Some(again));
        assert!(reg.get(again).unwrap().item.is_none());
        // Binding checks the tag the item was advised for.
        reg.clear_items();
        assert_eq!(
            reg.bind(again, "Tank001.Temp", ItemHandle(11)),
            Err(Unbound::Retagged)
        );
        assert_eq!(
            reg.bind(a, "Tank001.Level", ItemHandle(11)),
            Err(Unbound::Gone)
        );
        assert_eq!(reg.bind(again, "Tank001.Level", ItemHandle(11)), Ok(()));
        assert_eq!(reg.bind(again, "Tank001.Level", ItemHandle(11)), Ok(()));
        assert_eq!(
            reg.bind(again, "Tank001.Level", ItemHandle(12)),
            Err(Unbound::HoldsAnother)
        );
        assert_eq!(
            reg.bind(b, "Tank001.Temp", ItemHandle(11)),
            Err(Unbound::HeldByAnother)
        );
        assert_eq!(reg.id_of_item(ItemHandle(11)), Some(again));
        assert_eq!(reg.bind(b, "Tank001.Temp", ItemHandle(12)), Ok(()));
        reg.set_item(again, Some(ItemHandle(10)));
        reg.clear_items();
        assert_eq!(reg.subscribed(), 0);
        assert!(reg.get(again).unwrap().item.is_none());
        assert_eq!(reg.len(), 2);
    }
}
