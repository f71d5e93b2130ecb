//! How an MXAccess value, quality and source time become a PV's `value`, `alarm` and
//! `timeStamp`, and how a put's value goes back.
//!
//! - `convert.rs`: MXAccess values <-> PV values, exact or refused (`isotime.rs`: Time
//!   text; generated inputs in `convert_props.rs`).
//! - `quality.rs`: the quality -> `alarm`.
//! - `limits.rs`: local `value_alarm` limits applied to `alarm`.
//! - `combine.rs`: how the parts of a PV's alarm join into one (shared by the mapped PVs,
//!   `mapping/pv.rs`, and `alarms/`).
//! - `stamp.rs`: the rule that keeps each PV's posted `timeStamp` from going back.
//!
//! Nothing here imports the rest of the bridge.

pub(super) mod combine;
pub(super) mod convert;
#[cfg(test)]
mod convert_props;
mod isotime;
pub(super) mod limits;
pub(super) mod quality;
pub(super) mod stamp;
