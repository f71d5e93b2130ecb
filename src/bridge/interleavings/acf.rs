//! Access security in generated histories: the few ACFs a history's `[access] file` is
//! written with, the identities its puts carry, and a model of what each file grants,
//! written here without asLib (the bridge asks asLib; the histories check it against
//! this model, invariant 5).

use super::gen::{Mapping, GROUPS};
use super::who::Who;
use crate::config::DEFAULT_ACCESS_GROUP;

/// Whom a rule is for: its UAG.
#[derive(Debug, Clone, Copy)]
enum Users {
    Anyone,
    /// `UAG(ALICE) {alice}`
    Alice,
    /// `UAG(OPERATORS) {"role/operators"}`
    Operators,
}

/// Where from: its HAG.
#[derive(Debug, Clone, Copy)]
enum Hosts {
    Anywhere,
    /// `HAG(LOCAL) {127.0.0.1}`
    Local,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    level: u8,
    write: bool,
    users: Users,
    hosts: Hosts,
}

const fn write(level: u8, users: Users, hosts: Hosts) -> Rule {
    Rule {
        level,
        write: true,
        users,
        hosts,
    }
}

const READ: Rule = Rule {
    level: 1,
    write: false,
    users: Users::Anyone,
    hosts: Hosts::Anywhere,
};

use Hosts::{Anywhere, Local};
use Users::{Alice, Anyone, Operators};

/// One ACF: its groups and their rules.
pub struct RuleSet {
    pub name: &'static str,
    groups: &'static [(&'static str, &'static [Rule])],
}

/// What a history's file is written with. Every file but `partial` has every group a
/// mapping may name; `partial` has no `ENG`, so a config naming it is refused with it.
pub const SETS: [RuleSet; 5] = [
    RuleSet {
        name: "open",
        groups: &[
            ("DEFAULT", &[write(1, Anyone, Anywhere)]),
            ("OPS", &[write(1, Anyone, Anywhere)]),
            ("ENG", &[write(1, Anyone, Anywhere)]),
        ],
    },
    RuleSet {
        name: "closed",
        groups: &[("DEFAULT", &[READ]), ("OPS", &[READ]), ("ENG", &[READ])],
    },
    RuleSet {
        name: "people",
        groups: &[
            ("DEFAULT", &[write(1, Alice, Anywhere)]),
            ("OPS", &[READ, write(1, Operators, Anywhere)]),
            ("ENG", &[write(0, Alice, Local), READ]),
        ],
    },
    RuleSet {
        name: "places",
        groups: &[
            ("DEFAULT", &[write(1, Anyone, Local)]),
            ("OPS", &[write(0, Anyone, Anywhere), READ]),
            (
                "ENG",
                &[write(1, Operators, Local), write(0, Alice, Anywhere)],
            ),
        ],
    },
    RuleSet {
        name: "partial",
        groups: &[
            ("DEFAULT", &[write(1, Operators, Anywhere)]),
            ("OPS", &[write(1, Anyone, Local)]),
        ],
    },
];

impl RuleSet {
    /// The file's text.
    pub fn text(&self) -> String {
        let mut t = String::from(
            "UAG(ALICE) {alice}\nUAG(OPERATORS) {\"role/operators\"}\nHAG(LOCAL) {127.0.0.1}\n",
        );
        for (group, rules) in self.groups {
            t.push_str(&format!("ASG({group}) {{\n"));
            for r in *rules {
                let access = if r.write { "WRITE" } else { "READ" };
                let users = match r.users {
                    Anyone => "",
                    Alice => " UAG(ALICE)",
                    Operators => " UAG(OPERATORS)",
                };
                let hosts = match r.hosts {
                    Anywhere => "",
                    Local => " HAG(LOCAL)",
                };
                if users.is_empty() && hosts.is_empty() {
                    t.push_str(&format!("  RULE({}, {access})\n", r.level));
                } else {
                    t.push_str(&format!(
                        "  RULE({}, {access}) {{{users}{hosts} }}\n",
                        r.level
                    ));
                }
            }
            t.push_str("}\n");
        }
        t
    }

    fn has(&self, group: &str) -> bool {
        self.groups.iter().any(|(g, _)| *g == group)
    }

    /// Whether `who` may write a PV of `group` at `level`: some WRITE rule of the group
    /// covers the level (a rule of level n covers PVs of level n and below) and both its
    /// UAG (the account, or `role/<group>` of one of its roles) and its HAG match.
    fn grants_write(&self, group: &str, level: u8, who: &Who) -> bool {
        let Some((_, rules)) = self.groups.iter().find(|(g, _)| *g == group) else {
            return false;
        };
        rules.iter().any(|r| {
            let users = match r.users {
                Anyone => true,
                Alice => who.ca && who.account() == "alice",
                Operators => who.ca && who.operator,
            };
            let hosts = match r.hosts {
                Anywhere => true,
                Local => who.host() == "127.0.0.1",
            };
            r.write && level <= r.level && users && hosts
        })
    }

    /// Whether a config of `mapping` is taken with this file: every group it names is
    /// one of the file's (`crate::access::check_groups`, modelled).
    fn accepts(&self, mapping: &Mapping) -> bool {
        let pvs = mapping
            .pvs
            .iter()
            .flatten()
            .map(|p| p.group.and_then(|g| GROUPS.get(g).copied()));
        let rule = mapping.rule.iter().map(|r| GROUPS.get(r.group).copied());
        pvs.chain(rule)
            .map(|g| g.unwrap_or(DEFAULT_ACCESS_GROUP))
            .chain([DEFAULT_ACCESS_GROUP])
            .all(|g| self.has(g))
    }
}

fn set(i: usize) -> &'static RuleSet {
    SETS.get(i).unwrap_or(&SETS[0])
}

/// The name of the ACF `acf` (of [`SETS`]), if any.
pub fn name(acf: Option<usize>) -> &'static str {
    acf.map_or("none", |i| set(i).name)
}

/// The text of ACF `i` of [`SETS`].
pub fn text(i: usize) -> String {
    set(i).text()
}

/// Whether `who` may write a PV of `group` at `level` under ACF `acf` (every put is
/// allowed without one).
pub fn grants_write(acf: Option<usize>, group: &str, level: u8, who: &Who) -> bool {
    acf.is_none_or(|i| set(i).grants_write(group, level, who))
}

/// Whether a config of `mapping` is taken with ACF `acf` (any is without one).
pub fn accepts(acf: Option<usize>, mapping: &Mapping) -> bool {
    acf.is_none_or(|i| set(i).accepts(mapping))
}
