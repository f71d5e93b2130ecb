//! `[status]` (the status PVs) and `[log]` (the log format): how mxpva is operated.
//!
//! ```toml
//! [status]
//! prefix = "PLANT:mxpva:"   # default: [defaults] prefix + "mxpva:"; "" serves none
//!
//! [log]
//! format = "json"           # or "text" (the default); `mxpva run --log-format` wins
//! ```

use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::types::{PvName, PvPrefix};

/// The status PVs the bridge serves under `[status] prefix`, in the order `mxpva check`
/// lists them. The names of issue 14 are an interface: never rename one.
pub const STATUS_PVS: &[&str] = &[
    "Gateway",
    "Session",
    "Reconnects",
    "PVs",
    "PVs:Invalid",
    "Updates:Rate",
    "Updates:Count",
    "Updates:Coalesced",
    "Updates:BufferedDropped",
    "Puts:Rate",
    "Puts:Count",
    "Puts:Failed",
    "Puts:Queued",
    "Puts:InFlight",
    "AlarmFeed",
    "Clients",
    "Clients:Table",
    "Config",
    "Version",
    "Uptime",
];
const _: () = {
    // Each is a PV name: checked while compiling.
    let mut rest = STATUS_PVS;
    while let [name, tail @ ..] = rest {
        assert!(PvName::is_valid(name));
        rest = tail;
    }
};

/// What `[status] prefix` adds to `[defaults] prefix` when absent.
pub const DEFAULT_STATUS_SUFFIX: &str = "mxpva:";
const _: () = assert!(PvName::is_valid(DEFAULT_STATUS_SUFFIX));

/// `[status]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStatus {
    #[serde(default)]
    pub prefix: Option<Spanned<PvPrefix>>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    #[serde(default)]
    pub format: LogFormat,
}

/// `[status]`: where the status PVs are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The prefix of every status PV; `None` when `prefix = ""` turns them off.
    pub prefix: Option<PvName>,
}

impl Status {
    /// The full name of the status PV `name` (one of [`STATUS_PVS`], or a fault PV
    /// added at run time); `None` when status PVs are off.
    pub fn pv_name(&self, name: &str) -> Option<String> {
        self.prefix.as_ref().map(|p| format!("{p}{name}"))
    }

    /// Every status PV's full name, in [`STATUS_PVS`] order (empty when off).
    pub fn pv_names(&self) -> Vec<String> {
        STATUS_PVS.iter().filter_map(|n| self.pv_name(n)).collect()
    }
}

/// `[log]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Log {
    pub format: LogFormat,
}

/// How log lines are written: `text` for people, `json` (one object per line, every
/// structured field a key) for a log collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format `{other}`: use `text` or `json`"
            )),
        }
    }
}

/// `[status]` with its default, checked: each full status PV name must be a PV name.
/// Problems are `(span, key, message)`.
pub(crate) fn status(
    raw: RawStatus,
    defaults_prefix: &PvName,
) -> (Status, Vec<(std::ops::Range<usize>, String, String)>) {
    let mut problems = Vec::new();
    let (prefix, span) = match raw.prefix {
        Some(p) => {
            let span = p.span();
            (p.into_inner().0, span)
        }
        None => (
            PvName::with_prefix(defaults_prefix, &PvName::from_const(DEFAULT_STATUS_SUFFIX)),
            0..0,
        ),
    };
    if prefix.as_str().is_empty() {
        return (Status { prefix: None }, problems);
    }
    let longest = STATUS_PVS.iter().map(|n| n.len()).max().unwrap_or(0);
    if prefix.as_str().len() + longest > PvName::MAX_LEN {
        problems.push((
            span,
            "status.prefix".to_string(),
            format!(
                "prefix `{prefix}` makes status PV names longer than {} characters",
                PvName::MAX_LEN
            ),
        ));
    }
    (
        Status {
            prefix: Some(prefix),
        },
        problems,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    const BASE: &str = "[defaults]\nprefix = \"P:\"\n[[pv]]\nname = \"X\"\ntag = \"A.B\"\n";

    fn load(extra: &str) -> Result<Config, String> {
        Config::from_str_at(&format!("{BASE}{extra}"), Path::new("t.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_status_prefix_defaults_after_the_pv_prefix_and_empty_turns_it_off() {
        let c = load("").unwrap();
        assert_eq!(
            c.status.pv_name("Gateway").as_deref(),
            Some("P:mxpva:Gateway")
        );
        assert_eq!(c.log.format, LogFormat::Text);
        let c = load("[status]\nprefix = \"GW1:\"\n[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(
            c.status.pv_name("PVs:Invalid").as_deref(),
            Some("GW1:PVs:Invalid")
        );
        assert_eq!(c.log.format, LogFormat::Json);
        let c = load("[status]\nprefix = \"\"\n").unwrap();
        assert_eq!(c.status.prefix, None);
        assert!(c.status.pv_names().is_empty());
    }

    #[test]
    fn bad_status_and_log_settings_are_named() {
        let e = load("[status]\nprefix = \"a b\"\n").unwrap_err();
        assert!(e.contains("status.prefix") && e.contains("space"), "{e}");
        let e = load("[log]\nformat = \"xml\"\n").unwrap_err();
        assert!(
            e.contains("log.format") && e.contains("unknown variant `xml`"),
            "{e}"
        );
        let e = load("[status]\nprefx = \"A:\"\n").unwrap_err();
        assert!(e.contains("unknown field `prefx`"), "{e}");
        let e = load("[[pv]]\nname = \"mxpva:Gateway\"\ntag = \"A.C\"\n").unwrap_err();
        assert!(
            e.contains("P:mxpva:Gateway") && e.contains("status PV"),
            "{e}"
        );
    }
}
