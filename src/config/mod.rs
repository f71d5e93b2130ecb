//! The TOML configuration: schema, defaults and validation.
//!
//! # Use
//! ```no_run
//! let config = mxpva::config::Config::load("config/demo.toml")?;
//! for pv in &config.pvs {
//!     println!("{} <- {}", pv.name, pv.tag);
//! }
//! # Ok::<(), mxpva::config::ConfigError>(())
//! ```
//! [`Config::load`] reads the file, deserializes it (each value checks itself: [`PvName`],
//! [`Tag`], [`PvType`], durations), then runs one validation pass that collects every
//! cross-field problem at once. On failure, [`ConfigError`] displays one line per problem:
//!
//! ```text
//! config/site.toml:12:1: pv[3].tga: unknown field `tga`, expected one of `name`, `tag`, ...
//! config/site.toml:20:15: pv[4].control: control.low (10) is greater than control.high (5)
//! ```
//! The position is `file:line:column` (1-based, columns in characters), then the key path
//! (`pv[N]` is the N-th `[[pv]]` table, counting from 1), then the problem. A config error
//! exits `mxpva` with [`EXIT_CONFIG`] (78, `EX_CONFIG` from sysexits.h), and so does a
//! missing or unreadable config file.
//!
//! # The file
//! Every table refuses unknown keys. `config/example.toml` shows every key, commented.
//!
//! - `[gateway]`: `endpoint` (default `http://localhost:5000`; `https://` turns TLS on),
//!   `api_key_env` (name of an environment variable) or `api_key_file` (path of a file
//!   holding the key; surrounding whitespace is trimmed). An API key written in the file
//!   itself (`api_key = ...`) is refused. `tls` (default: from the scheme; it must agree with
//!   it), `ca_file`, `server_name` (TLS name override), `client_name`, `connect_timeout`,
//!   `request_timeout`, `write_timeout` (how long a put waits for OnWriteComplete),
//!   `subscribe_chunk` (entries per SubscribeBulk), `buffered_interval` (the session's
//!   SetBufferedUpdateInterval, `"1s"`), `reconnect_initial`, `reconnect_max`
//!   (capped exponential backoff), `keepalive_interval` and `keepalive_timeout` (HTTP/2
//!   pings that find a gateway gone silent).
//! - Durations are strings with a unit: `"250ms"`, `"5s"`, `"1.5s"`, `"2m"`, `"1h"`. A bare
//!   number is refused; each is longer than zero and at most 24 hours.
//! - Relative paths (`api_key_file`, `ca_file`, `password_file`) are relative to the
//!   directory of the config file.
//! - `[server]`: `interfaces` (IP addresses), `tcp_port`, `udp_port`, `beacon_destinations`
//!   (IP or IP:port), `auto_beacon`. Each is optional: when absent, the PVAccess server takes
//!   the value from `EPICS_PVAS_INTF_ADDR_LIST`, `EPICS_PVAS_SERVER_PORT`,
//!   `EPICS_PVAS_BROADCAST_PORT`, `EPICS_PVAS_BEACON_ADDR_LIST` and
//!   `EPICS_PVAS_AUTO_BEACON_ADDR_LIST`, then from the pvxs defaults. The config only holds
//!   the `Option`s; the bridge applies the fallback.
//! - `[defaults]`: `prefix` (joined in front of every `[[pv]] name`), `writable` (false),
//!   `write_mode` (`write`), `user`, `verifier`, `timestamp` (`source`), `boolean`
//!   (`enum`: NTEnum, or `bool`: NTScalar bool), `boolean_choices` (`["False", "True"]`,
//!   the words System Platform itself shows for a Boolean), `subscribe` (`always`),
//!   `linger` (`"30s"`), see [`Subscribe`], and `buffered` (false).
//! - `[users.KEY]`: an identity for secured and verified writes, referred to by `KEY` from
//!   `user = "KEY"` and `verifier = "KEY"`. Either `name` (an ArchestrA user, authenticated
//!   with `password_env` or `password_file`) or `id` (an MXAccess user id already known).
//! - `[limits]`: caps on what a peer sizes (see [`Limits`]): `max_array_length`,
//!   `max_string_length`, `max_puts_queued`, `max_puts_per_pv`, `max_puts_in_flight`,
//!   `max_alarms`, `max_table_rows`, `max_buffered_samples` (samples taken from one
//!   OnBufferedDataChange, 1,000); each 1 to 100,000,000.
//! - `[[pv]]`: `name`, `tag` (`Object.Attribute`, `Object.Attribute[]` for a whole array,
//!   `Object.Attribute[N]` for element N from 1), `type` (see [`PvType`]; absent means "as
//!   the gateway reports it"), `units`, `precision`, `description`, `display = { low, high }`,
//!   `control = { low, high, min_step }`, `value_alarm = { active, lolo, low, high, hihi,
//!   hysteresis, lolo_severity, low_severity, high_severity, hihi_severity }`, `writable`,
//!   `write_mode` (`write`, `write2` (with the PV's timestamp), `secured` (needs `user`),
//!   `verified` (needs `user` and a different `verifier`)), `timestamp` (`source` or
//!   `receive`), `choices` (two NTEnum choices for a Boolean, false first), `alarms`
//!   (System Platform alarm references the PV carries besides those found by name),
//!   `acknowledge` (serve the `:ACK` companion PV; default true), `alarm_severity`
//!   (`priority` or `kind`: overrides `[alarms] severity` for the PV's alarms),
//!   `subscribe` (`always` or `on_demand`) and `linger` (on demand only), see [`Subscribe`],
//!   `buffered` (advised as a buffered item: every sample, each its own update).
//! - `[alarms]`: `enabled` (true), `filter_prefix` (""), `acknowledge` (true), `ack_suffix`
//!   (`:ACK`), `table` (`ALARMS:ACTIVE` after the prefix; `""` for none),
//!   `returned_unacked` (`none` or `minor`), `priorities` (`[{ from, to, severity }]`,
//!   non-overlapping, within 0 to 999; default 1-500 major, 501-999 minor), `severity`
//!   (see [`SeverityScheme`]: `priority`, the default, or `kind`).
//! - `[[alarm_pv]]`: `name`, `alarms` (references), `type` (`enum` or `int32`),
//!   `description`, `acknowledge`, `alarm_severity`.
//! - `[status]`: `prefix` of the status PVs (default `[defaults] prefix` + `mxpva:`;
//!   `""` serves none). `[log]`: `format` (`text` or `json`). See `operate.rs`.

mod discover;
mod discover_reload;
mod gateway;
mod location;
mod operate;
mod pv_meta;
mod raw;
mod report;
mod types;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use discover::{
    check_glob, check_template, expand_template, Candidate, DiscoverRule, GalaxyAccess, Merged,
    RulePv, RulePvs, DEFAULT_NAME_TEMPLATE,
};
pub use gateway::{client_options, default_pv_type, ApiKeyError};
pub use location::Location;
pub use operate::{Log, LogFormat, Status, DEFAULT_STATUS_SUFFIX, STATUS_PVS};
pub use pv_meta::{PvMeta, PvMetaFields};
pub use types::{PvName, PvType, ScalarType, SecretString, Tag, TagIndex};

/// The exit code of `mxpva` for any configuration error (`EX_CONFIG`).
pub const EXIT_CONFIG: i32 = 78;

/// `[gateway] endpoint` when absent.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:5000";
/// `[gateway] client_name` when absent.
pub const DEFAULT_CLIENT_NAME: &str = "mxpva";
/// `[gateway] connect_timeout` when absent.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `[gateway] request_timeout` when absent.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `[gateway] write_timeout` when absent.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// `[gateway] buffered_interval` when absent.
pub const DEFAULT_BUFFERED_INTERVAL: Duration = Duration::from_secs(1);

/// `[gateway] subscribe_chunk` when absent.
pub const DEFAULT_SUBSCRIBE_CHUNK: usize = 500;
/// `[gateway] reconnect_initial` when absent.
pub const DEFAULT_RECONNECT_INITIAL: Duration = Duration::from_millis(500);
/// `[gateway] reconnect_max` when absent.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(30);
/// `[gateway] keepalive_interval` when absent.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_millis(250);
/// `[gateway] keepalive_timeout` when absent. With the interval, a gateway that stops
/// answering is found within 1.25 s.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);
/// `[alarms] ack_suffix` when absent: the companion PV that acknowledges a PV's alarms.
pub const DEFAULT_ACK_SUFFIX: &str = ":ACK";
/// `[alarms] table` when absent, after the `[defaults] prefix`.
pub const DEFAULT_ALARM_TABLE: &str = "ALARMS:ACTIVE";
// The two defaults above are PV names: checked while compiling.
const _: () =
    assert!(PvName::is_valid(DEFAULT_ACK_SUFFIX) && PvName::is_valid(DEFAULT_ALARM_TABLE));
/// `[alarms] priorities` when absent: priority 1 to 500 is MAJOR, 501 to 999 MINOR.
pub const DEFAULT_PRIORITY_BANDS: [PriorityBand; 2] = [
    PriorityBand {
        from: 1,
        to: 500,
        severity: Severity::Major,
    },
    PriorityBand {
        from: 501,
        to: 999,
        severity: Severity::Minor,
    },
];
/// The priorities System Platform uses (1 is the most urgent; some pages allow 0).
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = 0..=999;

/// `linger` when neither the `[[pv]]` nor `[defaults]` sets it.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(30);

/// `[defaults] boolean_choices` when absent: the false choice, then the true one.
pub const DEFAULT_BOOLEAN_CHOICES: [&str; 2] = ["False", "True"];

/// A loaded and validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub gateway: Gateway,
    pub server: Server,
    pub defaults: Defaults,
    /// `[users.KEY]` tables, by key.
    pub users: BTreeMap<String, User>,
    /// `[[pv]]` tables, in file order, with `[defaults]` applied. Shared (`Arc`) with the
    /// bridge, which serves each PV from this one copy of its config.
    pub pvs: Vec<std::sync::Arc<Pv>>,
    /// `[alarms]`.
    pub alarms: Alarms,
    /// `[[alarm_pv]]` tables, in file order.
    pub alarm_pvs: Vec<AlarmPv>,
    /// `[limits]`.
    pub limits: Limits,
    /// `[status]`: the status PVs.
    pub status: Status,
    /// `[log]`.
    pub log: Log,
    /// `[access]`: the ACF that rules puts; `None`: every put is allowed.
    pub access: Option<AccessFile>,
    /// `[audit]`: the audit trail's file; `None`: the trail goes to the log only.
    pub audit: Option<AuditFile>,
    /// `[[discover]]` rules, in file order.
    pub discover: Vec<DiscoverRule>,
    /// What rule-made PVs are validated with ([`Config::rule_pvs`]).
    pub(crate) rule_ctx: std::sync::Arc<validate::RuleContext>,
}

/// `[access]`: an EPICS access security configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessFile {
    /// Relative paths are resolved against the config file's directory.
    pub file: PathBuf,
    /// Where `file` is set: `file:line:column`.
    pub location: String,
}

/// `[audit]`: the file the audit trail is appended to (JSON Lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFile {
    /// Relative paths are resolved against the config file's directory.
    pub file: PathBuf,
}

/// The access security group of a PV without `access_group`.
pub const DEFAULT_ACCESS_GROUP: &str = "DEFAULT";

/// `[limits]`: caps on everything a peer (a PVAccess client or the gateway) sizes. Past a
/// cap the request or the value is refused with a message that names the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Elements in one array value: from the gateway (a sparse array's total length
    /// included) or in a put.
    pub max_array_length: usize,
    /// Bytes (UTF-8) in one string value, from the gateway or in a put.
    pub max_string_length: usize,
    /// Puts received from PVAccess clients and not yet taken up by the bridge.
    pub max_puts_queued: usize,
    /// Puts waiting for System Platform's confirmation on one PV.
    pub max_puts_per_pv: usize,
    /// Puts waiting for System Platform's confirmation in all.
    pub max_puts_in_flight: usize,
    /// Active alarms held from the alarm feed.
    pub max_alarms: usize,
    /// Rows in the active-alarm table.
    pub max_table_rows: usize,
    /// Samples taken from one OnBufferedDataChange; past it the oldest are dropped.
    pub max_buffered_samples: usize,
}

impl Limits {
    /// Every cap when `[limits]` does not set it.
    pub const DEFAULT: Limits = Limits {
        max_array_length: 100_000,
        max_string_length: 65_536,
        max_puts_queued: 4_096,
        max_puts_per_pv: 64,
        max_puts_in_flight: 1_024,
        max_alarms: 100_000,
        max_table_rows: 10_000,
        max_buffered_samples: 1_000,
    };
    /// The largest value any cap accepts.
    pub const CEILING: usize = 100_000_000;
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// `[alarms]`: how System Platform alarms reach PVAccess.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarms {
    /// Follow the gateway's alarm feed (StreamAlarms).
    pub enabled: bool,
    /// StreamAlarms `alarm_filter_prefix` (on the full reference; empty = every alarm).
    pub filter_prefix: String,
    /// Serve `:ACK` companion PVs (each PV may turn its own off).
    pub acknowledge: bool,
    /// The companion PV's name is the PV's name and this suffix.
    pub ack_suffix: String,
    /// The active-alarm NTTable's full name; `None` when `table = ""`.
    pub table: Option<PvName>,
    /// The severity of an alarm that returned to normal but is not acknowledged yet:
    /// `None` (NO_ALARM) or `Minor`.
    pub returned_unacked: Severity,
    /// Priority to severity; a priority no band covers is MAJOR.
    pub priorities: Vec<PriorityBand>,
    /// How an active alarm's severity is chosen, unless a PV's `alarm_severity` says.
    pub severity: SeverityScheme,
    /// The ACF group that rules puts to every `:ACK` PV.
    pub access_group: std::sync::Arc<str>,
}

/// How the severity of an active System Platform alarm is chosen (`[alarms] severity`,
/// `alarm_severity` on a `[[pv]]` or `[[alarm_pv]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeverityScheme {
    /// From the priority, by `[alarms] priorities`.
    #[default]
    Priority,
    /// From the alarm's kind as an EPICS record would: HiHi and LoLo MAJOR, Hi and Lo
    /// MINOR, rate of change and deviation MINOR, discrete MAJOR; any other kind by its
    /// priority.
    Kind,
}

impl SeverityScheme {
    /// The config words, in the order the schemes are listed.
    pub const WORDS: [&'static str; 2] = ["priority", "kind"];

    /// The scheme a config word names.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "priority" => Some(SeverityScheme::Priority),
            "kind" => Some(SeverityScheme::Kind),
            _ => None,
        }
    }

    /// Its config word.
    pub fn word(self) -> &'static str {
        match self {
            SeverityScheme::Priority => "priority",
            SeverityScheme::Kind => "kind",
        }
    }
}

impl Alarms {
    /// The severity an active alarm of `priority` shows.
    pub fn severity_of(&self, priority: i32) -> Severity {
        self.priorities
            .iter()
            .find(|b| (b.from..=b.to).contains(&priority))
            .map_or(Severity::Major, |b| b.severity)
    }
}

/// One band of `[alarms] priorities`: priorities `from..=to` show as `severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityBand {
    pub from: i32,
    pub to: i32,
    pub severity: Severity,
}

/// How an `[[alarm_pv]]` serves the alarm state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmPvType {
    /// NTEnum with the choices `NORMAL`, `UNACK_ALM`, `ACK_ALM`, `UNACK_RTN`.
    Enum,
    /// NTScalar int: 0 normal, 1 UNACK_ALM, 2 ACK_ALM, 3 UNACK_RTN.
    Int32,
}

/// `[[alarm_pv]]`: a PV of its own for alarms without a value PV.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmPv {
    /// The full PV name: prefix and name.
    pub name: PvName,
    /// The alarm references it carries (`Object.Alarm` or `Galaxy!Area.Object.Alarm`).
    pub alarms: Vec<String>,
    pub pv_type: AlarmPvType,
    pub description: Option<String>,
    /// Serve its `:ACK` companion PV.
    pub acknowledge: bool,
    /// Overrides `[alarms] severity` for its alarms.
    pub alarm_severity: Option<SeverityScheme>,
    /// The ACF group and level of the PV (it takes no puts; see docs/access-security.md).
    pub access_group: std::sync::Arc<str>,
    pub access_level: u8,
    /// Where the `[[alarm_pv]]` table is: `file:line:column`.
    pub location: String,
}

/// `[gateway]`: how to reach the MXAccess Gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    /// `http://host:port` or `https://host:port`.
    pub endpoint: String,
    pub api_key: ApiKeySource,
    pub tls: Tls,
    /// The name given to OpenSession and Register.
    pub client_name: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// How long a put waits for OnWriteComplete before it fails.
    pub write_timeout: Duration,
    /// Entries per SubscribeBulk call.
    pub subscribe_chunk: NonZeroUsize,
    /// SetBufferedUpdateInterval of the session: how often System Platform hands over
    /// the samples of buffered items (`buffered = true` PVs). MXAccess sets it per
    /// server handle, so it is one for the whole session.
    pub buffered_interval: Duration,
    /// First reconnect delay; doubled after each failure up to `reconnect_max`.
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// How often to ping the gateway's connection (HTTP/2 PING).
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection counts as lost.
    pub keepalive_timeout: Duration,
}

/// Where the API key comes from. The key itself is read only by [`ApiKeySource::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    /// No key: for a gateway with authentication disabled (development only).
    None,
    /// The name of an environment variable.
    Env(String),
    /// A file holding the key (resolved against the config file's directory).
    File(PathBuf),
}

/// Why an API key or a password could not be read. Never holds the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("environment variable {0} is empty")]
    EnvEmpty(String),
    #[error("cannot read {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is empty")]
    FileEmpty(PathBuf),
}

fn read_secret_env(var: &str) -> Result<SecretString, SecretError> {
    match std::env::var(var) {
        Ok(v) if v.trim().is_empty() => Err(SecretError::EnvEmpty(var.to_string())),
        Ok(v) => Ok(SecretString::new(v.trim())),
        Err(_) => Err(SecretError::EnvMissing(var.to_string())),
    }
}

fn read_secret_file(path: &Path) -> Result<SecretString, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
        path: path.to_path_buf(),
        source,
    })?;
    if text.trim().is_empty() {
        return Err(SecretError::FileEmpty(path.to_path_buf()));
    }
    Ok(SecretString::new(text.trim()))
}

impl ApiKeySource {
    /// Reads the key now. `Ok(None)` for [`ApiKeySource::None`].
    pub fn load(&self) -> Result<Option<SecretString>, SecretError> {
        match self {
            ApiKeySource::None => Ok(None),
            ApiKeySource::Env(var) => read_secret_env(var).map(Some),
            ApiKeySource::File(path) => read_secret_file(path).map(Some),
        }
    }
}

impl fmt::Display for ApiKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiKeySource::None => f.write_str("none"),
            ApiKeySource::Env(v) => write!(f, "env {v}"),
            ApiKeySource::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

/// TLS toward the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// On for `https://` endpoints.
    pub enabled: bool,
    /// A CA bundle (PEM) to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// The name to verify in the server certificate, instead of the endpoint's host.
    pub server_name: Option<String>,
}

/// `[server]`: the PVAccess server. `None` means "from `EPICS_PVAS_*`, then pvxs defaults".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Server {
    /// `EPICS_PVAS_INTF_ADDR_LIST`.
    pub interfaces: Option<Vec<std::net::IpAddr>>,
    /// `EPICS_PVAS_SERVER_PORT`.
    pub tcp_port: Option<u16>,
    /// `EPICS_PVAS_BROADCAST_PORT`.
    pub udp_port: Option<u16>,
    /// `EPICS_PVAS_BEACON_ADDR_LIST`: `IP` or `IP:port`.
    pub beacon_destinations: Option<Vec<String>>,
    /// `EPICS_PVAS_AUTO_BEACON_ADDR_LIST`.
    pub auto_beacon: Option<bool>,
}

/// `[defaults]`, as applied to every `[[pv]]`. Kept for display; [`Pv`] already has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub prefix: String,
    pub writable: bool,
    pub timestamp: TimestampSource,
    pub boolean: BooleanRepr,
    /// Shared by every PV that takes them.
    pub boolean_choices: std::sync::Arc<[String; 2]>,
    /// `subscribe` for the PVs that do not set it.
    pub subscribe: Subscribe,
    /// `linger` for the on-demand PVs that do not set it (also when `subscribe` is
    /// `always` here: a PV that asks for `on_demand` takes it).
    pub linger: Duration,
    pub access_group: std::sync::Arc<str>,
    pub access_level: u8,
    /// `buffered` for the PVs that do not set it.
    pub buffered: bool,
}

/// When a PV's tag is advised at the gateway (`subscribe`, `linger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribe {
    /// From start to stop, watched or not (`subscribe = "always"`, the default).
    Always,
    /// While PVAccess clients watch it (`subscribe = "on_demand"`): advised when its
    /// first client connects, un-advised `linger` after its last client leaves.
    OnDemand {
        /// How long the tag stays advised after the last client left; a client that
        /// comes back within it finds the PV served as it was.
        linger: Duration,
    },
}

impl Subscribe {
    /// The config words of the modes.
    pub const WORDS: [&'static str; 2] = ["always", "on_demand"];

    pub fn is_on_demand(self) -> bool {
        matches!(self, Subscribe::OnDemand { .. })
    }
}

/// Where a PV's `timeStamp` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimestampSource {
    /// The source time that MXAccess reports with the value.
    Source,
    /// The time the bridge received the value.
    Receive,
}

/// How a Boolean attribute is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BooleanRepr {
    /// NTEnum with two choices.
    Enum,
    /// NTScalar bool.
    Bool,
}

/// An alarm severity (`value_alarm` limits, `[alarms]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    None,
    Minor,
    Major,
    Invalid,
}

/// `[users.KEY]`: an identity that secured and verified writes act as. Its fields are
/// [`UserData`]'s; one copy is shared by every PV that writes as it (a PV's
/// [`WriteMode`] is one pointer per user: issue 23, memory per PV).
#[derive(Clone, PartialEq, Eq)]
pub struct User(std::sync::Arc<UserData>);

/// What a [`User`] is.
#[derive(Debug, PartialEq, Eq)]
pub struct UserData {
    /// The `KEY` of `[users.KEY]`.
    pub key: String,
    pub identity: Identity,
}

impl User {
    pub fn new(key: String, identity: Identity) -> Self {
        User(std::sync::Arc::new(UserData { key, identity }))
    }
}

impl std::ops::Deref for User {
    type Target = UserData;

    fn deref(&self) -> &UserData {
        &self.0
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("key", &self.key)
            .field("identity", &self.identity)
            .finish()
    }
}

/// How the bridge obtains an MXAccess user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// AuthenticateUser(name, password) at session start.
    Credentials {
        name: String,
        password: PasswordSource,
    },
    /// A user id already known.
    Id(i32),
}

/// Where a password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
}

impl PasswordSource {
    /// Reads the password now.
    pub fn load(&self) -> Result<SecretString, SecretError> {
        match self {
            PasswordSource::Env(v) => read_secret_env(v),
            PasswordSource::File(p) => read_secret_file(p),
        }
    }
}

/// One `[[pv]]`, with `[defaults]` applied.
///
/// What the bridge reads on every value and put is inline; what most PVs leave unset
/// (metadata, limits, alarm references) is in [`Pv::meta`], boxed and absent when none
/// is set: every PV's config is held for as long as it is served (issue 23: memory per PV).
#[derive(Debug, Clone)]
pub struct Pv {
    /// The full PV name: prefix and name.
    pub name: PvName,
    pub tag: Tag,
    /// The type override; `None` serves the type the gateway reports.
    pub pv_type: Option<PvType>,
    /// How a Boolean is served when `pv_type` is `None` (from `[defaults] boolean`).
    pub boolean: BooleanRepr,
    /// NTEnum choices for a Boolean: false first.
    pub choices: std::sync::Arc<[String; 2]>,
    /// Its rarely set parts: units, description, limits, alarm references.
    pub meta: PvMeta,
    /// `None` for a read-only PV.
    pub write: Option<WriteMode>,
    pub timestamp: TimestampSource,
    /// Serve the `:ACK` companion PV when the PV carries alarms.
    pub acknowledge: bool,
    /// When its tag is advised: always, or while clients watch it.
    pub subscribe: Subscribe,
    /// The ACF group (ASG) that rules its puts (`DEFAULT` unless set).
    pub access_group: std::sync::Arc<str>,
    /// Its access security level, 0 or 1 (as a record field's ASL).
    pub access_level: u8,
    /// Advised as a buffered item (AddBufferedItem): every sample System Platform takes,
    /// each posted as its own update, instead of the latest value at each data change.
    pub buffered: bool,
    /// Where the `[[pv]]` table is: `file:line:column`.
    pub location: Location,
}

impl Pv {
    /// True when a put is accepted.
    pub fn writable(&self) -> bool {
        self.write.is_some()
    }
}

/// `display` limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// `control` limits: puts outside `low..=high` are refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Control {
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub min_step: Option<f64>,
}

/// `value_alarm` limits and severities (NTScalar `valueAlarm`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueAlarm {
    pub active: bool,
    pub lolo: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub hihi: Option<f64>,
    pub hysteresis: f64,
    pub lolo_severity: Severity,
    pub low_severity: Severity,
    pub high_severity: Severity,
    pub hihi_severity: Severity,
}

/// How a put is sent, with the identities it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// Write(value, user_id); no user means user id 0 (no security).
    Write { user: Option<User> },
    /// Write2(value, timestamp of the put, user_id).
    Write2 { user: Option<User> },
    /// WriteSecured(value, user, verifier = user).
    Secured { user: User },
    /// WriteSecured(value, user, verifier), two different users.
    Verified { user: User, verifier: User },
}

impl WriteMode {
    /// `write`, `write2`, `secured` or `verified`.
    pub fn name(&self) -> &'static str {
        match self {
            WriteMode::Write { .. } => "write",
            WriteMode::Write2 { .. } => "write2",
            WriteMode::Secured { .. } => "secured",
            WriteMode::Verified { .. } => "verified",
        }
    }
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no position (a missing file).
    pub line: usize,
    pub column: usize,
    /// The dotted key path, such as `pv[3].control.low`, when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Everything wrong with a config file. Displays one [`Diagnostic`] per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The PV with this full name.
    pub fn pv(&self, name: &str) -> Option<&Pv> {
        self.pvs
            .iter()
            .find(|p| p.name.as_str() == name)
            .map(|p| &**p)
    }
}
