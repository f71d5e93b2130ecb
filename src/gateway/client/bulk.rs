//! The bulk commands of a [`Session`]: one round trip for many tags or items, one
//! result per entry, in order.
use std::time::{Duration, SystemTime};

use super::session::entry_error;
use super::Session;
use crate::gateway::convert::*;
use crate::gateway::error::*;
use crate::gateway::handles::refuse_shared_handles;
use crate::gateway::pb::gw as pb;
use crate::gateway::pb::gw::mx_command::Payload;
use crate::gateway::pb::gw::mx_command_reply::Reply;
use crate::gateway::types::*;

impl Session {
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
}
