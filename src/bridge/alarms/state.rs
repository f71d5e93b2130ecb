//! The alarms' state: the active set, its owners, the `[[alarm_pv]]`, `:ACK` and
//! table PVs (the types; `active.rs`, `ack.rs`, `table.rs`, `reload.rs` and `remap.rs`
//! act on them).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::bridge::mapping::registry::Registry;
use crate::bridge::pv_id::PvId;
use crate::bridge::values::stamp::Stamps;
use crate::config::{self, SeverityScheme};
use crate::gateway::{
    ActiveAlarm, AlarmState, AlarmTransition, AlarmTransitionKind, GatewayClient,
};
use crate::pva::{Alarm, AlarmStatus, EventSender, Server, Severity, SharedPv, TablePv};

use super::by_tag::ByTag;
use super::feed::FeedMsg;
use super::severity::kind_severity;
use crate::bridge::values::stamp::SharedStamps;

/// Alarm references named in the config (lower-case, full and short) -> owner; and the
/// lower-case `Object.Attr` of each mapped PV -> its id (the first PV added wins).
pub(super) fn owner_maps(
    pvs: &Registry,
    alarm_pvs: &[config::AlarmPv],
) -> (HashMap<String, Owner>, ByTag) {
    let mut named = HashMap::new();
    let mut add_named = |refs: &[String], owner: Owner| {
        for r in refs {
            let lower = r.to_ascii_lowercase();
            let short = if lower.contains('!') {
                short_reference(&lower, "")
            } else {
                lower.clone()
            };
            named.insert(short, owner);
            named.insert(lower, owner);
        }
    };
    let ids = pvs.ids();
    for &id in &ids {
        if let Some(p) = pvs.get(id) {
            add_named(&p.cfg.meta.alarms, Owner::Value(id));
        }
    }
    for (i, p) in alarm_pvs.iter().enumerate() {
        add_named(&p.alarms, Owner::Own(i));
    }
    let mut by_tag = ByTag::default();
    for id in ids {
        if let Some(p) = pvs.get(id) {
            by_tag.insert_first(Arc::clone(&p.cfg), id);
        }
    }
    (named, by_tag)
}

/// At most this many feed messages are taken in one batch before posting, so that the
/// bridge task still serves puts and data changes during a flood.
pub(super) const MAX_BATCH: usize = 4096;

/// The message of a PV while the alarm feed is down.
pub(super) const FEED_LOST: &str = "alarm feed lost";

/// Which PV an alarm shows on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Owner {
    /// A mapped PV.
    Value(PvId),
    /// Index into the `[[alarm_pv]]` PVs.
    Own(usize),
}

/// One active alarm as the bridge knows it.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) reference: String,
    /// `Object.Alarm` (the reference without `Galaxy!Area.`).
    pub(super) short: String,
    pub(super) alarm_type: String,
    pub(super) state: AlarmState,
    pub(super) priority: i32,
    pub(super) raised_at: Option<SystemTime>,
    pub(super) acked_at: Option<SystemTime>,
    pub(super) operator: String,
    pub(super) comment: String,
    pub(super) value: String,
    pub(super) limit: String,
    pub(super) owner: Option<Owner>,
}

impl Entry {
    /// The alarm's own name: the last part of its reference (`HiHi`, `PumpFault`).
    pub(super) fn name(&self) -> &str {
        self.short.rsplit('.').next().unwrap_or(&self.short)
    }

    pub(super) fn state_word(&self) -> &'static str {
        match self.state {
            AlarmState::UnackAlm => "UNACK_ALM",
            AlarmState::AckAlm => "ACK_ALM",
            AlarmState::UnackRtn => "UNACK_RTN",
            AlarmState::AckRtn => "ACK_RTN",
        }
    }

    /// The severity while active: by the scheme, or by priority for a kind the `kind`
    /// scheme does not know.
    pub(super) fn active_severity(
        &self,
        cfg: &config::Alarms,
        scheme: SeverityScheme,
    ) -> config::Severity {
        match scheme {
            SeverityScheme::Kind => kind_severity(&self.alarm_type, self.name()),
            SeverityScheme::Priority => None,
        }
        .unwrap_or_else(|| cfg.severity_of(self.priority))
    }

    pub(super) fn part(&self, cfg: &config::Alarms, scheme: SeverityScheme) -> Alarm {
        let (severity, what) = match self.state {
            AlarmState::UnackAlm => (self.active_severity(cfg, scheme), "alarm, unacknowledged"),
            AlarmState::AckAlm => (self.active_severity(cfg, scheme), "alarm, acknowledged"),
            AlarmState::UnackRtn => (cfg.returned_unacked, "alarm returned, unacknowledged"),
            AlarmState::AckRtn => (config::Severity::None, "alarm returned, acknowledged"),
        };
        let severity = crate::bridge::values::limits::severity(severity);
        let status = if severity == Severity::NoAlarm {
            AlarmStatus::None
        } else {
            AlarmStatus::Record
        };
        Alarm::new(
            severity,
            status,
            format!("{} {what} (priority {})", self.name(), self.priority),
        )
    }
}

/// The alarm part of a PV from its alarms, the most urgent first: by severity, then
/// unacknowledged before acknowledged, then by priority (1 is the most urgent). The
/// severity and status are the first one's; the message names every alarm in that order.
pub(super) fn part_of(
    cfg: &config::Alarms,
    scheme: SeverityScheme,
    entries: &[&Entry],
) -> Option<Alarm> {
    let mut parts: Vec<(&Entry, Alarm)> =
        entries.iter().map(|e| (*e, e.part(cfg, scheme))).collect();
    parts.sort_by(|(ea, a), (eb, b)| {
        b.severity
            .cmp(&a.severity)
            .then(ea.state.is_acked().cmp(&eb.state.is_acked()))
            .then(ea.priority.cmp(&eb.priority))
    });
    let ((_, first), rest) = parts.split_first()?;
    let mut message = first.message.clone();
    for (_, a) in rest {
        message.push_str("; ");
        message.push_str(&a.message);
    }
    Some(Alarm::new(first.severity, first.status, message))
}

/// `Galaxy!Area.Tank001.Level.HiHi` with source object `Tank001` -> `Tank001.Level.HiHi`.
pub(super) fn short_reference(reference: &str, source_object: &str) -> String {
    let local = reference.split_once('!').map_or(reference, |(_, r)| r);
    if !source_object.is_empty() {
        if local.starts_with(&format!("{source_object}.")) {
            return local.to_string();
        }
        if let Some(i) = local.find(&format!(".{source_object}.")) {
            return local[i + 1..].to_string();
        }
    }
    if reference.contains('!') {
        // Drop the area.
        if let Some((_, rest)) = local.split_once('.') {
            if rest.contains('.') {
                return rest.to_string();
            }
        }
    }
    local.to_string()
}

pub(super) fn value_text(v: &Option<crate::gateway::MxValue>) -> String {
    v.as_ref().map_or_else(String::new, |v| v.to_string())
}

impl Entry {
    pub(super) fn from_active(a: &ActiveAlarm) -> Self {
        Entry {
            reference: a.reference.clone(),
            short: short_reference(&a.reference, &a.source_object),
            alarm_type: a.alarm_type.clone(),
            state: a.state,
            priority: a.priority,
            raised_at: a.raised_at,
            acked_at: a.state.is_acked().then_some(a.last_transition_at).flatten(),
            operator: a.operator.clone(),
            comment: a.comment.clone(),
            value: value_text(&a.current_value),
            limit: value_text(&a.limit_value),
            owner: None,
        }
    }

    pub(super) fn apply(&mut self, t: &AlarmTransition) {
        self.state = t.state;
        self.priority = t.priority;
        self.operator.clone_from(&t.operator);
        self.comment.clone_from(&t.comment);
        self.value = value_text(&t.current_value);
        self.limit = value_text(&t.limit_value);
        match t.kind {
            AlarmTransitionKind::Raise | AlarmTransitionKind::Retrigger => {
                self.raised_at = t.raised_at.or(t.at);
                self.acked_at = None;
            }
            AlarmTransitionKind::Acknowledge => self.acked_at = t.at,
            AlarmTransitionKind::Clear => {}
        }
    }
}

/// An `[[alarm_pv]]`: the worst state of its alarms as its value.
pub(super) struct OwnPv {
    pub(super) cfg: config::AlarmPv,
    pub(super) pv: SharedPv,
    /// Its posted times never go back.
    pub(super) stamps: Stamps,
}

/// Owners to re-post, each with System Platform's time of its latest transition
/// (`None`: now, as after a snapshot).
pub(super) type Changed = Vec<(Owner, Option<SystemTime>)>;

/// Enum choices (and int values) of an `[[alarm_pv]]`, by state.
pub(super) const OWN_CHOICES: [&str; 4] = ["NORMAL", "UNACK_ALM", "ACK_ALM", "UNACK_RTN"];

pub(super) fn own_index(states: impl Iterator<Item = AlarmState>) -> i32 {
    // The worst first: UNACK_ALM, then ACK_ALM, then UNACK_RTN.
    states
        .map(|s| match s {
            AlarmState::UnackAlm => 1,
            AlarmState::AckAlm => 2,
            AlarmState::UnackRtn => 3,
            AlarmState::AckRtn => 0,
        })
        .min_by_key(|i| match i {
            1 => 0,
            2 => 1,
            3 => 2,
            _ => 3,
        })
        .unwrap_or(0)
}

/// The alarm side of the bridge.
pub(in crate::bridge) struct Alarms {
    pub(super) cfg: config::Alarms,
    /// Where the alarm-only, `:ACK` and table PVs are served; `:ACK` PVs appear lazily.
    pub(super) server: Arc<Server>,
    pub(super) events: EventSender,
    /// Messages of the feed task.
    pub(in crate::bridge) feed: mpsc::UnboundedReceiver<FeedMsg>,
    /// The feed task; aborted when the bridge stops.
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
    /// The client of the attached feed, for AcknowledgeAlarm.
    pub(super) client: Option<GatewayClient>,
    /// Alarm references named in the config (lower-case, full and short) -> owner.
    pub(super) named: HashMap<String, Owner>,
    /// `Object.Attr` of each mapped PV (any case) -> its id (the first PV wins).
    pub(super) by_tag: ByTag,
    /// The active set, by full reference.
    pub(super) active: BTreeMap<String, Entry>,
    /// A snapshot being received (after `Attached`, before `SnapshotComplete`).
    pub(super) pending: Option<BTreeMap<String, Entry>>,
    /// Why the feed is down, while it is.
    pub(super) lost: Option<String>,
    pub(super) own: Vec<OwnPv>,
    /// `:ACK` PV name -> (owner, PV).
    pub(super) acks: HashMap<Arc<str>, (Owner, Arc<AckPv>)>,
    /// Owners whose `:ACK` PV exists (or that have none on purpose).
    pub(super) ack_done: HashMap<Owner, bool>,
    pub(super) table: Option<TablePv>,
    /// The table's posted times never go back.
    pub(super) table_stamps: Stamps,
    /// `[limits] max_alarms` and `max_table_rows`.
    pub(super) max_alarms: usize,
    pub(super) max_table_rows: usize,
    /// Raises not held since the last complete snapshot, the active set being full
    /// (`max_alarms`); and the same count for the snapshot being received.
    pub(super) dropped: u64,
    pub(super) pending_dropped: u64,
    /// Reloaded `[alarms]` settings change every alarm's part: the next remap re-posts
    /// them all.
    pub(super) settings_changed: bool,
    /// Owners a reload made or changed, re-posted by the next remap.
    pub(super) repost: Changed,
    /// A complete snapshot of the running feed has come: the active set can be shown.
    pub(super) synced: bool,
}

impl Drop for Alarms {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// An `:ACK` PV; the acknowledgement task posts the comment.
pub(super) struct AckPv {
    pub(super) pv: SharedPv,
    pub(super) stamps: SharedStamps,
    /// Acknowledgements under way on this PV (capped by `[limits] max_puts_per_pv`).
    pub(super) waiting: Arc<std::sync::atomic::AtomicUsize>,
}

impl AckPv {
    /// Disconnects its clients, unless an acknowledgement still under way holds it.
    pub(super) fn close(ack: Arc<AckPv>) {
        if let Ok(mut ack) = Arc::try_unwrap(ack) {
            let _ = ack.pv.close();
        }
    }
}
