//! The tonic client: connection, sessions, commands, event and alarm streams.
//!
//! - `options.rs`: [`ClientOptions`], [`TlsOptions`], [`ApiKey`] and the interceptor that
//!   sends it.
//! - this file: [`GatewayClient`] (connect, open and close sessions, the session-less
//!   alarm calls).
//! - `session.rs`: [`Session`], its one-item commands and writes.
//! - `bulk.rs`: the bulk commands of a [`Session`].
//! - `streams.rs`: [`EventStream`], [`AlarmFeed`] and the [`Backoff`] for reattaching them.
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use super::convert::*;
use super::error::*;
use super::limits::{peer_text, ValueLimits};
use super::pb::gw as pb;
use super::pb::gw::mx_access_gateway_client::MxAccessGatewayClient;
use super::types::*;
use super::GalaxyClient;

mod bulk;
mod options;
mod session;
mod streams;

pub use options::{ApiKey, ClientOptions, TlsOptions, DEFAULT_ENDPOINT, MAX_MESSAGE_BYTES};
pub(crate) use options::{Auth, AuthChannel};
pub use session::Session;
pub use streams::{AlarmFeed, Backoff, EventStream};

/// A connection to the gateway. Cheap to clone; clones share the channel,
/// which reconnects by itself after transport failures.
#[derive(Clone)]
pub struct GatewayClient {
    gw: MxAccessGatewayClient<AuthChannel>,
    galaxy: GalaxyClient,
    request_timeout: Duration,
    /// What clones share and seldom read: the endpoint, the caps on decoded values.
    settings: Arc<Settings>,
}

struct Settings {
    endpoint: String,
    limits: ValueLimits,
}

impl fmt::Debug for GatewayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayClient")
            .field("endpoint", &self.settings.endpoint)
            .finish_non_exhaustive()
    }
}

fn req<T>(msg: T, timeout: Option<Duration>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = timeout {
        r.set_timeout(t);
    }
    r
}

fn protocol_ok(call: &'static str, ps: Option<&pb::ProtocolStatus>) -> Result<(), GatewayError> {
    let Some(ps) = ps else {
        return Err(GatewayError::Protocol {
            call,
            message: "reply without protocol_status".into(),
        });
    };
    match ProtocolCode::from_pb(ps.code) {
        ProtocolCode::Ok => Ok(()),
        code => Err(GatewayError::Refused {
            call,
            code,
            message: peer_text(&ps.message),
        }),
    }
}

impl GatewayClient {
    /// Connect (eagerly, so a wrong endpoint fails here).
    pub async fn connect(opts: &ClientOptions) -> Result<Self, GatewayError> {
        let uri = opts.uri()?;
        let mut ep = Endpoint::from_shared(uri.clone())
            .map_err(|e| GatewayError::Config(format!("endpoint {}: {e}", opts.endpoint)))?
            .connect_timeout(opts.connect_timeout)
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(4 * 1024 * 1024))
            .initial_connection_window_size(Some(8 * 1024 * 1024))
            .http2_keep_alive_interval(opts.keepalive_interval)
            .keep_alive_timeout(opts.keepalive_timeout)
            .keep_alive_while_idle(true);
        if let Some(tls) = &opts.tls {
            let mut cfg = ClientTlsConfig::new();
            match &tls.ca_file {
                Some(path) => {
                    let pem = std::fs::read(path).map_err(|e| {
                        GatewayError::Config(format!("cannot read CA file {}: {e}", path.display()))
                    })?;
                    cfg = cfg.ca_certificate(Certificate::from_pem(pem));
                }
                None => cfg = cfg.with_native_roots(),
            }
            if let Some(name) = &tls.server_name {
                cfg = cfg.domain_name(name.clone());
            }
            ep = ep
                .tls_config(cfg)
                .map_err(|e| GatewayError::Config(format!("TLS configuration: {e}")))?;
        }
        let channel = ep.connect().await.map_err(|e| GatewayError::Connect {
            endpoint: opts.endpoint.clone(),
            message: error_chain(&e),
        })?;
        let auth = match &opts.api_key {
            Some(k) => {
                let mut v: MetadataValue<Ascii> =
                    format!("Bearer {}", k.expose()).parse().map_err(|_| {
                        GatewayError::Config("the API key cannot be sent as a header".into())
                    })?;
                v.set_sensitive(true);
                Auth(Some(v))
            }
            None => Auth(None),
        };
        let gw = MxAccessGatewayClient::with_interceptor(channel.clone(), auth.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let galaxy = GalaxyClient::new(channel, auth, opts.request_timeout);
        Ok(GatewayClient {
            gw,
            galaxy,
            request_timeout: opts.request_timeout,
            settings: Arc::new(Settings {
                endpoint: opts.endpoint.clone(),
                limits: opts.limits,
            }),
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.settings.endpoint
    }

    /// The Galaxy Repository service on the same connection.
    pub fn galaxy(&self) -> &GalaxyClient {
        &self.galaxy
    }

    /// Close a session by id, for example one opened on a connection since lost.
    /// Returns the final state the gateway reports.
    pub async fn close_session(&self, session_id: &str) -> Result<SessionState, GatewayError> {
        const CALL: &str = "CloseSession";
        let reply = self
            .gw
            .clone()
            .close_session(req(
                pb::CloseSessionRequest {
                    session_id: session_id.to_string(),
                },
                Some(self.request_timeout),
            ))
            .await
            .map_err(|s| GatewayError::from_status(CALL, s))?
            .into_inner();
        protocol_ok(CALL, reply.protocol_status.as_ref())?;
        Ok(session_state_from_pb(reply.final_state))
    }

    /// Open a session (the gateway starts a worker for it).
    pub async fn open_session(&self, client_session_name: &str) -> Result<Session, GatewayError> {
        const CALL: &str = "OpenSession";
        let reply = self
            .gw
            .clone()
            .open_session(req(
                pb::OpenSessionRequest {
                    client_session_name: client_session_name.to_string(),
                },
                Some(self.request_timeout),
            ))
            .await
            .map_err(|s| GatewayError::from_status(CALL, s))?
            .into_inner();
        protocol_ok(CALL, reply.protocol_status.as_ref())?;
        if reply.session_id.is_empty() {
            return Err(GatewayError::Protocol {
                call: CALL,
                message: "empty session_id".into(),
            });
        }
        Ok(Session {
            client: self.clone(),
            info: SessionInfo {
                session_id: reply.session_id,
                backend_name: reply.backend_name,
                gateway_protocol_version: reply.gateway_protocol_version,
                worker_protocol_version: reply.worker_protocol_version,
            },
            correlation: Arc::new(AtomicU64::new(1)),
        })
    }

    /// Snapshot of the active alarms (session-less).
    pub async fn query_active_alarms(
        &self,
        filter_prefix: &str,
    ) -> Result<Vec<ActiveAlarm>, GatewayError> {
        const CALL: &str = "QueryActiveAlarms";
        let mut stream = self
            .gw
            .clone()
            .query_active_alarms(req(
                pb::QueryActiveAlarmsRequest {
                    session_id: String::new(),
                    client_correlation_id: String::new(),
                    alarm_filter_prefix: filter_prefix.to_string(),
                },
                Some(self.request_timeout),
            ))
            .await
            .map_err(|s| GatewayError::from_status(CALL, s))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(a) = stream
            .message()
            .await
            .map_err(|s| GatewayError::from_status(CALL, s))?
        {
            out.push(
                active_alarm_from_pb(&a, &self.settings.limits).map_err(|message| {
                    GatewayError::Protocol {
                        call: CALL,
                        message,
                    }
                })?,
            );
        }
        Ok(out)
    }

    /// Acknowledge an alarm by reference (`Galaxy!Area.Object.Alarm`), with a
    /// comment (at most 256 characters) and the operator's name.
    pub async fn acknowledge_alarm(
        &self,
        reference: &str,
        comment: &str,
        operator: &str,
    ) -> Result<(), GatewayError> {
        const CALL: &str = "AcknowledgeAlarm";
        if comment.chars().count() > 256 {
            return Err(GatewayError::InvalidArgument {
                call: CALL,
                message: "the comment is longer than 256 characters".into(),
            });
        }
        let reply = self
            .gw
            .clone()
            .acknowledge_alarm(req(
                pb::AcknowledgeAlarmRequest {
                    alarm_reference: reference.to_string(),
                    comment: comment.to_string(),
                    operator_user: operator.to_string(),
                    client_correlation_id: String::new(),
                },
                Some(self.request_timeout),
            ))
            .await
            .map_err(|s| GatewayError::from_status(CALL, s))?
            .into_inner();
        let statuses: Vec<MxStatus> = reply.status.iter().map(status_from_pb).collect();
        match reply
            .protocol_status
            .as_ref()
            .map(|p| ProtocolCode::from_pb(p.code))
        {
            Some(ProtocolCode::MxAccessFailure) => Err(GatewayError::MxAccess {
                call: CALL,
                failure: MxAccessFailure {
                    hresult: reply.hresult,
                    statuses,
                    message: reply
                        .protocol_status
                        .map(|p| peer_text(&p.message))
                        .unwrap_or_default(),
                },
            }),
            _ => {
                protocol_ok(CALL, reply.protocol_status.as_ref())?;
                if reply.hresult < 0 || statuses.iter().any(|s| !s.is_ok()) {
                    return Err(GatewayError::MxAccess {
                        call: CALL,
                        failure: MxAccessFailure {
                            hresult: reply.hresult,
                            statuses,
                            message: String::new(),
                        },
                    });
                }
                Ok(())
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
