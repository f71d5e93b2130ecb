//! The safe Rust face of pvxs: a PVAccess [`Server`] serving [`SharedPv`]s.
//!
//! - [`ffi`](self) holds the one `#[cxx::bridge]`; nothing outside this module touches it.
//! - [`Server`] is a pvxs server built from explicit settings, from `EPICS_PVAS_*`, or
//!   isolated on loopback for tests.
//! - [`SharedPv`] is one PV: open it with a type and an initial [`Update`], then post
//!   updates that carry any subset of value, alarm, timeStamp, display, control and
//!   valueAlarm.
//! - [`TablePv`] is a read-only NTTable: labelled columns, posted as whole tables.
//! - A client's put on a writable PV arrives as [`PvEvent::Put`] with a [`PutRequest`] on
//!   the receiver given by [`event_channel`]; complete it later, from any thread, through
//!   its [`PutCompletion`]. First-connect and last-disconnect arrive on the same channel.
//!   [`event_channel_with`] caps what puts may size ([`PutLimits`]): past a cap a put is
//!   refused in the pvxs callback, which never blocks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mxpva::pva::PvaError> {
//! use mxpva::pva::*;
//! let server = Server::new(&ServerConfig::from_env())?;
//! let (events, mut rx) = event_channel();
//! let mut pv = SharedPv::new("PLANT:PUMP1:SPEED", Access::ReadWrite, &events)?;
//! pv.open(PvType::Scalar(ScalarType::Float64), &Update::value(NtValue::Float64(0.0)))?;
//! server.add_pv(&pv)?;
//! server.start()?;
//! while let Some(PvEvent::Put(put)) = rx.recv().await {
//!     // ... write it somewhere, then:
//!     put.completion.complete(Ok(()));
//! }
//! # Ok(()) }
//! ```

pub mod access;
mod error;
mod ffi;
pub mod handoff;
mod native_log;
mod put;
mod server;
mod shared_pv;
mod table;
mod value;

pub use error::PvaError;
pub use put::{Credentials, PutCompletion, PutCounts, PutOutcome, PutReply, PutRequest};
pub use server::{ClientInfo, Server, ServerConfig, ServerInfo};
pub use shared_pv::{
    event_channel, event_channel_with, Access, EventReceiver, EventSender, PutLimits, PvEvent,
    QueueFull, QueueFullFn, SharedPv,
};
pub use table::{Column, TablePv, TableUpdate};
pub use value::{
    Alarm, AlarmStatus, Control, Display, DisplayForm, NtValue, PvType, ScalarType, Severity,
    Shape, TimeStamp, Update, ValueAlarm,
};

/// Applies `PVXS_LOG` (for example `PVXS_LOG=pvxs.server.*=DEBUG`) to pvxs's own loggers,
/// next to tracing's `RUST_LOG`.
pub fn configure_logging_from_env() -> Result<(), PvaError> {
    ffi::bridge::configure_logging_from_env().map_err(|e| PvaError::native("configure logging", e))
}

/// Sends pvxs's own log lines (EPICS errlog) through tracing, target `pvxs`, instead of
/// writing them to stderr: with JSON logs every line is then an object.
pub fn route_native_log() -> Result<(), PvaError> {
    ffi::bridge::route_native_log().map_err(|e| PvaError::native("route the pvxs log", e))
}
