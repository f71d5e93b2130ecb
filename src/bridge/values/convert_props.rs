//! Generated hostile inputs for value conversion, both ways: every MXAccess type against
//! every PV type. Case counts are set per property (see `CASES`); together they run in
//! a few seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::collection::vec;
use proptest::prelude::*;

use super::convert::{default_pv_type, to_mx, to_nt, MAX_ELAPSED_SECS};
use crate::gateway::{MxArray, MxDataType, MxValue};
use crate::pva::{NtValue, PvType, ScalarType};

/// Cases per property; the never-panics properties take the most.
const CASES: u32 = 20_000;

/// Any f64, with the awkward ones (NaN, infinities, extremes, huge, tiny) often.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(1e19),
        Just(-1e19),
        Just(1e30),
        Just(MAX_ELAPSED_SECS),
        Just(-0.0),
        -1e20..1e20f64,
    ]
}

fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<f32>(),
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::MAX)
    ]
}

/// Any text: unicode, numbers, times, booleans.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i128>().prop_map(|i| i.to_string()),
        Just("1601-01-01T00:00:00Z".to_string()),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
        Just("true".to_string()),
        Just("NaN".to_string()),
        Just("1e400".to_string()),
    ]
}

/// Any SystemTime the platform holds, far past and future included.
fn any_time() -> impl Strategy<Value = SystemTime> {
    (any::<bool>(), any::<u64>(), 0u32..1_000_000_000).prop_map(|(past, secs, nanos)| {
        let d = Duration::new(secs >> (secs % 64), nanos);
        let t = if past {
            UNIX_EPOCH.checked_sub(d)
        } else {
            UNIX_EPOCH.checked_add(d)
        };
        t.unwrap_or(UNIX_EPOCH)
    })
}

fn any_duration() -> impl Strategy<Value = Duration> {
    (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s >> (s % 64), n))
}

fn any_mx_array() -> impl Strategy<Value = MxArray> {
    let n = 0..6;
    prop_oneof![
        vec(any::<bool>(), n.clone()).prop_map(MxArray::Bool),
        vec(any::<i32>(), n.clone()).prop_map(MxArray::Int32),
        vec(any::<i64>(), n.clone()).prop_map(MxArray::Int64),
        vec(any_f32(), n.clone()).prop_map(MxArray::Float),
        vec(any_f64(), n.clone()).prop_map(MxArray::Double),
        vec(any_text(), n.clone()).prop_map(MxArray::String),
        vec(any_time(), n.clone()).prop_map(MxArray::Time),
        vec(any_duration(), n).prop_map(MxArray::Elapsed),
    ]
}

/// Any value the gateway can deliver.
fn any_mx() -> impl Strategy<Value = MxValue> {
    prop_oneof![
        any::<bool>().prop_map(MxValue::Bool),
        any::<i32>().prop_map(MxValue::Int32),
        any::<i64>().prop_map(MxValue::Int64),
        any_f32().prop_map(MxValue::Float),
        any_f64().prop_map(MxValue::Double),
        any_text().prop_map(MxValue::String),
        any_time().prop_map(MxValue::Time),
        any_duration().prop_map(MxValue::Elapsed),
        Just(MxValue::Null),
        vec(any::<u8>(), 0..8).prop_map(MxValue::Bytes),
        any_mx_array().prop_map(MxValue::Array),
    ]
}

fn any_pv_type() -> impl Strategy<Value = PvType> {
    prop_oneof![
        Just(PvType::Enum),
        proptest::sample::select(ScalarType::ALL.to_vec()).prop_map(PvType::Scalar),
        proptest::sample::select(ScalarType::ALL.to_vec()).prop_map(PvType::Array),
    ]
}

/// Any value a client can put, of any PV type.
pub(in crate::bridge) fn any_nt() -> impl Strategy<Value = NtValue> {
    let n = 0..6;
    prop_oneof![
        any::<bool>().prop_map(NtValue::Bool),
        any::<i8>().prop_map(NtValue::Int8),
        any::<i16>().prop_map(NtValue::Int16),
        any::<i32>().prop_map(NtValue::Int32),
        any::<i64>().prop_map(NtValue::Int64),
        any::<u8>().prop_map(NtValue::UInt8),
        any::<u16>().prop_map(NtValue::UInt16),
        any::<u32>().prop_map(NtValue::UInt32),
        any::<u64>().prop_map(NtValue::UInt64),
        any_f32().prop_map(NtValue::Float32),
        any_f64().prop_map(NtValue::Float64),
        any_text().prop_map(NtValue::String),
        any::<i32>().prop_map(NtValue::Enum),
        vec(any::<bool>(), n.clone()).prop_map(NtValue::BoolArray),
        vec(any::<i8>(), n.clone()).prop_map(NtValue::Int8Array),
        vec(any::<i16>(), n.clone()).prop_map(NtValue::Int16Array),
        vec(any::<i32>(), n.clone()).prop_map(NtValue::Int32Array),
        vec(any::<i64>(), n.clone()).prop_map(NtValue::Int64Array),
        vec(any::<u8>(), n.clone()).prop_map(NtValue::UInt8Array),
        vec(any::<u16>(), n.clone()).prop_map(NtValue::UInt16Array),
        vec(any::<u32>(), n.clone()).prop_map(NtValue::UInt32Array),
        vec(any::<u64>(), n.clone()).prop_map(NtValue::UInt64Array),
        vec(any_f32(), n.clone()).prop_map(NtValue::Float32Array),
        vec(any_f64(), n.clone()).prop_map(NtValue::Float64Array),
        vec(any_text(), n).prop_map(NtValue::StringArray),
    ]
}

/// Every MXAccess type, the ones that cannot be written included.
fn any_mx_type() -> impl Strategy<Value = MxDataType> {
    prop_oneof![
        (-1i32..=17).prop_map(MxDataType::from_native_code),
        Just(MxDataType::LongInteger),
    ]
}

/// A written value is a value of the attribute's type that System Platform can hold.
fn check_written(v: &MxValue, t: MxDataType, array: bool) -> Result<(), TestCaseError> {
    let scalars: Vec<MxValue> = match v {
        MxValue::Array(a) => {
            prop_assert!(array, "an array for a scalar attribute: {v:?}");
            (0..a.len()).filter_map(|i| a.get(i)).collect()
        }
        other => {
            prop_assert!(!array, "a scalar for an array attribute: {v:?}");
            vec![other.clone()]
        }
    };
    for s in scalars {
        let expected = match t {
            MxDataType::BigString
            | MxDataType::InternationalizedString
            | MxDataType::ReferenceType => MxDataType::String,
            t => t,
        };
        prop_assert_eq!(s.data_type(), expected, "{:?}", s);
        match s {
            MxValue::Float(f) => prop_assert!(f.is_finite()),
            MxValue::Double(f) => prop_assert!(f.is_finite()),
            MxValue::Elapsed(d) => prop_assert!(d.as_secs_f64() <= MAX_ELAPSED_SECS),
            MxValue::Time(t) => {
                prop_assert!(t >= UNIX_EPOCH - Duration::from_secs(11_644_473_600))
            }
            _ => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Gateway data into every PV type: never panics; what converts has the PV's type;
    /// what does not gives a reason.
    #[test]
    fn any_gateway_value_to_any_pv_type(v in any_mx(), ty in any_pv_type()) {
        match to_nt(&v, ty) {
            Ok(nt) => prop_assert_eq!(nt.pv_type(), ty),
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    /// Any put into every attribute type: never panics; what converts is a value the
    /// attribute holds (finite, in range, of its type); what does not gives a reason.
    #[test]
    fn any_put_to_any_attribute_type(v in any_nt(), t in any_mx_type(), array in any::<bool>()) {
        match to_mx(&v, t, array) {
            Ok(mx) => check_written(&mx, t, array)?,
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }
}

/// Values whose default PV type shows them faithfully, written back as they came.
fn faithful_mx() -> impl Strategy<Value = MxValue> {
    let ms_time = (-11_644_473_600_000i64..253_402_300_799_000).prop_map(|ms| {
        let d = Duration::from_millis(ms.unsigned_abs());
        MxValue::Time(if ms < 0 {
            UNIX_EPOCH - d
        } else {
            UNIX_EPOCH + d
        })
    });
    prop_oneof![
        any::<bool>().prop_map(MxValue::Bool),
        any::<i32>().prop_map(MxValue::Int32),
        any::<i64>().prop_map(MxValue::Int64),
        any::<f32>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(MxValue::Float),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(MxValue::Double),
        any::<String>().prop_map(MxValue::String),
        ms_time,
        (0u64..1 << 40).prop_map(|ms| MxValue::Elapsed(Duration::from_millis(ms))),
        vec(any::<i32>(), 0..6).prop_map(|v| MxValue::Array(MxArray::Int32(v))),
        vec(any::<String>(), 0..6).prop_map(|v| MxValue::Array(MxArray::String(v))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES / 4))]

    /// Served with its default PV type and put back, a value is the value it was
    /// (ElapsedTime to the microsecond: it travels as float64 seconds).
    #[test]
    fn served_and_put_back_is_the_same(v in faithful_mx(), as_enum in any::<bool>()) {
        let (t, array) = match &v {
            MxValue::Array(a) => (a.element_type(), true),
            other => (other.data_type(), false),
        };
        let ty = default_pv_type(t, array, as_enum).unwrap();
        let nt = to_nt(&v, ty).unwrap();
        let back = to_mx(&nt, t, array).unwrap();
        match (&v, &back) {
            (MxValue::Elapsed(a), MxValue::Elapsed(b)) => {
                prop_assert!(a.abs_diff(*b) <= Duration::from_micros(1), "{:?} {:?}", a, b)
            }
            _ => prop_assert_eq!(&back, &v),
        }
    }
}

/// One writable PV whose attribute last reported the type of `sample`.
fn writable_pv(sample: &MxValue) -> crate::bridge::mapping::pv::MappedPv {
    let text = r#"
[gateway]
endpoint = "http://127.0.0.1:1"
[[pv]]
name = "HOSTILE:X"
tag = "Obj.Attr"
writable = true
"#;
    let config =
        crate::config::Config::from_str_at(text, std::path::Path::new("props.toml")).unwrap();
    let (events, _rx) = crate::pva::event_channel();
    let mut pv =
        crate::bridge::mapping::pv::MappedPv::new(config.pvs[0].clone(), &config.defaults, &events)
            .unwrap();
    pv.item = Some(crate::gateway::ItemHandle(1));
    pv.sample(sample, crate::gateway::Quality::GOOD, None, &[], false);
    pv
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES / 10))]

    /// Through the bridge's put check: any put to an attribute of any type is written as
    /// that type or refused with a message that starts with the PV's name.
    #[test]
    fn a_refused_put_names_the_pv(sample in any_mx(), v in any_nt()) {
        prop_assume!(!matches!(sample, MxValue::Null));
        let pv = writable_pv(&sample);
        let put = crate::pva::PutRequest {
            pv: "HOSTILE:X".into(),
            value: Some(v),
            marked: vec!["value".into()],
            credentials: Default::default(),
            completion: crate::pva::PutCompletion::new(cxx::UniquePtr::null()),
            refused: None,
        };
        match pv.prepare_write(&put) {
            Ok(entry) => {
                let (t, array) = match &sample {
                    MxValue::Array(a) => (a.element_type(), true),
                    v => (v.data_type(), false),
                };
                check_written(&entry.value, t, array)?;
            }
            Err(e) => prop_assert!(e.starts_with("HOSTILE:X: "), "{}", e),
        }
    }
}
