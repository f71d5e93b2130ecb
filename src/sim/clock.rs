//! The simulated System Platform node's clock: the host's clock moved by `[galaxy]
//! clock_offset_ms` (negative: behind). Every time the simulator reports (source times of
//! data changes and buffered samples, alarm transition times, the times of writes without
//! their own, deploy times, the gateway's worker and receive times) is read from it, as a
//! real node's clock that runs ahead of or behind the bridge's host would give them.
//! A deploy of a Galaxy with another offset moves it: the node's clock jumps.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The largest `[galaxy] clock_offset_ms` either way: a year.
pub const MAX_CLOCK_OFFSET_MS: i64 = 366 * 24 * 3600 * 1000;

/// `t` moved by `offset_ms` (within [`MAX_CLOCK_OFFSET_MS`], which a `SystemTime` holds).
pub(crate) fn offset(t: SystemTime, offset_ms: i64) -> SystemTime {
    let d = Duration::from_millis(offset_ms.unsigned_abs());
    let moved = if offset_ms >= 0 {
        t.checked_add(d)
    } else {
        t.checked_sub(d)
    };
    moved.unwrap_or(t)
}

/// The node's clock, shared by the simulator's core and its sessions; cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct Clock(Arc<AtomicI64>);

impl Clock {
    pub fn new(offset_ms: i64) -> Self {
        Clock(Arc::new(AtomicI64::new(offset_ms)))
    }

    /// Takes a deployed Galaxy's offset.
    pub fn set(&self, offset_ms: i64) {
        self.0.store(offset_ms, Ordering::Relaxed);
    }

    pub fn now(&self) -> SystemTime {
        offset(SystemTime::now(), self.0.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_runs_ahead_or_behind_by_its_offset() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(offset(t, 20_000), t + Duration::from_secs(20));
        assert_eq!(offset(t, -1_500), t - Duration::from_millis(1_500));
        assert_eq!(offset(t, 0), t);
        let clock = Clock::new(-3_600_000);
        let behind = SystemTime::now() - Duration::from_secs(3_600);
        let now = clock.now();
        assert!(now >= behind && now < behind + Duration::from_secs(60));
        clock.set(MAX_CLOCK_OFFSET_MS);
        assert!(clock.now() > SystemTime::now() + Duration::from_secs(365 * 24 * 3600));
    }
}
