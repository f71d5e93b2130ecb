//! `[gateway]`, `[server]`, `[limits]` and `[users.KEY]`: each checked on its own.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

use toml::Spanned;

use super::super::raw::RawUser;
use super::super::{ApiKeySource, Gateway, Identity, Limits, PasswordSource, Server, Tls, User};
use super::{is_env_name, Validator};

/// The longest timeout or delay accepted: a day. Longer ones mean a mistake, and near
/// `Duration::MAX` they would overflow the clock arithmetic of the link.
const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(24 * 3600); // 24 hours

/// The largest `subscribe_chunk` accepted.
const MAX_SUBSCRIBE_CHUNK: i64 = 100_000;

pub(super) fn gateway(v: &mut Validator<'_>, g: super::super::raw::RawGateway) -> Gateway {
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
        ("gateway.buffered_interval", &g.buffered_interval),
        ("gateway.reconnect_initial", &g.reconnect_initial),
        ("gateway.reconnect_max", &g.reconnect_max),
        ("gateway.keepalive_interval", &g.keepalive_interval),
        ("gateway.keepalive_timeout", &g.keepalive_timeout),
    ] {
        let d_value = d.get_ref().0;
        if d_value.is_zero() {
            v.err(d.span(), key, "must be longer than zero");
        } else if d_value > MAX_DURATION {
            v.err(
                d.span(),
                key,
                format!(
                    "{} is longer than 24 hours, the longest accepted",
                    humantime::format_duration(d_value)
                ),
            );
        }
    }
    // SetBufferedUpdateInterval takes whole milliseconds, more than zero.
    let buffered = g.buffered_interval.get_ref().0;
    if !buffered.is_zero() && buffered < Duration::from_millis(1) {
        v.err(
            g.buffered_interval.span(),
            "gateway.buffered_interval",
            "is shorter than 1ms, the shortest SetBufferedUpdateInterval takes",
        );
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
        buffered_interval: g.buffered_interval.into_inner().0,
        reconnect_initial: g.reconnect_initial.into_inner().0,
        reconnect_max: g.reconnect_max.into_inner().0,
        keepalive_interval: g.keepalive_interval.into_inner().0,
        keepalive_timeout: g.keepalive_timeout.into_inner().0,
    }
}

pub(super) fn limits(v: &mut Validator<'_>, l: super::super::raw::RawLimits) -> Limits {
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
        max_buffered_samples: cap(
            "max_buffered_samples",
            &l.max_buffered_samples,
            d.max_buffered_samples,
        ),
    }
}

pub(super) fn server(v: &mut Validator<'_>, s: super::super::raw::RawServer) -> Server {
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

pub(super) fn user(v: &mut Validator<'_>, key: String, u: Spanned<RawUser>) -> Option<User> {
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
    Some(User::new(key, identity))
}
