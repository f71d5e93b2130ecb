//! One `[[pv]]` table: its tag, type, metadata, limits and write mode, with `[defaults]`
//! applied.

use std::ops::Range as Span;

use toml::Spanned;

use super::super::raw::{RawControl, RawPv, RawRange, RawValueAlarm, RawWriteMode};
use super::super::types::{PvName, PvType, ScalarType};
use super::super::{
    BooleanRepr, Control, Defaults, Pv, PvMeta, PvMetaFields, Range, User, ValueAlarm, WriteMode,
};
use super::{alarms, choices, unknown_user, Validator};

/// The largest `precision` accepted.
const MAX_PRECISION: i64 = 17;

pub(crate) struct PvContext<'a> {
    pub(crate) prefix: PvName,
    pub(crate) defaults: &'a Defaults,
    pub(crate) write_mode: RawWriteMode,
    pub(crate) user: Option<Spanned<String>>,
    pub(crate) verifier: Option<Spanned<String>>,
    pub(crate) users: &'a std::collections::BTreeMap<String, User>,
}

fn finite(v: &mut Validator<'_>, key: &str, x: &Option<Spanned<f64>>) -> Option<f64> {
    let x = x.as_ref()?;
    if x.get_ref().is_finite() {
        Some(*x.get_ref())
    } else {
        v.err(
            x.span(),
            key,
            format!("limit is {}: limits must be finite numbers", x.get_ref()),
        );
        None
    }
}

/// Reports the first pair out of order among `(name, value)` in ascending order.
fn ordered(
    v: &mut Validator<'_>,
    span: Span<usize>,
    key: &str,
    what: &str,
    values: &[(&str, Option<f64>)],
) {
    let present: Vec<(&str, f64)> = values
        .iter()
        .filter_map(|(n, x)| x.map(|x| (*n, x)))
        .collect();
    for (&(a, x), &(b, y)) in present.iter().zip(present.iter().skip(1)) {
        if x > y {
            v.err(
                span.clone(),
                key,
                format!("{what}.{a} ({x}) is greater than {what}.{b} ({y})"),
            );
        }
    }
}

fn range(v: &mut Validator<'_>, p: &str, r: Option<Spanned<RawRange>>) -> Option<Range> {
    let r = r?;
    let span = r.span();
    let key = format!("{p}.display");
    let raw = r.into_inner();
    let low = finite(v, &format!("{key}.low"), &raw.low);
    let high = finite(v, &format!("{key}.high"), &raw.high);
    ordered(v, span, &key, "display", &[("low", low), ("high", high)]);
    Some(Range { low, high })
}

fn control(v: &mut Validator<'_>, p: &str, c: Option<Spanned<RawControl>>) -> Option<Control> {
    let c = c?;
    let span = c.span();
    let key = format!("{p}.control");
    let raw = c.into_inner();
    let low = finite(v, &format!("{key}.low"), &raw.low);
    let high = finite(v, &format!("{key}.high"), &raw.high);
    let min_step = finite(v, &format!("{key}.min_step"), &raw.min_step);
    ordered(v, span, &key, "control", &[("low", low), ("high", high)]);
    if let (Some(m), Some(s)) = (min_step, &raw.min_step) {
        if m < 0.0 {
            v.err(
                s.span(),
                format!("{key}.min_step"),
                format!("min_step is {m}: it must not be negative"),
            );
        }
    }
    Some(Control {
        low,
        high,
        min_step,
    })
}

fn value_alarm(
    v: &mut Validator<'_>,
    p: &str,
    a: Option<Spanned<RawValueAlarm>>,
) -> Option<ValueAlarm> {
    let a = a?;
    let span = a.span();
    let key = format!("{p}.value_alarm");
    let raw = a.into_inner();
    let lolo = finite(v, &format!("{key}.lolo"), &raw.lolo);
    let low = finite(v, &format!("{key}.low"), &raw.low);
    let high = finite(v, &format!("{key}.high"), &raw.high);
    let hihi = finite(v, &format!("{key}.hihi"), &raw.hihi);
    let hysteresis = finite(v, &format!("{key}.hysteresis"), &raw.hysteresis).unwrap_or(0.0);
    if hysteresis < 0.0 {
        if let Some(h) = &raw.hysteresis {
            v.err(
                h.span(),
                format!("{key}.hysteresis"),
                format!("hysteresis is {hysteresis}: it must not be negative"),
            );
        }
    }
    ordered(
        v,
        span,
        &key,
        "value_alarm",
        &[("lolo", lolo), ("low", low), ("high", high), ("hihi", hihi)],
    );
    Some(ValueAlarm {
        active: raw.active,
        lolo,
        low,
        high,
        hihi,
        hysteresis,
        lolo_severity: raw.lolo_severity,
        low_severity: raw.low_severity,
        high_severity: raw.high_severity,
        hihi_severity: raw.hihi_severity,
    })
}

pub(crate) fn pv(
    v: &mut Validator<'_>,
    ctx: &PvContext<'_>,
    n: usize,
    entry: Spanned<RawPv>,
) -> Option<(Pv, Span<usize>, alarms::AlarmRefs)> {
    let table_span = entry.span();
    let location = v.location(&table_span);
    let p = format!("pv[{n}]");
    let mut raw = entry.into_inner();
    let name = match &raw.name {
        Some(name) => Some(name.clone()),
        None => {
            v.err(table_span.clone(), &p, "missing key `name`");
            None
        }
    };
    let tag = match &raw.tag {
        Some(tag) => Some(tag.get_ref().clone()),
        None => {
            v.err(table_span.clone(), &p, "missing key `tag`");
            None
        }
    };
    let pv_type = raw.pv_type.as_ref().map(|t| *t.get_ref());

    // Type against the tag's array suffix.
    if let (Some(t), Some(tag)) = (&raw.pv_type, &tag) {
        let ty = *t.get_ref();
        if ty.is_array() && !tag.is_whole_array() {
            v.err(
                t.span(),
                format!("{p}.type"),
                format!(
                    "type `{ty}` is an array, but tag `{tag}` is not: write the tag as `{}[]`",
                    tag.base()
                ),
            );
        } else if !ty.is_array() && tag.is_whole_array() {
            v.err(
                t.span(),
                format!("{p}.type"),
                format!(
                    "tag `{tag}` is a whole array, but type `{ty}` is a scalar: write `{ty}[]`"
                ),
            );
        }
    }
    let numeric_only = |v: &mut Validator<'_>, what: &str, span: Span<usize>| {
        if let Some(t) = pv_type {
            if !t.is_numeric() {
                v.err(
                    span,
                    format!("{p}.{what}"),
                    format!("`{what}` applies only to numeric types, not `{t}`"),
                );
            }
        }
    };
    if let Some(d) = &raw.display {
        numeric_only(v, "display", d.span());
    }
    if let Some(c) = &raw.control {
        numeric_only(v, "control", c.span());
    }
    if let Some(a) = &raw.value_alarm {
        numeric_only(v, "value_alarm", a.span());
        if pv_type.is_some_and(PvType::is_array) || tag.as_ref().is_some_and(|t| t.is_whole_array())
        {
            v.err(
                a.span(),
                format!("{p}.value_alarm"),
                "`value_alarm` applies only to scalars, not arrays",
            );
        }
    }
    let precision = match &raw.precision {
        None => None,
        Some(s) => {
            numeric_only(v, "precision", s.span());
            match u8::try_from(*s.get_ref()) {
                Ok(x) if i64::from(x) <= MAX_PRECISION => Some(x),
                _ => {
                    v.err(
                        s.span(),
                        format!("{p}.precision"),
                        format!(
                            "precision is {}, expected 0 to {MAX_PRECISION}",
                            s.get_ref()
                        ),
                    );
                    None
                }
            }
        }
    };
    let alarm_refs = raw
        .alarms
        .as_deref()
        .map(|list| alarms::references(v, &format!("{p}.alarms"), list))
        .unwrap_or_default();
    let display = range(v, &p, raw.display.take());
    let control = control(v, &p, raw.control.take());
    let value_alarm = value_alarm(v, &p, raw.value_alarm.take());
    let subscribe = super::subscribe::resolve(
        v,
        &p,
        raw.subscribe.as_ref(),
        raw.linger.as_ref(),
        ctx.defaults.subscribe,
        ctx.defaults.linger,
    );
    let alarm_severity = alarms::scheme(
        v,
        &format!("{p}.alarm_severity"),
        raw.alarm_severity.as_ref(),
    );

    // Booleans.
    let boolean = match pv_type {
        Some(PvType::Scalar(ScalarType::Bool)) => BooleanRepr::Bool,
        Some(PvType::Enum) => BooleanRepr::Enum,
        _ => ctx.defaults.boolean,
    };
    let choices_out = match &raw.choices {
        None => ctx.defaults.boolean_choices.clone(),
        Some(c) => {
            let applies = match pv_type {
                Some(PvType::Enum) => true,
                Some(_) => false,
                None => ctx.defaults.boolean == BooleanRepr::Enum,
            };
            if !applies {
                let why = match pv_type {
                    Some(t) => format!("not `{t}`"),
                    None => "and [defaults] boolean is `bool`: add `type = \"enum\"`".into(),
                };
                v.err(
                    c.span(),
                    format!("{p}.choices"),
                    format!("`choices` apply only to a Boolean served as NTEnum, {why}"),
                );
                ctx.defaults.boolean_choices.clone()
            } else {
                choices(v, c, &format!("{p}.choices"))
                    .map(std::sync::Arc::new)
                    .unwrap_or_else(|| ctx.defaults.boolean_choices.clone())
            }
        }
    };

    // Writes.
    let writable = raw
        .writable
        .as_ref()
        .map_or(ctx.defaults.writable, |w| *w.get_ref());
    let write = if !writable {
        for (what, span) in [
            ("write_mode", raw.write_mode.as_ref().map(Spanned::span)),
            ("user", raw.user.as_ref().map(Spanned::span)),
            ("verifier", raw.verifier.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = span {
                v.err(
                    span,
                    format!("{p}.{what}"),
                    format!("`{what}` is set but the PV is not writable: add `writable = true`"),
                );
            }
        }
        None
    } else {
        write_mode(v, ctx, &p, &raw, table_span.clone())
    };

    let name_spanned = name?;
    let tag = tag?;
    let full = PvName::with_prefix(&ctx.prefix, name_spanned.get_ref());
    if full.as_str().len() > PvName::MAX_LEN {
        v.err(
            name_spanned.span(),
            format!("{p}.name"),
            format!(
                "PV name `{full}` (with the prefix) is longer than {} characters",
                PvName::MAX_LEN
            ),
        );
    }
    let access_group = super::access::group(
        v,
        &format!("{p}.access_group"),
        raw.access_group.as_ref(),
        &ctx.defaults.access_group,
    );
    let access_level = super::access::level(
        v,
        &format!("{p}.access_level"),
        raw.access_level.as_ref(),
        ctx.defaults.access_level,
    );
    Some((
        Pv {
            name: full,
            tag,
            pv_type,
            boolean,
            choices: choices_out,
            meta: PvMeta::new(PvMetaFields {
                units: raw.units.map(String::into_boxed_str),
                precision,
                description: raw.description.map(String::into_boxed_str),
                display: display.map(Box::new),
                control: control.map(Box::new),
                value_alarm: value_alarm.map(Box::new),
                alarms: alarm_refs.iter().map(|(r, _)| r.clone()).collect(),
                alarm_severity,
            }),
            write,
            timestamp: raw.timestamp.unwrap_or(ctx.defaults.timestamp),
            acknowledge: raw.acknowledge.as_ref().is_none_or(|a| *a.get_ref()),
            subscribe,
            access_group,
            access_level,
            buffered: raw
                .buffered
                .as_ref()
                .map_or(ctx.defaults.buffered, |b| *b.get_ref()),
            location,
        },
        name_spanned.span(),
        alarm_refs,
    ))
}

fn write_mode(
    v: &mut Validator<'_>,
    ctx: &PvContext<'_>,
    p: &str,
    raw: &RawPv,
    table_span: Span<usize>,
) -> Option<WriteMode> {
    let mode = raw
        .write_mode
        .as_ref()
        .map_or(ctx.write_mode, |m| *m.get_ref());
    let mode_span = raw.write_mode.as_ref().map_or(table_span, |m| m.span());
    let mode_name = match mode {
        RawWriteMode::Write => "write",
        RawWriteMode::Write2 => "write2",
        RawWriteMode::Secured => "secured",
        RawWriteMode::Verified => "verified",
    };
    let lookup = |v: &mut Validator<'_>,
                  what: &str,
                  own: &Option<Spanned<String>>,
                  dflt: &Option<Spanned<String>>|
     -> Result<Option<User>, ()> {
        let (r, key) = match (own, dflt) {
            (Some(r), _) => (r, format!("{p}.{what}")),
            (None, Some(r)) => (r, format!("defaults.{what}")),
            (None, None) => return Ok(None),
        };
        match ctx.users.get(r.get_ref()) {
            Some(u) => Ok(Some(u.clone())),
            None => {
                // An unknown default is reported once, for [defaults].
                if own.is_some() {
                    v.err(r.span(), key, unknown_user(r.get_ref()));
                }
                Err(())
            }
        }
    };
    let user = lookup(v, "user", &raw.user, &ctx.user);
    let verifier = lookup(v, "verifier", &raw.verifier, &ctx.verifier);
    if mode != RawWriteMode::Verified {
        if let Some(ver) = &raw.verifier {
            v.err(
                ver.span(),
                format!("{p}.verifier"),
                format!("`verifier` applies only to write_mode `verified`, not `{mode_name}`"),
            );
        }
    }
    let (Ok(user), Ok(verifier)) = (user, verifier) else {
        return None;
    };
    match mode {
        RawWriteMode::Write => Some(WriteMode::Write { user }),
        RawWriteMode::Write2 => Some(WriteMode::Write2 { user }),
        RawWriteMode::Secured => match user {
            Some(user) => Some(WriteMode::Secured { user }),
            None => {
                v.err(
                    mode_span,
                    format!("{p}.write_mode"),
                    "write_mode `secured` needs `user` (the key of a [users.KEY] table)",
                );
                None
            }
        },
        RawWriteMode::Verified => match (user, verifier) {
            (Some(user), Some(verifier)) => {
                if user.key == verifier.key || user.identity == verifier.identity {
                    v.err(
                        mode_span,
                        format!("{p}.write_mode"),
                        format!(
                            "write_mode `verified` needs two different users, but user and verifier are both `{}`",
                            verifier.key
                        ),
                    );
                    None
                } else {
                    Some(WriteMode::Verified { user, verifier })
                }
            }
            (user, verifier) => {
                let missing = match (user.is_none(), verifier.is_none()) {
                    (true, true) => "`user` and `verifier`",
                    (true, false) => "`user`",
                    _ => "`verifier`",
                };
                v.err(
                    mode_span,
                    format!("{p}.write_mode"),
                    format!("write_mode `verified` needs {missing} (keys of [users.KEY] tables), and they must differ"),
                );
                None
            }
        },
    }
}
