//! A client's put, completed later from any thread.

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

/// The reply to one put. Exactly one answer reaches the client: the first of
/// [`PutCompletion::complete`] or the error sent when this handle is dropped.
pub struct PutCompletion {
    op: UniquePtr<PutOp>,
}

impl std::fmt::Debug for PutCompletion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutCompletion")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl PutCompletion {
    pub(crate) fn new(op: UniquePtr<PutOp>) -> Self {
        PutCompletion { op }
    }

    /// Replies success, or the error text the client will show.
    pub fn complete(mut self, result: Result<(), String>) {
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
