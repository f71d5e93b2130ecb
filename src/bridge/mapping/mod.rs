//! The mapping: which PVs are served, and how a change of it is found (applied while
//! serving by `core/mapping.rs`).
//!
//! - `registry.rs`: the mapped PVs by a stable `PvId`, by name and by item handle
//!   (`records.rs`: the records by id).
//! - `pv.rs`: one mapped PV (its structure, metadata and pending writes).
//! - `diff.rs` (pure; tests in `diff/tests.rs`): the desired mapping compared with the
//!   registry.
//! - `deploys.rs`: the `[[discover]]` rules followed through deploys.

pub(super) mod deploys;
pub(super) mod diff;
pub(super) mod pv;
mod records;
pub(super) mod registry;
