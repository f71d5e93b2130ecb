//! A mutex whose lock never panics.
//!
//! `std::sync::Mutex::lock` fails only when another thread panicked while holding the
//! guard. The state it guards (the simulator's Galaxy, the bridge's stale sessions) stays
//! usable after that (every update is a plain store),
//! so it goes on serving with the data as the panicking thread left it rather than
//! stopping every later request.
use std::sync::{MutexGuard, PoisonError};

/// `std::sync::Mutex` with a `lock` that takes the data back from a poisoned lock.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }

    /// Lock, even if a thread panicked while it held the lock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_locks() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let joined = std::thread::spawn(move || {
            let _guard = m2.lock();
            panic!("poison the lock");
        })
        .join();
        assert!(joined.is_err());
        assert!(m.0.is_poisoned());
        *m.lock() += 1;
        assert_eq!(*m.lock(), 2);
    }
}
