//! Generated hostile input through every decoder of gateway data (and of what the
//! simulator decodes from its clients). One strategy per protobuf message; the
//! properties say what must hold for any input:
//!
//! - decoding never panics (a panic fails the case);
//! - whatever decodes respects the caps (array, sparse total, string, opaque bytes);
//! - a value that decodes re-encodes to the same value (bit for bit, NaN included);
//! - an event always decodes to an event of its own item and sequence, an
//!   [`SessionEvent::Undecodable`] with a reason when it cannot be shown;
//! - arbitrary bytes, decoded by prost as a message, go through the same paths.
//!
//! Case counts are bounded ([`CASES`] per property, 9 properties, a few seconds in a
//! debug build) so that `cargo test` stays quick; failures found are kept in
//! `proptest-regressions/` and replayed first.
use proptest::prelude::*;
use prost::Message;

use super::super::handles::refuse_shared_handles;
use super::super::limits::{ValueLimits, MAX_PEER_TEXT};
use super::super::pb::gw as pb;
use super::super::types::*;
use super::*;

/// Cases per property.
const CASES: u32 = 2048;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

/// The caps: the defaults, or small ones that generated values often exceed.
fn any_limits() -> impl Strategy<Value = ValueLimits> {
    prop_oneof![
        Just(ValueLimits::DEFAULT),
        (1usize..=24, 1usize..=48).prop_map(|(a, s)| ValueLimits {
            max_array_length: a,
            max_string_length: s,
        }),
    ]
}

/// An enum code: a known one, its neighbours, or anything.
fn any_code(known: i32) -> impl Strategy<Value = i32> {
    prop_oneof![0..=known, known + 1..=known + 3, any::<i32>()]
}

/// A length a peer claims: small, near a cap, or huge.
fn any_claim() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..=40, 99_990u32..=100_010, any::<u32>(), Just(u32::MAX)]
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,8}", ".{0,64}", "[a-z]{40,80}"]
}

/// Seconds around the range a time may have (0001 to 9999), 1601 and 1970, and far outside.
fn any_timestamp() -> BoxedStrategy<prost_types::Timestamp> {
    let seconds = prop_oneof![
        2 => EARLIEST_SECONDS - 2..=EARLIEST_SECONDS + 2,
        2 => -2i64..=2,
        2 => -11_644_473_602i64..=-11_644_473_598,
        2 => LATEST_SECONDS - 2..=LATEST_SECONDS + 2,
        8 => EARLIEST_SECONDS..=LATEST_SECONDS,
        1 => any::<i64>(),
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
    ];
    let nanos = prop_oneof![
        8 => 0..1_000_000_000,
        1 => Just(999_999_999),
        1 => Just(1_000_000_000),
        1 => any::<i32>()
    ];
    (seconds, nanos)
        .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos })
        .boxed()
}

fn any_duration() -> impl Strategy<Value = prost_types::Duration> {
    let nanos = prop_oneof![0..1_000_000_000, any::<i32>()];
    (any::<i64>(), nanos).prop_map(|(seconds, nanos)| prost_types::Duration { seconds, nanos })
}

/// Floats with NaN, infinities, zeros and subnormals among them.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        any::<f64>(),
    ]
}

fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![Just(f32::NAN), Just(f32::INFINITY), any::<f32>()]
}

fn any_vec<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Vec<T>> {
    prop_oneof![Just(Vec::new()), prop::collection::vec(s, 0..40)]
}

/// An array whose element type, dimensions and carried fields need not agree.
fn any_array() -> BoxedStrategy<pb::MxArray> {
    (
        (any_code(20), prop::collection::vec(any_claim(), 0..3)),
        (
            any_vec(any::<bool>()),
            any_vec(any::<i32>()),
            any_vec(any::<i64>()),
        ),
        (any_vec(any_f32()), any_vec(any_f64()), any_vec(any_text())),
        (any_vec(any_timestamp()), any_vec(any_duration())),
    )
        .prop_map(|((et, dims), (b, i, l), (f, d, s), (t, e))| {
            // Mostly one field, as the gateway sends them; sometimes several.
            let mut a = pb::MxArray {
                element_data_type: et,
                dimensions: dims,
                ..Default::default()
            };
            match et.rem_euclid(9) {
                0 => a.bool_values = b,
                1 => a.int32_values = i,
                2 => a.int64_values = l,
                3 => a.float_values = f,
                4 => a.double_values = d,
                5 => a.string_values = s,
                6 => a.timestamp_values = t,
                7 => a.elapsed_values = e,
                _ => {
                    (a.bool_values, a.double_values, a.string_values) = (b, d, s);
                }
            }
            a
        })
        .boxed()
}

/// A value without a sparse array (the elements of a sparse array are such values).
fn any_plain_value() -> BoxedStrategy<pb::MxValue> {
    use pb::mx_value::Kind;
    let kind = prop_oneof![
        any::<bool>().prop_map(Kind::BoolValue),
        any::<i32>().prop_map(Kind::Int32Value),
        any::<i64>().prop_map(Kind::Int64Value),
        any_f32().prop_map(Kind::FloatValue),
        any_f64().prop_map(Kind::DoubleValue),
        any_text().prop_map(Kind::StringValue),
        any_timestamp().prop_map(Kind::TimestampValue),
        any_duration().prop_map(Kind::ElapsedValue),
        any_array().prop_map(Kind::ArrayValue),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Kind::BytesValue),
    ];
    (
        any_code(20),
        any::<bool>(),
        prop::option::weighted(0.95, kind),
    )
        .prop_map(|(data_type, is_null, kind)| pb::MxValue {
            data_type,
            is_null,
            kind,
            ..Default::default()
        })
        .boxed()
}

/// A sparse array: any total, indices in and out of range, repeated, any values.
fn any_sparse() -> BoxedStrategy<pb::MxSparseArray> {
    let element = (
        prop_oneof![0u32..8, any::<u32>()],
        prop::option::weighted(0.9, any_plain_value()),
    )
        .prop_map(|(index, value)| pb::MxSparseElement { index, value });
    (
        any_code(20),
        any_claim(),
        prop::collection::vec(element, 0..6),
    )
        .prop_map(
            |(element_data_type, total_length, elements)| pb::MxSparseArray {
                element_data_type,
                total_length,
                elements,
            },
        )
        .boxed()
}

fn any_value() -> BoxedStrategy<pb::MxValue> {
    prop_oneof![
        4 => any_plain_value(),
        1 => any_sparse().prop_map(|s| pb::MxValue {
            kind: Some(pb::mx_value::Kind::SparseArrayValue(s)),
            ..Default::default()
        }),
    ]
    .boxed()
}

fn any_status() -> BoxedStrategy<pb::MxStatusProxy> {
    (
        (any_code(2), any_code(8), any_code(6)),
        (any::<i32>(), any::<i32>(), any::<i32>()),
        prop_oneof![any_text(), "[a-z]{1000,1100}", "é{500,600}"],
    )
        .prop_map(
            |((success, category, detected_by), (detail, raw_category, raw_detected_by), text)| {
                pb::MxStatusProxy {
                    success,
                    category,
                    detected_by,
                    detail,
                    raw_category,
                    raw_detected_by,
                    diagnostic_text: text,
                }
            },
        )
        .boxed()
}

fn any_transition() -> BoxedStrategy<pb::OnAlarmTransitionEvent> {
    (
        (any_text(), any_text(), any_code(4), any_code(4)),
        (
            prop::option::of(any_timestamp()),
            prop::option::of(any_timestamp()),
        ),
        (any_text(), any_text(), any::<i32>()),
        (prop::option::of(any_value()), prop::option::of(any_value())),
    )
        .prop_map(
            |(
                (reference, description, kind, state),
                (raised, at),
                (op, comment, sev),
                (cur, lim),
            )| {
                pb::OnAlarmTransitionEvent {
                    alarm_full_reference: reference,
                    description,
                    transition_kind: kind,
                    condition_state: state,
                    original_raise_timestamp: raised,
                    transition_timestamp: at,
                    operator_user: op,
                    operator_comment: comment,
                    raw_severity: sev,
                    current_value: cur,
                    limit_value: lim,
                    ..Default::default()
                }
            },
        )
        .boxed()
}

fn any_active_alarm() -> BoxedStrategy<pb::ActiveAlarmSnapshot> {
    any_transition()
        .prop_map(|t| pb::ActiveAlarmSnapshot {
            alarm_full_reference: t.alarm_full_reference,
            condition_state: t.condition_state,
            raw_severity: t.raw_severity,
            original_raise_timestamp: t.original_raise_timestamp,
            last_transition_timestamp: t.transition_timestamp,
            description: t.description,
            current_value: t.current_value,
            limit_value: t.limit_value,
            ..Default::default()
        })
        .boxed()
}

fn any_body() -> BoxedStrategy<Option<pb::mx_event::Body>> {
    use pb::mx_event::Body;
    let buffered = (
        prop::collection::vec(any_value(), 0..4),
        prop::collection::vec(any_code(0xFFFF), 0..4),
        prop::collection::vec(any_timestamp(), 0..4),
    )
        .prop_map(|(values, qualities, timestamps)| {
            Body::OnBufferedDataChange(pb::OnBufferedDataChangeEvent {
                data_type: 0,
                values,
                qualities,
                timestamps,
            })
        });
    prop::option::weighted(
        0.9,
        prop_oneof![
            4 => Just(Body::OnDataChange(pb::OnDataChangeEvent {})),
            2 => Just(Body::OnWriteComplete(pb::OnWriteCompleteEvent {})),
            1 => Just(Body::OperationComplete(pb::OperationCompleteEvent {})),
            1 => buffered,
            1 => any_transition().prop_map(|t| Body::OnAlarmTransition(Box::new(t))),
        ],
    )
    .boxed()
}

/// An event: any family (known, unknown, disagreeing with its body), any handles
/// (subscribed or not), any quality, value, times and statuses, sometimes a gap.
fn any_event() -> BoxedStrategy<pb::MxEvent> {
    (
        (
            prop::option::weighted(0.3, any_code(5)),
            any::<u64>(),
            any::<i32>(),
            any::<i32>(),
        ),
        (
            prop::option::of(any_value()),
            prop_oneof![8 => 0..=0xFFFF, 1 => any::<i32>()],
        ),
        (
            prop::option::of(any_timestamp()),
            prop::collection::vec(any_status(), 0..3),
        ),
        (
            any_body(),
            prop::option::weighted(0.05, (any::<u64>(), any::<u64>())),
        ),
    )
        .prop_map(
            |((family, seq, server, item), (value, quality), (time, statuses), (body, gap))| {
                // Mostly the family its body names, as the gateway sends it.
                let family = family.unwrap_or(match &body {
                    Some(pb::mx_event::Body::OnDataChange(_)) => {
                        pb::MxEventFamily::OnDataChange as i32
                    }
                    Some(pb::mx_event::Body::OnWriteComplete(_)) => {
                        pb::MxEventFamily::OnWriteComplete as i32
                    }
                    Some(pb::mx_event::Body::OperationComplete(_)) => {
                        pb::MxEventFamily::OperationComplete as i32
                    }
                    Some(pb::mx_event::Body::OnBufferedDataChange(_)) => {
                        pb::MxEventFamily::OnBufferedDataChange as i32
                    }
                    Some(pb::mx_event::Body::OnAlarmTransition(_)) => {
                        pb::MxEventFamily::OnAlarmTransition as i32
                    }
                    None => pb::MxEventFamily::Unspecified as i32,
                });
                pb::MxEvent {
                    family,
                    worker_sequence: seq,
                    server_handle: server,
                    item_handle: item,
                    value,
                    quality,
                    source_timestamp: time,
                    statuses,
                    replay_gap: gap.map(|(a, o)| pb::ReplayGap {
                        requested_after_sequence: a,
                        oldest_available_sequence: o,
                    }),
                    body,
                    ..Default::default()
                }
            },
        )
        .boxed()
}

/// Whether a decoded value keeps within `limits`.
fn within(v: &MxValue, limits: &ValueLimits) -> bool {
    let (arrays, strings) = (limits.max_array_length, limits.max_string_length);
    match v {
        MxValue::String(s) => s.len() <= strings,
        MxValue::Bytes(b) => b.len() <= arrays,
        MxValue::Array(a) => {
            a.len() <= arrays
                && match a {
                    MxArray::String(v) => v.iter().all(|s| s.len() <= strings),
                    _ => true,
                }
        }
        _ => true,
    }
}

/// The value re-encoded (bytes compare NaN payloads exactly).
fn encoded(v: &MxValue) -> Vec<u8> {
    value_to_pb(v, None).encode_to_vec()
}

fn check_value(v: &MxValue, limits: &ValueLimits) -> Result<(), TestCaseError> {
    prop_assert!(within(v, limits), "past the caps {limits:?}: {v:?}");
    let again = value_from_pb(&value_to_pb(v, None), limits, false);
    prop_assert!(again.is_ok(), "{v:?} does not decode again: {again:?}");
    if let Ok(again) = again {
        prop_assert_eq!(encoded(&again), encoded(v));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Values: never a panic; within the caps; a decoded value re-encodes to itself.
    /// A sparse array (writes only) expands to exactly its total, within the cap.
    #[test]
    fn values_decode_within_caps_and_round_trip(v in any_value(), limits in any_limits(), sparse in any::<bool>()) {
        match value_from_pb(&v, &limits, sparse) {
            Ok(decoded) => {
                if let (Some(pb::mx_value::Kind::SparseArrayValue(s)), MxValue::Array(a)) = (&v.kind, &decoded) {
                    prop_assert_eq!(a.len() as u64, u64::from(s.total_length));
                }
                check_value(&decoded, &limits)?;
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }

    /// Times: within 0001-01-01..=9999-12-31 and nanos below 1e9 they decode, to a time
    /// that encodes back to the same seconds and nanos; otherwise they are refused.
    #[test]
    fn times_decode_exactly_in_range(t in any_timestamp()) {
        let valid = (0..1_000_000_000).contains(&t.nanos)
            && (EARLIEST_SECONDS..=LATEST_SECONDS).contains(&t.seconds);
        match time_from_pb(&t) {
            Ok(time) => {
                prop_assert!(valid);
                prop_assert_eq!(time_to_pb(time), t);
            }
            Err(_) => prop_assert!(!valid),
        }
    }

    /// Events: always an event of the same sequence; a data change keeps within the
    /// caps; an undecodable one names its item and says why.
    #[test]
    fn events_decode_to_their_item_or_say_why(e in any_event(), limits in any_limits()) {
        let (seq, item, gap) = (e.worker_sequence, ItemHandle(e.item_handle), e.replay_gap.is_some());
        let ev = event_from_pb(e, &limits);
        if !gap {
            prop_assert_eq!(ev.worker_sequence(), seq);
        }
        match ev {
            SessionEvent::DataChange(dc) => {
                prop_assert_eq!(dc.item_handle, item);
                check_value(&dc.value, &limits)?;
                for s in &dc.statuses {
                    prop_assert!(s.diagnostic_text.len() <= MAX_PEER_TEXT);
                }
            }
            SessionEvent::BufferedDataChange(b) => {
                for (v, _, _) in &b.samples {
                    check_value(v, &limits)?;
                }
            }
            SessionEvent::Undecodable(u) => {
                prop_assert_eq!(u.item_handle, item);
                prop_assert!(!u.reason.is_empty());
            }
            SessionEvent::ReplayGap(_) => prop_assert!(gap),
            _ => {}
        }
    }

    /// Alarms: never a panic; whatever decodes keeps every string and value in the caps.
    #[test]
    fn alarms_decode_within_caps(t in any_transition(), a in any_active_alarm(), limits in any_limits()) {
        if let Ok(t) = transition_from_pb(&t, &limits) {
            for s in [&t.reference, &t.description, &t.operator, &t.comment] {
                prop_assert!(s.len() <= limits.max_string_length);
            }
            for v in t.current_value.iter().chain(&t.limit_value) {
                check_value(v, &limits)?;
            }
        }
        if let Ok(a) = active_alarm_from_pb(&a, &limits) {
            prop_assert!(a.reference.len() <= limits.max_string_length);
        }
    }

    /// Statuses: any codes decode; the diagnostic text is cut to MAX_PEER_TEXT.
    #[test]
    fn statuses_decode_with_bounded_text(s in prop::collection::vec(any_status(), 0..4)) {
        for (status, raw) in statuses_from_pb(&s).iter().zip(&s) {
            prop_assert!(status.diagnostic_text.len() <= MAX_PEER_TEXT);
            prop_assert!(raw.diagnostic_text.starts_with(status.diagnostic_text.trim_end_matches('…')));
        }
    }

    /// Arbitrary bytes as an event, a value and an alarm feed message: whatever prost
    /// accepts goes through the decoders without a panic.
    #[test]
    fn arbitrary_bytes_decode_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), limits in any_limits()) {
        if let Ok(e) = pb::MxEvent::decode(bytes.as_slice()) {
            let _ = event_from_pb(e, &limits);
        }
        if let Ok(v) = pb::MxValue::decode(bytes.as_slice()) {
            if let Ok(v) = value_from_pb(&v, &limits, true) {
                prop_assert!(within(&v, &limits));
            }
        }
        if let Ok(m) = pb::AlarmFeedMessage::decode(bytes.as_slice()) {
            match m.kind {
                Some(pb::alarm_feed_message::Kind::ActiveAlarm(a)) => { let _ = active_alarm_from_pb(&a, &limits); }
                Some(pb::alarm_feed_message::Kind::Transition(t)) => { let _ = transition_from_pb(&t, &limits); }
                _ => {}
            }
        }
    }

    /// Events re-encoded with one field mutated to bytes prost still accepts: a
    /// well-formed event with a damaged tail is handled like any other.
    #[test]
    fn damaged_events_decode_without_panic(e in any_event(), cut in any::<prop::sample::Index>(), flip in any::<u8>(), limits in any_limits()) {
        let mut bytes = e.encode_to_vec();
        if !bytes.is_empty() {
            let i = cut.index(bytes.len());
            bytes[i] ^= flip;
        }
        if let Ok(e) = pb::MxEvent::decode(bytes.as_slice()) {
            let _ = event_from_pb(e, &limits);
        }
    }

    /// ReadBulk entries: a value that decodes keeps within the caps.
    #[test]
    fn read_results_decode_within_caps(v in prop::option::of(any_value()), q in prop_oneof![8 => 0..=0xFFFF, 1 => any::<i32>()], t in prop::option::of(any_timestamp()), limits in any_limits()) {
        let r = pb::BulkReadResult { value: v, quality: q, source_timestamp: t, was_successful: true, ..Default::default() };
        if let Ok(read) = read_value_from_pb(&r, &limits) {
            check_value(&read.value, &limits)?;
            prop_assert_eq!(i32::from(read.quality.0), q);
        }
    }

    /// Subscriptions: after the check no two successful entries share an item handle,
    /// and an entry whose handle is its own is untouched.
    #[test]
    fn shared_item_handles_are_refused(handles in prop::collection::vec((0i32..6, any::<bool>()), 0..12)) {
        let mut results: Vec<SubscribeResult> = handles
            .iter()
            .enumerate()
            .map(|(i, &(h, ok))| SubscribeResult {
                tag: format!("T{i}.X"),
                item_handle: ItemHandle(h),
                outcome: if ok { Ok(()) } else { Err(BulkEntryError { message: "denied".into(), hresult: 0, statuses: vec![] }) },
            })
            .collect();
        refuse_shared_handles(&mut results);
        let ok: Vec<i32> = results.iter().filter(|r| r.outcome.is_ok()).map(|r| r.item_handle.0).collect();
        let mut unique = ok.clone();
        unique.sort_unstable();
        unique.dedup();
        prop_assert_eq!(unique.len(), ok.len());
        for (i, &(h, was_ok)) in handles.iter().enumerate() {
            let alone = handles.iter().filter(|&&(g, o)| o && g == h).count() == 1;
            prop_assert_eq!(results[i].outcome.is_ok(), was_ok && alone);
        }
    }
}
