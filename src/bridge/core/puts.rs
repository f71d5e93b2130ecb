//! Puts through the bridge: access security and the audit trail first
//! (`writes/guard.rs`), then the write path (`writes/`): a put becomes a gateway write,
//! capped per PV and overall by `[limits]`, that completes on OnWriteComplete, on a
//! timeout, or when the link is lost.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::Bridge;
use crate::bridge::pv_id::PvId;
use crate::bridge::values::convert;
use crate::bridge::writes::calls::{CallDone, Queued, Timer};
use crate::bridge::writes::failure::{classify, Failed, Failure};
use crate::bridge::writes::guard::Target;
use crate::bridge::writes::pending::{self, InFlight, PendingWrite};
use crate::config;
use crate::gateway::{GatewayError, MxValue, UserId, WriteEntry, WriteKind};
use crate::pva::{PutOutcome, PutRequest};

impl Bridge {
    pub(in crate::bridge) fn on_put(&mut self, put: PutRequest) {
        let Some((mut put, audited)) = self.guard_put(put) else {
            return;
        };
        // Refused in pvxs's callback (read-only, unreadable, past a cap): answered now
        // that access security and the audit trail have seen it.
        if let Some(message) = put.refused.take() {
            put.completion.complete(Err(message));
            return;
        }
        let Some(put) =
            self.alarms
                .take_put(put, &self.pvs, &self.writes.in_flight, &self.config.limits)
        else {
            return;
        };
        let Some(i) = self.pvs.id_of_name(&put.pv) else {
            put.completion
                .complete(Err(format!("{}: unknown PV", put.pv)));
            return;
        };
        if self.link.session.is_none() {
            put.completion.complete(Err(format!(
                "{}: gateway unavailable: write not sent",
                put.pv
            )));
            return;
        }
        // An on-demand PV's put waits for its advise under way.
        let max = self.config.limits.max_puts_per_pv;
        let Some(put) = self.demand.hold_put(&self.pvs, i, put, max) else {
            return;
        };
        let Some(link) = &self.link.session else {
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
        let in_flight = self.writes.in_flight.load(Ordering::Acquire);
        if in_flight >= limits.max_puts_in_flight {
            put.completion.complete(Err(format!(
                "{}: {in_flight} puts already wait for System Platform \
                 ([limits] max_puts_in_flight {}): put refused",
                put.pv, limits.max_puts_in_flight
            )));
            return;
        }
        let (kind, user, verifier) = match pv.cfg.write.as_ref() {
            Some(config::WriteMode::Write { user }) => (WriteKind::Write, user.as_ref(), None),
            Some(config::WriteMode::Write2 { user }) => (WriteKind::Write2, user.as_ref(), None),
            Some(config::WriteMode::Secured { user }) => {
                (WriteKind::WriteSecured, Some(user), Some(user))
            }
            Some(config::WriteMode::Verified { user, verifier }) => {
                (WriteKind::WriteSecured, Some(user), Some(verifier))
            }
            None => {
                put.completion
                    .complete(Err(format!("{} is read-only: put refused", put.pv)));
                return;
            }
        };
        let id_of = |u: Option<&config::User>| u.and_then(|u| link.users.get(&u.key).copied());
        let mut entry = WriteEntry {
            user: id_of(user).unwrap_or(UserId(0)),
            verifier: id_of(verifier).unwrap_or(UserId(0)),
            ..entry
        };
        if kind == WriteKind::Write2 {
            entry.timestamp = Some(std::time::SystemTime::now());
        }
        let id = self.writes.next_id();
        // The audit record of an audited put carries the PV, tag, value, account and
        // host (and its outcome): the line is then debug, off the path of every put.
        macro_rules! write_line {
            ($level:ident) => {
                tracing::$level!(pv = %put.pv, tag = %pv.cfg.tag.as_str(), value = %convert::brief(&entry.value, 80), account = %put.credentials.account, peer = %put.credentials.peer, "write")
            };
        }
        if audited {
            write_line!(debug);
        } else {
            write_line!(info);
        }
        let written = match &entry.value {
            MxValue::Array(_) | MxValue::Bytes(_) | MxValue::Null => None,
            v => Some(v.clone()),
        };
        pv.writes.pending.push_back(PendingWrite {
            id,
            started: Instant::now(),
            completion: put.completion,
            changed: false,
            _in_flight: InFlight::new(&self.writes.in_flight),
            sent: false,
            written,
            timeout_at: None,
            accepted: false,
            early: None,
        });
        // Sent at the end of the turn (`send_writes`), with the turn's other puts.
        self.writes.enqueue(
            Queued {
                pv: i,
                id,
                kind,
                entry,
            },
            tokio::time::Instant::now(),
        );
    }

    /// The end of a turn: the puts queued go out now, in as many calls as may go
    /// ([`WriteCalls::may_send`](crate::bridge::writes::calls::WriteCalls::may_send));
    /// those left go out when a call is answered (together).
    pub(in crate::bridge) fn send_writes(&mut self) {
        let now = tokio::time::Instant::now();
        if !self.writes.may_send(now) || self.writes.queue.is_empty() {
            return;
        }
        if self.link.session.is_none() {
            self.writes.link_lost();
            return;
        }
        let mut stuck = false;
        while self.writes.may_send(now) && !self.writes.queue.is_empty() {
            let pvs = &mut self.pvs;
            let batch = self.writes.take_batch(|q| {
                // Still waiting (not withdrawn by a reload, not failed), and the PV still
                // holds the item the put was accepted for: it is sent now.
                let Some(pv) = pvs.get_mut(q.pv) else {
                    return false;
                };
                if pv.write_handle() != Some(q.entry.item_handle) {
                    // Never reached while items only change with a re-open or a new
                    // session, which answer their puts; if it is, the put fails rather
                    // than wait.
                    pv.writes.fail(
                        pv.cfg.name.as_str(),
                        q.id,
                        PutOutcome::Refused,
                        "the PV's item changed before the write was sent: write not sent",
                    );
                    return false;
                }
                match pv.writes.pending.iter_mut().find(|w| w.id == q.id) {
                    Some(w) if !w.sent => {
                        w.sent = true;
                        true
                    }
                    _ => false,
                }
            });
            if batch.is_empty() {
                // What is left waits for a PV's call in flight.
                stuck = true;
                break;
            }
            self.writes.start(batch);
        }
        self.writes.sent(stuck);
    }

    /// A write call answered: accepted puts wait for OnWriteComplete (within the write
    /// timeout), the others fail with the outcome of the layer that failed them.
    pub(in crate::bridge) fn on_call_done(&mut self, done: CallDone) {
        if !self.writes.answered(done.call, &done.puts) {
            // A lost session's call: its puts were answered when the link went.
            return;
        }
        let n = done.puts.len();
        let results: Vec<Result<(), Failed>> = match done.result {
            Ok(r) if r.len() == n => r,
            Ok(r) => {
                let e = GatewayError::Protocol {
                    call: "write call",
                    message: format!("{} results for {n} writes", r.len()),
                };
                vec![Err(classify(Failure::Call(&e))); n]
            }
            Err(e) => vec![Err(e); n],
        };
        let timeout = self.config.gateway.write_timeout;
        let at = tokio::time::Instant::now() + timeout;
        for ((pv, id), result) in done.puts.into_iter().zip(results) {
            let Some(mapped) = self.pvs.get_mut(pv) else {
                continue;
            };
            match result {
                Ok(()) => match mapped.writes.call_accepted(id) {
                    // Its OnWriteComplete came before this reply: taken now.
                    Some(outcome) => self.confirm_write(pv, outcome),
                    None => {
                        // Waits for OnWriteComplete within the timeout, unless gone.
                        if let Some(w) = mapped.writes.pending.iter_mut().find(|w| w.id == id) {
                            w.timeout_at = Some(at);
                            self.writes.add_timer(at, id, Timer::TimedOut(pv));
                        }
                    }
                },
                // Never retried: a gateway error may have been applied.
                Err(failed) => {
                    let name = mapped.cfg.name.as_str();
                    mapped
                        .writes
                        .fail(name, id, failed.outcome, &failed.message("write"));
                }
            }
        }
    }

    /// The write timers due now.
    pub(in crate::bridge) fn on_write_timers(&mut self) {
        for (id, timer) in self.writes.due(tokio::time::Instant::now()) {
            match timer {
                Timer::Settled(pv) => {
                    if let Some(pv) = self.pvs.get_mut(pv) {
                        pv.writes.settle(pv.cfg.name.as_str(), id);
                    }
                }
                Timer::TimedOut(pv) => {
                    if let Some(pv) = self.pvs.get_mut(pv) {
                        let timeout = self.config.gateway.write_timeout;
                        let t = humantime::format_duration(timeout);
                        pv.writes.timed_out(
                            pv.cfg.name.as_str(),
                            id,
                            &format!("no write confirmation from System Platform within {t}"),
                            tokio::time::Instant::now() + timeout,
                        );
                    }
                }
            }
        }
    }

    /// OnWriteComplete of PV `i`: one of a write that timed out lately is its own;
    /// otherwise it answers the oldest sent write ([`Bridge::confirm_write`]).
    pub(in crate::bridge) fn write_completed(&mut self, i: PvId, outcome: Result<(), String>) {
        let Some(pv) = self.pvs.get_mut(i) else {
            return;
        };
        if pv.writes.late_completion(pv.cfg.name.as_str()) {
            return;
        }
        self.confirm_write(i, outcome);
    }

    /// The outcome of PV `i`'s oldest sent write (its OnWriteComplete): its timeout goes,
    /// and a success not shown yet waits [`pending::WRITE_SETTLE`] at most.
    fn confirm_write(&mut self, i: PvId, outcome: Result<(), String>) {
        let Some(pv) = self.pvs.get_mut(i) else {
            return;
        };
        if let Some((at, id)) = pv
            .writes
            .oldest_sent()
            .and_then(|w| Some((w.timeout_at?, w.id)))
        {
            self.writes.cancel_timer(at, id);
        }
        if let Some(id) = pv.write_complete(outcome) {
            let at = tokio::time::Instant::now() + pending::WRITE_SETTLE;
            self.writes.add_timer(at, id, Timer::Settled(i));
        }
    }
}

impl Bridge {
    /// The ACF's word on `put` (`writes/guard.rs`), with the rules and groups in force
    /// now: `None` when it was denied (and answered); with whether it is audited.
    pub(in crate::bridge) fn guard_put(&mut self, put: PutRequest) -> Option<(PutRequest, bool)> {
        let ack_group = self.alarms.ack_group(&put.pv);
        let mapped = self.pvs.id_of_name(&put.pv).and_then(|i| self.pvs.get(i));
        let defaults = &self.config.defaults;
        let target = match (ack_group, mapped) {
            (Some(group), _) => Target::ack(group),
            (None, Some(pv)) => Target::pv(
                &pv.cfg.access_group,
                pv.cfg.access_level,
                pv.cfg.tag.as_str(),
            ),
            (None, None) => Target::unmapped(&defaults.access_group, defaults.access_level),
        };
        // The value before, for a put that is audited only: as the bridge last posted it,
        // else read back from the PV.
        let previous =
            || mapped.and_then(|pv| pv.value_shown().or_else(|| pv.pv.current().ok()?.value));
        self.guard.check(put, target, previous)
    }
}
