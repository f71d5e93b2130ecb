//! Which tags are advised in the live session, and when: a state machine without I/O.
//!
//! The bridge asks for a PV's tag to be advised ([`Subscriptions::advise`]) or an item
//! to be un-advised ([`Subscriptions::unadvise`]); this part decides when each gateway
//! call goes ([`Subscriptions::next_call`]) and takes its results
//! ([`Subscriptions::on_subscribed`]). The adapter around the bridge makes the calls and
//! hands back their results; nothing here waits.
//!
//! **Pacing.** Every item advised makes the gateway queue a first OnDataChange at once,
//! in the session's bounded event queue (10,000 events by default), whose default policy
//! faults the session on overflow (EventQueueOverflow). So the items advised whose first
//! data change the bridge has not taken yet stay within a window per session:
//! - the window is [`CHUNKS_IN_WINDOW`] `[gateway] subscribe_chunk`s, at most
//!   [`MAX_WINDOW`] items (with the default chunk of 500, 4,000 first values at most wait
//!   in the gateway's queue of 10,000); a chunk is never larger than the window;
//! - a SubscribeBulk chunk goes when the window has room for all its tags; each tag
//!   advised with room holds it until its first data change is taken (or its subscribe
//!   failed, or its PV went, or its item was un-advised);
//! - a chunk that found no room for `[gateway] request_timeout` (a first data change lost
//!   on the way) goes without it, its items holding none; that is logged once per
//!   session. So the window never deadlocks.
//! - while the bridge is behind the gateway's events ([`Subscriptions::set_behind`]: a
//!   turn found more ready than it takes), the window is half its size: fewer first
//!   values wait in a queue the bridge is not draining fast enough, beside the data
//!   changes of the items advised already (after a fault, every item is advised again).
//!
//! At most [`MAX_CALLS`] SubscribeBulk calls are in flight at once, taken in the order PVs
//! were asked for. Data changes of items not known yet that come while calls are in
//! flight are held (at most [`MAX_EARLY`]) and handed back with a call's results, so no
//! first value is lost.
//!
//! **Tags.** A call carries each PV with the tag it was advised for and how ([`Role`]:
//! a plain item, a buffered item, or the plain item a buffered PV writes through). The
//! results are bound by the bridge (`Registry::bind`), which checks that the PV still
//! maps to that tag and is still advised that way: a PV re-tagged, removed, or switched
//! between buffered and plain while its call was in flight is never bound to the old
//! item, and that item is un-advised.
//!
//! **Buffered items.** The contract has no bulk AddBufferedItem: a chunk of buffered
//! items is a call of its own kind ([`AdviseCall::SubscribeBuffered`]; the adapter makes
//! AddBufferedItem and Advise per item), paced by the same window (a buffered item holds
//! its room until its first OnBufferedDataChange). A chunk is of one kind: a PV of the
//! other kind waits for the next chunk.
//!
//! Call ids are unique within the process, so a result from a lost session, or one that
//! came twice, matches no call in flight and is dropped.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::bridge::pv_id::PvId;
use crate::gateway::{ItemHandle, SessionEvent};

/// The window is this many `[gateway] subscribe_chunk`s...
pub(in crate::bridge) const CHUNKS_IN_WINDOW: usize = 8;
/// ... and at most this many items.
pub(in crate::bridge) const MAX_WINDOW: usize = 4096;
/// At most this many SubscribeBulk calls are in flight at once (each within the window),
/// so that the round trips of a large session start overlap.
pub(in crate::bridge) const MAX_CALLS: usize = 4;
/// At most this many data changes of items not known yet are held while a SubscribeBulk
/// is in flight; past it they are dropped as strays.
pub(in crate::bridge) const MAX_EARLY: usize = 65_536;
/// The capacity the subscription queue and sets keep when empty (see
/// `Subscriptions::release_idle`).
const KEEP_CAPACITY: usize = 1024;

/// How a PV's tag is advised: the item it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(in crate::bridge) enum Role {
    /// A plain item (AddItem, Advise: SubscribeBulk): the PV's data, and its puts.
    Plain,
    /// A buffered item (AddBufferedItem, Advise): the data of a `buffered` PV.
    Buffered,
    /// The plain item a writable `buffered` PV writes through (the gateway's documents
    /// say nothing of writes on a buffered handle); its data changes are not posted.
    Write,
}

impl Role {
    /// Advised as a buffered item.
    pub fn buffered(self) -> bool {
        self == Role::Buffered
    }
}

/// A gateway call about advised items, to be made in the live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::bridge) enum AdviseCall {
    /// SubscribeBulk of `tags`; its results come back to [`Subscriptions::on_subscribed`]
    /// with `call`.
    Subscribe { call: u64, tags: Vec<String> },
    /// AddBufferedItem and Advise of each of `tags` (no bulk form exists); the results
    /// come back, one per tag in order, as for [`AdviseCall::Subscribe`]. The first of a
    /// session carries the session's SetBufferedUpdateInterval (`[gateway]
    /// buffered_interval`: MXAccess sets it per server handle), made before the items.
    SubscribeBuffered {
        call: u64,
        tags: Vec<String>,
        interval: Option<Duration>,
    },
    /// UnsubscribeBulk of `items` (nothing comes back: a failure is only logged).
    Unsubscribe { items: Vec<ItemHandle> },
}

/// The result of one entry of a SubscribeBulk: the item handle, or why not.
pub(in crate::bridge) type Advised = Result<ItemHandle, String>;

/// The SubscribeBulk in flight.
#[derive(Debug)]
struct InFlight {
    call: u64,
    /// Each PV with the tag it was advised for and how, in the call's order.
    entries: Vec<(PvId, String, Role)>,
    /// Its items hold room in the window.
    paced: bool,
}

/// The live session's window.
#[derive(Debug)]
struct Window {
    size: usize,
    free: usize,
    /// A chunk waits for room since then.
    blocked_since: Option<Instant>,
    /// A chunk went without room in this session already (logged once).
    stalled: bool,
}

/// See the module's note.
#[derive(Debug)]
pub(in crate::bridge) struct Subscriptions {
    /// Tags per SubscribeBulk (`[gateway] subscribe_chunk`).
    chunk: usize,
    /// How long a chunk waits for room (`[gateway] request_timeout`).
    timeout: Duration,
    /// The live session's window; `None` without a session.
    window: Option<Window>,
    /// PVs whose tag is to be advised, in the order asked for (each once).
    queue: VecDeque<PvId>,
    queued: HashSet<PvId>,
    /// The SubscribeBulk calls in flight, oldest first.
    in_flight: Vec<InFlight>,
    /// PVs advised with room whose first data change is still to come.
    holding: HashSet<PvId>,
    /// Items to un-advise.
    unadvise: Vec<ItemHandle>,
    /// Data changes of items not known yet, held while a SubscribeBulk is in flight.
    early: Vec<SessionEvent>,
    next_call: u64,
    /// The bridge is behind the gateway's events: chunks wait (see the module's note).
    behind: bool,
    /// A chunk waited for that in this session already (logged once).
    held_logged: bool,
    /// `[gateway] buffered_interval`, and whether the live session was given it.
    buffered_interval: Duration,
    interval_set: bool,
}

impl Subscriptions {
    pub fn new(subscribe_chunk: usize, timeout: Duration) -> Self {
        Subscriptions {
            chunk: subscribe_chunk.max(1),
            timeout,
            window: None,
            queue: VecDeque::new(),
            queued: HashSet::new(),
            in_flight: Vec::new(),
            holding: HashSet::new(),
            unadvise: Vec::new(),
            early: Vec::new(),
            next_call: 0,
            behind: false,
            held_logged: false,
            buffered_interval: crate::config::DEFAULT_BUFFERED_INTERVAL,
            interval_set: false,
        }
    }

    /// Whether the bridge is behind the gateway's events now (the adapter says so after
    /// each turn that took events): while it is, SubscribeBulk chunks wait.
    pub fn set_behind(&mut self, behind: bool) {
        self.behind = behind;
    }

    /// `[gateway] buffered_interval`, for the next session.
    pub fn set_buffered_interval(&mut self, interval: Duration) {
        self.buffered_interval = interval;
    }

    fn window_size(&self) -> usize {
        self.chunk
            .saturating_mul(CHUNKS_IN_WINDOW)
            .clamp(1, MAX_WINDOW)
    }

    /// New `[gateway]` settings (a reload); the window of the next session follows them.
    pub fn configure(&mut self, subscribe_chunk: usize, timeout: Duration) {
        self.chunk = subscribe_chunk.max(1);
        self.timeout = timeout;
    }

    /// A session is up: nothing is advised in it yet.
    pub fn session_up(&mut self) {
        self.session_lost();
        let size = self.window_size();
        self.window = Some(Window {
            size,
            free: size,
            blocked_since: None,
            stalled: false,
        });
    }

    /// The session is gone, and every item with it: nothing waits any more.
    pub fn session_lost(&mut self) {
        self.window = None;
        self.queue.clear();
        self.queued.clear();
        self.in_flight.clear();
        self.holding.clear();
        self.unadvise.clear();
        self.early.clear();
        self.release_idle();
        self.interval_set = false;
        self.behind = false;
        self.held_logged = false;
    }

    /// The PV's tag is to be advised in the live session (nothing without one). A PV
    /// queued already keeps its place; the tag sent is the one it maps to then.
    pub fn advise(&mut self, id: PvId) {
        if self.window.is_some() && self.queued.insert(id) {
            self.queue.push_back(id);
        }
    }

    /// Whether the PV waits for its tag to be advised (queued, or in a call in flight).
    pub fn is_advising(&self, id: PvId) -> bool {
        self.queued.contains(&id)
            || self
                .in_flight
                .iter()
                .any(|c| c.entries.iter().any(|(i, _, _)| *i == id))
    }

    /// The PV is removed, re-opened, or no longer wanted: it leaves the queue, and the
    /// room it holds is free. (An entry of the call in flight is refused by the binding
    /// when its result comes.)
    pub fn forget(&mut self, id: PvId) {
        if self.queued.remove(&id) {
            self.queue.retain(|&q| q != id);
        }
        self.first_value(id);
    }

    /// `items` are to be un-advised in the live session.
    pub fn unadvise(&mut self, items: impl IntoIterator<Item = ItemHandle>) {
        if self.window.is_some() {
            self.unadvise.extend(items);
        }
    }

    /// The PV's first data change is taken (or its item is gone): its room is free.
    /// Cheap while nothing holds room.
    #[inline]
    pub fn first_value(&mut self, id: PvId) {
        if !self.holding.is_empty() && self.holding.remove(&id) {
            self.give_back(1);
            if self.holding.is_empty() {
                self.release_idle();
            }
        }
    }

    /// The queue and sets give their room back once empty: at a session's start they
    /// hold every PV (the queue) or a window's worth (`holding`), and kept, that room
    /// stayed allocated for the session's life, about 28 bytes per PV (issue 23). Below
    /// [`KEEP_CAPACITY`] they are kept, so that small reloads do not allocate anew.
    fn release_idle(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > KEEP_CAPACITY {
            self.queue = VecDeque::new();
        }
        if self.queued.is_empty() && self.queued.capacity() > KEEP_CAPACITY {
            self.queued = HashSet::new();
        }
        if self.holding.is_empty() && self.holding.capacity() > KEEP_CAPACITY {
            self.holding = HashSet::new();
        }
    }

    fn give_back(&mut self, n: usize) {
        if let Some(w) = self.window.as_mut() {
            w.free = w.free.saturating_add(n).min(w.size);
        }
    }

    /// How many PVs hold room now (for the log).
    pub fn holding(&self) -> usize {
        self.holding.len()
    }

    /// When a chunk waiting for room goes without it, if one waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        let w = self.window.as_ref()?;
        let since = w.blocked_since?;
        Some(since + self.timeout)
    }

    /// The next gateway call to make now, if any: un-advises first, then the next
    /// SubscribeBulk chunk when none is in flight and the window has room for it (or it
    /// waited for room long enough). `tag_of` gives the tag a PV maps to now and the item
    /// it is to get, or `None` when it is no longer to be advised (then it leaves the
    /// queue). A chunk holds items of one kind (buffered or not): a PV of the other kind
    /// stays first in the queue for the next chunk.
    pub fn next_call(
        &mut self,
        now: Instant,
        mut tag_of: impl FnMut(PvId) -> Option<(String, Role)>,
    ) -> Option<AdviseCall> {
        self.release_idle();
        let window = self.window.as_mut()?;
        if !self.unadvise.is_empty() {
            let items = std::mem::take(&mut self.unadvise);
            return Some(AdviseCall::Unsubscribe { items });
        }
        if self.in_flight.len() >= MAX_CALLS {
            return None;
        }
        // The next chunk, each PV with the tag it maps to now; PVs no longer to be
        // advised leave the queue for good.
        let chunk = self.chunk.clamp(1, window.size);
        let mut entries: Vec<(PvId, String, Role)> = Vec::new();
        while entries.len() < chunk {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            self.queued.remove(&id);
            if let Some((tag, role)) = tag_of(id) {
                if entries
                    .first()
                    .is_some_and(|(_, _, r)| r.buffered() != role.buffered())
                {
                    // The other kind: first in the queue for the next chunk.
                    self.queued.insert(id);
                    self.queue.push_front(id);
                    break;
                }
                entries.push((id, tag, role));
            }
        }
        if entries.is_empty() {
            return None;
        }
        let n = entries.len();
        // Behind, half the window.
        let reserve = if self.behind {
            (window.size / 2).min(window.size.saturating_sub(n))
        } else {
            0
        };
        let room = window.free >= n.saturating_add(reserve);
        if !room {
            let due = match window.blocked_since {
                Some(since) => now >= since + self.timeout,
                None => {
                    window.blocked_since = Some(now);
                    false
                }
            };
            if !due {
                if self.behind && !std::mem::replace(&mut self.held_logged, true) {
                    info!(
                        window = window.size / 2,
                        queued = self.queue.len() + n,
                        "behind the gateway's events: subscriptions wait for room in half the window (logged once per session)"
                    );
                }
                // Back in front, in order, until there is room (or the wait is over).
                for (id, _, _) in entries.into_iter().rev() {
                    self.queued.insert(id);
                    self.queue.push_front(id);
                }
                return None;
            }
            if !std::mem::replace(&mut window.stalled, true) {
                warn!(
                    window = window.size,
                    free = window.free,
                    timeout = %humantime::format_duration(self.timeout),
                    "no first data change freed room in the subscription window within [gateway] request_timeout: subscribing on without it (logged once per session)"
                );
            }
        }
        let paced = window.free >= n;
        if paced {
            window.free -= n;
        }
        window.blocked_since = None;
        self.next_call = self.next_call.wrapping_add(1);
        let call = self.next_call;
        let tags = entries.iter().map(|(_, t, _)| t.clone()).collect();
        let buffered = entries.first().is_some_and(|(_, _, r)| r.buffered());
        self.in_flight.push(InFlight {
            call,
            entries,
            paced,
        });
        Some(if buffered {
            let interval = (!std::mem::replace(&mut self.interval_set, true))
                .then_some(self.buffered_interval);
            AdviseCall::SubscribeBuffered {
                call,
                tags,
                interval,
            }
        } else {
            AdviseCall::Subscribe { call, tags }
        })
    }

    /// The results of SubscribeBulk `call` (`Err`: the whole call failed). Each entry goes
    /// to `bind` with the PV, the tag and the role it was advised for; `bind` returns true when the
    /// item is bound to the PV and its first data change is still to come. Returns the
    /// PVs of the call, or `None` when `call` is not the call in flight (a lost
    /// session's, or a duplicate): then nothing is bound.
    pub fn on_subscribed(
        &mut self,
        call: u64,
        results: Result<Vec<Advised>, String>,
        mut bind: impl FnMut(PvId, &str, Role, Advised) -> bool,
    ) -> Option<Vec<PvId>> {
        let at = self.in_flight.iter().position(|c| c.call == call)?;
        let c = self.in_flight.remove(at);
        let n = c.entries.len();
        let mut results: Vec<Advised> = match results {
            Ok(r) if r.len() == n => r,
            Ok(r) => {
                let e = format!(
                    "the gateway answered the advise call with {} results for {n} tags",
                    r.len()
                );
                vec![Err(e); n]
            }
            Err(e) => vec![Err(e); n],
        };
        let mut free = 0usize;
        let mut ids = Vec::with_capacity(n);
        for ((id, tag, role), r) in c.entries.into_iter().zip(results.drain(..)) {
            ids.push(id);
            let waits = bind(id, &tag, role, r);
            if c.paced {
                if waits && self.holding.insert(id) {
                    continue;
                }
                free += 1;
            }
        }
        self.give_back(free);
        if self.in_flight.is_empty() && self.queue.is_empty() && !self.holding.is_empty() {
            info!(
                first_values_to_come = self.holding.len(),
                "subscriptions done"
            );
        }
        Some(ids)
    }

    /// Holds a data change of an item not known yet while a SubscribeBulk is in flight;
    /// hands it back when it is not held.
    pub fn hold_early(&mut self, ev: SessionEvent) -> Option<SessionEvent> {
        if !self.in_flight.is_empty() && self.early.len() < MAX_EARLY {
            self.early.push(ev);
            None
        } else {
            Some(ev)
        }
    }

    /// The data changes held (after a call's results are bound).
    pub fn take_early(&mut self) -> Vec<SessionEvent> {
        std::mem::take(&mut self.early)
    }

    /// Nothing queued, in flight or to un-advise (for tests and the log).
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty() && self.unadvise.is_empty()
    }
}

#[cfg(test)]
mod tests;
