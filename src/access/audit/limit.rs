//! Refused puts, limited per client: a client cannot crowd the trail.
//!
//! Each client (its IP address, the record's `host`) has a bucket of
//! [`REFUSALS_BURST`] records of refused puts, refilled at [`REFUSALS_PER_SECOND`]. A
//! refusal that finds the bucket empty is not recorded but counted; the next record of the
//! same client (refused or not) carries that count as `refusals_suppressed`.

use std::collections::HashMap;
use std::time::Instant;

/// Records of refused puts one client may make at once.
pub const REFUSALS_BURST: f64 = 20.0;
/// ... and then per second.
pub const REFUSALS_PER_SECOND: f64 = 1.0;
/// Clients tracked; past this, clients not seen with a pending count are forgotten, and
/// if none can be, new clients share one bucket.
const MAX_CLIENTS: usize = 4096;

/// The outcomes that are refusals of the client's own request (limited): nothing of
/// them reached System Platform.
pub fn is_refusal(outcome: &str) -> bool {
    matches!(
        outcome,
        "denied" | "denied_no_read" | "refused" | "queue_full"
    )
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Refusals not recorded since this client's last record.
    suppressed: u64,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + secs * REFUSALS_PER_SECOND).min(REFUSALS_BURST);
        self.at = now;
    }
}

#[derive(Debug, Default)]
pub(super) struct Limiter {
    clients: HashMap<String, Bucket>,
}

impl Limiter {
    /// A record of `host` is about to be made: `None` when it is a refusal past the
    /// client's limit (counted, not recorded); else the client's refusals suppressed
    /// before it (reset).
    pub fn admit(&mut self, host: &str, refusal: bool, now: Instant) -> Option<u64> {
        if !refusal {
            return Some(
                self.clients
                    .get_mut(host)
                    .map_or(0, |b| std::mem::take(&mut b.suppressed)),
            );
        }
        if !self.clients.contains_key(host) && self.clients.len() >= MAX_CLIENTS {
            self.clients.retain(|_, b| {
                b.refill(now);
                b.suppressed > 0 || b.tokens < REFUSALS_BURST
            });
        }
        let key = if self.clients.contains_key(host) || self.clients.len() < MAX_CLIENTS {
            host
        } else {
            ""
        };
        let bucket = self.clients.entry(key.to_string()).or_insert(Bucket {
            tokens: REFUSALS_BURST,
            at: now,
            suppressed: 0,
        });
        bucket.refill(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Some(std::mem::take(&mut bucket.suppressed))
        } else {
            bucket.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_client_past_its_burst_is_counted_and_the_next_record_says_how_many() {
        let mut l = Limiter::default();
        let t = Instant::now();
        for _ in 0..20 {
            assert_eq!(l.admit("10.0.0.1", true, t), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(l.admit("10.0.0.1", true, t), None);
        }
        // Another client is not held back by the first.
        assert_eq!(l.admit("10.0.0.2", true, t), Some(0));
        // A record that is not a refusal carries the count at once.
        assert_eq!(l.admit("10.0.0.1", false, t), Some(5));
        assert_eq!(l.admit("10.0.0.1", true, t), None);
        // A second later one more refusal is recorded, with the one suppressed before.
        assert_eq!(
            l.admit("10.0.0.1", true, t + Duration::from_secs(1)),
            Some(1)
        );
        assert!(is_refusal("queue_full") && !is_refusal("confirmed"));
    }

    #[test]
    fn many_clients_share_a_bucket_past_the_cap() {
        let mut l = Limiter::default();
        let t = Instant::now();
        for i in 0..MAX_CLIENTS {
            for _ in 0..21 {
                l.admit(&format!("h{i}"), true, t);
            }
        }
        assert!(l.admit("new", true, t).is_some());
        assert!(l.clients.len() <= MAX_CLIENTS + 1);
    }
}
