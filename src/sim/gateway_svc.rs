//! The simulated `mxaccess_gateway.v1.MxAccessGateway` service.
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::Stream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::config::KeyDef;
use super::session::{
    Item, Pushed, SimSession, State, Target, DEFAULT_BUFFER_INTERVAL, MAX_BUFFERED_SAMPLES,
};
use super::world::{coerce, World};
use super::{AlarmNews, AuthMode, Core};
use crate::gateway::convert::*;
use crate::gateway::pb::gw as pb;
use crate::gateway::pb::gw::mx_command::Payload;
use crate::gateway::pb::gw::mx_command_reply::Reply;
use crate::gateway::{
    detail, MxArray, MxDataType, MxStatus, MxStatusCategory, MxValue, Quality,
    SecurityClassification, ValueLimits,
};

pub(crate) const E_INVALIDARG: i32 = 0x8007_0057_u32 as i32;
pub(crate) const E_FAIL: i32 = 0x8000_4005_u32 as i32;
pub(crate) const E_ACCESSDENIED: i32 = 0x8007_0005_u32 as i32;
const GATEWAY_PROTOCOL_VERSION: i32 = 3;
const WORKER_PROTOCOL_VERSION: i32 = 1;

pub(crate) struct GatewaySvc {
    pub core: Arc<Core>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

// ---------------------------------------------------------------------------
// Authentication and scopes
// ---------------------------------------------------------------------------

/// Who is calling: None = authentication disabled (everything allowed).
pub(crate) struct Principal {
    key: Option<KeyDef>,
}

fn key_id(key: &str) -> String {
    key.strip_prefix("mxgw_")
        .and_then(|r| r.split_once('_'))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| "<unnamed>".into())
}

fn prefix_allows(prefixes: &Option<Vec<String>>, reference: &str) -> bool {
    match prefixes {
        None => true,
        Some(list) => {
            let r = reference.to_ascii_lowercase();
            list.iter().any(|p| r.starts_with(&p.to_ascii_lowercase()))
        }
    }
}

impl Principal {
    fn name(&self) -> String {
        self.key
            .as_ref()
            .map(|k| key_id(&k.key))
            .unwrap_or_else(|| "anonymous".into())
    }

    /// May this key read (add/advise/read) `reference`?
    fn check_read(&self, reference: &str) -> Result<(), String> {
        match &self.key {
            Some(k) if !prefix_allows(&k.read_prefixes, reference) => {
                Err(format!("API key {} may not read {reference}", self.name()))
            }
            _ => Ok(()),
        }
    }

    /// May this key write `reference` (of classification `sec`, if known)?
    fn check_write(
        &self,
        reference: &str,
        sec: Option<SecurityClassification>,
    ) -> Result<(), String> {
        let Some(k) = &self.key else { return Ok(()) };
        if !prefix_allows(&k.write_prefixes, reference) {
            return Err(format!("API key {} may not write {reference}", self.name()));
        }
        if let (Some(max), Some(sec)) = (k.max_write_classification, sec) {
            if sec.native_code() > max.native_code() {
                return Err(format!(
                    "API key {} may write up to {} but {reference} is {}",
                    self.name(),
                    max.name(),
                    sec.name()
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn authorize(core: &Core, md: &MetadataMap, scope: &str) -> Result<Principal, Status> {
    if core.galaxy.auth_mode == AuthMode::Open {
        return Ok(Principal { key: None });
    }
    let header = md.get("authorization").ok_or_else(|| {
        Status::unauthenticated("missing authorization metadata (expected \"Bearer <api-key>\")")
    })?;
    let text = header
        .to_str()
        .map_err(|_| Status::unauthenticated("malformed authorization metadata"))?;
    let (scheme, key) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
        return Err(Status::unauthenticated(
            "authorization metadata must be \"Bearer <api-key>\"",
        ));
    }
    let key = key.trim();
    // Compare every key fully so the time taken does not depend on where they differ.
    let found = core.galaxy.keys.iter().find(|k| {
        let (a, b) = (k.key.as_bytes(), key.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    let Some(def) = found else {
        return Err(Status::unauthenticated("invalid API key"));
    };
    if !def.scopes.contains(scope) && !def.scopes.contains("admin") {
        return Err(Status::permission_denied(format!(
            "API key {} lacks scope {scope}",
            key_id(&def.key)
        )));
    }
    Ok(Principal {
        key: Some(def.clone()),
    })
}

fn scope_for(kind: pb::MxCommandKind) -> &'static str {
    use pb::MxCommandKind as K;
    match kind {
        K::Write | K::Write2 | K::WriteBulk | K::Write2Bulk => "invoke:write",
        K::WriteSecured | K::WriteSecured2 | K::WriteSecuredBulk | K::WriteSecured2Bulk => {
            "invoke:secure"
        }
        K::DrainEvents => "events:read",
        K::Unspecified => "admin",
        _ => "invoke:read",
    }
}

fn payload_kind(p: &Payload) -> pb::MxCommandKind {
    use pb::MxCommandKind as K;
    match p {
        Payload::Register(_) => K::Register,
        Payload::Unregister(_) => K::Unregister,
        Payload::AddItem(_) => K::AddItem,
        Payload::AddItem2(_) => K::AddItem2,
        Payload::RemoveItem(_) => K::RemoveItem,
        Payload::Advise(_) => K::Advise,
        Payload::AdviseSupervisory(_) => K::AdviseSupervisory,
        Payload::UnAdvise(_) => K::UnAdvise,
        Payload::Write(_) => K::Write,
        Payload::Write2(_) => K::Write2,
        Payload::WriteSecured(_) => K::WriteSecured,
        Payload::WriteSecured2(_) => K::WriteSecured2,
        Payload::AuthenticateUser(_) => K::AuthenticateUser,
        Payload::AddItemBulk(_) => K::AddItemBulk,
        Payload::AdviseItemBulk(_) => K::AdviseItemBulk,
        Payload::RemoveItemBulk(_) => K::RemoveItemBulk,
        Payload::UnAdviseItemBulk(_) => K::UnAdviseItemBulk,
        Payload::SubscribeBulk(_) => K::SubscribeBulk,
        Payload::UnsubscribeBulk(_) => K::UnsubscribeBulk,
        Payload::WriteBulk(_) => K::WriteBulk,
        Payload::Write2Bulk(_) => K::Write2Bulk,
        Payload::WriteSecuredBulk(_) => K::WriteSecuredBulk,
        Payload::WriteSecured2Bulk(_) => K::WriteSecured2Bulk,
        Payload::ReadBulk(_) => K::ReadBulk,
        Payload::DrainEvents(_) => K::DrainEvents,
        Payload::AddBufferedItem(_) => K::AddBufferedItem,
        Payload::SetBufferedUpdateInterval(_) => K::SetBufferedUpdateInterval,
    }
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

fn protocol(
    code: pb::ProtocolStatusCode,
    message: impl Into<String>,
) -> Option<pb::ProtocolStatus> {
    Some(pb::ProtocolStatus {
        code: code as i32,
        message: message.into(),
    })
}

/// Why a command (or one bulk entry) did not go through.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// MXAccess failed the call: HRESULT and status.
    Mx(i32, MxStatus),
    /// The API key may not touch this tag (PERMISSION_DENIED; in bulks, denied in place).
    Denied(String),
    /// The request itself is malformed (INVALID_REQUEST).
    Invalid(String),
}

fn invalid_arg(text: impl Into<String>) -> Refusal {
    Refusal::Mx(
        E_INVALIDARG,
        MxStatus::failure(
            MxStatusCategory::OperationalError,
            detail::UNKNOWN_ERROR,
            text,
        ),
    )
}

struct ReplyBuilder(pb::MxCommandReply);

impl ReplyBuilder {
    fn new(session: &str, correlation: &str, kind: pb::MxCommandKind) -> Self {
        ReplyBuilder(pb::MxCommandReply {
            session_id: session.to_string(),
            correlation_id: correlation.to_string(),
            kind: kind as i32,
            protocol_status: protocol(pb::ProtocolStatusCode::Ok, ""),
            hresult: 0,
            ..Default::default()
        })
    }

    fn ok(mut self, reply: Option<Reply>) -> pb::MxCommandReply {
        self.0.statuses = vec![status_to_pb(&MxStatus::ok())];
        self.0.reply = reply;
        self.0
    }

    fn refused(mut self, r: Refusal) -> Result<pb::MxCommandReply, Status> {
        match r {
            Refusal::Mx(hr, st) => {
                self.0.protocol_status = protocol(
                    pb::ProtocolStatusCode::MxaccessFailure,
                    st.diagnostic_text.clone(),
                );
                self.0.hresult = hr;
                self.0.diagnostic_message = st.diagnostic_text.clone();
                self.0.statuses = vec![status_to_pb(&st)];
                Ok(self.0)
            }
            Refusal::Invalid(m) => {
                self.0.protocol_status = protocol(pb::ProtocolStatusCode::InvalidRequest, m);
                Ok(self.0)
            }
            Refusal::Denied(m) => Err(Status::permission_denied(m)),
        }
    }
}

// ---------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------

/// Resolve a tag reference. Err = syntactically unusable (E_INVALIDARG at AddItem);
/// an unknown tag resolves to `Target::Unresolved`, as MXAccess resolves late.
pub(crate) fn resolve(core: &Core, reference: &str) -> Result<Target, String> {
    let r = reference.trim();
    if r.is_empty() || r.chars().any(char::is_whitespace) || r != reference {
        return Err(format!("{reference:?} is not a valid item reference"));
    }
    let g = &core.galaxy;
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
    core: &Core,
    w: &World,
    t: &Target,
) -> (MxValue, MxDataType, Quality, SystemTime, u64, Vec<MxStatus>) {
    let g = &core.galaxy;
    let unresolved = |d: i32, text: String| {
        (
            MxValue::Null,
            MxDataType::Unknown,
            Quality::BAD_CONFIG_ERROR,
            SystemTime::now(),
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
        worker_timestamp: Some(time_to_pb(SystemTime::now())),
        body: Some(pb::mx_event::Body::OnDataChange(pb::OnDataChangeEvent {})),
        ..Default::default()
    }
}

/// The next OnDataChange payload of an advised item, if one is due: the
/// first after Advise, then one per change of value or quality.
fn next_sample(
    core: &Core,
    world: &World,
    item: &mut Item,
    now: Instant,
) -> Option<(MxValue, MxDataType, Quality, SystemTime, Vec<MxStatus>)> {
    let first = match item.first_due {
        Some(d) if now >= d => true,
        Some(_) => return None,
        None => false,
    };
    let (value, dt, q, time, version, statuses) = read_target(core, world, &item.target);
    if !first && version <= item.last_version {
        return None;
    }
    item.last_version = version;
    if !first
        && item
            .cached
            .as_ref()
            .is_some_and(|(cv, cq, _)| *cv == value && *cq == q)
    {
        return None;
    }
    item.first_due = None;
    item.cached = Some((value.clone(), q, time));
    Some((value, dt, q, time, statuses))
}

fn buffered_data_change(
    session: &str,
    server: i32,
    item: i32,
    declared: Option<MxDataType>,
    samples: Vec<(MxValue, Quality, SystemTime)>,
) -> pb::MxEvent {
    let data_type = declared.unwrap_or(MxDataType::Unknown);
    let mut body = pb::OnBufferedDataChangeEvent {
        data_type: data_type_to_pb(data_type) as i32,
        ..Default::default()
    };
    for (v, q, t) in samples {
        body.values.push(value_to_pb(&v, declared));
        body.qualities.push(i32::from(q.0));
        body.timestamps.push(time_to_pb(t));
    }
    pb::MxEvent {
        session_id: session.to_string(),
        family: pb::MxEventFamily::OnBufferedDataChange as i32,
        server_handle: server,
        item_handle: item,
        statuses: vec![status_to_pb(&MxStatus::ok())],
        worker_timestamp: Some(time_to_pb(SystemTime::now())),
        body: Some(pb::mx_event::Body::OnBufferedDataChange(body)),
        ..Default::default()
    }
}

/// Send due OnDataChange / OnBufferedDataChange events to every session
/// (called after each tick).
pub(crate) fn deliver_updates(core: &Core) {
    let sessions: Vec<Arc<SimSession>> = core.sessions.lock().values().cloned().collect();
    let world = core.world.lock();
    let now = Instant::now();
    for s in sessions {
        let mut events = Vec::new();
        {
            let mut h = s.handles.lock();
            if h.state != State::Ready {
                continue;
            }
            let mut handles: Vec<i32> = h
                .items
                .iter()
                .filter(|(_, i)| i.advised)
                .map(|(k, _)| *k)
                .collect();
            handles.sort_unstable();
            for ih in handles {
                let Some(server) = h.items.get(&ih).map(|i| i.server) else {
                    continue;
                };
                let interval = h
                    .buffer_intervals
                    .get(&server)
                    .copied()
                    .unwrap_or(DEFAULT_BUFFER_INTERVAL);
                let Some(item) = h.items.get_mut(&ih) else {
                    continue;
                };
                if let Some((value, dt, q, time, statuses)) = next_sample(core, &world, item, now) {
                    if item.buffered {
                        if item.samples.len() >= MAX_BUFFERED_SAMPLES {
                            item.samples.remove(0);
                        }
                        item.samples.push((value, q, time));
                    } else {
                        events.push(data_change(
                            &s.id, server, ih, &value, dt, q, time, &statuses,
                        ));
                    }
                }
                if item.buffered
                    && !item.samples.is_empty()
                    && now.duration_since(item.last_flush) >= interval
                {
                    item.last_flush = now;
                    let declared = item
                        .target
                        .attribute()
                        .and_then(|a| core.galaxy.attributes.get(a))
                        .map(|d| d.data_type);
                    events.push(buffered_data_change(
                        &s.id,
                        server,
                        ih,
                        declared,
                        std::mem::take(&mut item.samples),
                    ));
                }
            }
        }
        if !events.is_empty() {
            let mut it = events.into_iter();
            let n = it.len();
            s.push_with(n, |_| it.next().unwrap_or_default());
        }
    }
}

// ---------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteMode {
    pub secured: bool,
    pub user: i32,
    pub verifier: i32,
    pub timestamp: Option<SystemTime>,
}

fn failure(cat: MxStatusCategory, d: i32, text: impl Into<String>) -> MxStatus {
    MxStatus::failure(cat, d, text)
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
    let sec = target
        .attribute()
        .and_then(|a| core.galaxy.attributes.get(a))
        .map(|d| d.security);
    who.check_write(&reference, sec).map_err(Refusal::Denied)?;
    let faults = core.faults();
    let hit = reference
        .to_ascii_lowercase()
        .starts_with(&faults.write_fault_prefix.to_ascii_lowercase());
    let delay = if hit {
        faults.write_delay
    } else {
        Duration::ZERO
    };
    let forced = if hit { faults.fail_writes_detail } else { None };
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
            worker_timestamp: Some(time_to_pb(SystemTime::now())),
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
    let g = &core.galaxy;
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
    let g = &core.galaxy;
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
    let time = mode.timestamp.unwrap_or_else(SystemTime::now);
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
    w.store(a, new, time);
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

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

impl GatewaySvc {
    fn session(&self, id: &str) -> Result<Arc<SimSession>, Status> {
        self.core
            .sessions
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("session {id:?} not found")))
    }

    fn add_item(
        &self,
        sess: &SimSession,
        who: &Principal,
        server: i32,
        reference: &str,
        buffered: bool,
    ) -> Result<i32, Refusal> {
        who.check_read(reference).map_err(Refusal::Denied)?;
        let target = resolve(&self.core, reference).map_err(invalid_arg)?;
        let mut h = sess.handles.lock();
        if !h.servers.contains_key(&server) {
            return Err(invalid_arg(format!("unknown server handle {server}")));
        }
        let handle = h.next_item;
        h.next_item += 1;
        h.items.insert(
            handle,
            Item {
                server,
                reference: reference.to_string(),
                target,
                advised: false,
                supervisory: false,
                first_due: None,
                last_version: 0,
                cached: None,
                buffered,
                samples: Vec::new(),
                last_flush: Instant::now(),
            },
        );
        Ok(handle)
    }

    fn with_item<T>(
        sess: &SimSession,
        server: i32,
        item: i32,
        f: impl FnOnce(&mut Item) -> T,
    ) -> Result<T, Refusal> {
        let mut h = sess.handles.lock();
        if !h.servers.contains_key(&server) {
            return Err(invalid_arg(format!("unknown server handle {server}")));
        }
        match h.items.get_mut(&item).filter(|i| i.server == server) {
            Some(i) => Ok(f(i)),
            None => Err(invalid_arg(format!("unknown item handle {item}"))),
        }
    }

    fn advise(
        &self,
        sess: &SimSession,
        server: i32,
        item: i32,
        supervisory: bool,
    ) -> Result<(), Refusal> {
        let due = Instant::now() + self.core.first_update_delay;
        Self::with_item(sess, server, item, |i| {
            if !i.advised {
                i.advised = true;
                i.supervisory = supervisory;
                i.first_due = Some(due);
                i.last_version = 0;
            }
        })
    }

    fn unadvise(sess: &SimSession, server: i32, item: i32) -> Result<(), Refusal> {
        Self::with_item(sess, server, item, |i| {
            i.advised = false;
            i.first_due = None;
            i.cached = None;
        })
    }

    fn remove_item(sess: &SimSession, server: i32, item: i32) -> Result<(), Refusal> {
        Self::with_item(sess, server, item, |_| ())?;
        sess.handles.lock().items.remove(&item);
        Ok(())
    }

    fn subscribe_result(
        server: i32,
        tag: &str,
        item: i32,
        r: Result<(), Refusal>,
    ) -> pb::SubscribeResult {
        let mut out = pb::SubscribeResult {
            server_handle: server,
            tag_address: tag.to_string(),
            item_handle: item,
            was_successful: r.is_ok(),
            ..Default::default()
        };
        match r {
            Ok(()) => out.statuses = vec![status_to_pb(&MxStatus::ok())],
            Err(Refusal::Mx(hr, st)) => {
                out.error_message = st.to_string();
                out.hresult = hr;
                out.statuses = vec![status_to_pb(&st)];
            }
            Err(Refusal::Denied(m)) => {
                out.error_message = format!("PERMISSION_DENIED: {m}");
                out.hresult = E_ACCESSDENIED;
            }
            Err(Refusal::Invalid(m)) => out.error_message = format!("INVALID_REQUEST: {m}"),
        }
        out
    }

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

    async fn read_bulk(
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
                    .and_then(|a| self.core.galaxy.attributes.get(a))
                    .map(|d| d.data_type);
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
                read_target(&self.core, &self.core.world.lock(), &target);
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

    async fn run(
        &self,
        sess: &Arc<SimSession>,
        who: &Principal,
        payload: Payload,
    ) -> Result<Option<Reply>, Refusal> {
        let core = &self.core;
        let bulk = |results| {
            Ok(Some(Reply::BulkSubscribe(pb::BulkSubscribeReply {
                results,
            })))
        };
        match payload {
            Payload::Register(c) => {
                let mut h = sess.handles.lock();
                let s = h.next_server;
                h.next_server += 1;
                h.servers.insert(s, c.client_name);
                Ok(Some(Reply::Register(pb::RegisterReply {
                    server_handle: s,
                })))
            }
            Payload::Unregister(c) => {
                let mut h = sess.handles.lock();
                if h.servers.remove(&c.server_handle).is_none() {
                    return Err(invalid_arg(format!(
                        "unknown server handle {}",
                        c.server_handle
                    )));
                }
                h.items.retain(|_, i| i.server != c.server_handle);
                Ok(None)
            }
            Payload::AddItem(c) => {
                let ih = self.add_item(sess, who, c.server_handle, &c.item_definition, false)?;
                Ok(Some(Reply::AddItem(pb::AddItemReply { item_handle: ih })))
            }
            Payload::AddItem2(c) => {
                let ih = self.add_item(sess, who, c.server_handle, &c.item_definition, false)?;
                Ok(Some(Reply::AddItem(pb::AddItemReply { item_handle: ih })))
            }
            Payload::RemoveItem(c) => {
                Self::remove_item(sess, c.server_handle, c.item_handle).map(|_| None)
            }
            Payload::Advise(c) => self
                .advise(sess, c.server_handle, c.item_handle, false)
                .map(|_| None),
            Payload::AdviseSupervisory(c) => self
                .advise(sess, c.server_handle, c.item_handle, true)
                .map(|_| None),
            Payload::UnAdvise(c) => {
                Self::unadvise(sess, c.server_handle, c.item_handle).map(|_| None)
            }
            Payload::Write(c) => self.write_one(sess, who, c.server_handle, &c),
            Payload::Write2(c) => self.write_one(sess, who, c.server_handle, &c),
            Payload::WriteSecured(c) => self.write_one(sess, who, c.server_handle, &c),
            Payload::WriteSecured2(c) => self.write_one(sess, who, c.server_handle, &c),
            Payload::AuthenticateUser(c) => {
                if !sess.handles.lock().servers.contains_key(&c.server_handle) {
                    return Err(invalid_arg(format!(
                        "unknown server handle {}",
                        c.server_handle
                    )));
                }
                match core
                    .galaxy
                    .users
                    .iter()
                    .find(|u| u.name.eq_ignore_ascii_case(&c.user_name) && u.password == c.password)
                {
                    Some(u) => Ok(Some(Reply::AuthenticateUser(pb::AuthenticateUserReply {
                        user_id: u.id,
                    }))),
                    None => Err(Refusal::Mx(
                        E_ACCESSDENIED,
                        failure(
                            MxStatusCategory::SecurityError,
                            detail::USER_NOT_HAVING_ACCESS_RIGHTS,
                            "unknown user or wrong password",
                        ),
                    )),
                }
            }
            Payload::AddItemBulk(c) => bulk(
                c.tag_addresses
                    .iter()
                    .map(
                        |t| match self.add_item(sess, who, c.server_handle, t, false) {
                            Ok(ih) => Self::subscribe_result(c.server_handle, t, ih, Ok(())),
                            Err(e) => Self::subscribe_result(c.server_handle, t, 0, Err(e)),
                        },
                    )
                    .collect(),
            ),
            Payload::SubscribeBulk(c) => bulk(
                c.tag_addresses
                    .iter()
                    .map(|t| {
                        let r = self
                            .add_item(sess, who, c.server_handle, t, false)
                            .and_then(|ih| {
                                self.advise(sess, c.server_handle, ih, false).map(|_| ih)
                            });
                        match r {
                            Ok(ih) => Self::subscribe_result(c.server_handle, t, ih, Ok(())),
                            Err(e) => Self::subscribe_result(c.server_handle, t, 0, Err(e)),
                        }
                    })
                    .collect(),
            ),
            Payload::AdviseItemBulk(c) => bulk(self.by_handle(
                sess,
                c.server_handle,
                &c.item_handles,
                |s, i| self.advise(sess, s, i, false),
            )),
            Payload::UnAdviseItemBulk(c) => bulk(self.by_handle(
                sess,
                c.server_handle,
                &c.item_handles,
                |s, i| Self::unadvise(sess, s, i),
            )),
            Payload::RemoveItemBulk(c) => bulk(self.by_handle(
                sess,
                c.server_handle,
                &c.item_handles,
                |s, i| Self::remove_item(sess, s, i),
            )),
            Payload::UnsubscribeBulk(c) => bulk(self.by_handle(
                sess,
                c.server_handle,
                &c.item_handles,
                |s, i| Self::unadvise(sess, s, i).and_then(|_| Self::remove_item(sess, s, i)),
            )),
            Payload::WriteBulk(c) => self.write_bulk(&c.entries, c.server_handle, sess, who),
            Payload::Write2Bulk(c) => self.write_bulk(&c.entries, c.server_handle, sess, who),
            Payload::WriteSecuredBulk(c) => self.write_bulk(&c.entries, c.server_handle, sess, who),
            Payload::WriteSecured2Bulk(c) => {
                self.write_bulk(&c.entries, c.server_handle, sess, who)
            }
            Payload::ReadBulk(c) => self.read_bulk(sess, who, c).await.map(Some),
            Payload::DrainEvents(c) => {
                let max = if c.max_events == 0 {
                    1000
                } else {
                    c.max_events as usize
                };
                let mut log = sess.log.lock();
                if log.subscriber.is_some() {
                    return Err(Refusal::Invalid(
                        "DrainEvents is not available while an event stream is attached".into(),
                    ));
                }
                let n = log.queue.len().min(max);
                let events = log.queue.drain(..n).collect();
                Ok(Some(Reply::DrainEvents(pb::DrainEventsReply { events })))
            }
            Payload::AddBufferedItem(c) => {
                let ih = self.add_item(sess, who, c.server_handle, &c.item_definition, true)?;
                Ok(Some(Reply::AddItem(pb::AddItemReply { item_handle: ih })))
            }
            Payload::SetBufferedUpdateInterval(c) => {
                if c.interval_ms == 0 {
                    return Err(invalid_arg("the buffered update interval must be > 0 ms"));
                }
                let mut h = sess.handles.lock();
                if !h.servers.contains_key(&c.server_handle) {
                    return Err(invalid_arg(format!(
                        "unknown server handle {}",
                        c.server_handle
                    )));
                }
                h.buffer_intervals.insert(
                    c.server_handle,
                    Duration::from_millis(u64::from(c.interval_ms)),
                );
                Ok(None)
            }
        }
    }

    fn by_handle(
        &self,
        sess: &SimSession,
        server: i32,
        items: &[i32],
        mut f: impl FnMut(i32, i32) -> Result<(), Refusal>,
    ) -> Vec<pb::SubscribeResult> {
        items
            .iter()
            .map(|&i| {
                let tag = sess
                    .handles
                    .lock()
                    .items
                    .get(&i)
                    .map(|x| x.reference.clone())
                    .unwrap_or_default();
                Self::subscribe_result(server, &tag, i, f(server, i))
            })
            .collect()
    }

    fn write_one(
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

    fn write_bulk<E: WriteParts>(
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
trait WriteParts {
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

// ---------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------

/// The state of one attached event stream; detaches on drop.
struct EventFeed {
    sess: Arc<SimSession>,
    core: Arc<Core>,
    id: u64,
    buf: VecDeque<pb::MxEvent>,
    done: bool,
}

impl Drop for EventFeed {
    fn drop(&mut self) {
        self.sess.detach(self.id);
        self.sess.touch();
    }
}

impl EventFeed {
    async fn next(&mut self) -> Option<Result<pb::MxEvent, Status>> {
        loop {
            if let Some(e) = self.buf.pop_front() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            let stalled = self.core.is_stalled();
            let max = if stalled { 0 } else { 4096 };
            if let Err(s) = self.sess.take(self.id, max, &mut self.buf) {
                self.done = true;
                return Some(Err(s));
            }
            if self.buf.is_empty() {
                if stalled {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                } else {
                    self.sess.wake.notified().await;
                }
            }
        }
    }
}

struct AlarmFeedState {
    first: VecDeque<pb::AlarmFeedMessage>,
    rx: tokio::sync::broadcast::Receiver<AlarmNews>,
    prefix: String,
    done: bool,
}

fn matches_prefix(reference: &str, prefix: &str) -> bool {
    reference.len() >= prefix.len() && reference[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[tonic::async_trait]
impl pb::mx_access_gateway_server::MxAccessGateway for GatewaySvc {
    async fn open_session(
        &self,
        request: Request<pb::OpenSessionRequest>,
    ) -> Result<Response<pb::OpenSessionReply>, Status> {
        authorize(&self.core, request.metadata(), "session:open")?;
        let r = request.into_inner();
        let core = &self.core;
        if core.faults().refuse_sessions {
            return Ok(Response::new(pb::OpenSessionReply {
                protocol_status: protocol(
                    pb::ProtocolStatusCode::WorkerUnavailable,
                    "the worker process could not be started (injected fault)",
                ),
                ..Default::default()
            }));
        }
        if core.session_count() >= core.opts.max_sessions {
            return Err(Status::resource_exhausted(format!(
                "MaxSessions ({}) reached",
                core.opts.max_sessions
            )));
        }
        let n = core
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!(
            "session-{:016x}{:016x}",
            core.uptime().as_nanos() as u64 ^ 0x5EED_5EED,
            n
        );
        let limits = super::session::LogLimits {
            queue_capacity: core.opts.event_queue_capacity,
            replay_capacity: core.opts.replay_capacity,
            replay_retention: core.opts.replay_retention,
        };
        let sess = Arc::new(SimSession::new(id.clone(), r.client_session_name, limits));
        core.sessions.lock().insert(id.clone(), sess);
        tracing::debug!(session = %id, "session opened");
        Ok(Response::new(pb::OpenSessionReply {
            protocol_status: protocol(pb::ProtocolStatusCode::Ok, ""),
            session_id: id,
            backend_name: "mxpva-sim".into(),
            gateway_protocol_version: GATEWAY_PROTOCOL_VERSION,
            worker_protocol_version: WORKER_PROTOCOL_VERSION,
        }))
    }

    async fn close_session(
        &self,
        request: Request<pb::CloseSessionRequest>,
    ) -> Result<Response<pb::CloseSessionReply>, Status> {
        authorize(&self.core, request.metadata(), "session:close")?;
        let id = request.into_inner().session_id;
        let sess = self.core.sessions.lock().remove(&id);
        let Some(sess) = sess else {
            return Err(Status::not_found(format!("session {id:?} not found")));
        };
        sess.handles.lock().state = State::Closed;
        sess.kill_subscriber(Status::cancelled("the session was closed"));
        Ok(Response::new(pb::CloseSessionReply {
            protocol_status: protocol(pb::ProtocolStatusCode::Ok, ""),
            session_id: id,
            final_state: pb::SessionState::Closed as i32,
        }))
    }

    async fn invoke(
        &self,
        request: Request<pb::MxCommandRequest>,
    ) -> Result<Response<pb::MxCommandReply>, Status> {
        let md = request.metadata().clone();
        let r = request.into_inner();
        let kind = r
            .command
            .as_ref()
            .map(|c| pb::MxCommandKind::try_from(c.kind).unwrap_or(pb::MxCommandKind::Unspecified))
            .unwrap_or(pb::MxCommandKind::Unspecified);
        let who = authorize(&self.core, &md, scope_for(kind))?;
        let sess = self.session(&r.session_id)?;
        let rb = ReplyBuilder::new(&r.session_id, &r.client_correlation_id, kind);
        if let State::Faulted(reason) = sess.state() {
            let mut reply = rb.0;
            reply.protocol_status = protocol(
                pb::ProtocolStatusCode::SessionNotReady,
                format!("session faulted: {reason}"),
            );
            return Ok(Response::new(reply));
        }
        sess.touch();
        let Some(payload) = r.command.and_then(|c| c.payload) else {
            return rb
                .refused(Refusal::Invalid("the command has no payload".into()))
                .map(Response::new);
        };
        if payload_kind(&payload) != kind {
            return rb
                .refused(Refusal::Invalid(format!(
                    "command kind {kind:?} does not match its payload {:?}",
                    payload_kind(&payload)
                )))
                .map(Response::new);
        }
        match self.run(&sess, &who, payload).await {
            Ok(reply) => Ok(Response::new(rb.ok(reply))),
            Err(e) => rb.refused(e).map(Response::new),
        }
    }

    type StreamEventsStream = BoxStream<pb::MxEvent>;

    async fn stream_events(
        &self,
        request: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        authorize(&self.core, request.metadata(), "events:read")?;
        let r = request.into_inner();
        let sess = self.session(&r.session_id)?;
        match sess.state() {
            State::Ready => {}
            State::Faulted(reason) => {
                return Err(Status::aborted(format!(
                    "session {} faulted: {reason}",
                    sess.id
                )))
            }
            State::Closed => {
                return Err(Status::not_found(format!(
                    "session {:?} not found",
                    sess.id
                )))
            }
        }
        let (id, first) = sess.attach(r.after_worker_sequence)?;
        sess.touch();
        let feed = EventFeed {
            sess,
            core: self.core.clone(),
            id,
            buf: first,
            done: false,
        };
        let stream = futures_util::stream::unfold(feed, |mut f| async move {
            f.next().await.map(|item| (item, f))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn acknowledge_alarm(
        &self,
        request: Request<pb::AcknowledgeAlarmRequest>,
    ) -> Result<Response<pb::AcknowledgeAlarmReply>, Status> {
        authorize(&self.core, request.metadata(), "invoke:write")?;
        let r = request.into_inner();
        let g = &self.core.galaxy;
        let reply = |code, msg: &str, hr, st: Option<MxStatus>| {
            Ok(Response::new(pb::AcknowledgeAlarmReply {
                protocol_status: protocol(code, msg),
                hresult: hr,
                status: st.as_ref().map(status_to_pb),
            }))
        };
        if r.comment.chars().count() > 256 {
            return reply(
                pb::ProtocolStatusCode::InvalidRequest,
                "the comment is longer than 256 characters",
                0,
                None,
            );
        }
        let mx_fail = pb::ProtocolStatusCode::MxaccessFailure;
        let Some(i) = g.alarm_index(&r.alarm_reference) else {
            let st = failure(
                MxStatusCategory::ConfigurationError,
                detail::INVALID_REFERENCE,
                format!("no alarm {}", r.alarm_reference),
            );
            return reply(mx_fail, &st.diagnostic_text.clone(), E_INVALIDARG, Some(st));
        };
        if g.security_enabled {
            if let Some(u) = g
                .users
                .iter()
                .find(|u| u.name.eq_ignore_ascii_case(&r.operator_user))
            {
                if !u.permissions.contains("AckAlarms") {
                    let st = failure(
                        MxStatusCategory::SecurityError,
                        detail::NO_ALARM_ACK_PRIVILEGE,
                        format!("{} may not acknowledge alarms", u.name),
                    );
                    return reply(
                        mx_fail,
                        &st.diagnostic_text.clone(),
                        E_ACCESSDENIED,
                        Some(st),
                    );
                }
            }
        }
        let mut w = self.core.world.lock();
        match w.acknowledge(g, i, &r.comment, &r.operator_user) {
            Ok(t) => {
                let _ = self.core.alarm_tx.send(AlarmNews::Transition(Box::new(t)));
                reply(pb::ProtocolStatusCode::Ok, "", 0, Some(MxStatus::ok()))
            }
            Err(st) => reply(mx_fail, &st.diagnostic_text.clone(), E_FAIL, Some(st)),
        }
    }

    type StreamAlarmsStream = BoxStream<pb::AlarmFeedMessage>;

    async fn stream_alarms(
        &self,
        request: Request<pb::StreamAlarmsRequest>,
    ) -> Result<Response<Self::StreamAlarmsStream>, Status> {
        use pb::alarm_feed_message::Kind;
        authorize(&self.core, request.metadata(), "events:read")?;
        let prefix = request.into_inner().alarm_filter_prefix;
        // Snapshot and subscribe under the world lock, so that no transition
        // is both in the snapshot and in the feed, or in neither.
        let (active, rx) = {
            let w = self.core.world.lock();
            (
                w.active_alarms(&self.core.galaxy),
                self.core.alarm_tx.subscribe(),
            )
        };
        let mut first: VecDeque<pb::AlarmFeedMessage> = active
            .iter()
            .filter(|a| matches_prefix(&a.reference, &prefix))
            .map(|a| pb::AlarmFeedMessage {
                kind: Some(Kind::ActiveAlarm(active_alarm_to_pb(a))),
            })
            .collect();
        let count = first.len() as u32;
        first.push_back(pb::AlarmFeedMessage {
            kind: Some(Kind::SnapshotComplete(pb::AlarmSnapshotComplete {
                active_alarm_count: count,
            })),
        });
        let state = AlarmFeedState {
            first,
            rx,
            prefix,
            done: false,
        };
        let stream = futures_util::stream::unfold(state, |mut s| async move {
            if let Some(m) = s.first.pop_front() {
                return Some((Ok(m), s));
            }
            if s.done {
                return None;
            }
            loop {
                match s.rx.recv().await {
                    Ok(AlarmNews::Transition(t)) if matches_prefix(&t.reference, &s.prefix) => {
                        let m = pb::AlarmFeedMessage {
                            kind: Some(Kind::Transition(transition_to_pb(&t))),
                        };
                        return Some((Ok(m), s));
                    }
                    Ok(AlarmNews::Transition(_)) => continue,
                    Ok(AlarmNews::Restart)
                    | Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        s.done = true;
                        return Some((Err(Status::unavailable("the gateway is restarting")), s));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        s.done = true;
                        let st = Status::resource_exhausted(format!(
                            "alarm feed subscriber fell {n} transitions behind; resubscribe"
                        ));
                        return Some((Err(st), s));
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type QueryActiveAlarmsStream = BoxStream<pb::ActiveAlarmSnapshot>;

    async fn query_active_alarms(
        &self,
        request: Request<pb::QueryActiveAlarmsRequest>,
    ) -> Result<Response<Self::QueryActiveAlarmsStream>, Status> {
        authorize(&self.core, request.metadata(), "events:read")?;
        let prefix = request.into_inner().alarm_filter_prefix;
        let active = self.core.world.lock().active_alarms(&self.core.galaxy);
        let items: Vec<Result<pb::ActiveAlarmSnapshot, Status>> = active
            .iter()
            .filter(|a| matches_prefix(&a.reference, &prefix))
            .map(|a| Ok(active_alarm_to_pb(a)))
            .collect();
        Ok(Response::new(Box::pin(futures_util::stream::iter(items))))
    }
}

/// Used by the control service's burst.
pub(crate) fn push_outcome(p: Pushed) -> Result<(), String> {
    match p {
        Pushed::Ok => Ok(()),
        Pushed::Overflow => Err("the event queue overflowed and the session faulted".into()),
        Pushed::NotReady => Err("the session is not ready".into()),
    }
}
