//! From the raw file to the public model: every cross-field check, all problems collected.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::ops::Range as Span;
use std::path::{Path, PathBuf};

use toml::Spanned;

mod alarms;

use super::location::SourceMap;
use super::raw::{RawConfig, RawControl, RawPv, RawRange, RawUser, RawValueAlarm, RawWriteMode};
use super::types::{PvName, PvType, ScalarType};
use super::{
    ApiKeySource, BooleanRepr, Config, ConfigError, Control, Defaults, Diagnostic, Gateway,
    Identity, Limits, PasswordSource, Pv, Range, Server, Tls, User, ValueAlarm, WriteMode,
};

/// The largest `subscribe_chunk` accepted.
const MAX_SUBSCRIBE_CHUNK: i64 = 100_000;
/// The largest `precision` accepted.
const MAX_PRECISION: i64 = 17;

struct Validator<'a> {
    map: SourceMap<'a>,
    file: &'a Path,
    diags: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn at(&self, span: &Span<usize>) -> String {
        let (l, c) = self.map.line_col(span.start);
        format!("{}:{l}:{c}", self.file.display())
    }

    fn err(&mut self, span: Span<usize>, key: impl Into<String>, message: impl Into<String>) {
        let (line, column) = self.map.line_col(span.start);
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            key: Some(key.into()),
            message: message.into(),
        });
    }

    /// Resolves a relative path against the config file's directory.
    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.file
                .parent()
                .map_or_else(|| p.to_path_buf(), |dir| dir.join(p))
        }
    }
}

pub(super) fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let map = SourceMap::new(text);
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let (line, column, key) = match e.span() {
                Some(span) => {
                    let (l, c) = map.line_col(span.start);
                    (l, c, map.key_path(span.start))
                }
                None => (0, 0, None),
            };
            let message = e.message().trim().replace('\n', " ");
            return Err(ConfigError {
                diagnostics: vec![Diagnostic {
                    file: file.to_path_buf(),
                    line,
                    column,
                    key,
                    message,
                }],
            });
        }
    };
    let mut v = Validator {
        map,
        file,
        diags: Vec::new(),
    };
    let config = build(&mut v, raw);
    if v.diags.is_empty() {
        Ok(config)
    } else {
        // In file order; problems at one position keep the order they were found in.
        v.diags.sort_by_key(|d| (d.line, d.column));
        Err(ConfigError {
            diagnostics: v.diags,
        })
    }
}

fn build(v: &mut Validator<'_>, raw: RawConfig) -> Config {
    let gateway = gateway(v, raw.gateway);
    let server = server(v, raw.server);
    let limits = limits(v, raw.limits);
    let users = raw
        .users
        .into_iter()
        .filter_map(|(key, u)| user(v, key.clone(), u).map(|u| (key, u)))
        .collect();
    let d = raw.defaults;
    let choices = choices(v, &d.boolean_choices, "defaults.boolean_choices")
        .unwrap_or_else(|| super::DEFAULT_BOOLEAN_CHOICES.map(String::from));
    let defaults = Defaults {
        prefix: d.prefix.0.as_str().to_string(),
        writable: d.writable,
        timestamp: d.timestamp,
        boolean: d.boolean,
        boolean_choices: choices,
    };
    let ctx = PvContext {
        prefix: d.prefix.0,
        defaults: &defaults,
        write_mode: *d.write_mode.get_ref(),
        user: d.user,
        verifier: d.verifier,
        users: &users,
    };
    for (key, span) in [
        ("defaults.user", &ctx.user),
        ("defaults.verifier", &ctx.verifier),
    ] {
        if let Some(u) = span {
            if !users.contains_key(u.get_ref()) {
                v.err(u.span(), key, unknown_user(u.get_ref()));
            }
        }
    }
    let mut pvs = Vec::new();
    let mut seen: HashMap<PvName, (Span<usize>, usize)> = HashMap::new();
    if raw.pv.is_empty() {
        v.diags.push(Diagnostic {
            file: v.file.to_path_buf(),
            line: 1,
            column: 1,
            key: None,
            message: "no [[pv]] tables: the config maps nothing".into(),
        });
    }
    let mut pv_alarms = Vec::new();
    for (i, entry) in raw.pv.into_iter().enumerate() {
        let n = i + 1;
        if let Some((pv, name_span, refs)) = pv(v, &ctx, n, entry) {
            if let Some((first, first_n)) = seen.get(&pv.name) {
                let msg = format!(
                    "duplicate PV name `{}`, first defined at {} (pv[{first_n}].name)",
                    pv.name,
                    v.at(first)
                );
                v.err(name_span.clone(), format!("pv[{n}].name"), msg);
            } else {
                seen.insert(pv.name.clone(), (name_span.clone(), n));
            }
            pv_alarms.push((format!("pv[{n}]"), name_span, refs));
            pvs.push(pv);
        }
    }
    let alarm_config = alarms::alarms(v, &ctx.prefix, raw.alarms);
    let mut alarm_pvs = Vec::new();
    let mut alarm_pv_claims = Vec::new();
    for (i, entry) in raw.alarm_pv.into_iter().enumerate() {
        if let Some((pv, name_span, refs)) = alarms::alarm_pv(v, &ctx.prefix, i + 1, entry) {
            alarm_pv_claims.push((format!("alarm_pv[{}]", i + 1), name_span, refs));
            alarm_pvs.push(pv);
        }
    }
    let claimed: Vec<alarms::Claimed<'_>> = pvs
        .iter()
        .map(|p| (&p.name, p.acknowledge))
        .zip(&pv_alarms)
        .chain(
            alarm_pvs
                .iter()
                .map(|p| (&p.name, p.acknowledge))
                .zip(&alarm_pv_claims),
        )
        .map(
            |((name, acknowledge), (key, name_span, refs))| alarms::Claimed {
                key: key.clone(),
                name,
                name_span: name_span.clone(),
                acknowledge,
                alarms: refs,
            },
        )
        .collect();
    alarms::cross_check(v, &alarm_config, &claimed);
    alarms::apply_acknowledge(&alarm_config, &mut pvs, &mut alarm_pvs);
    Config {
        path: v.file.to_path_buf(),
        gateway,
        server,
        defaults,
        users,
        pvs,
        alarms: alarm_config,
        alarm_pvs,
        limits,
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unknown_user(key: &str) -> String {
    format!("unknown user `{key}`: define it in a [users.{key}] table")
}

fn gateway(v: &mut Validator<'_>, g: super::raw::RawGateway) -> Gateway {
    if let Some(k) = &g.api_key {
        v.err(
            k.span(),
            "gateway.api_key",
            "an API key must not be written in the config file: name an environment variable \
             with `api_key_env` or a file with `api_key_file`",
        );
    }
    let api_key = match (&g.api_key_env, &g.api_key_file) {
        (Some(e), Some(_)) => {
            v.err(
                e.span(),
                "gateway.api_key_env",
                "set `api_key_env` or `api_key_file`, not both",
            );
            ApiKeySource::None
        }
        (Some(e), None) => {
            let name = e.get_ref();
            // Never repeat the value: it may be a key pasted into the wrong field.
            if name.starts_with("mxgw_") {
                v.err(
                    e.span(),
                    "gateway.api_key_env",
                    "`api_key_env` holds what looks like an API key: it takes the name of an \
                     environment variable that holds the key",
                );
            } else if !is_env_name(name) {
                v.err(
                    e.span(),
                    "gateway.api_key_env",
                    "`api_key_env` is not an environment variable name (ASCII letters, digits \
                     and `_`, not starting with a digit)",
                );
            }
            ApiKeySource::Env(name.clone())
        }
        (None, Some(f)) => ApiKeySource::File(v.resolve(f.get_ref())),
        (None, None) => ApiKeySource::None,
    };

    let endpoint = g.endpoint.get_ref().clone();
    let https = match endpoint.split_once("://") {
        Some((scheme, rest)) if scheme == "http" || scheme == "https" => {
            let host = rest.split('/').next().unwrap_or("");
            if host.is_empty() || host.starts_with(':') {
                v.err(
                    g.endpoint.span(),
                    "gateway.endpoint",
                    format!("endpoint `{endpoint}` has no host"),
                );
            }
            scheme == "https"
        }
        _ => {
            v.err(
                g.endpoint.span(),
                "gateway.endpoint",
                format!("endpoint `{endpoint}` must start with `http://` or `https://`"),
            );
            false
        }
    };
    let enabled = match &g.tls {
        Some(t) if *t.get_ref() && !https => {
            v.err(
                t.span(),
                "gateway.tls",
                "`tls = true` needs an `https://` endpoint",
            );
            true
        }
        Some(t) if !*t.get_ref() && https => {
            v.err(
                t.span(),
                "gateway.tls",
                "`tls = false` contradicts the `https://` endpoint: use `http://` for plaintext",
            );
            false
        }
        _ => https,
    };
    if !enabled {
        if let Some(c) = &g.ca_file {
            v.err(
                c.span(),
                "gateway.ca_file",
                "`ca_file` applies only with TLS (an `https://` endpoint)",
            );
        }
        if let Some(s) = &g.server_name {
            v.err(
                s.span(),
                "gateway.server_name",
                "`server_name` applies only with TLS (an `https://` endpoint)",
            );
        }
    }
    if let Some(s) = &g.server_name {
        if s.get_ref().trim().is_empty() {
            v.err(s.span(), "gateway.server_name", "`server_name` is empty");
        }
    }
    let tls = Tls {
        enabled,
        ca_file: g.ca_file.as_ref().map(|c| v.resolve(c.get_ref())),
        server_name: g.server_name.map(Spanned::into_inner),
    };
    if g.client_name.get_ref().trim().is_empty() {
        v.err(
            g.client_name.span(),
            "gateway.client_name",
            "`client_name` is empty",
        );
    }
    for (key, d) in [
        ("gateway.connect_timeout", &g.connect_timeout),
        ("gateway.request_timeout", &g.request_timeout),
        ("gateway.write_timeout", &g.write_timeout),
        ("gateway.reconnect_initial", &g.reconnect_initial),
        ("gateway.reconnect_max", &g.reconnect_max),
        ("gateway.keepalive_interval", &g.keepalive_interval),
        ("gateway.keepalive_timeout", &g.keepalive_timeout),
    ] {
        if d.get_ref().0.is_zero() {
            v.err(d.span(), key, "must be longer than zero");
        }
    }
    if g.reconnect_max.get_ref().0 < g.reconnect_initial.get_ref().0 {
        v.err(
            g.reconnect_max.span(),
            "gateway.reconnect_max",
            format!(
                "reconnect_max ({:?}) is shorter than reconnect_initial ({:?})",
                g.reconnect_max.get_ref().0,
                g.reconnect_initial.get_ref().0
            ),
        );
    }
    let chunk = *g.subscribe_chunk.get_ref();
    let subscribe_chunk = match usize::try_from(chunk).ok().and_then(NonZeroUsize::new) {
        Some(c) if chunk <= MAX_SUBSCRIBE_CHUNK => c,
        _ => {
            v.err(
                g.subscribe_chunk.span(),
                "gateway.subscribe_chunk",
                format!("subscribe_chunk is {chunk}, expected 1 to {MAX_SUBSCRIBE_CHUNK}"),
            );
            NonZeroUsize::MIN
        }
    };
    Gateway {
        endpoint,
        api_key,
        tls,
        client_name: g.client_name.into_inner(),
        connect_timeout: g.connect_timeout.into_inner().0,
        request_timeout: g.request_timeout.into_inner().0,
        write_timeout: g.write_timeout.into_inner().0,
        subscribe_chunk,
        reconnect_initial: g.reconnect_initial.into_inner().0,
        reconnect_max: g.reconnect_max.into_inner().0,
        keepalive_interval: g.keepalive_interval.into_inner().0,
        keepalive_timeout: g.keepalive_timeout.into_inner().0,
    }
}

fn limits(v: &mut Validator<'_>, l: super::raw::RawLimits) -> Limits {
    let mut cap = |key: &str, value: &Spanned<i64>, default: usize| {
        let n = *value.get_ref();
        match usize::try_from(n) {
            Ok(n) if (1..=Limits::CEILING).contains(&n) => n,
            _ => {
                v.err(
                    value.span(),
                    format!("limits.{key}"),
                    format!("{key} is {n}, expected 1 to {}", Limits::CEILING),
                );
                default
            }
        }
    };
    let d = Limits::DEFAULT;
    Limits {
        max_array_length: cap("max_array_length", &l.max_array_length, d.max_array_length),
        max_string_length: cap(
            "max_string_length",
            &l.max_string_length,
            d.max_string_length,
        ),
        max_puts_queued: cap("max_puts_queued", &l.max_puts_queued, d.max_puts_queued),
        max_puts_per_pv: cap("max_puts_per_pv", &l.max_puts_per_pv, d.max_puts_per_pv),
        max_puts_in_flight: cap(
            "max_puts_in_flight",
            &l.max_puts_in_flight,
            d.max_puts_in_flight,
        ),
        max_alarms: cap("max_alarms", &l.max_alarms, d.max_alarms),
        max_table_rows: cap("max_table_rows", &l.max_table_rows, d.max_table_rows),
    }
}

fn server(v: &mut Validator<'_>, s: super::raw::RawServer) -> Server {
    let interfaces = s.interfaces.map(|list| {
        list.iter()
            .filter_map(|a| match a.get_ref().parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    v.err(
                        a.span(),
                        "server.interfaces",
                        format!("`{}` is not an IP address", a.get_ref()),
                    );
                    None
                }
            })
            .collect()
    });
    let beacon_destinations = s.beacon_destinations.map(|list| {
        list.iter()
            .map(|a| {
                let t = a.get_ref();
                if t.parse::<IpAddr>().is_err() && t.parse::<SocketAddr>().is_err() {
                    v.err(
                        a.span(),
                        "server.beacon_destinations",
                        format!("`{t}` is not an IP address or IP:port"),
                    );
                }
                t.clone()
            })
            .collect()
    });
    Server {
        interfaces,
        tcp_port: s.tcp_port,
        udp_port: s.udp_port,
        beacon_destinations,
        auto_beacon: s.auto_beacon,
    }
}

fn user(v: &mut Validator<'_>, key: String, u: Spanned<RawUser>) -> Option<User> {
    let span = u.span();
    let u = u.into_inner();
    let path = format!("users.{key}");
    if let Some(p) = &u.password {
        v.err(
            p.span(),
            format!("{path}.password"),
            "a password must not be written in the config file: use `password_env` or `password_file`",
        );
        return None;
    }
    let password = match (&u.password_env, &u.password_file) {
        (Some(e), Some(_)) => {
            v.err(
                e.span(),
                format!("{path}.password_env"),
                "set `password_env` or `password_file`, not both",
            );
            return None;
        }
        (Some(e), None) => {
            if !is_env_name(e.get_ref()) {
                v.err(
                    e.span(),
                    format!("{path}.password_env"),
                    "`password_env` is not an environment variable name (ASCII letters, digits \
                     and `_`, not starting with a digit)",
                );
                return None;
            }
            Some(PasswordSource::Env(e.get_ref().clone()))
        }
        (None, Some(f)) => Some(PasswordSource::File(v.resolve(f.get_ref()))),
        (None, None) => None,
    };
    let identity = match (&u.name, &u.id, password) {
        (Some(_), Some(id), _) => {
            v.err(
                id.span(),
                format!("{path}.id"),
                "set `name` or `id`, not both",
            );
            return None;
        }
        (Some(n), None, Some(password)) => {
            if n.get_ref().trim().is_empty() {
                v.err(n.span(), format!("{path}.name"), "user name is empty");
                return None;
            }
            Identity::Credentials {
                name: n.get_ref().clone(),
                password,
            }
        }
        (Some(n), None, None) => {
            v.err(
                n.span(),
                format!("{path}.name"),
                "a user `name` needs `password_env` or `password_file`",
            );
            return None;
        }
        (None, Some(id), None) => Identity::Id(*id.get_ref()),
        (None, Some(id), Some(_)) => {
            v.err(
                id.span(),
                format!("{path}.id"),
                "a user `id` takes no password: remove `password_env` / `password_file`",
            );
            return None;
        }
        (None, None, _) => {
            v.err(
                span,
                path,
                "a user needs `name` (with `password_env` or `password_file`) or `id`",
            );
            return None;
        }
    };
    Some(User { key, identity })
}

/// Checks a two-entry choice list.
fn choices(v: &mut Validator<'_>, c: &Spanned<Vec<String>>, key: &str) -> Option<[String; 2]> {
    let list = c.get_ref();
    let [first, second] = list.as_slice() else {
        v.err(
            c.span(),
            key,
            format!(
                "a Boolean needs exactly 2 choices (false first, then true), found {}",
                list.len()
            ),
        );
        return None;
    };
    if list.iter().any(|s| s.trim().is_empty()) {
        v.err(c.span(), key, "choices must not be empty strings");
        return None;
    }
    if first == second {
        v.err(
            c.span(),
            key,
            format!("both choices are `{first}`: they must differ"),
        );
        return None;
    }
    Some([first.clone(), second.clone()])
}

struct PvContext<'a> {
    prefix: PvName,
    defaults: &'a Defaults,
    write_mode: RawWriteMode,
    user: Option<Spanned<String>>,
    verifier: Option<Spanned<String>>,
    users: &'a std::collections::BTreeMap<String, User>,
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

fn pv(
    v: &mut Validator<'_>,
    ctx: &PvContext<'_>,
    n: usize,
    entry: Spanned<RawPv>,
) -> Option<(Pv, Span<usize>, alarms::AlarmRefs)> {
    let table_span = entry.span();
    let location = v.at(&table_span);
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
            if !t.element().is_numeric() {
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
    let alarm_severity = alarms::scheme(
        v,
        &format!("{p}.alarm_severity"),
        raw.alarm_severity.as_ref(),
    );

    // Booleans.
    let boolean = match pv_type {
        Some(PvType::Scalar(ScalarType::Bool)) => BooleanRepr::Bool,
        Some(PvType::Scalar(ScalarType::Enum)) => BooleanRepr::Enum,
        _ => ctx.defaults.boolean,
    };
    let choices_out = match &raw.choices {
        None => ctx.defaults.boolean_choices.clone(),
        Some(c) => {
            let applies = match pv_type {
                Some(PvType::Scalar(ScalarType::Enum)) => true,
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
    Some((
        Pv {
            name: full,
            tag,
            pv_type,
            boolean,
            choices: choices_out,
            units: raw.units,
            precision,
            description: raw.description,
            display,
            control,
            value_alarm,
            write,
            timestamp: raw.timestamp.unwrap_or(ctx.defaults.timestamp),
            alarms: alarm_refs.iter().map(|(r, _)| r.clone()).collect(),
            acknowledge: raw.acknowledge.as_ref().is_none_or(|a| *a.get_ref()),
            alarm_severity,
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
