//! From the raw file to the public model: every cross-field check, all problems collected.

use std::collections::HashMap;
use std::ops::Range as Span;
use std::path::{Path, PathBuf};

use toml::Spanned;

mod access;
mod alarms;
#[cfg(test)]
mod buffered_tests;
mod discover;
pub(super) mod pv;
mod settings;
mod subscribe;

use super::location::{Location, SourceMap};
use super::raw::RawConfig;
use super::types::PvName;
use super::{Config, ConfigError, Defaults, Diagnostic};
pub(super) use discover::RuleContext;
use pv::{pv, PvContext};
use settings::{gateway, limits, server, user};

pub(super) struct Validator<'a> {
    pub(super) map: SourceMap<'a>,
    pub(super) file: &'a Path,
    /// `file` as locations show it, shared by them all.
    shown: std::sync::Arc<String>,
    pub(super) diags: Vec<Diagnostic>,
}

impl<'a> Validator<'a> {
    pub(super) fn new(map: SourceMap<'a>, file: &'a Path) -> Self {
        Validator {
            map,
            file,
            shown: std::sync::Arc::new(file.display().to_string()),
            diags: Vec::new(),
        }
    }

    pub(super) fn at(&self, span: &Span<usize>) -> String {
        self.location(span).to_string()
    }

    /// Where `span` starts, sharing the file's name with every other location.
    pub(super) fn location(&self, span: &Span<usize>) -> Location {
        let (l, c) = self.map.line_col(span.start);
        Location::new(self.shown.clone(), l, c)
    }

    pub(super) fn err(
        &mut self,
        span: Span<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
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

impl Config {
    /// Reads, deserializes and validates the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            diagnostics: vec![Diagnostic {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                key: None,
                message: match e.kind() {
                    std::io::ErrorKind::NotFound => "cannot read config file: no such file".into(),
                    _ => format!("cannot read config file: {e}"),
                },
            }],
        })?;
        Config::from_str_at(&text, path)
    }

    /// Deserializes and validates `text`, naming `path` in messages and resolving relative
    /// paths against its directory.
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigError> {
        parse(text, path)
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
    let mut v = Validator::new(map, file);
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
    let (subscribe, linger) = subscribe::defaults(v, d.subscribe.as_ref(), d.linger.as_ref());
    let defaults = Defaults {
        prefix: d.prefix.0.as_str().to_string(),
        writable: d.writable,
        timestamp: d.timestamp,
        boolean: d.boolean,
        boolean_choices: std::sync::Arc::new(choices),
        subscribe,
        linger,
        access_group: access::group(
            v,
            "defaults.access_group",
            d.access_group.as_ref(),
            &std::sync::Arc::from(super::DEFAULT_ACCESS_GROUP),
        ),
        access_level: access::level(v, "defaults.access_level", d.access_level.as_ref(), 0),
        buffered: d.buffered,
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
    let rules = discover::rules(v, &ctx, raw.discover);
    if raw.pv.is_empty() && rules.is_empty() {
        v.diags.push(Diagnostic {
            file: v.file.to_path_buf(),
            line: 1,
            column: 1,
            key: None,
            message: "no [[pv]] tables and no [[discover]] rules: the config maps nothing".into(),
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
            // Each PV's one copy, shared with the bridge (a `Vec<Pv>` mapped to `Arc`s
            // afterwards would keep its whole allocation: collected in place).
            pvs.push(std::sync::Arc::new(pv));
        }
    }
    let alarm_config = alarms::alarms(v, &ctx.prefix, raw.alarms);
    let access = access::access(v, raw.access);
    let audit = access::audit(v, raw.audit);
    let mut alarm_pvs = Vec::new();
    let mut alarm_pv_claims = Vec::new();
    for (i, entry) in raw.alarm_pv.into_iter().enumerate() {
        if let Some((pv, name_span, refs)) =
            alarms::alarm_pv(v, &ctx.prefix, &defaults, i + 1, entry)
        {
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
    let status = status(v, raw.status, &ctx.prefix, &pvs, &alarm_pvs);
    let rule_ctx = std::sync::Arc::new(discover::RuleContext {
        id: super::discover_reload::next_load_id(),
        file: v.file.to_path_buf(),
        // Only rule-made PVs need it: without rules the file's text is not kept.
        text: if rules.is_empty() {
            "".into()
        } else {
            v.map.text().into()
        },
        prefix: ctx.prefix.clone(),
        defaults: defaults.clone(),
        write_mode: ctx.write_mode,
        user: ctx.user.clone(),
        verifier: ctx.verifier.clone(),
        users: users.clone(),
    });
    // Held for as long as the config is: no room to spare (issue 23: memory per PV).
    pvs.shrink_to_fit();
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
        status,
        log: super::Log {
            format: raw.log.format,
        },
        access,
        audit,
        discover: rules,
        rule_ctx,
    }
}

/// `[status]`; a status PV name that a `[[pv]]` or `[[alarm_pv]]` also takes is refused.
fn status(
    v: &mut Validator<'_>,
    raw: super::operate::RawStatus,
    prefix: &PvName,
    pvs: &[std::sync::Arc<super::Pv>],
    alarm_pvs: &[super::AlarmPv],
) -> super::Status {
    let span = raw.prefix.as_ref().map_or(0..0, |p| p.span());
    let (status, problems) = super::operate::status(raw, prefix);
    for (span, key, message) in problems {
        v.err(span, key, message);
    }
    let names: std::collections::HashSet<String> = status.pv_names().into_iter().collect();
    let taken = pvs
        .iter()
        .map(|p| &p.name)
        .chain(alarm_pvs.iter().map(|p| &p.name));
    for name in taken {
        if names.contains(name.as_str()) {
            v.err(
                span.clone(),
                "status.prefix",
                format!("status PV `{name}` is also a mapped PV: choose another [status] prefix"),
            );
        }
    }
    status
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unknown_user(key: &str) -> String {
    format!("unknown user `{key}`: define it in a [users.{key}] table")
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
