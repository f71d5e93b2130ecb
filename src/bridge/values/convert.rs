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

use std::time::Duration;

pub use crate::config::default_pv_type;
use crate::gateway::{MxArray, MxDataType, MxValue};
use crate::pva::{NtValue, PvType, ScalarType};

/// The default PV type for a value as it arrived.
pub fn pv_type_of(value: &MxValue, bool_as_enum: bool) -> Option<PvType> {
    match value {
        MxValue::Array(a) => default_pv_type(a.element_type(), true, bool_as_enum),
        v => default_pv_type(v.data_type(), false, bool_as_enum),
    }
}

pub use super::isotime::iso8601;
use super::isotime::{self, abbreviate};

/// `value` as messages and logs show it: at most `max` characters of its text, then
/// `...` and the full length; a long array or string never makes a long message.
pub fn brief(value: &MxValue, max: usize) -> String {
    struct Capped {
        out: String,
        max: usize,
        total: usize,
    }
    impl std::fmt::Write for Capped {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for c in s.chars() {
                if self.total < self.max {
                    self.out.push(c);
                }
                self.total += 1;
            }
            Ok(())
        }
    }
    let mut w = Capped {
        out: String::new(),
        max,
        total: 0,
    };
    let _ = match value {
        MxValue::Double(f) => std::fmt::write(&mut w, format_args!("{}", num(*f))),
        MxValue::Float(f) => std::fmt::write(&mut w, format_args!("{}", num(f64::from(*f)))),
        other => std::fmt::write(&mut w, format_args!("{other}")),
    };
    if w.total > max {
        w.out.push_str(&format!("... ({} characters)", w.total));
    }
    w.out
}

/// The longest ElapsedTime System Platform holds: `i64::MAX` ticks of 100 ns.
pub const MAX_ELAPSED_SECS: f64 = 922_337_203_685.477_5;

/// One scalar as the numbers and text a PV value is built from. Integers are held
/// wide enough for every i64 and u64.
#[derive(Debug, Clone)]
enum Scalar {
    Bool(bool),
    Int(i128),
    Float(f64),
    Text(String),
}

/// A number as a message shows it: `1e30`, not thirty-one digits.
fn num(f: f64) -> String {
    if f.is_finite() && f != 0.0 && !(1e-6..1e16).contains(&f.abs()) {
        format!("{f:e}")
    } else {
        f.to_string()
    }
}

fn elapsed_secs(d: &Duration) -> f64 {
    d.as_secs_f64()
}

fn scalar(v: &MxValue) -> Result<Scalar, String> {
    Ok(match v {
        MxValue::Bool(b) => Scalar::Bool(*b),
        MxValue::Int32(i) => Scalar::Int(i128::from(*i)),
        MxValue::Int64(i) => Scalar::Int(i128::from(*i)),
        MxValue::Float(f) => Scalar::Float(f64::from(*f)),
        MxValue::Double(f) => Scalar::Float(*f),
        MxValue::String(s) => Scalar::Text(s.clone()),
        MxValue::Time(t) => Scalar::Text(iso8601(*t)),
        MxValue::Elapsed(d) => Scalar::Float(elapsed_secs(d)),
        MxValue::Null => return Err("no value".into()),
        MxValue::Bytes(_) => return Err("opaque bytes cannot be served".into()),
        MxValue::Array(_) => return Err("an array where a scalar was expected".into()),
    })
}

fn elements(a: &MxArray) -> Vec<Scalar> {
    match a {
        MxArray::Bool(v) => v.iter().map(|x| Scalar::Bool(*x)).collect(),
        MxArray::Int32(v) => v.iter().map(|x| Scalar::Int(i128::from(*x))).collect(),
        MxArray::Int64(v) => v.iter().map(|x| Scalar::Int(i128::from(*x))).collect(),
        MxArray::Float(v) => v.iter().map(|x| Scalar::Float(f64::from(*x))).collect(),
        MxArray::Double(v) => v.iter().map(|x| Scalar::Float(*x)).collect(),
        MxArray::String(v) => v.iter().map(|x| Scalar::Text(x.clone())).collect(),
        MxArray::Time(v) => v.iter().map(|x| Scalar::Text(iso8601(*x))).collect(),
        MxArray::Elapsed(v) => v.iter().map(|x| Scalar::Float(elapsed_secs(x))).collect(),
    }
}

/// Why a scalar is not an integer.
enum NotInt {
    /// Not a whole number (a fraction, NaN, text that is no number); the message.
    Not(String),
    /// A whole number beyond 128 bits, as shown.
    Huge(String),
}

impl NotInt {
    fn text(self) -> String {
        match self {
            NotInt::Not(e) => e,
            NotInt::Huge(shown) => format!("{shown} is out of range"),
        }
    }
}

/// The whole number `f` is, when it is one and fits in 128 bits.
fn whole(f: f64) -> Result<i128, NotInt> {
    // 2^127: every finite f64 below it in magnitude converts exactly.
    const LIMIT: f64 = 1.7014118346046923e38;
    if !f.is_finite() || f.fract() != 0.0 {
        return Err(NotInt::Not(format!("{} is not a whole number", num(f))));
    }
    if f.abs() >= LIMIT {
        return Err(NotInt::Huge(num(f)));
    }
    Ok(f as i128)
}

fn as_int(s: &Scalar) -> Result<i128, NotInt> {
    match s {
        Scalar::Bool(b) => Ok(i128::from(*b)),
        Scalar::Int(i) => Ok(*i),
        Scalar::Float(f) => whole(*f),
        Scalar::Text(t) => match t.trim().parse::<i128>() {
            Ok(i) => Ok(i),
            Err(_) => match t.trim().parse::<f64>() {
                Ok(f) => whole(f),
                Err(_) => Err(NotInt::Not(format!(
                    "'{}' is not an integer",
                    abbreviate(t, 40)
                ))),
            },
        },
    }
}

fn is_true(s: &Scalar) -> Result<bool, String> {
    as_int(s).map(|i| i != 0).map_err(NotInt::text)
}

fn as_float(s: &Scalar) -> Result<f64, String> {
    match s {
        Scalar::Bool(b) => Ok(f64::from(u8::from(*b))),
        Scalar::Int(i) => Ok(*i as f64),
        Scalar::Float(f) => Ok(*f),
        Scalar::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| format!("'{}' is not a number", abbreviate(t, 40))),
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

/// `s` as an integer of type `T` (named `what` in errors), refusing what does not fit.
fn int_as<T: TryFrom<i128> + Bounded>(s: &Scalar, what: &str) -> Result<T, String> {
    let out_of_range = |shown| {
        format!(
            "{shown} is out of range for {what} (accepted {} to {})",
            T::LOW,
            T::HIGH
        )
    };
    match as_int(s) {
        Ok(i) => T::try_from(i).map_err(|_| out_of_range(i.to_string())),
        Err(NotInt::Huge(shown)) => Err(out_of_range(shown)),
        Err(NotInt::Not(e)) => Err(format!("{e}: {what} takes whole numbers only")),
    }
}

/// The range of an integer type, for messages.
trait Bounded {
    const LOW: i128;
    const HIGH: i128;
}

macro_rules! bounded {
    ($($t:ty),*) => {$(
        impl Bounded for $t {
            const LOW: i128 = <$t>::MIN as i128;
            const HIGH: i128 = <$t>::MAX as i128;
        }
    )*};
}

bounded!(i8, i16, i32, i64, u8, u16, u32, u64);

/// `s` as a float32, refusing finite values beyond its range (infinities and NaN are
/// float32 values too and pass).
fn float32(s: &Scalar, what: &str) -> Result<f32, String> {
    let f = as_float(s)?;
    if f.is_finite() && f.abs() > f64::from(f32::MAX) {
        return Err(format!(
            "{} is out of range for {what} (accepted {} to {})",
            num(f),
            num(f64::from(f32::MIN)),
            num(f64::from(f32::MAX))
        ));
    }
    Ok(f as f32)
}

/// Converts an MXAccess value into a value of the PV's type.
pub fn to_nt(value: &MxValue, ty: PvType) -> Result<NtValue, String> {
    use NtValue as V;
    use ScalarType as S;
    match ty {
        PvType::Enum => {
            let s = scalar(value)?;
            Ok(V::Enum(int_as(&s, "an enum index")?))
        }
        PvType::Scalar(t) => {
            let s = scalar(value)?;
            Ok(match t {
                S::Bool => V::Bool(is_true(&s)?),
                S::Int8 => V::Int8(int_as(&s, t.pv_name())?),
                S::Int16 => V::Int16(int_as(&s, t.pv_name())?),
                S::Int32 => V::Int32(int_as(&s, t.pv_name())?),
                S::Int64 => V::Int64(int_as(&s, t.pv_name())?),
                S::UInt8 => V::UInt8(int_as(&s, t.pv_name())?),
                S::UInt16 => V::UInt16(int_as(&s, t.pv_name())?),
                S::UInt32 => V::UInt32(int_as(&s, t.pv_name())?),
                S::UInt64 => V::UInt64(int_as(&s, t.pv_name())?),
                S::Float32 => V::Float32(float32(&s, t.pv_name())?),
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
                            .enumerate()
                            .map(|(i, s)| $conv(s).map_err(|e| format!("element {i}: {e}")))
                            .collect::<Result<Vec<_>, String>>()?,
                    )
                };
            }
            Ok(match t {
                S::Bool => collect!(BoolArray, is_true),
                S::Int8 => collect!(Int8Array, |s| int_as(s, t.pv_name())),
                S::Int16 => collect!(Int16Array, |s| int_as(s, t.pv_name())),
                S::Int32 => collect!(Int32Array, |s| int_as(s, t.pv_name())),
                S::Int64 => collect!(Int64Array, |s| int_as(s, t.pv_name())),
                S::UInt8 => collect!(UInt8Array, |s| int_as(s, t.pv_name())),
                S::UInt16 => collect!(UInt16Array, |s| int_as(s, t.pv_name())),
                S::UInt32 => collect!(UInt32Array, |s| int_as(s, t.pv_name())),
                S::UInt64 => collect!(UInt64Array, |s| int_as(s, t.pv_name())),
                S::Float32 => collect!(Float32Array, |s| float32(s, t.pv_name())),
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
        V::Int64(x) => Scalar::Int((*x).into()),
        V::UInt8(x) => Scalar::Int((*x).into()),
        V::UInt16(x) => Scalar::Int((*x).into()),
        V::UInt32(x) => Scalar::Int((*x).into()),
        V::UInt64(x) => Scalar::Int((*x).into()),
        V::Float32(x) => Scalar::Float((*x).into()),
        V::Float64(x) => Scalar::Float(*x),
        V::String(s) => Scalar::Text(s.clone()),
        V::Enum(i) => Scalar::Int((*i).into()),
        _ => return None,
    })
}

fn nt_elements(v: &NtValue) -> Option<Vec<Scalar>> {
    use NtValue as V;
    fn ints<T: Copy + Into<i128>>(v: &[T]) -> Vec<Scalar> {
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
        V::UInt64Array(v) => ints(v),
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
        MxDataType::Boolean => match s {
            Scalar::Text(x) if x.trim().eq_ignore_ascii_case("true") => MxValue::Bool(true),
            Scalar::Text(x) if x.trim().eq_ignore_ascii_case("false") => MxValue::Bool(false),
            _ => match as_int(s) {
                Ok(0) => MxValue::Bool(false),
                Ok(1) => MxValue::Bool(true),
                Ok(i) => return Err(format!("{i} is not a Boolean (accepted 0 or 1)")),
                Err(e) => return Err(format!("{}: a Boolean takes 0 or 1", e.text())),
            },
        },
        MxDataType::Integer => MxValue::Int32(int_as(s, "Integer")?),
        MxDataType::LongInteger => MxValue::Int64(int_as(s, "LongInteger")?),
        MxDataType::Float => {
            MxValue::Float(float32(&Scalar::Float(finite(as_float(s)?)?), "Float")?)
        }
        MxDataType::Double => MxValue::Double(finite(as_float(s)?)?),
        MxDataType::ElapsedTime => {
            let secs = finite(as_float(s)?)?;
            let out_of_range = || {
                format!(
                    "{} s is out of range for ElapsedTime (accepted 0 to {MAX_ELAPSED_SECS} s)",
                    num(secs)
                )
            };
            if !(0.0..=MAX_ELAPSED_SECS).contains(&secs) {
                return Err(out_of_range());
            }
            MxValue::Elapsed(Duration::try_from_secs_f64(secs).map_err(|_| out_of_range())?)
        }
        MxDataType::Time => {
            let text = as_text(s);
            let nanos = isotime::parse_unix_nanos(&text)?;
            let earliest = isotime::parse_unix_nanos(isotime::EARLIEST_PUT)?;
            let latest = isotime::parse_unix_nanos(isotime::LATEST_PUT)?;
            let t = (earliest..=latest)
                .contains(&nanos)
                .then(|| isotime::from_unix_nanos(nanos))
                .flatten()
                .ok_or_else(|| {
                    format!(
                        "'{}' is out of range for Time (accepted {} to {})",
                        abbreviate(&text, 40),
                        isotime::EARLIEST_PUT,
                        isotime::LATEST_PUT
                    )
                })?;
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
/// arrays). Refuses NaN and infinities, numbers out of the attribute's range, fractions
/// for integer attributes and text that is no number; never rounds or saturates.
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
    use std::time::SystemTime;

    fn refusal(value: NtValue, t: MxDataType) -> String {
        match to_mx(&value, t, false) {
            Ok(v) => panic!("{value:?} written to {t} as {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn long_values_are_shown_briefly() {
        let long = MxValue::Array(MxArray::Double(vec![0.5; 100_000]));
        let shown = brief(&long, 20);
        assert!(shown.starts_with("Double([0.5, 0.5, 0"), "{shown}");
        assert!(shown.ends_with("... (500008 characters)"), "{shown}");
        assert_eq!(brief(&MxValue::Int32(7), 20), "7");
    }

    #[test]
    fn huge_elapsed_times_are_refused_with_the_range() {
        // Issue 10, input 1: 1e30 and 1e300 panicked in Duration::from_secs_f64.
        for x in [
            1e30,
            1e300,
            f64::MAX,
            MAX_ELAPSED_SECS * 1.000_001,
            -1.0,
            -1e-9,
        ] {
            let e = refusal(NtValue::Float64(x), MxDataType::ElapsedTime);
            assert!(e.contains("out of range for ElapsedTime"), "{e}");
            assert!(e.contains("accepted 0 to 922337203685.4775 s"), "{e}");
        }
        assert_eq!(
            refusal(NtValue::Float64(1e30), MxDataType::ElapsedTime),
            "1e30 s is out of range for ElapsedTime (accepted 0 to 922337203685.4775 s)"
        );
        assert_eq!(
            to_mx(
                &NtValue::Float64(MAX_ELAPSED_SECS),
                MxDataType::ElapsedTime,
                false
            )
            .unwrap(),
            MxValue::Elapsed(Duration::from_secs_f64(MAX_ELAPSED_SECS))
        );
        let e = refusal(NtValue::String("1e30".into()), MxDataType::ElapsedTime);
        assert!(e.contains("out of range"), "{e}");
    }

    #[test]
    fn integers_out_of_range_or_fractional_are_refused_not_saturated() {
        // Issue 10, input 4: 1e19 into a LongInteger became i64::MAX.
        for t in [MxDataType::Integer, MxDataType::LongInteger] {
            for x in [1e19, -1e19, 9.3e18, 1e300] {
                let e = refusal(NtValue::Float64(x), t);
                assert!(e.contains(&format!("out of range for {t}")), "{e}");
            }
            let e = refusal(NtValue::Float64(2.5), t);
            assert!(e.contains("2.5 is not a whole number"), "{e}");
            let e = refusal(NtValue::UInt64(u64::MAX), t);
            assert!(e.contains("18446744073709551615 is out of range"), "{e}");
        }
        assert_eq!(
            refusal(NtValue::Float64(1e19), MxDataType::LongInteger),
            "10000000000000000000 is out of range for LongInteger \
             (accepted -9223372036854775808 to 9223372036854775807)"
        );
        assert_eq!(
            refusal(NtValue::Int64(1 << 40), MxDataType::Integer),
            "1099511627776 is out of range for Integer (accepted -2147483648 to 2147483647)"
        );
        assert_eq!(
            to_mx(&NtValue::Float64(-9.2e18), MxDataType::LongInteger, false).unwrap(),
            MxValue::Int64(-9_200_000_000_000_000_000)
        );
        assert_eq!(
            to_mx(&NtValue::String(" 1e3 ".into()), MxDataType::Integer, false).unwrap(),
            MxValue::Int32(1000)
        );
        let e = refusal(NtValue::Float64(1e39), MxDataType::Float);
        assert!(e.contains("out of range for Float"), "{e}");
    }

    #[test]
    fn times_before_1970_are_served_and_written() {
        // Issue 10, input 2: the FILETIME epoch that unset Time attributes report.
        let filetime_epoch = SystemTime::UNIX_EPOCH - Duration::from_secs(11_644_473_600);
        assert_eq!(
            to_nt(
                &MxValue::Time(filetime_epoch),
                PvType::Scalar(ScalarType::String)
            )
            .unwrap(),
            NtValue::String("1601-01-01T00:00:00.000Z".into())
        );
        assert_eq!(
            to_mx(
                &NtValue::String("1601-01-01T00:00:00Z".into()),
                MxDataType::Time,
                false
            )
            .unwrap(),
            MxValue::Time(filetime_epoch)
        );
        let e = refusal(
            NtValue::String("1600-12-31T23:59:59Z".into()),
            MxDataType::Time,
        );
        assert!(e.contains("accepted 1601-01-01T00:00:00Z to"), "{e}");
    }

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
