//! Which layer failed a write or an acknowledgement (issue 21): the audit outcome and the
//! client's message, kept apart by layer as the gateway layers its replies.
//!
//! - MXAccess (an MXAccess status: the call's, or a bulk entry's): System Platform
//!   refused it (`refused_by_system_platform`).
//! - The gateway's own verdict (a gRPC status such as PERMISSION_DENIED, or a
//!   `protocol_status` such as SESSION_NOT_READY; a bulk entry denied in place): it was
//!   not run (`refused_by_gateway`).
//! - The transport or the protocol (gRPC UNAVAILABLE, a deadline, a reply that cannot be
//!   read or has the wrong number of results): whether System Platform applied it is
//!   unknown (`gateway_error`), and the message says so. Such a write is never retried.
//! - mxpva's gateway client refused it before sending (a value MXAccess cannot carry):
//!   nothing was sent (`refused`).
//!
//! When in doubt (a code that could come after the gateway ran the call), the
//! outcome is `gateway_error`: a refusal says that nothing was applied.

use crate::gateway::{BulkEntryError, GatewayError, ProtocolCode, RpcCode};
use crate::pva::PutOutcome;

/// What failed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Failure<'a> {
    /// A whole call.
    Call(&'a GatewayError),
    /// One entry of the bulk call `call`.
    Entry {
        call: &'static str,
        error: &'a BulkEntryError,
    },
}

/// How a failure ends a put: its outcome and why (the cause, without the layer's words).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failed {
    pub outcome: PutOutcome,
    pub cause: String,
}

/// The layer that failed, and the cause as the client reads it.
pub(crate) fn classify(failure: Failure<'_>) -> Failed {
    use PutOutcome as O;
    let (outcome, cause) = match failure {
        Failure::Call(e) => {
            let outcome = match e {
                GatewayError::MxAccess { .. } => O::RefusedBySystemPlatform,
                GatewayError::Rpc { code, .. } => match code {
                    // The gateway's verdict, given before it ran anything.
                    RpcCode::PermissionDenied
                    | RpcCode::Unauthenticated
                    | RpcCode::InvalidArgument
                    | RpcCode::NotFound
                    | RpcCode::AlreadyExists
                    | RpcCode::FailedPrecondition => O::RefusedByGateway,
                    // Transport, or a code the gRPC library also gives after the server
                    // ran the call (a reply too large, a reset stream): unknown.
                    RpcCode::Ok
                    | RpcCode::Cancelled
                    | RpcCode::Unknown
                    | RpcCode::DeadlineExceeded
                    | RpcCode::ResourceExhausted
                    | RpcCode::Aborted
                    | RpcCode::OutOfRange
                    | RpcCode::Unimplemented
                    | RpcCode::Internal
                    | RpcCode::Unavailable
                    | RpcCode::DataLoss => O::GatewayError,
                },
                GatewayError::Refused { code, .. } => match code {
                    ProtocolCode::InvalidRequest
                    | ProtocolCode::SessionNotFound
                    | ProtocolCode::SessionNotReady
                    | ProtocolCode::ProtocolViolation => O::RefusedByGateway,
                    ProtocolCode::MxAccessFailure => O::RefusedBySystemPlatform,
                    // The worker timed out, went away or was cancelled with the call
                    // perhaps run; a code this client does not know.
                    ProtocolCode::Timeout
                    | ProtocolCode::Canceled
                    | ProtocolCode::WorkerUnavailable
                    | ProtocolCode::Unspecified
                    | ProtocolCode::Ok
                    | ProtocolCode::Other(_) => O::GatewayError,
                },
                GatewayError::Protocol { .. } | GatewayError::Connect { .. } => O::GatewayError,
                GatewayError::InvalidArgument { .. } | GatewayError::Config(_) => O::Refused,
            };
            let cause = match e.mx_failure().and_then(|f| f.detail_name()) {
                Some(name) => name.to_string(),
                None => e.to_string(),
            };
            (outcome, cause)
        }
        // MXAccess reports through its status list; an entry without a failing status
        // is the gateway's own (denied in place by the key's constraints, invalid).
        Failure::Entry { call, error } => match error.statuses.iter().find(|s| !s.is_ok()) {
            Some(status) => (
                O::RefusedBySystemPlatform,
                status
                    .detail_name()
                    .map_or_else(|| format!("{call}: {error}"), str::to_string),
            ),
            None => (O::RefusedByGateway, format!("{call}: {error}")),
        },
    };
    Failed { outcome, cause }
}

impl Failed {
    /// The client's message (without the PV's name) for a failed `what` ("write",
    /// "acknowledgement").
    pub fn message(&self, what: &str) -> String {
        message(self.outcome, what, &self.cause)
    }
}

/// The client's message for causes of one `outcome`.
pub(crate) fn message(outcome: PutOutcome, what: &str, cause: &str) -> String {
    match outcome {
        PutOutcome::RefusedBySystemPlatform => {
            format!("System Platform refused the {what}: {cause}")
        }
        PutOutcome::RefusedByGateway => format!("the gateway refused the {what}: {cause}"),
        PutOutcome::Refused => format!("the {what} was not sent: {cause}"),
        PutOutcome::GatewayError
        | PutOutcome::Confirmed
        | PutOutcome::TimedOut
        | PutOutcome::Lost => format!(
            "the {what} call failed ({cause}): whether System Platform applied it is unknown"
        ),
    }
}

/// Failures of several calls for one put (an acknowledgement of several alarms), each
/// with what it was for: the put's outcome (the layer whose effect is least known first)
/// and its message, grouped by layer; `None` when nothing failed.
pub(crate) fn combine(
    what: &str,
    mut failed: Vec<(String, Failed)>,
) -> Option<(PutOutcome, String)> {
    let rank = |o: PutOutcome| match o {
        PutOutcome::GatewayError => 0,
        PutOutcome::RefusedBySystemPlatform => 1,
        PutOutcome::RefusedByGateway => 2,
        _ => 3,
    };
    failed.sort_by_key(|(_, f)| rank(f.outcome));
    let outcome = failed.first()?.1.outcome;
    let groups: Vec<String> = failed
        .chunk_by(|(_, a), (_, b)| a.outcome == b.outcome)
        .map(|group| {
            let causes: Vec<String> = group
                .iter()
                .map(|(of, f)| format!("{of}: {}", f.cause))
                .collect();
            let layer = group.first().map_or(outcome, |(_, f)| f.outcome);
            message(layer, what, &causes.join(", "))
        })
        .collect();
    Some((outcome, groups.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{detail, MxAccessFailure, MxStatus, MxStatusCategory};

    fn write(e: GatewayError) -> (&'static str, String) {
        let f = classify(Failure::Call(&e));
        (f.outcome.as_str(), f.message("write"))
    }

    fn rpc(code: RpcCode) -> GatewayError {
        GatewayError::Rpc {
            call: "Write",
            code,
            message: "m".into(),
        }
    }

    fn refused(code: ProtocolCode) -> GatewayError {
        GatewayError::Refused {
            call: "Write",
            code,
            message: "m".into(),
        }
    }

    const UNKNOWN: &str = "whether System Platform applied it is unknown";

    #[test]
    fn a_transport_failure_is_a_gateway_error_whose_effect_is_unknown() {
        for code in [
            RpcCode::Unavailable,
            RpcCode::DeadlineExceeded,
            RpcCode::Cancelled,
            RpcCode::Unknown,
            RpcCode::Internal,
            RpcCode::Aborted,
            RpcCode::DataLoss,
            RpcCode::ResourceExhausted,
            RpcCode::OutOfRange,
            RpcCode::Unimplemented,
        ] {
            let (outcome, message) = write(rpc(code));
            assert_eq!(outcome, "gateway_error", "{code}");
            assert_eq!(
                message,
                format!("the write call failed (Write: gRPC {code}: m): {UNKNOWN}")
            );
        }
        let (outcome, message) = write(GatewayError::Connect {
            endpoint: "http://gw:5000".into(),
            message: "refused".into(),
        });
        assert_eq!(outcome, "gateway_error");
        assert!(message.ends_with(UNKNOWN), "{message}");
    }

    #[test]
    fn a_reply_that_cannot_be_read_is_a_gateway_error() {
        let (outcome, message) = write(GatewayError::Protocol {
            call: "WriteBulk",
            message: "1 results for 2 entries".into(),
        });
        assert_eq!(outcome, "gateway_error");
        assert_eq!(
            message,
            format!(
                "the write call failed (WriteBulk: unexpected reply from the gateway: \
                 1 results for 2 entries): {UNKNOWN}"
            )
        );
    }

    #[test]
    fn the_gateways_own_status_is_a_refusal_by_the_gateway() {
        for code in [
            RpcCode::PermissionDenied,
            RpcCode::Unauthenticated,
            RpcCode::InvalidArgument,
            RpcCode::NotFound,
            RpcCode::AlreadyExists,
            RpcCode::FailedPrecondition,
        ] {
            let (outcome, message) = write(rpc(code));
            assert_eq!(outcome, "refused_by_gateway", "{code}");
            assert_eq!(
                message,
                format!("the gateway refused the write: Write: gRPC {code}: m")
            );
        }
        for code in [
            ProtocolCode::InvalidRequest,
            ProtocolCode::SessionNotFound,
            ProtocolCode::SessionNotReady,
            ProtocolCode::ProtocolViolation,
        ] {
            let (outcome, message) = write(refused(code));
            assert_eq!(outcome, "refused_by_gateway", "{code:?}");
            assert_eq!(
                message,
                format!(
                    "the gateway refused the write: Write: the gateway refused the request \
                     ({code:?}): m"
                )
            );
        }
    }

    #[test]
    fn a_gateway_status_that_leaves_the_call_perhaps_run_is_a_gateway_error() {
        for code in [
            ProtocolCode::Timeout,
            ProtocolCode::Canceled,
            ProtocolCode::WorkerUnavailable,
            ProtocolCode::Unspecified,
            ProtocolCode::Other(77),
        ] {
            let (outcome, message) = write(refused(code));
            assert_eq!(outcome, "gateway_error", "{code:?}");
            assert!(message.ends_with(UNKNOWN), "{message}");
        }
    }

    #[test]
    fn an_mxaccess_status_is_a_refusal_by_system_platform() {
        let denied = MxStatus::failure(
            MxStatusCategory::SecurityError,
            detail::WRITE_ACCESS_DENIED,
            "no",
        );
        let (outcome, message) = write(GatewayError::MxAccess {
            call: "Write",
            failure: MxAccessFailure {
                hresult: 0x8007_0005_u32 as i32,
                statuses: vec![denied],
                message: String::new(),
            },
        });
        assert_eq!(outcome, "refused_by_system_platform");
        assert_eq!(
            message,
            "System Platform refused the write: WriteAccessDenied"
        );
        // Without a status MXAccess names: the whole text.
        let (outcome, message) = write(GatewayError::MxAccess {
            call: "Write",
            failure: MxAccessFailure {
                hresult: 0x8000_4005_u32 as i32,
                statuses: vec![],
                message: "broken".into(),
            },
        });
        assert_eq!(outcome, "refused_by_system_platform");
        assert_eq!(
            message,
            "System Platform refused the write: Write: MXAccess failed: \
             HRESULT 0x80004005 (E_FAIL); broken"
        );
    }

    #[test]
    fn a_value_the_client_will_not_send_is_refused_by_mxpva() {
        let (outcome, message) = write(GatewayError::InvalidArgument {
            call: "Write",
            message: "NaN has no MXAccess representation".into(),
        });
        assert_eq!(outcome, "refused");
        assert_eq!(
            message,
            "the write was not sent: Write: NaN has no MXAccess representation"
        );
        let (outcome, _) = write(GatewayError::Config("no key".into()));
        assert_eq!(outcome, "refused");
    }

    #[test]
    fn a_bulk_entry_is_classified_by_its_own_layer() {
        let entry = |message: &str, hresult: i32, statuses: Vec<MxStatus>| {
            let error = BulkEntryError {
                message: message.into(),
                hresult,
                statuses,
            };
            let f = classify(Failure::Entry {
                call: "WriteBulk",
                error: &error,
            });
            (f.outcome.as_str(), f.message("write"))
        };
        // Denied in place by the API key (as the simulator and the gateway do it).
        assert_eq!(
            entry(
                "PERMISSION_DENIED: API key k may not write Bad.A1",
                0x8007_0005_u32 as i32,
                vec![]
            ),
            (
                "refused_by_gateway",
                "the gateway refused the write: WriteBulk: PERMISSION_DENIED: \
                 API key k may not write Bad.A1"
                    .into()
            )
        );
        assert_eq!(
            entry("INVALID_REQUEST: no value", 0, vec![MxStatus::ok()]).0,
            "refused_by_gateway"
        );
        // An MXAccess status.
        let status = MxStatus::failure(
            MxStatusCategory::ConfigurationError,
            detail::NOT_WRITEABLE,
            "not writeable",
        );
        assert_eq!(
            entry("not writeable", 0x8000_4005_u32 as i32, vec![status]),
            (
                "refused_by_system_platform",
                "System Platform refused the write: NotWriteable".into()
            )
        );
    }

    #[test]
    fn an_acknowledgement_names_each_alarm_under_the_layer_that_failed_it() {
        let ack = |e: GatewayError| classify(Failure::Call(&e));
        let mx = |d| GatewayError::MxAccess {
            call: "AcknowledgeAlarm",
            failure: MxAccessFailure {
                hresult: 0x8000_4005_u32 as i32,
                statuses: vec![MxStatus::failure(MxStatusCategory::OperationalError, d, "")],
                message: String::new(),
            },
        };
        assert_eq!(combine("acknowledgement", vec![]), None);
        assert_eq!(
            combine(
                "acknowledgement",
                vec![("A.HiHi".into(), ack(mx(detail::WRITE_ACCESS_DENIED)))]
            ),
            Some((
                PutOutcome::RefusedBySystemPlatform,
                "System Platform refused the acknowledgement: A.HiHi: WriteAccessDenied".into()
            ))
        );
        // Mixed: the unknown one decides the outcome; each keeps its own layer's words.
        let got = combine(
            "acknowledgement",
            vec![
                ("A.Hi".into(), ack(rpc(RpcCode::PermissionDenied))),
                ("A.HiHi".into(), ack(mx(detail::WRITE_ACCESS_DENIED))),
                ("A.Lo".into(), ack(rpc(RpcCode::DeadlineExceeded))),
                ("A.LoLo".into(), ack(mx(detail::NOT_WRITEABLE))),
            ],
        );
        assert_eq!(
            got,
            Some((
                PutOutcome::GatewayError,
                format!(
                    "the acknowledgement call failed (A.Lo: Write: gRPC DeadlineExceeded: m): \
                     {UNKNOWN}; System Platform refused the acknowledgement: A.HiHi: \
                     WriteAccessDenied, A.LoLo: NotWriteable; the gateway refused the \
                     acknowledgement: A.Hi: Write: gRPC PermissionDenied: m"
                )
            ))
        );
    }
}
