//! Conversions between the generated protobuf types and the domain types.
//! Shared by the client (decode replies and events) and the simulator
//! (decode requests, encode replies), so both read the wire the same way.
//!
//! - `value.rs`: values and times, decoded within [`ValueLimits`].
//! - `event.rs`: session events; one that cannot be decoded becomes
//!   [`SessionEvent::Undecodable`] for its item alone.
//! - `proptests.rs`: generated messages through every decoder.
mod event;
#[cfg(test)]
mod proptests;
mod value;

pub(crate) use event::*;
pub(crate) use value::*;

use super::limits::{peer_text, ValueLimits};
use super::pb::galaxy as gpb;
use super::pb::gw as pb;
use super::types::*;

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
        diagnostic_text: peer_text(&s.diagnostic_text),
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

fn opt_value(
    what: &str,
    v: &Option<pb::MxValue>,
    limits: &ValueLimits,
) -> Result<Option<MxValue>, String> {
    v.as_ref()
        .map(|v| value_from_pb(v, limits, false))
        .transpose()
        .map_err(|e| format!("{what}: {e}"))
}

fn opt_time(
    what: &str,
    t: &Option<prost_types::Timestamp>,
) -> Result<Option<std::time::SystemTime>, String> {
    t.as_ref()
        .map(time_from_pb)
        .transpose()
        .map_err(|e| format!("{what}: {e}"))
}

/// A string of an alarm, within `max_string_length`.
fn alarm_text(what: &str, s: &str, limits: &ValueLimits) -> Result<String, String> {
    limits
        .check_string(s.len())
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(s.to_string())
}

pub(crate) fn active_alarm_from_pb(
    a: &pb::ActiveAlarmSnapshot,
    limits: &ValueLimits,
) -> Result<ActiveAlarm, String> {
    let text = |what, s: &str| alarm_text(what, s, limits);
    Ok(ActiveAlarm {
        reference: text("alarm reference", &a.alarm_full_reference)?,
        source_object: text("source object", &a.source_object_reference)?,
        alarm_type: text("alarm type", &a.alarm_type_name)?,
        state: alarm_state_from_pb(a.condition_state)?,
        priority: a.raw_severity,
        raised_at: opt_time("raise time", &a.original_raise_timestamp)?,
        last_transition_at: opt_time("transition time", &a.last_transition_timestamp)?,
        operator: text("operator", &a.operator_user)?,
        comment: text("comment", &a.operator_comment)?,
        category: text("category", &a.category)?,
        description: text("description", &a.description)?,
        current_value: opt_value("current value", &a.current_value, limits)?,
        limit_value: opt_value("limit value", &a.limit_value, limits)?,
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
    limits: &ValueLimits,
) -> Result<AlarmTransition, String> {
    let text = |what, s: &str| alarm_text(what, s, limits);
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
        reference: text("alarm reference", &t.alarm_full_reference)?,
        source_object: text("source object", &t.source_object_reference)?,
        alarm_type: text("alarm type", &t.alarm_type_name)?,
        kind,
        state: alarm_state_from_pb(t.condition_state)?,
        priority: t.raw_severity,
        raised_at: opt_time("raise time", &t.original_raise_timestamp)?,
        at: opt_time("transition time", &t.transition_timestamp)?,
        operator: text("operator", &t.operator_user)?,
        comment: text("comment", &t.operator_comment)?,
        category: text("category", &t.category)?,
        description: text("description", &t.description)?,
        current_value: opt_value("current value", &t.current_value, limits)?,
        limit_value: opt_value("limit value", &t.limit_value, limits)?,
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
                // The native numbering has no 64-bit integer: the gateway's own arm is
                // known by its name (`raw` code -1).
                data_type: match MxDataType::from_native_code(a.mx_data_type) {
                    MxDataType::Unknown => {
                        MxDataType::from_name(&a.data_type_name).unwrap_or(MxDataType::Unknown)
                    }
                    t => t,
                },
                is_array: a.is_array,
                array_dimension: a.array_dimension,
                security: SecurityClassification::from_native_code(a.security_classification),
                is_historized: a.is_historized,
                is_alarm: a.is_alarm,
                // Free text: cut to MAX_PEER_TEXT (a hostile Galaxy sends no megabytes).
                eng_units: super::limits::peer_text(&a.eng_units),
                description: super::limits::peer_text(&a.description),
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
