//! Access security and the audit trail on the write path (issue 13).
//!
//! Every put meets the ACF first ([`crate::access::Access`]): a denied one is answered
//! `put denied by access security: <pv> (group <asg>, <account>@<host>)`, logged and
//! audited here, and nothing reaches the gateway. An allowed put that is to be audited
//! (a TRAPWRITE rule, or every put without an ACF) carries an observer on its completion,
//! so whichever path answers it (mxpva's checks, System Platform, the timeout, the
//! confirmation) writes its one record.

use std::time::{Instant, SystemTime};

use tracing::warn;

use crate::access::audit::AuditTrail;
use crate::access::audit::{rfc3339, value_json, AuditRecord};
use crate::access::{denied_message, Access, Decision};
use crate::pva::{EventSender, NtValue, PutOutcome, PutReply, PutRequest};

/// A record being made: what is known when the put arrives.
struct Draft {
    started: Instant,
    record: AuditRecord,
}

impl Draft {
    fn finish(mut self, outcome: &str, message: Option<&str>, status: Option<&str>) -> AuditRecord {
        self.record.time = rfc3339(SystemTime::now());
        self.record.duration_ms = self.started.elapsed().as_secs_f64() * 1e3;
        self.record.outcome = outcome.to_string();
        self.record.message = message.map(str::to_string);
        self.record.status = status.map(str::to_string);
        self.record
    }

    fn finish_reply(self, reply: &PutReply<'_>) -> AuditRecord {
        // The refusing layer's words (System Platform's or the gateway's).
        let status = match reply.outcome {
            PutOutcome::RefusedBySystemPlatform | PutOutcome::RefusedByGateway => {
                reply.message.map(|m| {
                    m.strip_prefix(self.record.pv.as_str())
                        .and_then(|m| m.strip_prefix(": "))
                        .unwrap_or(m)
                })
            }
            _ => None,
        };
        // An acknowledgement names the alarms it acknowledged.
        let alarms = self.record.comment.is_some().then(|| {
            reply
                .notes
                .iter()
                .filter(|(k, _)| *k == "alarm")
                .map(|(_, v)| v.clone())
                .collect()
        });
        let mut record = self.finish(reply.outcome.as_str(), reply.message, status);
        record.alarms = alarms;
        record
    }
}

/// Access security and the audit trail: the ACF in force and where records go.
pub(in crate::bridge) struct Guard {
    pub access: Access,
    /// The audit trail of puts; `audit.health()` is for the status PVs.
    pub audit: AuditTrail,
}

/// What a put is for, as the rules see it: its access group and level, its tag, and
/// whether it is an `:ACK` (borrowed: a put not audited copies none of it).
pub(in crate::bridge) struct Target<'a> {
    group: &'a str,
    level: u8,
    tag: Option<&'a str>,
    is_ack: bool,
}

impl<'a> Target<'a> {
    /// A mapped PV's.
    pub fn pv(group: &'a str, level: u8, tag: &'a str) -> Self {
        Target {
            group,
            level,
            tag: Some(tag),
            is_ack: false,
        }
    }

    /// An `:ACK` PV's, of the alarm group `group`.
    pub fn ack(group: &'a str) -> Self {
        Target {
            group,
            level: 0,
            tag: None,
            is_ack: true,
        }
    }

    /// A name mxpva does not map (answered "unknown PV" past the rules): `[defaults]`.
    pub fn unmapped(group: &'a str, level: u8) -> Self {
        Target {
            group,
            level,
            tag: None,
            is_ack: false,
        }
    }
}

impl Guard {
    /// The ACF's word on `put` to `target`: `None` when it was denied (answered, logged
    /// and audited); else the put, and whether it is audited (its outcome will be
    /// recorded). `previous` reads the value before, for a put that is audited.
    pub fn check(
        &mut self,
        mut put: PutRequest,
        target: Target<'_>,
        previous: impl FnOnce() -> Option<NtValue>,
    ) -> Option<(PutRequest, bool)> {
        let Target {
            group,
            level,
            tag,
            is_ack,
        } = target;
        let Decision {
            allowed,
            audited,
            host,
            account,
            claimed_account,
        } = self.access.decide(group, level, &put.credentials);
        let who = &put.credentials;
        let previous = (audited && !is_ack).then(previous).flatten();
        let draft = audited.then(|| Draft {
            started: Instant::now(),
            record: AuditRecord {
                time: String::new(),
                pv: put.pv.to_string(),
                tag: tag.map(str::to_string),
                group: group.to_string(),
                account: account.clone(),
                claimed_account: claimed_account.clone(),
                host: host.clone(),
                method: who.method.clone(),
                previous: previous.as_ref().map(value_json),
                requested: put.value.as_ref().map(value_json),
                outcome: String::new(),
                status: None,
                message: None,
                duration_ms: 0.0,
                comment: match (&put.value, is_ack) {
                    (Some(NtValue::String(s)), true) => Some(s.clone()),
                    (_, true) => Some(String::new()),
                    _ => None,
                },
                alarms: None,
                ..AuditRecord::default()
            },
        });
        if !allowed {
            let message = denied_message(&put.pv, group, &account, &host);
            warn!(pv = %put.pv, group, %account, claimed_account = claimed_account.as_deref(), %host, method = %who.method, "put denied by access security");
            if let Some(draft) = draft {
                self.audit
                    .record(draft.finish("denied", Some(&message), None));
            }
            put.completion.complete(Err(message));
            return None;
        }
        if let Some(draft) = draft {
            let audit = self.audit.clone();
            put.completion
                .observe(Box::new(move |reply: &PutReply<'_>| {
                    audit.record(draft.finish_reply(reply));
                }));
        }
        Some((put, audited))
    }
}

impl Guard {
    /// Puts refused before they reach the bridge are audited too, each with its outcome:
    /// `denied_no_read` (the read gate: no READ access) and `queue_full` (`[limits]
    /// max_puts_queued` puts wait). Their records are made on pvxs's worker threads, per
    /// client limited as every refusal is; `tag` and `previous` are `null`.
    pub fn audit_early_refusals(&self, events: &EventSender) {
        let audit = self.audit.clone();
        crate::pva::access::on_read_denied_puts(Some(Box::new(move |d| {
            let host = d.host.clone();
            audit.record_refusal(&host, || {
                let message = denied_message(&d.pv, &d.group, &d.account, &d.host);
                AuditRecord {
                    time: rfc3339(SystemTime::now()),
                    pv: d.pv,
                    group: d.group,
                    account: d.account,
                    host: d.host,
                    method: d.method,
                    outcome: "denied_no_read".into(),
                    message: Some(message),
                    ..AuditRecord::default()
                }
            });
        })));
        let audit = self.audit.clone();
        let groups = self.access.groups();
        events.on_queue_full(Box::new(move |q| {
            let who = q.credentials;
            let host = crate::access::peer_host(&who.peer);
            audit.record_refusal(host, || AuditRecord {
                time: rfc3339(SystemTime::now()),
                pv: q.pv.to_string(),
                group: groups.lock().of(q.pv).to_string(),
                // As the rules see it (`acf_user`), as every record has it.
                account: crate::access::acf_user(&who.method, &who.account),
                host: host.to_string(),
                method: who.method.clone(),
                requested: q.value.map(value_json),
                outcome: if q.refused { "refused" } else { "queue_full" }.into(),
                message: Some(q.message.to_string()),
                ..AuditRecord::default()
            });
        }));
    }

    /// At shutdown: no more records from pvxs's threads, and the queued ones reach the
    /// file ([`crate::access::audit::AUDIT_CLOSE_WAIT`] at most).
    pub fn audit_closer(&self) -> impl FnOnce() {
        let audit = self.audit.clone();
        move || {
            crate::pva::access::on_read_denied_puts(None);
            let wait = crate::access::audit::AUDIT_CLOSE_WAIT;
            let bytes = audit.queued_bytes();
            if bytes > 0 {
                tracing::info!(
                    bytes,
                    "waiting for the audit file to take the records queued ({} at most)",
                    humantime::format_duration(wait)
                );
            }
            if audit.close(wait) {
                tracing::debug!("audit trail closed: every record is in the file");
            } else {
                tracing::error!(
                    "the audit file did not take the queued records within {}: some are lost",
                    humantime::format_duration(wait)
                );
            }
        }
    }
}
