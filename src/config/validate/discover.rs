//! Validation of `[[discover]]` rules and of the PVs they make: each candidate the Galaxy
//! gives (see `config/discover.rs`) is validated as a `[[pv]]` table, with the rule's
//! keys on top of what the Galaxy says.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use toml::Spanned;

use super::pv::{pv, PvContext};
use super::Validator;
use crate::config::discover::{
    check_glob, check_template, Candidate, DiscoverRule, GalaxyAccess, RulePv, RulePvs,
    DEFAULT_NAME_TEMPLATE,
};
use crate::config::location::SourceMap;
use crate::config::raw::{RawDiscover, RawPv, RawWriteMode};
use crate::config::types::{PvName, PvType, ScalarType, Tag};
use crate::config::{Config, Defaults, Diagnostic, Pv, User};

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
pub(in crate::config) fn rules(
    v: &mut Validator<'_>,
    ctx: &PvContext<'_>,
    raw: Vec<Spanned<RawDiscover>>,
) -> Vec<DiscoverRule> {
    let mut out = Vec::new();
    for (i, entry) in raw.into_iter().enumerate() {
        let key = format!("discover[{}]", i + 1);
        let span = entry.span();
        let location = v.location(&span);
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
            pv_type: PvType::Scalar(ScalarType::Float64),
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

fn unspanned<T>(v: T) -> Spanned<T> {
    Spanned::new(0..0, v)
}

/// Whether the PV context has the users a security classification needs.
pub(in crate::config) fn has_users(
    ctx: &PvContext<'_>,
    rule: &DiscoverRule,
    access: GalaxyAccess,
) -> bool {
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
        let mut v = Validator::new(map, &c.file);
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
                        pv: std::sync::Arc::new(pv),
                        rule: cand.rule,
                        note: cand.note.clone(),
                        origin: crate::config::discover_reload::Origin::new(cand, origin, c.id),
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
}
