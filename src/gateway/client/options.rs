//! How to reach the gateway: [`ClientOptions`], [`TlsOptions`], the [`ApiKey`] and the
//! interceptor that puts it in the `authorization` header.
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::gateway::error::GatewayError;
use crate::gateway::limits::ValueLimits;

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

    pub(super) fn uri(&self) -> Result<String, GatewayError> {
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
pub(crate) struct Auth(pub(super) Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub(crate) type AuthChannel = InterceptedService<Channel, Auth>;
