//! The MXAccess Gateway client.
//!
//! mxpva reaches AVEVA System Platform through the MXAccess Gateway, a gRPC
//! service (proto/mxaccess_gateway/v1 and proto/galaxy_repository/v1). This
//! module is the only place that knows the wire: generated protobuf types stay
//! in the private `pb` module and everything public is a domain type.
//!
//! Errors are layered as the gateway layers its replies: [`GatewayError::Rpc`]
//! (transport or gRPC status such as UNAUTHENTICATED), [`GatewayError::Refused`]
//! (the gateway's `protocol_status`) and [`GatewayError::MxAccess`] (HRESULT and
//! MXAccess statuses, with detail codes as names: `WriteAccessDenied`, ...).
//!
//! # Usage
//! ```no_run
//! use mxpva::gateway::*;
//! # async fn demo() -> Result<(), GatewayError> {
//! let opts = ClientOptions::plaintext("127.0.0.1:5000").with_api_key(ApiKey::from_env("MXGATEWAY_API_KEY")?);
//! let client = GatewayClient::connect(&opts).await?;
//! let session = client.open_session("mxpva").await?;
//! let server = session.register("mxpva").await?;
//! let tags: Vec<String> = vec!["Pump001.Speed".into(), "Pump001.SpeedSP".into()];
//! let results = session.subscribe_bulk_chunked(server, &tags, 500).await?;
//! for r in &results {
//!     if let Err(e) = &r.outcome { eprintln!("{}: {e}", r.tag); }
//! }
//! let mut events = session.events(None).await?;
//! // Write: the reply means "accepted"; the outcome is a WriteComplete event.
//! session.write(server, WriteKind::Write, &WriteEntry::new(results[1].item_handle, MxValue::Double(1200.0))).await?;
//! while let Some(ev) = events.next().await {
//!     match ev? {
//!         SessionEvent::DataChange(dc) => println!("{:?} = {} ({})", dc.item_handle, dc.value, dc.quality),
//!         SessionEvent::WriteComplete(wc) => println!("write done: {:?}", wc.failure()),
//!         SessionEvent::ReplayGap(_) => { /* re-read current values with read_bulk */ }
//!         _ => {}
//!     }
//! }
//! // The stream ended: resume with session.events(Some(events.last_sequence())),
//! // or, if the session is lost (e.is_session_lost()), open a new one.
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `types.rs`: domain types (values, quality, status, events, alarms, Galaxy).
//! - `error.rs`: [`GatewayError`] and friends.
//! - `client/`: the tonic client. `options.rs` ([`ClientOptions`], TLS, [`ApiKey`]),
//!   `mod.rs` ([`GatewayClient`]), `session.rs` ([`Session`], one-item commands, writes),
//!   `bulk.rs` (bulk commands), `streams.rs` ([`EventStream`], [`AlarmFeed`], [`Backoff`]).
//! - `galaxy.rs`: [`GalaxyClient`].
//! - `convert/`: protobuf <-> domain conversions (shared with the simulator).
//! - `limits.rs`: [`ValueLimits`], the caps on what the wire sizes.
//! - `handles.rs`: one item handle per tag.
//!
//! Decoding is total: an event that cannot be decoded, or whose value is past a cap,
//! arrives as [`SessionEvent::Undecodable`] with the reason, and the stream goes on.

mod client;
pub(crate) mod convert;
mod error;
mod galaxy;
mod handles;
mod limits;
pub(crate) mod pb;
mod types;

pub use client::{
    AlarmFeed, ApiKey, Backoff, ClientOptions, EventStream, GatewayClient, Session, TlsOptions,
    DEFAULT_ENDPOINT, MAX_MESSAGE_BYTES,
};
pub use error::{hresult_name, GatewayError, MxAccessFailure, ProtocolCode, RpcCode};
pub use galaxy::{DeployEvents, GalaxyClient};
pub(crate) use handles::refuse_shared_handles;
pub use limits::{ValueLimits, MAX_PEER_TEXT};
pub use types::*;
