//! Flow control of subscriptions.
//!
//! Every item advised makes the gateway queue a first OnDataChange at once, in the
//! session's bounded event queue (10,000 events by default) whose default policy faults
//! the session on overflow (EventQueueOverflow, FailFast). A bridge that advises 100,000
//! tags in a row while it posts to PVs already served overflows it. So the bridge keeps
//! the items advised whose first data change it has not taken yet within a window,
//! per session:
//! - the window is [`CHUNKS_IN_WINDOW`] `[gateway] subscribe_chunk`s, at most
//!   [`MAX_WINDOW`] items: with the default chunk (500) 4,000 first values at most wait
//!   in the gateway's queue of 10,000, which leaves the rest for the changes of the items
//!   already advised. A gateway with a smaller queue is paced by a smaller
//!   `subscribe_chunk`. A chunk is never larger than the window;
//! - before each SubscribeBulk chunk the subscribing task takes room for its tags
//!   ([`Window::room`], a tokio semaphore: no polling);
//! - the room of an item is given back when the bridge takes its first data change (or
//!   an undecodable one), or learns that its subscribe failed, or unsubscribes it, or
//!   removes its PV; a lost session closes its window (tasks waiting on it go on at once
//!   and fail with the session);
//! - no room within `[gateway] request_timeout` (a first data change lost on the way):
//!   the chunk goes without it (its items hold no room), and that is logged once per
//!   session. So the window never deadlocks.
//!
//! The connect task drains the event stream itself while it subscribes, so it gives the
//! room back as it reads ([`ConnectPace`]); the items still waiting when it hands over
//! are then the serve loop's. For subscriptions of diffs, on-demand advises and
//! reconnect catch-ups the serve loop gives it back ([`Pacing`]). The hot path costs one
//! emptiness test per data change while nothing waits, and one set removal and one
//! semaphore add per first data change.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tracing::warn;

use super::registry::PvId;
use crate::config;
use crate::gateway::{ItemHandle, SessionEvent, SubscribeResult};

/// The window is this many `[gateway] subscribe_chunk`s...
pub(super) const CHUNKS_IN_WINDOW: usize = 8;
/// ... and at most this many items.
pub(super) const MAX_WINDOW: usize = 4096;

/// The window of one session (clones share it).
#[derive(Clone)]
pub(super) struct Window {
    room: Arc<Semaphore>,
    size: usize,
    timeout: Duration,
    /// Whether a chunk went without room in this session already (logged once).
    stalled: Arc<AtomicBool>,
}

impl Window {
    /// The window of a new session, by `[gateway] subscribe_chunk` and `request_timeout`.
    pub fn new(gw: &config::Gateway) -> Self {
        Self::sized(gw.subscribe_chunk.get(), gw.request_timeout)
    }

    fn sized(subscribe_chunk: usize, timeout: Duration) -> Self {
        let size = subscribe_chunk
            .saturating_mul(CHUNKS_IN_WINDOW)
            .clamp(1, MAX_WINDOW);
        Window {
            room: Arc::new(Semaphore::new(size)),
            size,
            timeout,
            stalled: Arc::default(),
        }
    }

    /// Tags per SubscribeBulk: `[gateway] subscribe_chunk`, at most the window.
    pub fn chunk(&self, subscribe_chunk: usize) -> usize {
        subscribe_chunk.clamp(1, self.size)
    }

    /// Waits for room for `n` items (`n` at most the window); true when taken (each of
    /// the `n` items then holds one place until [`Window::give_back`]), false when the
    /// wait ended without it (timeout, or the session is gone).
    pub async fn room(&self, n: usize) -> bool {
        let Ok(want) = u32::try_from(n.min(self.size)) else {
            return false;
        };
        if want == 0 {
            return true;
        }
        match tokio::time::timeout(self.timeout, self.room.acquire_many(want)).await {
            Ok(Ok(permit)) => {
                permit.forget();
                true
            }
            Ok(Err(_)) => false,
            Err(_) => {
                if !self.stalled.swap(true, Ordering::Relaxed) {
                    warn!(
                        window = self.size,
                        free = self.room.available_permits(),
                        timeout = %humantime::format_duration(self.timeout),
                        "no first data change freed room in the subscription window within [gateway] request_timeout: subscribing on without it (logged once per session)"
                    );
                }
                false
            }
        }
    }

    /// `n` items advised with room no longer wait for their first data change.
    pub fn give_back(&self, n: usize) {
        if n > 0 && !self.room.is_closed() {
            self.room.add_permits(n);
        }
    }

    /// The session is gone: whoever waits goes on at once.
    pub fn close(&self) {
        self.room.close();
    }
}

/// The data change (or undecodable data change) of an item, if `ev` is one.
pub(super) fn data_change_item(ev: &SessionEvent) -> Option<ItemHandle> {
    match ev {
        SessionEvent::DataChange(dc) => Some(dc.item_handle),
        SessionEvent::Undecodable(u) if u.data_change => Some(u.item_handle),
        _ => None,
    }
}

/// The room of the connect task's subscriptions: it reads the event stream while it
/// subscribes, so it gives the room back itself.
pub(super) struct ConnectPace {
    pub window: Window,
    /// Items advised with room whose first data change has not come yet.
    pub waiting: HashSet<ItemHandle>,
    /// Items of data changes that came before their chunk's reply (at most
    /// [`super::apply::MAX_EARLY`] kept; one past it holds its room until the serve loop
    /// or the timeout).
    seen: HashSet<ItemHandle>,
}

impl ConnectPace {
    pub fn new(window: Window) -> Self {
        ConnectPace {
            window,
            waiting: HashSet::new(),
            seen: HashSet::new(),
        }
    }

    /// An event read while subscribing.
    pub fn on_event(&mut self, ev: &SessionEvent) {
        let Some(item) = data_change_item(ev) else {
            return;
        };
        if self.waiting.remove(&item) {
            self.window.give_back(1);
        } else if self.seen.len() < super::apply::MAX_EARLY {
            self.seen.insert(item);
        }
    }

    /// A chunk's results: `paced` when its items hold room.
    pub fn on_chunk(&mut self, results: &[SubscribeResult], paced: bool) {
        if paced {
            for r in results {
                if r.outcome.is_err() || self.seen.contains(&r.item_handle) {
                    self.window.give_back(1);
                } else {
                    self.waiting.insert(r.item_handle);
                }
            }
        }
        self.seen.clear();
    }

    /// Entries refused after the fact (one handle given to two tags) hold no room.
    pub fn refused(&mut self, results: &[SubscribeResult]) {
        for r in results.iter().filter(|r| r.outcome.is_err()) {
            if self.waiting.remove(&r.item_handle) {
                self.window.give_back(1);
            }
        }
    }
}

/// The room held by PVs of the live session, given back by the serve loop.
#[derive(Default)]
pub(super) struct Pacing {
    /// The live session's window.
    pub window: Option<Window>,
    /// PVs advised with room whose first data change the bridge has not taken yet.
    waiting: HashSet<PvId>,
}

impl Pacing {
    /// A new session: its window, and the PVs whose first data change is still to come.
    pub fn start(&mut self, window: Window, waiting: impl IntoIterator<Item = PvId>) {
        self.lost();
        self.waiting.extend(waiting);
        self.window = Some(window);
    }

    /// The PV's item holds room until its first data change.
    pub fn hold(&mut self, id: PvId) {
        if !self.waiting.insert(id) {
            // Held already (cannot be: one advise per PV at a time): no second place.
            self.give_back(1);
        }
    }

    /// The PV's first data change is taken, or its item is gone (unsubscribed, removed,
    /// re-opened): its room is free. Cheap while nothing waits.
    #[inline]
    pub fn release(&mut self, id: PvId) {
        if !self.waiting.is_empty() && self.waiting.remove(&id) {
            self.give_back(1);
        }
    }

    pub fn give_back(&self, n: usize) {
        if let Some(w) = &self.window {
            w.give_back(n);
        }
    }

    /// The session is gone: its window closes, nothing waits any more.
    pub fn lost(&mut self) {
        if let Some(w) = self.window.take() {
            w.close();
        }
        self.waiting.clear();
    }

    /// How many PVs hold room now (for the log).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(chunk: usize, timeout_ms: u64) -> Window {
        Window::sized(chunk, Duration::from_millis(timeout_ms))
    }

    #[tokio::test]
    async fn the_window_is_eight_chunks_at_most_4096_and_room_comes_back() {
        let w = window(500, 50);
        assert_eq!(w.size, 4000);
        assert_eq!(window(1000, 50).size, MAX_WINDOW);
        assert_eq!(window(1000, 50).chunk(1000), MAX_WINDOW.min(1000));
        assert_eq!(window(5000, 50).chunk(5000), MAX_WINDOW);
        let w = window(10, 50);
        assert_eq!(w.size, 80);
        assert!(w.room(80).await);
        // Full: the next chunk waits, then goes on without room.
        assert!(!w.room(10).await);
        w.give_back(10);
        assert!(w.room(10).await);
        w.close();
        assert!(!w.room(1).await);
    }

    #[tokio::test]
    async fn a_waiting_chunk_goes_as_soon_as_first_values_give_room_back() {
        let w = window(10, 60_000);
        assert!(w.room(80).await);
        let waiter = tokio::spawn({
            let w = w.clone();
            async move { w.room(10).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let mut p = Pacing::default();
        p.start(w.clone(), (1..=10).map(PvId::for_test));
        for n in 1..=10 {
            p.release(PvId::for_test(n));
            // A second data change of the same PV frees nothing more.
            p.release(PvId::for_test(n));
        }
        assert_eq!(p.waiting(), 0);
        assert!(waiter.await.unwrap_or(false));
        assert_eq!(w.room.available_permits(), 0);
    }

    #[tokio::test]
    async fn the_connect_task_gives_room_back_for_values_before_and_after_the_reply() {
        use crate::gateway::BulkEntryError;
        let w = window(2, 60_000);
        let mut c = ConnectPace::new(w.clone());
        assert!(w.room(3).await);
        let ok = |h| SubscribeResult {
            tag: format!("T{h}"),
            item_handle: ItemHandle(h),
            outcome: Ok(()),
        };
        let mut failed = ok(3);
        failed.outcome = Err(BulkEntryError {
            message: "no such tag".into(),
            hresult: 0,
            statuses: Vec::new(),
        });
        let dc = |h| {
            SessionEvent::DataChange(crate::gateway::DataChange {
                worker_sequence: 0,
                server_handle: crate::gateway::ServerHandle(1),
                item_handle: ItemHandle(h),
                value: crate::gateway::MxValue::Double(0.0),
                quality: crate::gateway::Quality::GOOD,
                source_time: None,
                statuses: Vec::new(),
            })
        };
        // Item 1's first value came before the reply; item 3 failed.
        c.on_event(&dc(1));
        c.on_chunk(&[ok(1), ok(2), failed], true);
        assert_eq!(w.room.available_permits(), 16 - 3 + 2);
        assert!(c.waiting.contains(&ItemHandle(2)));
        c.on_event(&dc(2));
        assert_eq!(w.room.available_permits(), 16);
        assert!(c.waiting.is_empty());
    }
}
