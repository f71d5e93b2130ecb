//! The file as serde reads it: every table denies unknown keys, every default is a named
//! function, and the positions that validation needs are kept as [`Spanned`].
//!
//! Nothing outside `config` sees these types: `validate` turns them into the public model.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::types::{Discarded, DurationValue, PvName, PvNamePart, PvPrefix, PvType, Tag};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub gateway: RawGateway,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub users: BTreeMap<String, Spanned<RawUser>>,
    #[serde(default)]
    pub pv: Vec<Spanned<RawPv>>,
    #[serde(default)]
    pub alarms: RawAlarms,
    #[serde(default)]
    pub alarm_pv: Vec<Spanned<RawAlarmPv>>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub status: super::operate::RawStatus,
    #[serde(default)]
    pub log: super::operate::RawLog,
    #[serde(default)]
    pub access: Option<Spanned<RawAccess>>,
    #[serde(default)]
    pub audit: Option<Spanned<RawAudit>>,
    #[serde(default)]
    pub discover: Vec<Spanned<RawDiscover>>,
}

/// `[access]`: the EPICS access security file (ACF) that rules puts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccess {
    pub file: Spanned<PathBuf>,
}

/// `[audit]`: where the audit trail of puts is appended (JSON Lines).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub file: Spanned<PathBuf>,
}

/// `[limits]`: caps on what a peer sizes. Each is a count; validation checks the range.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    #[serde(default = "default_max_array_length")]
    pub max_array_length: Spanned<i64>,
    #[serde(default = "default_max_string_length")]
    pub max_string_length: Spanned<i64>,
    #[serde(default = "default_max_puts_queued")]
    pub max_puts_queued: Spanned<i64>,
    #[serde(default = "default_max_puts_per_pv")]
    pub max_puts_per_pv: Spanned<i64>,
    #[serde(default = "default_max_puts_in_flight")]
    pub max_puts_in_flight: Spanned<i64>,
    #[serde(default = "default_max_alarms")]
    pub max_alarms: Spanned<i64>,
    #[serde(default = "default_max_table_rows")]
    pub max_table_rows: Spanned<i64>,
    #[serde(default = "default_max_buffered_samples")]
    pub max_buffered_samples: Spanned<i64>,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_array_length: default_max_array_length(),
            max_string_length: default_max_string_length(),
            max_puts_queued: default_max_puts_queued(),
            max_puts_per_pv: default_max_puts_per_pv(),
            max_puts_in_flight: default_max_puts_in_flight(),
            max_alarms: default_max_alarms(),
            max_table_rows: default_max_table_rows(),
            max_buffered_samples: default_max_buffered_samples(),
        }
    }
}

fn default_max_array_length() -> Spanned<i64> {
    unspanned(super::Limits::DEFAULT.max_array_length as i64)
}
fn default_max_string_length() -> Spanned<i64> {
    unspanned(super::Limits::DEFAULT.max_string_length as i64)
}
fn default_max_puts_queued() -> Spanned<i64> {
    unspanned(super::Limits::DEFAULT.max_puts_queued as i64)
}
fn default_max_puts_per_pv() -> Spanned<i64> {
    unspanned(super::Limits::DEFAULT.max_puts_per_pv as i64)
}
fn default_max_puts_in_flight() -> Spanned<i64> {
    unspanned(super::Limits::DEFAULT.max_puts_in_flight as i64)
}
fn default_max_alarms() -> Spanned<i64> {
    unspanned(super::Limits::DEFAULT.max_alarms as i64)
}
fn default_max_table_rows() -> Spanned<i64> {
    unspanned(super::Limits::DEFAULT.max_table_rows as i64)
}
fn default_max_buffered_samples() -> Spanned<i64> {
    unspanned(super::Limits::DEFAULT.max_buffered_samples as i64)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    #[serde(default = "default_endpoint")]
    pub endpoint: Spanned<String>,
    /// Refused in validation, without repeating the value.
    #[serde(default)]
    pub api_key: Option<Spanned<Discarded>>,
    #[serde(default)]
    pub api_key_env: Option<Spanned<String>>,
    #[serde(default)]
    pub api_key_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub tls: Option<Spanned<bool>>,
    #[serde(default)]
    pub ca_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub server_name: Option<Spanned<String>>,
    #[serde(default = "default_client_name")]
    pub client_name: Spanned<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Spanned<DurationValue>,
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Spanned<DurationValue>,
    #[serde(default = "default_write_timeout")]
    pub write_timeout: Spanned<DurationValue>,
    #[serde(default = "default_subscribe_chunk")]
    pub subscribe_chunk: Spanned<i64>,
    #[serde(default = "default_buffered_interval")]
    pub buffered_interval: Spanned<DurationValue>,
    #[serde(default = "default_reconnect_initial")]
    pub reconnect_initial: Spanned<DurationValue>,
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max: Spanned<DurationValue>,
    #[serde(default = "default_keepalive_interval")]
    pub keepalive_interval: Spanned<DurationValue>,
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout: Spanned<DurationValue>,
}

impl Default for RawGateway {
    fn default() -> Self {
        RawGateway {
            endpoint: default_endpoint(),
            api_key: None,
            api_key_env: None,
            api_key_file: None,
            tls: None,
            ca_file: None,
            server_name: None,
            client_name: default_client_name(),
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            write_timeout: default_write_timeout(),
            subscribe_chunk: default_subscribe_chunk(),
            buffered_interval: default_buffered_interval(),
            reconnect_initial: default_reconnect_initial(),
            reconnect_max: default_reconnect_max(),
            keepalive_interval: default_keepalive_interval(),
            keepalive_timeout: default_keepalive_timeout(),
        }
    }
}

/// Defaults carry an empty span: they are never the subject of a message about a position.
fn unspanned<T>(v: T) -> Spanned<T> {
    Spanned::new(0..0, v)
}

fn default_endpoint() -> Spanned<String> {
    unspanned(super::DEFAULT_ENDPOINT.to_string())
}
fn default_client_name() -> Spanned<String> {
    unspanned(super::DEFAULT_CLIENT_NAME.to_string())
}
fn default_connect_timeout() -> Spanned<DurationValue> {
    unspanned(DurationValue(super::DEFAULT_CONNECT_TIMEOUT))
}
fn default_request_timeout() -> Spanned<DurationValue> {
    unspanned(DurationValue(super::DEFAULT_REQUEST_TIMEOUT))
}
fn default_write_timeout() -> Spanned<DurationValue> {
    unspanned(DurationValue(super::DEFAULT_WRITE_TIMEOUT))
}
fn default_buffered_interval() -> Spanned<DurationValue> {
    unspanned(DurationValue(super::DEFAULT_BUFFERED_INTERVAL))
}
fn default_subscribe_chunk() -> Spanned<i64> {
    unspanned(super::DEFAULT_SUBSCRIBE_CHUNK as i64)
}
fn default_reconnect_initial() -> Spanned<DurationValue> {
    unspanned(DurationValue(super::DEFAULT_RECONNECT_INITIAL))
}
fn default_reconnect_max() -> Spanned<DurationValue> {
    unspanned(DurationValue(super::DEFAULT_RECONNECT_MAX))
}
fn default_keepalive_interval() -> Spanned<DurationValue> {
    unspanned(DurationValue(super::DEFAULT_KEEPALIVE_INTERVAL))
}
fn default_keepalive_timeout() -> Spanned<DurationValue> {
    unspanned(DurationValue(super::DEFAULT_KEEPALIVE_TIMEOUT))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    #[serde(default)]
    pub interfaces: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub tcp_port: Option<u16>,
    #[serde(default)]
    pub udp_port: Option<u16>,
    #[serde(default)]
    pub beacon_destinations: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub auto_beacon: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawWriteMode {
    Write,
    Write2,
    Secured,
    Verified,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    #[serde(default = "default_prefix")]
    pub prefix: PvPrefix,
    #[serde(default = "default_writable")]
    pub writable: bool,
    #[serde(default = "default_write_mode")]
    pub write_mode: Spanned<RawWriteMode>,
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    #[serde(default)]
    pub verifier: Option<Spanned<String>>,
    #[serde(default = "default_timestamp")]
    pub timestamp: super::TimestampSource,
    #[serde(default = "default_boolean")]
    pub boolean: super::BooleanRepr,
    #[serde(default = "default_choices")]
    pub boolean_choices: Spanned<Vec<String>>,
    #[serde(default)]
    pub subscribe: Option<Spanned<RawSubscribe>>,
    #[serde(default)]
    pub linger: Option<Spanned<DurationValue>>,
    #[serde(default)]
    pub access_group: Option<Spanned<String>>,
    #[serde(default)]
    pub access_level: Option<Spanned<i64>>,
    #[serde(default)]
    pub buffered: bool,
}

/// `subscribe = "always" | "on_demand"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawSubscribe {
    Always,
    OnDemand,
}

impl Default for RawDefaults {
    fn default() -> Self {
        RawDefaults {
            prefix: default_prefix(),
            writable: default_writable(),
            write_mode: default_write_mode(),
            user: None,
            verifier: None,
            timestamp: default_timestamp(),
            boolean: default_boolean(),
            boolean_choices: default_choices(),
            subscribe: None,
            linger: None,
            access_group: None,
            access_level: None,
            buffered: false,
        }
    }
}

fn default_prefix() -> PvPrefix {
    PvPrefix(PvName::empty())
}
fn default_writable() -> bool {
    false
}
fn default_write_mode() -> Spanned<RawWriteMode> {
    unspanned(RawWriteMode::Write)
}
fn default_timestamp() -> super::TimestampSource {
    super::TimestampSource::Source
}
fn default_boolean() -> super::BooleanRepr {
    super::BooleanRepr::Enum
}
fn default_choices() -> Spanned<Vec<String>> {
    unspanned(
        super::DEFAULT_BOOLEAN_CHOICES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub password_env: Option<Spanned<String>>,
    #[serde(default)]
    pub password_file: Option<Spanned<PathBuf>>,
    /// Refused in validation, without repeating the value.
    #[serde(default)]
    pub password: Option<Spanned<Discarded>>,
    #[serde(default)]
    pub id: Option<Spanned<i32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPv {
    #[serde(default)]
    pub name: Option<Spanned<PvName>>,
    #[serde(default)]
    pub tag: Option<Spanned<Tag>>,
    #[serde(default, rename = "type")]
    pub pv_type: Option<Spanned<PvType>>,
    #[serde(default)]
    pub units: Option<String>,
    #[serde(default)]
    pub precision: Option<Spanned<i64>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub display: Option<Spanned<RawRange>>,
    #[serde(default)]
    pub control: Option<Spanned<RawControl>>,
    #[serde(default)]
    pub value_alarm: Option<Spanned<RawValueAlarm>>,
    #[serde(default)]
    pub writable: Option<Spanned<bool>>,
    #[serde(default)]
    pub write_mode: Option<Spanned<RawWriteMode>>,
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    #[serde(default)]
    pub verifier: Option<Spanned<String>>,
    #[serde(default)]
    pub timestamp: Option<super::TimestampSource>,
    #[serde(default)]
    pub choices: Option<Spanned<Vec<String>>>,
    /// System Platform alarm references this PV carries, besides those found by name.
    #[serde(default)]
    pub alarms: Option<Vec<Spanned<String>>>,
    /// Serve the `:ACK` companion PV (when the PV carries alarms).
    #[serde(default)]
    pub acknowledge: Option<Spanned<bool>>,
    /// `priority` or `kind`: overrides `[alarms] severity` for this PV's alarms.
    #[serde(default)]
    pub alarm_severity: Option<Spanned<String>>,
    /// `always` or `on_demand` (default from `[defaults]`).
    #[serde(default)]
    pub subscribe: Option<Spanned<RawSubscribe>>,
    /// How long an on-demand PV stays advised after its last client left.
    #[serde(default)]
    pub linger: Option<Spanned<DurationValue>>,
    #[serde(default)]
    pub access_group: Option<Spanned<String>>,
    #[serde(default)]
    pub access_level: Option<Spanned<i64>>,
    /// Advised as a buffered item (default from `[defaults]`).
    #[serde(default)]
    pub buffered: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRange {
    #[serde(default)]
    pub low: Option<Spanned<f64>>,
    #[serde(default)]
    pub high: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    #[serde(default)]
    pub low: Option<Spanned<f64>>,
    #[serde(default)]
    pub high: Option<Spanned<f64>>,
    #[serde(default)]
    pub min_step: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawValueAlarm {
    #[serde(default = "default_alarm_active")]
    pub active: bool,
    #[serde(default)]
    pub lolo: Option<Spanned<f64>>,
    #[serde(default)]
    pub low: Option<Spanned<f64>>,
    #[serde(default)]
    pub high: Option<Spanned<f64>>,
    #[serde(default)]
    pub hihi: Option<Spanned<f64>>,
    #[serde(default)]
    pub hysteresis: Option<Spanned<f64>>,
    #[serde(default = "default_major")]
    pub lolo_severity: super::Severity,
    #[serde(default = "default_minor")]
    pub low_severity: super::Severity,
    #[serde(default = "default_minor")]
    pub high_severity: super::Severity,
    #[serde(default = "default_major")]
    pub hihi_severity: super::Severity,
}

fn default_alarm_active() -> bool {
    true
}
fn default_major() -> super::Severity {
    super::Severity::Major
}
fn default_minor() -> super::Severity {
    super::Severity::Minor
}

/// `[alarms]`: System Platform alarms, acknowledgement and the active-alarm table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlarms {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default)]
    pub filter_prefix: String,
    #[serde(default = "default_true")]
    pub acknowledge: bool,
    #[serde(default = "default_ack_suffix")]
    pub ack_suffix: Spanned<PvNamePart>,
    #[serde(default = "default_table")]
    pub table: Spanned<PvNamePart>,
    #[serde(default = "default_returned_unacked")]
    pub returned_unacked: Spanned<super::Severity>,
    #[serde(default)]
    pub priorities: Option<Spanned<Vec<Spanned<RawPriorityBand>>>>,
    /// `priority` or `kind`.
    #[serde(default)]
    pub severity: Option<Spanned<String>>,
    /// The access security group of every `:ACK` PV.
    #[serde(default)]
    pub access_group: Option<Spanned<String>>,
}

impl Default for RawAlarms {
    fn default() -> Self {
        RawAlarms {
            enabled: default_true(),
            filter_prefix: String::new(),
            acknowledge: default_true(),
            ack_suffix: default_ack_suffix(),
            table: default_table(),
            returned_unacked: default_returned_unacked(),
            priorities: None,
            severity: None,
            access_group: None,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_ack_suffix() -> Spanned<PvNamePart> {
    unspanned(PvNamePart(PvName::from_const(super::DEFAULT_ACK_SUFFIX)))
}
fn default_table() -> Spanned<PvNamePart> {
    unspanned(PvNamePart(PvName::from_const(super::DEFAULT_ALARM_TABLE)))
}
fn default_returned_unacked() -> Spanned<super::Severity> {
    unspanned(super::Severity::None)
}

/// One row of `[alarms] priorities`: `{ from, to, severity }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPriorityBand {
    pub from: Spanned<i64>,
    pub to: Spanned<i64>,
    pub severity: super::Severity,
}

/// `[[alarm_pv]]`: a PV of its own for alarms that have no value PV.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlarmPv {
    #[serde(default)]
    pub name: Option<Spanned<PvName>>,
    #[serde(default)]
    pub alarms: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default, rename = "type")]
    pub pv_type: Option<Spanned<super::AlarmPvType>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub acknowledge: Option<Spanned<bool>>,
    /// `priority` or `kind`: overrides `[alarms] severity` for its alarms.
    #[serde(default)]
    pub alarm_severity: Option<Spanned<String>>,
    #[serde(default)]
    pub access_group: Option<Spanned<String>>,
    #[serde(default)]
    pub access_level: Option<Spanned<i64>>,
}

/// The per-PV keys a rule may set for the PVs it makes. Each is a key of `[[pv]]` of the
/// same name and type (`Option<T>` on `RawPv`): adding one here (one line) makes it a
/// `[[discover]]` key that is put on every PV the rule makes, validated as on `[[pv]]`.
macro_rules! rule_pv_keys {
    ($($key:ident : $ty:ty),* $(,)?) => {
        /// `[[discover]]` as serde reads it.
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct RawDiscover {
            #[serde(default)]
            pub root: Option<Spanned<String>>,
            #[serde(default)]
            pub objects: Option<Spanned<String>>,
            #[serde(default)]
            pub attributes: Option<Spanned<Vec<Spanned<String>>>>,
            #[serde(default)]
            pub name: Option<Spanned<String>>,
            #[serde(default)]
            pub alarm_bearing_only: bool,
            #[serde(default)]
            pub historized_only: bool,
            #[serde(default)]
            pub types: Option<Spanned<BTreeMap<String, Spanned<PvType>>>>,
            $( #[serde(default)] pub $key: Option<$ty>, )*
        }

        /// The per-PV keys a rule sets, as written.
        #[derive(Debug, Clone, Default)]
        pub(crate) struct RulePvKeys {
            $( pub $key: Option<$ty>, )*
        }

        impl RawDiscover {
            pub(crate) fn pv_keys(&self) -> RulePvKeys {
                RulePvKeys { $( $key: self.$key.clone(), )* }
            }
        }

        impl RulePvKeys {
            /// Puts each key the rule sets on `raw`, over what the Galaxy said.
            pub(crate) fn onto(&self, raw: &mut RawPv) {
                $( if self.$key.is_some() { raw.$key = self.$key.clone(); } )*
            }
        }
    };
}

rule_pv_keys! {
    writable: Spanned<bool>,
    write_mode: Spanned<RawWriteMode>,
    user: Spanned<String>,
    verifier: Spanned<String>,
    timestamp: super::TimestampSource,
    acknowledge: Spanned<bool>,
    alarm_severity: Spanned<String>,
    subscribe: Spanned<RawSubscribe>,
    linger: Spanned<DurationValue>,
    access_group: Spanned<String>,
    access_level: Spanned<i64>,
    buffered: Spanned<bool>,
}
