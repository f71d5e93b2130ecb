//! A turn's posts and put replies, made back to back at the turn's end (issue 23).
//!
//! Between [`begin`] and [`end`], this thread's posts
//! ([`SharedPv::post`](super::SharedPv::post)) and put replies
//! ([`PutCompletion`](super::PutCompletion)) are kept in the order they were made
//! instead of being dispatched to pvxs's loop one by one, between the bridge's other
//! work; [`end`] makes them all at once, in that order (cpp/handoff.h). An open, close
//! or read-back of a PV in between makes what was collected first.

use super::ffi::bridge as ffi;

/// This thread collects its posts and replies until [`end`].
pub fn begin() {
    ffi::handoff_begin();
}

/// Posts and put replies this thread collected or that still wait for pvxs's loop: a
/// poster that is ahead of the loop by many stops posting and coalesces instead.
pub fn waiting() -> usize {
    ffi::handoff_waiting()
}

/// Stops collecting and makes what was collected, in order.
pub fn end() {
    match ffi::handoff_end() {
        Ok(failures) => {
            for f in failures {
                tracing::warn!(error = %f, "a post or put reply of the turn failed");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e.what(), "could not make the turn's posts and put replies")
        }
    }
}
