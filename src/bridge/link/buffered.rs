//! Buffered samples past `[limits] max_buffered_samples`: the oldest of an event are
//! dropped, counted, and the first time logged at warn naming the cap.

use tracing::{debug, warn};

/// The samples dropped since start.
#[derive(Debug, Default)]
pub(in crate::bridge) struct Dropped {
    /// Samples dropped in all.
    pub count: u64,
    logged: bool,
}

impl Dropped {
    /// How many of the `n` samples of one OnBufferedDataChange of `pv` to drop (the
    /// oldest, first) to keep `cap`; counted and logged.
    pub fn take(&mut self, pv: &str, n: usize, cap: usize) -> usize {
        let skip = n.saturating_sub(cap);
        if skip == 0 {
            return 0;
        }
        self.count = self.count.saturating_add(skip as u64);
        if std::mem::replace(&mut self.logged, true) {
            debug!(%pv, samples = n, dropped = skip, total = self.count, "buffered samples past [limits] max_buffered_samples dropped");
        } else {
            warn!(
                %pv,
                samples = n,
                dropped = skip,
                max_buffered_samples = cap,
                "an OnBufferedDataChange held more samples than [limits] max_buffered_samples: the oldest were dropped (further drops are logged at debug)"
            );
        }
        skip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_past_the_cap_are_dropped_and_counted() {
        let mut d = Dropped::default();
        assert_eq!(d.take("A", 5, 10), 0);
        assert_eq!(d.count, 0);
        assert_eq!(d.take("A", 15, 10), 5);
        assert_eq!(d.take("B", 12, 10), 2);
        assert_eq!(d.count, 7);
    }
}
