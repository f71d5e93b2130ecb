//! The publisher: serves the status PVs and posts them once a second and whenever the
//! bridge reports a change of state (see the module doc of `status`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{LinkState, Status, FEED_CHOICES, GATEWAY_CHOICES};
use crate::pva::{
    Access, Alarm, AlarmStatus, ClientInfo, Column, Display, EventSender, NtValue, PutCounts,
    PvType, PvaError, ScalarType, Server, Severity, SharedPv, TablePv, TableUpdate, TimeStamp,
    Update,
};

/// How often the rates, counters and the client list are posted.
const TICK: Duration = Duration::from_secs(1);
/// The next server report is read this many times as long after one as it took.
const REPORT_SPACING: u32 = 4;
/// Reasons and errors shown in `alarm.message` are cut to this many bytes.
const MAX_MESSAGE: usize = 1024;

/// One scalar status PV and what it last posted (posts only what changed).
struct Item {
    pv: SharedPv,
    last: Option<(NtValue, Alarm)>,
    /// The time of the last [`Item::set_at`]: a PV whose time means something (`Config`:
    /// when the file was loaded) is posted when it moves, even with the same value.
    stamped: Option<TimeStamp>,
}

impl Item {
    fn set(&mut self, value: NtValue, alarm: Alarm) {
        self.post(value, alarm, TimeStamp::now());
    }

    fn set_at(&mut self, value: NtValue, alarm: Alarm, time: TimeStamp) {
        if self.stamped != Some(time) {
            self.stamped = Some(time);
            self.last = None;
        }
        self.post(value, alarm, time);
    }

    fn post(&mut self, value: NtValue, alarm: Alarm, time: TimeStamp) {
        if self
            .last
            .as_ref()
            .is_some_and(|(v, a)| *v == value && *a == alarm)
        {
            return;
        }
        let update = Update::value(value.clone())
            .with_alarm(alarm.clone())
            .with_time(time);
        if let Err(e) = self.pv.post(&update) {
            warn!(pv = %self.pv.name(), error = %e, "cannot post a status PV");
        }
        self.last = Some((value, alarm));
    }
}

/// The status PVs and what they are computed from. Built (and its PVs added to the
/// server) before the server starts; then [`Publisher::run`] keeps them current.
pub struct Publisher {
    /// What the bridge reports, and the wake-ups for its changes of state.
    status: Status,
    /// Where the PVs are served; its report lists the clients; fault PVs are added to it.
    server: Arc<Server>,
    /// For fault PVs added later (read-only: puts are refused), and `Puts:Queued`.
    events: EventSender,
    prefix: String,
    /// Puts received and failed, counted in the pvxs callbacks.
    puts: Arc<PutCounts>,
    /// Puts waiting for System Platform (the bridge's count).
    in_flight: Arc<AtomicUsize>,
    /// `[limits] max_puts_queued`: `Puts:Queued` is MINOR there.
    max_queued: usize,
    started: Instant,
    /// The scalar and enum status PVs, by name after the prefix.
    items: HashMap<&'static str, Item>,
    table: TablePv,
    /// The clients last posted to `Clients:Table`, and whether the report was read.
    table_last: Option<(Vec<ClientInfo>, bool)>,
    faults: BTreeMap<String, Item>,
    /// Fault names not served (logged once).
    refused: BTreeSet<String>,
    /// Counts at the start of the current rate window.
    window: (Instant, u64, u64),
}

/// `s`, cut to [`MAX_MESSAGE`] bytes (on a character boundary) with `...` after.
fn text(s: &str) -> String {
    if s.len() <= MAX_MESSAGE {
        return s.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", s.get(..end).unwrap_or_default())
}

fn enum_alarm(state: LinkState, reason: &str, what: &str) -> Alarm {
    match state {
        LinkState::Up => Alarm::none(),
        LinkState::Disabled => Alarm::new(Severity::NoAlarm, AlarmStatus::None, text(reason)),
        LinkState::Connecting | LinkState::Lost => {
            let message = if reason.is_empty() {
                what.to_string()
            } else {
                text(reason)
            };
            Alarm::new(Severity::Major, AlarmStatus::Driver, message)
        }
    }
}

/// The columns of `Clients:Table`.
fn table_columns() -> Vec<Column> {
    vec![
        Column::new("peer", "Peer", ScalarType::String),
        Column::new("account", "Account", ScalarType::String),
        Column::new("channels", "Channels", ScalarType::Int32),
        Column::new("bytes_sent", "Bytes sent", ScalarType::Float64),
        Column::new("bytes_received", "Bytes received", ScalarType::Float64),
    ]
}

fn table_rows(clients: &[ClientInfo]) -> Vec<NtValue> {
    vec![
        NtValue::StringArray(clients.iter().map(|c| c.peer.clone()).collect()),
        NtValue::StringArray(clients.iter().map(|c| c.account.clone()).collect()),
        NtValue::Int32Array(
            clients
                .iter()
                .map(|c| i32::try_from(c.channels).unwrap_or(i32::MAX))
                .collect(),
        ),
        NtValue::Float64Array(clients.iter().map(|c| c.bytes_sent as f64).collect()),
        NtValue::Float64Array(clients.iter().map(|c| c.bytes_received as f64).collect()),
    ]
}

/// The type, initial value and display of each status PV.
fn shape_of(name: &str) -> (PvType, NtValue, Option<(&'static str, i32)>) {
    use NtValue as V;
    use ScalarType as S;
    match name {
        "Gateway" | "AlarmFeed" => (PvType::Enum, V::Enum(0), None),
        "Reconnects"
        | "Updates:Count"
        | "Updates:Coalesced"
        | "Updates:BufferedDropped"
        | "Puts:Count"
        | "Puts:Failed" => (PvType::Scalar(S::Int64), V::Int64(0), None),
        "PVs" | "PVs:Invalid" | "Clients" | "Puts:Queued" | "Puts:InFlight" => {
            (PvType::Scalar(S::Int32), V::Int32(0), None)
        }
        "Updates:Rate" | "Puts:Rate" => {
            (PvType::Scalar(S::Float64), V::Float64(0.0), Some(("/s", 1)))
        }
        "Uptime" => (PvType::Scalar(S::Float64), V::Float64(0.0), Some(("s", 0))),
        _ => (PvType::Scalar(S::String), V::String(String::new()), None),
    }
}

fn description(name: &str) -> &'static str {
    match name {
        "Gateway" => "MXAccess Gateway link",
        "Session" => "gateway session id",
        "Reconnects" => "gateway session losses since start",
        "PVs" => "mapped PVs served",
        "PVs:Invalid" => "mapped PVs INVALID now",
        "Updates:Rate" => "data changes per second (1 s window)",
        "Updates:Count" => "data changes since start",
        "Updates:Coalesced" => "data changes replaced before posted",
        "Updates:BufferedDropped" => "buffered samples dropped past the cap",
        "Puts:Rate" => "puts per second (1 s window)",
        "Puts:Count" => "puts since start",
        "Puts:Failed" => "puts failed since start",
        "Puts:Queued" => "puts waiting for the bridge",
        "Puts:InFlight" => "puts waiting for System Platform",
        "AlarmFeed" => "System Platform alarm feed",
        "Clients" => "connected PVAccess clients",
        "Config" => "config file in service",
        "Version" => "mxpva version",
        "Uptime" => "seconds since start",
        _ => "",
    }
}

fn open_item(
    server: &Server,
    events: &EventSender,
    full: &str,
    name: &str,
) -> Result<Item, PvaError> {
    let (ty, value, display) = shape_of(name);
    let mut pv = SharedPv::new(full, Access::ReadOnly, events)?;
    let mut initial = Update::value(value)
        .with_alarm(Alarm::none())
        .with_time(TimeStamp::now());
    match name {
        "Gateway" => initial = initial.with_choices(GATEWAY_CHOICES),
        "AlarmFeed" => initial = initial.with_choices(FEED_CHOICES),
        _ => {}
    }
    if ty != PvType::Enum {
        let (units, precision) = display.unwrap_or(("", 0));
        initial = initial.with_display(Display {
            description: description(name).to_string(),
            units: units.to_string(),
            precision,
            ..Display::default()
        });
    }
    pv.open(ty, &initial)?;
    server.add_pv(&pv)?;
    Ok(Item {
        pv,
        last: None,
        stamped: None,
    })
}

impl Publisher {
    /// Serves every status PV under `prefix` on `server` (before it starts).
    pub fn open(
        prefix: &str,
        status: Status,
        server: Arc<Server>,
        events: &EventSender,
        in_flight: Arc<AtomicUsize>,
        max_queued: usize,
    ) -> Result<Self, PvaError> {
        let mut items = HashMap::new();
        let mut table = None;
        for &name in crate::config::STATUS_PVS {
            let full = format!("{prefix}{name}");
            if name == "Clients:Table" {
                let mut t = TablePv::new(&full, table_columns(), events)?;
                t.open(&TableUpdate::rows(table_rows(&[])))?;
                server.add_table(&t)?;
                table = Some(t);
            } else {
                items.insert(name, open_item(&server, events, &full, name)?);
            }
        }
        let table = table.ok_or_else(|| PvaError::Invalid {
            pv: format!("{prefix}Clients:Table"),
            reason: "not in the status PV list".into(),
        })?;
        let started = Instant::now();
        let mut publisher = Publisher {
            window: (started, status.updates(), events.put_counts().get().0),
            status,
            puts: events.put_counts(),
            events: events.clone(),
            server,
            prefix: prefix.to_string(),
            in_flight,
            max_queued,
            started,
            items,
            table,
            table_last: None,
            faults: BTreeMap::new(),
            refused: BTreeSet::new(),
        };
        publisher.publish(false);
        Ok(publisher)
    }

    /// Keeps the PVs current until the task is aborted.
    ///
    /// pvxs's server report (`Clients`, `Clients:Table`) is read on tokio's blocking pool:
    /// pvxs makes it on its TCP thread, and the caller waits for it, for a second or more
    /// with thousands of channels on a busy server; the bridge task, which shares this
    /// thread, would stop meanwhile (and miss the gateway connection's keep-alives). One
    /// report at a time, the next one [`REPORT_SPACING`] times as long after it as it took
    /// (and at the earliest at the next tick).
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut report: Option<tokio::task::JoinHandle<Result<Vec<ClientInfo>, PvaError>>> = None;
        let mut started = Instant::now();
        let mut next_report = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.publish(true);
                    if report.is_none() && Instant::now() >= next_report {
                        let server = self.server.clone();
                        started = Instant::now();
                        report = Some(tokio::task::spawn_blocking(move || server.clients()));
                    }
                }
                _ = self.status.woken() => self.publish(false),
                done = async { match report.as_mut() { Some(r) => r.await, None => std::future::pending().await } }, if report.is_some() => {
                    report = None;
                    let took = started.elapsed();
                    next_report = Instant::now() + took.saturating_mul(REPORT_SPACING);
                    let clients = done
                        .map_err(|e| PvaError::Native {
                            op: "read the server report".into(),
                            message: e.to_string(),
                        })
                        .and_then(|r| r);
                    self.clients(clients);
                }
            }
        }
    }

    fn item(&mut self, name: &'static str) -> Option<&mut Item> {
        self.items.get_mut(name)
    }

    fn set(&mut self, name: &'static str, value: NtValue, alarm: Alarm) {
        if let Some(item) = self.item(name) {
            item.set(value, alarm);
        }
    }

    /// Posts what changed; with `rates`, the end of a 1 s window: rates, uptime and the
    /// client list too.
    fn publish(&mut self, rates: bool) {
        let s = self.status.snapshot();
        let (gw, reason) = &s.gateway;
        self.set(
            "Gateway",
            NtValue::Enum(*gw as i32),
            enum_alarm(*gw, reason, "not connected"),
        );
        self.set("Session", NtValue::String(s.session.clone()), Alarm::none());
        let reconnects = self.status.reconnects();
        self.set(
            "Reconnects",
            NtValue::Int64(clamp(reconnects)),
            Alarm::none(),
        );
        let (feed, feed_reason) = &s.feed;
        self.set(
            "AlarmFeed",
            NtValue::Enum(*feed as i32),
            enum_alarm(*feed, feed_reason, "not attached"),
        );
        let (total, invalid) = s.pvs;
        self.set("PVs", NtValue::Int32(count(total)), Alarm::none());
        let invalid_alarm = if invalid > 0 {
            Alarm::new(
                Severity::Minor,
                AlarmStatus::Driver,
                format!("{invalid} of {total} PVs INVALID"),
            )
        } else {
            Alarm::none()
        };
        self.set("PVs:Invalid", NtValue::Int32(count(invalid)), invalid_alarm);
        let updates = self.status.updates();
        let (puts, failed) = self.puts.get();
        self.set(
            "Updates:Count",
            NtValue::Int64(clamp(updates)),
            Alarm::none(),
        );
        let coalesced = self.status.coalesced_count();
        self.set(
            "Updates:Coalesced",
            NtValue::Int64(clamp(coalesced)),
            Alarm::none(),
        );
        let dropped = self.status.buffered_dropped_count();
        self.set(
            "Updates:BufferedDropped",
            NtValue::Int64(clamp(dropped)),
            Alarm::none(),
        );
        self.set("Puts:Count", NtValue::Int64(clamp(puts)), Alarm::none());
        self.set("Puts:Failed", NtValue::Int64(clamp(failed)), Alarm::none());
        let queued = self.events.queued();
        let queued_alarm = if queued >= self.max_queued {
            Alarm::new(
                Severity::Minor,
                AlarmStatus::Record,
                format!("[limits] max_puts_queued {} reached", self.max_queued),
            )
        } else {
            Alarm::none()
        };
        self.set("Puts:Queued", NtValue::Int32(count(queued)), queued_alarm);
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        self.set(
            "Puts:InFlight",
            NtValue::Int32(count(in_flight)),
            Alarm::none(),
        );
        self.set(
            "Version",
            NtValue::String(format!("mxpva {}", env!("CARGO_PKG_VERSION"))),
            Alarm::none(),
        );
        let (path, loaded, error) = &s.config;
        let config_alarm = match error {
            None => Alarm::none(),
            Some(e) => Alarm::new(
                Severity::Minor,
                AlarmStatus::Conf,
                text(&format!(
                    "reload failed, still serving the loaded file: {e}"
                )),
            ),
        };
        if let Some(item) = self.item("Config") {
            item.set_at(
                NtValue::String(path.clone()),
                config_alarm,
                TimeStamp::from(*loaded),
            );
        }
        for (name, fault) in &s.faults {
            self.fault(
                name,
                fault.as_deref(),
                s.notes.get(name).map(String::as_str),
            );
        }
        if rates {
            let now = Instant::now();
            let (start, u0, p0) = self.window;
            let secs = now.duration_since(start).as_secs_f64().max(1e-3);
            self.window = (now, updates, puts);
            let rate = |n: u64, n0: u64| n.saturating_sub(n0) as f64 / secs;
            self.set(
                "Updates:Rate",
                NtValue::Float64(rate(updates, u0)),
                Alarm::none(),
            );
            self.set("Puts:Rate", NtValue::Float64(rate(puts, p0)), Alarm::none());
            let uptime = now.duration_since(self.started).as_secs_f64().round();
            self.set("Uptime", NtValue::Float64(uptime), Alarm::none());
        }
    }

    /// `Clients` and `Clients:Table`, from pvxs's server report.
    fn clients(&mut self, report: Result<Vec<ClientInfo>, PvaError>) {
        let (clients, ok) = match report {
            Ok(c) => (c, true),
            Err(e) => {
                warn!(error = %e, "cannot read the PVAccess server report");
                (Vec::new(), false)
            }
        };
        let alarm = if ok {
            Alarm::none()
        } else {
            Alarm::new(
                Severity::Invalid,
                AlarmStatus::Driver,
                "cannot read the PVAccess server report",
            )
        };
        self.set(
            "Clients",
            NtValue::Int32(count(clients.len())),
            alarm.clone(),
        );
        let next = Some((clients, ok));
        if self.table_last != next {
            if let Some((clients, _)) = &next {
                let update = TableUpdate::rows(table_rows(clients)).with_alarm(alarm);
                if let Err(e) = self.table.post(&update) {
                    warn!(pv = %self.table.name(), error = %e, "cannot post a status PV");
                }
            }
            self.table_last = next;
        }
    }

    /// The fault PV `name`, served on first use.
    fn fault(&mut self, name: &str, fault: Option<&str>, note: Option<&str>) {
        if !self.faults.contains_key(name) {
            if self.refused.contains(name) {
                return;
            }
            self.refused.insert(name.to_string());
            let full = format!("{}{name}", self.prefix);
            if !crate::config::PvName::is_valid(&full) || crate::config::STATUS_PVS.contains(&name)
            {
                warn!(pv = %full, "a fault's status PV name is not a PV name, or is taken: not served");
                return;
            }
            match open_item(&self.server, &self.events, &full, name) {
                Ok(item) => {
                    self.refused.remove(name);
                    self.faults.insert(name.to_string(), item);
                }
                Err(e) => {
                    warn!(pv = %full, error = %e, "cannot serve a fault's status PV");
                    return;
                }
            }
        }
        let Some(item) = self.faults.get_mut(name) else {
            return;
        };
        match fault {
            None => item.set(
                NtValue::String(note.map_or_else(|| "OK".into(), text)),
                Alarm::none(),
            ),
            Some(f) => item.set(
                NtValue::String(text(f)),
                Alarm::new(Severity::Major, AlarmStatus::Driver, text(f)),
            ),
        }
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pva::ServerConfig;

    fn current(item: &Item) -> (Option<NtValue>, Alarm) {
        let u = item.pv.current().unwrap();
        (u.value, u.alarm.unwrap_or_default())
    }

    #[tokio::test]
    async fn state_changes_and_faults_reach_their_pvs() {
        let server = Arc::new(Server::new(&ServerConfig::isolated()).unwrap());
        let (events, _rx) = crate::pva::event_channel();
        let status = Status::new(std::path::Path::new("site.toml"));
        let mut p =
            Publisher::open("T:", status.clone(), server, &events, Arc::default(), 8).unwrap();
        let (v, a) = current(&p.items["Gateway"]);
        assert_eq!((v, a.severity), (Some(NtValue::Enum(0)), Severity::Major));

        status.gateway_up("s1");
        status.gateway_lost("gone");
        status.gateway_lost("still gone");
        p.publish(false);
        let (v, a) = current(&p.items["Gateway"]);
        assert_eq!(v, Some(NtValue::Enum(LinkState::Lost as i32)));
        assert_eq!(
            (a.severity, a.message.as_str()),
            (Severity::Major, "still gone")
        );
        assert_eq!(current(&p.items["Reconnects"]).0, Some(NtValue::Int64(1)));

        // A fault PV is served from the first report on; MAJOR while set.
        status.set_fault("Audit", None);
        p.publish(false);
        let (v, a) = current(&p.faults["Audit"]);
        assert_eq!(
            (v, a.severity),
            (Some(NtValue::String("OK".into())), Severity::NoAlarm)
        );
        status.set_fault("Audit", Some("cannot write the audit trail: disk full"));
        p.publish(false);
        let (v, a) = current(&p.faults["Audit"]);
        assert_eq!(a.severity, Severity::Major);
        assert_eq!(v, Some(NtValue::String(a.message.clone())));
        // A name that is taken or not a PV name is not served.
        status.set_fault("Gateway", Some("x"));
        status.set_fault("bad name", Some("x"));
        p.publish(false);
        assert_eq!(p.faults.len(), 1);

        status.config_failed(&"x".repeat(5000));
        p.publish(false);
        let (_, a) = current(&p.items["Config"]);
        assert_eq!((a.severity, a.status), (Severity::Minor, AlarmStatus::Conf));
        assert!(
            a.message.len() <= MAX_MESSAGE + 3,
            "cut: {}",
            a.message.len()
        );
    }
}
