//! A client's put, completed later from any thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cxx::UniquePtr;

use super::ffi::bridge::PutOp;
use super::value::NtValue;

/// Who made a put, as pvxs saw the client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// The client's address, `IP:port`.
    pub peer: String,
    /// The local interface the client reached.
    pub iface: String,
    /// Authentication method: `anonymous` or `ca`.
    pub method: String,
    /// The account the client claims (with method `ca`).
    pub account: String,
}

/// A put on a writable PV.
#[derive(Debug)]
pub struct PutRequest {
    /// The PV's name.
    pub pv: Arc<str>,
    /// The new value, typed as the PV is; `None` when the client did not mark `value`.
    pub value: Option<NtValue>,
    /// Every field the client marked, by full name (`value`, `alarm.severity`, ...).
    pub marked: Vec<String>,
    pub credentials: Credentials,
    /// Answers the client; dropping it unanswered answers with an error.
    pub completion: PutCompletion,
}

/// Puts received from clients and puts answered with an error, over all PVs of one
/// event channel (see [`EventSender::put_counts`](super::EventSender::put_counts)): one
/// relaxed atomic add each, read by the status PVs.
#[derive(Debug, Default)]
pub struct PutCounts {
    pub received: AtomicU64,
    pub failed: AtomicU64,
}

impl PutCounts {
    /// Received, failed.
    pub fn get(&self) -> (u64, u64) {
        (
            self.received.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// The reply to one put. Exactly one answer reaches the client: the first of
/// [`PutCompletion::complete`] or the error sent when this handle is dropped.
pub struct PutCompletion {
    op: UniquePtr<PutOp>,
    /// Counts the put as failed when it is answered with an error (dropped unanswered
    /// included).
    counts: Option<Arc<PutCounts>>,
}

impl std::fmt::Debug for PutCompletion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutCompletion")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl PutCompletion {
    #[cfg(test)]
    pub(crate) fn new(op: UniquePtr<PutOp>) -> Self {
        PutCompletion { op, counts: None }
    }

    /// A completion whose error answers count in `counts.failed`.
    pub(crate) fn counted(op: UniquePtr<PutOp>, counts: &Arc<PutCounts>) -> Self {
        PutCompletion {
            op,
            counts: Some(counts.clone()),
        }
    }

    /// Replies success, or the error text the client will show.
    pub fn complete(mut self, result: Result<(), String>) {
        let counts = self.counts.take();
        if let (Some(c), Err(_)) = (&counts, &result) {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
        let Some(op) = self.op.as_mut() else { return };
        let outcome = match &result {
            Ok(()) => op.reply_ok(),
            Err(message) => op.reply_error(message),
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e.what(), "could not deliver a put reply");
        }
    }

    /// The client cancelled the put or disconnected; a reply would go nowhere.
    pub fn is_cancelled(&self) -> bool {
        self.op.as_ref().is_some_and(|op| op.is_cancelled())
    }
}

impl Drop for PutCompletion {
    /// Unanswered: pvxs answers with an error, counted as a failed put.
    fn drop(&mut self) {
        if let Some(c) = self.counts.take() {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
