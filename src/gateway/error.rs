//! Errors of the gateway client, typed by layer: the transport (gRPC status),
//! the gateway's own verdict (protocol_status), and MXAccess (hresult and
//! statuses).
use std::fmt;

use super::types::MxStatus;

/// A gRPC status code, mirrored so that no tonic type leaves the module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcCode {
    Ok,
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl RpcCode {
    pub(crate) fn from_tonic(c: tonic::Code) -> Self {
        use tonic::Code as C;
        match c {
            C::Ok => RpcCode::Ok,
            C::Cancelled => RpcCode::Cancelled,
            C::Unknown => RpcCode::Unknown,
            C::InvalidArgument => RpcCode::InvalidArgument,
            C::DeadlineExceeded => RpcCode::DeadlineExceeded,
            C::NotFound => RpcCode::NotFound,
            C::AlreadyExists => RpcCode::AlreadyExists,
            C::PermissionDenied => RpcCode::PermissionDenied,
            C::ResourceExhausted => RpcCode::ResourceExhausted,
            C::FailedPrecondition => RpcCode::FailedPrecondition,
            C::Aborted => RpcCode::Aborted,
            C::OutOfRange => RpcCode::OutOfRange,
            C::Unimplemented => RpcCode::Unimplemented,
            C::Internal => RpcCode::Internal,
            C::Unavailable => RpcCode::Unavailable,
            C::DataLoss => RpcCode::DataLoss,
            C::Unauthenticated => RpcCode::Unauthenticated,
        }
    }
}

impl fmt::Display for RpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The gateway's protocol status codes (`ProtocolStatusCode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolCode {
    Unspecified,
    Ok,
    InvalidRequest,
    SessionNotFound,
    SessionNotReady,
    WorkerUnavailable,
    Timeout,
    Canceled,
    ProtocolViolation,
    MxAccessFailure,
    /// A code this client does not know.
    Other(i32),
}

impl ProtocolCode {
    pub(crate) fn from_pb(code: i32) -> Self {
        use super::pb::gw::ProtocolStatusCode as P;
        match P::try_from(code) {
            Ok(P::Unspecified) => ProtocolCode::Unspecified,
            Ok(P::Ok) => ProtocolCode::Ok,
            Ok(P::InvalidRequest) => ProtocolCode::InvalidRequest,
            Ok(P::SessionNotFound) => ProtocolCode::SessionNotFound,
            Ok(P::SessionNotReady) => ProtocolCode::SessionNotReady,
            Ok(P::WorkerUnavailable) => ProtocolCode::WorkerUnavailable,
            Ok(P::Timeout) => ProtocolCode::Timeout,
            Ok(P::Canceled) => ProtocolCode::Canceled,
            Ok(P::ProtocolViolation) => ProtocolCode::ProtocolViolation,
            Ok(P::MxaccessFailure) => ProtocolCode::MxAccessFailure,
            Err(_) => ProtocolCode::Other(code),
        }
    }
}

/// What MXAccess reported: the COM HRESULT and the status list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxAccessFailure {
    pub hresult: i32,
    pub statuses: Vec<MxStatus>,
    /// The gateway's diagnostic text, if any.
    pub message: String,
}

impl MxAccessFailure {
    /// The first failing status.
    pub fn status(&self) -> Option<&MxStatus> {
        self.statuses.iter().find(|s| !s.is_ok())
    }

    /// The MxStatusDetail name of the first failing status, e.g. "WriteAccessDenied".
    pub fn detail_name(&self) -> Option<&'static str> {
        self.status().and_then(MxStatus::detail_name)
    }
}

/// Names of the HRESULTs MXAccess commonly returns.
pub fn hresult_name(hr: i32) -> Option<&'static str> {
    Some(match hr as u32 {
        0 => "S_OK",
        1 => "S_FALSE",
        0x8000_4005 => "E_FAIL",
        0x8007_0057 => "E_INVALIDARG",
        0x8000_4001 => "E_NOTIMPL",
        0x8007_0005 => "E_ACCESSDENIED",
        0x8000_FFFF => "E_UNEXPECTED",
        0x8007_000E => "E_OUTOFMEMORY",
        0x8004_0200 => "E_MXACCESS_FAILURE",
        _ => return None,
    })
}

impl fmt::Display for MxAccessFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HRESULT 0x{:08X}", self.hresult as u32)?;
        if let Some(n) = hresult_name(self.hresult) {
            write!(f, " ({n})")?;
        }
        if let Some(s) = self.status() {
            write!(f, "; {s}")?;
        }
        if !self.message.is_empty() {
            write!(f, "; {}", self.message)?;
        }
        Ok(())
    }
}

/// An error of the gateway client.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The client options are unusable (bad endpoint, unreadable CA file, empty key, ...).
    #[error("invalid gateway client configuration: {0}")]
    Config(String),
    /// The channel could not be established.
    #[error("cannot connect to the gateway at {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
    /// The call failed at the gRPC layer: transport failure, or a gRPC status
    /// from the gateway (UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, ...).
    #[error("{call}: gRPC {code}: {message}")]
    Rpc {
        call: &'static str,
        code: RpcCode,
        message: String,
    },
    /// The gateway answered but refused the request (protocol_status not OK).
    #[error("{call}: the gateway refused the request ({code:?}): {message}")]
    Refused {
        call: &'static str,
        code: ProtocolCode,
        message: String,
    },
    /// The gateway ran the MXAccess call and MXAccess failed.
    #[error("{call}: MXAccess failed: {failure}")]
    MxAccess {
        call: &'static str,
        failure: MxAccessFailure,
    },
    /// The request was rejected by this client before sending (e.g. NaN).
    #[error("{call}: {message}")]
    InvalidArgument { call: &'static str, message: String },
    /// The gateway sent something this client cannot interpret.
    #[error("{call}: unexpected reply from the gateway: {message}")]
    Protocol { call: &'static str, message: String },
}

impl GatewayError {
    pub(crate) fn from_status(call: &'static str, s: tonic::Status) -> Self {
        GatewayError::Rpc {
            call,
            code: RpcCode::from_tonic(s.code()),
            message: s.message().to_string(),
        }
    }

    /// The gRPC code, when the error is at the gRPC layer.
    pub fn rpc_code(&self) -> Option<RpcCode> {
        match self {
            GatewayError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the session this call used is gone (not found, faulted,
    /// worker lost, gateway restarted): open a new session and resubscribe.
    pub fn is_session_lost(&self) -> bool {
        match self {
            GatewayError::Rpc { code, .. } => {
                matches!(
                    code,
                    RpcCode::NotFound
                        | RpcCode::Aborted
                        | RpcCode::Unavailable
                        | RpcCode::FailedPrecondition
                )
            }
            GatewayError::Refused { code, .. } => matches!(
                code,
                ProtocolCode::SessionNotFound
                    | ProtocolCode::SessionNotReady
                    | ProtocolCode::WorkerUnavailable
            ),
            GatewayError::Connect { .. } => true,
            _ => false,
        }
    }

    /// True when retrying later (with backoff) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            GatewayError::Connect { .. } => true,
            GatewayError::Rpc { code, .. } => matches!(
                code,
                RpcCode::Unavailable
                    | RpcCode::DeadlineExceeded
                    | RpcCode::Aborted
                    | RpcCode::ResourceExhausted
                    | RpcCode::Unknown
            ),
            GatewayError::Refused { code, .. } => {
                matches!(
                    code,
                    ProtocolCode::WorkerUnavailable
                        | ProtocolCode::Timeout
                        | ProtocolCode::SessionNotReady
                )
            }
            _ => false,
        }
    }

    /// The MXAccess failure, when MXAccess failed.
    pub fn mx_failure(&self) -> Option<&MxAccessFailure> {
        match self {
            GatewayError::MxAccess { failure, .. } => Some(failure),
            _ => None,
        }
    }
}
