//! `[[discover]]` rules: PVs made from the Galaxy Repository's hierarchy.
//!
//! A rule holds the filters (`root`, `objects`, `attributes`, `alarm_bearing_only`,
//! `historized_only`), the PV-name template (`name`, default `{object}:{attribute}`, also
//! `{area}`; the `[defaults] prefix` goes in front) and per-rule defaults for the PVs it
//! makes: `types` (served type overrides such as `{ int64 = "float64" }`) and the per-PV
//! keys listed in [`rule_pv_keys!`] (`writable`, `write_mode`, `user`, `verifier`,
//! `timestamp`, `acknowledge`, `alarm_severity`, `subscribe`, `linger`, `access_group`,
//! `access_level`).
//!
//! The Galaxy is read by `crate::discover`; it hands each attribute a rule picked to
//! [`Config::rule_pvs`] as a [`Candidate`] (name, tag, type, units, description, what
//! its security classification allows, alarms). Each candidate goes through the same
//! validation as a `[[pv]]` table, with the rule's defaults on top of what the Galaxy
//! says, so a rule-made PV means exactly what the `[[pv]]` table `mxpva discover` prints
//! for it means.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::location::SourceMap;
use super::raw::{RawPv, RawWriteMode};
use super::types::{PvName, PvType, Tag};
use super::validate::pv::{pv, PvContext};
use super::validate::Validator;
use super::{Config, Defaults, Diagnostic, Pv, User};

/// The per-PV keys a rule may set for the PVs it makes. Each is a key of `[[pv]]` of the
/// same name and type (`Option<T>` on `RawPv`): adding one here (one line) makes it a
/// `[[discover]]` key that is put on every PV the rule makes, validated as on `[[pv]]`.
macro_rules! rule_pv_keys {
    ($($key:ident : $ty:ty),* $(,)?) => {
        /// `[[discover]]` as serde reads it.
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct RawDiscover {
            #[serde(default)]
            pub root: Option<Spanned<String>>,
            #[serde(default)]
            pub objects: Option<Spanned<String>>,
            #[serde(default)]
            pub attributes: Option<Spanned<Vec<Spanned<String>>>>,
            #[serde(default)]
            pub name: Option<Spanned<String>>,
            #[serde(default)]
            pub alarm_bearing_only: bool,
            #[serde(default)]
            pub historized_only: bool,
            #[serde(default)]
            pub types: Option<Spanned<BTreeMap<String, Spanned<PvType>>>>,
            $( #[serde(default)] pub $key: Option<$ty>, )*
        }

        /// The per-PV keys a rule sets, as written.
        #[derive(Debug, Clone, Default)]
        pub(crate) struct RulePvKeys {
            $( pub $key: Option<$ty>, )*
        }

        impl RawDiscover {
            fn pv_keys(&self) -> RulePvKeys {
                RulePvKeys { $( $key: self.$key.clone(), )* }
            }
        }

        impl RulePvKeys {
            /// Puts each key the rule sets on `raw`, over what the Galaxy said.
            fn onto(&self, raw: &mut RawPv) {
                $( if self.$key.is_some() { raw.$key = self.$key.clone(); } )*
            }
        }
    };
}

rule_pv_keys! {
    writable: Spanned<bool>,
    write_mode: Spanned<RawWriteMode>,
    user: Spanned<String>,
    verifier: Spanned<String>,
    timestamp: super::TimestampSource,
    acknowledge: Spanned<bool>,
    alarm_severity: Spanned<String>,
    subscribe: Spanned<super::raw::RawSubscribe>,
    linger: Spanned<super::types::DurationValue>,
    access_group: Spanned<String>,
    access_level: Spanned<i64>,
}

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
    pub location: String,
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
    pub pv: Pv,
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
    pub pvs: Vec<Pv>,
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

/// What rule-made PVs are validated with: the config text (for positions), the
/// `[defaults]` and the users.
pub(crate) struct RuleContext {
    /// Which load of the config: its rules and this context made the rule-made PVs that
    /// carry this id ([`Config::rule_pvs_in_force`]).
    pub(crate) id: u64,
    pub(crate) file: PathBuf,
    pub(crate) text: Arc<str>,
    pub(crate) prefix: PvName,
    pub(crate) defaults: Defaults,
    pub(crate) write_mode: RawWriteMode,
    pub(crate) user: Option<Spanned<String>>,
    pub(crate) verifier: Option<Spanned<String>>,
    pub(crate) users: BTreeMap<String, User>,
}

impl fmt::Debug for RuleContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleContext")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// Checks the rules of a file: their filters, templates, types and per-PV keys (each rule
/// makes a probe PV, validated as a `[[pv]]` table would be).
pub(super) fn rules(
    v: &mut Validator<'_>,
    ctx: &PvContext<'_>,
    raw: Vec<Spanned<RawDiscover>>,
) -> Vec<DiscoverRule> {
    let mut out = Vec::new();
    for (i, entry) in raw.into_iter().enumerate() {
        let key = format!("discover[{}]", i + 1);
        let span = entry.span();
        let location = v.at(&span);
        let r = entry.into_inner();
        let mut ok = true;
        let mut glob = |v: &mut Validator<'_>, what: String, g: &Spanned<String>| {
            if let Err(e) = check_glob(g.get_ref()) {
                v.err(g.span(), what, e);
                ok = false;
            }
        };
        if let Some(g) = &r.objects {
            glob(v, format!("{key}.objects"), g);
        }
        for g in r.attributes.iter().flat_map(|a| a.get_ref()) {
            glob(v, format!("{key}.attributes"), g);
        }
        let name = r
            .name
            .as_ref()
            .map_or(DEFAULT_NAME_TEMPLATE.to_string(), |n| n.get_ref().clone());
        if let Err(e) = check_template(&name) {
            let at = r.name.as_ref().map_or(span.clone(), Spanned::span);
            v.err(at, format!("{key}.name"), e);
            ok = false;
        }
        if let Some(root) = &r.root {
            if root.get_ref().trim().is_empty() {
                v.err(
                    root.span(),
                    format!("{key}.root"),
                    "root is empty: name an area or object, or leave `root` out",
                );
                ok = false;
            }
        }
        let mut types = Vec::new();
        for (from, to) in r.types.iter().flat_map(|t| t.get_ref()) {
            match PvType::try_from(from.clone()) {
                Ok(f) if f.is_array() != to.get_ref().is_array() => {
                    let what = if f.is_array() { "an array" } else { "a scalar" };
                    v.err(
                        to.span(),
                        format!("{key}.types.{from}"),
                        format!("`{from}` is {what}: it can be served only as {what}"),
                    );
                    ok = false;
                }
                Ok(f) => {
                    types.push((f, *to.get_ref()));
                }
                Err(e) => {
                    let at = r.types.as_ref().map_or(span.clone(), Spanned::span);
                    v.err(at, format!("{key}.types"), e);
                    ok = false;
                }
            }
        }
        let rule = DiscoverRule {
            key: key.clone(),
            location,
            root: r.root.as_ref().map(|s| s.get_ref().trim().to_string()),
            objects: r.objects.as_ref().map(|s| s.get_ref().clone()),
            attributes: r
                .attributes
                .as_ref()
                .map(|a| a.get_ref().iter().map(|s| s.get_ref().clone()).collect())
                .unwrap_or_default(),
            name,
            alarm_bearing_only: r.alarm_bearing_only,
            historized_only: r.historized_only,
            types,
            keys: r.pv_keys(),
        };
        // The per-PV keys: a probe PV, writable as the Galaxy would make it, must pass.
        let probe = Candidate {
            rule: i,
            name: "probe".into(),
            tag: "Probe.Attribute".into(),
            pv_type: PvType::Scalar(super::ScalarType::Float64),
            units: None,
            description: None,
            access: GalaxyAccess::Write,
            alarms: Vec::new(),
            note: String::new(),
        };
        let before = v.diags.len();
        let _ = rule_pv(v, ctx, &rule, &probe);
        for d in v.diags.iter_mut().skip(before) {
            if let Some(k) = d.key.as_mut() {
                *k = k.replacen("pv[0]", &key, 1);
            }
        }
        if ok && v.diags.len() == before {
            out.push(rule);
        }
    }
    out
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

fn unspanned<T>(v: T) -> Spanned<T> {
    Spanned::new(0..0, v)
}

/// Whether the PV context has the users a security classification needs.
fn has_users(ctx: &PvContext<'_>, rule: &DiscoverRule, access: GalaxyAccess) -> bool {
    let user = rule.keys.user.is_some() || ctx.user.is_some();
    let verifier = rule.keys.verifier.is_some() || ctx.verifier.is_some();
    match access {
        GalaxyAccess::Secured => user,
        GalaxyAccess::Verified => user && verifier,
        _ => true,
    }
}

/// The `[[pv]]` table a candidate makes: the Galaxy's values, then the rule's keys.
fn raw_pv(ctx: &PvContext<'_>, rule: &DiscoverRule, c: &Candidate) -> Result<RawPv, String> {
    let name = PvName::try_from(c.name.clone())?;
    let tag = Tag::try_from(c.tag.clone())?;
    let mut raw = RawPv {
        name: Some(unspanned(name)),
        tag: Some(unspanned(tag)),
        pv_type: Some(unspanned(c.pv_type)),
        units: c.units.clone(),
        description: c.description.clone(),
        ..RawPv::default()
    };
    if !c.alarms.is_empty() {
        raw.alarms = Some(c.alarms.iter().cloned().map(unspanned).collect());
    }
    let (writable, mode) = match c.access {
        GalaxyAccess::ReadOnly => (false, None),
        GalaxyAccess::Write => (true, None),
        GalaxyAccess::Secured if has_users(ctx, rule, c.access) => {
            (true, Some(RawWriteMode::Secured))
        }
        GalaxyAccess::Verified if has_users(ctx, rule, c.access) => {
            (true, Some(RawWriteMode::Verified))
        }
        GalaxyAccess::Secured | GalaxyAccess::Verified => (false, None),
    };
    raw.writable = Some(unspanned(writable));
    raw.write_mode = mode.map(unspanned);
    rule.keys.onto(&mut raw);
    let writable = raw.writable.as_ref().is_some_and(|w| *w.get_ref());
    if !writable && rule.keys.write_mode.is_none() {
        raw.write_mode = None;
    }
    let verified = raw
        .write_mode
        .as_ref()
        .map_or(ctx.write_mode, |m| *m.get_ref())
        == RawWriteMode::Verified;
    if !writable || !verified {
        // A rule's verifier serves its VerifiedWrite attributes only.
        raw.verifier = None;
    }
    if !writable {
        raw.user = None;
    }
    Ok(raw)
}

/// Validates one candidate as a `[[pv]]` table (`pv[0]` in messages).
fn rule_pv(
    v: &mut Validator<'_>,
    ctx: &PvContext<'_>,
    rule: &DiscoverRule,
    c: &Candidate,
) -> Option<Pv> {
    let raw = match raw_pv(ctx, rule, c) {
        Ok(raw) => raw,
        Err(e) => {
            v.err(0..0, "pv[0]", e);
            return None;
        }
    };
    let (mut pv, _, _) = pv(v, ctx, 0, unspanned(raw))?;
    pv.location = rule.location.clone();
    Some(pv)
}

impl Config {
    /// The PVs the rules make of `candidates` (from `crate::discover`), validated as
    /// `[[pv]]` tables with `[defaults]` and each rule's keys applied.
    pub fn rule_pvs(&self, candidates: &[Candidate]) -> RulePvs {
        let c = &self.rule_ctx;
        let map = SourceMap::new(&c.text);
        let mut v = Validator {
            map,
            file: &c.file,
            diags: Vec::new(),
        };
        let ctx = PvContext {
            prefix: c.prefix.clone(),
            defaults: &c.defaults,
            write_mode: c.write_mode,
            user: c.user.clone(),
            verifier: c.verifier.clone(),
            users: &c.users,
        };
        let mut out = RulePvs::default();
        let origins = self.rule_origins();
        for cand in candidates {
            let (Some(rule), Some(origin)) = (self.discover.get(cand.rule), origins.get(cand.rule))
            else {
                continue;
            };
            let before = v.diags.len();
            match rule_pv(&mut v, &ctx, rule, cand) {
                Some(pv) if v.diags.len() == before => {
                    if !has_users(&ctx, rule, cand.access) && !pv.writable() {
                        out.read_only_no_user.push(cand.tag.clone());
                    }
                    out.pvs.push(RulePv {
                        pv,
                        rule: cand.rule,
                        note: cand.note.clone(),
                        origin: super::discover_reload::Origin::new(cand, origin, c.id),
                    });
                }
                _ => {
                    let why: Vec<String> = v
                        .diags
                        .drain(before..)
                        .map(|d: Diagnostic| d.message)
                        .collect();
                    out.refused
                        .push(format!("{} ({}): {}", rule.key, cand.tag, why.join("; ")));
                }
            }
        }
        out
    }

    /// The desired mapping: the `[[pv]]` tables and the PVs `rule_made` (from
    /// [`Config::rule_pvs`]). An explicit `[[pv]]` of the same tag wins over a rule-made
    /// PV, and an alarm an explicit `[[pv]]` or `[[alarm_pv]]` names stays theirs; two PVs
    /// of one name are an error naming both sources (the first stays). PVs made under other
    /// rules (before a reload) are made again under the rules of `self` first
    /// ([`Config::rule_pvs_in_force`]).
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
            .flat_map(|p| &p.alarms)
            .chain(self.alarm_pvs.iter().flat_map(|p| &p.alarms))
            .map(|r| short(r))
            .collect();
        let mut errors = Vec::new();
        let mut notes = Vec::new();
        for RulePv {
            mut pv, rule, note, ..
        } in in_force.pvs
        {
            pv.alarms.retain(|r| !claimed.contains(&short(r)));
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
            merged.pvs[0].units.as_deref(),
            Some("K"),
            "the explicit O.A"
        );
        assert_eq!(merged.pvs[2].tag.as_str(), "O.C");
        assert_eq!(merged.pvs[2].alarms, ["O.C.Lo"], "O.C.Hi is pv[2]'s");
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
