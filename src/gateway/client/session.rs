//! An open [`Session`]: running a command and checking its reply, the one-item
//! commands and writes, DrainEvents.
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{req, GatewayClient};
use crate::gateway::convert::*;
use crate::gateway::error::*;
use crate::gateway::limits::peer_text;
use crate::gateway::pb::gw as pb;
use crate::gateway::pb::gw::mx_command::Payload;
use crate::gateway::pb::gw::mx_command_reply::Reply;
use crate::gateway::types::*;

/// An open gateway session. MXAccess handles belong to it and die with it.
/// Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct Session {
    pub(super) client: GatewayClient,
    pub(super) info: SessionInfo,
    pub(super) correlation: Arc<AtomicU64>,
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

pub(super) fn entry_error(
    message: String,
    hresult: i32,
    statuses: &[pb::MxStatusProxy],
) -> BulkEntryError {
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
    pub(super) async fn invoke(
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
}

impl Session {
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
}
