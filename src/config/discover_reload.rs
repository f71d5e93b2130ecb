//! Rule-made PVs across a reload (issue 21, defect 4): access decisions use the rules in
//! force, for rule-made PVs too, whether or not the re-discovery a reload starts succeeds.
//!
//! Each rule-made PV records what it was made of ([`Origin`]): the Galaxy's [`Candidate`],
//! the selection of its rule, and which load of the config made it. Under the rules of
//! another load (after a reload) it is made again at once ([`Config::rule_pvs_in_force`]):
//! - when a rule of the same selection (filters, name template, `types`, with `[defaults]
//!   boolean`) is in force, wherever it now stands, the PV is made again from its candidate
//!   with that rule's keys, `[defaults]` and `[users]`, as a discovery of the same Galaxy
//!   would make it: `access_group`, `access_level`, `writable`, `write_mode`, `user`,
//!   `verifier`, `timestamp`, `acknowledge`, `alarm_severity`, `subscribe`, `linger`, `buffered` and the
//!   prefix all follow. One the rules refuse now is not served, as a discovery would refuse it;
//! - when none is (the rule was removed, or its filters, name or types changed), the PV is
//!   not served: which attributes the rule picks now, and as what, only the Galaxy can
//!   say. The re-discovery makes them, and serves them under the new rule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::discover::{Candidate, RulePv, RulePvs};
use super::types::PvType;
use super::{BooleanRepr, Config};

static LOADS: AtomicU64 = AtomicU64::new(1);

/// A new id for a load of the config ([`super::discover::RuleContext::id`]).
pub(super) fn next_load_id() -> u64 {
    LOADS.fetch_add(1, Ordering::Relaxed)
}

/// What decides which attributes a rule picks, and their names and types: two rules of
/// equal selection make the same candidates of one Galaxy.
#[derive(Debug, Clone, PartialEq)]
struct Selection {
    root: Option<String>,
    objects: Option<String>,
    attributes: Vec<String>,
    name: String,
    alarm_bearing_only: bool,
    historized_only: bool,
    types: Vec<(PvType, PvType)>,
    boolean: BooleanRepr,
}

/// A rule as it was when it made PVs.
#[derive(Debug)]
pub(crate) struct RuleOrigin {
    /// `discover[N]` and where it was, for messages.
    key: String,
    location: super::Location,
    selection: Selection,
}

/// What a rule-made PV was made of.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    candidate: Candidate,
    rule: Arc<RuleOrigin>,
    /// [`super::discover::RuleContext::id`] of the config that made it.
    load: u64,
}

impl Origin {
    pub(super) fn new(candidate: &Candidate, rule: &Arc<RuleOrigin>, load: u64) -> Self {
        Origin {
            candidate: candidate.clone(),
            rule: rule.clone(),
            load,
        }
    }
}

impl Config {
    /// Each rule of `self` as the PVs it makes record it, in order.
    pub(super) fn rule_origins(&self) -> Vec<Arc<RuleOrigin>> {
        self.discover
            .iter()
            .map(|r| {
                Arc::new(RuleOrigin {
                    key: r.key.clone(),
                    location: r.location.clone(),
                    selection: Selection {
                        root: r.root.clone(),
                        objects: r.objects.clone(),
                        attributes: r.attributes.clone(),
                        name: r.name.clone(),
                        alarm_bearing_only: r.alarm_bearing_only,
                        historized_only: r.historized_only,
                        types: r.types.clone(),
                        boolean: self.defaults.boolean,
                    },
                })
            })
            .collect()
    }

    /// The rule-made PVs `made` as the rules of `self` make them: unchanged when `self`
    /// made them all, made again from their candidates otherwise (see the module). `refused`
    /// names, per rule, those no longer served until a discovery.
    pub fn rule_pvs_in_force(&self, made: Vec<RulePv>) -> RulePvs {
        let load = self.rule_ctx.id;
        if made.iter().all(|p| p.origin.load == load) {
            return RulePvs {
                pvs: made,
                ..RulePvs::default()
            };
        }
        let now = self.rule_origins();
        let mut candidates = Vec::with_capacity(made.len());
        // Per rule gone: the rule, how many PVs, the first one's name.
        let mut gone: Vec<(Arc<RuleOrigin>, usize, String)> = Vec::new();
        for p in made {
            let Origin {
                mut candidate,
                rule,
                ..
            } = p.origin;
            let same = |r: &Arc<RuleOrigin>| r.selection == rule.selection;
            let index = match now.get(candidate.rule) {
                Some(r) if same(r) => Some(candidate.rule),
                _ => now.iter().position(same),
            };
            match index {
                Some(i) => {
                    candidate.rule = i;
                    candidates.push(candidate);
                }
                None => match gone.iter_mut().find(|g| Arc::ptr_eq(&g.0, &rule)) {
                    Some(g) => g.1 += 1,
                    None => gone.push((rule, 1, p.pv.name.as_str().to_string())),
                },
            }
        }
        let mut out = self.rule_pvs(&candidates);
        for (rule, n, first) in gone {
            out.refused.push(format!(
                "{} at {} (before the reload): {n} PV(s) (first {first}) no longer served: \
                 no rule in force has its filters, name template and types; the next \
                 discovery makes what the rules say",
                rule.key, rule.location
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    //! The config side of defect 4; end to end (a put denied under the reloaded group
    //! while the Galaxy cannot be read): `tests/discover.rs`.

    use std::path::Path;

    use crate::config::{Candidate, Config, GalaxyAccess, PvType, ScalarType};

    fn load(text: &str) -> Config {
        Config::from_str_at(text, Path::new("site.toml")).unwrap()
    }

    fn cand(rule: usize, name: &str, tag: &str) -> Candidate {
        Candidate {
            rule,
            name: name.into(),
            tag: tag.into(),
            pv_type: PvType::Scalar(ScalarType::Float64),
            units: None,
            description: None,
            access: GalaxyAccess::Write,
            alarms: Vec::new(),
            note: String::new(),
        }
    }

    const BEFORE: &str = "[defaults]\naccess_group = \"OPEN\"\n\n\
        [[discover]]\nobjects = \"Pump*\"\naccess_group = \"LOOSE\"\n\n\
        [[discover]]\nobjects = \"Tank*\"\n\n\
        [[discover]]\nobjects = \"Valve*\"\n";

    /// A reload that changes a rule's keys, `[defaults]` and another rule's filters: the
    /// PVs made before follow the rules now in force, before any re-discovery.
    #[test]
    fn rule_made_pvs_follow_the_rules_in_force_after_a_reload() {
        let before = load(BEFORE);
        let made = before.rule_pvs(&[
            cand(0, "Pump001:Speed", "Pump001.Speed"),
            cand(1, "Tank001:Level", "Tank001.Level"),
            cand(2, "Valve001:Pos", "Valve001.Pos"),
        ]);
        assert_eq!(made.pvs.len(), 3, "{:?}", made.refused);
        let group = |m: &crate::config::Merged, n: &str| {
            m.pvs
                .iter()
                .find(|p| p.name.as_str() == n)
                .map(|p| (p.access_group.clone(), p.access_level, p.writable()))
        };
        let m = before.merge_rule_pvs(made.pvs.clone());
        assert_eq!(group(&m, "Pump001:Speed"), Some(("LOOSE".into(), 0, true)));
        assert_eq!(group(&m, "Tank001:Level"), Some(("OPEN".into(), 0, true)));

        // A rule first (the others move down), the Pump rule tighter, the default group
        // tighter, the Valve rule's filter changed.
        let after = load(
            "[defaults]\naccess_group = \"CLOSED\"\n\n\
             [[discover]]\nobjects = \"Fan*\"\n\n\
             [[discover]]\nobjects = \"Pump*\"\naccess_group = \"TIGHT\"\naccess_level = 1\nwritable = false\n\n\
             [[discover]]\nobjects = \"Tank*\"\n\n\
             [[discover]]\nobjects = \"Valve*\"\nattributes = [\"Pos\"]\n",
        );
        let m = after.merge_rule_pvs(made.pvs);
        assert_eq!(
            group(&m, "Pump001:Speed"),
            Some(("TIGHT".into(), 1, false)),
            "the Pump rule's new keys"
        );
        assert_eq!(
            group(&m, "Tank001:Level"),
            Some(("CLOSED".into(), 0, true)),
            "the new [defaults] access_group"
        );
        assert_eq!(
            group(&m, "Valve001:Pos"),
            None,
            "a rule whose filters changed: its PVs wait for the re-discovery"
        );
        assert_eq!(m.refused.len(), 1, "{:?}", m.refused);
        assert!(
            m.refused[0].starts_with(
                "discover[3] at site.toml:11:1 (before the reload): 1 PV(s) (first Valve001:Pos) no longer served"
            ),
            "{:?}",
            m.refused
        );
        // What a discovery makes under the rules in force is taken as it is.
        let fresh = after.rule_pvs(&[cand(1, "Pump001:Speed", "Pump001.Speed")]);
        let again = after.rule_pvs_in_force(fresh.pvs);
        assert!(again.refused.is_empty());
        assert_eq!(&*again.pvs[0].pv.access_group, "TIGHT");
    }
}
