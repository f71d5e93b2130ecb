//! The write calls and the write timers of the bridge task (issue 15).
//!
//! Puts ready in one turn of the bridge loop go out together at its end: one WriteBulk
//! (Write2Bulk, WriteSecuredBulk) per write kind, each entry answered in place; a lone
//! put goes as a plain Write, so one writer never waits for a batch. While a call is in
//! flight, the puts that arrive wait for its answer and then go out together, unless
//! they fill a batch of [`FOLLOW_BATCH`] (as Nagle's rule for TCP: a small segment waits
//! for the one in flight, a full one goes) or have waited [`HOLD`]: under a flood the
//! calls stay large, so their cost (a gRPC call's, in mxpva and in the gateway) is shared
//! by many puts (issue 23), and a call the gateway is slow to answer holds the other PVs'
//! puts no longer than that. Up to [`MAX_CALLS`] calls are in flight at once; puts that
//! arrive while that many are, go out together when one is answered. A PV has at most
//! one put in the calls in flight: the calls may be run in any order, and
//! OnWriteComplete names only the item, so a PV's second put waits (queued) until the
//! call of its first is answered, as the PV's writes must reach System Platform in the
//! order they were accepted.
//!
//! The calls are data ([`WriteCall`]) that the adapter makes ([`make`], futures polled by
//! its loop, no task per put) and answers ([`CallDone`]); the write timeouts and settle
//! bounds live in one ordered map whose first deadline the adapter sleeps until.

use std::collections::{BTreeMap, HashSet, VecDeque};

use tokio::time::Instant;

use super::failure::{classify, Failed, Failure};
use crate::bridge::pv_id::PvId;
use crate::gateway::{GatewayError, ServerHandle, Session, WriteEntry, WriteKind};

/// At most this many puts go in one bulk write call. The gateway caps a message at
/// 16 MiB; with [`MAX_CALL_BYTES`] this keeps a call well under it and its reply small,
/// while 100 concurrent writers still share one round trip.
pub(in crate::bridge) const MAX_BULK: usize = 256;

/// A bulk write call carries at most about this many value bytes (one larger value
/// goes alone).
const MAX_CALL_BYTES: usize = 4 << 20;

/// At most this many write calls are in flight. One call's round trip (encode, the
/// gateway's worker, the reply) then overlaps the next calls' instead of holding every
/// put that arrives meanwhile; past this bound, puts gather into the next batch (up to
/// [`MAX_BULK`]), so a flood of puts still costs one call per batch, not one per put,
/// and a gateway whose worker runs one call at a time is not handed a queue of them
/// (four at most, about 1,000 puts).
pub(in crate::bridge) const MAX_CALLS: usize = 4;

/// While a write call is in flight, another goes only with at least this many puts
/// queued (a full batch); fewer wait for an answer, then go together. A lone writer
/// never waits: with no call in flight its put goes at once. With 100 writers
/// (`benches/puts_cpu.sh`) calls went out with about 37 puts each while any of
/// [`MAX_CALLS`] could go, 50 with this rule; in alternating runs
/// (`benches/puts_ab.sh`) one call at a time made 6% to 18% more puts/s (four sets),
/// this rule 2% more in the one set run (issue 23, docs/performance.md).
pub(in crate::bridge) const FOLLOW_BATCH: usize = MAX_BULK;

/// Puts queued behind a call in flight wait at most this long for its answer; then they
/// go in a call of their own (up to [`MAX_CALLS`]), so that one call the gateway holds
/// does not hold the puts to every other PV. A call's answer takes well under this when
/// the gateway keeps up (a put's whole round trip for one writer is about 0.5 ms here).
pub(in crate::bridge) const HOLD: std::time::Duration = std::time::Duration::from_millis(2);

/// A put waiting for its write call.
pub(in crate::bridge) struct Queued {
    pub pv: PvId,
    pub id: u64,
    pub kind: WriteKind,
    pub entry: WriteEntry,
}

/// A write call answered: per put, accepted (`Ok`) or why not, or why the call failed
/// (each naming the layer that failed, `failure.rs`).
pub(in crate::bridge) struct CallDone {
    /// The call ([`WriteCall::call`]).
    pub call: u64,
    pub puts: Vec<(PvId, u64)>,
    pub result: Result<Vec<Result<(), Failed>>, Failed>,
}

/// A write call to make in the live session: one put alone as a plain write, more as
/// one bulk call of their kind. Its answer comes back as [`CallDone`].
pub(in crate::bridge) struct WriteCall {
    pub call: u64,
    pub kind: WriteKind,
    /// Each put's PV and write id, in the order of `entries`.
    pub puts: Vec<(PvId, u64)>,
    pub entries: Vec<WriteEntry>,
}

/// What a timer does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::bridge) enum Timer {
    /// No OnWriteComplete within the write timeout.
    TimedOut(PvId),
    /// Confirmed [`super::pending::WRITE_SETTLE`] ago and no data change showed it.
    Settled(PvId),
}

#[derive(Default)]
pub(in crate::bridge) struct WriteCalls {
    /// While a call is in flight, another goes only with this many puts queued
    /// ([`FOLLOW_BATCH`] in service; see [`WriteCalls::new`]).
    pub follow_batch: usize,
    /// Since when the queued puts wait behind the calls in flight (the first's arrival),
    /// until they go or can only wait for a call's answer (each a PV with a put in one).
    held_since: Option<Instant>,
    /// Puts sent to the gateway and not yet answered, over all PVs (each
    /// [`PendingWrite`](super::pending::PendingWrite) holds one count, see
    /// [`InFlight`](super::pending::InFlight)); read by the status PVs.
    pub in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The last put's id.
    next_write: u64,
    /// Puts not sent yet, in arrival order.
    pub queue: VecDeque<Queued>,
    /// Write calls in flight, by call id.
    calls: HashSet<u64>,
    /// The PVs with a put in a call in flight (at most one each across the calls).
    busy: HashSet<PvId>,
    /// Write calls to make (taken by the adapter).
    pub outbox: Vec<WriteCall>,
    next_call: u64,
    /// Timers by (deadline, write id).
    timers: BTreeMap<(Instant, u64), Timer>,
    /// PVs already met in the batch being built (reused).
    in_call: HashSet<PvId>,
    /// The puts a batch leaves queued (reused).
    rest: VecDeque<Queued>,
}

impl WriteCalls {
    pub fn new() -> Self {
        WriteCalls {
            follow_batch: FOLLOW_BATCH,
            ..WriteCalls::default()
        }
    }

    pub fn add_timer(&mut self, at: Instant, id: u64, timer: Timer) {
        self.timers.insert((at, id), timer);
    }

    pub fn cancel_timer(&mut self, at: Instant, id: u64) {
        self.timers.remove(&(at, id));
    }

    /// An id for a new put, never given before.
    pub fn next_id(&mut self) -> u64 {
        self.next_write += 1;
        self.next_write
    }

    /// The first timer's deadline, or the end of the queued puts' [`HOLD`].
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.first_key_value().map(|(&(at, _), _)| at);
        let hold = self.hold_ends().filter(|_| self.calls.len() < MAX_CALLS);
        timer.into_iter().chain(hold).min()
    }

    fn hold_ends(&self) -> Option<Instant> {
        self.held_since.map(|t| t + HOLD)
    }

    /// Queues `q` (arrived `now`) for the next call.
    pub fn enqueue(&mut self, q: Queued, now: Instant) {
        self.queue.push_back(q);
        self.held_since.get_or_insert(now);
    }

    /// Whether a write call may go at `now`: none is in flight, or fewer than
    /// [`MAX_CALLS`] are and `follow_batch` puts are queued or they have waited [`HOLD`].
    pub fn may_send(&self, now: Instant) -> bool {
        self.calls.is_empty()
            || (self.calls.len() < MAX_CALLS
                && (self.queue.len() >= self.follow_batch
                    || self.hold_ends().is_some_and(|end| now >= end)))
    }

    /// After a turn's calls: the puts left queued wait on (`stuck`: none of them could go
    /// now, each of a PV with a put in a call in flight; they wait for its answer, not for
    /// a deadline).
    pub fn sent(&mut self, stuck: bool) {
        if self.queue.is_empty() || stuck {
            self.held_since = None;
        }
    }

    /// Write calls in flight.
    #[cfg(test)]
    pub fn calls_in_flight(&self) -> usize {
        self.calls.len()
    }

    /// The answer of `call`, of `puts`: true when it was in flight (not a lost
    /// session's); its PVs may then have their next put sent.
    pub fn answered(&mut self, call: u64, puts: &[(PvId, u64)]) -> bool {
        if !self.calls.remove(&call) {
            return false;
        }
        for (pv, _) in puts {
            self.busy.remove(pv);
        }
        // Puts that waited only for this call may go now, beside the other calls in
        // flight, after the hold at most.
        if !self.queue.is_empty() {
            self.held_since.get_or_insert_with(Instant::now);
        }
        true
    }

    /// The timers due by `now`, removed.
    pub fn due(&mut self, now: Instant) -> Vec<(u64, Timer)> {
        let mut out = Vec::new();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, id), timer) = entry.remove_entry();
            out.push((id, timer));
        }
        out
    }

    /// The link is gone: puts not sent and calls in flight are dropped (their puts are
    /// answered by the PVs' `connection_lost`).
    pub fn link_lost(&mut self) {
        self.held_since = None;
        self.queue.clear();
        self.calls.clear();
        self.busy.clear();
        self.outbox.clear();
    }

    /// Takes the next call's puts from the queue: in order, all of one write kind (the
    /// first's), at most one per PV and none of a PV with a put in a call in flight (so
    /// that each PV's OnWriteCompletes answer its writes in the order they were
    /// accepted), at most [`MAX_BULK`] and about [`MAX_CALL_BYTES`]. `keep` says whether a
    /// queued put is still to be sent (and marks it sent). Empty when nothing can go now.
    pub fn take_batch(&mut self, mut keep: impl FnMut(&Queued) -> bool) -> Vec<Queued> {
        self.in_call.clear();
        let mut batch = Vec::new();
        let mut kind = None;
        let mut bytes = 0usize;
        let mut rest = std::mem::take(&mut self.rest);
        while let Some(q) = self.queue.pop_front() {
            let size = q.entry.value.approx_bytes();
            let full = batch.len() >= MAX_BULK
                || (!batch.is_empty() && bytes.saturating_add(size) > MAX_CALL_BYTES);
            if full {
                rest.push_back(q);
                rest.append(&mut self.queue);
                break;
            }
            // A PV met already (its put waits, so do its later ones), or of another kind.
            if self.busy.contains(&q.pv)
                || !self.in_call.insert(q.pv)
                || kind.is_some_and(|k| k != q.kind)
            {
                rest.push_back(q);
                continue;
            }
            if !keep(&q) {
                // Withdrawn: a later put of its PV may go.
                self.in_call.remove(&q.pv);
                continue;
            }
            kind = Some(q.kind);
            bytes = bytes.saturating_add(size);
            batch.push(q);
        }
        // The queue is empty here: it takes the rest, and the rest its buffer.
        std::mem::swap(&mut self.queue, &mut rest);
        self.rest = rest;
        batch
    }

    /// Starts the call of `batch` (one write kind, at most one put per PV): a plain
    /// write for a lone put, else a bulk call.
    pub fn start(&mut self, batch: Vec<Queued>) {
        let Some(kind) = batch.first().map(|q| q.kind) else {
            return;
        };
        let mut puts = Vec::with_capacity(batch.len());
        let mut entries = Vec::with_capacity(batch.len());
        for q in batch {
            self.busy.insert(q.pv);
            puts.push((q.pv, q.id));
            entries.push(q.entry);
        }
        self.next_call = self.next_call.wrapping_add(1);
        let call = self.next_call;
        self.calls.insert(call);
        self.outbox.push(WriteCall {
            call,
            kind,
            puts,
            entries,
        });
    }
}

/// Makes a write call in `session` (the adapter's side).
pub(in crate::bridge) async fn make(
    session: Session,
    server: ServerHandle,
    c: WriteCall,
) -> CallDone {
    let WriteCall {
        call,
        kind,
        puts,
        entries,
    } = c;
    let name = match entries.len() {
        1 => single_call(kind),
        _ => bulk_call(kind),
    };
    tracing::debug!(call = name, puts = entries.len(), "write call");
    let failed = |e: &GatewayError| classify(Failure::Call(e));
    let result = match entries.as_slice() {
        [entry] => session
            .write(server, kind, entry)
            .await
            .map(|()| vec![Ok(())])
            .map_err(|e| failed(&e)),
        _ => session
            .write_bulk(server, kind, &entries)
            .await
            .map(|results| {
                let call = bulk_call(kind);
                results
                    .into_iter()
                    .map(|r| {
                        r.outcome.map_err(|error| {
                            classify(Failure::Entry {
                                call,
                                error: &error,
                            })
                        })
                    })
                    .collect()
            })
            .map_err(|e| failed(&e)),
    };
    CallDone { call, puts, result }
}

fn single_call(kind: WriteKind) -> &'static str {
    match kind {
        WriteKind::Write => "Write",
        WriteKind::Write2 => "Write2",
        WriteKind::WriteSecured => "WriteSecured",
        WriteKind::WriteSecured2 => "WriteSecured2",
    }
}

fn bulk_call(kind: WriteKind) -> &'static str {
    match kind {
        WriteKind::Write => "WriteBulk",
        WriteKind::Write2 => "Write2Bulk",
        WriteKind::WriteSecured => "WriteSecuredBulk",
        WriteKind::WriteSecured2 => "WriteSecured2Bulk",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{ItemHandle, MxValue};

    fn queued(pv: u64, id: u64, value: MxValue) -> Queued {
        Queued {
            pv: PvId::for_test(pv),
            id,
            kind: WriteKind::Write,
            entry: WriteEntry::new(ItemHandle(pv as i32), value),
        }
    }

    #[tokio::test]
    async fn a_batch_takes_one_put_per_pv_in_order_and_leaves_the_rest_queued() {
        let mut w = WriteCalls::default();
        for (pv, id) in [(1, 1), (2, 2), (1, 3), (3, 4), (2, 5), (1, 6)] {
            w.queue
                .push_back(queued(pv, id, MxValue::Double(id as f64)));
        }
        // Put 4 was withdrawn: it is dropped, not sent.
        let batch = w.take_batch(|q| q.id != 4);
        let ids: Vec<u64> = batch.iter().map(|q| q.id).collect();
        assert_eq!(ids, [1, 2]);
        let left: Vec<u64> = w.queue.iter().map(|q| q.id).collect();
        assert_eq!(left, [3, 5, 6]);
        let ids: Vec<u64> = w.take_batch(|_| true).iter().map(|q| q.id).collect();
        assert_eq!(ids, [3, 5]);
        let ids: Vec<u64> = w.take_batch(|_| true).iter().map(|q| q.id).collect();
        assert_eq!(ids, [6]);
        assert!(w.queue.is_empty());
    }

    #[tokio::test]
    async fn while_a_call_is_in_flight_only_a_full_batch_or_a_held_one_goes() {
        let t0 = Instant::now();
        let mut w = WriteCalls::new();
        // No call in flight: a lone put goes at once.
        w.enqueue(queued(0, 0, MxValue::Int32(1)), t0);
        assert!(w.may_send(t0));
        let batch = w.take_batch(|_| true);
        w.start(batch);
        w.sent(false);
        assert_eq!(w.next_deadline(), None);
        // One in flight: puts short of a full batch wait for its answer, HOLD at most.
        for i in 1..FOLLOW_BATCH as u64 {
            w.enqueue(queued(i, i, MxValue::Int32(1)), t0);
        }
        assert!(!w.may_send(t0));
        assert_eq!(w.next_deadline(), Some(t0 + HOLD));
        assert!(w.may_send(t0 + HOLD));
        // A full batch goes at once beside it, up to MAX_CALLS calls.
        w.enqueue(queued(FOLLOW_BATCH as u64, 0, MxValue::Int32(1)), t0);
        assert!(w.may_send(t0));
        for k in 1..MAX_CALLS as u64 {
            assert!(w.may_send(t0));
            let batch = w.take_batch(|_| true);
            assert!(!batch.is_empty());
            w.start(batch);
            for i in 0..FOLLOW_BATCH as u64 {
                w.enqueue(queued(1000 * k + i, i, MxValue::Int32(1)), t0);
            }
        }
        assert_eq!(w.calls_in_flight(), MAX_CALLS);
        assert!(w.queue.len() >= FOLLOW_BATCH);
        assert!(!w.may_send(t0 + HOLD), "no more than MAX_CALLS in flight");
        assert_eq!(w.next_deadline(), None, "no hold to wake for at MAX_CALLS");
        // Once the calls are answered, what waits goes.
        let calls: Vec<WriteCall> = std::mem::take(&mut w.outbox);
        for c in &calls {
            assert!(w.answered(c.call, &c.puts));
        }
        assert!(w.may_send(t0));
    }

    #[tokio::test]
    async fn puts_that_wait_only_for_their_pvs_call_have_no_deadline() {
        let t0 = Instant::now();
        let mut w = WriteCalls::new();
        w.enqueue(queued(1, 1, MxValue::Int32(1)), t0);
        let batch = w.take_batch(|_| true);
        w.start(batch);
        w.sent(false);
        // PV 1's second put waits for the call of its first, whatever the hold.
        w.enqueue(queued(1, 2, MxValue::Int32(2)), t0);
        assert!(w.may_send(t0 + HOLD));
        assert!(w.take_batch(|_| true).is_empty());
        w.sent(true);
        assert_eq!(w.next_deadline(), None, "no timer spins for it");
        // Another PV's put arms the hold again.
        w.enqueue(queued(2, 3, MxValue::Int32(3)), t0 + HOLD);
        assert_eq!(w.next_deadline(), Some(t0 + HOLD + HOLD));
        let batch = w.take_batch(|_| true);
        assert_eq!(batch.len(), 1, "PV 2's put goes; PV 1's still waits");
        w.start(batch);
        w.sent(true);
        assert_eq!(w.next_deadline(), None);
        // PV 1's first call is answered while PV 2's is in flight: its second put may go
        // after the hold, not only once PV 2's call is answered too.
        let first = w.outbox.remove(0);
        assert!(w.answered(first.call, &first.puts));
        let armed = w.next_deadline().expect("the hold is armed again");
        assert!(w.may_send(armed));
        assert_eq!(w.take_batch(|_| true).len(), 1);
    }

    #[tokio::test]
    async fn a_batch_is_bounded_in_puts_and_in_bytes() {
        let mut w = WriteCalls::default();
        for i in 0..(MAX_BULK as u64 + 10) {
            w.queue.push_back(queued(i, i, MxValue::Int32(1)));
        }
        assert_eq!(w.take_batch(|_| true).len(), MAX_BULK);
        assert_eq!(w.queue.len(), 10);
        let mut w = WriteCalls::default();
        let big = || MxValue::String("x".repeat(MAX_CALL_BYTES / 2 + 1));
        for i in 0..3 {
            w.queue.push_back(queued(i, i, big()));
        }
        // One value past the budget still goes, alone.
        assert_eq!(w.take_batch(|_| true).len(), 1);
        assert_eq!(w.take_batch(|_| true).len(), 1);
        assert_eq!(w.queue.len(), 1);
    }

    #[tokio::test]
    async fn timers_fire_in_deadline_order_and_a_cancelled_one_never() {
        let mut w = WriteCalls::default();
        let t0 = Instant::now();
        let ms = |n| t0 + std::time::Duration::from_millis(n);
        w.add_timer(ms(30), 1, Timer::TimedOut(PvId::for_test(1)));
        w.add_timer(ms(10), 2, Timer::Settled(PvId::for_test(2)));
        w.add_timer(ms(20), 3, Timer::TimedOut(PvId::for_test(3)));
        w.cancel_timer(ms(20), 3);
        assert_eq!(w.next_deadline(), Some(ms(10)));
        assert!(w.due(ms(5)).is_empty());
        assert_eq!(
            w.due(ms(40)),
            [
                (2, Timer::Settled(PvId::for_test(2))),
                (1, Timer::TimedOut(PvId::for_test(1)))
            ]
        );
        assert_eq!(w.next_deadline(), None);
    }
}
