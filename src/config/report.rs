//! The summary and mapping table that `mxpva check` prints.

use std::fmt::Write as _;

use super::{AlarmPvType, ApiKeySource, Config, Pv, PvType, Severity, TimestampSource, WriteMode};

fn fmt_limit(x: Option<f64>) -> String {
    x.map_or_else(String::new, |x| x.to_string())
}

/// The key's source and whether it is there now; never the key.
fn api_key_text(k: &ApiKeySource) -> String {
    match k {
        ApiKeySource::None => "none".into(),
        ApiKeySource::Env(v) if std::env::var_os(v).is_some() => format!("{k} (set)"),
        ApiKeySource::Env(_) => format!("{k} (not set)"),
        ApiKeySource::File(p) if p.is_file() => format!("{k} (present)"),
        ApiKeySource::File(_) => format!("{k} (missing)"),
    }
}

fn type_text(pv: &Pv) -> String {
    match pv.pv_type {
        Some(PvType::Enum) => {
            let [no, yes] = &*pv.choices;
            format!("enum[{no}|{yes}]")
        }
        Some(t) => t.to_string(),
        None => "auto".into(),
    }
}

fn write_text(pv: &Pv) -> String {
    match &pv.write {
        None => "-".into(),
        Some(WriteMode::Write { user: None }) => "write".into(),
        Some(WriteMode::Write2 { user: None }) => "write2".into(),
        Some(WriteMode::Write { user: Some(u) }) => format!("write({})", u.key),
        Some(WriteMode::Write2 { user: Some(u) }) => format!("write2({})", u.key),
        Some(WriteMode::Secured { user }) => format!("secured({})", user.key),
        Some(WriteMode::Verified { user, verifier }) => {
            format!("verified({}+{})", user.key, verifier.key)
        }
    }
}

fn limits_text(pv: &Pv) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &pv.meta.display {
        parts.push(format!(
            "display {}..{}",
            fmt_limit(d.low),
            fmt_limit(d.high)
        ));
    }
    if let Some(c) = &pv.meta.control {
        parts.push(format!(
            "control {}..{}",
            fmt_limit(c.low),
            fmt_limit(c.high)
        ));
    }
    if let Some(a) = &pv.meta.value_alarm {
        parts.push(format!(
            "alarm {}/{}/{}/{}",
            fmt_limit(a.lolo),
            fmt_limit(a.low),
            fmt_limit(a.high),
            fmt_limit(a.hihi)
        ));
    }
    parts.join(", ")
}

impl Config {
    /// The mapping table that `mxpva check` prints.
    pub fn mapping_table(&self) -> String {
        mapping_table(self)
    }

    /// Every PV name this config serves, sorted, without duplicates (`mxpva check
    /// --pv-names`): the `[[pv]]` and `[[alarm_pv]]` PVs, their `:ACK` PVs, the
    /// active-alarm table and the status PVs. Rule-made PVs need the Galaxy and are not
    /// in it (`mxpva discover` writes them out as `[[pv]]` tables first). Two shards
    /// behind one PVAccess gateway must share none of these names (docs/scale-out.md).
    pub fn served_pv_names(&self) -> Vec<String> {
        let a = &self.alarms;
        let ack = |name: &str, acknowledge: bool| {
            (a.enabled && a.acknowledge && acknowledge).then(|| format!("{name}{}", a.ack_suffix))
        };
        let mut names: Vec<String> = Vec::new();
        for pv in &self.pvs {
            names.push(pv.name.to_string());
            names.extend(ack(
                pv.name.as_str(),
                pv.acknowledge && !pv.meta.alarms.is_empty(),
            ));
        }
        for pv in &self.alarm_pvs {
            names.push(pv.name.to_string());
            names.extend(ack(pv.name.as_str(), pv.acknowledge));
        }
        names.extend(a.table.iter().map(|t| t.to_string()));
        names.extend(self.status.pv_names());
        names.sort();
        names.dedup();
        names
    }
}

/// A header with the gateway and server settings, then one row per PV.
fn mapping_table(c: &Config) -> String {
    let mut out = String::new();
    let g = &c.gateway;
    let opt = |o: Option<String>, env: &str| o.unwrap_or_else(|| format!("from {env}"));
    let _ = writeln!(out, "config:    {}", c.path.display());
    let _ = writeln!(
        out,
        "gateway:   {} (tls {}, api key {}, client {})",
        g.endpoint,
        if g.tls.enabled { "on" } else { "off" },
        api_key_text(&g.api_key),
        g.client_name
    );
    let _ = writeln!(
        out,
        "timeouts:  connect {:?}, request {:?}, write {:?}; subscribe chunk {}; buffered interval {:?}; reconnect {:?}..{:?}; keepalive {:?}/{:?}",
        g.connect_timeout, g.request_timeout, g.write_timeout, g.subscribe_chunk, g.buffered_interval, g.reconnect_initial, g.reconnect_max, g.keepalive_interval, g.keepalive_timeout
    );
    let l = &c.limits;
    let _ = writeln!(
        out,
        "limits:    array {} elements, string {} bytes; puts queued {}, per PV {}, in flight {}; alarms {}, table rows {}; buffered samples per event {}",
        l.max_array_length, l.max_string_length, l.max_puts_queued, l.max_puts_per_pv, l.max_puts_in_flight, l.max_alarms, l.max_table_rows, l.max_buffered_samples
    );
    let s = &c.server;
    let join = |l: &Vec<String>| l.join(" ");
    let _ = writeln!(
        out,
        "server:    interfaces {}; tcp port {}; udp port {}; beacons {}; auto beacon {}",
        opt(
            s.interfaces
                .as_ref()
                .map(|l| join(&l.iter().map(|a| a.to_string()).collect())),
            "EPICS_PVAS_INTF_ADDR_LIST"
        ),
        opt(s.tcp_port.map(|p| p.to_string()), "EPICS_PVAS_SERVER_PORT"),
        opt(
            s.udp_port.map(|p| p.to_string()),
            "EPICS_PVAS_BROADCAST_PORT"
        ),
        opt(
            s.beacon_destinations.as_ref().map(join),
            "EPICS_PVAS_BEACON_ADDR_LIST"
        ),
        opt(
            s.auto_beacon
                .map(|b| if b { "yes" } else { "no" }.to_string()),
            "EPICS_PVAS_AUTO_BEACON_ADDR_LIST"
        ),
    );
    let on_demand = c.pvs.iter().filter(|p| p.subscribe.is_on_demand()).count();
    let buffered = c.pvs.iter().filter(|p| p.buffered).count();
    let _ = match (on_demand, buffered) {
        (0, 0) => writeln!(out, "pvs:       {}", c.pvs.len()),
        (n, 0) => writeln!(out, "pvs:       {} ({n} subscribed on demand)", c.pvs.len()),
        (0, b) => writeln!(out, "pvs:       {} ({b} buffered)", c.pvs.len()),
        (n, b) => writeln!(
            out,
            "pvs:       {} ({n} subscribed on demand, {b} buffered)",
            c.pvs.len()
        ),
    };
    let _ = writeln!(out, "alarms:    {}", alarms_text(c));
    let _ = writeln!(
        out,
        "status:    {}; log {}",
        match &c.status.prefix {
            Some(p) => format!("{} PVs under {p} (listed last)", super::STATUS_PVS.len()),
            None => "off (no status PVs)".into(),
        },
        match c.log.format {
            super::LogFormat::Text => "text",
            super::LogFormat::Json => "json",
        }
    );
    out.push('\n');

    let header = [
        "PV", "TAG", "TYPE", "ACCESS", "WRITE", "TIME", "UNITS", "LIMITS",
    ];
    let rows: Vec<[String; 8]> = c
        .pvs
        .iter()
        .map(|pv| {
            [
                pv.name.to_string(),
                pv.tag.to_string(),
                type_text(pv),
                if pv.writable() { "rw" } else { "ro" }.into(),
                write_text(pv),
                match pv.timestamp {
                    TimestampSource::Source => "source",
                    TimestampSource::Receive => "receive",
                }
                .into(),
                pv.meta.units.as_deref().unwrap_or_default().to_string(),
                limits_text(pv),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                // Padded by hand: a width in `{:<w$}` above u16::MAX panics, and a
                // config may hold a cell that long.
                l.push_str(cell);
                let pad = w.saturating_sub(cell.chars().count()) + 2;
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    for pv in c.pvs.iter().filter(|p| !p.meta.alarms.is_empty()) {
        let _ = writeln!(
            out,
            "{} also carries {}",
            pv.name,
            pv.meta.alarms.join(", ")
        );
    }
    let overrides = c
        .pvs
        .iter()
        .map(|p| (&p.name, p.meta.alarm_severity))
        .chain(c.alarm_pvs.iter().map(|p| (&p.name, p.alarm_severity)));
    for (name, scheme) in overrides {
        if let Some(s) = scheme {
            let _ = writeln!(out, "{name} alarm severity by {}", s.word());
        }
    }
    for pv in c.pvs.iter().filter(|p| p.buffered) {
        let _ = writeln!(
            out,
            "{} buffered: every sample, at the session's buffered interval",
            pv.name
        );
    }
    super::discover::report(c, &mut out);
    for pv in &c.alarm_pvs {
        let _ = writeln!(
            out,
            "{} ({}) shows {}{}",
            pv.name,
            match pv.pv_type {
                AlarmPvType::Enum => "enum",
                AlarmPvType::Int32 => "int32",
            },
            pv.alarms.join(", "),
            if pv.acknowledge {
                ""
            } else {
                "; no acknowledgement PV"
            }
        );
    }
    for name in c.status.pv_names() {
        let _ = writeln!(out, "{name} (status)");
    }
    out
}

fn severity_text(s: Severity) -> &'static str {
    match s {
        Severity::None => "none",
        Severity::Minor => "minor",
        Severity::Major => "major",
        Severity::Invalid => "invalid",
    }
}

/// One line: the feed, the acknowledgement PVs, the table and the severities.
fn alarms_text(c: &Config) -> String {
    let a = &c.alarms;
    if !a.enabled {
        return "off (System Platform alarms are not followed)".into();
    }
    let bands: Vec<String> = a
        .priorities
        .iter()
        .map(|b| format!("{}-{} {}", b.from, b.to, severity_text(b.severity)))
        .collect();
    format!(
        "feed {}; acknowledge {}; table {}; returned unacknowledged {}; priorities {}; severity by {}",
        if a.filter_prefix.is_empty() {
            "all".to_string()
        } else {
            format!("prefix {}", a.filter_prefix)
        },
        if a.acknowledge {
            format!("with `{}` PVs", a.ack_suffix)
        } else {
            "off".into()
        },
        a.table.as_ref().map_or("none".into(), |t| t.to_string()),
        severity_text(a.returned_unacked),
        bands.join(", "),
        a.severity.word()
    )
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn names(text: &str) -> Vec<String> {
        Config::from_str_at(text, std::path::Path::new("t.toml"))
            .unwrap()
            .served_pv_names()
    }

    #[test]
    fn served_pv_names_hold_ack_pvs_the_table_and_the_status_pvs() {
        let base = "[defaults]\nprefix = \"P:\"\n[status]\nprefix = \"P:st:\"\n\
                    [[pv]]\nname = \"Level\"\ntag = \"T.Level\"\nalarms = [\"T.Level.HiHi\"]\n\
                    [[pv]]\nname = \"Speed\"\ntag = \"M.Speed\"\n\
                    [[alarm_pv]]\nname = \"Fault\"\nalarms = [\"M.Fault\"]\n";
        let all = names(&format!("{base}[alarms]\ntable = \"ALARMS:N\"\n"));
        for n in [
            "P:Level",
            "P:Level:ACK",
            "P:Speed",
            "P:Fault",
            "P:Fault:ACK",
            "P:ALARMS:N",
            "P:st:Gateway",
        ] {
            assert!(all.contains(&n.to_string()), "{n}: {all:?}");
        }
        assert!(!all.contains(&"P:Speed:ACK".to_string()), "{all:?}");
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(all, sorted);
        // No :ACK PVs, no table, no status PVs.
        let few = names(&format!(
            "{}[alarms]\nacknowledge = false\ntable = \"\"\n",
            base.replace("prefix = \"P:st:\"", "prefix = \"\"")
        ));
        assert_eq!(few, ["P:Fault", "P:Level", "P:Speed"]);
    }
}
