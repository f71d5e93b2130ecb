//! Galaxy discovery: `[[discover]]` rules applied to the Galaxy Repository's hierarchy.
//!
//! [`discover`] reads the hierarchy (DiscoverHierarchy, paged) once per rule and turns each
//! attribute a rule picks into a [`Candidate`]; `Config::rule_pvs` validates those as
//! `[[pv]]` tables, and `Config::merge_rule_pvs` joins them with the explicit `[[pv]]`
//! tables into the desired mapping. `mxpva discover` prints that mapping as TOML
//! (`render.rs`); `mxpva run` serves it and follows deploys (`bridge/mapping/deploys.rs`).
//!
//! What the Galaxy says becomes:
//! - the type: the attribute's MX data type and array flag, as the bridge serves it by
//!   default (`config::default_pv_type`), then the rule's `types`; an attribute of a type
//!   the bridge cannot serve (QualifiedStruct, ...) is skipped and named;
//! - writability from the security classification: FreeAccess, Operate and Tune write;
//!   SecuredWrite is `secured`, VerifiedWrite `verified` (read-only, and named, when no
//!   `user` / `verifier` is configured for them); ViewOnly, Configure (needs the object
//!   off scan) and Undefined are read-only;
//! - alarms: an alarm attribute (`is_alarm`) belongs to the attribute it is named under
//!   (`Level.HiHi` to `Level`; feature names such as `PVHiAlarm` to the longest attribute
//!   they start with) and is listed in that PV's `alarms`; an alarm under no attribute
//!   (`Pump001.PumpFault`) is a PV of its own that carries it.
//!
//! Peer-sized input is bounded: at most [`MAX_PAGES`] pages and [`MAX_OBJECTS`] objects per
//! rule (a reply past them is refused, never truncated: a partial hierarchy would remove
//! PVs), a page token seen twice is a cycle and refused, nothing is allocated by
//! `total_object_count`, and names that are empty, longer than [`MAX_NAME`] or not valid
//! in a reference are skipped and named.
//!
//! NOTES for whoever continues (issue 12):
//! - Rule-made PVs are validated like `[[pv]]` tables (`config/discover.rs`), but not all
//!   cross-checks of the whole file are run on them: an alarm an explicit table names is
//!   taken off rule-made PVs, duplicate names are errors, but a rule-made PV whose `:ACK`
//!   name is another PV's is not reported.
//! - `mx_attribute_category` is not read: writability comes from the security
//!   classification alone, as the issue says; the simulator reports the classification of
//!   attributes it refuses to write (`writable = false` in its Galaxy file), so such a PV
//!   is writable and a put fails with System Platform's NotWriteable.
//! - The live core's texts say "reload" for a deploy too ("PV removed by a config reload"
//!   for puts waiting on a removed PV, "subscriptions of the reload done" in the log).
//! - The benchmark (`benches/discover.rs`) has only run at `--quick` size.

pub mod areas;
mod cli;
mod render;

use std::collections::{HashMap, HashSet};

use globset::{GlobBuilder, GlobMatcher};

use crate::config::{expand_template, BooleanRepr, Candidate, DiscoverRule, GalaxyAccess, PvType};
use crate::gateway::{
    GalaxyAttribute, GalaxyClient, GalaxyObject, GatewayError, HierarchyQuery,
    SecurityClassification,
};

pub use cli::{run as run_cli, DiscoverArgs, DiscoverCliError};
pub use render::render;

/// Objects asked for per DiscoverHierarchy page.
pub const PAGE_SIZE: i32 = 1000;
/// At most this many pages per rule.
pub const MAX_PAGES: usize = 10_000;
/// At most this many objects per rule.
pub const MAX_OBJECTS: usize = 1_000_000;
/// The longest tag name or attribute name accepted (the Galaxy's `tag_name` holds 329).
pub const MAX_NAME: usize = 329;

/// Why discovery failed (the mapping in service then stays).
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("{rule}: {message}")]
    Hierarchy { rule: String, message: String },
}

/// What one discovery found.
#[derive(Debug, Default, Clone)]
pub struct Discovery {
    pub candidates: Vec<Candidate>,
    /// One line per attribute or object skipped, with why.
    pub skipped: Vec<String>,
    /// Objects read, over all rules.
    pub objects: usize,
}

/// Every page of DiscoverHierarchy for `q`, bounded (see the module notes).
async fn fetch(
    galaxy: &GalaxyClient,
    q: &HierarchyQuery,
    rule: &str,
) -> Result<Vec<GalaxyObject>, DiscoverError> {
    let bad = |message: String| DiscoverError::Hierarchy {
        rule: rule.to_string(),
        message,
    };
    let mut q = q.clone();
    let mut out: Vec<GalaxyObject> = Vec::new();
    let mut tokens: HashSet<String> = HashSet::new();
    for _ in 0..MAX_PAGES {
        let page = galaxy.discover_hierarchy(&q).await?;
        if out.len().saturating_add(page.objects.len()) > MAX_OBJECTS {
            return Err(bad(format!(
                "the Galaxy holds more than {MAX_OBJECTS} objects for this rule: narrow it with `root` or `objects`"
            )));
        }
        out.extend(page.objects);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        if page.next_page_token.len() > crate::gateway::MAX_PEER_TEXT
            || !tokens.insert(page.next_page_token.clone())
        {
            return Err(bad(
                "DiscoverHierarchy sent a page token twice (or an overlong one): refused as a cycle"
                    .into(),
            ));
        }
        q.page_token = page.next_page_token;
    }
    Err(bad(format!(
        "DiscoverHierarchy did not end within {MAX_PAGES} pages"
    )))
}

fn glob(pattern: &str) -> Option<GlobMatcher> {
    GlobBuilder::new(pattern)
        .case_insensitive(true)
        .literal_separator(false)
        .backslash_escape(false)
        .build()
        .ok()
        .map(|g| g.compile_matcher())
}

/// What a security classification allows.
pub fn access_of(s: SecurityClassification) -> GalaxyAccess {
    use SecurityClassification::*;
    match s {
        FreeAccess | Operate | Tune => GalaxyAccess::Write,
        SecuredWrite => GalaxyAccess::Secured,
        VerifiedWrite => GalaxyAccess::Verified,
        ViewOnly | Configure | Undefined => GalaxyAccess::ReadOnly,
    }
}

/// Whether `name` can be part of an MXAccess reference.
fn name_ok(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() > MAX_NAME {
        return Err("name longer than 329 characters");
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "\"'[]{},;=`\\".contains(c))
    {
        return Err("name holds a character a reference may not");
    }
    Ok(())
}

/// The attribute an alarm attribute belongs to: the one it is named under, else the
/// longest one a feature name (`...Alarm`) starts with.
fn alarm_owner<'a>(alarm: &str, attrs: &[&'a GalaxyAttribute]) -> Option<&'a GalaxyAttribute> {
    let lower = alarm.to_ascii_lowercase();
    let under = attrs
        .iter()
        .filter(|a| {
            let n = a.name.to_ascii_lowercase();
            lower.len() > n.len() + 1
                && lower.starts_with(&n)
                && lower.as_bytes().get(n.len()) == Some(&b'.')
        })
        .max_by_key(|a| a.name.len());
    if let Some(a) = under {
        return Some(a);
    }
    if !lower.ends_with("alarm") {
        return None;
    }
    attrs
        .iter()
        .filter(|a| {
            let n = a.name.to_ascii_lowercase();
            lower.len() > n.len() && lower.starts_with(&n)
        })
        .max_by_key(|a| a.name.len())
        .copied()
}

/// The type `rule` serves an attribute as.
fn served_type(rule: &DiscoverRule, a: &GalaxyAttribute, boolean: BooleanRepr) -> Option<PvType> {
    let t = crate::config::default_pv_type(a.data_type, a.is_array, boolean == BooleanRepr::Enum)?;
    if let Some((_, to)) = rule.types.iter().find(|(from, _)| *from == t) {
        return Some(*to);
    }
    match t {
        PvType::Array(e) => rule
            .types
            .iter()
            .find(|(from, to)| *from == PvType::Scalar(e) && !to.is_array())
            .and_then(|(_, to)| to.element().map(PvType::Array))
            .or(Some(t)),
        _ => Some(t),
    }
}

/// The candidates `rule` (index `index`) picks from `objects`.
pub fn candidates(
    rule: &DiscoverRule,
    index: usize,
    objects: &[GalaxyObject],
    areas: &HashMap<i32, String>,
    boolean: BooleanRepr,
    out: &mut Discovery,
) {
    let objects_glob = rule.objects.as_deref().and_then(glob);
    let attr_globs: Vec<GlobMatcher> = rule.attributes.iter().filter_map(|g| glob(g)).collect();
    let mut seen: HashSet<String> = HashSet::new();
    for o in objects {
        if let Err(why) = name_ok(&o.tag_name) {
            out.skipped.push(format!(
                "{}: object `{}`: {why}",
                rule.key,
                o.tag_name.chars().take(64).collect::<String>()
            ));
            continue;
        }
        if objects_glob
            .as_ref()
            .is_some_and(|g| !g.is_match(&o.tag_name))
            || !seen.insert(o.tag_name.to_ascii_lowercase())
        {
            continue;
        }
        let area = areas.get(&o.area_gobject_id).map_or("", String::as_str);
        let mut values: Vec<&GalaxyAttribute> = Vec::new();
        let mut alarms: Vec<&GalaxyAttribute> = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        for a in &o.attributes {
            if let Err(why) = name_ok(&a.name).and_then(|()| {
                if a.name.split('.').any(str::is_empty) {
                    Err("empty part in a dotted name")
                } else {
                    Ok(())
                }
            }) {
                out.skipped.push(format!(
                    "{}: {}.`{}`: {why}",
                    rule.key,
                    o.tag_name,
                    a.name.chars().take(64).collect::<String>()
                ));
                continue;
            }
            if !names.insert(a.name.to_ascii_lowercase()) {
                continue;
            }
            if a.is_alarm {
                alarms.push(a);
            } else {
                values.push(a);
            }
        }
        // Alarms to the attribute they belong to, or to a PV of their own.
        let mut owned: HashMap<String, Vec<String>> = HashMap::new();
        let mut own_pv: Vec<(&GalaxyAttribute, Vec<String>)> = Vec::new();
        for al in alarms {
            let reference = format!("{}.{}", o.tag_name, al.name);
            match alarm_owner(&al.name, &values) {
                Some(owner) => owned
                    .entry(owner.name.to_ascii_lowercase())
                    .or_default()
                    .push(reference),
                None => own_pv.push((al, vec![reference])),
            }
        }
        let all = values
            .iter()
            .map(|a| {
                let alarms = owned
                    .remove(&a.name.to_ascii_lowercase())
                    .unwrap_or_default();
                (*a, alarms)
            })
            .chain(own_pv);
        for (a, alarms) in all {
            if !attr_globs.is_empty() && !attr_globs.iter().any(|g| g.is_match(&a.name)) {
                continue;
            }
            if (rule.alarm_bearing_only && alarms.is_empty())
                || (rule.historized_only && !a.is_historized)
            {
                continue;
            }
            let tag = format!("{}.{}", o.tag_name, a.name);
            let Some(pv_type) = served_type(rule, a, boolean) else {
                out.skipped.push(format!(
                    "{}: {tag}: type {}{} is not served",
                    rule.key,
                    a.data_type,
                    if a.is_array { "[]" } else { "" }
                ));
                continue;
            };
            let text = |s: &str| (!s.trim().is_empty()).then(|| s.to_string());
            let mut note = format!("{}", a.data_type);
            if a.is_array {
                note.push_str(&format!("[{}]", a.array_dimension.max(0)));
            }
            note.push_str(&format!(", {}", a.security.name()));
            if a.is_historized {
                note.push_str(", historized");
            }
            out.candidates.push(Candidate {
                rule: index,
                name: expand_template(&rule.name, &o.tag_name, &a.name, area),
                tag: if a.is_array { format!("{tag}[]") } else { tag },
                pv_type,
                units: text(&a.eng_units).filter(|_| pv_type.is_numeric()),
                description: text(&a.description),
                access: if a.is_alarm {
                    GalaxyAccess::ReadOnly
                } else {
                    access_of(a.security)
                },
                alarms,
                note,
            });
        }
    }
}

/// Reads the hierarchy for each rule and returns what they pick.
pub async fn discover(
    galaxy: &GalaxyClient,
    rules: &[DiscoverRule],
    boolean: BooleanRepr,
) -> Result<Discovery, DiscoverError> {
    let mut out = Discovery::default();
    let mut areas: Option<HashMap<i32, String>> = None;
    for (index, rule) in rules.iter().enumerate() {
        let q = HierarchyQuery {
            page_size: PAGE_SIZE,
            page_token: String::new(),
            root_tag_name: rule.root.clone(),
            tag_name_glob: rule.objects.clone().unwrap_or_default(),
            include_attributes: true,
            alarm_bearing_only: rule.alarm_bearing_only,
            historized_only: rule.historized_only,
        };
        let objects = fetch(galaxy, &q, &rule.key).await?;
        out.objects += objects.len();
        if areas.is_none() && rule.name.contains("{area}") {
            // Areas by id, from the whole hierarchy without attributes.
            let all = HierarchyQuery {
                page_size: PAGE_SIZE,
                ..HierarchyQuery::default()
            };
            let found = fetch(galaxy, &all, &rule.key).await?;
            areas = Some(
                found
                    .into_iter()
                    .filter(|o| o.is_area && name_ok(&o.tag_name).is_ok())
                    .map(|o| (o.gobject_id, o.tag_name))
                    .collect(),
            );
        }
        let none = HashMap::new();
        candidates(
            rule,
            index,
            &objects,
            areas.as_ref().unwrap_or(&none),
            boolean,
            &mut out,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
