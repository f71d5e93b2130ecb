//! The status PVs: mxpva's own health as ordinary NT PVs under `[status] prefix`, for a
//! Phoebus screen or an alarm server (issue 14).
//!
//! - [`Status`] is the handle the bridge reports through. Per-event counts are one
//!   relaxed atomic add ([`Status::data_change`]); state changes (gateway up or lost, the
//!   alarm feed, a reload) take a short lock and wake the publisher, so `Gateway` shows
//!   a lost link at once rather than at the next tick.
//! - `publish.rs`: the publisher task. It serves the PVs (added before the server starts)
//!   and posts them once a second and on each wake: rates over the last 1 s window,
//!   counters and states when they change, and the client list from pvxs's own server
//!   report.
//!
//! The PVs, after the prefix (the first thirteen names are fixed by issue 14):
//!
//! | PV | type | what | alarm |
//! |---|---|---|---|
//! | `Gateway` | NTEnum `Connecting`, `Up`, `Lost` | the gateway link | MAJOR while not Up, the reason in the message |
//! | `Session` | string | the gateway session id | |
//! | `Reconnects` | int64 | session losses since start | |
//! | `PVs` | int32 | mapped PVs served | |
//! | `PVs:Invalid` | int32 | of them, INVALID now | MINOR above 0 |
//! | `Updates:Rate`, `Puts:Rate` | float64 | per second, over the last 1 s | |
//! | `Updates:Count`, `Puts:Count` | int64 | since start | |
//! | `Updates:Coalesced` | int64 | data changes replaced by a later one of their item before they were posted (the bridge behind the gateway's events; never one that changed the alarm severity or status) | |
//! | `Updates:BufferedDropped` | int64 | samples of buffered PVs dropped since start: the oldest of an OnBufferedDataChange that held more than `[limits] max_buffered_samples` | |
//! | `Puts:Failed` | int64 | puts answered with an error since start | |
//! | `Puts:Queued` | int32 | puts received, not yet taken up by the bridge | MINOR at `[limits] max_puts_queued` |
//! | `Puts:InFlight` | int32 | puts sent, waiting for System Platform (`:ACK` acknowledgements under way too) | |
//! | `AlarmFeed` | NTEnum `Connecting`, `Up`, `Lost`, `Disabled` | the alarm feed | MAJOR when Connecting or Lost |
//! | `Clients` | int32 | connected PVAccess clients (pvxs's report) | |
//! | `Clients:Table` | NTTable | peer, account, channels, bytes sent, bytes received | |
//! | `Config` | string | the loaded file; `timeStamp` when it was loaded | MINOR (CONF) with the error after a failed reload |
//! | `Version` | string | `mxpva X.Y.Z` | |
//! | `Uptime` | float64 | seconds since start | |
//!
//! **Faults of other parts** ([`Status::set_fault`]): a part that can fail on its own
//! (the audit trail of issue 13, for example) reports through the same handle:
//! `status.set_fault("Audit", None)` at start serves `<prefix>Audit` (string, "OK",
//! NO_ALARM); `set_fault("Audit", Some(reason))` makes it MAJOR with the reason as value
//! and message; `set_fault("Audit", None)` clears it. The PV is served from the first
//! call on.

mod publish;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use crate::lock::Mutex;

pub use publish::Publisher;

/// The state of a link (the gateway session, the alarm feed), as the NTEnum index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Connecting = 0,
    Up = 1,
    Lost = 2,
    /// The alarm feed only: `[alarms] enabled = false`.
    Disabled = 3,
}

/// The `Gateway` choices (fixed by issue 14).
pub const GATEWAY_CHOICES: [&str; 3] = ["Connecting", "Up", "Lost"];
/// The `AlarmFeed` choices: the same, and `Disabled`.
pub const FEED_CHOICES: [&str; 4] = ["Connecting", "Up", "Lost", "Disabled"];

/// What the bridge reports, shared with the publisher.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub gateway: (LinkState, String),
    pub session: String,
    pub feed: (LinkState, String),
    /// Mapped PVs, and of them INVALID now.
    pub pvs: (usize, usize),
    /// The file in service and when it was loaded; the last reload's error, if it failed.
    pub config: (String, SystemTime, Option<String>),
    /// Named faults of other parts (see [`Status::set_fault`]).
    pub faults: BTreeMap<String, Option<String>>,
    /// What such a part shows instead of `OK` while it has no fault
    /// ([`Status::set_fault_or_note`]).
    pub notes: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Inner {
    /// Data changes taken from the gateway.
    updates: AtomicU64,
    /// Data changes replaced by a later one before they were posted.
    coalesced: AtomicU64,
    /// Buffered samples dropped past `[limits] max_buffered_samples`.
    buffered_dropped: AtomicU64,
    /// Gateway session losses.
    reconnects: AtomicU64,
    state: Mutex<State>,
    /// Wakes the publisher for a change that should not wait for the next tick.
    wake: tokio::sync::Notify,
}

/// The handle the bridge reports its health through (cheap to clone). Works whether or
/// not status PVs are served.
#[derive(Debug, Clone)]
pub struct Status {
    inner: Arc<Inner>,
}

impl Status {
    /// A handle for the config file `path`, loaded now.
    pub fn new(config_path: &std::path::Path) -> Self {
        Status {
            inner: Arc::new(Inner {
                updates: AtomicU64::new(0),
                coalesced: AtomicU64::new(0),
                buffered_dropped: AtomicU64::new(0),
                reconnects: AtomicU64::new(0),
                state: Mutex::new(State {
                    gateway: (LinkState::Connecting, "connecting".to_string()),
                    session: String::new(),
                    feed: (LinkState::Connecting, "connecting".to_string()),
                    pvs: (0, 0),
                    config: (config_path.display().to_string(), SystemTime::now(), None),
                    faults: BTreeMap::new(),
                    notes: BTreeMap::new(),
                }),
                wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// One data change taken: the hot path, one relaxed add.
    #[inline]
    pub fn data_change(&self) {
        self.inner.updates.fetch_add(1, Ordering::Relaxed);
    }

    /// One data change replaced by a later one before it was posted.
    #[inline]
    pub fn coalesced(&self) {
        self.inner.coalesced.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn coalesced_count(&self) -> u64 {
        self.inner.coalesced.load(Ordering::Relaxed)
    }

    /// `n` samples of one OnBufferedDataChange dropped past `[limits] max_buffered_samples`.
    pub fn buffered_dropped(&self, n: u64) {
        self.inner.buffered_dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn buffered_dropped_count(&self) -> u64 {
        self.inner.buffered_dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn updates(&self) -> u64 {
        self.inner.updates.load(Ordering::Relaxed)
    }

    pub(crate) fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    fn change(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.inner.state.lock());
        self.inner.wake.notify_one();
    }

    /// A connect is under way (`what` says where to).
    pub fn gateway_connecting(&self, what: &str) {
        self.change(|s| s.gateway = (LinkState::Connecting, what.to_string()));
    }

    /// A gateway session is up.
    pub fn gateway_up(&self, session: &str) {
        self.change(|s| {
            s.gateway = (LinkState::Up, String::new());
            s.session = session.to_string();
        });
    }

    /// The link is lost (or a connect failed). A loss of a session that was up counts
    /// as a reconnect.
    pub fn gateway_lost(&self, reason: &str) {
        self.change(|s| {
            if s.gateway.0 == LinkState::Up {
                self.inner.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            s.gateway = (LinkState::Lost, reason.to_string());
            s.session.clear();
        });
    }

    /// The alarm feed's state, and why when it is not Up.
    pub fn alarm_feed(&self, state: LinkState, reason: &str) {
        let mut st = self.inner.state.lock();
        if st.feed.0 != state || st.feed.1 != reason {
            st.feed = (state, reason.to_string());
            drop(st);
            self.inner.wake.notify_one();
        }
    }

    /// Mapped PVs, and how many of them are INVALID now.
    pub fn pv_counts(&self, total: usize, invalid: usize) {
        self.inner.state.lock().pvs = (total, invalid);
    }

    /// The config file was (re)loaded and is in service.
    pub fn config_loaded(&self, path: &std::path::Path) {
        self.change(|s| s.config = (path.display().to_string(), SystemTime::now(), None));
    }

    /// A reload failed: the config in service stays; `error` says why.
    pub fn config_failed(&self, error: &str) {
        self.change(|s| s.config.2 = Some(error.to_string()));
    }

    /// Sets (or, with `None`, clears) the fault of a part named `name`, served as the
    /// status PV `<prefix><name>` from the first call on (see the module doc). `name`
    /// must be a PV name part (`Audit`, `Audit:Log`); one that is not is not served.
    pub fn set_fault(&self, name: &str, fault: Option<&str>) {
        self.change(|s| {
            s.faults.insert(name.to_string(), fault.map(str::to_string));
        });
    }

    /// [`Status::set_fault`], and what the PV shows instead of `OK` while there is no
    /// fault (`note`: `OK; 3 audit records dropped since start`), at NO_ALARM.
    pub fn set_fault_or_note(&self, name: &str, fault: Option<&str>, note: Option<&str>) {
        self.change(|s| {
            s.faults.insert(name.to_string(), fault.map(str::to_string));
            match note {
                Some(n) => s.notes.insert(name.to_string(), n.to_string()),
                None => s.notes.remove(name),
            };
        });
    }

    pub(crate) fn snapshot(&self) -> State {
        self.inner.state.lock().clone()
    }

    pub(crate) async fn woken(&self) {
        self.inner.wake.notified().await;
    }
}
