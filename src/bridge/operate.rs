//! What the bridge tells operators: the status PVs (`crate::status`) and systemd
//! (`crate::systemd`). The bridge task reports state changes as they happen, counts
//! each data change with one relaxed atomic add, and on its own tick (at least once a
//! second) counts INVALID PVs, reads the alarm feed's state and sends systemd's
//! watchdog keep-alive, so that a bridge that stops turning stops the keep-alives.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use super::alarms::Alarms;
use super::error::BridgeError;
use super::mapping::registry::Registry;
use crate::access::audit::AuditTrail;
use crate::config::Config;
use crate::pva::{EventSender, Server};
use crate::status::{Publisher, Status};
use crate::systemd;

/// The bridge's side of operations.
pub(super) struct Ops {
    pub status: Status,
    /// The status PV publisher; aborted when the bridge stops.
    publisher: Option<tokio::task::JoinHandle<()>>,
    /// The bridge's own tick: INVALID count, alarm feed state, watchdog.
    pub tick: tokio::time::Interval,
    watchdog: bool,
    /// READY=1 was sent.
    ready: bool,
    /// The audit file's fault as `<status>Audit` shows it (`None`: not shown yet).
    pub audit_shown: Option<(Option<String>, Option<String>)>,
}

impl Drop for Ops {
    fn drop(&mut self) {
        if let Some(t) = self.publisher.take() {
            t.abort();
        }
    }
}

impl Ops {
    /// Serves the status PVs (unless `[status] prefix = ""`) on `server`, which has not
    /// started yet.
    pub fn new(
        config: &Config,
        server: &Arc<Server>,
        events: &EventSender,
        in_flight: &Arc<AtomicUsize>,
    ) -> Result<Self, BridgeError> {
        let status = Status::new(&config.path);
        status.gateway_connecting(&format!("connecting to {}", config.gateway.endpoint));
        let publisher = match &config.status.prefix {
            Some(prefix) => Some(Publisher::open(
                prefix.as_str(),
                status.clone(),
                server.clone(),
                events,
                in_flight.clone(),
                config.limits.max_puts_queued,
            )?),
            None => None,
        };
        let watchdog = systemd::watchdog_interval();
        let period = watchdog.unwrap_or(Duration::from_secs(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Ops {
            status,
            publisher: publisher.map(|p| tokio::spawn(p.run())),
            tick,
            watchdog: watchdog.is_some(),
            ready: false,
            audit_shown: None,
        })
    }

    /// READY=1, once: the PVs are served and the first connect is over.
    pub fn first_connect_over(&mut self, pvs: &Registry, up: bool) {
        if self.ready {
            return;
        }
        self.ready = true;
        let link = if up {
            "gateway up"
        } else {
            "gateway not reached yet"
        };
        systemd::ready(&format!("serving {} PVs, {link}", pvs.len()));
    }
}

impl Ops {
    /// The bridge's tick (see the module doc); `audit` while `[audit] file` is set.
    pub fn on_tick(&mut self, pvs: &Registry, alarms: &Alarms, audit: Option<&AuditTrail>) {
        if self.watchdog {
            systemd::watchdog();
        }
        let status = &self.status;
        status.pv_counts(pvs.len(), pvs.invalid());
        let (state, reason) = alarms.feed_state();
        status.alarm_feed(state, reason);
        // `<status>Audit`: the audit file's fault, and the records dropped since start,
        // served while `[audit] file` is set.
        if let Some(audit) = audit {
            let shown = audit.health().shown();
            if self.audit_shown.as_ref() != Some(&shown) {
                status.set_fault_or_note("Audit", shown.0.as_deref(), shown.1.as_deref());
                self.audit_shown = Some(shown);
            }
        }
    }
}
