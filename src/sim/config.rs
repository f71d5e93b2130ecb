//! The simulated Galaxy, described in TOML (config/sim-galaxy.toml).
//!
//! Parsing is strict (`deny_unknown_fields`); [`Galaxy::from_toml`] then
//! validates the whole file at once and reports every problem it finds.
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::gateway::{MxArray, MxDataType, MxValue, Quality, SecurityClassification};

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
            super::world::parse_time_text(&d.to_string())
                .ok_or_else(|| format!("cannot use time {d}"))?,
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

/// Build an array of type `t` from scalar values of that type.
pub(crate) fn array_of(t: MxDataType, items: &[MxValue]) -> Result<MxArray, String> {
    macro_rules! collect {
        ($variant:ident, $arr:ident) => {
            MxArray::$arr(
                items
                    .iter()
                    .map(|v| match v {
                        MxValue::$variant(x) => Ok(x.clone()),
                        other => Err(format!("{other} is not a {t}")),
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
    }
    Ok(match t {
        MxDataType::Boolean => collect!(Bool, Bool),
        MxDataType::Integer => collect!(Int32, Int32),
        MxDataType::LongInteger => collect!(Int64, Int64),
        MxDataType::Float => collect!(Float, Float),
        MxDataType::Double => collect!(Double, Double),
        MxDataType::String => collect!(String, String),
        MxDataType::Time => collect!(Time, Time),
        MxDataType::ElapsedTime => collect!(Elapsed, Elapsed),
        other => return Err(format!("arrays of {other} are not simulated")),
    })
}

/// The zero value of a type.
pub(crate) fn default_value(t: MxDataType, len: Option<usize>) -> MxValue {
    if let Some(n) = len {
        let z = default_value(t, None);
        return array_of(t, &vec![z; n])
            .map(MxValue::Array)
            .unwrap_or(MxValue::Null);
    }
    match t {
        MxDataType::Boolean => MxValue::Bool(false),
        MxDataType::Integer => MxValue::Int32(0),
        MxDataType::LongInteger => MxValue::Int64(0),
        MxDataType::Float => MxValue::Float(0.0),
        MxDataType::Double => MxValue::Double(0.0),
        MxDataType::String | MxDataType::BigString | MxDataType::ReferenceType => {
            MxValue::String(String::new())
        }
        MxDataType::Time => MxValue::Time(std::time::UNIX_EPOCH),
        MxDataType::ElapsedTime => MxValue::Elapsed(std::time::Duration::ZERO),
        _ => MxValue::Null,
    }
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

fn build(file: GalaxyFile, problems: &mut Vec<String>) -> Galaxy {
    let mut p = |s: String| problems.push(s);
    if file.galaxy.tick_ms == 0 || file.galaxy.tick_ms > 60_000 {
        p(format!(
            "galaxy.tick_ms must be 1..=60000, not {}",
            file.galaxy.tick_ms
        ));
    }
    if file.galaxy.first_update_delay_ms > 60_000 {
        p(format!(
            "galaxy.first_update_delay_ms must be 0..=60000, not {}",
            file.galaxy.first_update_delay_ms
        ));
    }
    if file.galaxy.name.is_empty() || file.galaxy.name.contains(['!', '.']) {
        p(format!(
            "galaxy.name {:?} must be non-empty without '!' or '.'",
            file.galaxy.name
        ));
    }
    let mut keys = Vec::new();
    let mut seen_keys = HashSet::new();
    for (i, k) in file.auth.keys.iter().enumerate() {
        if k.key.is_empty() || !k.key.bytes().all(|b| b.is_ascii_graphic()) {
            p(format!(
                "auth.keys[{i}].key must be printable ASCII without spaces"
            ));
        }
        if !seen_keys.insert(k.key.clone()) {
            p(format!("auth.keys[{i}] repeats a key"));
        }
        for s in &k.scopes {
            if !SCOPES.contains(&s.as_str()) {
                p(format!(
                    "auth.keys[{i}]: unknown scope {s:?}, expected one of {}",
                    SCOPES.join(", ")
                ));
            }
        }
        let max = k.max_write_classification.as_deref().and_then(|c| {
            let r = SecurityClassification::from_name(c);
            if r.is_none() {
                p(format!(
                    "auth.keys[{i}]: unknown security classification {c:?}"
                ));
            }
            r
        });
        keys.push(KeyDef {
            key: k.key.clone(),
            scopes: k.scopes.iter().cloned().collect(),
            read_prefixes: k.read_prefixes.clone(),
            write_prefixes: k.write_prefixes.clone(),
            max_write_classification: max,
        });
    }
    if file.auth.mode == AuthMode::ApiKey && keys.is_empty() {
        p("auth.mode = \"api_key\" needs at least one [[auth.keys]]".into());
    }
    let mut users = Vec::new();
    let mut user_ids = HashSet::new();
    for u in &file.users {
        if u.id <= 0 {
            p(format!("user {}: id must be > 0 (0 means no user)", u.name));
        }
        if !user_ids.insert(u.id) {
            p(format!("user {}: id {} is used twice", u.name, u.id));
        }
        for perm in &u.permissions {
            if !["Operate", "Tune", "Configure", "Verify", "AckAlarms"].contains(&perm.as_str()) {
                p(format!("user {}: unknown permission {perm:?}", u.name));
            }
        }
        users.push(UserDef {
            name: u.name.clone(),
            password: u.password.clone(),
            id: u.id,
            permissions: u.permissions.iter().cloned().collect(),
        });
    }

    // Objects: areas first (in file order), then application objects.
    let mut objects: Vec<ObjectDef> = Vec::new();
    let mut by_tag: HashMap<String, usize> = HashMap::new();
    for a in &file.areas {
        if by_tag.contains_key(&a.name.to_ascii_lowercase()) {
            p(format!("area {} is defined twice", a.name));
            continue;
        }
        by_tag.insert(a.name.to_ascii_lowercase(), objects.len());
        objects.push(ObjectDef {
            gobject_id: objects.len() as i32 + 1,
            tag_name: a.name.clone(),
            contained_name: a.name.clone(),
            hierarchical_name: a.name.clone(),
            parent: None,
            area: None,
            is_area: true,
            template_chain: vec!["$Area".into()],
            description: a.description.clone(),
            attributes: Vec::new(),
            alarms: Vec::new(),
        });
    }
    for a in &file.areas {
        let Some(&me) = by_tag.get(&a.name.to_ascii_lowercase()) else {
            continue;
        };
        if let Some(parent) = &a.parent {
            match by_tag.get(&parent.to_ascii_lowercase()) {
                Some(&pi) if pi != me => {
                    if let Some(area) = objects.get_mut(me) {
                        area.parent = Some(pi);
                        area.area = Some(pi);
                    }
                }
                _ => p(format!(
                    "area {}: parent area {parent} is not defined",
                    a.name
                )),
            }
        }
    }
    let first_object = objects.len();
    for o in &file.objects {
        if !valid_name(&o.tag) {
            p(format!(
                "object tag {:?} must be letters, digits, '_' or '$' (up to 329 characters)",
                o.tag
            ));
        }
        if by_tag.contains_key(&o.tag.to_ascii_lowercase()) {
            p(format!(
                "object {} is defined twice (or clashes with an area)",
                o.tag
            ));
            continue;
        }
        by_tag.insert(o.tag.to_ascii_lowercase(), objects.len());
        objects.push(ObjectDef {
            gobject_id: objects.len() as i32 + 1,
            tag_name: o.tag.clone(),
            contained_name: o.contained_name.clone().unwrap_or_else(|| o.tag.clone()),
            hierarchical_name: String::new(),
            parent: None,
            area: None,
            is_area: false,
            template_chain: vec![o.template.clone(), "$UserDefined".into()]
                .into_iter()
                .fold(Vec::new(), |mut v, t| {
                    if !v.contains(&t) {
                        v.push(t);
                    }
                    v
                }),
            description: o.description.clone(),
            attributes: Vec::new(),
            alarms: Vec::new(),
        });
    }
    for o in &file.objects {
        let Some(&me) = by_tag.get(&o.tag.to_ascii_lowercase()) else {
            continue;
        };
        let is_area = |i: usize| objects.get(i).map(|x| x.is_area);
        let area = match by_tag.get(&o.area.to_ascii_lowercase()) {
            Some(&ai) if is_area(ai) == Some(true) => Some(ai),
            _ => {
                p(format!("object {}: area {} is not defined", o.tag, o.area));
                None
            }
        };
        let parent = match &o.parent {
            Some(pt) => match by_tag.get(&pt.to_ascii_lowercase()) {
                Some(&pi) if pi != me && is_area(pi) == Some(false) => Some(pi),
                _ => {
                    p(format!(
                        "object {}: parent object {pt} is not defined",
                        o.tag
                    ));
                    None
                }
            },
            None => area.or_else(|| objects.get(me).and_then(|x| x.area)),
        };
        if let Some(object) = objects.get_mut(me) {
            if area.is_some() {
                object.area = area;
            }
            object.parent = parent;
        }
    }
    // Hierarchical names, with a cycle guard.
    let hierarchical_names: Vec<String> = objects
        .iter()
        .map(|o| {
            let mut names = vec![o.contained_name.clone()];
            let mut cur = o.parent;
            let mut steps = 0;
            while let Some(c) = cur.and_then(|c| objects.get(c)) {
                steps += 1;
                if steps > objects.len() {
                    p(format!("{}: containment cycle", o.tag_name));
                    break;
                }
                if c.is_area {
                    break;
                }
                names.push(c.contained_name.clone());
                cur = c.parent;
            }
            names.reverse();
            names.join(".")
        })
        .collect();
    for (o, name) in objects.iter_mut().zip(hierarchical_names) {
        o.hierarchical_name = name;
    }

    // Attributes and alarms.
    let mut attributes: Vec<AttrDef> = Vec::new();
    let mut alarms: Vec<AlarmDef> = Vec::new();
    let mut pending_refs: Vec<(usize, Option<String>, Option<String>)> = Vec::new();
    for o in &file.objects {
        let Some(&oi) = by_tag.get(&o.tag.to_ascii_lowercase()) else {
            continue;
        };
        let mut names = HashSet::new();
        for a in &o.attributes {
            let ctx = format!("{}.{}", o.tag, a.name);
            if !valid_name(&a.name) {
                p(format!(
                    "{ctx}: attribute names are letters, digits and '_'"
                ));
            }
            if !names.insert(a.name.to_ascii_lowercase()) {
                p(format!("{ctx}: attribute defined twice"));
            }
            let Some(t) =
                MxDataType::from_name(&a.data_type).filter(|t| SIMULATED_TYPES.contains(t))
            else {
                p(format!(
                    "{ctx}: type {:?} is not simulated; use one of {}",
                    a.data_type,
                    SIMULATED_TYPES
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            };
            match a.array_length {
                Some(0) => p(format!("{ctx}: array_length must be > 0")),
                Some(n) if n > MAX_ARRAY_LENGTH => {
                    p(format!(
                        "{ctx}: array_length {n} is above the simulator's {MAX_ARRAY_LENGTH}"
                    ));
                    continue;
                }
                _ => {}
            }
            let Some(security) = SecurityClassification::from_name(&a.security) else {
                p(format!(
                    "{ctx}: unknown security classification {:?}",
                    a.security
                ));
                continue;
            };
            let initial = match &a.initial {
                Some(v) => parse_initial(v, t, a.array_length).unwrap_or_else(|e| {
                    p(format!("{ctx}: {e}"));
                    MxValue::Null
                }),
                None => default_value(t, a.array_length),
            };
            let dynamics = a.dynamics.clone().unwrap_or(Dynamics::Constant);
            check_dynamics(&ctx, &dynamics, t, a.array_length.is_some(), &mut p);
            let quality = a.quality.as_ref().map(|q| {
                if q.period_s <= 0.0
                    || q.uncertain_s < 0.0
                    || q.bad_s < 0.0
                    || q.uncertain_s + q.bad_s >= q.period_s
                {
                    p(format!(
                        "{ctx}: quality needs period_s > uncertain_s + bad_s >= 0"
                    ));
                }
                let (u, b) = (Quality(q.uncertain), Quality(q.bad));
                if !u.is_uncertain() {
                    p(format!(
                        "{ctx}: quality.uncertain 0x{:02X} is not an uncertain quality",
                        q.uncertain
                    ));
                }
                if !b.is_bad() {
                    p(format!(
                        "{ctx}: quality.bad 0x{:02X} is not a bad quality",
                        q.bad
                    ));
                }
                QualityCycle {
                    period_s: q.period_s,
                    uncertain_s: q.uncertain_s,
                    bad_s: q.bad_s,
                    uncertain: u,
                    bad: b,
                }
            });
            if let (Some(lo), Some(hi)) = (a.min, a.max) {
                if lo > hi {
                    p(format!("{ctx}: min {lo} is above max {hi}"));
                }
            }
            let (src, en) = match &dynamics {
                Dynamics::Follow { source, enable, .. } => (Some(source.clone()), enable.clone()),
                Dynamics::Elapsed { while_true } => (None, while_true.clone()),
                Dynamics::Counter { rising } => (None, Some(rising.clone())),
                _ => (None, None),
            };
            let ai = attributes.len();
            pending_refs.push((ai, src, en));
            attributes.push(AttrDef {
                object: oi,
                name: a.name.clone(),
                reference: ctx.clone(),
                data_type: t,
                array_length: a.array_length,
                security,
                eng_units: a.eng_units.clone(),
                description: a.description.clone(),
                historized: a.historized,
                writable: a.writable,
                min: a.min,
                max: a.max,
                initial,
                dynamics,
                quality,
                source: None,
                enable: None,
            });
            if let Some(object) = objects.get_mut(oi) {
                object.attributes.push(ai);
            }
            for al in &a.alarms {
                let kind = match al.kind.as_str() {
                    "HiHi" => AlarmKind::HiHi,
                    "Hi" => AlarmKind::Hi,
                    "Lo" => AlarmKind::Lo,
                    "LoLo" => AlarmKind::LoLo,
                    "Discrete" => AlarmKind::Discrete,
                    other => {
                        p(format!(
                            "{ctx}: alarm kind {other:?} is not one of HiHi, Hi, Lo, LoLo, Discrete"
                        ));
                        continue;
                    }
                };
                if kind == AlarmKind::Discrete {
                    if t != MxDataType::Boolean || a.array_length.is_some() {
                        p(format!("{ctx}: a Discrete alarm needs a Boolean attribute"));
                    }
                } else if al.limit.is_none()
                    || !matches!(
                        t,
                        MxDataType::Integer | MxDataType::Float | MxDataType::Double
                    )
                {
                    p(format!(
                        "{ctx}: alarm {} needs a limit and a numeric attribute",
                        al.name
                    ));
                }
                if !(1..=999).contains(&al.priority) {
                    p(format!(
                        "{ctx}: alarm priority {} is not in 1..=999",
                        al.priority
                    ));
                }
                if al.name.is_empty() || al.name.contains(['!', ' ']) {
                    p(format!("{ctx}: alarm name {:?} is not usable", al.name));
                }
                let area = objects
                    .get(oi)
                    .and_then(|x| x.area)
                    .and_then(|a| objects.get(a))
                    .map(|a| a.tag_name.clone())
                    .unwrap_or_default();
                let short = format!("{}.{}", o.tag, al.name);
                alarms.push(AlarmDef {
                    reference: format!("{}!{}.{}", file.galaxy.name, area, short),
                    short_reference: short,
                    name: al.name.clone(),
                    object: oi,
                    attribute: ai,
                    kind,
                    limit: al.limit,
                    deadband: al.deadband.max(0.0),
                    priority: al.priority,
                    area,
                    description: al.description.clone(),
                });
                let alarm = alarms.len() - 1;
                if let Some(object) = objects.get_mut(oi) {
                    object.alarms.push(alarm);
                }
            }
        }
    }
    for (ai, src, en) in pending_refs {
        let Some(attr) = attributes.get(ai) else {
            continue;
        };
        let obj = objects
            .get(attr.object)
            .map(|o| o.tag_name.as_str())
            .unwrap_or_default();
        let find = |name: &str| {
            let r = format!("{obj}.{name}");
            attributes
                .iter()
                .enumerate()
                .find(|(_, x)| x.reference.eq_ignore_ascii_case(&r))
        };
        let mut source = None;
        if let Some(s) = &src {
            match find(s) {
                Some((i, x)) if x.array_length.is_none() => source = Some(i),
                _ => p(format!(
                    "{}: dynamics source {s} is not a scalar attribute of {obj}",
                    attr.reference
                )),
            }
        }
        let mut enable = None;
        if let Some(e) = &en {
            match find(e) {
                Some((i, x)) if x.data_type == MxDataType::Boolean && x.array_length.is_none() => {
                    enable = Some(i)
                }
                _ => p(format!(
                    "{}: {e} is not a Boolean attribute of {obj}",
                    attr.reference
                )),
            }
        }
        if let Some(attr) = attributes.get_mut(ai) {
            attr.source = source.or(attr.source);
            attr.enable = enable.or(attr.enable);
        }
    }
    let _ = first_object;
    // The first of equal references wins, as a scan in order would find it.
    let mut by_reference = HashMap::with_capacity(attributes.len());
    for (i, a) in attributes.iter().enumerate() {
        by_reference
            .entry(a.reference.to_ascii_lowercase())
            .or_insert(i);
    }
    Galaxy {
        name: file.galaxy.name,
        tick_ms: file.galaxy.tick_ms,
        first_update_delay_ms: file.galaxy.first_update_delay_ms,
        security_enabled: file.galaxy.security_enabled,
        auth_mode: file.auth.mode,
        keys,
        users,
        objects,
        attributes,
        alarms,
        by_reference,
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 329
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn check_dynamics(
    ctx: &str,
    d: &Dynamics,
    t: MxDataType,
    is_array: bool,
    p: &mut impl FnMut(String),
) {
    let numeric = matches!(
        t,
        MxDataType::Integer | MxDataType::LongInteger | MxDataType::Float | MxDataType::Double
    );
    let ok = match d {
        Dynamics::Constant => true,
        Dynamics::Ramp { min, max, rate } => numeric && !is_array && min < max && *rate > 0.0,
        Dynamics::Sine { period_s, .. } => numeric && !is_array && *period_s > 0.0,
        Dynamics::RandomWalk { min, max, step } => numeric && !is_array && min < max && *step > 0.0,
        Dynamics::Toggle { period_s } => {
            (t == MxDataType::Boolean || numeric) && !is_array && *period_s > 0.0
        }
        Dynamics::Follow { tau_s, noise, .. } => {
            numeric && !is_array && *tau_s > 0.0 && *noise >= 0.0
        }
        Dynamics::Clock => t == MxDataType::Time && !is_array,
        Dynamics::Elapsed { .. } => t == MxDataType::ElapsedTime && !is_array,
        Dynamics::Counter { .. } => {
            matches!(t, MxDataType::Integer | MxDataType::LongInteger) && !is_array
        }
        Dynamics::Wave { period_s, .. } => {
            is_array && matches!(t, MxDataType::Float | MxDataType::Double) && *period_s > 0.0
        }
    };
    if !ok {
        p(format!(
            "{ctx}: dynamics {d:?} do not suit a {}{t} attribute (or their parameters are out of range)",
            if is_array { "array of " } else { "" }
        ));
    }
}
