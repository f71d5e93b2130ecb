//! The mapped PVs by their tag's `Object.Attr`, compared without case: which PV an
//! alarm named after an attribute belongs to.
//!
//! Each entry holds the PV's config (an `Arc` the registry holds too) and its id, and is
//! hashed and compared by the config's tag, so the table keeps no string per PV (it held a
//! lower-case copy of each tag: a malloc chunk per PV, issue 23).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use hashbrown::HashTable;

use crate::bridge::pv_id::PvId;
use crate::config;

#[derive(Default)]
pub(super) struct ByTag {
    table: HashTable<(Arc<config::Pv>, PvId)>,
    hasher: RandomState,
}

/// Hashes `s` as its ASCII lower case.
fn hash_nocase(hasher: &RandomState, s: &str) -> u64 {
    let mut h = hasher.build_hasher();
    for b in s.bytes() {
        h.write_u8(b.to_ascii_lowercase());
    }
    h.write_usize(s.len());
    h.finish()
}

impl ByTag {
    fn hash(&self, s: &str) -> u64 {
        hash_nocase(&self.hasher, s)
    }

    /// The entry whose tag's base is `base` (any case); `hash` is `base`'s.
    fn find(&self, hash: u64, base: &str) -> Option<&(Arc<config::Pv>, PvId)> {
        self.table
            .find(hash, |(c, _)| c.tag.base().eq_ignore_ascii_case(base))
    }

    /// Adds the PV of `cfg` under its tag's base, unless a PV holds that base already
    /// (the first PV added wins).
    pub fn insert_first(&mut self, cfg: Arc<config::Pv>, id: PvId) {
        let hash = self.hash(cfg.tag.base());
        if self.find(hash, cfg.tag.base()).is_some() {
            return;
        }
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, (cfg, id), |(c, _)| hash_nocase(hasher, c.tag.base()));
    }

    /// The PV whose tag's base is `attr` (any case).
    pub fn get(&self, attr: &str) -> Option<PvId> {
        self.find(self.hash(attr), attr).map(|(_, id)| *id)
    }

    /// The PV of the longest tag base that `name` starts with and is longer than (any
    /// case): `tank001.pvhialarm` -> the PV of `Tank001.PV`.
    pub fn longest_prefix_of(&self, name: &str) -> Option<PvId> {
        (1..name.len())
            .rev()
            .filter(|&i| name.is_char_boundary(i))
            .find_map(|i| name.get(..i).and_then(|p| self.get(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of PVs `P0`, `P1`, ... of `tags`, added in that order; PV `Pi` has id `i`.
    fn by_tag(tags: &[&str]) -> ByTag {
        let mut text = String::from("[gateway]\nendpoint = \"http://127.0.0.1:1\"\n");
        for (i, t) in tags.iter().enumerate() {
            text.push_str(&format!("\n[[pv]]\nname = \"P{i}\"\ntag = \"{t}\"\n"));
        }
        let pvs = config::Config::from_str_at(&text, std::path::Path::new("t.toml"))
            .unwrap()
            .pvs;
        let mut t = ByTag::default();
        for (i, p) in pvs.into_iter().enumerate() {
            t.insert_first(p, PvId::for_test(i as u64));
        }
        t
    }

    #[test]
    fn finds_a_tag_in_any_case_and_the_first_pv_wins() {
        let t = by_tag(&["Tank001.Level", "TANK001.level", "Tank002.PV"]);
        assert_eq!(t.get("tank001.level"), Some(PvId::for_test(0)));
        assert_eq!(t.get("Tank001.LEVEL"), Some(PvId::for_test(0)));
        assert_eq!(t.get("tank002.pv"), Some(PvId::for_test(2)));
        assert_eq!(t.get("tank002.p"), None);
        assert_eq!(t.get("tank003.pv"), None);
    }

    #[test]
    fn the_longest_shorter_tag_a_name_starts_with() {
        let t = by_tag(&["Tank001.PV", "Tank001.PVHi", "Tank001.PVHiAlarm"]);
        assert_eq!(
            t.longest_prefix_of("tank001.pvhialarm"),
            Some(PvId::for_test(1)),
            "the name itself is not its own prefix"
        );
        assert_eq!(
            t.longest_prefix_of("tank001.pvloalarm"),
            Some(PvId::for_test(0))
        );
        assert_eq!(t.longest_prefix_of("tank002.pvhialarm"), None);
        assert_eq!(t.longest_prefix_of("tänk001.pvhialarm"), None);
    }
}
