//! Reads: resolving tag references, reading them, the OnDataChange event, and the
//! ReadBulk command. (push.rs delivers the events.)
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::auth::Principal;
use super::{failure, invalid_arg, GatewaySvc, Refusal};
use crate::gateway::convert::{status_to_pb, time_to_pb, value_to_pb};
use crate::gateway::pb::gw as pb;
use crate::gateway::pb::gw::mx_command_reply::Reply;
use crate::gateway::{detail, MxDataType, MxStatus, MxStatusCategory, MxValue, Quality};
use crate::sim::session::{SimSession, Target};
use crate::sim::world::World;
use crate::sim::{Core, Galaxy};

/// Resolve a tag reference. Err = syntactically unusable (E_INVALIDARG at AddItem);
/// an unknown tag resolves to `Target::Unresolved`, as MXAccess resolves late.
pub(crate) fn resolve(core: &Core, reference: &str) -> Result<Target, String> {
    let r = reference.trim();
    if r.is_empty() || r.chars().any(char::is_whitespace) || r != reference {
        return Err(format!("{reference:?} is not a valid item reference"));
    }
    let g = core.galaxy();
    let (base, index) = match r.find('[') {
        Some(i) => {
            let idx = r[i..].strip_prefix('[').and_then(|s| s.strip_suffix(']'));
            match idx {
                Some(idx) => (&r[..i], Some(idx)),
                None => return Err(format!("{reference:?}: malformed array index")),
            }
        }
        None => (r, None),
    };
    if !base.contains('.') {
        return Ok(Target::Unresolved(
            detail::INVALID_REFERENCE,
            format!("{reference} is not Object.Attribute"),
        ));
    }
    if let Some((a, def)) = g.attribute(base) {
        return Ok(match (def.array_length, index) {
            (None, None) => Target::Scalar(a),
            (None, Some(_)) => Target::Unresolved(
                detail::WRONG_NUMBER_OF_DIMENSIONS,
                format!("{} is not an array", def.reference),
            ),
            (Some(_), None) => Target::Unresolved(
                detail::INDEX_OUT_OF_RANGE,
                format!("{} is an array: use {0}[] or {0}[N]", def.reference),
            ),
            (Some(_), Some("")) => Target::Whole(a),
            (Some(n), Some(i)) => match i.parse::<usize>() {
                Ok(i) if (1..=n).contains(&i) => Target::Element(a, i - 1),
                _ => Target::Unresolved(
                    detail::INDEX_OUT_OF_RANGE,
                    format!("{}[{i}]: elements are 1..={n}", def.reference),
                ),
            },
        });
    }
    if index.is_none() {
        if let Some(al) = g.alarm_index(base) {
            return Ok(Target::Alarm(al));
        }
    }
    let object = base.split('.').next().unwrap_or_default();
    Ok(if g.object_index(object).is_none() {
        Target::Unresolved(
            detail::INVALID_REFERENCE,
            format!("object {object} does not exist"),
        )
    } else {
        Target::Unresolved(
            detail::INVALID_REFERENCE,
            format!("{base}: no such attribute"),
        )
    })
}

/// Current value, quality, time, version and statuses of a target.
pub(crate) fn read_target(
    g: &Galaxy,
    w: &World,
    t: &Target,
) -> (MxValue, MxDataType, Quality, SystemTime, u64, Vec<MxStatus>) {
    let unresolved = |d: i32, text: String| {
        (
            MxValue::Null,
            MxDataType::Unknown,
            Quality::BAD_CONFIG_ERROR,
            g.now(),
            0,
            vec![MxStatus::failure(
                MxStatusCategory::ConfigurationError,
                d,
                text,
            )],
        )
    };
    let missing = |what: &str, i: usize| {
        unresolved(
            detail::INVALID_REFERENCE,
            format!("{what} {i} is not in the simulated Galaxy"),
        )
    };
    match t {
        Target::Scalar(a) | Target::Whole(a) => {
            let (Some(rt), Some(def)) = (w.attrs.get(*a), g.attributes.get(*a)) else {
                return missing("attribute", *a);
            };
            (
                rt.value.clone(),
                def.data_type,
                rt.quality,
                rt.time,
                rt.version,
                vec![MxStatus::ok()],
            )
        }
        Target::Element(a, i) => {
            let (Some(rt), Some(def)) = (w.attrs.get(*a), g.attributes.get(*a)) else {
                return missing("attribute", *a);
            };
            let v = match &rt.value {
                MxValue::Array(arr) => arr.get(*i).unwrap_or(MxValue::Null),
                _ => MxValue::Null,
            };
            (
                v,
                def.data_type,
                rt.quality,
                rt.time,
                rt.version,
                vec![MxStatus::ok()],
            )
        }
        Target::Alarm(al) => {
            let Some(rt) = w.alarms.get(*al) else {
                return missing("alarm", *al);
            };
            (
                MxValue::Bool(rt.state.is_active()),
                MxDataType::Boolean,
                Quality::GOOD,
                rt.time,
                rt.version,
                vec![MxStatus::ok()],
            )
        }
        Target::Unresolved(d, text) => unresolved(*d, text.clone()),
    }
}

#[allow(clippy::too_many_arguments)] // the OnDataChange callback's own arguments
pub(crate) fn data_change(
    session: &str,
    server: i32,
    item: i32,
    value: &MxValue,
    declared: MxDataType,
    quality: Quality,
    time: SystemTime,
    worker: SystemTime,
    statuses: &[MxStatus],
) -> pb::MxEvent {
    pb::MxEvent {
        session_id: session.to_string(),
        family: pb::MxEventFamily::OnDataChange as i32,
        server_handle: server,
        item_handle: item,
        value: Some(value_to_pb(
            value,
            if declared == MxDataType::Unknown {
                None
            } else {
                Some(declared)
            },
        )),
        quality: i32::from(quality.0),
        source_timestamp: Some(time_to_pb(time)),
        statuses: statuses.iter().map(status_to_pb).collect(),
        worker_timestamp: Some(time_to_pb(worker)),
        body: Some(pb::mx_event::Body::OnDataChange(pb::OnDataChangeEvent {})),
        ..Default::default()
    }
}

impl GatewaySvc {
    pub(super) async fn read_bulk(
        &self,
        sess: &Arc<SimSession>,
        who: &Principal,
        c: pb::ReadBulkCommand,
    ) -> Result<Reply, Refusal> {
        if !sess.handles.lock().servers.contains_key(&c.server_handle) {
            return Err(invalid_arg(format!(
                "unknown server handle {}",
                c.server_handle
            )));
        }
        let timeout = if c.timeout_ms == 0 {
            self.core.opts.default_read_timeout
        } else {
            Duration::from_millis(u64::from(c.timeout_ms))
        };
        let mut results = Vec::with_capacity(c.tag_addresses.len());
        for tag in &c.tag_addresses {
            let fail = |msg: String, st: Option<MxStatus>| pb::BulkReadResult {
                tag_address: tag.clone(),
                was_successful: false,
                error_message: msg,
                statuses: st.iter().map(status_to_pb).collect(),
                ..Default::default()
            };
            if let Err(m) = who.check_read(tag) {
                results.push(fail(format!("PERMISSION_DENIED: {m}"), None));
                continue;
            }
            let cached = {
                let h = sess.handles.lock();
                h.items
                    .values()
                    .find(|i| {
                        i.advised && i.reference.eq_ignore_ascii_case(tag) && i.cached.is_some()
                    })
                    .and_then(|i| i.cached.clone().map(|c| (c, i.target.clone())))
            };
            if let Some(((v, q, t), target)) = cached {
                let dt = target
                    .attribute()
                    .and_then(|a| self.core.galaxy().attributes.get(a).map(|d| d.data_type));
                results.push(pb::BulkReadResult {
                    tag_address: tag.clone(),
                    was_successful: true,
                    was_cached: true,
                    value: Some(value_to_pb(&v, dt)),
                    quality: i32::from(q.0),
                    source_timestamp: Some(time_to_pb(t)),
                    statuses: vec![status_to_pb(&MxStatus::ok())],
                    ..Default::default()
                });
                continue;
            }
            // Snapshot: add, advise, wait for the first data change, unadvise, remove.
            let target = match resolve(&self.core, tag) {
                Ok(t) => t,
                Err(m) => {
                    results.push(fail(m, None));
                    continue;
                }
            };
            let wait = self.core.first_update_delay;
            if wait > timeout {
                tokio::time::sleep(timeout).await;
                results.push(fail(
                    format!("no data change for {tag} within {} ms", timeout.as_millis()),
                    Some(failure(
                        MxStatusCategory::CommunicationError,
                        detail::REQUEST_TIMED_OUT,
                        "request timed out",
                    )),
                ));
                continue;
            }
            tokio::time::sleep(wait).await;
            let (v, dt, q, t, _, statuses) =
                read_target(&self.core.galaxy(), &self.core.world.lock(), &target);
            if let Target::Unresolved(..) = target {
                results.push(fail(
                    format!("{tag} does not resolve"),
                    statuses.first().cloned(),
                ));
                continue;
            }
            results.push(pb::BulkReadResult {
                tag_address: tag.clone(),
                was_successful: true,
                was_cached: false,
                value: Some(value_to_pb(&v, Some(dt))),
                quality: i32::from(q.0),
                source_timestamp: Some(time_to_pb(t)),
                statuses: statuses.iter().map(status_to_pb).collect(),
                ..Default::default()
            });
        }
        Ok(Reply::BulkRead(pb::BulkReadReply { results }))
    }
}
