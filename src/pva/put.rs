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
    /// The account's roles (its OS groups on this host), looked up only while an ACF is
    /// in force; an ACF's UAG matches them as `role/<group>`.
    pub roles: Vec<String>,
}

/// A client's put: on a writable PV, or, when the event channel forwards refused puts
/// ([`EventSender::forward_refused_puts`](super::EventSender::forward_refused_puts)), one
/// already refused in the callback (`refused`).
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
    /// Refused already in the callback (a read-only PV, a value that cannot be read or
    /// is past a `[limits]` cap: then `value` is `None`), with the client's message: the
    /// receiver answers with it once it has had its say (access security, the audit).
    pub refused: Option<String>,
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

/// How a put ended, for whoever observes it (the audit trail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// System Platform confirmed the write (or the acknowledgement).
    Confirmed,
    /// mxpva's own checks refused it; nothing reached System Platform.
    Refused,
    /// System Platform refused it: an MXAccess status (of the call, of its bulk entry,
    /// or of OnWriteComplete).
    RefusedBySystemPlatform,
    /// The gateway's own status refused it (a missing scope or permission, an invalid
    /// request, a session not ready); System Platform never saw it.
    RefusedByGateway,
    /// The call failed in transport or protocol (gRPC unavailable, a deadline, a reply
    /// that cannot be read): whether System Platform applied it is unknown. Not retried.
    GatewayError,
    /// No confirmation came within the write timeout.
    TimedOut,
    /// Sent, but the link or the PV went away before a confirmation.
    Lost,
}

impl PutOutcome {
    /// The name the audit trail uses.
    pub fn as_str(self) -> &'static str {
        match self {
            PutOutcome::Confirmed => "confirmed",
            PutOutcome::Refused => "refused",
            PutOutcome::RefusedBySystemPlatform => "refused_by_system_platform",
            PutOutcome::RefusedByGateway => "refused_by_gateway",
            PutOutcome::GatewayError => "gateway_error",
            PutOutcome::TimedOut => "timed_out",
            PutOutcome::Lost => "lost",
        }
    }
}

/// What an observer of a put learns when it is answered.
#[derive(Debug)]
pub struct PutReply<'a> {
    pub outcome: PutOutcome,
    /// The error text the client got (None when confirmed).
    pub message: Option<&'a str>,
    /// Notes added while the put was handled ([`PutCompletion::note`]).
    pub notes: &'a [(&'static str, String)],
}

/// Called once with the reply, on whichever thread answers the put.
pub type PutObserver = Box<dyn FnOnce(&PutReply<'_>) + Send>;

/// The reply to one put. Exactly one answer reaches the client: the first of
/// [`PutCompletion::complete`] or the error sent when this handle is dropped.
pub struct PutCompletion {
    op: UniquePtr<PutOp>,
    /// Counts the put as failed when it is answered with an error (dropped unanswered
    /// included).
    counts: Option<Arc<PutCounts>>,
    observed: Option<Box<Observed>>,
}

/// An observer and the notes for it (boxed: most puts have none).
struct Observed {
    observer: PutObserver,
    notes: Vec<(&'static str, String)>,
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
        PutCompletion {
            op,
            counts: None,
            observed: None,
        }
    }

    /// A completion whose error answers count in `counts.failed`.
    pub(crate) fn counted(op: UniquePtr<PutOp>, counts: &Arc<PutCounts>) -> Self {
        PutCompletion {
            op,
            counts: Some(counts.clone()),
            observed: None,
        }
    }

    /// `observer` learns how the put ended (once, when it is answered or dropped), after
    /// any observer added before it.
    pub fn observe(&mut self, observer: PutObserver) {
        match self.observed.as_mut() {
            Some(o) => {
                let first = std::mem::replace(&mut o.observer, Box::new(|_: &PutReply<'_>| {}));
                o.observer = Box::new(move |r: &PutReply<'_>| {
                    first(r);
                    observer(r);
                });
            }
            None => {
                self.observed = Some(Box::new(Observed {
                    observer,
                    notes: Vec::new(),
                }))
            }
        }
    }

    /// Adds a note for the observer (`alarm` references of an acknowledgement, ...).
    pub fn note(&mut self, key: &'static str, value: String) {
        if let Some(o) = self.observed.as_mut() {
            o.notes.push((key, value));
        }
    }

    /// Replies success, or the error text the client will show (a refusal by mxpva).
    pub fn complete(self, result: Result<(), String>) {
        match result {
            Ok(()) => self.reply(PutOutcome::Confirmed, None),
            Err(message) => self.reply(PutOutcome::Refused, Some(message)),
        }
    }

    /// Replies with `message` for a put that ended as `outcome`.
    pub fn fail(self, outcome: PutOutcome, message: String) {
        self.reply(outcome, Some(message));
    }

    fn reply(mut self, outcome: PutOutcome, message: Option<String>) {
        let counts = self.counts.take();
        if let (Some(c), Some(_)) = (&counts, &message) {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(o) = self.observed.take() {
            (o.observer)(&PutReply {
                outcome,
                message: message.as_deref(),
                notes: &o.notes,
            });
        }
        let Some(op) = self.op.as_mut() else { return };
        let sent = match &message {
            None => op.reply_ok(),
            Some(message) => op.reply_error(message),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e.what(), "could not deliver a put reply");
        }
    }

    /// The client cancelled the put or disconnected; a reply would go nowhere.
    pub fn is_cancelled(&self) -> bool {
        self.op.as_ref().is_some_and(|op| op.is_cancelled())
    }
}

impl Drop for PutCompletion {
    /// Unanswered: pvxs answers with an error, counted as a failed put; the observer
    /// hears it too.
    fn drop(&mut self) {
        if let Some(c) = self.counts.take() {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(o) = self.observed.take() {
            (o.observer)(&PutReply {
                outcome: PutOutcome::Refused,
                message: Some("put abandoned by the server without a reply"),
                notes: &o.notes,
            });
        }
    }
}
