//! The registry of mapped PVs, keyed by a stable [`PvId`].
//!
//! An id is given once and not again before the registry's 32-bit counter comes round
//! (2^32 PVs added; it then skips the ids still in use): a PV removed and a PV added
//! under the same name later are two ids, so a late message about the old one (a write
//! timeout, a settle) finds nothing instead of the new one. Item handles map to ids for
//! the current session only (cleared when the link goes). A handle is bound to a PV by
//! [`Registry::bind`] alone, which checks that the PV still maps the tag the handle was
//! advised for, and is still advised that way (buffered or plain, `buffered`): a re-tag
//! or a switch of `buffered` keeps the id, so a late handle of the old kind must not bind.
//! A writable buffered PV holds two items: its buffered item (its data) and the plain
//! item its puts are written through ([`MappedPv::write_item`]), found by
//! [`Registry::id_of_write_item`].
//!
//! A new id under an old name still continues that name's posted times: the last posted
//! time of a removed PV is kept by name while it is ahead of the bridge's clock (a
//! source clock ahead), and a PV added under the name takes it over (`values/stamp.rs`).
//! Once the bridge's clock has passed it, a PV starting afresh cannot go back from it,
//! and it is dropped; so only names removed within the source clock's lead are kept.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config;
use crate::gateway::ItemHandle;
use crate::pva::{EventSender, PvaError, Server};

use super::pv::MappedPv;
use super::records::Records;
use crate::bridge::values::stamp::Stamps;
use crate::pva::TimeStamp;

/// Why an item handle was not bound to a PV ([`Registry::bind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::bridge) enum Unbound {
    /// The PV was removed meanwhile.
    Gone,
    /// The PV maps another tag now (re-tagged meanwhile): the handle names the old one.
    Retagged { now: String },
    /// Another PV holds the handle already (the gateway gave it to two tags).
    HeldByOther(PvId),
    /// The PV holds another item already (advised twice).
    HoldsOther(ItemHandle),
    /// The PV is advised another way now (`buffered` switched meanwhile, or a write item
    /// for a PV that needs none).
    OtherMode { buffered: bool },
}

impl Unbound {
    /// Whether the handle is to be unsubscribed at the gateway: not when another PV
    /// holds it (that would end the other's subscription).
    pub fn unsubscribe(&self) -> bool {
        !matches!(self, Unbound::HeldByOther(_))
    }
}

impl std::fmt::Display for Unbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unbound::Gone => f.write_str("the PV was removed meanwhile"),
            Unbound::Retagged { now } => write!(f, "the PV maps {now} now"),
            Unbound::HeldByOther(_) => {
                f.write_str("the gateway gave the item handle to another tag too")
            }
            Unbound::HoldsOther(item) => write!(f, "the PV holds item handle {} already", item.0),
            Unbound::OtherMode { buffered: true } => f.write_str("the PV is buffered now"),
            Unbound::OtherMode { buffered: false } => f.write_str("the PV is not buffered now"),
        }
    }
}

/// What [`Registry::bind`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::bridge) enum Bound {
    /// The PV holds the handle now.
    New,
    /// The PV held this very handle already: nothing changed.
    Already,
}

pub(in crate::bridge) use crate::bridge::link::subscriptions::Role;
pub(in crate::bridge) use crate::bridge::pv_id::PvId;

#[derive(Default)]
pub(in crate::bridge) struct Registry {
    /// Boxed: a MappedPv is large, and a table of them moved every PV on each growth.
    pvs: Records,
    /// Ids by their PV's name: hashed by the name, which the PV holds (no key per PV).
    by_name: ByName,
    /// Item handle -> id, for the current session: each PV's data item.
    by_item: HashMap<i32, PvId>,
    /// The plain items writable buffered PVs write through, for the current session.
    by_write_item: HashMap<i32, PvId>,
    /// The next id to give; ids are given in increasing order, so sorting ids gives the
    /// order PVs were added in (the config's order at start; until the counter comes
    /// round, after 2^32 PVs added, and skips the ids still in use).
    next: u32,
    /// Removed PVs' last posted times still ahead of the bridge's clock, by name.
    gone: HashMap<Arc<str>, Stamps>,
    /// `gone` drops the times the clock has passed when it reaches this many.
    gone_sweep_at: usize,
}

/// Ids by their PV's served name ([`crate::pva::SharedPv::name`], which never changes):
/// a table of ids hashed by the name, compared through the PVs map.
#[derive(Default)]
struct ByName {
    table: hashbrown::HashTable<PvId>,
    hasher: std::collections::hash_map::RandomState,
}

impl ByName {
    fn hash(&self, name: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(name)
    }

    /// `id` finds its PV's name from now on (in place of another PV of that name).
    fn insert(&mut self, pvs: &Records, id: PvId) {
        let Some(name) = pvs.get(&id).map(|pv| pv.pv.name()) else {
            return;
        };
        let hash = self.hash(name);
        let hasher = &self.hasher;
        let entry = self.table.entry(
            hash,
            |i| pvs.get(i).is_some_and(|pv| pv.pv.name() == name),
            |i| {
                use std::hash::BuildHasher;
                pvs.get(i).map_or(0, |pv| hasher.hash_one(pv.pv.name()))
            },
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = id,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(id);
            }
        }
    }

    /// `id` (of the PV named `name`) no longer finds its name; another PV's id under the
    /// name stays.
    fn remove(&mut self, name: &str, id: PvId) {
        if let Ok(e) = self.table.find_entry(self.hash(name), |&i| i == id) {
            e.remove();
        }
    }

    fn get(&self, pvs: &Records, name: &str) -> Option<PvId> {
        self.table
            .find(self.hash(name), |i| {
                pvs.get(i).is_some_and(|pv| pv.pv.name() == name)
            })
            .copied()
    }
}

/// `gone` is swept of times the clock has passed at this size at least.
const GONE_SWEEP_MIN: usize = 64;

impl Registry {
    /// Adds a PV under a new id. A PV of the same name must have been removed first; if
    /// one is still there, the name then finds the new one.
    pub fn insert(&mut self, pv: MappedPv) -> PvId {
        let mut id = PvId::numbered(self.next);
        self.next = self.next.wrapping_add(1);
        while self.pvs.contains_key(&id) {
            id = PvId::numbered(self.next);
            self.next = self.next.wrapping_add(1);
        }
        if let Some(item) = pv.item {
            self.by_item.insert(item.0, id);
        }
        self.pvs.insert(id, Box::new(pv));
        self.by_name.insert(&self.pvs, id);
        id
    }

    /// Makes the PV of `cfg` and serves it on `server` under a new id.
    pub fn add(
        &mut self,
        cfg: Arc<config::Pv>,
        defaults: &config::Defaults,
        server: &Server,
        events: &EventSender,
    ) -> Result<PvId, PvaError> {
        let stamps = self.gone.remove(cfg.name.as_str()).unwrap_or_default();
        let mapped = MappedPv::continuing(cfg, defaults, events, stamps)?;
        server.add_pv(&mapped.pv)?;
        Ok(self.insert(mapped))
    }

    /// Puts `pv` in place of the PV of `id` (same id, same name), handing back the old
    /// one; its item handle no longer finds either.
    pub fn replace(&mut self, id: PvId, pv: MappedPv) -> Option<MappedPv> {
        let old = self.take(id)?;
        if let Some(item) = pv.item {
            self.by_item.insert(item.0, id);
        }
        self.pvs.insert(id, Box::new(pv));
        self.by_name.insert(&self.pvs, id);
        Some(old)
    }

    /// Each PV's id and config.
    pub fn configs(&self) -> impl Iterator<Item = (PvId, &config::Pv)> {
        self.pvs.iter().map(|(id, pv)| (id, &*pv.cfg))
    }

    /// Takes a PV out (its name and item handle no longer find it). Its last posted time
    /// is kept for a PV added under its name later, while ahead of the bridge's clock.
    pub fn remove(&mut self, id: PvId) -> Option<MappedPv> {
        let pv = self.take(id)?;
        let now = TimeStamp::now();
        if pv.stamps().ahead_of(&now) {
            if self.gone.len() >= self.gone_sweep_at.max(GONE_SWEEP_MIN) {
                self.gone.retain(|_, s| s.ahead_of(&now));
                self.gone_sweep_at = self.gone.len().saturating_mul(2);
            }
            let name = Arc::from(pv.cfg.name.as_str());
            self.gone.insert(name, pv.stamps().clone());
        }
        Some(pv)
    }

    /// [`Registry::remove`] without keeping its last posted time.
    fn take(&mut self, id: PvId) -> Option<MappedPv> {
        let pv = *self.pvs.remove(&id)?;
        self.by_name.remove(pv.pv.name(), id);
        if let Some(item) = pv.item {
            if self.by_item.get(&item.0) == Some(&id) {
                self.by_item.remove(&item.0);
            }
        }
        if let Some(item) = pv.write_item() {
            if self.by_write_item.get(&item.0) == Some(&id) {
                self.by_write_item.remove(&item.0);
            }
        }
        Some(pv)
    }

    pub fn get(&self, id: PvId) -> Option<&MappedPv> {
        self.pvs.get(&id)
    }

    pub fn get_mut(&mut self, id: PvId) -> Option<&mut MappedPv> {
        self.pvs.get_mut(&id)
    }

    pub fn id_of_name(&self, name: &str) -> Option<PvId> {
        self.by_name.get(&self.pvs, name)
    }

    /// The PV of an item handle of the current session (its data item).
    pub fn id_of_item(&self, item: ItemHandle) -> Option<PvId> {
        self.by_item.get(&item.0).copied()
    }

    /// The buffered PV whose puts are written through the plain item `item`.
    pub fn id_of_write_item(&self, item: ItemHandle) -> Option<PvId> {
        self.by_write_item.get(&item.0).copied()
    }

    /// Binds `item`, advised for `tag` as `role`, to the PV of `id`: the one way a PV
    /// gets an item handle. Refused when another PV (or another role of this one) holds
    /// the handle, when the PV is gone, when it maps another tag now (re-tagged while the
    /// advise was under way: a write would reach the old attribute), when it is advised
    /// another way now (`buffered` switched: its data would come as the other kind), or
    /// when it holds another item in that role.
    pub fn bind(
        &mut self,
        id: PvId,
        tag: &str,
        role: Role,
        item: ItemHandle,
    ) -> Result<Bound, Unbound> {
        // First: a handle another PV holds is never to be unsubscribed for this one.
        let (mine, other_map) = match role {
            Role::Write => (&self.by_write_item, &self.by_item),
            _ => (&self.by_item, &self.by_write_item),
        };
        match mine.get(&item.0) {
            Some(&other) if other != id => return Err(Unbound::HeldByOther(other)),
            _ => {}
        }
        if let Some(&other) = other_map.get(&item.0) {
            return Err(Unbound::HeldByOther(other));
        }
        let Some(pv) = self.pvs.get(&id) else {
            return Err(Unbound::Gone);
        };
        if pv.cfg.tag.as_str() != tag {
            return Err(Unbound::Retagged {
                now: pv.cfg.tag.as_str().to_string(),
            });
        }
        let mode_ok = match role {
            Role::Plain => !pv.cfg.buffered,
            Role::Buffered => pv.cfg.buffered,
            Role::Write => pv.cfg.buffered && pv.cfg.writable(),
        };
        if !mode_ok {
            return Err(Unbound::OtherMode {
                buffered: pv.cfg.buffered,
            });
        }
        let held = match role {
            Role::Write => pv.write_item(),
            _ => pv.item,
        };
        match held {
            Some(held) if held == item => Ok(Bound::Already),
            Some(held) => Err(Unbound::HoldsOther(held)),
            None if role == Role::Write => {
                if let Some(pv) = self.pvs.get_mut(&id) {
                    pv.set_write_item(Some(item));
                    self.by_write_item.insert(item.0, id);
                }
                Ok(Bound::New)
            }
            None => {
                self.set_item(id, Some(item));
                Ok(Bound::New)
            }
        }
    }

    /// The PV's items are gone (unsubscribed): it holds none.
    pub fn unbind(&mut self, id: PvId) {
        self.set_item(id, None);
        if let Some(pv) = self.pvs.get_mut(&id) {
            if let Some(old) = pv.set_write_item(None) {
                if self.by_write_item.get(&old.0) == Some(&id) {
                    self.by_write_item.remove(&old.0);
                }
            }
        }
    }

    /// Records (or clears, with `None`) the PV's item handle in the current session;
    /// [`Registry::bind`] is the checked way to give one, [`Registry::unbind`] to clear.
    fn set_item(&mut self, id: PvId, item: Option<ItemHandle>) {
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

    /// The session is gone: no PV has an item handle.
    pub fn clear_items(&mut self) {
        self.by_item.clear();
        self.by_write_item.clear();
        for (_, pv) in self.pvs.iter_mut() {
            pv.item = None;
            pv.set_write_item(None);
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
        self.pvs.iter().filter(|(_, pv)| pv.is_invalid()).count()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (PvId, &mut MappedPv)> {
        self.pvs.iter_mut()
    }

    /// Every id, in the order the PVs were added.
    pub fn ids(&self) -> Vec<PvId> {
        let mut ids: Vec<PvId> = self.pvs.iter().map(|(id, _)| id).collect();
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
    fn ids_come_round_after_the_counters_end_and_skip_those_in_use() {
        let mut text = String::from("[gateway]\nendpoint = \"http://127.0.0.1:1\"\n");
        for n in ["A", "B", "C", "D"] {
            text.push_str(&format!("[[pv]]\nname = \"{n}\"\ntag = \"Tank001.{n}\"\n"));
        }
        let config = Config::from_str_at(&text, std::path::Path::new("registry.toml")).unwrap();
        let (events, _rx) = crate::pva::event_channel();
        let mut reg = Registry::default();
        let a = reg.insert(pv(&config, "A", &events));
        let b = reg.insert(pv(&config, "B", &events));
        reg.next = u32::MAX;
        let c = reg.insert(pv(&config, "C", &events));
        let d = reg.insert(pv(&config, "D", &events));
        assert_eq!(
            [a, b, c, d],
            [0, 1, u32::MAX, 2].map(PvId::numbered),
            "0 and 1 are in use"
        );
        assert_eq!(reg.id_of_name("A"), Some(a));
        assert_eq!(reg.id_of_name("D"), Some(d));
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
        reg.set_item(again, Some(ItemHandle(10)));
        reg.clear_items();
        assert_eq!(reg.subscribed(), 0);
        assert!(reg.get(again).unwrap().item.is_none());
        assert_eq!(reg.len(), 2);
    }

    #[test]
    fn bind_refuses_a_gone_pv_an_old_tag_a_shared_handle_and_a_second_item() {
        let text = r#"
[gateway]
endpoint = "http://127.0.0.1:1"
[[pv]]
name = "X"
tag = "Pump001.MaxSpeed"
writable = true
[[pv]]
name = "X2"
tag = "Pump001.SpeedSP"
writable = true
[[pv]]
name = "Y"
tag = "Pump001.Speed"
"#;
        let config = Config::from_str_at(text, std::path::Path::new("bind.toml")).unwrap();
        let (events, _rx) = crate::pva::event_channel();
        let mut reg = Registry::default();
        let x = reg.insert(pv(&config, "X", &events));
        let y = reg.insert(pv(&config, "Y", &events));

        // Bound: the PV maps the tag advised, holds no item, nobody else holds it.
        assert_eq!(
            reg.bind(y, "Pump001.Speed", Role::Plain, ItemHandle(1)),
            Ok(Bound::New)
        );
        assert_eq!(reg.id_of_item(ItemHandle(1)), Some(y));
        // The same handle again: nothing changes.
        assert_eq!(
            reg.bind(y, "Pump001.Speed", Role::Plain, ItemHandle(1)),
            Ok(Bound::Already)
        );
        // A second item for a PV that holds one.
        let second = reg.bind(y, "Pump001.Speed", Role::Plain, ItemHandle(2));
        assert_eq!(second, Err(Unbound::HoldsOther(ItemHandle(1))));
        assert!(second.unwrap_err().unsubscribe());
        assert_eq!(reg.get(y).unwrap().item, Some(ItemHandle(1)));
        assert_eq!(reg.id_of_item(ItemHandle(2)), None);

        // Another PV's handle: refused, and never to be unsubscribed for this one.
        let shared = reg.bind(x, "Pump001.MaxSpeed", Role::Plain, ItemHandle(1));
        assert_eq!(shared, Err(Unbound::HeldByOther(y)));
        assert!(!shared.unwrap_err().unsubscribe());
        assert_eq!(reg.id_of_item(ItemHandle(1)), Some(y));
        assert!(reg.get(x).unwrap().item.is_none());

        // Re-tagged while its advise was under way (a re-open under the same id): the
        // handle of the old tag is refused; one of the new tag binds.
        reg.replace(x, pv(&config, "X2", &events)).unwrap();
        let old = reg.bind(x, "Pump001.MaxSpeed", Role::Plain, ItemHandle(3));
        assert_eq!(
            old,
            Err(Unbound::Retagged {
                now: "Pump001.SpeedSP".to_string()
            })
        );
        assert!(old.as_ref().unwrap_err().unsubscribe());
        assert!(old.unwrap_err().to_string().contains("Pump001.SpeedSP"));
        assert!(reg.get(x).unwrap().item.is_none());
        assert_eq!(reg.id_of_item(ItemHandle(3)), None);
        assert_eq!(
            reg.bind(x, "Pump001.SpeedSP", Role::Plain, ItemHandle(4)),
            Ok(Bound::New)
        );
        assert_eq!(reg.id_of_item(ItemHandle(4)), Some(x));

        // Removed meanwhile.
        reg.remove(x).unwrap();
        let gone = reg.bind(x, "Pump001.SpeedSP", Role::Plain, ItemHandle(5));
        assert_eq!(gone, Err(Unbound::Gone));
        assert!(gone.unwrap_err().unsubscribe());
        assert_eq!(reg.id_of_item(ItemHandle(5)), None);

        // Unbound: the PV holds no item, and may be bound again.
        reg.unbind(y);
        assert_eq!(reg.id_of_item(ItemHandle(1)), None);
        assert_eq!(
            reg.bind(y, "Pump001.Speed", Role::Plain, ItemHandle(6)),
            Ok(Bound::New)
        );
        assert_eq!(reg.subscribed(), 1);
    }

    #[test]
    fn bind_checks_the_advise_mode_and_a_buffered_pv_holds_a_write_item() {
        let text = r#"
[gateway]
endpoint = "http://127.0.0.1:1"
[[pv]]
name = "B"
tag = "Tank001.Level"
buffered = true
writable = true
[[pv]]
name = "P"
tag = "Tank001.Level"
writable = true
[[pv]]
name = "R"
tag = "Tank001.Temp"
buffered = true
"#;
        let config = Config::from_str_at(text, std::path::Path::new("mode.toml")).unwrap();
        let (events, _rx) = crate::pva::event_channel();
        let mut reg = Registry::default();
        let b = reg.insert(pv(&config, "B", &events));
        let r = reg.insert(pv(&config, "R", &events));
        // A plain item for a buffered PV (advised before a switch) is refused...
        let plain = reg.bind(b, "Tank001.Level", Role::Plain, ItemHandle(1));
        assert_eq!(plain, Err(Unbound::OtherMode { buffered: true }));
        assert!(plain.as_ref().unwrap_err().unsubscribe());
        assert!(plain.unwrap_err().to_string().contains("buffered now"));
        assert_eq!(reg.id_of_item(ItemHandle(1)), None);
        // ... a buffered one binds, and so does its write item.
        assert_eq!(
            reg.bind(b, "Tank001.Level", Role::Buffered, ItemHandle(2)),
            Ok(Bound::New)
        );
        assert_eq!(
            reg.bind(b, "Tank001.Level", Role::Write, ItemHandle(3)),
            Ok(Bound::New)
        );
        assert_eq!(reg.id_of_item(ItemHandle(2)), Some(b));
        assert_eq!(reg.id_of_item(ItemHandle(3)), None);
        assert_eq!(reg.id_of_write_item(ItemHandle(3)), Some(b));
        assert_eq!(reg.get(b).unwrap().write_item(), Some(ItemHandle(3)));
        // The data item is not a write item, nor the other way round.
        assert_eq!(
            reg.bind(b, "Tank001.Level", Role::Write, ItemHandle(2)),
            Err(Unbound::HeldByOther(b))
        );
        // A read-only buffered PV takes no write item.
        assert_eq!(
            reg.bind(r, "Tank001.Temp", Role::Write, ItemHandle(4)),
            Err(Unbound::OtherMode { buffered: true })
        );
        // Switched to plain (a reload, in place): a late buffered item is refused.
        let p = reg.get(b).unwrap().cfg.clone();
        let mut plain_cfg = config
            .pvs
            .iter()
            .find(|x| x.name.as_str() == "P")
            .unwrap()
            .clone();
        Arc::make_mut(&mut plain_cfg).name = p.name.clone();
        reg.unbind(b);
        assert_eq!(reg.id_of_write_item(ItemHandle(3)), None);
        assert_eq!(reg.id_of_item(ItemHandle(2)), None);
        reg.get_mut(b).unwrap().reconfigure(plain_cfg, false);
        assert_eq!(
            reg.bind(b, "Tank001.Level", Role::Buffered, ItemHandle(5)),
            Err(Unbound::OtherMode { buffered: false })
        );
        assert_eq!(
            reg.bind(b, "Tank001.Level", Role::Write, ItemHandle(6)),
            Err(Unbound::OtherMode { buffered: false })
        );
        assert_eq!(
            reg.bind(b, "Tank001.Level", Role::Plain, ItemHandle(7)),
            Ok(Bound::New)
        );
        // Removing a PV forgets its write item too.
        reg.bind(r, "Tank001.Temp", Role::Buffered, ItemHandle(8))
            .unwrap();
        reg.clear_items();
        assert_eq!(reg.subscribed(), 0);
        assert!(reg.get(b).unwrap().write_item().is_none());
    }
}
