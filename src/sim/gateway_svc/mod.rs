//! The simulated `mxaccess_gateway.v1.MxAccessGateway` service.
//!
//! - `mod.rs` (this file): the tonic service, the replies and refusals shared by
//!   every command, the event and alarm streams.
//! - `auth.rs`: API keys, scopes and tag prefixes (`Principal`, `authorize`).
//! - `reads.rs`: resolving references, reading them, the OnDataChange event, ReadBulk.
//! - `push.rs`: delivering OnDataChange / OnBufferedDataChange when a change happens.
//! - `writes.rs`: the write path, from the command to OnWriteComplete.
//! - `commands.rs`: `Invoke`'s dispatch of each command and the item handles.
mod auth;
mod commands;
mod push;
mod reads;
mod writes;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tonic::{Request, Response, Status};

use super::session::{Pushed, SimSession, State};
use super::{AlarmNews, Core};
use crate::gateway::convert::{active_alarm_to_pb, status_to_pb, transition_to_pb};
use crate::gateway::pb::gw as pb;
use crate::gateway::pb::gw::mx_command_reply::Reply;
use crate::gateway::{detail, MxStatus, MxStatusCategory};

pub(crate) use auth::authorize;
use auth::scope_for;
use commands::payload_kind;
pub(crate) use push::{buffered_burst, deliver_due, publish, publish_in_scan, scan_end};
pub(crate) use reads::{data_change, resolve};

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

fn failure(cat: MxStatusCategory, d: i32, text: impl Into<String>) -> MxStatus {
    MxStatus::failure(cat, d, text)
}

// ---------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------

/// The state of one attached event stream; detaches on drop.
/// One StreamEvents call's events: what it has taken from its session's queue, and what
/// it waits for when that is empty. A Stream of its own (not `unfold`), so that an event
/// is not moved through a future's state on its way out.
struct EventFeed {
    sess: Arc<SimSession>,
    core: Arc<Core>,
    id: u64,
    buf: VecDeque<pb::MxEvent>,
    done: bool,
    waiting: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Drop for EventFeed {
    fn drop(&mut self) {
        self.sess.detach(self.id);
        self.sess.touch();
    }
}

impl Stream for EventFeed {
    type Item = Result<pb::MxEvent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(waiting) = this.waiting.as_mut() {
                if waiting.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.waiting = None;
            }
            if let Some(e) = this.buf.pop_front() {
                return Poll::Ready(Some(Ok(e)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let stalled = this.core.is_stalled();
            let max = if stalled { 0 } else { 4096 };
            if let Err(s) = this.sess.take(this.id, max, &mut this.buf) {
                this.done = true;
                return Poll::Ready(Some(Err(s)));
            }
            if this.buf.is_empty() {
                this.waiting = Some(if stalled {
                    Box::pin(tokio::time::sleep(Duration::from_millis(10)))
                } else {
                    // A push meanwhile left a permit (notify_one): no wakeup is lost.
                    let sess = this.sess.clone();
                    Box::pin(async move { sess.wake.notified().await })
                });
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

/// Whether `reference` starts with `prefix`, ASCII case ignored. A prefix whose
/// length ends inside a character of the reference does not match.
fn matches_prefix(reference: &str, prefix: &str) -> bool {
    reference
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
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
        let sess = Arc::new(SimSession::new(
            id.clone(),
            r.client_session_name,
            limits,
            core.clock.clone(),
        ));
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
        self.core.forget_session(&sess);
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
            waiting: None,
        };
        Ok(Response::new(Box::pin(feed)))
    }

    async fn acknowledge_alarm(
        &self,
        request: Request<pb::AcknowledgeAlarmRequest>,
    ) -> Result<Response<pb::AcknowledgeAlarmReply>, Status> {
        authorize(&self.core, request.metadata(), "invoke:write")?;
        let r = request.into_inner();
        let delay = self.core.faults().ack_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let g = self.core.galaxy();
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
        match w.acknowledge(&g, i, &r.comment, &r.operator_user) {
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
                w.active_alarms(&self.core.galaxy()),
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
        let active = self.core.world.lock().active_alarms(&self.core.galaxy());
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
