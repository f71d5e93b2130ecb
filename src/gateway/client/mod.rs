//! The tonic client: connection, sessions, commands, event and alarm streams.
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::convert::*;
use super::error::*;
use super::handles::refuse_shared_handles;
use super::limits::{peer_text, ValueLimits};
use super::pb::gw as pb;
use super::pb::gw::mx_access_gateway_client::MxAccessGatewayClient;
use super::pb::gw::mx_command::Payload;
use super::pb::gw::mx_command_reply::Reply;
use super::types::*;
use super::GalaxyClient;

/// Largest gRPC message the gateway accepts or sends (16 MiB).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The conventional gateway endpoint.
pub const DEFAULT_ENDPOINT: &str = "localhost:5000";

/// A gateway API key (`mxgw_<id>_<secret>`). Its Debug and Display print
/// `<redacted>`; the key itself only goes into the `authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// Wrap a key. It must be non-empty printable ASCII without spaces.
    pub fn new(key: impl Into<String>) -> Result<Self, GatewayError> {
        let key = key.into();
        let key = key.trim();
        if key.is_empty() {
            return Err(GatewayError::Config("the API key is empty".into()));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(GatewayError::Config(
                "the API key must be printable ASCII without spaces".into(),
            ));
        }
        Ok(ApiKey(key.into()))
    }

    /// Read the key from an environment variable.
    pub fn from_env(var: &str) -> Result<Self, GatewayError> {
        match std::env::var(var) {
            Ok(v) => Self::new(v).map_err(|_| {
                GatewayError::Config(format!(
                    "environment variable {var} does not hold a usable API key"
                ))
            }),
            Err(_) => Err(GatewayError::Config(format!(
                "environment variable {var} (API key) is not set"
            ))),
        }
    }

    /// Read the key from a file (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self, GatewayError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            GatewayError::Config(format!("cannot read API key file {}: {e}", path.display()))
        })?;
        Self::new(text).map_err(|_| {
            GatewayError::Config(format!(
                "API key file {} does not hold a usable key",
                path.display()
            ))
        })
    }

    /// The key id part (`<id>` of `mxgw_<id>_<secret>`), safe to log.
    pub fn key_id(&self) -> Option<&str> {
        let rest = self.0.strip_prefix("mxgw_")?;
        rest.split_once('_').map(|(id, _)| id)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// TLS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the CA that signed the gateway's certificate. None = system roots.
    pub ca_file: Option<PathBuf>,
    /// Name to verify the certificate against instead of the endpoint host (tests).
    pub server_name: Option<String>,
}

/// How to reach the gateway.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `host:port` or `http://host:port` / `https://host:port`.
    pub endpoint: String,
    /// None = plaintext.
    pub tls: Option<TlsOptions>,
    /// None = no `authorization` header (a gateway with authentication disabled).
    pub api_key: Option<ApiKey>,
    pub connect_timeout: Duration,
    /// Deadline of unary calls. Streams have none.
    pub request_timeout: Duration,
    /// HTTP/2 PING interval on the connection, idle or not.
    pub keepalive_interval: Duration,
    /// A PING unanswered this long ends the connection, and every call and stream on it.
    pub keepalive_timeout: Duration,
    /// Caps on each value decoded from the gateway (`[limits]`).
    pub limits: ValueLimits,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            endpoint: DEFAULT_ENDPOINT.into(),
            tls: None,
            api_key: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            limits: ValueLimits::DEFAULT,
        }
    }
}

impl ClientOptions {
    /// Plaintext options for an endpoint, without a key.
    pub fn plaintext(endpoint: impl Into<String>) -> Self {
        ClientOptions {
            endpoint: endpoint.into(),
            ..Default::default()
        }
    }

    pub fn with_api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    fn uri(&self) -> Result<String, GatewayError> {
        let ep = self.endpoint.trim();
        if ep.is_empty() {
            return Err(GatewayError::Config("the gateway endpoint is empty".into()));
        }
        let (scheme, rest) = match ep.split_once("://") {
            Some((s, r)) => (s, r),
            None => (if self.tls.is_some() { "https" } else { "http" }, ep),
        };
        match (scheme, self.tls.is_some()) {
            ("http", false) | ("https", true) => {}
            ("http", true) => {
                return Err(GatewayError::Config(format!(
                    "endpoint {ep} says http:// but TLS is configured"
                )))
            }
            ("https", false) => {
                return Err(GatewayError::Config(format!(
                    "endpoint {ep} says https:// but TLS is not configured"
                )))
            }
            (s, _) => {
                return Err(GatewayError::Config(format!(
                    "endpoint {ep}: unsupported scheme {s}://"
                )))
            }
        }
        Ok(format!("{scheme}://{rest}"))
    }
}

/// Adds `authorization: Bearer <key>` to every call and stream.
#[derive(Clone)]
pub(crate) struct Auth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub(crate) type AuthChannel = InterceptedService<Channel, Auth>;

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

    /// The alarm feed: every active alarm, one `SnapshotComplete`, then transitions.
    pub async fn stream_alarms(&self, filter_prefix: &str) -> Result<AlarmFeed, GatewayError> {
        const CALL: &str = "StreamAlarms";
        let stream = self
            .gw
            .clone()
            .stream_alarms(req(
                pb::StreamAlarmsRequest {
                    client_correlation_id: String::new(),
                    alarm_filter_prefix: filter_prefix.to_string(),
                },
                None,
            ))
            .await
            .map_err(|s| GatewayError::from_status(CALL, s))?
            .into_inner();
        Ok(AlarmFeed {
            inner: stream,
            decoder: FeedDecoder::new(self.settings.limits),
        })
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

/// An open gateway session. MXAccess handles belong to it and die with it.
/// Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct Session {
    client: GatewayClient,
    info: SessionInfo,
    correlation: Arc<AtomicU64>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.info.session_id)
            .finish_non_exhaustive()
    }
}

fn mx_failure(reply: &pb::MxCommandReply) -> MxAccessFailure {
    MxAccessFailure {
        hresult: reply.hresult,
        statuses: statuses_from_pb(&reply.statuses),
        message: peer_text(if reply.diagnostic_message.is_empty() {
            reply
                .protocol_status
                .as_ref()
                .map_or("", |p| p.message.as_str())
        } else {
            &reply.diagnostic_message
        }),
    }
}

fn entry_error(message: String, hresult: i32, statuses: &[pb::MxStatusProxy]) -> BulkEntryError {
    BulkEntryError {
        message: peer_text(&message),
        hresult,
        statuses: statuses_from_pb(statuses),
    }
}

impl Session {
    pub fn id(&self) -> &str {
        &self.info.session_id
    }

    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The client this session was opened on.
    pub fn client(&self) -> &GatewayClient {
        &self.client
    }

    /// Close the session; returns the final state the gateway reports.
    pub async fn close(&self) -> Result<SessionState, GatewayError> {
        self.client.close_session(&self.info.session_id).await
    }

    /// Run one command and check all three layers of the reply.
    async fn invoke(
        &self,
        call: &'static str,
        kind: pb::MxCommandKind,
        payload: Payload,
    ) -> Result<pb::MxCommandReply, GatewayError> {
        let corr = self.correlation.fetch_add(1, Ordering::Relaxed);
        let request = pb::MxCommandRequest {
            session_id: self.info.session_id.clone(),
            client_correlation_id: format!("mxpva-{corr}"),
            command: Some(pb::MxCommand {
                kind: kind as i32,
                payload: Some(payload),
            }),
        };
        let reply = self
            .client
            .gw
            .clone()
            .invoke(req(request, Some(self.client.request_timeout)))
            .await
            .map_err(|s| GatewayError::from_status(call, s))?
            .into_inner();
        let Some(ps) = reply.protocol_status.as_ref() else {
            return Err(GatewayError::Protocol {
                call,
                message: "reply without protocol_status".into(),
            });
        };
        match ProtocolCode::from_pb(ps.code) {
            ProtocolCode::Ok => {}
            ProtocolCode::MxAccessFailure => {
                return Err(GatewayError::MxAccess {
                    call,
                    failure: mx_failure(&reply),
                })
            }
            code => {
                return Err(GatewayError::Refused {
                    call,
                    code,
                    message: peer_text(&ps.message),
                })
            }
        }
        if reply.hresult < 0
            || reply
                .statuses
                .iter()
                .map(status_from_pb)
                .any(|s| !s.is_ok())
        {
            return Err(GatewayError::MxAccess {
                call,
                failure: mx_failure(&reply),
            });
        }
        Ok(reply)
    }

    /// `Register(client_name)`: the server handle for the rest of the calls.
    pub async fn register(&self, client_name: &str) -> Result<ServerHandle, GatewayError> {
        const CALL: &str = "Register";
        let reply = self
            .invoke(
                CALL,
                pb::MxCommandKind::Register,
                Payload::Register(pb::RegisterCommand {
                    client_name: client_name.into(),
                }),
            )
            .await?;
        match reply.reply {
            Some(Reply::Register(r)) => Ok(ServerHandle(r.server_handle)),
            _ => Err(GatewayError::Protocol {
                call: CALL,
                message: "Register reply without a server handle".into(),
            }),
        }
    }

    pub async fn unregister(&self, server: ServerHandle) -> Result<(), GatewayError> {
        self.invoke(
            "Unregister",
            pb::MxCommandKind::Unregister,
            Payload::Unregister(pb::UnregisterCommand {
                server_handle: server.0,
            }),
        )
        .await
        .map(drop)
    }

    fn item_handle(
        call: &'static str,
        reply: pb::MxCommandReply,
    ) -> Result<ItemHandle, GatewayError> {
        match reply.reply {
            Some(Reply::AddItem(r)) => Ok(ItemHandle(r.item_handle)),
            _ => Err(GatewayError::Protocol {
                call,
                message: "reply without an item handle".into(),
            }),
        }
    }

    /// `AddItem(server, reference)`. References: `Obj.Attr`, `Obj.Attr[]` (a
    /// whole array), `Obj.Attr[N]` (1-based element).
    pub async fn add_item(
        &self,
        server: ServerHandle,
        reference: &str,
    ) -> Result<ItemHandle, GatewayError> {
        const CALL: &str = "AddItem";
        let reply = self
            .invoke(
                CALL,
                pb::MxCommandKind::AddItem,
                Payload::AddItem(pb::AddItemCommand {
                    server_handle: server.0,
                    item_definition: reference.into(),
                }),
            )
            .await?;
        Self::item_handle(CALL, reply)
    }

    /// `AddItem2(server, reference, context)`.
    pub async fn add_item2(
        &self,
        server: ServerHandle,
        reference: &str,
        context: &str,
    ) -> Result<ItemHandle, GatewayError> {
        const CALL: &str = "AddItem2";
        let reply = self
            .invoke(
                CALL,
                pb::MxCommandKind::AddItem2,
                Payload::AddItem2(pb::AddItem2Command {
                    server_handle: server.0,
                    item_definition: reference.into(),
                    context: context.into(),
                }),
            )
            .await?;
        Self::item_handle(CALL, reply)
    }

    /// `AddBufferedItem(server, reference)`: after Advise, changes arrive as
    /// [`BufferedDataChange`] batches every buffered update interval.
    pub async fn add_buffered_item(
        &self,
        server: ServerHandle,
        reference: &str,
    ) -> Result<ItemHandle, GatewayError> {
        const CALL: &str = "AddBufferedItem";
        let reply = self
            .invoke(
                CALL,
                pb::MxCommandKind::AddBufferedItem,
                Payload::AddBufferedItem(pb::AddBufferedItemCommand {
                    server_handle: server.0,
                    item_definition: reference.into(),
                }),
            )
            .await?;
        Self::item_handle(CALL, reply)
    }

    /// `SetBufferedUpdateInterval(server, interval)` for the buffered items of `server`.
    pub async fn set_buffered_update_interval(
        &self,
        server: ServerHandle,
        interval: Duration,
    ) -> Result<(), GatewayError> {
        const CALL: &str = "SetBufferedUpdateInterval";
        let interval_ms =
            u32::try_from(interval.as_millis()).map_err(|_| GatewayError::InvalidArgument {
                call: CALL,
                message: "interval too long".into(),
            })?;
        let c = pb::SetBufferedUpdateIntervalCommand {
            server_handle: server.0,
            interval_ms,
        };
        self.invoke(
            CALL,
            pb::MxCommandKind::SetBufferedUpdateInterval,
            Payload::SetBufferedUpdateInterval(c),
        )
        .await
        .map(drop)
    }

    pub async fn remove_item(
        &self,
        server: ServerHandle,
        item: ItemHandle,
    ) -> Result<(), GatewayError> {
        let c = pb::RemoveItemCommand {
            server_handle: server.0,
            item_handle: item.0,
        };
        self.invoke(
            "RemoveItem",
            pb::MxCommandKind::RemoveItem,
            Payload::RemoveItem(c),
        )
        .await
        .map(drop)
    }

    pub async fn advise(&self, server: ServerHandle, item: ItemHandle) -> Result<(), GatewayError> {
        let c = pb::AdviseCommand {
            server_handle: server.0,
            item_handle: item.0,
        };
        self.invoke("Advise", pb::MxCommandKind::Advise, Payload::Advise(c))
            .await
            .map(drop)
    }

    pub async fn advise_supervisory(
        &self,
        server: ServerHandle,
        item: ItemHandle,
    ) -> Result<(), GatewayError> {
        let c = pb::AdviseSupervisoryCommand {
            server_handle: server.0,
            item_handle: item.0,
        };
        self.invoke(
            "AdviseSupervisory",
            pb::MxCommandKind::AdviseSupervisory,
            Payload::AdviseSupervisory(c),
        )
        .await
        .map(drop)
    }

    pub async fn unadvise(
        &self,
        server: ServerHandle,
        item: ItemHandle,
    ) -> Result<(), GatewayError> {
        let c = pb::UnAdviseCommand {
            server_handle: server.0,
            item_handle: item.0,
        };
        self.invoke(
            "UnAdvise",
            pb::MxCommandKind::UnAdvise,
            Payload::UnAdvise(c),
        )
        .await
        .map(drop)
    }

    /// `AuthenticateUser(server, user, password)`: a user id for secured writes.
    pub async fn authenticate_user(
        &self,
        server: ServerHandle,
        user: &str,
        password: &str,
    ) -> Result<UserId, GatewayError> {
        const CALL: &str = "AuthenticateUser";
        let reply = self
            .invoke(
                CALL,
                pb::MxCommandKind::AuthenticateUser,
                Payload::AuthenticateUser(pb::AuthenticateUserCommand {
                    server_handle: server.0,
                    user_name: user.into(),
                    password: password.into(),
                }),
            )
            .await?;
        match reply.reply {
            Some(Reply::AuthenticateUser(r)) => Ok(UserId(r.user_id)),
            _ => Err(GatewayError::Protocol {
                call: CALL,
                message: "reply without a user id".into(),
            }),
        }
    }

    fn encode_value(call: &'static str, v: &MxValue) -> Result<pb::MxValue, GatewayError> {
        v.check_sendable()
            .map_err(|message| GatewayError::InvalidArgument { call, message })?;
        Ok(value_to_pb(v, None))
    }

    /// Send one write. `Ok(())` means the gateway accepted it; whether System
    /// Platform applied it arrives later as a [`WriteComplete`] event for the item.
    ///
    /// `entry.user` is the user id (the current user for the secured kinds),
    /// `entry.verifier` the verifier (secured kinds), `entry.timestamp` the
    /// value's time (the *2 kinds; None = now).
    pub async fn write(
        &self,
        server: ServerHandle,
        kind: WriteKind,
        entry: &WriteEntry,
    ) -> Result<(), GatewayError> {
        let call = match kind {
            WriteKind::Write => "Write",
            WriteKind::Write2 => "Write2",
            WriteKind::WriteSecured => "WriteSecured",
            WriteKind::WriteSecured2 => "WriteSecured2",
        };
        let value = Some(Self::encode_value(call, &entry.value)?);
        let ts = Some(time_to_pb(entry.timestamp.unwrap_or_else(SystemTime::now)));
        let (s, i) = (server.0, entry.item_handle.0);
        let (k, payload) = match kind {
            WriteKind::Write => (
                pb::MxCommandKind::Write,
                Payload::Write(pb::WriteCommand {
                    server_handle: s,
                    item_handle: i,
                    value,
                    user_id: entry.user.0,
                }),
            ),
            WriteKind::Write2 => (
                pb::MxCommandKind::Write2,
                Payload::Write2(pb::Write2Command {
                    server_handle: s,
                    item_handle: i,
                    value,
                    timestamp_value: ts,
                    user_id: entry.user.0,
                }),
            ),
            WriteKind::WriteSecured => (
                pb::MxCommandKind::WriteSecured,
                Payload::WriteSecured(pb::WriteSecuredCommand {
                    server_handle: s,
                    item_handle: i,
                    value,
                    current_user_id: entry.user.0,
                    verifier_user_id: entry.verifier.0,
                }),
            ),
            WriteKind::WriteSecured2 => (
                pb::MxCommandKind::WriteSecured2,
                Payload::WriteSecured2(pb::WriteSecured2Command {
                    server_handle: s,
                    item_handle: i,
                    value,
                    timestamp_value: ts,
                    current_user_id: entry.user.0,
                    verifier_user_id: entry.verifier.0,
                }),
            ),
        };
        self.invoke(call, k, payload).await.map(drop)
    }

    fn subscribe_results(
        call: &'static str,
        reply: pb::MxCommandReply,
    ) -> Result<Vec<SubscribeResult>, GatewayError> {
        match reply.reply {
            Some(Reply::BulkSubscribe(r)) => Ok(r
                .results
                .into_iter()
                .map(|r| SubscribeResult {
                    tag: r.tag_address,
                    item_handle: ItemHandle(r.item_handle),
                    outcome: if r.was_successful {
                        Ok(())
                    } else {
                        Err(entry_error(r.error_message, r.hresult, &r.statuses))
                    },
                })
                .collect()),
            _ => Err(GatewayError::Protocol {
                call,
                message: "bulk reply without results".into(),
            }),
        }
    }

    async fn bulk_by_tag(
        &self,
        call: &'static str,
        kind: pb::MxCommandKind,
        server: ServerHandle,
        tags: &[String],
    ) -> Result<Vec<SubscribeResult>, GatewayError> {
        let (s, t) = (server.0, tags.to_vec());
        let payload = match kind {
            pb::MxCommandKind::AddItemBulk => Payload::AddItemBulk(pb::AddItemBulkCommand {
                server_handle: s,
                tag_addresses: t,
            }),
            _ => Payload::SubscribeBulk(pb::SubscribeBulkCommand {
                server_handle: s,
                tag_addresses: t,
            }),
        };
        let reply = self.invoke(call, kind, payload).await?;
        let mut results = Self::subscribe_results(call, reply)?;
        if results.len() != tags.len() {
            return Err(GatewayError::Protocol {
                call,
                message: format!("{} results for {} entries", results.len(), tags.len()),
            });
        }
        refuse_shared_handles(&mut results);
        Ok(results)
    }

    async fn bulk_by_handle(
        &self,
        call: &'static str,
        kind: pb::MxCommandKind,
        server: ServerHandle,
        items: &[ItemHandle],
    ) -> Result<Vec<SubscribeResult>, GatewayError> {
        let (s, h): (i32, Vec<i32>) = (server.0, items.iter().map(|i| i.0).collect());
        let payload = match kind {
            pb::MxCommandKind::AdviseItemBulk => {
                Payload::AdviseItemBulk(pb::AdviseItemBulkCommand {
                    server_handle: s,
                    item_handles: h,
                })
            }
            pb::MxCommandKind::RemoveItemBulk => {
                Payload::RemoveItemBulk(pb::RemoveItemBulkCommand {
                    server_handle: s,
                    item_handles: h,
                })
            }
            pb::MxCommandKind::UnAdviseItemBulk => {
                Payload::UnAdviseItemBulk(pb::UnAdviseItemBulkCommand {
                    server_handle: s,
                    item_handles: h,
                })
            }
            _ => Payload::UnsubscribeBulk(pb::UnsubscribeBulkCommand {
                server_handle: s,
                item_handles: h,
            }),
        };
        let reply = self.invoke(call, kind, payload).await?;
        let results = Self::subscribe_results(call, reply)?;
        if results.len() != items.len() {
            return Err(GatewayError::Protocol {
                call,
                message: format!("{} results for {} entries", results.len(), items.len()),
            });
        }
        Ok(results)
    }

    /// AddItemBulk: one result per tag, in order.
    pub async fn add_item_bulk(
        &self,
        server: ServerHandle,
        tags: &[String],
    ) -> Result<Vec<SubscribeResult>, GatewayError> {
        self.bulk_by_tag("AddItemBulk", pb::MxCommandKind::AddItemBulk, server, tags)
            .await
    }

    /// SubscribeBulk (AddItem + Advise per tag): one result per tag, in order.
    /// Denied or failed entries come back in place with `outcome: Err`.
    pub async fn subscribe_bulk(
        &self,
        server: ServerHandle,
        tags: &[String],
    ) -> Result<Vec<SubscribeResult>, GatewayError> {
        self.bulk_by_tag(
            "SubscribeBulk",
            pb::MxCommandKind::SubscribeBulk,
            server,
            tags,
        )
        .await
    }

    /// SubscribeBulk in chunks of at most `chunk` tags (one round trip each),
    /// results concatenated in order. A chunk size of 0 is treated as 500.
    pub async fn subscribe_bulk_chunked(
        &self,
        server: ServerHandle,
        tags: &[String],
        chunk: usize,
    ) -> Result<Vec<SubscribeResult>, GatewayError> {
        let chunk = if chunk == 0 { 500 } else { chunk };
        let mut out = Vec::with_capacity(tags.len());
        for part in tags.chunks(chunk) {
            out.extend(self.subscribe_bulk(server, part).await?);
        }
        refuse_shared_handles(&mut out);
        Ok(out)
    }

    pub async fn advise_item_bulk(
        &self,
        server: ServerHandle,
        items: &[ItemHandle],
    ) -> Result<Vec<SubscribeResult>, GatewayError> {
        self.bulk_by_handle(
            "AdviseItemBulk",
            pb::MxCommandKind::AdviseItemBulk,
            server,
            items,
        )
        .await
    }

    pub async fn remove_item_bulk(
        &self,
        server: ServerHandle,
        items: &[ItemHandle],
    ) -> Result<Vec<SubscribeResult>, GatewayError> {
        self.bulk_by_handle(
            "RemoveItemBulk",
            pb::MxCommandKind::RemoveItemBulk,
            server,
            items,
        )
        .await
    }

    pub async fn unadvise_item_bulk(
        &self,
        server: ServerHandle,
        items: &[ItemHandle],
    ) -> Result<Vec<SubscribeResult>, GatewayError> {
        self.bulk_by_handle(
            "UnAdviseItemBulk",
            pb::MxCommandKind::UnAdviseItemBulk,
            server,
            items,
        )
        .await
    }

    /// UnsubscribeBulk (UnAdvise + RemoveItem per item).
    pub async fn unsubscribe_bulk(
        &self,
        server: ServerHandle,
        items: &[ItemHandle],
    ) -> Result<Vec<SubscribeResult>, GatewayError> {
        self.bulk_by_handle(
            "UnsubscribeBulk",
            pb::MxCommandKind::UnsubscribeBulk,
            server,
            items,
        )
        .await
    }

    /// WriteBulk / Write2Bulk / WriteSecuredBulk / WriteSecured2Bulk: one
    /// result per entry, in order. Each accepted entry is later confirmed by
    /// an OnWriteComplete event.
    pub async fn write_bulk(
        &self,
        server: ServerHandle,
        kind: WriteKind,
        entries: &[WriteEntry],
    ) -> Result<Vec<BulkWriteResult>, GatewayError> {
        let call = match kind {
            WriteKind::Write => "WriteBulk",
            WriteKind::Write2 => "Write2Bulk",
            WriteKind::WriteSecured => "WriteSecuredBulk",
            WriteKind::WriteSecured2 => "WriteSecured2Bulk",
        };
        let mut values = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            e.value
                .check_sendable()
                .map_err(|m| GatewayError::InvalidArgument {
                    call,
                    message: format!("entry {i}: {m}"),
                })?;
            values.push(Some(value_to_pb(&e.value, None)));
        }
        let ts = |e: &WriteEntry| Some(time_to_pb(e.timestamp.unwrap_or_else(SystemTime::now)));
        let s = server.0;
        let (k, payload) = match kind {
            WriteKind::Write => (
                pb::MxCommandKind::WriteBulk,
                Payload::WriteBulk(pb::WriteBulkCommand {
                    server_handle: s,
                    entries: entries
                        .iter()
                        .zip(values)
                        .map(|(e, value)| pb::WriteBulkEntry {
                            item_handle: e.item_handle.0,
                            value,
                            user_id: e.user.0,
                        })
                        .collect(),
                }),
            ),
            WriteKind::Write2 => (
                pb::MxCommandKind::Write2Bulk,
                Payload::Write2Bulk(pb::Write2BulkCommand {
                    server_handle: s,
                    entries: entries
                        .iter()
                        .zip(values)
                        .map(|(e, value)| pb::Write2BulkEntry {
                            item_handle: e.item_handle.0,
                            value,
                            timestamp_value: ts(e),
                            user_id: e.user.0,
                        })
                        .collect(),
                }),
            ),
            WriteKind::WriteSecured => (
                pb::MxCommandKind::WriteSecuredBulk,
                Payload::WriteSecuredBulk(pb::WriteSecuredBulkCommand {
                    server_handle: s,
                    entries: entries
                        .iter()
                        .zip(values)
                        .map(|(e, value)| pb::WriteSecuredBulkEntry {
                            item_handle: e.item_handle.0,
                            value,
                            current_user_id: e.user.0,
                            verifier_user_id: e.verifier.0,
                        })
                        .collect(),
                }),
            ),
            WriteKind::WriteSecured2 => (
                pb::MxCommandKind::WriteSecured2Bulk,
                Payload::WriteSecured2Bulk(pb::WriteSecured2BulkCommand {
                    server_handle: s,
                    entries: entries
                        .iter()
                        .zip(values)
                        .map(|(e, value)| pb::WriteSecured2BulkEntry {
                            item_handle: e.item_handle.0,
                            value,
                            timestamp_value: ts(e),
                            current_user_id: e.user.0,
                            verifier_user_id: e.verifier.0,
                        })
                        .collect(),
                }),
            ),
        };
        let reply = self.invoke(call, k, payload).await?;
        let Some(Reply::BulkWrite(r)) = reply.reply else {
            return Err(GatewayError::Protocol {
                call,
                message: "bulk write reply without results".into(),
            });
        };
        if r.results.len() != entries.len() {
            return Err(GatewayError::Protocol {
                call,
                message: format!("{} results for {} entries", r.results.len(), entries.len()),
            });
        }
        Ok(r.results
            .into_iter()
            .map(|r| BulkWriteResult {
                item_handle: ItemHandle(r.item_handle),
                outcome: if r.was_successful {
                    Ok(())
                } else {
                    Err(entry_error(r.error_message, r.hresult, &r.statuses))
                },
            })
            .collect())
    }

    /// ReadBulk: the cached value of tags already advised in this session,
    /// otherwise a snapshot that leaves the session as it was. `timeout` is
    /// per tag; zero = the worker's default.
    pub async fn read_bulk(
        &self,
        server: ServerHandle,
        tags: &[String],
        timeout: Duration,
    ) -> Result<Vec<BulkReadResult>, GatewayError> {
        const CALL: &str = "ReadBulk";
        let timeout_ms =
            u32::try_from(timeout.as_millis()).map_err(|_| GatewayError::InvalidArgument {
                call: CALL,
                message: "timeout too long".into(),
            })?;
        let reply = self
            .invoke(
                CALL,
                pb::MxCommandKind::ReadBulk,
                Payload::ReadBulk(pb::ReadBulkCommand {
                    server_handle: server.0,
                    tag_addresses: tags.to_vec(),
                    timeout_ms,
                }),
            )
            .await?;
        let Some(Reply::BulkRead(r)) = reply.reply else {
            return Err(GatewayError::Protocol {
                call: CALL,
                message: "ReadBulk reply without results".into(),
            });
        };
        if r.results.len() != tags.len() {
            return Err(GatewayError::Protocol {
                call: CALL,
                message: format!("{} results for {} tags", r.results.len(), tags.len()),
            });
        }
        let limits = self.client.settings.limits;
        Ok(r.results
            .into_iter()
            .map(|r| {
                // A value that cannot be decoded fails its entry alone.
                let outcome = if r.was_successful {
                    read_value_from_pb(&r, &limits).map_err(|message| BulkEntryError {
                        message,
                        hresult: 0,
                        statuses: statuses_from_pb(&r.statuses),
                    })
                } else {
                    Err(entry_error(r.error_message, 0, &r.statuses))
                };
                BulkReadResult {
                    tag: r.tag_address,
                    outcome,
                }
            })
            .collect())
    }

    /// DrainEvents: take up to `max_events` queued events without a stream.
    pub async fn drain_events(&self, max_events: u32) -> Result<Vec<SessionEvent>, GatewayError> {
        const CALL: &str = "DrainEvents";
        let reply = self
            .invoke(
                CALL,
                pb::MxCommandKind::DrainEvents,
                Payload::DrainEvents(pb::DrainEventsCommand { max_events }),
            )
            .await?;
        let Some(Reply::DrainEvents(r)) = reply.reply else {
            return Err(GatewayError::Protocol {
                call: CALL,
                message: "DrainEvents reply without events".into(),
            });
        };
        let limits = self.client.settings.limits;
        Ok(r.events
            .into_iter()
            .map(|e| event_from_pb(e, &limits))
            .collect())
    }

    /// Attach the session's event stream. `after` = Some(n) resumes after
    /// worker sequence n (from the gateway's replay buffer); if those events
    /// are no longer retained, the first event is a [`SessionEvent::ReplayGap`].
    pub async fn events(&self, after: Option<u64>) -> Result<EventStream, GatewayError> {
        const CALL: &str = "StreamEvents";
        let stream = self
            .client
            .gw
            .clone()
            .stream_events(req(
                pb::StreamEventsRequest {
                    session_id: self.info.session_id.clone(),
                    after_worker_sequence: after,
                },
                None,
            ))
            .await
            .map_err(|s| GatewayError::from_status(CALL, s))?
            .into_inner();
        Ok(EventStream {
            inner: stream,
            last_sequence: after.unwrap_or(0),
            limits: self.client.settings.limits,
        })
    }
}

/// A session's event stream, in worker_sequence order.
pub struct EventStream {
    inner: tonic::Streaming<pb::MxEvent>,
    last_sequence: u64,
    /// Caps on each decoded value.
    limits: ValueLimits,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("last_sequence", &self.last_sequence)
            .finish()
    }
}

impl EventStream {
    /// The next event; `None` when the gateway ended the stream cleanly.
    /// An `Err` ends the stream (resume with [`Session::events`] and
    /// `Some(self.last_sequence())`). An event that cannot be decoded is not an
    /// error: it arrives as [`SessionEvent::Undecodable`].
    pub async fn next(&mut self) -> Option<Result<SessionEvent, GatewayError>> {
        const CALL: &str = "StreamEvents";
        match self.inner.message().await {
            Ok(Some(e)) => {
                let seq = e.worker_sequence;
                if e.replay_gap.is_none() {
                    if seq <= self.last_sequence && self.last_sequence != 0 {
                        return Some(Err(GatewayError::Protocol {
                            call: CALL,
                            message: format!(
                                "worker_sequence went from {} to {seq}",
                                self.last_sequence
                            ),
                        }));
                    }
                    self.last_sequence = seq;
                }
                Some(Ok(event_from_pb(e, &self.limits)))
            }
            Ok(None) => None,
            Err(s) => Some(Err(GatewayError::from_status(CALL, s))),
        }
    }

    /// The worker sequence of the last event received (or the resume point).
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }
}

/// The StreamAlarms feed.
pub struct AlarmFeed {
    inner: tonic::Streaming<pb::AlarmFeedMessage>,
    decoder: FeedDecoder,
}

impl fmt::Debug for AlarmFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AlarmFeed")
    }
}

impl AlarmFeed {
    /// The next feed message; `None` when the gateway ended the stream. A message that
    /// cannot be decoded (an unknown condition state, an unconvertible value) is skipped
    /// with a warning, once per alarm reference: one odd alarm does not end the feed.
    pub async fn next(&mut self) -> Option<Result<AlarmFeedItem, GatewayError>> {
        loop {
            match self.inner.message().await {
                Ok(Some(m)) => {
                    if let Some(item) = self.decoder.decode(m) {
                        return Some(Ok(item));
                    }
                }
                Ok(None) => return None,
                Err(s) => return Some(Err(GatewayError::from_status("StreamAlarms", s))),
            }
        }
    }
}

/// Decodes feed messages, skipping (and reporting once per reference) those it cannot.
struct FeedDecoder {
    /// Caps on each decoded value and string.
    limits: ValueLimits,
    /// References whose undecodable messages were reported already (at most
    /// [`FeedDecoder::MAX_REPORTED`]; past that, one more warning says so).
    reported: std::collections::HashSet<String>,
    /// The warning that no more references are reported was given.
    reported_full: bool,
}

impl FeedDecoder {
    const MAX_REPORTED: usize = 1024;

    fn new(limits: ValueLimits) -> Self {
        FeedDecoder {
            limits,
            reported: std::collections::HashSet::new(),
            reported_full: false,
        }
    }

    fn decode(&mut self, m: pb::AlarmFeedMessage) -> Option<AlarmFeedItem> {
        use pb::alarm_feed_message::Kind;
        let (reference, decoded) = match m.kind {
            Some(Kind::ActiveAlarm(a)) => (
                a.alarm_full_reference.clone(),
                active_alarm_from_pb(&a, &self.limits).map(AlarmFeedItem::Active),
            ),
            Some(Kind::SnapshotComplete(c)) => {
                return Some(AlarmFeedItem::SnapshotComplete {
                    active_alarm_count: c.active_alarm_count,
                })
            }
            Some(Kind::Transition(t)) => (
                t.alarm_full_reference.clone(),
                transition_from_pb(&t, &self.limits).map(AlarmFeedItem::Transition),
            ),
            None => (String::new(), Err("empty alarm feed message".to_string())),
        };
        match decoded {
            Ok(item) => Some(item),
            Err(message) => {
                let reference = peer_text(&reference);
                if self.reported.len() < Self::MAX_REPORTED {
                    if self.reported.insert(reference.clone()) {
                        tracing::warn!(%reference, %message, "undecodable alarm feed message skipped (reported once per reference)");
                    }
                } else if !std::mem::replace(&mut self.reported_full, true) {
                    tracing::warn!(
                        "more undecodable alarm feed messages are skipped without a warning"
                    );
                }
                None
            }
        }
    }
}

/// Exponential backoff for reconnecting: 250 ms doubling up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Self {
        Backoff {
            next: Duration::from_millis(250),
            max,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Call after a success.
    pub fn reset(&mut self) {
        self.next = Duration::from_millis(250);
    }
}

#[cfg(test)]
mod feed_tests {
    use super::*;
    use pb::alarm_feed_message::Kind;

    fn transition(reference: &str, state: i32) -> pb::AlarmFeedMessage {
        pb::AlarmFeedMessage {
            kind: Some(Kind::Transition(pb::OnAlarmTransitionEvent {
                alarm_full_reference: reference.into(),
                transition_kind: pb::AlarmTransitionKind::Raise as i32,
                condition_state: state,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn an_undecodable_alarm_is_skipped_and_reported_once() {
        let mut d = FeedDecoder::new(ValueLimits::DEFAULT);
        let ok = pb::AlarmConditionState::UnackAlm as i32;
        assert!(d.decode(transition("G!A.T.Odd", 99)).is_none());
        assert!(d.decode(transition("G!A.T.Odd", 99)).is_none());
        assert_eq!(d.reported.len(), 1);
        match d.decode(transition("G!A.T.HiHi", ok)) {
            Some(AlarmFeedItem::Transition(t)) => assert_eq!(t.reference, "G!A.T.HiHi"),
            other => panic!("{other:?}"),
        }
    }
}
