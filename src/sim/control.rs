//! Run-time control of the simulator: [`SimHandle`] methods for Rust tests,
//! and the `mxpva_sim.v1.SimControl` gRPC service for everything else.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::config::AttrDef;
use super::gateway_svc::{authorize, buffered_burst, data_change, publish_in_scan, push_outcome};
use super::session::{SimSession, State};
use super::values::{coerce, parse_text};
use super::{AlarmNews, Core, Galaxy, SimHandle};
use crate::gateway::pb::control as cpb;
use crate::gateway::pb::gw as pb;
use crate::gateway::{MxDataType, MxStatus, MxValue, Quality};

/// Faults injected into the simulator. The default injects nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// OpenSession answers WORKER_UNAVAILABLE.
    pub refuse_sessions: bool,
    /// Event streams deliver nothing (queues fill up; overflow faults sessions).
    pub stall_events: bool,
    /// OnWriteComplete comes this much later.
    pub write_delay: Duration,
    /// Every write fails with this MxStatusDetail code.
    pub fail_writes_detail: Option<i32>,
    /// Only writes to references with this prefix are delayed or failed ("" = all).
    pub write_fault_prefix: String,
    /// The Galaxy Repository database cannot be reached: DiscoverHierarchy and
    /// BrowseChildren answer UNAVAILABLE, TestConnection answers false. Sessions, values
    /// and the deploy watch are not affected.
    pub galaxy_unavailable: bool,
    /// AcknowledgeAlarm answers this much later (a slow System Platform).
    pub ack_delay: Duration,
}

/// What the simulator knows about a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStats {
    pub session_id: String,
    pub client_session_name: String,
    /// `Ready`, `Faulted: <reason>` or `Closed`.
    pub state: String,
    pub queued_events: usize,
    pub last_worker_sequence: u64,
    pub subscriber_attached: bool,
    pub item_count: usize,
    /// Of those, the items advised now.
    pub advised_count: usize,
}

/// One write call the simulator received: what a test checks to know a write did (or
/// did not) reach the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSeen {
    /// The item's reference (`Object.Attribute`).
    pub reference: String,
    /// The value, as text.
    pub value: String,
}

/// How many received writes the simulator keeps.
pub const WRITES_KEPT: usize = 10_000;

impl super::Core {
    /// Notes a write call that reached the gateway.
    pub(crate) fn note_write(&self, reference: &Arc<str>, value: &MxValue) {
        let mut writes = self.writes.lock();
        if writes.len() >= WRITES_KEPT {
            writes.pop_front();
        }
        // Kept as it came; made text only when asked for (`writes`), not on each write.
        writes.push_back((reference.clone(), value.clone()));
    }
}

impl SimHandle {
    /// The Galaxy being simulated.
    pub fn galaxy(&self) -> Arc<Galaxy> {
        self.core.galaxy()
    }

    fn attr(&self, reference: &str) -> Result<(usize, AttrDef), String> {
        self.core
            .galaxy()
            .attribute(reference)
            .map(|(i, d)| (i, d.clone()))
            .ok_or_else(|| format!("{reference} is not an attribute of the simulated Galaxy"))
    }

    /// Set an attribute's value and hold it there (dynamics pause) until
    /// [`SimHandle::release_value`]. The value is converted to the attribute's type.
    /// The items advised on it get the OnDataChange at once.
    pub fn set_value(&self, reference: &str, value: MxValue) -> Result<(), String> {
        self.set_value_quality(reference, value, None)
    }

    /// [`SimHandle::set_value`], and hold the quality too (one change, one OnDataChange).
    fn set_value_quality(
        &self,
        reference: &str,
        value: MxValue,
        quality: Option<Quality>,
    ) -> Result<(), String> {
        let (a, def) = self.attr(reference)?;
        let v = coerce(&value, def.data_type, def.array_length)
            .map_err(|s: MxStatus| s.diagnostic_text)?;
        let mut w = self.core.world.lock();
        let g = self.core.galaxy();
        w.hold_value(a, true);
        let mut changed = w.store(a, v, g.now());
        if let Some(q) = quality {
            changed |= w.set_quality(&g, a, Some(q));
        }
        let changes = w.changed(&g, a, changed);
        publish_in_scan(&self.core, &g, &w, changes);
        Ok(())
    }

    /// Like [`SimHandle::set_value`], from text (arrays: comma-separated).
    pub fn set_value_text(&self, reference: &str, text: &str) -> Result<(), String> {
        self.set_value_text_quality(reference, text, None)
    }

    fn set_value_text_quality(
        &self,
        reference: &str,
        text: &str,
        quality: Option<Quality>,
    ) -> Result<(), String> {
        let (_, def) = self.attr(reference)?;
        let v = parse_text(text, def.data_type, def.array_length)?;
        self.set_value_quality(reference, v, quality)
    }

    /// Let the attribute's dynamics drive it again.
    pub fn release_value(&self, reference: &str) -> Result<(), String> {
        let (a, _) = self.attr(reference)?;
        self.core.world.lock().hold_value(a, false);
        Ok(())
    }

    /// Hold an attribute's quality (None: back to the configured behaviour, at once).
    pub fn set_quality(&self, reference: &str, quality: Option<Quality>) -> Result<(), String> {
        let (a, _) = self.attr(reference)?;
        let mut w = self.core.world.lock();
        let g = self.core.galaxy();
        let changed = w.set_quality(&g, a, quality);
        let changes = w.changed(&g, a, changed);
        publish_in_scan(&self.core, &g, &w, changes);
        Ok(())
    }

    fn force_alarm(&self, reference: &str, forced: Option<bool>) -> Result<(), String> {
        let mut w = self.core.world.lock();
        let g = self.core.galaxy();
        let i = g
            .alarm_index(reference)
            .ok_or_else(|| format!("{reference} is not an alarm of the simulated Galaxy"))?;
        let changes = w.force_alarm(&g, i, forced);
        publish_in_scan(&self.core, &g, &w, changes);
        Ok(())
    }

    /// Force an alarm active (until cleared or released).
    pub fn raise_alarm(&self, reference: &str) -> Result<(), String> {
        self.force_alarm(reference, Some(true))
    }

    /// Hold an alarm clear (until raised or released).
    pub fn clear_alarm(&self, reference: &str) -> Result<(), String> {
        self.force_alarm(reference, Some(false))
    }

    /// Return an alarm to its limit evaluation.
    pub fn release_alarm(&self, reference: &str) -> Result<(), String> {
        self.force_alarm(reference, None)
    }

    /// A new deploy: bumps the deploy time and emits a DeployEvent. Returns its sequence.
    pub fn deploy(&self) -> u64 {
        let mut d = self.core.deploy.lock();
        d.sequence += 1;
        d.time = self.core.now();
        let ev = super::galaxy_svc::deploy_event(&self.core, d.sequence, d.time);
        let _ = self.core.deploy_tx.send(ev);
        d.sequence
    }

    pub fn set_faults(&self, faults: Faults) {
        self.core
            .stalled
            .store(faults.stall_events, Ordering::Relaxed);
        *self.core.faults.lock() = faults;
    }

    pub fn faults(&self) -> Faults {
        self.core.faults()
    }

    fn sessions_matching(&self, id: Option<&str>) -> Vec<Arc<SimSession>> {
        self.core
            .sessions
            .lock()
            .values()
            .filter(|s| id.is_none_or(|i| s.id == i))
            .cloned()
            .collect()
    }

    /// End attached event streams (UNAVAILABLE) of one session or all; the
    /// sessions survive. Returns how many streams were ended.
    pub fn drop_event_streams(&self, session_id: Option<&str>) -> usize {
        self.sessions_matching(session_id)
            .iter()
            .filter(|s| s.kill_subscriber(Status::unavailable("the event stream was dropped")))
            .count()
    }

    /// Fault a session as a worker crash would.
    pub fn fault_session(&self, session_id: &str, reason: &str) -> Result<(), String> {
        let s = self.sessions_matching(Some(session_id));
        let s = s
            .first()
            .ok_or_else(|| format!("no session {session_id}"))?;
        s.fault(if reason.is_empty() {
            "worker process exited (injected fault)"
        } else {
            reason
        });
        Ok(())
    }

    /// Act as a gateway restart: every session is forgotten and every stream ends.
    pub fn restart(&self) {
        let sessions: Vec<Arc<SimSession>> =
            self.core.sessions.lock().drain().map(|(_, s)| s).collect();
        for s in sessions {
            s.handles.lock().state = State::Closed;
            self.core.forget_session(&s);
            s.kill_subscriber(Status::unavailable("the gateway restarted"));
        }
        let _ = self.core.alarm_tx.send(AlarmNews::Restart);
        self.core.epoch.send_modify(|e| *e += 1);
        self.core.deploy.lock().sequence = 1;
    }

    /// The write calls received so far (the most recent [`WRITES_KEPT`]), oldest first.
    pub fn writes(&self) -> Vec<WriteSeen> {
        self.core
            .writes
            .lock()
            .iter()
            .map(|(reference, value)| WriteSeen {
                reference: reference.to_string(),
                value: format!("{value:?}"),
            })
            .collect()
    }

    /// The sessions the simulator holds.
    pub fn sessions(&self) -> Vec<SessionStats> {
        let mut v: Vec<SessionStats> = self
            .sessions_matching(None)
            .iter()
            .map(|s| {
                let (state, items, advised) = {
                    let h = s.handles.lock();
                    (
                        match &h.state {
                            State::Ready => "Ready".to_string(),
                            State::Faulted(r) => format!("Faulted: {r}"),
                            State::Closed => "Closed".into(),
                        },
                        h.items.len(),
                        h.items.values().filter(|i| i.advised).count(),
                    )
                };
                let log = s.log.lock();
                SessionStats {
                    session_id: s.id.clone(),
                    client_session_name: s.name.clone(),
                    state,
                    queued_events: log.queue.len(),
                    last_worker_sequence: log.next_seq - 1,
                    subscriber_attached: log.subscriber.is_some(),
                    item_count: items,
                    advised_count: advised,
                }
            })
            .collect();
        v.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        v
    }

    /// Emit `count` OnDataChange events, round robin over the session's
    /// advised items, with synthetic Double values (0, 1, 2, ...). `paced`:
    /// wait for queue room (to measure the stream); otherwise push regardless
    /// and let the bounded-queue policy act. Returns the last worker sequence.
    pub async fn burst(&self, session_id: &str, count: u64, paced: bool) -> Result<u64, String> {
        let pace = if paced { Pace::QueueRoom } else { Pace::None };
        self.emit(session_id, count, pace).await
    }

    /// Like [`SimHandle::burst`], at a fixed rate: event k is queued at
    /// k / `rate_per_s` seconds after the start and carries that moment as its
    /// source time. Nothing waits for queue room: a consumer that falls behind
    /// meets the bounded-queue policy, as with the real gateway.
    pub async fn burst_at_rate(
        &self,
        session_id: &str,
        count: u64,
        rate_per_s: f64,
    ) -> Result<u64, String> {
        if !(rate_per_s.is_finite() && rate_per_s > 0.0) {
            return Err(format!("rate {rate_per_s} is not a positive number"));
        }
        // The last event is due count / rate seconds after the start: that must be a time.
        if Duration::try_from_secs_f64(count as f64 / rate_per_s).is_err() {
            return Err(format!(
                "rate {rate_per_s:e} is too low: {count} events would take longer than any timer"
            ));
        }
        self.emit(session_id, count, Pace::Rate(rate_per_s)).await
    }

    /// Every advised buffered item of the session takes `count` synthetic Double samples
    /// (`first`, `first + 1`, ..., 1 us apart, ending now), raw as [`SimHandle::burst`]
    /// is; they leave as OnBufferedDataChange by the rules of every buffered sample (see
    /// `gateway_svc/push.rs`). Returns how many items took them.
    pub fn buffered_burst(
        &self,
        session_id: &str,
        count: u32,
        first: f64,
    ) -> Result<usize, String> {
        let sess = self
            .sessions_matching(Some(session_id))
            .into_iter()
            .next()
            .ok_or_else(|| format!("no session {session_id}"))?;
        if sess.state() != State::Ready {
            return Err("the session is not ready".into());
        }
        match buffered_burst(&self.core, &sess, count as usize, first) {
            0 => Err(format!(
                "session {session_id} has no advised buffered items"
            )),
            n => Ok(n),
        }
    }

    async fn emit(&self, session_id: &str, count: u64, pace: Pace) -> Result<u64, String> {
        let sess = self
            .sessions_matching(Some(session_id))
            .into_iter()
            .next()
            .ok_or_else(|| format!("no session {session_id}"))?;
        let items: Vec<(i32, i32)> = {
            let h = sess.handles.lock();
            let mut v: Vec<(i32, i32)> = h
                .items
                .iter()
                .filter(|(_, i)| i.advised)
                .map(|(k, i)| (i.server, *k))
                .collect();
            v.sort_unstable();
            v
        };
        if items.is_empty() {
            return Err(format!("session {session_id} has no advised items"));
        }
        let t0 = self.core.now();
        let template: Vec<_> = items
            .iter()
            .map(|(s, i)| {
                data_change(
                    &sess.id,
                    *s,
                    *i,
                    &MxValue::Double(0.0),
                    MxDataType::Double,
                    Quality::GOOD,
                    t0,
                    t0,
                    &[MxStatus::ok()],
                )
            })
            .collect();
        let cap = sess.limits.queue_capacity;
        let chunk = 512usize.min(cap.max(1));
        if let Pace::Rate(rate) = pace {
            // On a thread of its own: tokio's timer wakes at 1 ms at the finest, which
            // queued the events of a whole millisecond at once (10 at 10,000/s) under one
            // source time, where the rate asks for one every 100 us.
            let core = self.core.clone();
            return tokio::task::spawn_blocking(move || {
                emit_at_rate(&core, &sess, &template, count, rate, chunk)
            })
            .await
            .map_err(|e| format!("the paced burst stopped: {e}"))?;
        }
        let mut sent = 0u64;
        while sent < count {
            let n = chunk.min((count - sent) as usize);
            if pace == Pace::QueueRoom {
                while sess.queued() + n > cap {
                    if sess.state() != State::Ready {
                        return Err("the session is not ready".into());
                    }
                    let _ =
                        tokio::time::timeout(Duration::from_millis(20), sess.room.notified()).await;
                }
            }
            push_synthetic(&self.core, &sess, &template, sent, n)?;
            sent += n as u64;
            if pace == Pace::None {
                tokio::task::yield_now().await;
            }
        }
        let last = sess.log.lock().next_seq - 1;
        Ok(last)
    }
}

/// [`SimHandle::burst_at_rate`]'s loop, on a blocking thread: event k is queued
/// (k + 1) / `rate` seconds after the start, as precisely as the thread's sleep goes
/// (tens of microseconds), stamped with the moment it is queued; events that fell due
/// together (the thread woke late) are queued together.
fn emit_at_rate(
    core: &Core,
    sess: &SimSession,
    template: &[pb::MxEvent],
    count: u64,
    rate: f64,
    chunk: usize,
) -> Result<u64, String> {
    let start = std::time::Instant::now();
    let mut sent = 0u64;
    while sent < count {
        // The events due by now; when none is, sleep until the next one is (`due` passes
        // `sent` at (sent + 1) / rate seconds).
        let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(count);
        if due <= sent {
            let next =
                Duration::try_from_secs_f64((sent + 1) as f64 / rate).unwrap_or(Duration::MAX);
            std::thread::sleep(next.saturating_sub(start.elapsed()));
            continue;
        }
        let n = chunk.min((due - sent) as usize);
        push_synthetic(core, sess, template, sent, n)?;
        sent += n as u64;
    }
    let last = sess.log.lock().next_seq - 1;
    Ok(last)
}

/// Queues synthetic data changes `base .. base + n` of a burst: round robin over
/// `template` (one per advised item), each with its index as its Double value and the
/// time now as its source time.
fn push_synthetic(
    core: &Core,
    sess: &SimSession,
    template: &[pb::MxEvent],
    base: u64,
    n: usize,
) -> Result<(), String> {
    let now = crate::gateway::convert::time_to_pb(core.now());
    let mut k = 0u64;
    let outcome = sess.push_with(n, |_| {
        // Never past the end: the index is taken modulo the (non-empty) length.
        let idx = ((base + k) % template.len() as u64) as usize;
        let mut e = template.get(idx).cloned().unwrap_or_default();
        if let Some(v) = e.value.as_mut() {
            v.kind = Some(crate::gateway::pb::gw::mx_value::Kind::DoubleValue(
                (base + k) as f64,
            ));
        }
        e.source_timestamp = Some(now);
        k += 1;
        e
    });
    push_outcome(outcome)
}

/// How [`SimHandle::emit`] spaces its events.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pace {
    /// As fast as possible, regardless of queue room.
    None,
    /// As fast as the consumer makes queue room.
    QueueRoom,
    /// Events per second.
    Rate(f64),
}

pub(crate) struct ControlSvc {
    pub handle: SimHandle,
}

fn ok(message: impl Into<String>) -> Result<Response<cpb::ControlReply>, Status> {
    Ok(Response::new(cpb::ControlReply {
        message: message.into(),
    }))
}

fn quality_arg(q: u32) -> Result<Quality, Status> {
    u16::try_from(q)
        .map(Quality)
        .map_err(|_| Status::invalid_argument(format!("quality {q} is not 16 bits")))
}

impl ControlSvc {
    fn auth<T>(&self, r: &Request<T>) -> Result<(), Status> {
        authorize(&self.handle.core, r.metadata(), "admin").map(drop)
    }
}

#[tonic::async_trait]
impl cpb::sim_control_server::SimControl for ControlSvc {
    async fn set_value(
        &self,
        request: Request<cpb::SetValueRequest>,
    ) -> Result<Response<cpb::ControlReply>, Status> {
        self.auth(&request)?;
        let r = request.into_inner();
        if r.release {
            self.handle
                .release_value(&r.reference)
                .map_err(Status::invalid_argument)?;
            return ok(format!("{} released", r.reference));
        }
        let quality = match r.quality {
            0 => None,
            q => Some(quality_arg(q)?),
        };
        self.handle
            .set_value_text_quality(&r.reference, &r.value, quality)
            .map_err(Status::invalid_argument)?;
        ok(format!("{} = {}", r.reference, r.value))
    }

    async fn set_quality(
        &self,
        request: Request<cpb::SetQualityRequest>,
    ) -> Result<Response<cpb::ControlReply>, Status> {
        self.auth(&request)?;
        let r = request.into_inner();
        let q = if r.release {
            None
        } else {
            Some(quality_arg(r.quality)?)
        };
        self.handle
            .set_quality(&r.reference, q)
            .map_err(Status::invalid_argument)?;
        ok(match q {
            Some(q) => format!("{} quality {q}", r.reference),
            None => format!("{} quality released", r.reference),
        })
    }

    async fn raise_alarm(
        &self,
        request: Request<cpb::AlarmRequest>,
    ) -> Result<Response<cpb::ControlReply>, Status> {
        self.auth(&request)?;
        let r = request.into_inner();
        self.handle
            .raise_alarm(&r.reference)
            .map_err(Status::invalid_argument)?;
        ok(format!("{} raised", r.reference))
    }

    async fn clear_alarm(
        &self,
        request: Request<cpb::AlarmRequest>,
    ) -> Result<Response<cpb::ControlReply>, Status> {
        self.auth(&request)?;
        let r = request.into_inner();
        if r.release {
            self.handle
                .release_alarm(&r.reference)
                .map_err(Status::invalid_argument)?;
            return ok(format!("{} released", r.reference));
        }
        self.handle
            .clear_alarm(&r.reference)
            .map_err(Status::invalid_argument)?;
        ok(format!("{} cleared", r.reference))
    }

    async fn deploy(
        &self,
        request: Request<cpb::DeployRequest>,
    ) -> Result<Response<cpb::ControlReply>, Status> {
        self.auth(&request)?;
        ok(format!("deploy {}", self.handle.deploy()))
    }

    async fn set_faults(
        &self,
        request: Request<cpb::FaultSettings>,
    ) -> Result<Response<cpb::ControlReply>, Status> {
        self.auth(&request)?;
        let f = request.into_inner();
        if f.fail_writes_detail != 0 && crate::gateway::detail::name(f.fail_writes_detail).is_none()
        {
            return Err(Status::invalid_argument(format!(
                "{} is not an MxStatusDetail code",
                f.fail_writes_detail
            )));
        }
        self.handle.set_faults(Faults {
            refuse_sessions: f.refuse_sessions,
            stall_events: f.stall_events,
            write_delay: Duration::from_millis(u64::from(f.write_delay_ms)),
            fail_writes_detail: (f.fail_writes_detail != 0).then_some(f.fail_writes_detail),
            write_fault_prefix: f.write_fault_prefix,
            galaxy_unavailable: f.galaxy_unavailable,
            ack_delay: Duration::from_millis(u64::from(f.ack_delay_ms)),
        });
        ok("faults set")
    }

    async fn get_faults(
        &self,
        request: Request<cpb::Empty>,
    ) -> Result<Response<cpb::FaultSettings>, Status> {
        self.auth(&request)?;
        let f = self.handle.faults();
        Ok(Response::new(cpb::FaultSettings {
            refuse_sessions: f.refuse_sessions,
            stall_events: f.stall_events,
            write_delay_ms: f.write_delay.as_millis().min(u128::from(u32::MAX)) as u32,
            fail_writes_detail: f.fail_writes_detail.unwrap_or(0),
            write_fault_prefix: f.write_fault_prefix,
            galaxy_unavailable: f.galaxy_unavailable,
            ack_delay_ms: f.ack_delay.as_millis().min(u128::from(u32::MAX)) as u32,
        }))
    }

    async fn drop_event_streams(
        &self,
        request: Request<cpb::SessionSelector>,
    ) -> Result<Response<cpb::ControlReply>, Status> {
        self.auth(&request)?;
        let id = request.into_inner().session_id;
        let n = self
            .handle
            .drop_event_streams((!id.is_empty()).then_some(id.as_str()));
        ok(format!("{n} event streams dropped"))
    }

    async fn fault_session(
        &self,
        request: Request<cpb::FaultSessionRequest>,
    ) -> Result<Response<cpb::ControlReply>, Status> {
        self.auth(&request)?;
        let r = request.into_inner();
        self.handle
            .fault_session(&r.session_id, &r.reason)
            .map_err(Status::not_found)?;
        ok(format!("session {} faulted", r.session_id))
    }

    async fn restart(
        &self,
        request: Request<cpb::Empty>,
    ) -> Result<Response<cpb::ControlReply>, Status> {
        self.auth(&request)?;
        self.handle.restart();
        ok("restarted")
    }

    async fn burst(
        &self,
        request: Request<cpb::BurstRequest>,
    ) -> Result<Response<cpb::ControlReply>, Status> {
        self.auth(&request)?;
        let r = request.into_inner();
        let last = if r.rate_per_s > 0.0 {
            self.handle
                .burst_at_rate(&r.session_id, r.count, r.rate_per_s)
                .await
        } else if r.rate_per_s == 0.0 {
            self.handle.burst(&r.session_id, r.count, r.paced).await
        } else {
            return Err(Status::invalid_argument(format!(
                "rate_per_s {} is negative",
                r.rate_per_s
            )));
        }
        .map_err(Status::failed_precondition)?;
        ok(format!(
            "{} events queued; last worker_sequence {last}",
            r.count
        ))
    }

    async fn buffered_burst(
        &self,
        request: Request<cpb::BufferedBurstRequest>,
    ) -> Result<Response<cpb::ControlReply>, Status> {
        self.auth(&request)?;
        let r = request.into_inner();
        if !r.first_value.is_finite() {
            return Err(Status::invalid_argument(format!(
                "first_value {} is not a finite number",
                r.first_value
            )));
        }
        let items = self
            .handle
            .buffered_burst(&r.session_id, r.count, r.first_value)
            .map_err(Status::failed_precondition)?;
        ok(format!(
            "{} samples taken by {items} buffered items",
            r.count
        ))
    }

    async fn list_sessions(
        &self,
        request: Request<cpb::Empty>,
    ) -> Result<Response<cpb::ListSessionsReply>, Status> {
        self.auth(&request)?;
        let sessions = self
            .handle
            .sessions()
            .into_iter()
            .map(|s| cpb::SessionInfo {
                session_id: s.session_id,
                client_session_name: s.client_session_name,
                state: s.state,
                queued_events: s.queued_events as u32,
                last_worker_sequence: s.last_worker_sequence,
                subscriber_attached: s.subscriber_attached,
                item_count: s.item_count as u32,
                advised_count: s.advised_count as u32,
            })
            .collect();
        Ok(Response::new(cpb::ListSessionsReply { sessions }))
    }

    async fn list_writes(
        &self,
        request: Request<cpb::Empty>,
    ) -> Result<Response<cpb::ListWritesReply>, Status> {
        self.auth(&request)?;
        let writes = self
            .handle
            .writes()
            .into_iter()
            .map(|w| cpb::WriteSeen {
                reference: w.reference,
                value: w.value,
            })
            .collect();
        Ok(Response::new(cpb::ListWritesReply { writes }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimOptions;

    #[tokio::test]
    async fn a_rate_too_low_for_any_timer_is_refused() {
        let sim = SimHandle::new(Galaxy::demo(), SimOptions::default());
        let e = sim.burst_at_rate("no-such-session", 10, 1e-300).await;
        assert_eq!(
            e,
            Err("rate 1e-300 is too low: 10 events would take longer than any timer".into())
        );
        // A rate that is merely slow is taken; then the unknown session is the problem.
        let e = sim.burst_at_rate("no-such-session", 10, 1e-6).await;
        assert!(
            e.as_ref().is_err_and(|e| e.contains("no-such-session")),
            "{e:?}"
        );
    }
}
