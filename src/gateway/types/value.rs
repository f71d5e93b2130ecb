//! MXAccess data types and values.
use std::fmt;
use std::time::{Duration, SystemTime};

/// MXAccess data types, native numbering (`MxDataType` of the COM toolkit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MxDataType {
    Unknown,
    NoData,
    Boolean,
    /// 32-bit signed integer.
    Integer,
    /// 32-bit float.
    Float,
    Double,
    String,
    /// Absolute time (FILETIME in COM).
    Time,
    /// A duration (100 ns ticks in COM).
    ElapsedTime,
    ReferenceType,
    StatusType,
    DataTypeEnum,
    SecurityClassificationEnum,
    DataQualityType,
    QualifiedEnum,
    QualifiedStruct,
    InternationalizedString,
    BigString,
    /// Gateway-only arm: 64-bit integer.
    LongInteger,
}

impl MxDataType {
    /// The native MxDataType code (-1 .. 16). `LongInteger` has none and maps to -1.
    pub fn native_code(self) -> i32 {
        use MxDataType::*;
        match self {
            Unknown | LongInteger => -1,
            NoData => 0,
            Boolean => 1,
            Integer => 2,
            Float => 3,
            Double => 4,
            String => 5,
            Time => 6,
            ElapsedTime => 7,
            ReferenceType => 8,
            StatusType => 9,
            DataTypeEnum => 10,
            SecurityClassificationEnum => 11,
            DataQualityType => 12,
            QualifiedEnum => 13,
            QualifiedStruct => 14,
            InternationalizedString => 15,
            BigString => 16,
        }
    }

    /// From a native MxDataType code.
    pub fn from_native_code(code: i32) -> Self {
        use MxDataType::*;
        match code {
            0 => NoData,
            1 => Boolean,
            2 => Integer,
            3 => Float,
            4 => Double,
            5 => String,
            6 => Time,
            7 => ElapsedTime,
            8 => ReferenceType,
            9 => StatusType,
            10 => DataTypeEnum,
            11 => SecurityClassificationEnum,
            12 => DataQualityType,
            13 => QualifiedEnum,
            14 => QualifiedStruct,
            15 => InternationalizedString,
            16 => BigString,
            _ => Unknown,
        }
    }

    /// The name used by System Platform ("Double", "ElapsedTime", ...).
    pub fn name(self) -> &'static str {
        use MxDataType::*;
        match self {
            Unknown => "Unknown",
            NoData => "NoData",
            Boolean => "Boolean",
            Integer => "Integer",
            Float => "Float",
            Double => "Double",
            String => "String",
            Time => "Time",
            ElapsedTime => "ElapsedTime",
            ReferenceType => "ReferenceType",
            StatusType => "StatusType",
            DataTypeEnum => "DataTypeEnum",
            SecurityClassificationEnum => "SecurityClassificationEnum",
            DataQualityType => "DataQualityType",
            QualifiedEnum => "QualifiedEnum",
            QualifiedStruct => "QualifiedStruct",
            InternationalizedString => "InternationalizedString",
            BigString => "BigString",
            LongInteger => "LongInteger",
        }
    }

    /// Parse a name as written in config files (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        use MxDataType::*;
        const ALL: [MxDataType; 19] = [
            Unknown,
            NoData,
            Boolean,
            Integer,
            Float,
            Double,
            String,
            Time,
            ElapsedTime,
            ReferenceType,
            StatusType,
            DataTypeEnum,
            SecurityClassificationEnum,
            DataQualityType,
            QualifiedEnum,
            QualifiedStruct,
            InternationalizedString,
            BigString,
            LongInteger,
        ];
        ALL.into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for MxDataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A whole array value (one dimension, as Application Server uses).
#[derive(Clone, Debug, PartialEq)]
pub enum MxArray {
    Bool(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    String(Vec<String>),
    Time(Vec<SystemTime>),
    Elapsed(Vec<Duration>),
}

impl MxArray {
    pub fn len(&self) -> usize {
        match self {
            MxArray::Bool(v) => v.len(),
            MxArray::Int32(v) => v.len(),
            MxArray::Int64(v) => v.len(),
            MxArray::Float(v) => v.len(),
            MxArray::Double(v) => v.len(),
            MxArray::String(v) => v.len(),
            MxArray::Time(v) => v.len(),
            MxArray::Elapsed(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element at a 0-based index, as a scalar value.
    pub fn get(&self, index: usize) -> Option<MxValue> {
        Some(match self {
            MxArray::Bool(v) => MxValue::Bool(*v.get(index)?),
            MxArray::Int32(v) => MxValue::Int32(*v.get(index)?),
            MxArray::Int64(v) => MxValue::Int64(*v.get(index)?),
            MxArray::Float(v) => MxValue::Float(*v.get(index)?),
            MxArray::Double(v) => MxValue::Double(*v.get(index)?),
            MxArray::String(v) => MxValue::String(v.get(index)?.clone()),
            MxArray::Time(v) => MxValue::Time(*v.get(index)?),
            MxArray::Elapsed(v) => MxValue::Elapsed(*v.get(index)?),
        })
    }

    /// The element type.
    pub fn element_type(&self) -> MxDataType {
        match self {
            MxArray::Bool(_) => MxDataType::Boolean,
            MxArray::Int32(_) => MxDataType::Integer,
            MxArray::Int64(_) => MxDataType::LongInteger,
            MxArray::Float(_) => MxDataType::Float,
            MxArray::Double(_) => MxDataType::Double,
            MxArray::String(_) => MxDataType::String,
            MxArray::Time(_) => MxDataType::Time,
            MxArray::Elapsed(_) => MxDataType::ElapsedTime,
        }
    }
}

/// A typed MXAccess value.
#[derive(Clone, Debug, PartialEq)]
pub enum MxValue {
    /// No value (VT_EMPTY), e.g. before the first data change.
    Null,
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Float(f32),
    Double(f64),
    String(String),
    Time(SystemTime),
    Elapsed(Duration),
    Array(MxArray),
    /// Opaque pass-through that MXAccess does not interpret.
    Bytes(Vec<u8>),
}

impl MxValue {
    /// The data type this value carries.
    pub fn data_type(&self) -> MxDataType {
        match self {
            MxValue::Null => MxDataType::NoData,
            MxValue::Bool(_) => MxDataType::Boolean,
            MxValue::Int32(_) => MxDataType::Integer,
            MxValue::Int64(_) => MxDataType::LongInteger,
            MxValue::Float(_) => MxDataType::Float,
            MxValue::Double(_) => MxDataType::Double,
            MxValue::String(_) => MxDataType::String,
            MxValue::Time(_) => MxDataType::Time,
            MxValue::Elapsed(_) => MxDataType::ElapsedTime,
            MxValue::Array(a) => a.element_type(),
            MxValue::Bytes(_) => MxDataType::Unknown,
        }
    }

    /// About how many bytes the value takes on the wire (to bound a bulk call's size).
    pub fn approx_bytes(&self) -> usize {
        let strings = |v: &[String]| v.iter().fold(0usize, |n, s| n.saturating_add(s.len() + 2));
        match self {
            MxValue::String(s) => s.len(),
            MxValue::Bytes(b) => b.len(),
            MxValue::Array(MxArray::String(v)) => strings(v),
            MxValue::Array(a) => a.len().saturating_mul(12),
            _ => 16,
        }
    }

    /// The value as f64 when it is numeric or boolean.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            MxValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            MxValue::Int32(v) => Some(f64::from(*v)),
            MxValue::Int64(v) => Some(*v as f64),
            MxValue::Float(v) => Some(f64::from(*v)),
            MxValue::Double(v) => Some(*v),
            MxValue::Elapsed(d) => Some(d.as_secs_f64()),
            _ => None,
        }
    }

    /// Checks that the value can be sent to MXAccess: NaN and infinities have
    /// no MXAccess representation.
    pub fn check_sendable(&self) -> Result<(), String> {
        let bad = |x: f64| !x.is_finite();
        let found = match self {
            MxValue::Float(v) => bad(f64::from(*v)),
            MxValue::Double(v) => bad(*v),
            MxValue::Array(MxArray::Float(v)) => v.iter().any(|x| bad(f64::from(*x))),
            MxValue::Array(MxArray::Double(v)) => v.iter().any(|x| bad(*x)),
            _ => false,
        };
        if found {
            Err(
                "NaN and infinite values have no MXAccess representation and cannot be written"
                    .into(),
            )
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for MxValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MxValue::Null => f.write_str("<null>"),
            MxValue::Bool(v) => write!(f, "{v}"),
            MxValue::Int32(v) => write!(f, "{v}"),
            MxValue::Int64(v) => write!(f, "{v}"),
            MxValue::Float(v) => write!(f, "{v}"),
            MxValue::Double(v) => write!(f, "{v}"),
            MxValue::String(v) => write!(f, "{v:?}"),
            MxValue::Time(t) => match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => write!(f, "@{}.{:09}", d.as_secs(), d.subsec_nanos()),
                Err(_) => f.write_str("@<before 1970>"),
            },
            MxValue::Elapsed(d) => write!(f, "{}s", d.as_secs_f64()),
            MxValue::Array(a) => write!(f, "{a:?}"),
            MxValue::Bytes(b) => write!(f, "<{} bytes>", b.len()),
        }
    }
}
