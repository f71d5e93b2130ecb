//! Writes: the checks MXAccess makes when a write is called, what System Platform
//! does with it, and the OnWriteComplete that reports it.
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::auth::Principal;
use super::{failure, invalid_arg, GatewaySvc, Refusal};
use crate::gateway::convert::{status_to_pb, time_from_pb, time_to_pb, value_from_pb};
use crate::gateway::pb::gw as pb;
use crate::gateway::pb::gw::mx_command_reply::Reply;
use crate::gateway::{
    detail, MxArray, MxStatus, MxStatusCategory, MxValue, SecurityClassification, ValueLimits,
};
use crate::sim::session::{SimSession, Target};
use crate::sim::values::coerce;
use crate::sim::Core;

#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteMode {
    pub secured: bool,
    pub user: i32,
    pub verifier: i32,
    pub timestamp: Option<SystemTime>,
}

/// Accept a write (checks that MXAccess makes at call time), then complete it
/// (now, or after the injected delay) with an OnWriteComplete event.
pub(crate) fn start_write(
    core: &Arc<Core>,
    sess: &Arc<SimSession>,
    who: &Principal,
    server: i32,
    item_handle: i32,
    value: Option<&pb::MxValue>,
    mode: WriteMode,
) -> Result<(), Refusal> {
    let value = value.ok_or_else(|| Refusal::Invalid("the write carries no value".into()))?;
    // The gateway's own caps on what a client writes: the `[limits]` defaults.
    let value = value_from_pb(value, &ValueLimits::DEFAULT, true).map_err(Refusal::Invalid)?;
    value.check_sendable().map_err(Refusal::Invalid)?;
    let (reference, target) = {
        let h = sess.handles.lock();
        if !h.servers.contains_key(&server) {
            return Err(invalid_arg(format!("unknown server handle {server}")));
        }
        let item = h
            .items
            .get(&item_handle)
            .filter(|i| i.server == server)
            .ok_or_else(|| invalid_arg(format!("unknown item handle {item_handle}")))?;
        if !item.advised {
            return Err(invalid_arg(format!(
                "{} must be advised before it can be written",
                item.reference
            )));
        }
        (item.reference.clone(), item.target.clone())
    };
    core.note_write(&reference, &value);
    let sec = target
        .attribute()
        .and_then(|a| core.galaxy().attributes.get(a).map(|d| d.security));
    who.check_write(&reference, sec).map_err(Refusal::Denied)?;
    let (delay, forced) = {
        let faults = core.faults.lock();
        if super::matches_prefix(&reference, &faults.write_fault_prefix) {
            (faults.write_delay, faults.fail_writes_detail)
        } else {
            (Duration::ZERO, None)
        }
    };
    let (core, sess) = (core.clone(), sess.clone());
    let finish = move || {
        let result = match forced {
            Some(d) => Err(failure(
                if (1..=5).contains(&d) {
                    MxStatusCategory::CommunicationError
                } else {
                    MxStatusCategory::OperationalError
                },
                d,
                "write failed (injected fault)",
            )),
            None => apply_write(&core, &target, &value, mode),
        };
        let statuses = match result {
            Ok(()) => vec![MxStatus::ok()],
            Err(s) => vec![s],
        };
        sess.push(pb::MxEvent {
            session_id: sess.id.clone(),
            family: pb::MxEventFamily::OnWriteComplete as i32,
            server_handle: server,
            item_handle,
            statuses: statuses.iter().map(status_to_pb).collect(),
            worker_timestamp: Some(time_to_pb(core.now())),
            body: Some(pb::mx_event::Body::OnWriteComplete(
                pb::OnWriteCompleteEvent {},
            )),
            ..Default::default()
        });
    };
    if delay.is_zero() {
        finish();
    } else {
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            finish();
        });
    }
    Ok(())
}

fn check_security(
    core: &Core,
    sec: SecurityClassification,
    mode: WriteMode,
) -> Result<(), MxStatus> {
    use SecurityClassification as S;
    let g = core.galaxy();
    if !g.security_enabled {
        return Ok(());
    }
    let user = |id: i32| g.users.iter().find(|u| u.id == id);
    let has = |id: i32, perm: &str| user(id).is_some_and(|u| u.permissions.contains(perm));
    let sec_err = MxStatusCategory::SecurityError;
    match sec {
        S::ViewOnly => Err(failure(
            sec_err,
            detail::WRITE_ACCESS_DENIED,
            "ViewOnly attributes cannot be written at run time",
        )),
        S::SecuredWrite | S::VerifiedWrite if !mode.secured => Err(if sec == S::SecuredWrite {
            failure(
                sec_err,
                detail::SECURED_WRITE,
                "a SecuredWrite attribute needs WriteSecured",
            )
        } else {
            failure(
                sec_err,
                detail::VERIFIED_WRITE,
                "a VerifiedWrite attribute needs WriteSecured with a verifier",
            )
        }),
        S::SecuredWrite => {
            if user(mode.user).is_none() {
                return Err(failure(
                    sec_err,
                    detail::USER_NOT_HAVING_ACCESS_RIGHTS,
                    format!("user id {} is not authenticated", mode.user),
                ));
            }
            Ok(())
        }
        S::VerifiedWrite => {
            if user(mode.user).is_none() {
                return Err(failure(
                    sec_err,
                    detail::USER_NOT_HAVING_ACCESS_RIGHTS,
                    format!("user id {} is not authenticated", mode.user),
                ));
            }
            if mode.verifier == mode.user || !has(mode.verifier, "Verify") {
                return Err(failure(
                    sec_err,
                    detail::VERIFIER_NOT_HAVING_VERIFY_RIGHTS,
                    "the verifier must be a different user with Verify permission",
                ));
            }
            Ok(())
        }
        S::Tune | S::Configure => {
            let perm = sec.name();
            if has(mode.user, perm) {
                Ok(())
            } else {
                Err(failure(
                    sec_err,
                    detail::WRITE_ACCESS_DENIED,
                    format!("writing a {perm} attribute needs a user with {perm} permission"),
                ))
            }
        }
        S::Operate => {
            if mode.user != 0 && !has(mode.user, "Operate") {
                Err(failure(
                    sec_err,
                    detail::USER_NOT_HAVING_ACCESS_RIGHTS,
                    format!("user id {} may not operate", mode.user),
                ))
            } else {
                Ok(())
            }
        }
        S::FreeAccess | S::Undefined => Ok(()),
    }
}

/// What System Platform does with a write: the status of OnWriteComplete.
pub(crate) fn apply_write(
    core: &Core,
    target: &Target,
    value: &MxValue,
    mode: WriteMode,
) -> Result<(), MxStatus> {
    let g = core.galaxy();
    let cfg = MxStatusCategory::ConfigurationError;
    let a = match target {
        Target::Unresolved(d, text) => return Err(failure(cfg, *d, text.clone())),
        Target::Alarm(_) => {
            return Err(failure(
                cfg,
                detail::NOT_WRITEABLE,
                "alarm states are changed by acknowledging",
            ))
        }
        Target::Scalar(a) | Target::Whole(a) | Target::Element(a, _) => *a,
    };
    let def = g.attributes.get(a).ok_or_else(|| {
        failure(
            cfg,
            detail::INVALID_REFERENCE,
            format!("attribute {a} is not in the simulated Galaxy"),
        )
    })?;
    if !def.writable {
        return Err(failure(
            cfg,
            detail::NOT_WRITEABLE,
            format!("{} is not writeable", def.reference),
        ));
    }
    check_security(core, def.security, mode)?;
    let elem_len = if matches!(target, Target::Element(..)) {
        None
    } else {
        def.array_length
    };
    let v = coerce(value, def.data_type, elem_len)?;
    if let (
        Some(x),
        MxValue::Double(_) | MxValue::Float(_) | MxValue::Int32(_) | MxValue::Int64(_),
    ) = (v.as_f64(), &v)
    {
        if def.min.is_some_and(|m| x < m) || def.max.is_some_and(|m| x > m) {
            return Err(failure(
                MxStatusCategory::OperationalError,
                detail::DATA_OUT_OF_RANGE,
                format!(
                    "{x} is outside {}..={}",
                    def.min.unwrap_or(f64::MIN),
                    def.max.unwrap_or(f64::MAX)
                ),
            ));
        }
    }
    // A write with a time of its own keeps it; others take the node's clock.
    let time = mode.timestamp.unwrap_or_else(|| core.now());
    let mut w = core.world.lock();
    let new = match target {
        Target::Element(_, i) => {
            let Some(MxValue::Array(arr)) = w.attrs.get(a).map(|rt| &rt.value) else {
                return Err(failure(
                    cfg,
                    detail::WRONG_NUMBER_OF_DIMENSIONS,
                    "not an array",
                ));
            };
            let mut arr = arr.clone();
            set_element(&mut arr, *i, v)?;
            MxValue::Array(arr)
        }
        _ => v,
    };
    // MXAccess fires the OnDataChange of the new value when System Platform applies the
    // write, and OnWriteComplete reports the write; so the data change goes out now, before
    // the caller queues the OnWriteComplete. The gateway documents (design/gateway.md,
    // reference/mxgateway-python-client-readme-*) say nothing of the order of the two
    // events; this is the order of the COM callbacks as MXAccess fires them. A write of the
    // value the attribute has is no change: no OnDataChange, only the OnWriteComplete.
    if w.store(a, new, time) {
        let g = core.galaxy();
        let changes = w.changed(&g, a, true);
        super::publish(core, &g, &w, changes);
    }
    Ok(())
}

fn set_element(arr: &mut MxArray, i: usize, v: MxValue) -> Result<(), MxStatus> {
    let bad = || {
        failure(
            MxStatusCategory::OperationalError,
            detail::WRONG_DATA_TYPE,
            "element type mismatch",
        )
    };
    let oob = || {
        failure(
            MxStatusCategory::OperationalError,
            detail::INDEX_OUT_OF_RANGE,
            "index out of range",
        )
    };
    macro_rules! put {
        ($vec:expr, $pat:ident) => {{
            let MxValue::$pat(x) = v else {
                return Err(bad());
            };
            *$vec.get_mut(i).ok_or_else(oob)? = x;
        }};
    }
    match arr {
        MxArray::Bool(a) => put!(a, Bool),
        MxArray::Int32(a) => put!(a, Int32),
        MxArray::Int64(a) => put!(a, Int64),
        MxArray::Float(a) => put!(a, Float),
        MxArray::Double(a) => put!(a, Double),
        MxArray::String(a) => put!(a, String),
        MxArray::Time(a) => put!(a, Time),
        MxArray::Elapsed(a) => put!(a, Elapsed),
    }
    Ok(())
}

impl GatewaySvc {
    fn write_result(item: i32, r: Result<(), Refusal>) -> pb::BulkWriteResult {
        let s = Self::subscribe_result(0, "", item, r);
        pb::BulkWriteResult {
            item_handle: item,
            was_successful: s.was_successful,
            error_message: s.error_message,
            hresult: s.hresult,
            statuses: s.statuses,
        }
    }

    pub(super) fn write_one(
        &self,
        sess: &Arc<SimSession>,
        who: &Principal,
        server: i32,
        cmd: &impl WriteParts,
    ) -> Result<Option<Reply>, Refusal> {
        let (item, value, mode) = cmd.parts();
        let mode = mode.map_err(Refusal::Invalid)?;
        start_write(&self.core, sess, who, server, item, value, mode).map(|_| None)
    }

    pub(super) fn write_bulk<E: WriteParts>(
        &self,
        entries: &[E],
        server: i32,
        sess: &Arc<SimSession>,
        who: &Principal,
    ) -> Result<Option<Reply>, Refusal> {
        let results = entries
            .iter()
            .map(|e| {
                let (item, value, mode) = e.parts();
                Self::write_result(
                    item,
                    mode.map_err(Refusal::Invalid).and_then(|mode| {
                        start_write(&self.core, sess, who, server, item, value, mode)
                    }),
                )
            })
            .collect();
        Ok(Some(Reply::BulkWrite(pb::BulkWriteReply { results })))
    }
}

/// The eight write shapes (four commands, four bulk entries), seen as (item, value,
/// mode); the mode is an error when the write's timestamp is not a valid time.
pub(super) trait WriteParts {
    fn parts(&self) -> (i32, Option<&pb::MxValue>, Result<WriteMode, String>);
}

macro_rules! write_parts {
    ($($t:ty => |$e:ident| ($secured:expr, $user:expr, $verifier:expr, $ts:expr);)*) => {
        $(impl WriteParts for $t {
            fn parts(&self) -> (i32, Option<&pb::MxValue>, Result<WriteMode, String>) {
                let $e = self;
                let timestamp: Option<&prost_types::Timestamp> = $ts;
                let mode = timestamp
                    .map(time_from_pb)
                    .transpose()
                    .map(|timestamp| WriteMode { secured: $secured, user: $user, verifier: $verifier, timestamp });
                ($e.item_handle, $e.value.as_ref(), mode)
            }
        })*
    };
}

write_parts! {
    pb::WriteCommand => |e| (false, e.user_id, 0, None);
    pb::Write2Command => |e| (false, e.user_id, 0, e.timestamp_value.as_ref());
    pb::WriteSecuredCommand => |e| (true, e.current_user_id, e.verifier_user_id, None);
    pb::WriteSecured2Command => |e| (true, e.current_user_id, e.verifier_user_id, e.timestamp_value.as_ref());
    pb::WriteBulkEntry => |e| (false, e.user_id, 0, None);
    pb::Write2BulkEntry => |e| (false, e.user_id, 0, e.timestamp_value.as_ref());
    pb::WriteSecuredBulkEntry => |e| (true, e.current_user_id, e.verifier_user_id, None);
    pb::WriteSecured2BulkEntry => |e| (true, e.current_user_id, e.verifier_user_id, e.timestamp_value.as_ref());
}
