//! Simulated gateway sessions: MXAccess handles, the bounded event queue and
//! the replay buffer.
use crate::lock::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use crate::gateway::convert::time_to_pb;
use crate::gateway::pb::gw as pb;
use crate::gateway::{MxValue, Quality};

/// Where an item points.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// A scalar attribute.
    Scalar(usize),
    /// A whole array (`Obj.Attr[]`).
    Whole(usize),
    /// One array element (`Obj.Attr[N]`, stored 0-based).
    Element(usize, usize),
    /// An alarm attribute (`Obj.Level.HiHi`): Boolean, in alarm.
    Alarm(usize),
    /// The reference does not resolve; the detail code says why.
    Unresolved(i32, String),
}

impl Target {
    pub fn attribute(&self) -> Option<usize> {
        match self {
            Target::Scalar(a) | Target::Whole(a) | Target::Element(a, _) => Some(*a),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub server: i32,
    /// Shared with what notes the item's writes (no copy per write).
    pub reference: Arc<str>,
    pub target: Target,
    pub advised: bool,
    pub supervisory: bool,
    /// When the first OnDataChange after Advise is due (None once sent).
    pub first_due: Option<Instant>,
    /// Version of the attribute / alarm last reported.
    pub last_version: u64,
    /// The last OnDataChange payload (for ReadBulk's cached answer).
    pub cached: Option<(MxValue, Quality, SystemTime)>,
    /// Added with AddBufferedItem: changes are collected and delivered as
    /// OnBufferedDataChange every buffered update interval.
    pub buffered: bool,
    pub samples: Vec<(MxValue, Quality, SystemTime)>,
    pub last_flush: Instant,
    /// A flush of `samples` is on the simulator's due-list.
    pub flush_queued: bool,
}

/// Most samples one buffered item keeps between flushes (oldest dropped).
pub(crate) const MAX_BUFFERED_SAMPLES: usize = 1000;

/// Buffered update interval when SetBufferedUpdateInterval was not called.
pub(crate) const DEFAULT_BUFFER_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    Ready,
    Faulted(String),
    Closed,
}

/// Handles and items of a session (protected by one mutex).
pub(crate) struct Handles {
    pub state: State,
    pub servers: HashMap<i32, String>,
    pub next_server: i32,
    pub items: HashMap<i32, Item>,
    pub next_item: i32,
    pub last_used: Instant,
    /// SetBufferedUpdateInterval per server handle.
    pub buffer_intervals: HashMap<i32, Duration>,
}

/// A subscriber slot: which stream owns the session's events, and why it must end.
pub(crate) struct Subscriber {
    pub id: u64,
    pub kill: Option<tonic::Status>,
}

pub(crate) struct Log {
    pub next_seq: u64,
    /// Events not yet taken by a subscriber (bounded).
    pub queue: VecDeque<pb::MxEvent>,
    /// Recently published events, for resume.
    pub ring: VecDeque<(Instant, pb::MxEvent)>,
    pub subscriber: Option<Subscriber>,
    next_subscriber: u64,
}

/// Limits of the event pipeline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogLimits {
    pub queue_capacity: usize,
    pub replay_capacity: usize,
    pub replay_retention: Duration,
}

pub(crate) struct SimSession {
    pub id: String,
    pub name: String,
    pub handles: Mutex<Handles>,
    pub log: Mutex<Log>,
    /// Wakes the attached stream when events arrive or it must end.
    pub wake: Notify,
    /// Wakes a paced producer when the stream took events from the queue.
    pub room: Notify,
    pub limits: LogLimits,
    /// The node's clock, for the gateway's receive times (`clock.rs`).
    clock: super::clock::Clock,
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Ok,
    /// The queue overflowed and the session is now faulted.
    Overflow,
    /// The session is not ready; nothing was queued.
    NotReady,
}

impl SimSession {
    pub fn new(id: String, name: String, limits: LogLimits, clock: super::clock::Clock) -> Self {
        SimSession {
            clock,
            id,
            name,
            handles: Mutex::new(Handles {
                state: State::Ready,
                servers: HashMap::new(),
                next_server: 1,
                items: HashMap::new(),
                next_item: 1,
                last_used: Instant::now(),
                buffer_intervals: HashMap::new(),
            }),
            log: Mutex::new(Log {
                next_seq: 1,
                queue: VecDeque::new(),
                ring: VecDeque::new(),
                subscriber: None,
                next_subscriber: 1,
            }),
            wake: Notify::new(),
            room: Notify::new(),
            limits,
        }
    }

    pub fn state(&self) -> State {
        self.handles.lock().state.clone()
    }

    pub fn touch(&self) {
        self.handles.lock().last_used = Instant::now();
    }

    /// Publish events built by `make` (given their sequence numbers). Returns
    /// Overflow (and faults the session) if the queue would exceed capacity.
    pub fn push_with(&self, count: usize, mut make: impl FnMut(u64) -> pb::MxEvent) -> Pushed {
        if self.state() != State::Ready {
            return Pushed::NotReady;
        }
        let overflow = {
            let mut log = self.log.lock();
            let now = Instant::now();
            let mut overflow = false;
            for _ in 0..count {
                if log.queue.len() >= self.limits.queue_capacity {
                    overflow = true;
                    break;
                }
                let seq = log.next_seq;
                log.next_seq += 1;
                let mut ev = make(seq);
                ev.worker_sequence = seq;
                ev.gateway_receive_timestamp = Some(time_to_pb(self.clock.now()));
                if self.limits.replay_capacity > 0 {
                    if log.ring.len() >= self.limits.replay_capacity {
                        log.ring.pop_front();
                    }
                    log.ring.push_back((now, ev.clone()));
                }
                log.queue.push_back(ev);
            }
            overflow
        };
        if overflow {
            self.fault(
                "EventQueueOverflow: the event queue is full (backpressure policy FailFast)",
            );
            return Pushed::Overflow;
        }
        self.wake.notify_one();
        Pushed::Ok
    }

    pub fn push(&self, ev: pb::MxEvent) -> Pushed {
        let mut ev = Some(ev);
        self.push_with(1, |_| ev.take().unwrap_or_default())
    }

    /// Fault the session: the stream ends, commands are refused.
    pub fn fault(&self, reason: &str) {
        {
            let mut h = self.handles.lock();
            if h.state != State::Ready {
                return;
            }
            h.state = State::Faulted(reason.to_string());
        }
        self.kill_subscriber(tonic::Status::aborted(format!(
            "session {} faulted: {reason}",
            self.id
        )));
    }

    /// End the attached stream (if any) with `status`.
    pub fn kill_subscriber(&self, status: tonic::Status) -> bool {
        let killed = {
            let mut log = self.log.lock();
            match log.subscriber.as_mut() {
                Some(s) => {
                    s.kill = Some(status);
                    true
                }
                None => false,
            }
        };
        self.wake.notify_one();
        killed
    }

    /// Attach a subscriber. `after`: resume after this worker sequence.
    /// Returns the subscriber id and the events to send first.
    pub fn attach(
        &self,
        after: Option<u64>,
    ) -> Result<(u64, VecDeque<pb::MxEvent>), tonic::Status> {
        let mut log = self.log.lock();
        if log.subscriber.is_some() {
            return Err(tonic::Status::failed_precondition(format!(
                "EventSubscriberAlreadyActive: session {} already has an event subscriber",
                self.id
            )));
        }
        let id = log.next_subscriber;
        log.next_subscriber += 1;
        log.subscriber = Some(Subscriber { id, kill: None });
        let mut first = VecDeque::new();
        let Some(n) = after else {
            return Ok((id, first));
        };
        // Forget what the client already has.
        while log.queue.front().is_some_and(|e| e.worker_sequence <= n) {
            log.queue.pop_front();
        }
        let retention = self.limits.replay_retention;
        let now = Instant::now();
        while log
            .ring
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > retention)
        {
            log.ring.pop_front();
        }
        let last = log.next_seq - 1;
        let queue_front = log.queue.front().map(|e| e.worker_sequence);
        if n >= last || queue_front == Some(n + 1) {
            return Ok((id, first));
        }
        // Events n+1 .. (queue front - 1) must come from the ring.
        let oldest = log
            .ring
            .front()
            .map(|(_, e)| e.worker_sequence)
            .or(queue_front)
            .unwrap_or(last + 1);
        if oldest > n + 1 {
            first.push_back(pb::MxEvent {
                family: pb::MxEventFamily::Unspecified as i32,
                replay_gap: Some(pb::ReplayGap {
                    requested_after_sequence: n,
                    oldest_available_sequence: oldest,
                }),
                gateway_receive_timestamp: Some(time_to_pb(self.clock.now())),
                ..Default::default()
            });
        }
        let upto = queue_front.unwrap_or(u64::MAX);
        for (_, e) in &log.ring {
            if e.worker_sequence > n && e.worker_sequence < upto {
                first.push_back(e.clone());
            }
        }
        Ok((id, first))
    }

    pub fn detach(&self, id: u64) {
        let mut log = self.log.lock();
        if log.subscriber.as_ref().is_some_and(|s| s.id == id) {
            log.subscriber = None;
        }
    }

    /// Take up to `max` queued events for subscriber `id`; Err if it must end.
    pub fn take(
        &self,
        id: u64,
        max: usize,
        out: &mut VecDeque<pb::MxEvent>,
    ) -> Result<(), tonic::Status> {
        let mut log = self.log.lock();
        match log.subscriber.as_mut() {
            Some(s) if s.id == id => {
                if let Some(k) = s.kill.take() {
                    log.subscriber = None;
                    return Err(k);
                }
            }
            _ => {
                return Err(tonic::Status::cancelled(
                    "the event subscriber was replaced",
                ))
            }
        }
        let n = log.queue.len().min(max);
        if out.is_empty() && n == log.queue.len() {
            // All of it: the queues trade places, and no event is moved.
            std::mem::swap(out, &mut log.queue);
        } else {
            out.extend(log.queue.drain(..n));
        }
        drop(log);
        if n > 0 {
            self.room.notify_waiters();
        }
        Ok(())
    }

    pub fn queued(&self) -> usize {
        self.log.lock().queue.len()
    }
}
