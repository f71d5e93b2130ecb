//! `:ACK` PVs: one per PV that carries alarms; a put of a string acknowledges them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tracing::{info, warn};

use super::state::{AckPv, Alarms, Entry, Owner};
use crate::bridge::mapping::registry::Registry;
use crate::bridge::values::stamp::SharedStamps;
use crate::bridge::writes::failure::{classify, combine, Failure};
use crate::bridge::writes::pending::InFlight;
use crate::config::Limits;
use crate::pva::{
    Access, Alarm, Display, NtValue, PutRequest, PvType, PvaError, ScalarType, SharedPv, Update,
};

impl Alarms {
    /// Serves the owner's `:ACK` PV once.
    pub(super) fn ensure_ack(&mut self, owner: Owner, pvs: &Registry) {
        if !self.cfg.enabled || self.ack_done.contains_key(&owner) {
            return;
        }
        let wanted = self.acknowledge_enabled(owner, pvs);
        self.ack_done.insert(owner, wanted);
        if !wanted {
            return;
        }
        let target = self.owner_name(owner, pvs).to_string();
        let name = format!("{target}{}", self.cfg.ack_suffix);
        let stamps = SharedStamps::default();
        let made = (|| {
            let mut pv = SharedPv::new(&name, Access::ReadWrite, &self.events)?;
            pv.open(
                PvType::Scalar(ScalarType::String),
                &Update::value(NtValue::String(String::new()))
                    .with_alarm(Alarm::none())
                    .with_time(stamps.now(&name))
                    .with_display(Display {
                        description: format!("put a comment to acknowledge the alarms of {target}"),
                        ..Default::default()
                    }),
            )?;
            self.server.add_pv(&pv)?;
            Ok::<_, PvaError>(pv)
        })();
        match made {
            Ok(pv) => {
                info!(pv = %name, "acknowledgement PV served");
                self.acks.insert(
                    Arc::from(name.as_str()),
                    (
                        owner,
                        Arc::new(AckPv {
                            pv,
                            stamps,
                            waiting: Arc::default(),
                        }),
                    ),
                );
            }
            Err(e) => warn!(pv = %name, error = %e, "cannot serve the acknowledgement PV"),
        }
    }

    /// The access group of `pv` when it is an `:ACK` PV (`[alarms] access_group`).
    pub fn ack_group(&self, pv: &str) -> Option<&str> {
        self.acks
            .contains_key(pv)
            .then_some(&*self.cfg.access_group)
    }

    /// A put to an `:ACK` PV is taken here; any other put is handed back. An
    /// acknowledgement under way counts among the puts in flight (`in_flight`, shown as
    /// `Puts:InFlight`) and is capped as a write is: `[limits] max_puts_per_pv` on its
    /// `:ACK` PV, `max_puts_in_flight` over all.
    pub fn take_put(
        &mut self,
        put: PutRequest,
        pvs: &Registry,
        in_flight: &Arc<AtomicUsize>,
        limits: &Limits,
    ) -> Option<PutRequest> {
        let Some((owner, ack_pv)) = self.acks.get(&put.pv).cloned() else {
            return Some(put);
        };
        let pv = put.pv.clone();
        // Answers the put with an error; the put was taken all the same.
        let fail = |put: PutRequest, why: String| {
            put.completion.complete(Err(format!("{pv}: {why}")));
            None
        };
        let comment = match &put.value {
            Some(NtValue::String(s)) => s.clone(),
            Some(_) => return fail(put, "put a string (the comment)".into()),
            None => return fail(put, "the put carries no value".into()),
        };
        let Some(client) = self.client.clone() else {
            return fail(
                put,
                "the alarm feed is not attached: nothing acknowledged".into(),
            );
        };
        let mine: Vec<&Entry> = self
            .active
            .values()
            .filter(|e| e.owner == Some(owner))
            .collect();
        if mine.is_empty() {
            return fail(
                put,
                format!(
                    "{} has no active alarm to acknowledge",
                    self.owner_name(owner, pvs)
                ),
            );
        }
        // The unacknowledged ones; when the bridge sees none, all of them, so that System
        // Platform (which may know better) gives its own answer.
        let unacked: Vec<String> = mine
            .iter()
            .filter(|e| !e.state.is_acked())
            .map(|e| e.reference.clone())
            .collect();
        let refs = if unacked.is_empty() {
            mine.iter().map(|e| e.reference.clone()).collect()
        } else {
            unacked
        };
        let waiting = ack_pv.waiting.load(Ordering::Acquire);
        if waiting >= limits.max_puts_per_pv {
            return fail(
                put,
                format!(
                    "{waiting} puts already wait for System Platform on this PV \
                     ([limits] max_puts_per_pv {}): put refused",
                    limits.max_puts_per_pv
                ),
            );
        }
        let all = in_flight.load(Ordering::Acquire);
        if all >= limits.max_puts_in_flight {
            return fail(
                put,
                format!(
                    "{all} puts already wait for System Platform \
                     ([limits] max_puts_in_flight {}): put refused",
                    limits.max_puts_in_flight
                ),
            );
        }
        // Held by the task until the acknowledgement is answered (or dropped with it).
        let counted = (InFlight::new(in_flight), InFlight::new(&ack_pv.waiting));
        // The account as the access rules saw it (what the audit record says).
        let operator = crate::access::acf_user(&put.credentials.method, &put.credentials.account);
        info!(pv = %pv, %operator, peer = %put.credentials.peer, alarms = refs.len(), "acknowledge");
        let mut put = put;
        for r in &refs {
            put.completion.note("alarm", r.clone());
        }
        tokio::spawn(async move {
            let mut failed = Vec::new();
            for r in &refs {
                if let Err(e) = client.acknowledge_alarm(r, &comment, &operator).await {
                    let f = classify(Failure::Call(&e));
                    warn!(reference = %r, outcome = f.outcome.as_str(), reason = %f.cause, "acknowledgement failed");
                    failed.push((r.clone(), f));
                }
            }
            // Answered: no longer waiting (given back before the client hears, so that its
            // next put finds the count as it left it).
            drop(counted);
            match combine("acknowledgement", failed) {
                None => {
                    let time = ack_pv.stamps.now(&pv);
                    let _ = ack_pv
                        .pv
                        .post(&Update::value(NtValue::String(comment)).with_time(time));
                    put.completion.complete(Ok(()));
                }
                Some((outcome, message)) => {
                    put.completion.fail(outcome, format!("{pv}: {message}"))
                }
            }
        });
        None
    }
}
