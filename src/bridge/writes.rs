//! The write path: a put becomes a gateway write (Write, Write2 or WriteSecured by the
//! PV's write mode), capped per PV and overall by `[limits]`, and completes on
//! OnWriteComplete, on a timeout, or when the link is lost.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::info;

use super::pv::{InFlight, PendingWrite, Sending};
use super::registry::PvId;
use super::{convert, Bridge};
use crate::config;
use crate::gateway::{ItemHandle, UserId, WriteEntry, WriteKind};
use crate::pva::{PutOutcome, PutRequest};

/// Messages from helper tasks to the bridge task.
pub(super) enum Internal {
    /// The gateway accepted (Ok) or refused (Err) the write call for `id`.
    Sent {
        pv: PvId,
        id: u64,
        result: Result<(), String>,
    },
    /// `id` had no OnWriteComplete within the write timeout.
    TimedOut { pv: PvId, id: u64 },
    /// `id` was confirmed [`super::pv::WRITE_SETTLE`] ago and no data change followed.
    Settled { pv: PvId, id: u64 },
    /// The gateway work of a diff applied while serving: a chunk of it done.
    Subscribed(Subscribed),
}

/// A chunk of the subscriptions of a diff applied while serving, done in `session`: the
/// PVs subscribed, each with its item handle or why not (`Err`: the whole call failed).
pub(super) struct Subscribed {
    pub session: String,
    pub ids: Vec<PvId>,
    pub results: Result<Vec<Result<ItemHandle, String>>, String>,
    /// The first `paced` of `ids` hold room in the subscription window (`pace.rs`).
    pub paced: usize,
    /// The last chunk of the diff's subscriptions.
    pub last: bool,
}

impl Bridge {
    pub(super) fn on_put(&mut self, put: PutRequest) {
        let Some(mut put) = self.guard_put(put) else {
            return;
        };
        // Refused in pvxs's callback (read-only, unreadable, past a cap): answered now
        // that access security and the audit trail have seen it.
        if let Some(message) = put.refused.take() {
            put.completion.complete(Err(message));
            return;
        }
        let Some(put) = self.alarms.take_put(put, &self.pvs) else {
            return;
        };
        let Some(i) = self.pvs.id_of_name(&put.pv) else {
            put.completion
                .complete(Err(format!("{}: unknown PV", put.pv)));
            return;
        };
        if self.link.is_none() {
            put.completion.complete(Err(format!(
                "{}: gateway unavailable: write not sent",
                put.pv
            )));
            return;
        }
        // An on-demand PV's put waits for its advise under way.
        let Some(put) = self.hold_put(i, put) else {
            return;
        };
        let Some(link) = &self.link else {
            return;
        };
        let Some(pv) = self.pvs.get_mut(i) else {
            put.completion
                .complete(Err(format!("{}: unknown PV", put.pv)));
            return;
        };
        let entry = match pv.prepare_write(&put) {
            Ok(entry) => entry,
            Err(message) => {
                put.completion.complete(Err(message));
                return;
            }
        };
        let limits = &self.config.limits;
        let waiting = pv.writes_waiting();
        if waiting >= limits.max_puts_per_pv {
            put.completion.complete(Err(format!(
                "{}: {waiting} puts already wait for System Platform on this PV \
                 ([limits] max_puts_per_pv {}): put refused",
                put.pv, limits.max_puts_per_pv
            )));
            return;
        }
        let in_flight = self.in_flight.load(Ordering::Acquire);
        if in_flight >= limits.max_puts_in_flight {
            put.completion.complete(Err(format!(
                "{}: {in_flight} puts already wait for System Platform \
                 ([limits] max_puts_in_flight {}): put refused",
                put.pv, limits.max_puts_in_flight
            )));
            return;
        }
        let (kind, user, verifier) = match pv.cfg.write.as_ref() {
            Some(config::WriteMode::Write { user }) => (WriteKind::Write, user.clone(), None),
            Some(config::WriteMode::Write2 { user }) => (WriteKind::Write2, user.clone(), None),
            Some(config::WriteMode::Secured { user }) => (
                WriteKind::WriteSecured,
                Some(user.clone()),
                Some(user.clone()),
            ),
            Some(config::WriteMode::Verified { user, verifier }) => (
                WriteKind::WriteSecured,
                Some(user.clone()),
                Some(verifier.clone()),
            ),
            None => {
                put.completion
                    .complete(Err(format!("{} is read-only: put refused", put.pv)));
                return;
            }
        };
        let id_of = |u: Option<config::User>| u.and_then(|u| link.users.get(&u.key).copied());
        let mut entry = WriteEntry {
            user: id_of(user).unwrap_or(UserId(0)),
            verifier: id_of(verifier).unwrap_or(UserId(0)),
            ..entry
        };
        if kind == WriteKind::Write2 {
            entry.timestamp = Some(std::time::SystemTime::now());
        }
        self.next_write += 1;
        let id = self.next_write;
        info!(pv = %put.pv, tag = %pv.cfg.tag.as_str(), value = %convert::brief(&entry.value, 80), account = %put.credentials.account, peer = %put.credentials.peer, "write");
        let sending = Sending::default();
        pv.pending.push_back(PendingWrite {
            id,
            started: Instant::now(),
            completion: put.completion,
            changed: false,
            _in_flight: InFlight::new(&self.in_flight),
            sending: sending.clone(),
        });
        let session = link.session.clone();
        let server = link.server;
        let tx = self.internal.0.clone();
        let timeout = self.config.gateway.write_timeout;
        tokio::spawn(async move {
            // A reload that removed the PV meanwhile has failed the put already.
            if !sending.start() {
                return;
            }
            let result = session
                .write(server, kind, &entry)
                .await
                .map_err(|e| format!("the gateway refused the write: {e}"));
            let sent = result.is_ok();
            let _ = tx.send(Internal::Sent { pv: i, id, result });
            if sent {
                tokio::time::sleep(timeout).await;
                let _ = tx.send(Internal::TimedOut { pv: i, id });
            }
        });
    }

    pub(super) fn on_internal(&mut self, msg: Internal) {
        let pv = match msg {
            Internal::Subscribed(done) => return self.on_subscribed(done),
            Internal::Sent { pv, .. }
            | Internal::Settled { pv, .. }
            | Internal::TimedOut { pv, .. } => pv,
        };
        let Some(pv) = self.pvs.get_mut(pv) else {
            return;
        };
        match msg {
            Internal::Sent {
                id,
                result: Err(message),
                ..
            } => {
                pv.fail_write(id, PutOutcome::RefusedBySystemPlatform, &message);
            }
            Internal::Sent { .. } | Internal::Subscribed(_) => {}
            Internal::Settled { id, .. } => pv.settle(id),
            Internal::TimedOut { id, .. } => {
                let t = humantime::format_duration(self.config.gateway.write_timeout);
                pv.fail_write(
                    id,
                    PutOutcome::TimedOut,
                    &format!("no write confirmation from System Platform within {t}"),
                );
            }
        }
    }
}
