//! `[[discover]]` rules: PVs made from the Galaxy Repository's hierarchy.
//!
//! A rule holds the filters (`root`, `objects`, `attributes`, `alarm_bearing_only`,
//! `historized_only`), the PV-name template (`name`, default `{object}:{attribute}`, also
//! `{area}`; the `[defaults] prefix` goes in front) and per-rule defaults for the PVs it
//! makes: `types` (served type overrides such as `{ int64 = "float64" }`) and the per-PV
//! keys listed in `rule_pv_keys!` in `raw.rs` (`writable`, `write_mode`, `user`, `verifier`,
//! `timestamp`, `acknowledge`, `alarm_severity`, `subscribe`, `linger`, `access_group`,
//! `access_level`, `buffered`).
//!
//! The Galaxy is read by `crate::discover`; it hands each attribute a rule picked to
//! [`Config::rule_pvs`] as a [`Candidate`] (name, tag, type, units, description, what
//! its security classification allows, alarms). Each candidate goes through the same
//! validation as a `[[pv]]` table, with the rule's defaults on top of what the Galaxy
//! says, so a rule-made PV means exactly what the `[[pv]]` table `mxpva discover` prints
//! for it means.

use super::raw::RulePvKeys;
use super::types::{PvName, PvType};
use std::sync::Arc;

use super::{Config, Pv};

/// The name template when a rule has none.
pub const DEFAULT_NAME_TEMPLATE: &str = "{object}:{attribute}";
/// The placeholders a name template may use.
pub const TEMPLATE_FIELDS: [&str; 3] = ["object", "attribute", "area"];

/// One validated `[[discover]]` rule.
#[derive(Debug, Clone)]
pub struct DiscoverRule {
    /// `discover[N]`, counting from 1.
    pub key: String,
    /// Where the table is: `file:line:column`.
    pub location: super::Location,
    /// An area or object (tag name): only it and what it contains. `None`: everything.
    pub root: Option<String>,
    /// Tag-name glob (anchored, case-insensitive, `*` and `?`). `None`: every object.
    pub objects: Option<String>,
    /// Attribute-name globs; empty: every attribute.
    pub attributes: Vec<String>,
    /// The PV-name template (before the prefix).
    pub name: String,
    pub alarm_bearing_only: bool,
    pub historized_only: bool,
    /// Served-type overrides: the type an attribute is served as by default -> the type
    /// to serve instead. A scalar key also converts arrays of it.
    pub types: Vec<(PvType, PvType)>,
    pub(crate) keys: RulePvKeys,
}

impl DiscoverRule {
    /// The ACF group the rule puts on its PVs, when it names one.
    pub fn access_group(&self) -> Option<&str> {
        self.keys
            .access_group
            .as_ref()
            .map(|g| g.get_ref().as_str())
    }
}

/// What an attribute's security classification lets a client do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GalaxyAccess {
    /// ViewOnly, Configure (needs the object off scan), Undefined.
    ReadOnly,
    /// FreeAccess, Operate, Tune.
    Write,
    /// SecuredWrite: WriteSecured with a user.
    Secured,
    /// VerifiedWrite: WriteSecured with a user and a different verifier.
    Verified,
}

/// One attribute a rule picked, as the Galaxy describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Index of the rule in [`Config::discover`].
    pub rule: usize,
    /// The PV name from the template, without the prefix.
    pub name: String,
    /// `Object.Attribute`, with `[]` for an array.
    pub tag: String,
    pub pv_type: PvType,
    pub units: Option<String>,
    pub description: Option<String>,
    pub access: GalaxyAccess,
    /// Alarm references (`Object.Alarm`) the PV carries.
    pub alarms: Vec<String>,
    /// What the Galaxy says of it, for people (`Double[8], Operate, historized`).
    pub note: String,
}

/// A PV a rule made.
#[derive(Debug, Clone)]
pub struct RulePv {
    pub pv: Arc<Pv>,
    /// Index of its rule in [`Config::discover`].
    pub rule: usize,
    /// [`Candidate::note`].
    pub note: String,
    /// What it was made of and under which rules: after a reload, it is made again under
    /// the rules in force ([`Config::rule_pvs_in_force`]).
    pub(crate) origin: super::discover_reload::Origin,
}

/// The desired mapping: explicit and rule-made PVs.
#[derive(Debug, Default)]
pub struct Merged {
    /// The `[[pv]]` tables first (`explicit` of them), then the rule-made PVs.
    pub pvs: Vec<Arc<Pv>>,
    pub explicit: usize,
    /// The notes of the rule-made PVs, in their order.
    pub notes: Vec<String>,
    /// Duplicate names, each naming both sources.
    pub errors: Vec<String>,
    /// Rule-made PVs made under other rules (before a reload) that the rules in force do
    /// not make again without a discovery ([`Config::rule_pvs_in_force`]).
    pub refused: Vec<String>,
}

/// PVs made by rules, and why some candidates made none.
#[derive(Debug, Default)]
pub struct RulePvs {
    pub pvs: Vec<RulePv>,
    /// One line per candidate refused (name, tag or key problems).
    pub refused: Vec<String>,
    /// Writable attributes served read-only because no user is configured for their
    /// security classification (SecuredWrite or VerifiedWrite).
    pub read_only_no_user: Vec<String>,
}

/// A glob for objects or attributes: `*` and `?` only, as the gateway's `tag_name_glob`.
pub fn check_glob(g: &str) -> Result<(), String> {
    if g.is_empty() {
        return Err("the glob is empty: use `*` for everything".into());
    }
    if let Some(c) = g.chars().find(|c| "[]{}\\".contains(*c) || c.is_control()) {
        return Err(format!(
            "glob `{g}` contains `{c}`: only `*` (any text) and `?` (one character) are special"
        ));
    }
    Ok(())
}

/// A name template: text and `{object}`, `{attribute}`, `{area}`.
pub fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    let mut fields = 0;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open + 1..).unwrap_or_default();
        let Some(close) = after.find('}') else {
            return Err(format!("name template `{t}` has a `{{` without `}}`"));
        };
        let field = after.get(..close).unwrap_or_default();
        if !TEMPLATE_FIELDS.contains(&field) {
            return Err(format!(
                "name template `{t}` uses `{{{field}}}`: the fields are {{object}}, {{attribute}} and {{area}}"
            ));
        }
        fields += 1;
        rest = after.get(close + 1..).unwrap_or_default();
    }
    if rest.contains('}') {
        return Err(format!("name template `{t}` has a `}}` without `{{`"));
    }
    if !t.contains("{attribute}") {
        return Err(format!(
            "name template `{t}` lacks {{attribute}}: every attribute of an object would get one name"
        ));
    }
    let literal = t
        .replace("{object}", "O")
        .replace("{attribute}", "A")
        .replace("{area}", "R");
    if fields > 0 && !PvName::is_valid(&literal) {
        return Err(format!(
            "name template `{t}` holds characters a PV name may not: use ASCII letters, digits and `{}`",
            PvName::EXTRA_CHARS
        ));
    }
    Ok(())
}

/// Expands a template checked by [`check_template`].
pub fn expand_template(t: &str, object: &str, attribute: &str, area: &str) -> String {
    t.replace("{object}", object)
        .replace("{attribute}", attribute)
        .replace("{area}", area)
}

impl Config {
    /// The desired mapping: the `[[pv]]` tables and the PVs `rule_made` (from
    /// [`Config::rule_pvs`]). An explicit `[[pv]]` of the same tag wins over a rule-made
    /// PV, and an alarm an explicit `[[pv]]` or `[[alarm_pv]]` names stays theirs; two PVs
    /// of one name are an error naming both sources (the first stays).
    pub fn merge_rule_pvs(&self, rule_made: Vec<RulePv>) -> Merged {
        let in_force = self.rule_pvs_in_force(rule_made);
        use std::collections::HashMap;
        let mut out = self.pvs.clone();
        let tags: std::collections::HashSet<String> = self
            .pvs
            .iter()
            .map(|p| p.tag.as_str().to_ascii_lowercase())
            .collect();
        let mut names: HashMap<String, String> = self
            .pvs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    p.name.as_str().to_string(),
                    format!("pv[{}] at {} ({})", i + 1, p.location, p.tag),
                )
            })
            .collect();
        // Full and short references name one alarm: compared by `Object.Alarm`.
        let short = |r: &str| {
            let s = match r.split_once('!') {
                Some((_, rest)) => rest.split_once('.').map_or(rest, |(_, s)| s),
                None => r,
            };
            s.to_ascii_lowercase()
        };
        let claimed: std::collections::HashSet<String> = self
            .pvs
            .iter()
            .flat_map(|p| &p.meta.alarms)
            .chain(self.alarm_pvs.iter().flat_map(|p| &p.alarms))
            .map(|r| short(r))
            .collect();
        let mut errors = Vec::new();
        let mut notes = Vec::new();
        for RulePv {
            mut pv, rule, note, ..
        } in in_force.pvs
        {
            if pv.meta.alarms.iter().any(|r| claimed.contains(&short(r))) {
                let kept = pv
                    .meta
                    .alarms
                    .iter()
                    .filter(|r| !claimed.contains(&short(r)));
                let kept = kept.cloned().collect();
                Arc::make_mut(&mut pv).meta.update(|m| m.alarms = kept);
            }
            if tags.contains(&pv.tag.as_str().to_ascii_lowercase()) {
                continue;
            }
            let key = self.discover.get(rule).map_or("discover[?]", |r| &r.key);
            let source = format!("{key} at {} ({})", pv.location, pv.tag);
            match names.get(pv.name.as_str()) {
                Some(first) => errors.push(format!(
                    "duplicate PV name `{}`: made by {source} and by {first}",
                    pv.name
                )),
                None => {
                    names.insert(pv.name.as_str().to_string(), source);
                    out.push(pv);
                    notes.push(note);
                }
            }
        }
        Merged {
            explicit: self.pvs.len(),
            pvs: out,
            notes,
            errors,
            refused: in_force.refused,
        }
    }
}

/// The rules, for `mxpva check`. Check does not contact the gateway (it works offline):
/// `mxpva discover --config FILE` prints the PVs the rules make.
pub(super) fn report(c: &Config, out: &mut String) {
    use std::fmt::Write as _;
    if c.discover.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "discover:  {} rule(s); the Galaxy is read by `mxpva run` (and followed on deploys) and by `mxpva discover --config {}`",
        c.discover.len(),
        c.path.display()
    );
    for r in &c.discover {
        let mut parts = vec![format!("name {}{}", c.defaults.prefix, r.name)];
        parts.push(format!("root {}", r.root.as_deref().unwrap_or("(all)")));
        parts.push(format!("objects {}", r.objects.as_deref().unwrap_or("*")));
        if !r.attributes.is_empty() {
            parts.push(format!("attributes {}", r.attributes.join(" ")));
        }
        if r.alarm_bearing_only {
            parts.push("alarm-bearing only".into());
        }
        if r.historized_only {
            parts.push("historized only".into());
        }
        for (from, to) in &r.types {
            parts.push(format!("{from} as {to}"));
        }
        let _ = writeln!(out, "{} ({}): {}", r.key, r.location, parts.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> Result<Config, String> {
        Config::from_str_at(text, Path::new("site.toml")).map_err(|e| e.to_string())
    }

    fn cand(rule: usize, name: &str, tag: &str, access: GalaxyAccess) -> Candidate {
        Candidate {
            rule,
            name: name.into(),
            tag: tag.into(),
            pv_type: PvType::Scalar(super::super::ScalarType::Float64),
            units: Some("m".into()),
            description: None,
            access,
            alarms: Vec::new(),
            note: String::new(),
        }
    }

    #[test]
    fn templates() {
        assert!(check_template(DEFAULT_NAME_TEMPLATE).is_ok());
        assert!(check_template("{area}:{object}:{attribute}").is_ok());
        for (bad, why) in [
            ("{object}", "lacks {attribute}"),
            ("{object}:{attr}", "uses `{attr}`"),
            ("{object:{attribute}", "uses `{object:{attribute}`"),
            ("{attribute}}", "without `{`"),
            ("{object} {attribute}", "characters a PV name may not"),
        ] {
            let e = check_template(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert_eq!(
            expand_template("{area}/{object}.{attribute}", "O", "A", "R"),
            "R/O.A"
        );
    }

    #[test]
    fn rule_problems_are_reported_at_their_place() {
        let e = load(
            "[[discover]]\nobjects = \"[ab]\"\nname = \"{object}\"\n\n[[discover]]\nwrite_mode = \"verified\"\nwritable = true\n\n[[discover]]\ntypes = { int64 = \"float64[]\", \"float64[]\" = \"float32\" }\n",
        )
        .unwrap_err();
        assert!(
            e.contains("site.toml:2:11: discover[1].objects: glob `[ab]` contains `[`"),
            "{e}"
        );
        assert!(
            e.contains("site.toml:3:8: discover[1].name: name template `{object}` lacks"),
            "{e}"
        );
        assert!(
            e.contains("discover[2].write_mode: write_mode `verified` needs `user` and `verifier`"),
            "{e}"
        );
        assert!(
            e.contains("discover[3].types.float64[]: `float64[]` is an array"),
            "{e}"
        );
        // An array target for a scalar source is refused when validated as a [[pv]].
        assert!(e.contains("discover[3]"), "{e}");
    }

    #[test]
    fn a_config_of_rules_alone_maps_something() {
        let c = load("[[discover]]\n").unwrap();
        assert_eq!(c.discover.len(), 1);
        assert_eq!(c.discover[0].name, DEFAULT_NAME_TEMPLATE);
        assert!(c.pvs.is_empty());
    }

    #[test]
    fn the_galaxy_decides_writability_and_the_rule_overrides_it() {
        let c = load(
            "[defaults]\nprefix = \"P:\"\n\n[users.op]\nid = 1\n\n[[discover]]\n\n[[discover]]\nuser = \"op\"\ntimestamp = \"receive\"\n\n[[discover]]\nwritable = false\n",
        )
        .unwrap();
        let made = c.rule_pvs(&[
            cand(0, "A", "O.A", GalaxyAccess::Write),
            cand(0, "B", "O.B", GalaxyAccess::Secured),
            cand(1, "C", "O.C", GalaxyAccess::Secured),
            cand(1, "D", "O.D", GalaxyAccess::Verified),
            cand(2, "E", "O.E", GalaxyAccess::Write),
            cand(0, "bad name", "O.F", GalaxyAccess::Write),
        ]);
        let pv = |n: &str| {
            &made
                .pvs
                .iter()
                .find(|p| p.pv.name.as_str() == n)
                .unwrap()
                .pv
        };
        assert_eq!(
            pv("P:A").write.as_ref().map(super::super::WriteMode::name),
            Some("write")
        );
        assert!(
            !pv("P:B").writable(),
            "SecuredWrite without a user is read-only"
        );
        assert_eq!(
            pv("P:C").write.as_ref().map(super::super::WriteMode::name),
            Some("secured")
        );
        assert!(
            !pv("P:D").writable(),
            "VerifiedWrite without a verifier is read-only"
        );
        assert!(!pv("P:E").writable());
        assert_eq!(pv("P:C").timestamp, super::super::TimestampSource::Receive);
        assert_eq!(made.read_only_no_user, ["O.B", "O.D"]);
        assert_eq!(made.refused.len(), 1, "{:?}", made.refused);
        assert!(
            made.refused[0].starts_with("discover[1] (O.F): PV name `bad name` contains a space")
        );
    }

    #[test]
    fn an_explicit_pv_wins_and_duplicate_names_name_both() {
        let c = load(
            "[[pv]]\nname = \"O:A\"\ntag = \"O.A\"\nunits = \"K\"\n\n[[pv]]\nname = \"O:B\"\ntag = \"O.X\"\nalarms = [\"Galaxy!Area.O.C.Hi\"]\n\n[[discover]]\n",
        )
        .unwrap();
        let mut c_alarmed = cand(0, "O:C", "O.C", GalaxyAccess::Write);
        c_alarmed.alarms = vec!["O.C.Hi".into(), "O.C.Lo".into()];
        let made = c.rule_pvs(&[
            cand(0, "O:A", "O.A", GalaxyAccess::Write),
            cand(0, "O:B", "O.B", GalaxyAccess::Write),
            c_alarmed,
            cand(0, "O:C", "P.C", GalaxyAccess::Write),
        ]);
        let merged = c.merge_rule_pvs(made.pvs);
        let names: Vec<&str> = merged.pvs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["O:A", "O:B", "O:C"]);
        assert_eq!(
            merged.pvs[0].meta.units.as_deref(),
            Some("K"),
            "the explicit O.A"
        );
        assert_eq!(merged.pvs[2].tag.as_str(), "O.C");
        assert_eq!(*merged.pvs[2].meta.alarms, ["O.C.Lo"], "O.C.Hi is pv[2]'s");
        assert_eq!(merged.errors.len(), 2, "{:?}", merged.errors);
        assert!(
            merged.errors[0].contains("duplicate PV name `O:B`: made by discover[1] at site.toml:11:1 (O.B) and by pv[2] at site.toml:6:1 (O.X)"),
            "{:?}",
            merged.errors
        );
        assert!(
            merged.errors[1].contains("(P.C) and by discover[1]"),
            "{:?}",
            merged.errors
        );
    }
}
