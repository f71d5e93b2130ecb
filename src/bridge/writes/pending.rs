//! The puts to one PV that wait for System Platform, in one place: sent (or about to be)
//! and waiting for OnWriteComplete, confirmed and waiting for the data change that shows
//! them, and timed out with their OnWriteComplete still to be told apart. Each put is
//! answered exactly once, by whichever of these ends it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing::warn;

use crate::gateway::MxValue;
use crate::pva::{PutCompletion, PutOutcome};

/// A put sent to the gateway, waiting for its OnWriteComplete.
pub(in crate::bridge) struct PendingWrite {
    pub id: u64,
    pub started: Instant,
    pub completion: PutCompletion,
    /// A data change showing the written value (any data change, for a write whose
    /// value is not kept) arrived after the write was sent.
    pub changed: bool,
    /// Counts this write among the bridge's puts in flight until it is dropped.
    pub _in_flight: InFlight,
    /// Handed to a write call (`calls.rs`); until then a reload that removes the
    /// PV withdraws it, and it is never sent.
    pub sent: bool,
    /// The value written, for a scalar write: a data change or the value shown equal to
    /// it shows the write.
    pub written: Option<MxValue>,
    /// When its write timeout fires (set once the gateway accepted the call).
    pub timeout_at: Option<tokio::time::Instant>,
    /// The gateway answered its write call and accepted it. Until then, while an earlier
    /// write's OnWriteComplete may still come (see `After::lost`), an OnWriteComplete of
    /// the PV is held in `early`: it may be this write's (the stream ahead of the call's
    /// reply) or that earlier one's. The reply decides.
    pub accepted: bool,
    /// An OnWriteComplete taken before the call's reply (see `accepted`).
    pub early: Option<Result<(), String>>,
}

impl PendingWrite {
    /// Sent, and holding no OnWriteComplete yet: the next one of its PV may be its own.
    fn awaits_its_own(&self) -> bool {
        self.sent && self.early.is_none()
    }
}

/// One count in a shared number of puts in flight, given back when dropped: however a
/// pending write ends (answered, timed out, link lost), the count follows it.
pub(in crate::bridge) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long a confirmed put waits for the data change that shows the written value,
/// so that a client reading back at once (pvput's "New :") sees it. A write whose value
/// a data change showed before OnWriteComplete, or of the value the PV already shows
/// (MXAccess fires no data change then), completes at OnWriteComplete without waiting.
pub(in crate::bridge) const WRITE_SETTLE: std::time::Duration =
    std::time::Duration::from_millis(250);

/// The puts to one PV waiting for System Platform. Every PV has one and most never take
/// a put: it is two pointers until the first put (issue 23: memory per PV).
#[derive(Default)]
pub(in crate::bridge) struct PvWrites {
    /// Writes in the order they were accepted; OnWriteComplete answers the oldest sent.
    pub pending: Pending,
    /// Confirmed writes and timed-out ones, from the first that the PV has.
    after: Option<Box<After>>,
}

/// The writes of a PV past their OnWriteComplete, or past their timeout.
#[derive(Default)]
struct After {
    /// Confirmed writes waiting for the data change that shows them (see [`WRITE_SETTLE`]).
    settling: Vec<PendingWrite>,
    /// Writes that timed out, oldest first, until when their OnWriteComplete may still
    /// come: OnWriteComplete names only the item, so one that comes late is theirs, not
    /// the next write's (which would otherwise be answered by it).
    late: VecDeque<tokio::time::Instant>,
    /// Writes that timed out and whose OnWriteComplete did not come within their late
    /// window: one may still come, and be taken for a later write's. While this is not
    /// 0, an OnWriteComplete that comes before its write call's reply waits for the reply
    /// (`PendingWrite::accepted`). A held one whose call then fails was one of these.
    lost: u32,
}

/// A PV's writes in the order they were accepted: a queue made on the PV's first put, and
/// kept (its room is reused by the next puts).
#[derive(Default)]
// Boxed: one pointer in every PV's record, where the queue itself would be four.
#[allow(clippy::box_collection)]
pub(in crate::bridge) struct Pending(Option<Box<VecDeque<PendingWrite>>>);

impl Pending {
    pub fn push_back(&mut self, w: PendingWrite) {
        self.0.get_or_insert_with(Box::default).push_back(w);
    }

    pub fn front(&self) -> Option<&PendingWrite> {
        self.0.as_ref()?.front()
    }

    fn front_mut(&mut self) -> Option<&mut PendingWrite> {
        self.0.as_mut()?.front_mut()
    }

    pub fn pop_front(&mut self) -> Option<PendingWrite> {
        self.0.as_mut()?.pop_front()
    }

    pub fn remove(&mut self, pos: usize) -> Option<PendingWrite> {
        self.0.as_mut()?.remove(pos)
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    pub fn iter(&self) -> impl Iterator<Item = &PendingWrite> {
        self.0.iter().flat_map(|q| q.iter())
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut PendingWrite> {
        self.0.iter_mut().flat_map(|q| q.iter_mut())
    }

    /// Takes every write out, oldest first.
    fn drain(&mut self) -> impl Iterator<Item = PendingWrite> + '_ {
        self.0.iter_mut().flat_map(|q| q.drain(..))
    }
}

impl PvWrites {
    /// Writes sent and not yet answered, and confirmed ones waiting for their data change.
    pub fn waiting(&self) -> usize {
        self.pending.len() + self.after.as_ref().map_or(0, |a| a.settling.len())
    }

    /// The settled and timed-out writes, made on first use.
    fn after(&mut self) -> &mut After {
        self.after.get_or_insert_with(Box::default)
    }

    /// Whether an OnWriteComplete of this PV is expected: a write sent, or one that timed
    /// out not long ago.
    pub fn awaits_completion(&mut self, now: tokio::time::Instant) -> bool {
        if let Some(after) = self.after.as_mut() {
            while after.late.front().is_some_and(|&until| until <= now) {
                after.late.pop_front();
                after.lost = after.lost.saturating_add(1);
            }
            if !after.late.is_empty() || after.lost > 0 {
                return true;
            }
        }
        self.oldest_sent().is_some()
    }

    /// An OnWriteComplete that belongs to a write that timed out (the oldest one): it is
    /// taken, and true; otherwise false.
    pub fn late_completion(&mut self, pv: &str) -> bool {
        let sent = self.oldest_sent().is_some();
        let Some(after) = self.after.as_mut() else {
            return false;
        };
        if after.late.pop_front().is_some() {
            tracing::debug!(%pv, "OnWriteComplete of a write that timed out: ignored");
            return true;
        }
        if !sent && after.lost > 0 {
            // No write waits for one: it is that of a write that timed out long ago.
            after.lost -= 1;
            tracing::debug!(%pv, "OnWriteComplete of a write that timed out long ago: ignored");
            return true;
        }
        false
    }

    /// A sent write had no OnWriteComplete within the write timeout: it fails, and its
    /// OnWriteComplete, if it still comes before `until`, is taken as its own.
    pub fn timed_out(&mut self, pv: &str, id: u64, message: &str, until: tokio::time::Instant) {
        let sent = self.pending.iter().any(|w| w.id == id && w.sent);
        self.fail(pv, id, PutOutcome::TimedOut, message);
        if sent {
            self.after().late.push_back(until);
        }
    }

    /// The write an OnWriteComplete of this PV answers: the oldest sent one, unless it
    /// holds one already (taken before its call's reply).
    pub fn oldest_sent(&self) -> Option<&PendingWrite> {
        self.pending.front().filter(|w| w.awaits_its_own())
    }

    /// The gateway accepted write `id`'s call: the OnWriteComplete it held, if one came
    /// before the reply, to be taken now ([`PvWrites::complete`]). `None` when none came,
    /// or the write is no longer pending.
    pub fn call_accepted(&mut self, id: u64) -> Option<Result<(), String>> {
        let w = self.pending.iter_mut().find(|w| w.id == id)?;
        w.accepted = true;
        w.early.take()
    }

    /// OnWriteComplete for the oldest sent write. A success that the PV shows already
    /// (a data change showed it, or it wrote the value `shown`) completes now, or with
    /// this turn's post when `posting_data` (that post completes it, [`PvWrites::shown`]);
    /// otherwise it waits for the data change, and the id returned is to be settled after
    /// [`WRITE_SETTLE`] with [`PvWrites::settle`].
    pub fn complete(
        &mut self,
        pv: &str,
        outcome: Result<(), String>,
        shown: Option<&MxValue>,
        posting_data: bool,
    ) -> Option<u64> {
        let lost = self.after.as_ref().map_or(0, |a| a.lost);
        let front = self.pending.front_mut().filter(|w| w.awaits_its_own())?;
        if !front.accepted && lost > 0 {
            // It may be a lost one's: the call's reply decides (`call_accepted`, or `fail`
            // when the call failed: then it was the earlier write's, come too late).
            // Otherwise it is this write's own, whether or not its reply came yet.
            tracing::debug!(%pv, "OnWriteComplete before its write call's reply: held until the reply");
            front.early = Some(outcome);
            return None;
        }
        let w = self.pending.pop_front()?;
        // Debug: the audit record (logged at info) carries every put's outcome already.
        tracing::debug!(%pv, ms = w.started.elapsed().as_millis() as u64, ok = outcome.is_ok(), "write complete");
        let is_shown = w.changed || (w.written.is_some() && w.written.as_ref() == shown);
        match outcome {
            Ok(()) if !is_shown => {
                let id = w.id;
                self.after().settling.push(w);
                Some(id)
            }
            Ok(()) if posting_data => {
                self.after().settling.push(w);
                None
            }
            Ok(()) => {
                w.completion.complete(Ok(()));
                None
            }
            Err(e) => {
                w.completion
                    .fail(PutOutcome::RefusedBySystemPlatform, format!("{pv}: {e}"));
                None
            }
        }
    }

    /// A data change of the attribute: the sent writes it shows are marked.
    pub fn data_changed(&mut self, value: &MxValue) {
        for w in self.pending.iter_mut().filter(|w| w.sent) {
            w.changed |= w.written.as_ref().is_none_or(|x| x == value);
        }
    }

    /// A data change was posted: confirmed writes waiting for it complete.
    pub fn shown(&mut self) {
        if let Some(after) = self.after.as_mut() {
            for w in after.settling.drain(..) {
                w.completion.complete(Ok(()));
            }
        }
    }

    /// A confirmed write whose data change did not come: it completes as it is.
    pub fn settle(&mut self, pv: &str, id: u64) {
        let Some(after) = self.after.as_mut() else {
            return;
        };
        if let Some(pos) = after.settling.iter().position(|w| w.id == id) {
            tracing::debug!(%pv, "write settled: no data change showed it");
            after.settling.swap_remove(pos).completion.complete(Ok(()));
        }
    }

    /// Write `id` fails as `outcome`, if it is still pending.
    pub fn fail(&mut self, pv: &str, id: u64, outcome: PutOutcome, message: &str) {
        let pos = self.pending.iter().position(|w| w.id == id);
        if let Some(w) = pos.and_then(|pos| self.pending.remove(pos)) {
            if w.early.is_some() {
                warn!(%pv, "an OnWriteComplete came before this failed write's reply: it was an earlier write's, too late to tell");
                if let Some(after) = self.after.as_mut() {
                    after.lost = after.lost.saturating_sub(1);
                }
            }
            warn!(%pv, %message, "write failed");
            w.completion.fail(outcome, format!("{pv}: {message}"));
        }
    }

    /// The link is gone (`message` says why): confirmed writes complete (only their read
    /// back is lost), sent ones are lost (they may or may not have been applied), those
    /// not sent yet fail as never sent.
    pub fn link_lost(&mut self, pv: &str, message: &str) {
        // Items of the lost session: no OnWriteComplete of theirs can come.
        if let Some(after) = self.after.as_mut() {
            after.late.clear();
            after.lost = 0;
        }
        self.shown();
        for w in self.pending.drain() {
            if w.sent {
                w.completion.fail(
                    PutOutcome::Lost,
                    format!("{pv}: {message}; the write may or may not have been applied"),
                );
            } else {
                // Queued for the turn's write call: it never left mxpva.
                w.completion
                    .complete(Err(format!("{pv}: {message}: write not sent")));
            }
        }
    }

    /// The PV leaves the mapping, or is re-opened (`why`): a write not yet sent is
    /// withdrawn and never sent, one sent is lost (it may or may not have been applied).
    pub fn retire(&mut self, pv: &str, why: &str) {
        self.shown();
        for w in self.pending.drain() {
            if !w.sent {
                w.completion
                    .complete(Err(format!("{pv}: {why}: put not sent")));
            } else {
                w.completion.fail(PutOutcome::Lost, format!("{pv}: {why} before System Platform confirmed the write; it may or may not have been applied"));
            }
        }
    }
}

#[cfg(test)]
mod tests;
