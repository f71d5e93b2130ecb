//! Typed PV values and metadata: what one post carries.

use std::time::{SystemTime, UNIX_EPOCH};

use super::ffi::bridge::{
    FieldBit, ScalarKind, WireAlarm, WireControl, WireData, WireDisplay, WireShape, WireTime,
    WireUpdate, WireValueAlarm,
};

pub use crate::config::{PvType, ScalarType};

/// The PVAccess side of the crate's one scalar type (defined with the config's names in
/// `config/types.rs`): its pvData names, and its C++ form ([`ScalarKind`]), converted here
/// and nowhere else.
impl ScalarType {
    /// The pvData type name (`double`, `uint`, ...), as `pvinfo` prints it.
    pub fn pv_name(self) -> &'static str {
        match self {
            ScalarType::Bool => "boolean",
            ScalarType::Int8 => "byte",
            ScalarType::Int16 => "short",
            ScalarType::Int32 => "int",
            ScalarType::Int64 => "long",
            ScalarType::UInt8 => "ubyte",
            ScalarType::UInt16 => "ushort",
            ScalarType::UInt32 => "uint",
            ScalarType::UInt64 => "ulong",
            ScalarType::Float32 => "float",
            ScalarType::Float64 => "double",
            ScalarType::String => "string",
        }
    }

    pub(crate) fn kind(self) -> ScalarKind {
        match self {
            ScalarType::Bool => ScalarKind::Bool,
            ScalarType::Int8 => ScalarKind::Int8,
            ScalarType::Int16 => ScalarKind::Int16,
            ScalarType::Int32 => ScalarKind::Int32,
            ScalarType::Int64 => ScalarKind::Int64,
            ScalarType::UInt8 => ScalarKind::UInt8,
            ScalarType::UInt16 => ScalarKind::UInt16,
            ScalarType::UInt32 => ScalarKind::UInt32,
            ScalarType::UInt64 => ScalarKind::UInt64,
            ScalarType::Float32 => ScalarKind::Float32,
            ScalarType::Float64 => ScalarKind::Float64,
            ScalarType::String => ScalarKind::String,
        }
    }

    fn from_kind(kind: ScalarKind) -> Option<Self> {
        ScalarType::ALL.into_iter().find(|t| t.kind() == kind)
    }
}

impl PvType {
    /// The pvData type name (`double`, `uint[]`, `enum`), as `pvinfo` prints it.
    pub fn pv_name(self) -> String {
        match self {
            PvType::Scalar(t) => t.pv_name().to_string(),
            PvType::Array(t) => format!("{}[]", t.pv_name()),
            PvType::Enum => "enum".to_string(),
        }
    }
}

/// A typed value for a PV's `value` field.
#[derive(Debug, Clone, PartialEq)]
pub enum NtValue {
    Bool(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    UInt8(u8),
    UInt16(u16),
    UInt32(u32),
    UInt64(u64),
    Float32(f32),
    Float64(f64),
    String(String),
    BoolArray(Vec<bool>),
    Int8Array(Vec<i8>),
    Int16Array(Vec<i16>),
    Int32Array(Vec<i32>),
    Int64Array(Vec<i64>),
    UInt8Array(Vec<u8>),
    UInt16Array(Vec<u16>),
    UInt32Array(Vec<u32>),
    UInt64Array(Vec<u64>),
    Float32Array(Vec<f32>),
    Float64Array(Vec<f64>),
    StringArray(Vec<String>),
    /// The index of an NTEnum.
    Enum(i32),
}

impl NtValue {
    /// The PV type this value belongs to.
    pub fn pv_type(&self) -> PvType {
        use NtValue as V;
        use ScalarType as S;
        match self {
            V::Bool(_) => PvType::Scalar(S::Bool),
            V::Int8(_) => PvType::Scalar(S::Int8),
            V::Int16(_) => PvType::Scalar(S::Int16),
            V::Int32(_) => PvType::Scalar(S::Int32),
            V::Int64(_) => PvType::Scalar(S::Int64),
            V::UInt8(_) => PvType::Scalar(S::UInt8),
            V::UInt16(_) => PvType::Scalar(S::UInt16),
            V::UInt32(_) => PvType::Scalar(S::UInt32),
            V::UInt64(_) => PvType::Scalar(S::UInt64),
            V::Float32(_) => PvType::Scalar(S::Float32),
            V::Float64(_) => PvType::Scalar(S::Float64),
            V::String(_) => PvType::Scalar(S::String),
            V::BoolArray(_) => PvType::Array(S::Bool),
            V::Int8Array(_) => PvType::Array(S::Int8),
            V::Int16Array(_) => PvType::Array(S::Int16),
            V::Int32Array(_) => PvType::Array(S::Int32),
            V::Int64Array(_) => PvType::Array(S::Int64),
            V::UInt8Array(_) => PvType::Array(S::UInt8),
            V::UInt16Array(_) => PvType::Array(S::UInt16),
            V::UInt32Array(_) => PvType::Array(S::UInt32),
            V::UInt64Array(_) => PvType::Array(S::UInt64),
            V::Float32Array(_) => PvType::Array(S::Float32),
            V::Float64Array(_) => PvType::Array(S::Float64),
            V::StringArray(_) => PvType::Array(S::String),
            V::Enum(_) => PvType::Enum,
        }
    }

    /// The number of elements: 1 for a scalar or an enum, the length of an array.
    pub fn len(&self) -> usize {
        use NtValue as V;
        match self {
            V::BoolArray(x) => x.len(),
            V::Int8Array(x) => x.len(),
            V::Int16Array(x) => x.len(),
            V::Int32Array(x) => x.len(),
            V::Int64Array(x) => x.len(),
            V::UInt8Array(x) => x.len(),
            V::UInt16Array(x) => x.len(),
            V::UInt32Array(x) => x.len(),
            V::UInt64Array(x) => x.len(),
            V::Float32Array(x) => x.len(),
            V::Float64Array(x) => x.len(),
            V::StringArray(x) => x.len(),
            _ => 1,
        }
    }

    /// An empty array (never true for a scalar).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn to_wire(&self) -> WireData {
        self.clone().into_wire()
    }

    /// [`NtValue::to_wire`], moving strings and arrays into the wire form instead of
    /// copying them (each array element type has its own wire vector, so nothing is
    /// widened either).
    pub(crate) fn into_wire(self) -> WireData {
        use NtValue as V;
        let mut d = WireData::default();
        match self {
            V::Bool(x) => d.b = x,
            V::Int8(x) => d.i = x.into(),
            V::Int16(x) => d.i = x.into(),
            V::Int32(x) => d.i = x.into(),
            V::Int64(x) => d.i = x,
            V::UInt8(x) => d.u = x.into(),
            V::UInt16(x) => d.u = x.into(),
            V::UInt32(x) => d.u = x.into(),
            V::UInt64(x) => d.u = x,
            V::Float32(x) => d.f = x.into(),
            V::Float64(x) => d.f = x,
            V::String(x) => d.s = x,
            V::BoolArray(x) => d.bools = x,
            V::Int8Array(x) => d.i8s = x,
            V::Int16Array(x) => d.i16s = x,
            V::Int32Array(x) => d.i32s = x,
            V::Int64Array(x) => d.ints = x,
            V::UInt8Array(x) => d.u8s = x,
            V::UInt16Array(x) => d.u16s = x,
            V::UInt32Array(x) => d.u32s = x,
            V::UInt64Array(x) => d.uints = x,
            V::Float32Array(x) => d.f32s = x,
            V::Float64Array(x) => d.floats = x,
            V::StringArray(x) => d.strings = x,
            V::Enum(x) => d.index = x,
        }
        d
    }

    /// Rebuilds a value of type `ty` from the wire.
    pub(crate) fn from_wire(ty: PvType, d: WireData) -> NtValue {
        use NtValue as V;
        use ScalarType as S;
        match ty {
            PvType::Enum => V::Enum(d.index),
            PvType::Scalar(t) => match t {
                S::Bool => V::Bool(d.b),
                S::Int8 => V::Int8(i8::try_from(d.i).unwrap_or_default()),
                S::Int16 => V::Int16(i16::try_from(d.i).unwrap_or_default()),
                S::Int32 => V::Int32(i32::try_from(d.i).unwrap_or_default()),
                S::Int64 => V::Int64(d.i),
                S::UInt8 => V::UInt8(u8::try_from(d.u).unwrap_or_default()),
                S::UInt16 => V::UInt16(u16::try_from(d.u).unwrap_or_default()),
                S::UInt32 => V::UInt32(u32::try_from(d.u).unwrap_or_default()),
                S::UInt64 => V::UInt64(d.u),
                // The C++ side read an f32 field, so the f64 holds an f32 exactly.
                S::Float32 => V::Float32(d.f as f32),
                S::Float64 => V::Float64(d.f),
                S::String => V::String(d.s),
            },
            PvType::Array(t) => match t {
                S::Bool => V::BoolArray(d.bools),
                S::Int8 => V::Int8Array(d.i8s),
                S::Int16 => V::Int16Array(d.i16s),
                S::Int32 => V::Int32Array(d.i32s),
                S::Int64 => V::Int64Array(d.ints),
                S::UInt8 => V::UInt8Array(d.u8s),
                S::UInt16 => V::UInt16Array(d.u16s),
                S::UInt32 => V::UInt32Array(d.u32s),
                S::UInt64 => V::UInt64Array(d.uints),
                S::Float32 => V::Float32Array(d.f32s),
                S::Float64 => V::Float64Array(d.floats),
                S::String => V::StringArray(d.strings),
            },
        }
    }
}

pub(crate) fn pv_type_of(kind: ScalarKind, array: bool, nt_enum: bool) -> Option<PvType> {
    if nt_enum {
        return Some(PvType::Enum);
    }
    let t = ScalarType::from_kind(kind)?;
    Some(if array {
        PvType::Array(t)
    } else {
        PvType::Scalar(t)
    })
}

/// `alarm.severity`, as EPICS defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Severity {
    #[default]
    NoAlarm = 0,
    Minor = 1,
    Major = 2,
    Invalid = 3,
}

impl Severity {
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Severity::NoAlarm,
            1 => Severity::Minor,
            2 => Severity::Major,
            3 => Severity::Invalid,
            _ => return None,
        })
    }
}

/// `alarm.status`, as EPICS defines it (the `menuAlarmStat` groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AlarmStatus {
    #[default]
    None = 0,
    Device = 1,
    Driver = 2,
    Record = 3,
    Db = 4,
    Conf = 5,
    Undefined = 6,
    Client = 7,
}

impl AlarmStatus {
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => AlarmStatus::None,
            1 => AlarmStatus::Device,
            2 => AlarmStatus::Driver,
            3 => AlarmStatus::Record,
            4 => AlarmStatus::Db,
            5 => AlarmStatus::Conf,
            6 => AlarmStatus::Undefined,
            7 => AlarmStatus::Client,
            _ => return None,
        })
    }
}

/// The `alarm` field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alarm {
    pub severity: Severity,
    pub status: AlarmStatus,
    pub message: String,
}

impl Alarm {
    pub fn new(severity: Severity, status: AlarmStatus, message: impl Into<String>) -> Self {
        Alarm {
            severity,
            status,
            message: message.into(),
        }
    }

    /// NO_ALARM, no status, empty message.
    pub fn none() -> Self {
        Alarm::default()
    }

    pub(crate) fn to_wire(&self) -> WireAlarm {
        WireAlarm {
            severity: self.severity as i32,
            status: self.status as i32,
            message: self.message.clone(),
        }
    }

    pub(crate) fn into_wire(self) -> WireAlarm {
        WireAlarm {
            severity: self.severity as i32,
            status: self.status as i32,
            message: self.message,
        }
    }

    pub(crate) fn from_wire(w: &WireAlarm) -> Self {
        Alarm {
            severity: Severity::from_i32(w.severity).unwrap_or(Severity::Invalid),
            status: AlarmStatus::from_i32(w.status).unwrap_or_default(),
            message: w.message.clone(),
        }
    }
}

/// The `timeStamp` field: POSIX seconds, nanoseconds and a user tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeStamp {
    pub seconds: i64,
    pub nanos: i32,
    pub user_tag: i32,
}

impl TimeStamp {
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    pub(crate) fn to_wire(self) -> WireTime {
        WireTime {
            seconds: self.seconds,
            nanos: self.nanos,
            user_tag: self.user_tag,
        }
    }

    pub(crate) fn from_wire(w: &WireTime) -> Self {
        TimeStamp {
            seconds: w.seconds,
            nanos: w.nanos,
            user_tag: w.user_tag,
        }
    }
}

impl From<SystemTime> for TimeStamp {
    fn from(t: SystemTime) -> Self {
        let (seconds, nanos) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos() as i32),
            Err(e) => {
                // Before 1970: floor the seconds, keep nanoseconds positive.
                let d = e.duration();
                let mut s = -(d.as_secs() as i64);
                let mut n = d.subsec_nanos() as i32;
                if n > 0 {
                    s -= 1;
                    n = 1_000_000_000 - n;
                }
                (s, n)
            }
        };
        TimeStamp {
            seconds,
            nanos,
            user_tag: 0,
        }
    }
}

/// `display.form.index`: how a display manager should format the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisplayForm {
    #[default]
    Default = 0,
    String = 1,
    Binary = 2,
    Decimal = 3,
    Hex = 4,
    Exponential = 5,
    Engineering = 6,
}

impl DisplayForm {
    fn from_i32(v: i32) -> Self {
        match v {
            1 => DisplayForm::String,
            2 => DisplayForm::Binary,
            3 => DisplayForm::Decimal,
            4 => DisplayForm::Hex,
            5 => DisplayForm::Exponential,
            6 => DisplayForm::Engineering,
            _ => DisplayForm::Default,
        }
    }
}

/// The `display` field. Limits, precision and form exist for numeric PVs only; strings and
/// booleans carry description and units, NTEnum the description.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Display {
    pub limit_low: f64,
    pub limit_high: f64,
    pub description: String,
    pub units: String,
    pub precision: i32,
    pub form: DisplayForm,
}

/// The `control` field (numeric PVs).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Control {
    pub limit_low: f64,
    pub limit_high: f64,
    pub min_step: f64,
}

/// The `valueAlarm` field (numeric PVs).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ValueAlarm {
    pub active: bool,
    pub low_alarm_limit: f64,
    pub low_warning_limit: f64,
    pub high_warning_limit: f64,
    pub high_alarm_limit: f64,
    pub low_alarm_severity: Severity,
    pub low_warning_severity: Severity,
    pub high_warning_severity: Severity,
    pub high_alarm_severity: Severity,
    pub hysteresis: f64,
}

/// One post: any subset of a PV's fields. Fields left `None` keep their last value.
///
/// Opening a PV with an update also fixes its structure: `display`, `control` and
/// `valueAlarm` exist exactly when the initial update carries them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Update {
    pub value: Option<NtValue>,
    /// NTEnum choices.
    pub choices: Option<Vec<String>>,
    pub alarm: Option<Alarm>,
    pub time: Option<TimeStamp>,
    /// `time`'s seconds and user tag are those the PV holds already: only its
    /// nanoseconds are posted (marked); each client's copy keeps the rest. Set only
    /// when that is known, as a data change of a PV within the second of its last post.
    pub time_nanos_only: bool,
    pub display: Option<Display>,
    pub control: Option<Control>,
    pub value_alarm: Option<ValueAlarm>,
}

impl Update {
    /// An update of the value alone.
    pub fn value(value: NtValue) -> Self {
        Update {
            value: Some(value),
            ..Default::default()
        }
    }

    pub fn with_value(mut self, value: NtValue) -> Self {
        self.value = Some(value);
        self
    }

    pub fn with_choices<S: Into<String>>(mut self, choices: impl IntoIterator<Item = S>) -> Self {
        self.choices = Some(choices.into_iter().map(Into::into).collect());
        self
    }

    pub fn with_alarm(mut self, alarm: Alarm) -> Self {
        self.alarm = Some(alarm);
        self
    }

    pub fn with_time(mut self, time: TimeStamp) -> Self {
        self.time = Some(time);
        self
    }

    pub fn with_display(mut self, display: Display) -> Self {
        self.display = Some(display);
        self
    }

    pub fn with_control(mut self, control: Control) -> Self {
        self.control = Some(control);
        self
    }

    pub fn with_value_alarm(mut self, value_alarm: ValueAlarm) -> Self {
        self.value_alarm = Some(value_alarm);
        self
    }

    pub(crate) fn to_wire(&self) -> WireUpdate {
        self.wire_with(
            self.value.as_ref().map(NtValue::to_wire),
            self.choices.clone(),
            self.alarm.as_ref().map(Alarm::to_wire),
        )
    }

    /// [`Update::to_wire`] without copying: the value's array (of the wire's own element
    /// type), the choices and the alarm message move into the wire form.
    pub(crate) fn into_wire(mut self) -> WireUpdate {
        let value = self.value.take().map(NtValue::into_wire);
        let choices = self.choices.take();
        let alarm = self.alarm.take().map(Alarm::into_wire);
        self.wire_with(value, choices, alarm)
    }

    /// The wire form of this update's metadata, with its value, choices and alarm given.
    fn wire_with(
        &self,
        value: Option<WireData>,
        choices: Option<Vec<String>>,
        alarm: Option<WireAlarm>,
    ) -> WireUpdate {
        let mut w = WireUpdate::default();
        let mut set = |bit: FieldBit| w.fields |= bit.repr;
        if value.is_some() {
            set(FieldBit::Value);
        }
        if choices.is_some() {
            set(FieldBit::Choices);
        }
        if alarm.is_some() {
            set(FieldBit::Alarm);
        }
        if self.time.is_some() {
            set(if self.time_nanos_only {
                FieldBit::TimeNanos
            } else {
                FieldBit::TimeStamp
            });
        }
        if self.display.is_some() {
            set(FieldBit::Display);
        }
        if self.control.is_some() {
            set(FieldBit::Control);
        }
        if self.value_alarm.is_some() {
            set(FieldBit::ValueAlarm);
        }
        if let Some(d) = value {
            w.data = d;
        }
        if let Some(c) = choices {
            w.choices = c;
        }
        if let Some(a) = alarm {
            w.alarm = a;
        }
        if let Some(t) = self.time {
            w.time = t.to_wire();
        }
        if let Some(d) = &self.display {
            w.display = WireDisplay {
                limit_low: d.limit_low,
                limit_high: d.limit_high,
                description: d.description.clone(),
                units: d.units.clone(),
                precision: d.precision,
                form: d.form as i32,
            };
        }
        if let Some(c) = self.control {
            w.control = WireControl {
                limit_low: c.limit_low,
                limit_high: c.limit_high,
                min_step: c.min_step,
            };
        }
        if let Some(a) = self.value_alarm {
            w.value_alarm = WireValueAlarm {
                active: a.active,
                low_alarm_limit: a.low_alarm_limit,
                low_warning_limit: a.low_warning_limit,
                high_warning_limit: a.high_warning_limit,
                high_alarm_limit: a.high_alarm_limit,
                low_alarm_severity: a.low_alarm_severity as i32,
                low_warning_severity: a.low_warning_severity as i32,
                high_warning_severity: a.high_warning_severity as i32,
                high_alarm_severity: a.high_alarm_severity as i32,
                hysteresis: a.hysteresis,
            };
        }
        w
    }

    /// Rebuilds the full state of a PV of type `ty` as the shim read it back.
    pub(crate) fn from_wire(ty: PvType, w: WireUpdate) -> Self {
        let has = |bit: FieldBit| w.fields & bit.repr != 0;
        let severity = |v: i32| Severity::from_i32(v).unwrap_or(Severity::Invalid);
        Update {
            value: has(FieldBit::Value).then(|| NtValue::from_wire(ty, w.data.clone())),
            choices: has(FieldBit::Choices).then(|| w.choices.clone()),
            alarm: has(FieldBit::Alarm).then(|| Alarm::from_wire(&w.alarm)),
            time: has(FieldBit::TimeStamp).then(|| TimeStamp::from_wire(&w.time)),
            time_nanos_only: false,
            display: has(FieldBit::Display).then(|| Display {
                limit_low: w.display.limit_low,
                limit_high: w.display.limit_high,
                description: w.display.description.clone(),
                units: w.display.units.clone(),
                precision: w.display.precision,
                form: DisplayForm::from_i32(w.display.form),
            }),
            control: has(FieldBit::Control).then_some(Control {
                limit_low: w.control.limit_low,
                limit_high: w.control.limit_high,
                min_step: w.control.min_step,
            }),
            value_alarm: has(FieldBit::ValueAlarm).then_some(ValueAlarm {
                active: w.value_alarm.active,
                low_alarm_limit: w.value_alarm.low_alarm_limit,
                low_warning_limit: w.value_alarm.low_warning_limit,
                high_warning_limit: w.value_alarm.high_warning_limit,
                high_alarm_limit: w.value_alarm.high_alarm_limit,
                low_alarm_severity: severity(w.value_alarm.low_alarm_severity),
                low_warning_severity: severity(w.value_alarm.low_warning_severity),
                high_warning_severity: severity(w.value_alarm.high_warning_severity),
                high_alarm_severity: severity(w.value_alarm.high_alarm_severity),
                hysteresis: w.value_alarm.hysteresis,
            }),
        }
    }
}

/// The structure of a PV: its type and which metadata fields it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub pv_type: PvType,
    pub display: bool,
    pub control: bool,
    pub value_alarm: bool,
}

impl Shape {
    /// The structure an initial update implies for a PV of type `pv_type`.
    pub fn of(pv_type: PvType, initial: &Update) -> Self {
        Shape {
            pv_type,
            display: initial.display.is_some(),
            control: initial.control.is_some(),
            value_alarm: initial.value_alarm.is_some(),
        }
    }

    pub(crate) fn to_wire(self) -> WireShape {
        let (kind, array, nt_enum) = match self.pv_type {
            PvType::Scalar(t) => (t.kind(), false, false),
            PvType::Array(t) => (t.kind(), true, false),
            PvType::Enum => (ScalarKind::Int32, false, true),
        };
        WireShape {
            kind,
            array,
            nt_enum,
            display: self.display,
            control: self.control,
            value_alarm: self.value_alarm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_survives_the_wire() {
        let values = vec![
            NtValue::Bool(true),
            NtValue::Int8(-8),
            NtValue::Int16(-16),
            NtValue::Int32(-32),
            NtValue::Int64(i64::MIN),
            NtValue::UInt8(u8::MAX),
            NtValue::UInt16(16),
            NtValue::UInt32(u32::MAX),
            NtValue::UInt64(u64::MAX),
            NtValue::Float32(1.5),
            NtValue::Float64(-2.25e300),
            NtValue::String("héllo".into()),
            NtValue::BoolArray(vec![true, false]),
            NtValue::Int8Array(vec![i8::MIN, i8::MAX]),
            NtValue::Int16Array(vec![1, 2]),
            NtValue::Int32Array(vec![i32::MIN]),
            NtValue::Int64Array(vec![i64::MAX]),
            NtValue::UInt8Array(vec![255]),
            NtValue::UInt16Array(vec![65535]),
            NtValue::UInt32Array(vec![7]),
            NtValue::UInt64Array(vec![u64::MAX]),
            NtValue::Float32Array(vec![0.5, -0.25]),
            NtValue::Float64Array(vec![1e-300]),
            NtValue::StringArray(vec!["a".into(), String::new()]),
            NtValue::Enum(3),
        ];
        for v in values {
            let back = NtValue::from_wire(v.pv_type(), v.to_wire());
            assert_eq!(back, v);
        }
    }

    #[test]
    fn timestamps_before_1970_keep_positive_nanoseconds() {
        let t = UNIX_EPOCH - std::time::Duration::from_millis(1500);
        let ts = TimeStamp::from(t);
        assert_eq!((ts.seconds, ts.nanos), (-2, 500_000_000));
    }
}
