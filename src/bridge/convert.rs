//! MXAccess values to PV values and back.
//!
//! | MXAccess type    | served as (default)                  |
//! |------------------|--------------------------------------|
//! | Boolean          | NTEnum with two choices, or bool     |
//! | Integer          | int32                                |
//! | LongInteger      | int64                                |
//! | Float            | float32                              |
//! | Double           | float64                              |
//! | String           | string                               |
//! | Time             | string, ISO 8601 UTC                 |
//! | ElapsedTime      | float64 seconds                      |
//! | arrays of these  | NTScalarArray of the same mapping    |
//!
//! A configured type override converts numerically (range-checked), and anything can be
//! served as a string.

use std::time::{Duration, SystemTime};

use crate::gateway::{MxArray, MxDataType, MxValue};
use crate::pva::{NtValue, PvType, ScalarType};

/// The PV type an attribute of type `t` is served as by default.
pub fn default_pv_type(t: MxDataType, array: bool, bool_as_enum: bool) -> Option<PvType> {
    let scalar = match t {
        MxDataType::Boolean if bool_as_enum && !array => return Some(PvType::Enum),
        MxDataType::Boolean => ScalarType::Bool,
        MxDataType::Integer => ScalarType::Int32,
        MxDataType::LongInteger => ScalarType::Int64,
        MxDataType::Float => ScalarType::Float32,
        MxDataType::Double | MxDataType::ElapsedTime => ScalarType::Float64,
        MxDataType::String
        | MxDataType::Time
        | MxDataType::BigString
        | MxDataType::InternationalizedString
        | MxDataType::ReferenceType => ScalarType::String,
        _ => return None,
    };
    Some(if array {
        PvType::Array(scalar)
    } else {
        PvType::Scalar(scalar)
    })
}

/// The default PV type for a value as it arrived.
pub fn pv_type_of(value: &MxValue, bool_as_enum: bool) -> Option<PvType> {
    match value {
        MxValue::Array(a) => default_pv_type(a.element_type(), true, bool_as_enum),
        v => default_pv_type(v.data_type(), false, bool_as_enum),
    }
}

/// ISO 8601 UTC with milliseconds, e.g. `2026-11-21T08:15:00.250Z`.
pub fn iso8601(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// One scalar as the numbers and text a PV value is built from.
#[derive(Debug, Clone)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

fn scalar(v: &MxValue) -> Result<Scalar, String> {
    Ok(match v {
        MxValue::Bool(b) => Scalar::Bool(*b),
        MxValue::Int32(i) => Scalar::Int(i64::from(*i)),
        MxValue::Int64(i) => Scalar::Int(*i),
        MxValue::Float(f) => Scalar::Float(f64::from(*f)),
        MxValue::Double(f) => Scalar::Float(*f),
        MxValue::String(s) => Scalar::Text(s.clone()),
        MxValue::Time(t) => Scalar::Text(iso8601(*t)),
        MxValue::Elapsed(d) => Scalar::Float(d.as_secs_f64()),
        MxValue::Null => return Err("no value".into()),
        MxValue::Bytes(_) => return Err("opaque bytes cannot be served".into()),
        MxValue::Array(_) => return Err("an array where a scalar was expected".into()),
    })
}

fn elements(a: &MxArray) -> Vec<Scalar> {
    match a {
        MxArray::Bool(v) => v.iter().map(|x| Scalar::Bool(*x)).collect(),
        MxArray::Int32(v) => v.iter().map(|x| Scalar::Int(i64::from(*x))).collect(),
        MxArray::Int64(v) => v.iter().map(|x| Scalar::Int(*x)).collect(),
        MxArray::Float(v) => v.iter().map(|x| Scalar::Float(f64::from(*x))).collect(),
        MxArray::Double(v) => v.iter().map(|x| Scalar::Float(*x)).collect(),
        MxArray::String(v) => v.iter().map(|x| Scalar::Text(x.clone())).collect(),
        MxArray::Time(v) => v.iter().map(|x| Scalar::Text(iso8601(*x))).collect(),
        MxArray::Elapsed(v) => v.iter().map(|x| Scalar::Float(x.as_secs_f64())).collect(),
    }
}

fn as_int(s: &Scalar) -> Result<i64, String> {
    match s {
        Scalar::Bool(b) => Ok(i64::from(*b)),
        Scalar::Int(i) => Ok(*i),
        Scalar::Float(f) if f.is_finite() && f.fract() == 0.0 => Ok(*f as i64),
        Scalar::Float(f) => Err(format!("{f} is not an integer")),
        Scalar::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| format!("'{t}' is not an integer")),
    }
}

fn as_float(s: &Scalar) -> Result<f64, String> {
    match s {
        Scalar::Bool(b) => Ok(f64::from(u8::from(*b))),
        Scalar::Int(i) => Ok(*i as f64),
        Scalar::Float(f) => Ok(*f),
        Scalar::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| format!("'{t}' is not a number")),
    }
}

fn as_text(s: &Scalar) -> String {
    match s {
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) => f.to_string(),
        Scalar::Text(t) => t.clone(),
    }
}

fn int_in<T: TryFrom<i64>>(s: &Scalar) -> Result<T, String> {
    let i = as_int(s)?;
    T::try_from(i).map_err(|_| format!("{i} is out of range"))
}

fn uint_in<T: TryFrom<u64>>(s: &Scalar) -> Result<T, String> {
    let i = as_int(s)?;
    u64::try_from(i)
        .ok()
        .and_then(|u| T::try_from(u).ok())
        .ok_or_else(|| format!("{i} is out of range"))
}

/// Converts an MXAccess value into a value of the PV's type.
pub fn to_nt(value: &MxValue, ty: PvType) -> Result<NtValue, String> {
    use NtValue as V;
    use ScalarType as S;
    match ty {
        PvType::Enum => {
            let s = scalar(value)?;
            Ok(V::Enum(int_in(&s)?))
        }
        PvType::Scalar(t) => {
            let s = scalar(value)?;
            Ok(match t {
                S::Bool => V::Bool(as_int(&s)? != 0),
                S::Int8 => V::Int8(int_in(&s)?),
                S::Int16 => V::Int16(int_in(&s)?),
                S::Int32 => V::Int32(int_in(&s)?),
                S::Int64 => V::Int64(as_int(&s)?),
                S::UInt8 => V::UInt8(uint_in(&s)?),
                S::UInt16 => V::UInt16(uint_in(&s)?),
                S::UInt32 => V::UInt32(uint_in(&s)?),
                S::UInt64 => V::UInt64(uint_in(&s)?),
                S::Float32 => V::Float32(as_float(&s)? as f32),
                S::Float64 => V::Float64(as_float(&s)?),
                S::String => V::String(as_text(&s)),
            })
        }
        PvType::Array(t) => {
            let items = match value {
                MxValue::Array(a) => elements(a),
                other => vec![scalar(other)?],
            };
            macro_rules! collect {
                ($variant:ident, $conv:expr) => {
                    V::$variant(
                        items
                            .iter()
                            .map($conv)
                            .collect::<Result<Vec<_>, String>>()?,
                    )
                };
            }
            Ok(match t {
                S::Bool => collect!(BoolArray, |s| as_int(s).map(|i| i != 0)),
                S::Int8 => collect!(Int8Array, int_in),
                S::Int16 => collect!(Int16Array, int_in),
                S::Int32 => collect!(Int32Array, int_in),
                S::Int64 => collect!(Int64Array, as_int),
                S::UInt8 => collect!(UInt8Array, uint_in),
                S::UInt16 => collect!(UInt16Array, uint_in),
                S::UInt32 => collect!(UInt32Array, uint_in),
                S::UInt64 => collect!(UInt64Array, uint_in),
                S::Float32 => collect!(Float32Array, |s| as_float(s).map(|f| f as f32)),
                S::Float64 => collect!(Float64Array, as_float),
                S::String => V::StringArray(items.iter().map(as_text).collect()),
            })
        }
    }
}

fn nt_scalar(v: &NtValue) -> Option<Scalar> {
    use NtValue as V;
    Some(match v {
        V::Bool(b) => Scalar::Bool(*b),
        V::Int8(x) => Scalar::Int((*x).into()),
        V::Int16(x) => Scalar::Int((*x).into()),
        V::Int32(x) => Scalar::Int((*x).into()),
        V::Int64(x) => Scalar::Int(*x),
        V::UInt8(x) => Scalar::Int((*x).into()),
        V::UInt16(x) => Scalar::Int((*x).into()),
        V::UInt32(x) => Scalar::Int((*x).into()),
        V::UInt64(x) => Scalar::Int(i64::try_from(*x).ok()?),
        V::Float32(x) => Scalar::Float((*x).into()),
        V::Float64(x) => Scalar::Float(*x),
        V::String(s) => Scalar::Text(s.clone()),
        V::Enum(i) => Scalar::Int((*i).into()),
        _ => return None,
    })
}

fn nt_elements(v: &NtValue) -> Option<Vec<Scalar>> {
    use NtValue as V;
    fn ints<T: Copy + Into<i64>>(v: &[T]) -> Vec<Scalar> {
        v.iter().map(|x| Scalar::Int((*x).into())).collect()
    }
    Some(match v {
        V::BoolArray(v) => v.iter().map(|x| Scalar::Bool(*x)).collect(),
        V::Int8Array(v) => ints(v),
        V::Int16Array(v) => ints(v),
        V::Int32Array(v) => ints(v),
        V::Int64Array(v) => ints(v),
        V::UInt8Array(v) => ints(v),
        V::UInt16Array(v) => ints(v),
        V::UInt32Array(v) => ints(v),
        V::UInt64Array(v) => v
            .iter()
            .map(|x| i64::try_from(*x).ok().map(Scalar::Int))
            .collect::<Option<Vec<_>>>()?,
        V::Float32Array(v) => v.iter().map(|x| Scalar::Float((*x).into())).collect(),
        V::Float64Array(v) => v.iter().map(|x| Scalar::Float(*x)).collect(),
        V::StringArray(v) => v.iter().map(|x| Scalar::Text(x.clone())).collect(),
        _ => return None,
    })
}

fn finite(f: f64) -> Result<f64, String> {
    if f.is_finite() {
        Ok(f)
    } else {
        Err(format!(
            "{f} cannot be written: System Platform has no NaN or infinity"
        ))
    }
}

fn mx_scalar(s: &Scalar, t: MxDataType) -> Result<MxValue, String> {
    Ok(match t {
        MxDataType::Boolean => match as_int(s)? {
            0 => MxValue::Bool(false),
            1 => MxValue::Bool(true),
            i => return Err(format!("{i} is not a boolean (0 or 1)")),
        },
        MxDataType::Integer => MxValue::Int32(int_in(s)?),
        MxDataType::LongInteger => MxValue::Int64(as_int(s)?),
        MxDataType::Float => {
            let f = finite(as_float(s)?)?;
            if f.abs() > f64::from(f32::MAX) {
                return Err(format!("{f} is out of range for a Float"));
            }
            MxValue::Float(f as f32)
        }
        MxDataType::Double => MxValue::Double(finite(as_float(s)?)?),
        MxDataType::ElapsedTime => {
            let secs = finite(as_float(s)?)?;
            if secs < 0.0 {
                return Err(format!("{secs} s is not a valid elapsed time"));
            }
            MxValue::Elapsed(Duration::from_secs_f64(secs))
        }
        MxDataType::Time => {
            let text = as_text(s);
            let t = humantime::parse_rfc3339_weak(&text)
                .map_err(|_| format!("'{text}' is not an ISO 8601 time"))?;
            MxValue::Time(t)
        }
        MxDataType::String
        | MxDataType::BigString
        | MxDataType::InternationalizedString
        | MxDataType::ReferenceType => MxValue::String(as_text(s)),
        other => return Err(format!("attributes of type {other} cannot be written")),
    })
}

/// Converts a put value into a value for an attribute of type `t` (`array` for whole
/// arrays). Refuses NaN and infinities, out-of-range numbers and text that is no number.
pub fn to_mx(value: &NtValue, t: MxDataType, array: bool) -> Result<MxValue, String> {
    if !array {
        let s = nt_scalar(value).ok_or("an array cannot be written to a scalar attribute")?;
        return mx_scalar(&s, t);
    }
    let items = nt_elements(value).ok_or("a scalar cannot be written to an array attribute")?;
    let values = items
        .iter()
        .enumerate()
        .map(|(i, s)| mx_scalar(s, t).map_err(|e| format!("element {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    macro_rules! gather {
        ($variant:ident) => {
            MxArray::$variant(
                values
                    .into_iter()
                    .filter_map(|v| match v {
                        MxValue::$variant(x) => Some(x),
                        _ => None,
                    })
                    .collect(),
            )
        };
    }
    let array = match t {
        MxDataType::Boolean => gather!(Bool),
        MxDataType::Integer => gather!(Int32),
        MxDataType::LongInteger => gather!(Int64),
        MxDataType::Float => gather!(Float),
        MxDataType::Double => gather!(Double),
        MxDataType::Time => gather!(Time),
        MxDataType::ElapsedTime => MxArray::Elapsed(
            values
                .into_iter()
                .filter_map(|v| match v {
                    MxValue::Elapsed(d) => Some(d),
                    _ => None,
                })
                .collect(),
        ),
        _ => gather!(String),
    };
    Ok(MxValue::Array(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_table() {
        assert_eq!(
            default_pv_type(MxDataType::Boolean, false, true),
            Some(PvType::Enum)
        );
        assert_eq!(
            default_pv_type(MxDataType::Time, false, true),
            Some(PvType::Scalar(ScalarType::String))
        );
        assert_eq!(
            default_pv_type(MxDataType::ElapsedTime, true, true),
            Some(PvType::Array(ScalarType::Float64))
        );
    }

    #[test]
    fn values_convert_both_ways() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        assert_eq!(
            to_nt(&MxValue::Time(t), PvType::Scalar(ScalarType::String)).unwrap(),
            NtValue::String("2023-11-14T22:13:20.250Z".into())
        );
        assert_eq!(
            to_nt(
                &MxValue::Elapsed(Duration::from_millis(1500)),
                PvType::Scalar(ScalarType::Float64)
            )
            .unwrap(),
            NtValue::Float64(1.5)
        );
        assert_eq!(
            to_nt(&MxValue::Bool(true), PvType::Enum).unwrap(),
            NtValue::Enum(1)
        );
        assert!(to_nt(&MxValue::Int32(300), PvType::Scalar(ScalarType::Int8)).is_err());
        assert_eq!(
            to_mx(&NtValue::Enum(1), MxDataType::Boolean, false).unwrap(),
            MxValue::Bool(true)
        );
        assert!(to_mx(&NtValue::Enum(2), MxDataType::Boolean, false).is_err());
        let nan = to_mx(&NtValue::Float64(f64::NAN), MxDataType::Double, false).unwrap_err();
        assert!(nan.contains("NaN"), "{nan}");
        assert!(to_mx(&NtValue::Float64(f64::INFINITY), MxDataType::Float, false).is_err());
        assert_eq!(
            to_mx(
                &NtValue::Float64Array(vec![1.0, 2.0]),
                MxDataType::Double,
                true
            )
            .unwrap(),
            MxValue::Array(MxArray::Double(vec![1.0, 2.0]))
        );
    }
}
