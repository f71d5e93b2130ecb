//! The rule that keeps a PV's posted `timeStamp` from going back.
//!
//! Every update a PV posts takes its own time (the source time of a data change, the
//! transition time of an alarm, the bridge's clock otherwise) unless that time is not
//! later than the last time the PV posted: then it is posted 1 ns after that last time.
//! Times that arrive in order stay exact; an update that would go back, or repeat the
//! last time, comes out strictly later, so that the EPICS Archiver Appliance, which drops
//! a sample whose time is not later than the last one it stored, keeps it.
//!
//! A source clock that jumps back (a clock correction on the System Platform node) holds
//! the PV's time at the last posted time, 1 ns further on for each update, until the
//! source passes it again; from then on its times are exact again. A hold of more than
//! [`LOGGED_HOLD`] is logged once when it starts and once when it ends, but only when
//! the time held at came from the source: a PV posted from the bridge's own clock (the
//! INVALID "waiting for initial data" of a PV just made, a lost connection) and then
//! given the source's older time is not a clock going back, and at start-up that would
//! be one warning per PV.
//!
//! A PV re-opened under the same name (a retype, a re-tag, a change of `writable`, an
//! `[[alarm_pv]]` type change) takes over the old PV's [`Stamps`], as a PV keeps them
//! across a reconnect: a client's monitor on the name sees both PVs, and with a source
//! clock ahead of the bridge's the new PV's first post (the bridge's clock) would
//! otherwise go back. A PV removed and added again under its name continues too while
//! its last posted time is still ahead of the bridge's clock (`mapping/registry.rs`).

use std::sync::Mutex;
use std::time::Duration;

use tracing::{info, warn};

use crate::pva::TimeStamp;

/// A hold longer than this (a source clock that went back, not two events a little out
/// of order) is logged.
pub(in crate::bridge) const LOGGED_HOLD: Duration = Duration::from_secs(1);

const NANOS: i64 = 1_000_000_000;

/// The last time one PV posted.
/// Every PV holds one: 16 bytes, the nanoseconds in a `u32` (issue 23: memory per PV).
#[derive(Debug, Clone)]
pub(in crate::bridge) struct Stamps {
    /// The seconds of the last posted time.
    last_seconds: i64,
    /// Its nanoseconds (`0..1e9`), or [`NO_TIME`] before the first post.
    last_nanos: u32,
    /// A hold longer than [`LOGGED_HOLD`] was logged and has not ended yet.
    holding: bool,
    /// The last posted time was the bridge's own clock ([`Stamps::now`], [`Stamps::own`]).
    last_own: bool,
}

/// [`Stamps::last_nanos`] before the first post.
const NO_TIME: u32 = u32::MAX;

impl Default for Stamps {
    fn default() -> Self {
        Stamps {
            last_seconds: 0,
            last_nanos: NO_TIME,
            holding: false,
            last_own: false,
        }
    }
}

/// `t` as `(seconds, nanoseconds)` with the nanoseconds in `0..1e9`, whatever a peer sent.
fn key(t: &TimeStamp) -> (i64, i64) {
    let n = i64::from(t.nanos);
    (
        t.seconds.saturating_add(n.div_euclid(NANOS)),
        n.rem_euclid(NANOS),
    )
}

/// 1 ns after `t`; the end of time stays where it is.
fn later_by_1ns((s, n): (i64, i64)) -> (i64, i64) {
    match (n + 1 >= NANOS, s.checked_add(1)) {
        (false, _) => (s, n + 1),
        (true, Some(s)) => (s, 0),
        (true, None) => (s, n),
    }
}

/// How far `a` is behind `b`, saturating.
fn behind(a: (i64, i64), b: (i64, i64)) -> Duration {
    let nanos = (i128::from(b.0) - i128::from(a.0)) * i128::from(NANOS) + i128::from(b.1 - a.1);
    Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}

impl Stamps {
    /// The seconds of the last posted time (none before the first post).
    pub fn last_seconds(&self) -> Option<i64> {
        self.last().map(|(s, _)| s)
    }

    /// The last posted time, user tag 0 (the tests compare it with what pvxs holds).
    #[cfg(test)]
    pub fn last_time(&self) -> Option<TimeStamp> {
        self.last().map(|(seconds, nanos)| TimeStamp {
            seconds,
            nanos: nanos as i32,
            user_tag: 0,
        })
    }

    /// `(seconds, nanoseconds)` of the last posted time.
    fn last(&self) -> Option<(i64, i64)> {
        (self.last_nanos != NO_TIME).then_some((self.last_seconds, i64::from(self.last_nanos)))
    }

    /// The time to post for an update of `pv` whose own time is `own`; remembers it.
    pub fn next(&mut self, pv: &str, own: TimeStamp) -> TimeStamp {
        let k = key(&own);
        let posted = match self.last() {
            Some(last) if k <= last => {
                let held = behind(k, last);
                if held > LOGGED_HOLD && !self.holding && !self.last_own {
                    self.holding = true;
                    warn!(
                        %pv,
                        behind = %humantime::format_duration(held),
                        "source time went back: timeStamp held at the last posted time until the source passes it"
                    );
                }
                later_by_1ns(last)
            }
            _ => {
                if self.holding {
                    self.holding = false;
                    info!(%pv, "source time passed the held timeStamp: exact again");
                }
                k
            }
        };
        self.last_seconds = posted.0;
        // In 0..1e9 by construction (`key`, `later_by_1ns`).
        self.last_nanos = u32::try_from(posted.1).unwrap_or(NO_TIME - 1);
        self.last_own = false;
        TimeStamp {
            seconds: posted.0,
            // In 0..1e9 by construction.
            nanos: posted.1 as i32,
            user_tag: own.user_tag,
        }
    }

    /// [`Stamps::next`] for a time of the bridge's own clock.
    pub fn own(&mut self, pv: &str, own: TimeStamp) -> TimeStamp {
        let posted = self.next(pv, own);
        self.last_own = true;
        posted
    }

    /// [`Stamps::next`] for the bridge's own clock now.
    pub fn now(&mut self, pv: &str) -> TimeStamp {
        self.own(pv, TimeStamp::now())
    }

    /// The last posted time is later than `now`: a PV starting afresh at `now` would go
    /// back from it.
    pub fn ahead_of(&self, now: &TimeStamp) -> bool {
        self.last().is_some_and(|last| last > key(now))
    }
}

/// [`Stamps`] for a PV posted from more than one task (an `:ACK` PV).
#[derive(Debug, Default)]
pub(in crate::bridge) struct SharedStamps(Mutex<Stamps>);

impl SharedStamps {
    pub fn now(&self, pv: &str) -> TimeStamp {
        match self.0.lock() {
            Ok(mut s) => s.now(pv),
            Err(poisoned) => poisoned.into_inner().now(pv),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> TimeStamp {
        TimeStamp {
            seconds,
            nanos,
            user_tag: 0,
        }
    }

    fn pair(t: TimeStamp) -> (i64, i32) {
        (t.seconds, t.nanos)
    }

    #[test]
    fn times_in_order_stay_exact() {
        let mut s = Stamps::default();
        for t in [ts(100, 503_930_000), ts(100, 504_481_000), ts(101, 0)] {
            assert_eq!(pair(s.next("P", t)), pair(t));
        }
    }

    #[test]
    fn an_older_or_equal_time_is_posted_just_after_the_last() {
        let mut s = Stamps::default();
        s.next("P", ts(285, 504_481_000));
        // The case: an alarm post, then a data change 0.55 ms older.
        assert_eq!(pair(s.next("P", ts(285, 503_930_000))), (285, 504_481_001));
        // The same time again: still later.
        assert_eq!(pair(s.next("P", ts(285, 504_481_001))), (285, 504_481_002));
        // Across a second.
        let mut s = Stamps::default();
        s.next("P", ts(7, 999_999_999));
        assert_eq!(pair(s.next("P", ts(7, 0))), (8, 0));
        // Past the held time: exact again.
        assert_eq!(pair(s.next("P", ts(8, 5))), (8, 5));
    }

    #[test]
    fn a_source_clock_jumping_back_holds_until_it_passes() {
        let mut s = Stamps::default();
        s.next("P", ts(1000, 0));
        // The source is corrected 10 s back: the PV holds, 1 ns further each update.
        let mut last = (1000, 0);
        for i in 1..=5 {
            let p = pair(s.next("P", ts(990 + i, 0)));
            assert!(p > last, "{p:?} after {last:?}");
            assert_eq!(p, (1000, i as i32));
            last = p;
        }
        assert!(s.holding, "a 10 s hold is logged");
        // The source passes the held time: its own times again.
        assert_eq!(pair(s.next("P", ts(1000, 500))), (1000, 500));
        assert!(!s.holding);
    }

    #[test]
    fn source_times_older_than_the_bridge_s_own_post_hold_without_a_warning() {
        let mut s = Stamps::default();
        // A PV just made posts INVALID at the bridge's time; the source's first value is
        // 2 s older (the attribute last changed before the bridge started).
        s.own("P", ts(1000, 0));
        assert_eq!(pair(s.next("P", ts(998, 0))), (1000, 1));
        assert!(!s.holding, "held behind the bridge's own time: not logged");
        // Held behind a source time instead: a source clock that went back, logged.
        assert_eq!(pair(s.next("P", ts(995, 0))), (1000, 2));
        assert!(s.holding, "held behind a source time: logged");
        assert_eq!(pair(s.next("P", ts(1001, 0))), (1001, 0));
        assert!(!s.holding);
    }

    #[test]
    fn out_of_range_nanoseconds_from_a_peer_are_normalised() {
        let mut s = Stamps::default();
        assert_eq!(pair(s.next("P", ts(5, 1_500_000_000))), (6, 500_000_000));
        assert_eq!(
            pair(s.next("P", ts(i64::MAX, -1))),
            (i64::MAX - 1, 999_999_999)
        );
        assert_eq!(
            pair(s.next("P", ts(i64::MAX, 999_999_999))),
            (i64::MAX, 999_999_999)
        );
        // The end of time holds rather than wrapping back.
        assert_eq!(pair(s.next("P", ts(0, 0))), (i64::MAX, 999_999_999));
    }
}
