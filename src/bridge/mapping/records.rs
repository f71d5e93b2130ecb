//! The registry's records by id. Each record holds its own id ([`MappedPv::id`]), so the
//! table holds one pointer a PV: 8 bytes a bucket, where a map from id to record took 16
//! (a 4-byte id beside a pointer is padded to 8; issue 23: memory per PV).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

use super::pv::MappedPv;
use crate::bridge::pv_id::PvId;

#[derive(Default)]
pub(super) struct Records {
    table: HashTable<Box<MappedPv>>,
    hasher: RandomState,
}

impl Records {
    fn hash(&self, id: PvId) -> u64 {
        self.hasher.hash_one(id)
    }

    pub fn contains_key(&self, id: &PvId) -> bool {
        self.get(id).is_some()
    }

    pub fn get(&self, id: &PvId) -> Option<&MappedPv> {
        self.table
            .find(self.hash(*id), |pv| pv.id == *id)
            .map(|pv| &**pv)
    }

    pub fn get_mut(&mut self, id: &PvId) -> Option<&mut MappedPv> {
        let hash = self.hash(*id);
        self.table
            .find_mut(hash, |pv| pv.id == *id)
            .map(|pv| &mut **pv)
    }

    /// Puts `pv` in under `id` (its id from now on), in place of a record of that id.
    pub fn insert(&mut self, id: PvId, mut pv: Box<MappedPv>) {
        pv.id = id;
        let hash = self.hash(id);
        let hasher = &self.hasher;
        match self
            .table
            .entry(hash, |p| p.id == id, |p| hasher.hash_one(p.id))
        {
            Entry::Occupied(mut e) => *e.get_mut() = pv,
            Entry::Vacant(e) => {
                e.insert(pv);
            }
        }
    }

    pub fn remove(&mut self, id: &PvId) -> Option<Box<MappedPv>> {
        let hash = self.hash(*id);
        self.table
            .find_entry(hash, |p| p.id == *id)
            .ok()
            .map(|e| e.remove().0)
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (PvId, &MappedPv)> {
        self.table.iter().map(|pv| (pv.id, &**pv))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (PvId, &mut MappedPv)> {
        self.table.iter_mut().map(|pv| (pv.id, &mut **pv))
    }
}
