//! `mxpva discover`'s output: a config file whose rule-made PVs are `[[pv]]` tables.

use std::fmt::Write as _;

use toml::Value;

use crate::config::{Config, Merged, Pv, PvType, WriteMode};

fn string(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// One `[[pv]]` table for a rule-made PV: every key that makes it what it is, so that the
/// file means the same under `mxpva check` and `mxpva run`.
fn pv_table(out: &mut String, config: &Config, pv: &Pv, note: &str) {
    let prefix = &config.defaults.prefix;
    let name = pv
        .name
        .as_str()
        .strip_prefix(prefix.as_str())
        .unwrap_or(pv.name.as_str());
    let _ = writeln!(out, "\n# {}: {note}", pv.tag);
    out.push_str("[[pv]]\n");
    let _ = writeln!(out, "name = {}", string(name));
    let _ = writeln!(out, "tag = {}", string(pv.tag.as_str()));
    if let Some(t) = pv.pv_type {
        let _ = writeln!(out, "type = {}", string(&t.to_string()));
        if t == PvType::Enum && pv.choices != config.defaults.boolean_choices {
            let choices = Value::Array(pv.choices.iter().cloned().map(Value::String).collect());
            let _ = writeln!(out, "choices = {choices}");
        }
    }
    if let Some(u) = &pv.meta.units {
        let _ = writeln!(out, "units = {}", string(u));
    }
    if let Some(d) = &pv.meta.description {
        let _ = writeln!(out, "description = {}", string(d));
    }
    let _ = writeln!(out, "writable = {}", pv.writable());
    match &pv.write {
        None => {}
        Some(WriteMode::Write { user }) | Some(WriteMode::Write2 { user }) => {
            let _ = writeln!(
                out,
                "write_mode = {}",
                string(pv.write.as_ref().map_or("write", WriteMode::name))
            );
            if let Some(u) = user {
                let _ = writeln!(out, "user = {}", string(&u.key));
            }
        }
        Some(WriteMode::Secured { user }) => {
            let _ = writeln!(
                out,
                "write_mode = \"secured\"\nuser = {}",
                string(&user.key)
            );
        }
        Some(WriteMode::Verified { user, verifier }) => {
            let _ = writeln!(
                out,
                "write_mode = \"verified\"\nuser = {}\nverifier = {}",
                string(&user.key),
                string(&verifier.key)
            );
        }
    }
    if pv.timestamp != config.defaults.timestamp {
        let word = match pv.timestamp {
            crate::config::TimestampSource::Source => "source",
            crate::config::TimestampSource::Receive => "receive",
        };
        let _ = writeln!(out, "timestamp = {}", string(word));
    }
    if !pv.meta.alarms.is_empty() {
        let list = Value::Array(pv.meta.alarms.iter().cloned().map(Value::String).collect());
        let _ = writeln!(out, "alarms = {list}");
    }
    if !pv.acknowledge && config.alarms.acknowledge {
        out.push_str("acknowledge = false\n");
    }
    if let Some(s) = pv.meta.alarm_severity {
        let _ = writeln!(out, "alarm_severity = {}", string(s.word()));
    }
    if pv.subscribe != config.defaults.subscribe {
        match pv.subscribe {
            crate::config::Subscribe::Always => out.push_str("subscribe = \"always\"\n"),
            crate::config::Subscribe::OnDemand { linger } => {
                let _ = writeln!(
                    out,
                    "subscribe = \"on_demand\"\nlinger = \"{}ms\"",
                    linger.as_millis()
                );
            }
        }
    }
    if pv.access_group != config.defaults.access_group {
        let _ = writeln!(out, "access_group = {}", string(&pv.access_group));
    }
    if pv.access_level != config.defaults.access_level {
        let _ = writeln!(out, "access_level = {}", pv.access_level);
    }
}

/// The file `mxpva discover` prints: `base` (the config's own tables without
/// `[[discover]]`, or a `[gateway]` table), then one `[[pv]]` table per rule-made PV of
/// `merged`, then what was skipped as comments.
pub fn render(
    config: &Config,
    base: &toml::Table,
    merged: &Merged,
    header: &[String],
    skipped: &[String],
) -> String {
    let mut out = String::new();
    for h in header {
        let _ = writeln!(out, "# {h}");
    }
    out.push('\n');
    out.push_str(&toml::to_string(base).unwrap_or_default());
    let rule_made = merged.pvs.iter().skip(merged.explicit).zip(&merged.notes);
    for (pv, note) in rule_made {
        pv_table(&mut out, config, pv, note);
    }
    if !skipped.is_empty() {
        out.push_str("\n# Not mapped:\n");
        for s in skipped {
            let _ = writeln!(out, "#   {}", s.replace('\n', " "));
        }
    }
    out
}
