//! A turn's posts and put replies, made on pvxs's server loop in one go (issue 23).
//!
//! Between [`begin`] and [`publish`], this thread's posts ([`SharedPv::post`](super::SharedPv))
//! and put replies ([`PutCompletion`](super::PutCompletion)) are kept in order instead of
//! being dispatched to pvxs's loop one by one; [`publish`] queues them for the loop,
//! which runs them all when the next put arrives (cpp/handoff.h). If puts are not
//! arriving, or the loop has not taken them by a deadline, the caller runs them itself
//! ([`flush`]). A post or reply made outside a turn runs what is queued first: nothing
//! is reordered.

use super::ffi::bridge as ffi;

/// This thread collects its posts and replies until [`publish`].
pub fn begin() {
    ffi::handoff_begin();
}

/// Queues what this thread collected for pvxs's loop and stops collecting. True when
/// the loop is expected to take it soon (puts keep arriving): the caller then runs it
/// with [`flush`] if it is still [`pending`] a little later; false when the caller
/// should [`flush`] now.
pub fn publish() -> bool {
    let loop_takes = match ffi::handoff_publish() {
        Ok(taken) => taken,
        Err(e) => {
            tracing::warn!(error = %e.what(), "could not queue posts and put replies for pvxs");
            false
        }
    };
    report_failures();
    loop_takes
}

/// Runs on this thread what the loop has not taken yet.
pub fn flush() {
    if let Err(e) = ffi::handoff_flush() {
        tracing::warn!(error = %e.what(), "could not run queued posts and put replies");
    }
    report_failures();
}

/// Posts or replies wait for the loop.
pub fn pending() -> bool {
    ffi::handoff_pending()
}

/// Posts and replies queued so far that pvxs's loop ran, and that the bridge ran itself.
pub fn counts() -> (u64, u64) {
    (ffi::handoff_run_on_loop(), ffi::handoff_run_elsewhere())
}

fn report_failures() {
    match ffi::handoff_failures() {
        Ok(failures) => {
            for f in failures {
                tracing::warn!(error = %f, "a queued post or put reply failed");
            }
        }
        Err(e) => tracing::warn!(error = %e.what(), "could not read the queued work's failures"),
    }
}
