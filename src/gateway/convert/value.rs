//! Values and times on the wire. Decoding is total: every message decodes to a value or
//! to an error that says why, never a panic, and nothing is allocated past
//! [`ValueLimits`] (a sparse array's total length included) before it is checked.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::limits::ValueLimits;
use super::super::pb::gw as pb;
use super::super::types::*;
use super::{data_type_from_pb, data_type_to_pb};

/// The earliest time decoded, 0001-01-01T00:00:00Z: the start of protobuf's Timestamp
/// range (a VT_DATE reaches back to the year 100; System Platform's FILETIME to 1601).
pub(crate) const EARLIEST_SECONDS: i64 = -62_135_596_800;
/// The latest second decoded, 9999-12-31T23:59:59Z: the end of protobuf's Timestamp range.
pub(crate) const LATEST_SECONDS: i64 = 253_402_300_799;

pub(crate) fn time_to_pb(t: SystemTime) -> prost_types::Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => prost_types::Timestamp {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos() as i32,
        },
        Err(e) => {
            // Before 1970: floor the seconds, nanos count forward from there.
            let d = e.duration();
            let mut seconds = i64::try_from(d.as_secs()).map_or(i64::MIN, |s| -s);
            let mut nanos = d.subsec_nanos() as i32;
            if nanos > 0 {
                seconds = seconds.saturating_sub(1);
                nanos = 1_000_000_000 - nanos;
            }
            prost_types::Timestamp { seconds, nanos }
        }
    }
}

/// A protobuf Timestamp as the time it names. A valid one has nanos in 0..1e9 (counting
/// forward, also before 1970) and lies in protobuf's range, 0001-01-01 to 9999-12-31.
pub(crate) fn time_from_pb(t: &prost_types::Timestamp) -> Result<SystemTime, String> {
    let out_of_range = || {
        format!(
            "time {}s {}ns is outside 0001-01-01 to 9999-12-31 or not a valid timestamp",
            t.seconds, t.nanos
        )
    };
    if !(0..1_000_000_000).contains(&t.nanos)
        || !(EARLIEST_SECONDS..=LATEST_SECONDS).contains(&t.seconds)
    {
        return Err(out_of_range());
    }
    let whole = if t.seconds >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(t.seconds.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(t.seconds.unsigned_abs()))
    };
    whole
        .and_then(|w| w.checked_add(Duration::from_nanos(t.nanos.unsigned_abs().into())))
        .ok_or_else(out_of_range)
}

pub(crate) fn duration_to_pb(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

/// A protobuf Duration as an elapsed time: not negative, nanos in 0..1e9.
pub(crate) fn duration_from_pb(d: &prost_types::Duration) -> Result<Duration, String> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err(format!(
            "negative elapsed time {}s {}ns is not supported",
            d.seconds, d.nanos
        ));
    }
    if d.nanos >= 1_000_000_000 {
        return Err(format!(
            "elapsed time nanos {} is not below 1000000000",
            d.nanos
        ));
    }
    Ok(Duration::new(
        d.seconds.unsigned_abs(),
        d.nanos.unsigned_abs(),
    ))
}

fn variant_type(v: &MxValue) -> &'static str {
    match v {
        MxValue::Null => "VT_EMPTY",
        MxValue::Bool(_) => "VT_BOOL",
        MxValue::Int32(_) => "VT_I4",
        MxValue::Int64(_) => "VT_I8",
        MxValue::Float(_) => "VT_R4",
        MxValue::Double(_) => "VT_R8",
        MxValue::String(_) => "VT_BSTR",
        MxValue::Time(_) => "VT_DATE",
        MxValue::Elapsed(_) => "VT_I8",
        MxValue::Array(_) => "VT_ARRAY",
        MxValue::Bytes(_) => "VT_RECORD",
    }
}

/// Encode a value. `declared` is the attribute's type when known (the
/// simulator knows it; a client writing passes None).
pub(crate) fn value_to_pb(v: &MxValue, declared: Option<MxDataType>) -> pb::MxValue {
    use pb::mx_value::Kind;
    let dt = declared.unwrap_or_else(|| v.data_type());
    let kind = match v {
        MxValue::Null => None,
        MxValue::Bool(b) => Some(Kind::BoolValue(*b)),
        MxValue::Int32(i) => Some(Kind::Int32Value(*i)),
        MxValue::Int64(i) => Some(Kind::Int64Value(*i)),
        MxValue::Float(f) => Some(Kind::FloatValue(*f)),
        MxValue::Double(f) => Some(Kind::DoubleValue(*f)),
        MxValue::String(s) => Some(Kind::StringValue(s.clone())),
        MxValue::Time(t) => Some(Kind::TimestampValue(time_to_pb(*t))),
        MxValue::Elapsed(d) => Some(Kind::ElapsedValue(duration_to_pb(*d))),
        MxValue::Bytes(b) => Some(Kind::BytesValue(b.clone())),
        MxValue::Array(a) => {
            let mut arr = pb::MxArray {
                element_data_type: data_type_to_pb(a.element_type()) as i32,
                dimensions: vec![u32::try_from(a.len()).unwrap_or(u32::MAX)],
                ..Default::default()
            };
            match a {
                MxArray::Bool(v) => arr.bool_values = v.clone(),
                MxArray::Int32(v) => arr.int32_values = v.clone(),
                MxArray::Int64(v) => arr.int64_values = v.clone(),
                MxArray::Float(v) => arr.float_values = v.clone(),
                MxArray::Double(v) => arr.double_values = v.clone(),
                MxArray::String(v) => arr.string_values = v.clone(),
                MxArray::Time(v) => {
                    arr.timestamp_values = v.iter().map(|t| time_to_pb(*t)).collect()
                }
                MxArray::Elapsed(v) => {
                    arr.elapsed_values = v.iter().map(|d| duration_to_pb(*d)).collect()
                }
            }
            Some(Kind::ArrayValue(arr))
        }
    };
    pb::MxValue {
        data_type: data_type_to_pb(dt) as i32,
        variant_type: variant_type(v).to_string(),
        is_null: matches!(v, MxValue::Null),
        raw_diagnostic: String::new(),
        raw_data_type: dt.native_code(),
        kind,
    }
}

/// Decode a value within `limits`. `allow_sparse` is true only on write paths, where
/// the gateway expands a sparse array into a default-filled whole array.
pub(crate) fn value_from_pb(
    v: &pb::MxValue,
    limits: &ValueLimits,
    allow_sparse: bool,
) -> Result<MxValue, String> {
    use pb::mx_value::Kind;
    let Some(kind) = &v.kind else {
        return Ok(MxValue::Null);
    };
    Ok(match kind {
        Kind::BoolValue(b) => MxValue::Bool(*b),
        Kind::Int32Value(i) => MxValue::Int32(*i),
        Kind::Int64Value(i) => MxValue::Int64(*i),
        Kind::FloatValue(f) => MxValue::Float(*f),
        Kind::DoubleValue(f) => MxValue::Double(*f),
        Kind::StringValue(s) => {
            limits.check_string(s.len())?;
            MxValue::String(s.clone())
        }
        Kind::TimestampValue(t) => MxValue::Time(time_from_pb(t)?),
        Kind::ElapsedValue(d) => MxValue::Elapsed(duration_from_pb(d)?),
        Kind::BytesValue(b) => {
            limits.check_array("opaque value", b.len() as u64)?;
            MxValue::Bytes(b.clone())
        }
        Kind::ArrayValue(a) => MxValue::Array(array_from_pb(a, limits)?),
        Kind::SparseArrayValue(s) => {
            if !allow_sparse {
                return Err("a sparse array is accepted only in writes".into());
            }
            MxValue::Array(expand_sparse(s, limits)?)
        }
    })
}

/// The name of a data type code as it came, unknown codes included.
fn type_name(code: i32) -> String {
    match pb::MxDataType::try_from(code) {
        Ok(_) => data_type_from_pb(code).to_string(),
        Err(_) => format!("unknown data type {code}"),
    }
}

/// The repeated fields of an array that carry elements, with their lengths.
fn carried_fields(a: &pb::MxArray) -> Vec<(&'static str, usize)> {
    [
        ("bool", a.bool_values.len()),
        ("int32", a.int32_values.len()),
        ("int64", a.int64_values.len()),
        ("float", a.float_values.len()),
        ("double", a.double_values.len()),
        ("string", a.string_values.len()),
        ("timestamp", a.timestamp_values.len()),
        ("elapsed", a.elapsed_values.len()),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect()
}

fn array_from_pb(a: &pb::MxArray, limits: &ValueLimits) -> Result<MxArray, String> {
    let et = data_type_from_pb(a.element_data_type);
    let field = match et {
        MxDataType::Boolean => "bool",
        MxDataType::Integer => "int32",
        MxDataType::LongInteger => "int64",
        MxDataType::Float => "float",
        MxDataType::Double => "double",
        MxDataType::String
        | MxDataType::BigString
        | MxDataType::ReferenceType
        | MxDataType::InternationalizedString => "string",
        MxDataType::Time => "timestamp",
        MxDataType::ElapsedTime => "elapsed",
        _ => {
            return Err(format!(
                "arrays of {} are not supported",
                type_name(a.element_data_type)
            ))
        }
    };
    // Checked before anything is copied: the declared size, then what is carried.
    let declared = a
        .dimensions
        .iter()
        .try_fold(1u64, |n, d| n.checked_mul(u64::from(*d)))
        .unwrap_or(u64::MAX);
    if !a.dimensions.is_empty() {
        limits.check_array("array", declared)?;
    }
    let carried = carried_fields(a);
    let len = match carried.as_slice() {
        [] => 0,
        [(f, n)] if *f == field => *n,
        [(f, _)] => return Err(format!("array of {et} carries {f} values")),
        [(f, _), (g, _), ..] => {
            return Err(format!("array carries both {f} and {g} values"));
        }
    };
    limits.check_array("array", len as u64)?;
    if !a.dimensions.is_empty() && declared != len as u64 {
        return Err(format!(
            "array declares {declared} elements but carries {len}"
        ));
    }
    let arr = match et {
        MxDataType::Boolean => MxArray::Bool(a.bool_values.clone()),
        MxDataType::Integer => MxArray::Int32(a.int32_values.clone()),
        MxDataType::LongInteger => MxArray::Int64(a.int64_values.clone()),
        MxDataType::Float => MxArray::Float(a.float_values.clone()),
        MxDataType::Double => MxArray::Double(a.double_values.clone()),
        MxDataType::Time => MxArray::Time(each(&a.timestamp_values, time_from_pb)?),
        MxDataType::ElapsedTime => MxArray::Elapsed(each(&a.elapsed_values, duration_from_pb)?),
        _ => MxArray::String(each(&a.string_values, |s| {
            limits.check_string(s.len()).map(|()| s.clone())
        })?),
    };
    Ok(arr)
}

/// Every element decoded by `f`; the first that fails names its index.
fn each<T, U>(v: &[T], f: impl Fn(&T) -> Result<U, String>) -> Result<Vec<U>, String> {
    v.iter()
        .enumerate()
        .map(|(i, x)| f(x).map_err(|e| format!("element {i}: {e}")))
        .collect()
}

/// A write's sparse array as the whole array the gateway makes of it: `total_length`
/// elements of the type's default, with the given ones set.
fn expand_sparse(s: &pb::MxSparseArray, limits: &ValueLimits) -> Result<MxArray, String> {
    if s.total_length == 0 {
        return Err("sparse array total_length must be > 0".into());
    }
    limits.check_array("sparse array", u64::from(s.total_length))?;
    let n = usize::try_from(s.total_length).map_err(|_| "sparse array too long".to_string())?;
    let et = data_type_from_pb(s.element_data_type);
    let mut arr = match et {
        MxDataType::Boolean => MxArray::Bool(vec![false; n]),
        MxDataType::Integer => MxArray::Int32(vec![0; n]),
        MxDataType::LongInteger => MxArray::Int64(vec![0; n]),
        MxDataType::Float => MxArray::Float(vec![0.0; n]),
        MxDataType::Double => MxArray::Double(vec![0.0; n]),
        MxDataType::String => MxArray::String(vec![String::new(); n]),
        MxDataType::Time => MxArray::Time(vec![UNIX_EPOCH; n]),
        _ => {
            return Err(format!(
                "sparse arrays of {} are not supported",
                type_name(s.element_data_type)
            ))
        }
    };
    let mut seen = vec![false; n];
    for e in &s.elements {
        let i = e.index as usize;
        let Some(slot) = seen.get_mut(i) else {
            return Err(format!(
                "sparse element index {i} is not below total_length {n}"
            ));
        };
        if std::mem::replace(slot, true) {
            return Err(format!("sparse element index {i} appears twice"));
        }
        let v = value_from_pb(
            e.value.as_ref().ok_or("sparse element without value")?,
            limits,
            false,
        )
        .map_err(|e| format!("sparse element {i}: {e}"))?;
        let ok = match (&mut arr, v) {
            (MxArray::Bool(a), MxValue::Bool(x)) => set(a, i, x),
            (MxArray::Int32(a), MxValue::Int32(x)) => set(a, i, x),
            (MxArray::Int64(a), MxValue::Int64(x)) => set(a, i, x),
            (MxArray::Float(a), MxValue::Float(x)) => set(a, i, x),
            (MxArray::Double(a), MxValue::Double(x)) => set(a, i, x),
            (MxArray::String(a), MxValue::String(x)) => set(a, i, x),
            (MxArray::Time(a), MxValue::Time(x)) => set(a, i, x),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "sparse element {i} does not match element type {et}"
            ));
        }
    }
    Ok(arr)
}

/// Sets `a[i]` if it exists.
fn set<T>(a: &mut [T], i: usize, x: T) -> bool {
    match a.get_mut(i) {
        Some(slot) => {
            *slot = x;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ValueLimits = ValueLimits::DEFAULT;

    fn decode(v: &pb::MxValue) -> Result<MxValue, String> {
        value_from_pb(v, &LIMITS, false)
    }

    fn wrap(kind: pb::mx_value::Kind) -> pb::MxValue {
        pb::MxValue {
            kind: Some(kind),
            ..Default::default()
        }
    }

    #[test]
    fn values_round_trip() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        for v in [
            MxValue::Null,
            MxValue::Bool(true),
            MxValue::Int32(-5),
            MxValue::Int64(1 << 40),
            MxValue::Float(1.5),
            MxValue::Double(-2.25),
            MxValue::String("héllo".into()),
            MxValue::Time(t),
            MxValue::Elapsed(Duration::from_millis(1500)),
            MxValue::Array(MxArray::Double(vec![1.0, 2.0])),
            MxValue::Array(MxArray::Time(vec![t])),
            MxValue::Bytes(vec![1, 2, 3]),
        ] {
            assert_eq!(decode(&value_to_pb(&v, None)).unwrap(), v);
        }
    }

    #[test]
    fn pre_epoch_time_round_trips() {
        let t = UNIX_EPOCH - Duration::from_millis(1500);
        let pb = time_to_pb(t);
        assert_eq!((pb.seconds, pb.nanos), (-2, 500_000_000));
        assert_eq!(time_from_pb(&pb), Ok(t));
    }

    /// 1601-01-01T00:00:00Z, the FILETIME epoch System Platform reports for a Time
    /// attribute never set, is a legitimate value: it decodes to that very instant.
    #[test]
    fn the_filetime_epoch_decodes_to_1601_01_01() {
        let days_1601_to_1970: u64 = 134_774;
        let t = time_from_pb(&prost_types::Timestamp {
            seconds: -11_644_473_600,
            nanos: 0,
        })
        .unwrap();
        assert_eq!(
            UNIX_EPOCH.duration_since(t).unwrap(),
            Duration::from_secs(days_1601_to_1970 * 86_400)
        );
        let v = decode(&wrap(pb::mx_value::Kind::TimestampValue(time_to_pb(t)))).unwrap();
        assert_eq!(v, MxValue::Time(t));
    }

    #[test]
    fn times_out_of_range_are_refused_with_the_reason() {
        for (seconds, nanos) in [
            (EARLIEST_SECONDS - 1, 999_999_999),
            (LATEST_SECONDS + 1, 0),
            (i64::MIN, 0),
            (i64::MAX, 999_999_999),
            (0, 1_000_000_000),
            (0, -1),
            (-1, i32::MIN),
        ] {
            let e = time_from_pb(&prost_types::Timestamp { seconds, nanos }).unwrap_err();
            assert!(e.contains("outside 0001-01-01 to 9999-12-31"), "{e}");
        }
        // The ends of the range, and a time before 1601 (a VT_DATE can hold one), decode
        // to exactly the instant they name.
        let year_1500 = -14_818_680_000; // 1500-06-01T12:00:00Z
        for (seconds, nanos) in [
            (LATEST_SECONDS, 999_999_999),
            (EARLIEST_SECONDS, 0),
            (year_1500, 250_000_000),
        ] {
            let t = prost_types::Timestamp { seconds, nanos };
            assert_eq!(time_to_pb(time_from_pb(&t).unwrap()), t);
        }
    }

    /// Issue 10: a sparse total of u32::MAX made the decoder allocate that many
    /// elements (an abort: "memory allocation of 103079215080 bytes failed"). It is
    /// refused before anything is allocated.
    #[test]
    fn a_huge_sparse_total_is_refused_before_allocating() {
        for et in [pb::MxDataType::String, pb::MxDataType::Double] {
            let v = wrap(pb::mx_value::Kind::SparseArrayValue(pb::MxSparseArray {
                element_data_type: et as i32,
                total_length: u32::MAX,
                elements: vec![],
            }));
            assert_eq!(
                value_from_pb(&v, &LIMITS, true).unwrap_err(),
                "sparse array of 4294967295 elements exceeds [limits] max_array_length 100000"
            );
        }
    }

    #[test]
    fn arrays_and_strings_past_a_cap_are_refused() {
        let small = ValueLimits {
            max_array_length: 3,
            max_string_length: 4,
        };
        let array = |n: usize| {
            wrap(pb::mx_value::Kind::ArrayValue(pb::MxArray {
                element_data_type: pb::MxDataType::Double as i32,
                double_values: vec![0.5; n],
                ..Default::default()
            }))
        };
        assert!(value_from_pb(&array(3), &small, false).is_ok());
        assert_eq!(
            value_from_pb(&array(4), &small, false).unwrap_err(),
            "array of 4 elements exceeds [limits] max_array_length 3"
        );
        // A declared size is refused before what it carries is looked at, and a
        // product of dimensions that overflows is not a panic.
        let dims = wrap(pb::mx_value::Kind::ArrayValue(pb::MxArray {
            element_data_type: pb::MxDataType::Double as i32,
            dimensions: vec![u32::MAX; 3],
            ..Default::default()
        }));
        assert_eq!(
            decode(&dims).unwrap_err(),
            format!(
                "array of {} elements exceeds [limits] max_array_length 100000",
                u64::MAX
            )
        );
        let text = |s: &str| wrap(pb::mx_value::Kind::StringValue(s.into()));
        assert!(value_from_pb(&text("abcd"), &small, false).is_ok());
        assert_eq!(
            value_from_pb(&text("abcde"), &small, false).unwrap_err(),
            "string of 5 bytes exceeds [limits] max_string_length 4"
        );
        let strings = wrap(pb::mx_value::Kind::ArrayValue(pb::MxArray {
            element_data_type: pb::MxDataType::String as i32,
            string_values: vec!["ok".into(), "too long".into()],
            ..Default::default()
        }));
        assert_eq!(
            value_from_pb(&strings, &small, false).unwrap_err(),
            "element 1: string of 8 bytes exceeds [limits] max_string_length 4"
        );
    }

    #[test]
    fn inconsistent_arrays_say_what_is_wrong() {
        let arr = |et: i32, f: fn(&mut pb::MxArray)| {
            let mut a = pb::MxArray {
                element_data_type: et,
                ..Default::default()
            };
            f(&mut a);
            decode(&wrap(pb::mx_value::Kind::ArrayValue(a))).unwrap_err()
        };
        let double = pb::MxDataType::Double as i32;
        assert_eq!(
            arr(double, |a| a.int32_values = vec![1]),
            "array of Double carries int32 values"
        );
        assert_eq!(
            arr(double, |a| {
                a.double_values = vec![1.0];
                a.string_values = vec!["x".into()];
            }),
            "array carries both double and string values"
        );
        assert_eq!(
            arr(999, |a| a.double_values = vec![1.0]),
            "arrays of unknown data type 999 are not supported"
        );
        assert_eq!(
            arr(double, |a| {
                a.double_values = vec![1.0];
                a.dimensions = vec![2];
            }),
            "array declares 2 elements but carries 1"
        );
    }

    #[test]
    fn sparse_arrays_expand_and_reject_bad_input() {
        let el = |i, x| pb::MxSparseElement {
            index: i,
            value: Some(value_to_pb(&MxValue::Double(x), None)),
        };
        let mut s = pb::MxSparseArray {
            element_data_type: pb::MxDataType::Double as i32,
            total_length: 3,
            elements: vec![el(1, 5.0)],
        };
        let v = wrap(pb::mx_value::Kind::SparseArrayValue(s.clone()));
        assert_eq!(
            value_from_pb(&v, &LIMITS, true).unwrap(),
            MxValue::Array(MxArray::Double(vec![0.0, 5.0, 0.0]))
        );
        assert!(decode(&v).is_err());
        s.elements.push(el(1, 6.0));
        assert!(expand_sparse(&s, &LIMITS).unwrap_err().contains("twice"));
        s.elements = vec![el(3, 1.0)];
        assert!(expand_sparse(&s, &LIMITS)
            .unwrap_err()
            .contains("not below"));
    }
}
