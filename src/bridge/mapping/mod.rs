//! The mapping: which PVs are served, and a change of it applied while serving.
//!
//! - `registry.rs`: the mapped PVs by a stable `PvId`, by name and by item handle.
//! - `pv.rs`: one mapped PV (its structure, metadata and pending writes).
//! - `diff.rs` (pure; tests in `diff/tests.rs`): the desired mapping compared with the
//!   registry.
//! - `apply.rs`: a diff applied while serving.
//! - `deploys.rs`: the `[[discover]]` rules followed through deploys.

mod apply;
pub(super) mod deploys;
pub(super) mod diff;
pub(super) mod pv;
pub(super) mod registry;
