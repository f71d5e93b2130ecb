//! One served PV, and the events pvxs callbacks send to Rust.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use cxx::UniquePtr;
use tokio::sync::mpsc;

use super::error::PvaError;
use super::ffi::bridge::{self, PutOp, PvHandle, WirePut, WireUpdate};
use super::put::{Credentials, PutCompletion, PutCounts, PutRequest};
use super::value::{pv_type_of, NtValue, PvType, Shape, Update};

/// Whether clients may put to a PV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Puts are refused at once with "<pv> is read-only".
    ReadOnly,
    /// Puts arrive as [`PvEvent::Put`].
    ReadWrite,
}

/// What pvxs tells Rust about a PV. (Each event is moved once, through the channel:
/// boxing the put would add an allocation per put for nothing.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum PvEvent {
    /// A client's put (on a writable PV, or refused already: [`PutRequest::refused`]).
    Put(PutRequest),
    /// The first client attached to the PV.
    Connected { pv: Arc<str> },
    /// The last client left the PV.
    Disconnected { pv: Arc<str> },
}

/// Caps on what clients' puts may size, checked in the pvxs callback before a put is
/// queued: past a cap the put is refused at once, without blocking the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutLimits {
    /// Puts received and not yet taken from the [`EventReceiver`].
    pub max_queued: usize,
    /// Elements in an array value.
    pub max_array_length: usize,
    /// Bytes (UTF-8) in a string value, or in any element of a string array.
    pub max_string_length: usize,
}

impl Default for PutLimits {
    /// The `[limits]` defaults.
    fn default() -> Self {
        let d = crate::config::Limits::DEFAULT;
        PutLimits {
            max_queued: d.max_puts_queued,
            max_array_length: d.max_array_length,
            max_string_length: d.max_string_length,
        }
    }
}

/// Where PVs send their events; one sender (cloned) may serve many PVs. Every PV holds
/// one, so a clone is one pointer (issue 23: memory per PV).
#[derive(Debug, Clone)]
pub struct EventSender(Arc<Sender>);

impl std::ops::Deref for EventSender {
    type Target = Sender;

    fn deref(&self) -> &Sender {
        &self.0
    }
}

/// What an [`EventSender`] holds, shared by its clones.
#[derive(Debug)]
pub struct Sender {
    tx: mpsc::UnboundedSender<PvEvent>,
    /// Puts sent and not yet received.
    queued: Arc<AtomicUsize>,
    limits: PutLimits,
    /// Puts received and failed, for the status PVs.
    counts: Arc<PutCounts>,
    /// Puts refused in the callback go to the receiver too (see `on_put`).
    forward_refused: Arc<AtomicBool>,
    /// Told of each put refused because `max_queued` puts wait (see
    /// [`EventSender::on_queue_full`]).
    queue_full: Arc<std::sync::OnceLock<QueueFullHook>>,
}

/// A put refused in the callback because `max_queued` puts wait already: it never reaches
/// the receiver.
#[derive(Debug)]
pub struct QueueFull<'a> {
    pub pv: &'a str,
    /// The value put, when it could be read.
    pub value: Option<&'a NtValue>,
    pub credentials: &'a Credentials,
    /// The error the client gets: the put's own refusal when it had one (`refused`), else
    /// the full queue.
    pub message: &'a str,
    /// The put was refused for a reason of its own already (read-only, unreadable, past a
    /// cap).
    pub refused: bool,
}

/// Called on pvxs's worker thread: must not block.
pub type QueueFullFn = Box<dyn Fn(&QueueFull<'_>) + Send + Sync>;

struct QueueFullHook(QueueFullFn);

impl std::fmt::Debug for QueueFullHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueFullHook")
    }
}

/// Receives [`PvEvent`]s.
#[derive(Debug)]
pub struct EventReceiver {
    rx: mpsc::UnboundedReceiver<PvEvent>,
    queued: Arc<AtomicUsize>,
}

impl EventReceiver {
    /// The next event; `None` when every sender is gone. Cancel-safe.
    pub async fn recv(&mut self) -> Option<PvEvent> {
        let ev = self.rx.recv().await?;
        self.taken(&ev);
        Some(ev)
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Result<PvEvent, mpsc::error::TryRecvError> {
        let ev = self.rx.try_recv()?;
        self.taken(&ev);
        Ok(ev)
    }

    fn taken(&self, ev: &PvEvent) {
        if matches!(ev, PvEvent::Put(_)) {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl EventSender {
    /// Puts received and answered with an error, over every PV of this channel.
    pub fn put_counts(&self) -> Arc<PutCounts> {
        self.counts.clone()
    }

    /// Puts received and not yet taken up by the receiver.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// From now on, a put refused in the callback (a read-only PV, a value that cannot be
    /// read or is past a `[limits]` cap) goes to the receiver as a [`PutRequest`] with
    /// `refused` set, for access security and the audit trail, when the queue has room;
    /// without room, or before this, the callback answers it itself.
    pub fn forward_refused_puts(&self) {
        self.forward_refused.store(true, Ordering::Relaxed);
    }

    /// `hook` hears of every put refused because `max_queued` puts wait (for the audit
    /// trail); set once, for every PV of this channel.
    pub fn on_queue_full(&self, hook: QueueFullFn) {
        let _ = self.queue_full.set(QueueFullHook(hook));
    }

    /// Takes a place in the queue for one put; `false` when `max_queued` are waiting.
    fn reserve_put(&self) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limits.max_queued).then_some(n + 1)
            })
            .is_ok()
    }

    /// Sends `ev`; `false` when the receiver is gone (the event is dropped).
    fn send(&self, ev: PvEvent) -> bool {
        self.tx.send(ev).is_ok()
    }
}

/// A channel for [`PvEvent`]s with the default [`PutLimits`].
pub fn event_channel() -> (EventSender, EventReceiver) {
    event_channel_with(PutLimits::default())
}

/// A channel for [`PvEvent`]s. pvxs callbacks must never block: the channel itself is
/// unbounded, and puts past `limits.max_queued` are refused in the callback instead.
/// Connection changes always get through (one per PV per first connect / last leave).
pub fn event_channel_with(limits: PutLimits) -> (EventSender, EventReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        EventSender(Arc::new(Sender {
            tx,
            queued: queued.clone(),
            limits,
            counts: Arc::default(),
            forward_refused: Arc::default(),
            queue_full: Arc::default(),
        })),
        EventReceiver { rx, queued },
    )
}

/// Why a put value is larger than `limits` allow, if it is.
fn oversized(pv: &str, value: &NtValue, limits: &PutLimits) -> Option<String> {
    let string_cap = |i: Option<usize>, s: &str| {
        (s.len() > limits.max_string_length).then(|| {
            let at = i.map(|i| format!("element {i}: ")).unwrap_or_default();
            format!(
                "{pv}: {at}string of {} bytes exceeds [limits] max_string_length {}: put refused",
                s.len(),
                limits.max_string_length
            )
        })
    };
    if let NtValue::String(s) = value {
        return string_cap(None, s);
    }
    let n = value.len();
    if n > limits.max_array_length {
        return Some(format!(
            "{pv}: array of {n} elements exceeds [limits] max_array_length {}: put refused",
            limits.max_array_length
        ));
    }
    match value {
        NtValue::StringArray(v) => v
            .iter()
            .enumerate()
            .find_map(|(i, s)| string_cap(Some(i), s)),
        _ => None,
    }
}

/// What the C++ callbacks of one PV carry back into Rust.
pub struct PvContext {
    name: Arc<str>,
    access: Access,
    /// Where puts and connection events go; a closed channel answers puts with an error.
    events: EventSender,
}

impl PvContext {
    pub(crate) fn new(name: Arc<str>, access: Access, events: &EventSender) -> Self {
        PvContext {
            name,
            access,
            events: events.clone(),
        }
    }
}

/// Called by pvxs on its worker thread: must not block, must not panic.
pub(crate) fn on_put(ctx: &PvContext, put: WirePut, op: UniquePtr<PutOp>) {
    ctx.events.counts.received.fetch_add(1, Ordering::Relaxed);
    let completion = PutCompletion::counted(op, &ctx.events.counts);
    let mut refused = None;
    if ctx.access == Access::ReadOnly {
        tracing::debug!(pv = %ctx.name, peer = %put.peer, "put to a read-only PV refused");
        refused = Some(format!("{} is read-only: put refused", ctx.name));
    }
    let mut value = None;
    if !put.error.is_empty() {
        refused.get_or_insert_with(|| format!("{}: cannot read the put: {}", ctx.name, put.error));
    } else if let Some(ty) = pv_type_of(put.kind, put.array, put.nt_enum) {
        value = put.has_value.then(|| NtValue::from_wire(ty, put.data));
    } else {
        refused.get_or_insert_with(|| format!("{}: unsupported value type", ctx.name));
    }
    if let Some(refusal) = value
        .as_ref()
        .and_then(|v| oversized(&ctx.name, v, &ctx.events.limits))
    {
        tracing::debug!(pv = %ctx.name, peer = %put.peer, %refusal, "put refused");
        // Not kept: the value is past a cap.
        value = None;
        refused.get_or_insert(refusal);
    }
    let forward = refused.is_none() || ctx.events.forward_refused.load(Ordering::Relaxed);
    if !forward {
        completion.complete(Err(refused.unwrap_or_default()));
        return;
    }
    if !ctx.events.reserve_put() {
        let max = ctx.events.limits.max_queued;
        let refused_already = refused.is_some();
        let message = refused.unwrap_or_else(|| {
            format!(
                "{}: {max} puts already wait for the bridge ([limits] max_puts_queued {max}): put refused",
                ctx.name
            )
        });
        if let Some(hook) = ctx.events.queue_full.get() {
            let credentials = Credentials {
                peer: put.peer,
                iface: put.iface,
                method: put.method,
                account: put.account,
                roles: Vec::new(),
            };
            (hook.0)(&QueueFull {
                pv: &ctx.name,
                value: value.as_ref(),
                credentials: &credentials,
                message: &message,
                refused: refused_already,
            });
        }
        completion.complete(Err(message));
        return;
    }
    let request = PutRequest {
        pv: ctx.name.clone(),
        value,
        marked: put.marked,
        credentials: Credentials {
            peer: put.peer,
            iface: put.iface,
            method: put.method,
            account: put.account,
            roles: put.roles,
        },
        completion,
        refused,
    };
    // If nobody listens any more, the request (and its completion) is dropped here, which
    // answers the client with an error.
    if !ctx.events.send(PvEvent::Put(request)) {
        ctx.events.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Called by pvxs on its worker thread: must not block, must not panic.
pub(crate) fn on_connection(ctx: &PvContext, connected: bool) {
    let pv = ctx.name.clone();
    let _ = ctx.events.send(if connected {
        PvEvent::Connected { pv }
    } else {
        PvEvent::Disconnected { pv }
    });
}

/// A PV served by a [`Server`](super::Server): a pvxs SharedPV.
///
/// Clients that connect before [`SharedPv::open`] wait for it. Dropping a `SharedPv`
/// closes it; remove it from the server to stop serving the name.
pub struct SharedPv {
    name: Arc<str>,
    handle: UniquePtr<PvHandle>,
    /// The structure it was last opened with; `None` before the first open.
    shape: Option<Shape>,
}

impl std::fmt::Debug for SharedPv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPv")
            .field("name", &self.name)
            .field("shape", &self.shape)
            .field("open", &self.is_open())
            .finish()
    }
}

impl SharedPv {
    pub fn new(name: &str, access: Access, events: &EventSender) -> Result<Self, PvaError> {
        Self::with_shared_name(Arc::from(name), access, events)
    }

    /// [`SharedPv::new`] keeping `name` itself, not a copy of it (the config's own, for
    /// the bridge's PVs: issue 23, memory per PV).
    pub fn with_shared_name(
        name: Arc<str>,
        access: Access,
        events: &EventSender,
    ) -> Result<Self, PvaError> {
        if name.is_empty() {
            return Err(PvaError::Invalid {
                pv: name.to_string(),
                reason: "empty name".to_string(),
            });
        }
        let ctx = Box::new(PvContext::new(name.clone(), access, events));
        let handle =
            bridge::pv_new(ctx).map_err(|e| PvaError::native(format!("create PV {name}"), e))?;
        Ok(SharedPv {
            name,
            handle,
            shape: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its name, shared (for maps keyed by name, without another copy of it).
    pub fn shared_name(&self) -> Arc<str> {
        self.name.clone()
    }

    pub(crate) fn handle(&self) -> &PvHandle {
        &self.handle
    }

    /// The structure the PV has while open.
    pub fn shape(&self) -> Option<Shape> {
        self.shape
    }

    /// Opens the PV as `pv_type` with `initial`, which also decides whether `display`,
    /// `control` and `valueAlarm` exist (see [`Update`]). Waiting clients connect now.
    pub fn open(&mut self, pv_type: PvType, initial: &Update) -> Result<(), PvaError> {
        if self.is_open() {
            return Err(PvaError::AlreadyOpen {
                pv: self.name.to_string(),
            });
        }
        let shape = Shape::of(pv_type, initial);
        self.check(shape, initial)?;
        let handle = self.handle.as_mut().ok_or_else(|| PvaError::NotOpen {
            pv: self.name.to_string(),
        })?;
        handle
            .open(&shape.to_wire(), &initial.to_wire())
            .map_err(|e| PvaError::native(format!("open {}", self.name), e))?;
        self.shape = Some(shape);
        Ok(())
    }

    /// Posts the fields `update` carries; the others keep their values.
    pub fn post(&self, update: &Update) -> Result<(), PvaError> {
        self.check_open(update)?;
        self.post_wire(&update.to_wire())
    }

    /// [`SharedPv::post`] of an update that is not needed afterwards: its value (an array
    /// too) and alarm message move to the shim instead of being copied.
    pub fn post_owned(&self, update: Update) -> Result<(), PvaError> {
        self.check_open(&update)?;
        let mut wire = update.into_wire();
        // pvxs refuses a post to a closed PV, so no separate (locking) is-open call here.
        self.handle
            .post_moved(&mut wire)
            .map_err(|e| self.post_failed(e))
    }

    fn not_open(&self) -> PvaError {
        PvaError::NotOpen {
            pv: self.name.to_string(),
        }
    }

    fn check_open(&self, update: &Update) -> Result<(), PvaError> {
        let shape = self.shape.ok_or_else(|| self.not_open())?;
        self.check(shape, update)
    }

    fn post_wire(&self, wire: &WireUpdate) -> Result<(), PvaError> {
        // pvxs refuses a post to a closed PV, so no separate (locking) is-open call here.
        self.handle.post(wire).map_err(|e| self.post_failed(e))
    }

    fn post_failed(&self, e: cxx::Exception) -> PvaError {
        if self.is_open() {
            PvaError::native(format!("post to {}", self.name), e)
        } else {
            self.not_open()
        }
    }

    /// Closes the PV: clients are disconnected and new ones wait for the next open.
    pub fn close(&mut self) -> Result<(), PvaError> {
        self.handle
            .close()
            .map_err(|e| PvaError::native(format!("close {}", self.name), e))
    }

    pub fn is_open(&self) -> bool {
        self.handle.is_open()
    }

    /// The PV's whole current state, read back from pvxs.
    pub fn current(&self) -> Result<Update, PvaError> {
        let shape = self.shape.ok_or_else(|| PvaError::NotOpen {
            pv: self.name.to_string(),
        })?;
        let wire = self.handle.current().map_err(|_| PvaError::NotOpen {
            pv: self.name.to_string(),
        })?;
        Ok(Update::from_wire(shape.pv_type, wire))
    }

    /// Rejects an update the PV's structure cannot hold.
    fn check(&self, shape: Shape, update: &Update) -> Result<(), PvaError> {
        if let Some(value) = &update.value {
            if value.pv_type() != shape.pv_type {
                return Err(PvaError::TypeMismatch {
                    pv: self.name.to_string(),
                    expected: shape.pv_type,
                    got: value.pv_type(),
                });
            }
        }
        let numeric = match shape.pv_type {
            PvType::Scalar(t) | PvType::Array(t) => t.is_numeric(),
            PvType::Enum => false,
        };
        let missing = |field| {
            Err(PvaError::FieldNotInStructure {
                pv: self.name.to_string(),
                field,
            })
        };
        if update.choices.is_some() && shape.pv_type != PvType::Enum {
            return missing("value.choices");
        }
        if update.display.is_some() && !shape.display {
            return missing("display");
        }
        if (update.control.is_some() && !(shape.control && numeric))
            || (update.value_alarm.is_some() && !(shape.value_alarm && numeric))
        {
            return missing(if update.control.is_some() {
                "control"
            } else {
                "valueAlarm"
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(pv: &str) -> PvEvent {
        PvEvent::Put(PutRequest {
            pv: Arc::from(pv),
            value: None,
            marked: Vec::new(),
            credentials: Credentials::default(),
            completion: PutCompletion::new(UniquePtr::null()),
            refused: None,
        })
    }

    #[tokio::test]
    async fn puts_past_max_queued_are_refused_and_connections_still_pass() {
        let limits = PutLimits {
            max_queued: 2,
            ..PutLimits::default()
        };
        let (tx, mut rx) = event_channel_with(limits);
        for _ in 0..2 {
            assert!(tx.reserve_put());
            assert!(tx.send(put("X")));
        }
        assert!(!tx.reserve_put(), "a third put fits in a queue of 2");
        assert!(tx.send(PvEvent::Connected { pv: "X".into() }));
        assert!(matches!(rx.recv().await, Some(PvEvent::Put(_))));
        assert!(tx.reserve_put(), "a taken put frees its place");
        assert!(!tx.reserve_put());
        assert!(matches!(rx.try_recv(), Ok(PvEvent::Put(_))));
        assert!(matches!(rx.recv().await, Some(PvEvent::Connected { .. })));
        assert_eq!(tx.queued.load(Ordering::Acquire), 1);
    }

    #[test]
    fn oversized_puts_name_the_pv_the_size_and_the_cap() {
        let limits = PutLimits {
            max_queued: 1,
            max_array_length: 3,
            max_string_length: 4,
        };
        let check = |v: NtValue| oversized("P", &v, &limits);
        assert_eq!(check(NtValue::String("abcd".into())), None);
        assert_eq!(
            check(NtValue::String("abcdé".into())).unwrap(),
            "P: string of 6 bytes exceeds [limits] max_string_length 4: put refused"
        );
        assert_eq!(check(NtValue::Float64Array(vec![0.0; 3])), None);
        assert_eq!(
            check(NtValue::Float64Array(vec![0.0; 4])).unwrap(),
            "P: array of 4 elements exceeds [limits] max_array_length 3: put refused"
        );
        assert_eq!(
            check(NtValue::StringArray(vec!["a".into(), "abcde".into()])).unwrap(),
            "P: element 1: string of 5 bytes exceeds [limits] max_string_length 4: put refused"
        );
        assert_eq!(check(NtValue::Float64(1e300)), None);
    }
}
