//! `[alarms]`, `[[alarm_pv]]` and the alarm keys of `[[pv]]`.

use std::collections::HashMap;
use std::ops::Range as Span;

use toml::Spanned;

use super::Validator;
use crate::config::raw::{RawAlarmPv, RawAlarms, RawPriorityBand};
use crate::config::types::PvName;
use crate::config::{
    AlarmPv, AlarmPvType, Alarms, PriorityBand, Pv, Severity, SeverityScheme,
    DEFAULT_PRIORITY_BANDS, PRIORITY_RANGE,
};

/// Reads a severity scheme (`[alarms] severity`, `alarm_severity`).
pub(super) fn scheme(
    v: &mut Validator<'_>,
    key: &str,
    raw: Option<&Spanned<String>>,
) -> Option<SeverityScheme> {
    let raw = raw?;
    let word = raw.get_ref();
    let scheme = SeverityScheme::parse(word);
    if scheme.is_none() {
        v.err(
            raw.span(),
            key,
            format!(
                "unknown severity scheme `{word}`, expected `{}` (by priority band) or `{}` \
                 (HiHi and LoLo MAJOR, Hi and Lo MINOR, as an EPICS record)",
                SeverityScheme::WORDS[0],
                SeverityScheme::WORDS[1]
            ),
        );
    }
    scheme
}

/// Checks one alarm reference: `Object.Alarm` (or `Object.Attr.Alarm`), or the full
/// `Galaxy!Area.Object.Alarm`.
fn reference_problem(r: &str) -> Option<String> {
    let local = r.split_once('!').map_or(r, |(_, rest)| rest);
    if r.is_empty() {
        Some("alarm reference is empty".into())
    } else if let Some(c) = r.chars().find(|c| c.is_whitespace() || c.is_control()) {
        Some(format!(
            "alarm reference `{r}` contains {}",
            if c == ' ' {
                "a space".into()
            } else {
                format!("{c:?}")
            }
        ))
    } else if r.matches('!').count() > 1
        || !local.contains('.')
        || local.split('.').any(str::is_empty)
    {
        Some(format!(
            "alarm reference `{r}` is not `Object.Alarm` (or `Galaxy!Area.Object.Alarm`)"
        ))
    } else {
        None
    }
}

/// Alarm references with where each is written.
pub(super) type AlarmRefs = Vec<(String, Span<usize>)>;

/// Checks a list of alarm references; returns the good ones with their spans.
pub(super) fn references(v: &mut Validator<'_>, key: &str, list: &[Spanned<String>]) -> AlarmRefs {
    list.iter()
        .filter_map(|r| match reference_problem(r.get_ref()) {
            Some(problem) => {
                v.err(r.span(), key, problem);
                None
            }
            None => Some((r.get_ref().clone(), r.span())),
        })
        .collect()
}

fn priorities(
    v: &mut Validator<'_>,
    raw: &Spanned<Vec<Spanned<RawPriorityBand>>>,
) -> Vec<PriorityBand> {
    let mut bands: Vec<PriorityBand> = Vec::new();
    if raw.get_ref().is_empty() {
        v.err(
            raw.span(),
            "alarms.priorities",
            "no bands: give at least one `{ from, to, severity }`",
        );
    }
    for (i, b) in raw.get_ref().iter().enumerate() {
        let key = format!("alarms.priorities[{}]", i + 1);
        let b = b.get_ref();
        let mut bound = |x: &Spanned<i64>, what: &str| match i32::try_from(*x.get_ref()) {
            Ok(p) if PRIORITY_RANGE.contains(&p) => Some(p),
            _ => {
                v.err(
                    x.span(),
                    format!("{key}.{what}"),
                    format!(
                        "priority {} is outside {} to {}",
                        x.get_ref(),
                        PRIORITY_RANGE.start(),
                        PRIORITY_RANGE.end()
                    ),
                );
                None
            }
        };
        let (Some(from), Some(to)) = (bound(&b.from, "from"), bound(&b.to, "to")) else {
            continue;
        };
        if from > to {
            v.err(
                b.from.span(),
                &key,
                format!("from ({from}) is greater than to ({to})"),
            );
            continue;
        }
        if let Some((j, o)) = bands
            .iter()
            .enumerate()
            .find(|(_, o)| from <= o.to && o.from <= to)
        {
            v.err(
                b.from.span(),
                &key,
                format!(
                    "priorities {from} to {to} overlap alarms.priorities[{}] ({} to {})",
                    j + 1,
                    o.from,
                    o.to
                ),
            );
            continue;
        }
        bands.push(PriorityBand {
            from,
            to,
            severity: b.severity,
        });
    }
    bands
}

/// `[alarms]`, with the full table name.
pub(super) fn alarms(v: &mut Validator<'_>, prefix: &PvName, raw: RawAlarms) -> Alarms {
    let returned_unacked = *raw.returned_unacked.get_ref();
    if !matches!(returned_unacked, Severity::None | Severity::Minor) {
        v.err(
            raw.returned_unacked.span(),
            "alarms.returned_unacked",
            "returned_unacked must be `none` or `minor`",
        );
    }
    let ack_suffix = raw.ack_suffix.get_ref().0.as_str().to_string();
    if ack_suffix.is_empty() {
        v.err(
            raw.ack_suffix.span(),
            "alarms.ack_suffix",
            "ack_suffix is empty: the acknowledgement PV would have the PV's own name",
        );
    }
    let priorities = match &raw.priorities {
        Some(p) => priorities(v, p),
        None => DEFAULT_PRIORITY_BANDS.to_vec(),
    };
    let table = raw.table.get_ref().0.as_str();
    let severity = scheme(v, "alarms.severity", raw.severity.as_ref()).unwrap_or_default();
    let access_group = super::access::group(
        v,
        "alarms.access_group",
        raw.access_group.as_ref(),
        &std::sync::Arc::from(crate::config::DEFAULT_ACCESS_GROUP),
    );
    Alarms {
        enabled: raw.enabled,
        filter_prefix: raw.filter_prefix,
        acknowledge: raw.acknowledge,
        ack_suffix,
        table: (!table.is_empty()).then(|| PvName::with_prefix(prefix, &raw.table.get_ref().0)),
        returned_unacked,
        priorities,
        severity,
        access_group,
    }
}

/// One `[[alarm_pv]]`; `None` (after reporting) when it is unusable.
pub(super) fn alarm_pv(
    v: &mut Validator<'_>,
    prefix: &PvName,
    defaults: &crate::config::Defaults,
    n: usize,
    entry: Spanned<RawAlarmPv>,
) -> Option<(AlarmPv, Span<usize>, AlarmRefs)> {
    let span = entry.span();
    let location = v.at(&span);
    let p = format!("alarm_pv[{n}]");
    let raw = entry.into_inner();
    let Some(name) = raw.name else {
        v.err(span, &p, "missing key `name`");
        return None;
    };
    let refs = match &raw.alarms {
        None => {
            v.err(
                span,
                &p,
                "missing key `alarms` (the alarm references it shows)",
            );
            return None;
        }
        Some(list) if list.get_ref().is_empty() => {
            v.err(list.span(), format!("{p}.alarms"), "no alarm references");
            return None;
        }
        Some(list) => references(v, &format!("{p}.alarms"), list.get_ref()),
    };
    let pv = AlarmPv {
        name: PvName::with_prefix(prefix, name.get_ref()),
        alarms: refs.iter().map(|(r, _)| r.clone()).collect(),
        pv_type: raw.pv_type.map_or(AlarmPvType::Enum, |t| *t.get_ref()),
        description: raw.description,
        acknowledge: raw.acknowledge.is_none_or(|a| *a.get_ref()),
        alarm_severity: scheme(
            v,
            &format!("{p}.alarm_severity"),
            raw.alarm_severity.as_ref(),
        ),
        access_group: super::access::group(
            v,
            &format!("{p}.access_group"),
            raw.access_group.as_ref(),
            &defaults.access_group,
        ),
        access_level: super::access::level(
            v,
            &format!("{p}.access_level"),
            raw.access_level.as_ref(),
            defaults.access_level,
        ),
        location,
    };
    Some((pv, name.span(), refs))
}

/// Who claimed a name or an alarm reference first: its span and its key.
type Claims = HashMap<String, (Span<usize>, String)>;

fn claim(
    v: &mut Validator<'_>,
    claims: &mut Claims,
    what: &str,
    id: &str,
    span: Span<usize>,
    key: String,
) {
    if let Some((first, first_key)) = claims.get(&id.to_ascii_lowercase()) {
        let msg = format!(
            "{what} `{id}` is already used by {first_key}, at {}",
            v.at(first)
        );
        v.err(span, key, msg);
    } else {
        claims.insert(id.to_ascii_lowercase(), (span, key));
    }
}

/// What the cross-checks need of each PV-like table.
pub(super) struct Claimed<'a> {
    /// `pv[N]` or `alarm_pv[N]`.
    pub key: String,
    pub name: &'a PvName,
    pub name_span: Span<usize>,
    pub acknowledge: bool,
    pub alarms: &'a [(String, Span<usize>)],
}

/// Each alarm reference belongs to one PV, and no acknowledgement PV or the table takes
/// the name of another PV.
pub(super) fn cross_check(v: &mut Validator<'_>, alarms: &Alarms, entries: &[Claimed<'_>]) {
    let mut refs = Claims::new();
    for e in entries {
        for (r, span) in e.alarms {
            // Full and short references name one alarm; compare by the short form.
            let short = r.split_once('!').map_or(r.as_str(), |(_, rest)| rest);
            let short = short
                .split_once('.')
                .filter(|_| r.contains('!'))
                .map_or(short, |(_, s)| s);
            claim(
                v,
                &mut refs,
                "alarm",
                short,
                span.clone(),
                format!("{}.alarms", e.key),
            );
        }
    }
    let mut names = Claims::new();
    for e in entries {
        let lower = e.name.as_str().to_ascii_lowercase();
        if e.key.starts_with("pv[") {
            // Duplicates among [[pv]] tables are reported with the PV tables.
            names
                .entry(lower)
                .or_insert_with(|| (e.name_span.clone(), format!("{}.name", e.key)));
        } else {
            claim(
                v,
                &mut names,
                "PV name",
                e.name.as_str(),
                e.name_span.clone(),
                format!("{}.name", e.key),
            );
        }
    }
    if let Some(t) = &alarms.table {
        if let Some((span, key)) = names.get(&t.as_str().to_ascii_lowercase()).cloned() {
            v.err(
                span,
                key,
                format!("PV name `{t}` is the active-alarm table ([alarms] table)"),
            );
        }
        names.insert(
            t.as_str().to_ascii_lowercase(),
            (0..0, "[alarms] table".into()),
        );
    }
    if !alarms.acknowledge || alarms.ack_suffix.is_empty() {
        return;
    }
    for e in entries.iter().filter(|e| e.acknowledge) {
        let ack = format!("{}{}", e.name, alarms.ack_suffix);
        if let Some((span, key)) = names.get(&ack.to_ascii_lowercase()).cloned() {
            v.err(
                span,
                key,
                format!(
                    "PV name `{ack}` is the acknowledgement PV of {} (`{}`): rename one, change \
                     [alarms] ack_suffix, or set `acknowledge = false` on {}",
                    e.key, e.name, e.key
                ),
            );
        }
    }
}

/// Applies the global switch to each PV's own `acknowledge`.
pub(super) fn apply_acknowledge(
    alarms: &Alarms,
    pvs: &mut [std::sync::Arc<Pv>],
    alarm_pvs: &mut [AlarmPv],
) {
    for p in pvs {
        if p.acknowledge && !alarms.acknowledge {
            // Not shared yet: changed in place.
            std::sync::Arc::make_mut(p).acknowledge = false;
        }
    }
    for p in alarm_pvs {
        p.acknowledge &= alarms.acknowledge;
    }
}
