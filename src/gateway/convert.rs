//! Conversions between the generated protobuf types and the domain types.
//! Shared by the client (decode replies and events) and the simulator
//! (decode requests, encode replies), so both read the wire the same way.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::pb::galaxy as gpb;
use super::pb::gw as pb;
use super::types::*;

pub(crate) fn time_to_pb(t: SystemTime) -> prost_types::Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => prost_types::Timestamp {
            seconds: d.as_secs() as i64,
            nanos: d.subsec_nanos() as i32,
        },
        Err(e) => {
            let d = e.duration();
            let mut ts = prost_types::Timestamp {
                seconds: -(d.as_secs() as i64),
                nanos: -(d.subsec_nanos() as i32),
            };
            ts.normalize();
            ts
        }
    }
}

pub(crate) fn time_from_pb(t: &prost_types::Timestamp) -> SystemTime {
    let mut t = *t;
    t.normalize();
    if t.seconds >= 0 {
        UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos as u32)
    } else {
        // normalize() keeps nanos in 0..1e9, so seconds*1e9 + nanos is the offset.
        UNIX_EPOCH - Duration::from_secs(t.seconds.unsigned_abs())
            + Duration::from_nanos(t.nanos as u64)
    }
}

pub(crate) fn duration_to_pb(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub(crate) fn duration_from_pb(d: &prost_types::Duration) -> Result<Duration, String> {
    let mut d = *d;
    d.normalize();
    if d.seconds < 0 || d.nanos < 0 {
        return Err(format!(
            "negative elapsed time {}s is not supported",
            d.seconds
        ));
    }
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

pub(crate) fn data_type_to_pb(t: MxDataType) -> pb::MxDataType {
    use pb::MxDataType as P;
    match t {
        MxDataType::Unknown => P::Unknown,
        MxDataType::NoData => P::NoData,
        MxDataType::Boolean => P::Boolean,
        MxDataType::Integer => P::Integer,
        MxDataType::LongInteger => P::LongInteger,
        MxDataType::Float => P::Float,
        MxDataType::Double => P::Double,
        MxDataType::String => P::String,
        MxDataType::Time => P::Time,
        MxDataType::ElapsedTime => P::ElapsedTime,
        MxDataType::ReferenceType => P::ReferenceType,
        MxDataType::StatusType => P::StatusType,
        MxDataType::DataTypeEnum => P::DataTypeEnum,
        MxDataType::SecurityClassificationEnum => P::SecurityClassificationEnum,
        MxDataType::DataQualityType => P::DataQualityType,
        MxDataType::QualifiedEnum => P::QualifiedEnum,
        MxDataType::QualifiedStruct => P::QualifiedStruct,
        MxDataType::InternationalizedString => P::InternationalizedString,
        MxDataType::BigString => P::BigString,
    }
}

pub(crate) fn data_type_from_pb(t: i32) -> MxDataType {
    use pb::MxDataType as P;
    match P::try_from(t).unwrap_or(P::Unknown) {
        P::Unspecified | P::Unknown => MxDataType::Unknown,
        P::NoData => MxDataType::NoData,
        P::Boolean => MxDataType::Boolean,
        P::Integer => MxDataType::Integer,
        P::LongInteger => MxDataType::LongInteger,
        P::Float => MxDataType::Float,
        P::Double => MxDataType::Double,
        P::String => MxDataType::String,
        P::Time | P::Timestamp => MxDataType::Time,
        P::ElapsedTime => MxDataType::ElapsedTime,
        P::ReferenceType => MxDataType::ReferenceType,
        P::StatusType => MxDataType::StatusType,
        P::DataTypeEnum => MxDataType::DataTypeEnum,
        P::SecurityClassificationEnum => MxDataType::SecurityClassificationEnum,
        P::DataQualityType => MxDataType::DataQualityType,
        P::QualifiedEnum => MxDataType::QualifiedEnum,
        P::QualifiedStruct => MxDataType::QualifiedStruct,
        P::InternationalizedString => MxDataType::InternationalizedString,
        P::BigString => MxDataType::BigString,
    }
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
                dimensions: vec![a.len() as u32],
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

/// Decode a value. `allow_sparse` is true only on write paths, where the
/// gateway expands a sparse array into a default-filled whole array.
pub(crate) fn value_from_pb(v: &pb::MxValue, allow_sparse: bool) -> Result<MxValue, String> {
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
        Kind::StringValue(s) => MxValue::String(s.clone()),
        Kind::TimestampValue(t) => MxValue::Time(time_from_pb(t)),
        Kind::ElapsedValue(d) => MxValue::Elapsed(duration_from_pb(d)?),
        Kind::BytesValue(b) => MxValue::Bytes(b.clone()),
        Kind::ArrayValue(a) => MxValue::Array(array_from_pb(a)?),
        Kind::SparseArrayValue(s) => {
            if !allow_sparse {
                return Err("a sparse array is accepted only in writes".into());
            }
            MxValue::Array(expand_sparse(s)?)
        }
    })
}

fn array_from_pb(a: &pb::MxArray) -> Result<MxArray, String> {
    let et = data_type_from_pb(a.element_data_type);
    let arr = match et {
        MxDataType::Boolean => MxArray::Bool(a.bool_values.clone()),
        MxDataType::Integer => MxArray::Int32(a.int32_values.clone()),
        MxDataType::LongInteger => MxArray::Int64(a.int64_values.clone()),
        MxDataType::Float => MxArray::Float(a.float_values.clone()),
        MxDataType::Double => MxArray::Double(a.double_values.clone()),
        MxDataType::String
        | MxDataType::BigString
        | MxDataType::ReferenceType
        | MxDataType::InternationalizedString => MxArray::String(a.string_values.clone()),
        MxDataType::Time => MxArray::Time(a.timestamp_values.iter().map(time_from_pb).collect()),
        MxDataType::ElapsedTime => MxArray::Elapsed(
            a.elapsed_values
                .iter()
                .map(duration_from_pb)
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("arrays of {other} are not supported")),
    };
    let declared: u64 = a.dimensions.iter().map(|d| u64::from(*d)).product();
    if !a.dimensions.is_empty() && declared != arr.len() as u64 {
        return Err(format!(
            "array declares {declared} elements but carries {}",
            arr.len()
        ));
    }
    Ok(arr)
}

fn expand_sparse(s: &pb::MxSparseArray) -> Result<MxArray, String> {
    let n = s.total_length as usize;
    if n == 0 {
        return Err("sparse array total_length must be > 0".into());
    }
    let et = data_type_from_pb(s.element_data_type);
    let mut arr = match et {
        MxDataType::Boolean => MxArray::Bool(vec![false; n]),
        MxDataType::Integer => MxArray::Int32(vec![0; n]),
        MxDataType::LongInteger => MxArray::Int64(vec![0; n]),
        MxDataType::Float => MxArray::Float(vec![0.0; n]),
        MxDataType::Double => MxArray::Double(vec![0.0; n]),
        MxDataType::String => MxArray::String(vec![String::new(); n]),
        MxDataType::Time => MxArray::Time(vec![UNIX_EPOCH; n]),
        other => return Err(format!("sparse arrays of {other} are not supported")),
    };
    let mut seen = vec![false; n];
    for e in &s.elements {
        let i = e.index as usize;
        if i >= n {
            return Err(format!(
                "sparse element index {i} is not below total_length {n}"
            ));
        }
        if std::mem::replace(&mut seen[i], true) {
            return Err(format!("sparse element index {i} appears twice"));
        }
        let v = value_from_pb(
            e.value.as_ref().ok_or("sparse element without value")?,
            false,
        )?;
        let ok = match (&mut arr, v) {
            (MxArray::Bool(a), MxValue::Bool(x)) => {
                a[i] = x;
                true
            }
            (MxArray::Int32(a), MxValue::Int32(x)) => {
                a[i] = x;
                true
            }
            (MxArray::Int64(a), MxValue::Int64(x)) => {
                a[i] = x;
                true
            }
            (MxArray::Float(a), MxValue::Float(x)) => {
                a[i] = x;
                true
            }
            (MxArray::Double(a), MxValue::Double(x)) => {
                a[i] = x;
                true
            }
            (MxArray::String(a), MxValue::String(x)) => {
                a[i] = x;
                true
            }
            (MxArray::Time(a), MxValue::Time(x)) => {
                a[i] = x;
                true
            }
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

pub(crate) fn category_to_pb(c: MxStatusCategory) -> pb::MxStatusCategory {
    use pb::MxStatusCategory as P;
    match c {
        MxStatusCategory::Unknown => P::Unknown,
        MxStatusCategory::Ok => P::Ok,
        MxStatusCategory::Pending => P::Pending,
        MxStatusCategory::Warning => P::Warning,
        MxStatusCategory::CommunicationError => P::CommunicationError,
        MxStatusCategory::ConfigurationError => P::ConfigurationError,
        MxStatusCategory::OperationalError => P::OperationalError,
        MxStatusCategory::SecurityError => P::SecurityError,
        MxStatusCategory::SoftwareError => P::SoftwareError,
        MxStatusCategory::OtherError => P::OtherError,
    }
}

fn source_to_pb(s: MxStatusSource) -> pb::MxStatusSource {
    use pb::MxStatusSource as P;
    match s {
        MxStatusSource::Unknown => P::Unknown,
        MxStatusSource::RequestingLmx => P::RequestingLmx,
        MxStatusSource::RespondingLmx => P::RespondingLmx,
        MxStatusSource::RequestingNmx => P::RequestingNmx,
        MxStatusSource::RespondingNmx => P::RespondingNmx,
        MxStatusSource::RequestingAutomationObject => P::RequestingAutomationObject,
        MxStatusSource::RespondingAutomationObject => P::RespondingAutomationObject,
    }
}

pub(crate) fn status_to_pb(s: &MxStatus) -> pb::MxStatusProxy {
    pb::MxStatusProxy {
        success: s.success,
        category: category_to_pb(s.category) as i32,
        detected_by: source_to_pb(s.detected_by) as i32,
        detail: s.detail,
        raw_category: s.category.native_code(),
        raw_detected_by: s.detected_by.native_code(),
        diagnostic_text: s.diagnostic_text.clone(),
    }
}

/// Decode a status. The native raw_* codes win when present (they are what
/// MXAccess said); the proto enum is the fallback.
pub(crate) fn status_from_pb(s: &pb::MxStatusProxy) -> MxStatus {
    use pb::MxStatusCategory as C;
    use pb::MxStatusSource as S;
    let from_enum_cat = match C::try_from(s.category).unwrap_or(C::Unspecified) {
        C::Unspecified => None,
        C::Ok => Some(MxStatusCategory::Ok),
        C::Pending => Some(MxStatusCategory::Pending),
        C::Warning => Some(MxStatusCategory::Warning),
        C::CommunicationError => Some(MxStatusCategory::CommunicationError),
        C::ConfigurationError => Some(MxStatusCategory::ConfigurationError),
        C::OperationalError => Some(MxStatusCategory::OperationalError),
        C::SecurityError => Some(MxStatusCategory::SecurityError),
        C::SoftwareError => Some(MxStatusCategory::SoftwareError),
        C::OtherError => Some(MxStatusCategory::OtherError),
        C::Unknown => Some(MxStatusCategory::Unknown),
    };
    let category =
        from_enum_cat.unwrap_or_else(|| MxStatusCategory::from_native_code(s.raw_category));
    let detected_by = match S::try_from(s.detected_by).unwrap_or(S::Unspecified) {
        S::Unspecified => MxStatusSource::from_native_code(s.raw_detected_by),
        S::Unknown => MxStatusSource::Unknown,
        S::RequestingLmx => MxStatusSource::RequestingLmx,
        S::RespondingLmx => MxStatusSource::RespondingLmx,
        S::RequestingNmx => MxStatusSource::RequestingNmx,
        S::RespondingNmx => MxStatusSource::RespondingNmx,
        S::RequestingAutomationObject => MxStatusSource::RequestingAutomationObject,
        S::RespondingAutomationObject => MxStatusSource::RespondingAutomationObject,
    };
    MxStatus {
        category,
        detected_by,
        detail: s.detail,
        success: s.success,
        diagnostic_text: s.diagnostic_text.clone(),
    }
}

pub(crate) fn statuses_from_pb(s: &[pb::MxStatusProxy]) -> Vec<MxStatus> {
    s.iter().map(status_from_pb).collect()
}

pub(crate) fn session_state_from_pb(s: i32) -> SessionState {
    use pb::SessionState as P;
    match P::try_from(s).unwrap_or(P::Unspecified) {
        P::Unspecified => SessionState::Unspecified,
        P::Creating => SessionState::Creating,
        P::StartingWorker => SessionState::StartingWorker,
        P::WaitingForPipe => SessionState::WaitingForPipe,
        P::InitializingWorker => SessionState::InitializingWorker,
        P::Ready => SessionState::Ready,
        P::Closing => SessionState::Closing,
        P::Closed => SessionState::Closed,
        P::Faulted => SessionState::Faulted,
    }
}

pub(crate) fn alarm_state_to_pb(s: AlarmState) -> pb::AlarmConditionState {
    match s {
        AlarmState::UnackAlm => pb::AlarmConditionState::UnackAlm,
        AlarmState::AckAlm => pb::AlarmConditionState::AckAlm,
        AlarmState::UnackRtn => pb::AlarmConditionState::UnackRtn,
        AlarmState::AckRtn => pb::AlarmConditionState::AckRtn,
    }
}

fn alarm_state_from_pb(s: i32) -> Result<AlarmState, String> {
    match pb::AlarmConditionState::try_from(s) {
        Ok(pb::AlarmConditionState::UnackAlm) => Ok(AlarmState::UnackAlm),
        Ok(pb::AlarmConditionState::AckAlm) => Ok(AlarmState::AckAlm),
        Ok(pb::AlarmConditionState::UnackRtn) => Ok(AlarmState::UnackRtn),
        Ok(pb::AlarmConditionState::AckRtn) => Ok(AlarmState::AckRtn),
        _ => Err(format!("unknown alarm condition state {s}")),
    }
}

pub(crate) fn transition_kind_to_pb(k: AlarmTransitionKind) -> pb::AlarmTransitionKind {
    match k {
        AlarmTransitionKind::Raise => pb::AlarmTransitionKind::Raise,
        AlarmTransitionKind::Acknowledge => pb::AlarmTransitionKind::Acknowledge,
        AlarmTransitionKind::Clear => pb::AlarmTransitionKind::Clear,
        AlarmTransitionKind::Retrigger => pb::AlarmTransitionKind::Retrigger,
    }
}

fn opt_value(v: &Option<pb::MxValue>) -> Result<Option<MxValue>, String> {
    v.as_ref().map(|v| value_from_pb(v, false)).transpose()
}

pub(crate) fn active_alarm_from_pb(a: &pb::ActiveAlarmSnapshot) -> Result<ActiveAlarm, String> {
    Ok(ActiveAlarm {
        reference: a.alarm_full_reference.clone(),
        source_object: a.source_object_reference.clone(),
        alarm_type: a.alarm_type_name.clone(),
        state: alarm_state_from_pb(a.condition_state)?,
        priority: a.raw_severity,
        raised_at: a.original_raise_timestamp.as_ref().map(time_from_pb),
        last_transition_at: a.last_transition_timestamp.as_ref().map(time_from_pb),
        operator: a.operator_user.clone(),
        comment: a.operator_comment.clone(),
        category: a.category.clone(),
        description: a.description.clone(),
        current_value: opt_value(&a.current_value)?,
        limit_value: opt_value(&a.limit_value)?,
    })
}

pub(crate) fn active_alarm_to_pb(a: &ActiveAlarm) -> pb::ActiveAlarmSnapshot {
    pb::ActiveAlarmSnapshot {
        alarm_full_reference: a.reference.clone(),
        source_object_reference: a.source_object.clone(),
        alarm_type_name: a.alarm_type.clone(),
        condition_state: alarm_state_to_pb(a.state) as i32,
        raw_severity: a.priority,
        original_raise_timestamp: a.raised_at.map(time_to_pb),
        last_transition_timestamp: a.last_transition_at.map(time_to_pb),
        operator_user: a.operator.clone(),
        operator_comment: a.comment.clone(),
        category: a.category.clone(),
        description: a.description.clone(),
        current_value: a.current_value.as_ref().map(|v| value_to_pb(v, None)),
        limit_value: a.limit_value.as_ref().map(|v| value_to_pb(v, None)),
    }
}

pub(crate) fn transition_from_pb(
    t: &pb::OnAlarmTransitionEvent,
) -> Result<AlarmTransition, String> {
    let kind = match pb::AlarmTransitionKind::try_from(t.transition_kind) {
        Ok(pb::AlarmTransitionKind::Raise) => AlarmTransitionKind::Raise,
        Ok(pb::AlarmTransitionKind::Acknowledge) => AlarmTransitionKind::Acknowledge,
        Ok(pb::AlarmTransitionKind::Clear) => AlarmTransitionKind::Clear,
        Ok(pb::AlarmTransitionKind::Retrigger) => AlarmTransitionKind::Retrigger,
        _ => {
            return Err(format!(
                "unknown alarm transition kind {}",
                t.transition_kind
            ))
        }
    };
    Ok(AlarmTransition {
        reference: t.alarm_full_reference.clone(),
        source_object: t.source_object_reference.clone(),
        alarm_type: t.alarm_type_name.clone(),
        kind,
        state: alarm_state_from_pb(t.condition_state)?,
        priority: t.raw_severity,
        raised_at: t.original_raise_timestamp.as_ref().map(time_from_pb),
        at: t.transition_timestamp.as_ref().map(time_from_pb),
        operator: t.operator_user.clone(),
        comment: t.operator_comment.clone(),
        category: t.category.clone(),
        description: t.description.clone(),
        current_value: opt_value(&t.current_value)?,
        limit_value: opt_value(&t.limit_value)?,
    })
}

pub(crate) fn transition_to_pb(t: &AlarmTransition) -> pb::OnAlarmTransitionEvent {
    pb::OnAlarmTransitionEvent {
        alarm_full_reference: t.reference.clone(),
        source_object_reference: t.source_object.clone(),
        alarm_type_name: t.alarm_type.clone(),
        transition_kind: transition_kind_to_pb(t.kind) as i32,
        raw_severity: t.priority,
        original_raise_timestamp: t.raised_at.map(time_to_pb),
        transition_timestamp: t.at.map(time_to_pb),
        operator_user: t.operator.clone(),
        operator_comment: t.comment.clone(),
        category: t.category.clone(),
        description: t.description.clone(),
        current_value: t.current_value.as_ref().map(|v| value_to_pb(v, None)),
        limit_value: t.limit_value.as_ref().map(|v| value_to_pb(v, None)),
        condition_state: alarm_state_to_pb(t.state) as i32,
    }
}

/// Decode one session event.
pub(crate) fn event_from_pb(e: pb::MxEvent) -> Result<SessionEvent, String> {
    use pb::mx_event::Body;
    if let Some(gap) = e.replay_gap {
        return Ok(SessionEvent::ReplayGap(ReplayGap {
            requested_after: gap.requested_after_sequence,
            oldest_available: gap.oldest_available_sequence,
        }));
    }
    let seq = e.worker_sequence;
    let server_handle = ServerHandle(e.server_handle);
    let item_handle = ItemHandle(e.item_handle);
    let statuses = statuses_from_pb(&e.statuses);
    let family = pb::MxEventFamily::try_from(e.family).unwrap_or(pb::MxEventFamily::Unspecified);
    // The body arm decides; family is checked against it.
    let body_family = match &e.body {
        Some(Body::OnDataChange(_)) => pb::MxEventFamily::OnDataChange,
        Some(Body::OnWriteComplete(_)) => pb::MxEventFamily::OnWriteComplete,
        Some(Body::OperationComplete(_)) => pb::MxEventFamily::OperationComplete,
        Some(Body::OnBufferedDataChange(_)) => pb::MxEventFamily::OnBufferedDataChange,
        Some(Body::OnAlarmTransition(_)) => pb::MxEventFamily::OnAlarmTransition,
        None => family,
    };
    if family != pb::MxEventFamily::Unspecified && family != body_family {
        return Err(format!(
            "event {seq}: family {family:?} does not match its body {body_family:?}"
        ));
    }
    Ok(match (body_family, e.body) {
        (pb::MxEventFamily::OnDataChange, _) => SessionEvent::DataChange(DataChange {
            worker_sequence: seq,
            server_handle,
            item_handle,
            value: match &e.value {
                Some(v) => value_from_pb(v, false)?,
                None => MxValue::Null,
            },
            quality: Quality(e.quality as u16),
            source_time: e.source_timestamp.as_ref().map(time_from_pb),
            statuses,
        }),
        (pb::MxEventFamily::OnWriteComplete, _) => SessionEvent::WriteComplete(WriteComplete {
            worker_sequence: seq,
            server_handle,
            item_handle,
            statuses,
        }),
        (pb::MxEventFamily::OperationComplete, _) => {
            SessionEvent::OperationComplete(OperationComplete {
                worker_sequence: seq,
                server_handle,
                item_handle,
                statuses,
            })
        }
        (pb::MxEventFamily::OnBufferedDataChange, Some(Body::OnBufferedDataChange(b))) => {
            if b.values.len() != b.qualities.len() || b.values.len() != b.timestamps.len() {
                return Err(format!(
                    "event {seq}: buffered data change with mismatched sample arrays"
                ));
            }
            let mut samples = Vec::with_capacity(b.values.len());
            for i in 0..b.values.len() {
                samples.push((
                    value_from_pb(&b.values[i], false)?,
                    Quality(b.qualities[i] as u16),
                    Some(time_from_pb(&b.timestamps[i])),
                ));
            }
            SessionEvent::BufferedDataChange(BufferedDataChange {
                worker_sequence: seq,
                server_handle,
                item_handle,
                samples,
                statuses,
            })
        }
        (pb::MxEventFamily::OnAlarmTransition, Some(Body::OnAlarmTransition(t))) => {
            SessionEvent::AlarmTransition {
                worker_sequence: seq,
                transition: transition_from_pb(&t)?,
            }
        }
        (f, _) => return Err(format!("event {seq}: family {f:?} without a usable body")),
    })
}

pub(crate) fn galaxy_object_from_pb(o: gpb::GalaxyObject) -> GalaxyObject {
    GalaxyObject {
        gobject_id: o.gobject_id,
        tag_name: o.tag_name,
        contained_name: o.contained_name,
        hierarchical_name: o.hierarchical_name,
        parent_gobject_id: o.parent_gobject_id,
        area_gobject_id: o.area_gobject_id,
        category_id: o.category_id,
        is_area: o.is_area,
        template_chain: o.template_chain,
        attributes: o
            .attributes
            .into_iter()
            .map(|a| GalaxyAttribute {
                name: a.attribute_name,
                full_tag_reference: a.full_tag_reference,
                data_type: MxDataType::from_native_code(a.mx_data_type),
                is_array: a.is_array,
                array_dimension: a.array_dimension,
                security: SecurityClassification::from_native_code(a.security_classification),
                is_historized: a.is_historized,
                is_alarm: a.is_alarm,
                eng_units: a.eng_units,
                description: a.description,
            })
            .collect(),
    }
}

pub(crate) fn galaxy_object_to_pb(o: &GalaxyObject, include_attributes: bool) -> gpb::GalaxyObject {
    gpb::GalaxyObject {
        gobject_id: o.gobject_id,
        tag_name: o.tag_name.clone(),
        contained_name: o.contained_name.clone(),
        hierarchical_name: o.hierarchical_name.clone(),
        parent_gobject_id: o.parent_gobject_id,
        area_gobject_id: o.area_gobject_id,
        category_id: o.category_id,
        is_area: o.is_area,
        template_chain: o.template_chain.clone(),
        attributes: if include_attributes {
            o.attributes
                .iter()
                .map(|a| gpb::GalaxyAttribute {
                    attribute_name: a.name.clone(),
                    full_tag_reference: a.full_tag_reference.clone(),
                    mx_data_type: a.data_type.native_code(),
                    data_type_name: a.data_type.name().to_string(),
                    is_array: a.is_array,
                    array_dimension: a.array_dimension,
                    security_classification: a.security.native_code(),
                    mx_attribute_category: 0,
                    description: a.description.clone(),
                    is_historized: a.is_historized,
                    is_alarm: a.is_alarm,
                    eng_units: a.eng_units.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(value_from_pb(&value_to_pb(&v, None), false).unwrap(), v);
        }
    }

    #[test]
    fn pre_epoch_time_round_trips() {
        let t = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(time_from_pb(&time_to_pb(t)), t);
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
        let v = pb::MxValue {
            kind: Some(pb::mx_value::Kind::SparseArrayValue(s.clone())),
            ..Default::default()
        };
        assert_eq!(
            value_from_pb(&v, true).unwrap(),
            MxValue::Array(MxArray::Double(vec![0.0, 5.0, 0.0]))
        );
        assert!(value_from_pb(&v, false).is_err());
        s.elements.push(el(1, 6.0));
        assert!(expand_sparse(&s).unwrap_err().contains("twice"));
        s.elements = vec![el(3, 1.0)];
        assert!(expand_sparse(&s).unwrap_err().contains("not below"));
    }
}
