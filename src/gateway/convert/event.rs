//! Session events. Decoding never fails the stream: an event that cannot be decoded
//! (a value past a cap, a time out of range, an unknown family, ...) becomes
//! [`SessionEvent::Undecodable`] with the reason, for its item alone.
use super::super::limits::ValueLimits;
use super::super::pb::gw as pb;
use super::super::types::*;
use super::{statuses_from_pb, time_from_pb, transition_from_pb, value_from_pb};

/// An OPC quality: 16 bits. Anything wider is not one.
pub(crate) fn quality_from_pb(q: i32) -> Result<Quality, String> {
    u16::try_from(q)
        .map(Quality)
        .map_err(|_| format!("quality {q} is not a 16-bit OPC quality"))
}

/// The value, quality and source time a data change carries.
fn sample_from_pb(
    value: Option<&pb::MxValue>,
    quality: i32,
    time: Option<&prost_types::Timestamp>,
    limits: &ValueLimits,
) -> Result<(MxValue, Quality, Option<std::time::SystemTime>), String> {
    let quality = quality_from_pb(quality)?;
    let value = match value {
        Some(v) => value_from_pb(v, limits, false)?,
        None => MxValue::Null,
    };
    let time = time
        .map(time_from_pb)
        .transpose()
        .map_err(|e| format!("source {e}"))?;
    Ok((value, quality, time))
}

/// One entry of a ReadBulk reply that the gateway says succeeded.
pub(crate) fn read_value_from_pb(
    r: &pb::BulkReadResult,
    limits: &ValueLimits,
) -> Result<ReadValue, String> {
    let (value, quality, source_time) = sample_from_pb(
        r.value.as_ref(),
        r.quality,
        r.source_timestamp.as_ref(),
        limits,
    )?;
    Ok(ReadValue {
        value,
        quality,
        source_time,
        was_cached: r.was_cached,
    })
}

fn buffered_from_pb(
    b: &pb::OnBufferedDataChangeEvent,
    limits: &ValueLimits,
) -> Result<Vec<(MxValue, Quality, Option<std::time::SystemTime>)>, String> {
    if b.values.len() != b.qualities.len() || b.values.len() != b.timestamps.len() {
        return Err(format!(
            "buffered data change with {} values, {} qualities and {} timestamps",
            b.values.len(),
            b.qualities.len(),
            b.timestamps.len()
        ));
    }
    b.values
        .iter()
        .zip(&b.qualities)
        .zip(&b.timestamps)
        .enumerate()
        .map(|(i, ((v, q), t))| {
            sample_from_pb(Some(v), *q, Some(t), limits).map_err(|e| format!("sample {i}: {e}"))
        })
        .collect()
}

/// Decode one session event within `limits`.
pub(crate) fn event_from_pb(e: pb::MxEvent, limits: &ValueLimits) -> SessionEvent {
    use pb::mx_event::Body;
    use pb::MxEventFamily as F;
    if let Some(gap) = e.replay_gap {
        return SessionEvent::ReplayGap(ReplayGap {
            requested_after: gap.requested_after_sequence,
            oldest_available: gap.oldest_available_sequence,
        });
    }
    let seq = e.worker_sequence;
    let server_handle = ServerHandle(e.server_handle);
    let item_handle = ItemHandle(e.item_handle);
    let undecodable = |data_change: bool, reason: String| {
        SessionEvent::Undecodable(Undecodable {
            worker_sequence: seq,
            server_handle,
            item_handle,
            data_change,
            reason,
        })
    };
    let Ok(family) = F::try_from(e.family) else {
        return undecodable(false, format!("unknown event family {}", e.family));
    };
    // The body arm decides; the family, when set, must agree with it.
    let body_family = match &e.body {
        Some(Body::OnDataChange(_)) => F::OnDataChange,
        Some(Body::OnWriteComplete(_)) => F::OnWriteComplete,
        Some(Body::OperationComplete(_)) => F::OperationComplete,
        Some(Body::OnBufferedDataChange(_)) => F::OnBufferedDataChange,
        Some(Body::OnAlarmTransition(_)) => F::OnAlarmTransition,
        None => family,
    };
    if family != F::Unspecified && family != body_family {
        return undecodable(
            false,
            format!("event family {family:?} does not match its body {body_family:?}"),
        );
    }
    let statuses = statuses_from_pb(&e.statuses);
    match (body_family, e.body) {
        (F::OnDataChange, _) => match sample_from_pb(
            e.value.as_ref(),
            e.quality,
            e.source_timestamp.as_ref(),
            limits,
        ) {
            Ok((value, quality, source_time)) => SessionEvent::DataChange(DataChange {
                worker_sequence: seq,
                server_handle,
                item_handle,
                value,
                quality,
                source_time,
                statuses,
            }),
            Err(reason) => undecodable(true, reason),
        },
        (F::OnWriteComplete, _) => SessionEvent::WriteComplete(WriteComplete {
            worker_sequence: seq,
            server_handle,
            item_handle,
            statuses,
        }),
        (F::OperationComplete, _) => SessionEvent::OperationComplete(OperationComplete {
            worker_sequence: seq,
            server_handle,
            item_handle,
            statuses,
        }),
        (F::OnBufferedDataChange, Some(Body::OnBufferedDataChange(b))) => {
            match buffered_from_pb(&b, limits) {
                Ok(samples) => SessionEvent::BufferedDataChange(BufferedDataChange {
                    worker_sequence: seq,
                    server_handle,
                    item_handle,
                    samples,
                    statuses,
                }),
                Err(reason) => undecodable(true, reason),
            }
        }
        (F::OnAlarmTransition, Some(Body::OnAlarmTransition(t))) => {
            match transition_from_pb(&t, limits) {
                Ok(transition) => SessionEvent::AlarmTransition {
                    worker_sequence: seq,
                    transition,
                },
                Err(reason) => undecodable(false, format!("alarm transition: {reason}")),
            }
        }
        (F::OnBufferedDataChange, _) => {
            undecodable(true, "buffered data change without its samples".to_string())
        }
        (f, _) => undecodable(false, format!("event family {f:?} without a usable body")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::value_to_pb;
    use super::*;

    const LIMITS: ValueLimits = ValueLimits::DEFAULT;

    fn data_change(value: Option<pb::MxValue>) -> pb::MxEvent {
        pb::MxEvent {
            family: pb::MxEventFamily::OnDataChange as i32,
            worker_sequence: 7,
            item_handle: 3,
            quality: 0xC0,
            value,
            body: Some(pb::mx_event::Body::OnDataChange(pb::OnDataChangeEvent {})),
            ..Default::default()
        }
    }

    fn reason(ev: SessionEvent) -> (bool, String) {
        match ev {
            SessionEvent::Undecodable(u) => {
                assert_eq!((u.worker_sequence, u.item_handle), (7, ItemHandle(3)));
                (u.data_change, u.reason)
            }
            other => panic!("decoded: {other:?}"),
        }
    }

    #[test]
    fn a_data_change_past_a_cap_is_undecodable_for_its_item() {
        let huge = pb::MxValue {
            kind: Some(pb::mx_value::Kind::ArrayValue(pb::MxArray {
                element_data_type: pb::MxDataType::Double as i32,
                dimensions: vec![u32::MAX],
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(
            reason(event_from_pb(data_change(Some(huge)), &LIMITS)),
            (
                true,
                "array of 4294967295 elements exceeds [limits] max_array_length 100000".into()
            )
        );
        // A sparse array is for writes only, so a data change with one says so (and
        // nothing of its claimed size is allocated).
        let sparse = pb::MxValue {
            kind: Some(pb::mx_value::Kind::SparseArrayValue(pb::MxSparseArray {
                element_data_type: pb::MxDataType::Double as i32,
                total_length: u32::MAX,
                elements: vec![],
            })),
            ..Default::default()
        };
        assert_eq!(
            reason(event_from_pb(data_change(Some(sparse)), &LIMITS)).1,
            "a sparse array is accepted only in writes"
        );
    }

    #[test]
    fn quality_time_and_family_out_of_range_are_undecodable() {
        let mut e = data_change(Some(value_to_pb(&MxValue::Double(1.0), None)));
        e.quality = 0x1_00C0;
        assert_eq!(
            reason(event_from_pb(e.clone(), &LIMITS)).1,
            "quality 65728 is not a 16-bit OPC quality"
        );
        e.quality = 0xC0;
        e.source_timestamp = Some(prost_types::Timestamp {
            seconds: 0,
            nanos: 1_000_000_000,
        });
        let (dc, why) = reason(event_from_pb(e.clone(), &LIMITS));
        assert!(dc);
        assert!(
            why.starts_with("source time 0s 1000000000ns is outside"),
            "{why}"
        );
        e.source_timestamp = None;
        e.family = 99;
        assert_eq!(
            reason(event_from_pb(e.clone(), &LIMITS)),
            (false, "unknown event family 99".into())
        );
        e.family = pb::MxEventFamily::OnWriteComplete as i32;
        assert!(!reason(event_from_pb(e, &LIMITS)).0);
    }

    #[test]
    fn nan_and_infinities_decode_as_they_are() {
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = data_change(Some(value_to_pb(&MxValue::Double(x), None)));
            match event_from_pb(e, &LIMITS) {
                SessionEvent::DataChange(dc) => match dc.value {
                    MxValue::Double(y) => assert_eq!(y.to_bits(), x.to_bits()),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            }
        }
    }
}
