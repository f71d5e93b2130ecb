//! The write path's parts, which know nothing of the bridge that drives them
//! (`core/puts.rs`): a put becomes a gateway write (Write, Write2 or WriteSecured by the
//! PV's write mode; puts that come together go in one bulk call, `calls.rs`), capped per
//! PV and overall by `[limits]`, and completes on OnWriteComplete, on a timeout, or when
//! the link is lost (`pending.rs`: the puts of one PV). `failure.rs` names the layer
//! that failed a write; `guard.rs` is access security and the audit trail before it.

pub(super) mod calls;
pub(super) mod failure;
pub(super) mod guard;
pub(super) mod pending;
