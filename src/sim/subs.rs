//! Who is advised on what: the index from an attribute (or alarm) to the session items
//! advised on it, and the two small due-lists of work that waits for a moment (the first
//! OnDataChange after Advise, the flush of a buffered item).
//!
//! With it a change of value or quality costs O(items advised on that attribute), and
//! the simulator's timer visits only the due-lists, never every item. The index holds
//! advised items only; Advise, UnAdvise, RemoveItem, Unregister, the bulk forms of these,
//! a session's end and a deploy keep it up to date (gateway_svc/commands.rs, deploy.rs,
//! [`super::Core::forget_session`]).
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::session::{SimSession, Target};

/// What an item is advised on, as far as data changes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// An attribute (scalar, whole array, or one element of it).
    Attr(usize),
    /// An alarm attribute (`Obj.Level.HiHi`).
    Alarm(usize),
}

impl Key {
    /// None for a reference that does not resolve: nothing ever changes it.
    pub fn of(t: &Target) -> Option<Key> {
        match t {
            Target::Scalar(a) | Target::Whole(a) | Target::Element(a, _) => Some(Key::Attr(*a)),
            Target::Alarm(a) => Some(Key::Alarm(*a)),
            Target::Unresolved(..) => None,
        }
    }
}

/// One advised item of one session.
#[derive(Clone)]
pub(crate) struct Sub {
    pub sess: Arc<SimSession>,
    pub item: i32,
}

impl Sub {
    fn is(&self, sess: &Arc<SimSession>, item: i32) -> bool {
        self.item == item && Arc::ptr_eq(&self.sess, sess)
    }
}

/// An item with work due at `at`.
#[derive(Clone)]
pub(crate) struct Due {
    pub at: Instant,
    pub sub: Sub,
}

#[derive(Default)]
pub(crate) struct Subscribers {
    by_key: HashMap<Key, Vec<Sub>>,
    /// First OnDataChange after Advise (or after a deploy changed what the item is).
    /// Appended as `now + first-update delay`, a constant, so nearly in time order.
    first: VecDeque<Due>,
    /// Buffered items holding samples, flushed at their interval.
    flush: Vec<Due>,
    /// What changed by a control call during the current scan: its plain items get the
    /// latest value at the end of the scan (the tick), as System Platform reports them.
    scanned: Vec<Key>,
}

impl Subscribers {
    /// Note that `item` of `sess` is advised on `target`.
    pub fn add(&mut self, target: &Target, sess: &Arc<SimSession>, item: i32) {
        let Some(k) = Key::of(target) else {
            return;
        };
        let subs = self.by_key.entry(k).or_default();
        if !subs.iter().any(|s| s.is(sess, item)) {
            subs.push(Sub {
                sess: sess.clone(),
                item,
            });
        }
    }

    /// Note that `item` of `sess` is no longer advised on `target`.
    pub fn remove(&mut self, target: &Target, sess: &Arc<SimSession>, item: i32) {
        let Some(k) = Key::of(target) else {
            return;
        };
        if let Some(subs) = self.by_key.get_mut(&k) {
            subs.retain(|s| !s.is(sess, item));
            if subs.is_empty() {
                self.by_key.remove(&k);
            }
        }
    }

    /// The items advised on `k`.
    pub fn of(&self, k: Key) -> &[Sub] {
        self.by_key.get(&k).map_or(&[], Vec::as_slice)
    }

    /// Forget the index (a deploy rebuilds it); the due-lists stay.
    pub fn clear_index(&mut self) {
        self.by_key.clear();
    }

    /// Forget everything about `sess`: `items` are its advised items and their targets.
    pub fn forget<'a>(
        &mut self,
        sess: &Arc<SimSession>,
        items: impl Iterator<Item = (i32, &'a Target)>,
    ) {
        for (ih, t) in items {
            self.remove(t, sess, ih);
        }
        let other = |d: &Due| !Arc::ptr_eq(&d.sub.sess, sess);
        self.first.retain(other);
        self.flush.retain(other);
    }

    pub fn first_due(&mut self, at: Instant, sess: &Arc<SimSession>, item: i32) {
        self.first.push_back(Due {
            at,
            sub: Sub {
                sess: sess.clone(),
                item,
            },
        });
    }

    pub fn flush_due(&mut self, d: Due) {
        self.flush.push(d);
    }

    /// `key` changed during the current scan: its plain items get it at the scan's end.
    pub fn scanned(&mut self, key: Key) {
        if !self.scanned.contains(&key) {
            self.scanned.push(key);
        }
    }

    /// What changed during the scan now ending.
    pub fn take_scanned(&mut self) -> Vec<Key> {
        std::mem::take(&mut self.scanned)
    }

    /// The earliest moment some work is due.
    pub fn next_due(&self) -> Option<Instant> {
        let first = self.first.front().map(|d| d.at);
        let flush = self.flush.iter().map(|d| d.at).min();
        match (first, flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Take the work due by `now`: (first values, flushes).
    pub fn take_due(&mut self, now: Instant) -> (Vec<Sub>, Vec<Sub>) {
        let mut first = Vec::new();
        while self.first.front().is_some_and(|d| d.at <= now) {
            if let Some(d) = self.first.pop_front() {
                first.push(d.sub);
            }
        }
        let mut flush = Vec::new();
        if self.flush.iter().any(|d| d.at <= now) {
            let (due, later): (Vec<Due>, Vec<Due>) = std::mem::take(&mut self.flush)
                .into_iter()
                .partition(|d| d.at <= now);
            self.flush = later;
            flush = due.into_iter().map(|d| d.sub).collect();
        }
        (first, flush)
    }

    /// How many items are advised, in all (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_key.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::session::LogLimits;
    use std::time::Duration;

    fn session(id: &str) -> Arc<SimSession> {
        Arc::new(SimSession::new(
            id.into(),
            id.into(),
            LogLimits {
                queue_capacity: 10,
                replay_capacity: 0,
                replay_retention: Duration::ZERO,
            },
            crate::sim::clock::Clock::default(),
        ))
    }

    fn items(s: &Subscribers, k: Key) -> Vec<(String, i32)> {
        s.of(k)
            .iter()
            .map(|x| (x.sess.id.clone(), x.item))
            .collect()
    }

    #[test]
    fn advise_unadvise_remove_and_close_keep_the_index() {
        let (a, b) = (session("a"), session("b"));
        let mut s = Subscribers::default();
        // Advise: two sessions on attribute 3 (one of them twice: an element and the
        // whole array), one on alarm 3, none for an unresolved reference.
        s.add(&Target::Scalar(3), &a, 1);
        s.add(&Target::Scalar(3), &a, 1); // advised again: still once
        s.add(&Target::Element(3, 0), &a, 2);
        s.add(&Target::Whole(3), &b, 1);
        s.add(&Target::Alarm(3), &b, 2);
        s.add(&Target::Unresolved(6, "x".into()), &b, 3);
        assert_eq!(
            items(&s, Key::Attr(3)),
            [("a".into(), 1), ("a".into(), 2), ("b".into(), 1)]
        );
        assert_eq!(items(&s, Key::Alarm(3)), [("b".into(), 2)]);
        assert_eq!(s.len(), 4);
        // UnAdvise / RemoveItem of one item leaves the others.
        s.remove(&Target::Scalar(3), &a, 1);
        assert_eq!(items(&s, Key::Attr(3)), [("a".into(), 2), ("b".into(), 1)]);
        // Removing what is not there changes nothing.
        s.remove(&Target::Scalar(4), &a, 2);
        s.remove(&Target::Unresolved(6, "x".into()), &b, 3);
        assert_eq!(s.len(), 3);
        // Closing session b forgets its items and its due work, not a's.
        let now = Instant::now();
        s.first_due(now, &a, 2);
        s.first_due(now, &b, 1);
        s.flush_due(Due {
            at: now,
            sub: Sub {
                sess: b.clone(),
                item: 1,
            },
        });
        let b_items = [(1, Target::Whole(3)), (2, Target::Alarm(3))];
        s.forget(&b, b_items.iter().map(|(i, t)| (*i, t)));
        assert_eq!(items(&s, Key::Attr(3)), [("a".into(), 2)]);
        assert!(items(&s, Key::Alarm(3)).is_empty());
        let (first, flush) = s.take_due(now);
        assert_eq!(
            first
                .iter()
                .map(|d| (d.sess.id.as_str(), d.item))
                .collect::<Vec<_>>(),
            [("a", 2)]
        );
        assert!(flush.is_empty());
        // A deploy rebuilds the index from scratch.
        s.clear_index();
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn due_work_comes_out_when_due_and_not_before() {
        let a = session("a");
        let mut s = Subscribers::default();
        assert_eq!(s.next_due(), None);
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(60);
        s.first_due(t0, &a, 1);
        s.first_due(later, &a, 2);
        s.flush_due(Due {
            at: t0 + Duration::from_secs(1),
            sub: Sub {
                sess: a.clone(),
                item: 3,
            },
        });
        assert_eq!(s.next_due(), Some(t0));
        let (first, flush) = s.take_due(t0);
        assert_eq!(first.iter().map(|d| d.item).collect::<Vec<_>>(), [1]);
        assert!(flush.is_empty());
        assert_eq!(s.next_due(), Some(t0 + Duration::from_secs(1)));
        let (first, flush) = s.take_due(t0 + Duration::from_secs(2));
        assert!(first.is_empty());
        assert_eq!(flush.iter().map(|d| d.item).collect::<Vec<_>>(), [3]);
        assert_eq!(s.next_due(), Some(later));
    }
}
