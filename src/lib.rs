//! mxpva: serve AVEVA System Platform attributes, reached through the MXAccess Gateway,
//! as EPICS PVAccess PVs.
//!
//! # Layout
//! - `access`: EPICS access security (ACF via asLib) for puts, and the audit trail.
//! - `config`: TOML schema and validation.
//! - `pva`: the safe face of the cxx bridge over pvxs.
//! - `gateway`: the tonic client of the MXAccess Gateway and its domain types.
//! - `bridge`: mapping, alarms and the write path.
//! - `sim`: the gateway simulator.
//! - `signals`: SIGINT/SIGTERM stop gracefully; SIGHUP never stops the process.
//! - `status`: the status PVs (`[status]`); `systemd`: sd_notify (READY, WATCHDOG);
//!   `logging`: text or JSON log lines (`[log]`, `--log-format`).
// No input stops mxpva: nothing in the library or the binary may panic on data a peer or
// the config controls. `#[cfg(test)]` code is exempt (clippy.toml); so are tests/ and
// benches/, which these crate attributes do not reach. CI runs `cargo clippy --lib --bins`.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod access;
pub mod bridge;
pub mod config;
pub mod discover;
pub mod gateway;
mod lock;
pub mod logging;
pub mod pva;
pub mod signals;
pub mod sim;
pub mod status;
pub mod systemd;
