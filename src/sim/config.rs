//! The simulated Galaxy, described in TOML (config/sim-galaxy.toml).
//!
//! Parsing is strict (`deny_unknown_fields`); [`Galaxy::from_toml`] then
//! validates the whole file at once and reports every problem it finds.
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::values::{array_of, parse_time_text};
use crate::gateway::{MxDataType, MxValue, Quality, SecurityClassification};

mod build;
use build::build;

/// The demo plant shipped with mxpva.
pub const DEMO_GALAXY: &str = include_str!("../../config/sim-galaxy.toml");

/// Scope strings of the gateway.
pub const SCOPES: &[&str] = &[
    "session:open",
    "session:close",
    "invoke:read",
    "invoke:write",
    "invoke:secure",
    "events:read",
    "metadata:read",
    "admin",
];

fn default_galaxy_name() -> String {
    "Galaxy".into()
}
fn default_tick_ms() -> u64 {
    100
}
fn default_first_update_delay_ms() -> u64 {
    50
}
fn default_true() -> bool {
    true
}
fn default_template() -> String {
    "$UserDefined".into()
}
fn default_security() -> String {
    "FreeAccess".into()
}
fn default_uncertain_quality() -> u16 {
    Quality::UNCERTAIN_EU_EXCEEDED.0
}
fn default_bad_quality() -> u16 {
    Quality::BAD_COMM_FAILURE.0
}
fn default_priority() -> i32 {
    500
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GalaxyFile {
    galaxy: GalaxySection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    users: Vec<UserConf>,
    #[serde(default)]
    areas: Vec<AreaConf>,
    #[serde(default)]
    objects: Vec<ObjectConf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GalaxySection {
    #[serde(default = "default_galaxy_name")]
    name: String,
    /// Period of the value dynamics.
    #[serde(default = "default_tick_ms")]
    tick_ms: u64,
    /// Delay of the first OnDataChange after Advise (real systems: seconds).
    #[serde(default = "default_first_update_delay_ms")]
    first_update_delay_ms: u64,
    /// Galaxy security: when false, security classifications do not restrict writes.
    #[serde(default = "default_true")]
    security_enabled: bool,
    /// The per-session event queue bound (the gateway's default, 10,000, when absent).
    #[serde(default)]
    event_queue_capacity: Option<u64>,
    /// How far the System Platform node's clock is ahead of the host's (negative:
    /// behind), in every time the simulator reports (`clock.rs`).
    #[serde(default)]
    clock_offset_ms: i64,
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No authentication (the gateway's `Disabled` mode; for demos).
    #[default]
    Open,
    /// Bearer API keys with scopes.
    ApiKey,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    #[serde(default)]
    mode: AuthMode,
    #[serde(default)]
    keys: Vec<KeyConf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyConf {
    key: String,
    scopes: Vec<String>,
    /// Tag prefixes (object tag names or `Obj.Attr`) the key may read; absent = all.
    read_prefixes: Option<Vec<String>>,
    /// Tag prefixes the key may write; absent = all.
    write_prefixes: Option<Vec<String>>,
    /// Highest security classification the key may write.
    max_write_classification: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserConf {
    name: String,
    password: String,
    id: i32,
    #[serde(default)]
    permissions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AreaConf {
    name: String,
    parent: Option<String>,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectConf {
    tag: String,
    area: String,
    /// Containing object (tag name); absent = contained by the area.
    parent: Option<String>,
    contained_name: Option<String>,
    #[serde(default = "default_template")]
    template: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    attributes: Vec<AttrConf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttrConf {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    /// Array attributes: the number of elements.
    array_length: Option<usize>,
    #[serde(default = "default_security")]
    security: String,
    #[serde(default)]
    eng_units: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    historized: bool,
    /// false: the attribute is computed by its object and never accepts writes.
    #[serde(default = "default_true")]
    writable: bool,
    /// Accepted write range (numeric attributes).
    min: Option<f64>,
    max: Option<f64>,
    initial: Option<toml::Value>,
    dynamics: Option<Dynamics>,
    quality: Option<QualityConf>,
    #[serde(default)]
    alarms: Vec<AlarmConf>,
}

/// How a value moves on its own.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Dynamics {
    Constant,
    /// Rises at `rate` per second from `min` to `max`, then starts again.
    Ramp {
        min: f64,
        max: f64,
        rate: f64,
    },
    Sine {
        center: f64,
        amplitude: f64,
        period_s: f64,
    },
    RandomWalk {
        min: f64,
        max: f64,
        step: f64,
    },
    /// Boolean (or 0/1) that flips every `period_s`.
    Toggle {
        period_s: f64,
    },
    /// First-order lag towards attribute `source` of the same object, with
    /// time constant `tau_s`; towards 0 while boolean attribute `enable` is false.
    Follow {
        source: String,
        tau_s: f64,
        enable: Option<String>,
        #[serde(default)]
        noise: f64,
    },
    /// Time: the current time, updated every second.
    Clock,
    /// ElapsedTime: grows while boolean attribute `while_true` is true (always when absent).
    Elapsed {
        while_true: Option<String>,
    },
    /// Integer: counts rising edges of boolean attribute `rising`.
    Counter {
        rising: String,
    },
    /// Array: a sine wave travelling along the elements.
    Wave {
        center: f64,
        amplitude: f64,
        period_s: f64,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct QualityConf {
    period_s: f64,
    #[serde(default)]
    uncertain_s: f64,
    #[serde(default)]
    bad_s: f64,
    #[serde(default = "default_uncertain_quality")]
    uncertain: u16,
    #[serde(default = "default_bad_quality")]
    bad: u16,
}

/// Periodic quality: each period starts good, then `uncertain_s` seconds of
/// `uncertain`, then `bad_s` seconds of `bad`, at the end of the period.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityCycle {
    pub period_s: f64,
    pub uncertain_s: f64,
    pub bad_s: f64,
    pub uncertain: Quality,
    pub bad: Quality,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmConf {
    /// Alarm attribute name, e.g. "Level.HiHi" or "PumpFault".
    name: String,
    kind: String,
    limit: Option<f64>,
    #[serde(default)]
    deadband: f64,
    #[serde(default = "default_priority")]
    priority: i32,
    #[serde(default)]
    description: String,
}

/// Alarm sub-types the simulator evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmKind {
    HiHi,
    Hi,
    Lo,
    LoLo,
    /// In alarm while the (boolean) attribute is true.
    Discrete,
}

/// A configured alarm.
#[derive(Debug, Clone)]
pub struct AlarmDef {
    /// `Galaxy!Area.Object.Name`
    pub reference: String,
    /// `Object.Name`, also an attribute reference (Boolean, in alarm).
    pub short_reference: String,
    pub name: String,
    pub object: usize,
    /// Index into [`Galaxy::attributes`] of the watched attribute.
    pub attribute: usize,
    pub kind: AlarmKind,
    pub limit: Option<f64>,
    pub deadband: f64,
    pub priority: i32,
    pub area: String,
    pub description: String,
}

/// A configured attribute.
#[derive(Debug, Clone)]
pub struct AttrDef {
    pub object: usize,
    pub name: String,
    /// `Object.Attribute`
    pub reference: String,
    pub data_type: MxDataType,
    pub array_length: Option<usize>,
    pub security: SecurityClassification,
    pub eng_units: String,
    pub description: String,
    pub historized: bool,
    pub writable: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub initial: MxValue,
    pub dynamics: Dynamics,
    pub quality: Option<QualityCycle>,
    /// For Follow/Elapsed/Counter: indices of the referenced attributes.
    pub source: Option<usize>,
    pub enable: Option<usize>,
}

/// A Galaxy object (areas included).
#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub gobject_id: i32,
    pub tag_name: String,
    pub contained_name: String,
    pub hierarchical_name: String,
    pub parent: Option<usize>,
    pub area: Option<usize>,
    pub is_area: bool,
    pub template_chain: Vec<String>,
    pub description: String,
    pub attributes: Vec<usize>,
    pub alarms: Vec<usize>,
}

/// An API key and what it may do.
#[derive(Clone)]
pub struct KeyDef {
    pub key: String,
    pub scopes: HashSet<String>,
    pub read_prefixes: Option<Vec<String>>,
    pub write_prefixes: Option<Vec<String>>,
    pub max_write_classification: Option<SecurityClassification>,
}

impl fmt::Debug for KeyDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyDef")
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// A Galaxy user for AuthenticateUser and the secured writes.
#[derive(Clone)]
pub struct UserDef {
    pub name: String,
    pub password: String,
    pub id: i32,
    /// "Operate", "Tune", "Configure", "Verify", "AckAlarms".
    pub permissions: HashSet<String>,
}

impl fmt::Debug for UserDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDef")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A validated simulated Galaxy.
#[derive(Debug, Clone)]
pub struct Galaxy {
    pub name: String,
    pub tick_ms: u64,
    pub first_update_delay_ms: u64,
    pub security_enabled: bool,
    /// `[galaxy] event_queue_capacity`: overrides [`super::SimOptions::event_queue_capacity`].
    pub event_queue_capacity: Option<usize>,
    /// `[galaxy] clock_offset_ms`: the node's clock ahead of the host's (`clock.rs`).
    pub clock_offset_ms: i64,
    pub auth_mode: AuthMode,
    pub keys: Vec<KeyDef>,
    pub users: Vec<UserDef>,
    pub objects: Vec<ObjectDef>,
    pub attributes: Vec<AttrDef>,
    pub alarms: Vec<AlarmDef>,
    /// Index in `attributes` by lower-case reference: a subscription of 100,000 tags
    /// must not scan the attribute list once per tag.
    by_reference: HashMap<String, usize>,
}

/// Problems found in a Galaxy file.
#[derive(Debug, thiserror::Error)]
pub enum GalaxyError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{origin}: {error}")]
    Parse { origin: String, error: String },
    #[error("{origin}: {}", .problems.join("; "))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
}

fn parse_initial(v: &toml::Value, t: MxDataType, len: Option<usize>) -> Result<MxValue, String> {
    let num = |v: &toml::Value| match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    };
    if let Some(n) = len {
        let toml::Value::Array(items) = v else {
            return Err("initial value of an array attribute must be an array".into());
        };
        if items.len() != n {
            return Err(format!(
                "initial array has {} elements, array_length is {n}",
                items.len()
            ));
        }
        let scalars: Vec<MxValue> = items
            .iter()
            .map(|i| parse_initial(i, t, None))
            .collect::<Result<_, _>>()?;
        return Ok(MxValue::Array(array_of(t, &scalars)?));
    }
    Ok(match (t, v) {
        (MxDataType::Boolean, toml::Value::Boolean(b)) => MxValue::Bool(*b),
        (MxDataType::Integer, toml::Value::Integer(i)) => {
            MxValue::Int32(i32::try_from(*i).map_err(|_| format!("{i} does not fit an Integer"))?)
        }
        (MxDataType::LongInteger, toml::Value::Integer(i)) => MxValue::Int64(*i),
        (MxDataType::Float, v) if num(v).is_some() => {
            MxValue::Float(num(v).unwrap_or_default() as f32)
        }
        (MxDataType::Double, v) if num(v).is_some() => MxValue::Double(num(v).unwrap_or_default()),
        (
            MxDataType::String | MxDataType::BigString | MxDataType::ReferenceType,
            toml::Value::String(s),
        ) => MxValue::String(s.clone()),
        (MxDataType::Time, toml::Value::Datetime(d)) => MxValue::Time(
            parse_time_text(&d.to_string()).ok_or_else(|| format!("cannot use time {d}"))?,
        ),
        (MxDataType::ElapsedTime, v) if num(v).is_some() => {
            let seconds = num(v).unwrap_or_default().max(0.0);
            MxValue::Elapsed(
                std::time::Duration::try_from_secs_f64(seconds)
                    .map_err(|_| format!("initial elapsed time {seconds:e} s is out of range"))?,
            )
        }
        (t, v) => return Err(format!("initial value {v} does not suit type {t}")),
    })
}

/// The longest array the simulator holds (each attribute's value is built in memory).
pub const MAX_ARRAY_LENGTH: usize = 1_000_000;

const SIMULATED_TYPES: &[MxDataType] = &[
    MxDataType::Boolean,
    MxDataType::Integer,
    MxDataType::LongInteger,
    MxDataType::Float,
    MxDataType::Double,
    MxDataType::String,
    MxDataType::Time,
    MxDataType::ElapsedTime,
];

impl Galaxy {
    /// The System Platform node's clock now: the host's moved by `clock_offset_ms`.
    pub fn now(&self) -> std::time::SystemTime {
        super::clock::offset(std::time::SystemTime::now(), self.clock_offset_ms)
    }

    /// The shipped demo plant.
    // The compiled-in config/sim-galaxy.toml: shipped_galaxy_file_is_valid (tests/sim_standalone.rs)
    // and the simulator unit tests load it, so this cannot fail at run time.
    #[allow(clippy::expect_used)]
    pub fn demo() -> Self {
        Self::from_toml(DEMO_GALAXY, "config/sim-galaxy.toml")
            .expect("the shipped demo galaxy is valid")
    }

    /// Load and validate a Galaxy file.
    pub fn load(path: &Path) -> Result<Self, GalaxyError> {
        let text = std::fs::read_to_string(path).map_err(|error| GalaxyError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parse and validate TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, GalaxyError> {
        let file: GalaxyFile = toml::from_str(text).map_err(|e| GalaxyError::Parse {
            origin: origin.into(),
            error: e.to_string(),
        })?;
        let mut problems = Vec::new();
        let g = build(file, &mut problems);
        if problems.is_empty() {
            Ok(g)
        } else {
            Err(GalaxyError::Invalid {
                origin: origin.into(),
                problems,
            })
        }
    }

    /// Find an attribute by `Object.Attribute` (case-insensitive).
    pub fn attribute_index(&self, reference: &str) -> Option<usize> {
        self.by_reference
            .get(&reference.to_ascii_lowercase())
            .copied()
    }

    /// An attribute by reference, with its index (the index of its live state).
    pub(crate) fn attribute(&self, reference: &str) -> Option<(usize, &AttrDef)> {
        let i = self.attribute_index(reference)?;
        Some((i, self.attributes.get(i)?))
    }

    /// Find an alarm by full (`Galaxy!Area.Obj.Alarm`) or short (`Obj.Alarm`) reference.
    pub fn alarm_index(&self, reference: &str) -> Option<usize> {
        self.alarms.iter().position(|a| {
            a.reference.eq_ignore_ascii_case(reference)
                || a.short_reference.eq_ignore_ascii_case(reference)
        })
    }

    pub fn object_index(&self, tag: &str) -> Option<usize> {
        self.objects
            .iter()
            .position(|o| o.tag_name.eq_ignore_ascii_case(tag))
    }
}
