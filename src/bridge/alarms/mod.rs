//! System Platform alarms: the gateway's alarm feed, mapped onto PVs.
//!
//! A feed task of its own keeps one StreamAlarms call open (reconnecting with backoff)
//! and hands every message to the bridge task. The state is rebuilt from each snapshot
//! (every active alarm, then `snapshot_complete`): the new set replaces the old one
//! whole, so nothing stale survives a reconnect and nothing is lost. Transitions (RAISE,
//! ACKNOWLEDGE, CLEAR, RETRIGGER) then move single alarms; an alarm that reaches ACK_RTN
//! leaves the set.
//!
//! An alarm belongs to a PV:
//! 1. named in the config (`alarms = [...]` of a `[[pv]]` or an `[[alarm_pv]]`), else
//! 2. by its reference: `Object.Attr.Alarm` belongs to the PV of tag `Object.Attr`; a
//!    feature-named `Object.AttrFeatureAlarm` (`Tank001.PVHiAlarm`) to the PV of the
//!    longest `Object.Attr` it starts with, else
//! 3. to no PV: it is still listed in the active-alarm table.
//!
//! Each PV that carries alarms gets a companion `:ACK` PV (made when its first alarm
//! arrives, or at start for alarms named in the config): a put of a string acknowledges
//! the PV's unacknowledged alarms with that comment, as the client's account.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;
use tracing::{info, warn};

mod ack;
mod feed;
mod reload;
mod remap;
mod severity;
mod table;

use self::ack::AckPv;
use self::feed::spawn_feed;
pub(super) use self::feed::FeedMsg;
use self::reload::open_table;
pub(super) use self::reload::FeedLink;
use self::severity::kind_severity;
use super::mapping::registry::Registry;
use super::pv_id::PvId;
use super::values::stamp::Stamps;
use crate::config::{self, AlarmPvType, SeverityScheme};
use crate::gateway::{
    ActiveAlarm, AlarmFeedItem, AlarmState, AlarmTransition, AlarmTransitionKind, Backoff,
    ClientOptions, GatewayClient,
};
use crate::pva::{
    Alarm, AlarmStatus, EventSender, NtValue, PvaError, Server, Severity, SharedPv, TablePv,
    TimeStamp, Update,
};

/// Alarm references named in the config (lower-case, full and short) -> owner; and the
/// lower-case `Object.Attr` of each mapped PV -> its id (the first PV added wins).
fn owner_maps(
    pvs: &Registry,
    alarm_pvs: &[config::AlarmPv],
) -> (HashMap<String, Owner>, HashMap<String, PvId>) {
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
            add_named(&p.cfg.alarms, Owner::Value(id));
        }
    }
    for (i, p) in alarm_pvs.iter().enumerate() {
        add_named(&p.alarms, Owner::Own(i));
    }
    let mut by_tag = HashMap::new();
    for id in ids {
        if let Some(p) = pvs.get(id) {
            by_tag
                .entry(p.cfg.tag.base().to_ascii_lowercase())
                .or_insert(id);
        }
    }
    (named, by_tag)
}

/// At most this many feed messages are taken in one batch before posting, so that the
/// bridge task still serves puts and data changes during a flood.
const MAX_BATCH: usize = 4096;

/// The message of a PV while the alarm feed is down.
const FEED_LOST: &str = "alarm feed lost";

/// Which PV an alarm shows on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Owner {
    /// A mapped PV.
    Value(PvId),
    /// Index into the `[[alarm_pv]]` PVs.
    Own(usize),
}

/// One active alarm as the bridge knows it.
#[derive(Debug, Clone)]
struct Entry {
    reference: String,
    /// `Object.Alarm` (the reference without `Galaxy!Area.`).
    short: String,
    alarm_type: String,
    state: AlarmState,
    priority: i32,
    raised_at: Option<SystemTime>,
    acked_at: Option<SystemTime>,
    operator: String,
    comment: String,
    value: String,
    limit: String,
    owner: Option<Owner>,
}

impl Entry {
    /// The alarm's own name: the last part of its reference (`HiHi`, `PumpFault`).
    fn name(&self) -> &str {
        self.short.rsplit('.').next().unwrap_or(&self.short)
    }

    fn state_word(&self) -> &'static str {
        match self.state {
            AlarmState::UnackAlm => "UNACK_ALM",
            AlarmState::AckAlm => "ACK_ALM",
            AlarmState::UnackRtn => "UNACK_RTN",
            AlarmState::AckRtn => "ACK_RTN",
        }
    }

    /// The severity while active: by the scheme, or by priority for a kind the `kind`
    /// scheme does not know.
    fn active_severity(&self, cfg: &config::Alarms, scheme: SeverityScheme) -> config::Severity {
        match scheme {
            SeverityScheme::Kind => kind_severity(&self.alarm_type, self.name()),
            SeverityScheme::Priority => None,
        }
        .unwrap_or_else(|| cfg.severity_of(self.priority))
    }

    fn part(&self, cfg: &config::Alarms, scheme: SeverityScheme) -> Alarm {
        let (severity, what) = match self.state {
            AlarmState::UnackAlm => (self.active_severity(cfg, scheme), "alarm, unacknowledged"),
            AlarmState::AckAlm => (self.active_severity(cfg, scheme), "alarm, acknowledged"),
            AlarmState::UnackRtn => (cfg.returned_unacked, "alarm returned, unacknowledged"),
            AlarmState::AckRtn => (config::Severity::None, "alarm returned, acknowledged"),
        };
        let severity = super::values::limits::severity(severity);
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
fn part_of(cfg: &config::Alarms, scheme: SeverityScheme, entries: &[&Entry]) -> Option<Alarm> {
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
fn short_reference(reference: &str, source_object: &str) -> String {
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

fn value_text(v: &Option<crate::gateway::MxValue>) -> String {
    v.as_ref().map_or_else(String::new, |v| v.to_string())
}

impl Entry {
    fn from_active(a: &ActiveAlarm) -> Self {
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

    fn apply(&mut self, t: &AlarmTransition) {
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
struct OwnPv {
    cfg: config::AlarmPv,
    pv: SharedPv,
    /// Its posted times never go back.
    stamps: Stamps,
}

/// Owners to re-post, each with System Platform's time of its latest transition
/// (`None`: now, as after a snapshot).
type Changed = Vec<(Owner, Option<SystemTime>)>;

/// Enum choices (and int values) of an `[[alarm_pv]]`, by state.
const OWN_CHOICES: [&str; 4] = ["NORMAL", "UNACK_ALM", "ACK_ALM", "UNACK_RTN"];

fn own_index(states: impl Iterator<Item = AlarmState>) -> i32 {
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
pub(super) struct Alarms {
    cfg: config::Alarms,
    /// Where the alarm-only, `:ACK` and table PVs are served; `:ACK` PVs appear lazily.
    server: Arc<Server>,
    events: EventSender,
    /// Messages of the feed task.
    pub feed: mpsc::UnboundedReceiver<FeedMsg>,
    /// The feed task; aborted when the bridge stops.
    task: Option<tokio::task::JoinHandle<()>>,
    /// The client of the attached feed, for AcknowledgeAlarm.
    client: Option<GatewayClient>,
    /// Alarm references named in the config (lower-case, full and short) -> owner.
    named: HashMap<String, Owner>,
    /// Lower-case `Object.Attr` of each mapped PV -> its id (the first PV wins).
    by_tag: HashMap<String, PvId>,
    /// The active set, by full reference.
    active: BTreeMap<String, Entry>,
    /// A snapshot being received (after `Attached`, before `SnapshotComplete`).
    pending: Option<BTreeMap<String, Entry>>,
    /// Why the feed is down, while it is.
    lost: Option<String>,
    own: Vec<OwnPv>,
    /// `:ACK` PV name -> (owner, PV).
    acks: HashMap<Arc<str>, (Owner, Arc<AckPv>)>,
    /// Owners whose `:ACK` PV exists (or that have none on purpose).
    ack_done: HashMap<Owner, bool>,
    table: Option<TablePv>,
    /// The table's posted times never go back.
    table_stamps: Stamps,
    /// `[limits] max_alarms` and `max_table_rows`.
    max_alarms: usize,
    max_table_rows: usize,
    /// Raises not held since the last complete snapshot, the active set being full
    /// (`max_alarms`); and the same count for the snapshot being received.
    dropped: u64,
    pending_dropped: u64,
    /// Reloaded `[alarms]` settings change every alarm's part: the next remap re-posts
    /// them all.
    settings_changed: bool,
    /// Owners a reload made or changed, re-posted by the next remap.
    repost: Changed,
    /// A complete snapshot of the running feed has come: the active set can be shown.
    synced: bool,
}

impl Drop for Alarms {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Alarms {
    /// Serves the `[[alarm_pv]]` PVs, the table and the `:ACK` PVs the config already
    /// implies, and starts the feed when `[alarms] enabled`.
    pub fn new(
        config: &config::Config,
        opts: &ClientOptions,
        server: Arc<Server>,
        events: &EventSender,
        pvs: &Registry,
    ) -> Result<Self, PvaError> {
        let cfg = config.alarms.clone();
        let (tx, feed) = mpsc::unbounded_channel();
        let task = cfg.enabled.then(|| {
            spawn_feed(
                opts.clone(),
                cfg.filter_prefix.clone(),
                Backoff::new(
                    config.gateway.reconnect_initial,
                    config.gateway.reconnect_max,
                ),
                tx,
            )
        });
        let (named, by_tag) = owner_maps(pvs, &config.alarm_pvs);
        let mut own = Vec::new();
        for c in &config.alarm_pvs {
            own.push(OwnPv::open(c, &server, events, Stamps::default())?);
        }
        let mut table_stamps = Stamps::default();
        let table = match &cfg.table {
            Some(name) if cfg.enabled => Some(open_table(
                name.as_str(),
                &server,
                events,
                pvs,
                &mut table_stamps,
            )?),
            _ => None,
        };
        let mut alarms = Alarms {
            cfg,
            server,
            events: events.clone(),
            feed,
            task,
            client: None,
            named,
            by_tag,
            active: BTreeMap::new(),
            pending: None,
            lost: None,
            own,
            acks: HashMap::new(),
            ack_done: HashMap::new(),
            table,
            table_stamps,
            max_alarms: config.limits.max_alarms,
            max_table_rows: config.limits.max_table_rows,
            dropped: 0,
            pending_dropped: 0,
            settings_changed: false,
            repost: Vec::new(),
            synced: false,
        };
        if alarms.cfg.enabled {
            let known: Vec<Owner> = alarms.named.values().copied().collect();
            for owner in known {
                alarms.ensure_ack(owner, pvs);
            }
        }
        Ok(alarms)
    }

    /// The feed's state for the status PVs, and why when it is not up.
    pub fn feed_state(&self) -> (crate::status::LinkState, &str) {
        use crate::status::LinkState;
        match (&self.lost, self.cfg.enabled, self.synced) {
            (_, false, _) => (LinkState::Disabled, "[alarms] enabled = false"),
            (Some(reason), _, _) => (LinkState::Lost, reason.as_str()),
            (None, _, true) => (LinkState::Up, ""),
            (None, _, false) => (LinkState::Connecting, "waiting for the alarm snapshot"),
        }
    }

    /// The PV an alarm belongs to, if any.
    fn owner_of(&self, e: &Entry) -> Option<Owner> {
        let lower_ref = e.reference.to_ascii_lowercase();
        let lower = e.short.to_ascii_lowercase();
        if let Some(o) = self
            .named
            .get(&lower_ref)
            .or_else(|| self.named.get(&lower))
        {
            return Some(*o);
        }
        let (attr, _) = lower.rsplit_once('.')?;
        if attr.contains('.') {
            return self.by_tag.get(attr).map(|&i| Owner::Value(i));
        }
        // Feature-named: `tank001.pvhialarm` -> the longest `tank001.pv` with a PV.
        if !lower.ends_with("alarm") {
            return None;
        }
        self.by_tag
            .iter()
            .filter(|(tag, _)| lower.starts_with(tag.as_str()) && lower.len() > tag.len())
            .max_by_key(|(tag, _)| tag.len())
            .map(|(_, &i)| Owner::Value(i))
    }

    /// The owner's PV name, `acknowledge` and `alarm_severity`; `None` for an index in
    /// neither list (which the owner maps never hold).
    fn owner_settings<'a>(
        &'a self,
        owner: Owner,
        pvs: &'a Registry,
    ) -> Option<(&'a str, bool, Option<SeverityScheme>)> {
        match owner {
            Owner::Value(i) => pvs.get(i).map(|p| {
                let c = &p.cfg;
                (c.name.as_str(), c.acknowledge, c.alarm_severity)
            }),
            Owner::Own(i) => self.own.get(i).map(|p| {
                let c = &p.cfg;
                (c.name.as_str(), c.acknowledge, c.alarm_severity)
            }),
        }
    }

    fn owner_name<'a>(&'a self, owner: Owner, pvs: &'a Registry) -> &'a str {
        self.owner_settings(owner, pvs).map_or("", |s| s.0)
    }

    fn acknowledge_enabled(&self, owner: Owner, pvs: &Registry) -> bool {
        self.owner_settings(owner, pvs).is_some_and(|s| s.1)
    }

    /// A message of the feed task, and every one queued behind it (up to [`MAX_BATCH`]):
    /// the PVs and the table are posted once for the whole batch, not once per message,
    /// so that an alarm flood does not rebuild and post the table for each transition.
    ///
    /// The value PVs whose alarm changed are marked and listed in `dirty`: the bridge
    /// posts each once at the end of its turn, with the data change of the same turn.
    /// Tests feed the alarms themselves: the feed task stops, and its first snapshot is
    /// complete with no alarm.
    #[cfg(test)]
    pub fn fed_by_test(&mut self, pvs: &mut Registry) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let complete = FeedMsg::Item(AlarmFeedItem::SnapshotComplete {
            active_alarm_count: 0,
        });
        self.on_batch(complete, pvs, &mut Vec::new());
    }

    pub fn on_feed(&mut self, msg: FeedMsg, pvs: &mut Registry, dirty: &mut Vec<PvId>) {
        self.on_batch(msg, pvs, dirty);
    }

    /// [`Alarms::on_feed`] for what is already queued, if anything is.
    pub fn on_ready(&mut self, pvs: &mut Registry, dirty: &mut Vec<PvId>) {
        if let Ok(msg) = self.feed.try_recv() {
            self.on_batch(msg, pvs, dirty);
        }
    }

    /// [`Alarms::on_feed`]; returns how many messages the batch took.
    fn on_batch(&mut self, first: FeedMsg, pvs: &mut Registry, dirty: &mut Vec<PvId>) -> usize {
        let mut owners = Vec::new();
        let mut post = false;
        let mut taken = 0;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            if let Some(o) = self.apply(msg) {
                owners.extend(o);
                post = true;
            }
            taken += 1;
            if taken < MAX_BATCH {
                next = self.feed.try_recv().ok();
            }
        }
        if post {
            self.refresh(owners, pvs, dirty);
        }
        taken
    }

    /// Takes one message into the state; the owners to re-post when something is to be
    /// posted (the table at least), `None` when nothing is.
    fn apply(&mut self, msg: FeedMsg) -> Option<Changed> {
        match msg {
            FeedMsg::Attached(client) => {
                self.client = Some(client);
                self.pending = Some(BTreeMap::new());
                self.pending_dropped = 0;
                None
            }
            FeedMsg::Item(AlarmFeedItem::Active(a)) => {
                let pending = self.pending.get_or_insert_with(BTreeMap::new);
                if pending.len() >= self.max_alarms && !pending.contains_key(&a.reference) {
                    self.pending_dropped += 1;
                    return None;
                }
                let mut e = Entry::from_active(&a);
                e.owner = self.owner_of(&e);
                self.pending
                    .get_or_insert_with(BTreeMap::new)
                    .insert(e.reference.clone(), e);
                None
            }
            FeedMsg::Item(AlarmFeedItem::SnapshotComplete { active_alarm_count }) => {
                let new = self.pending.take().unwrap_or_default();
                // Those not held past max_alarms were received too.
                let received = new.len() as u64 + self.pending_dropped;
                if received != u64::from(active_alarm_count) {
                    warn!(
                        received,
                        announced = active_alarm_count,
                        "alarm snapshot count differs"
                    );
                }
                let old = std::mem::replace(&mut self.active, new);
                self.lost = None;
                self.synced = true;
                self.dropped = std::mem::take(&mut self.pending_dropped);
                info!(active = self.active.len(), "alarm snapshot");
                if self.dropped > 0 {
                    warn!(
                        max_alarms = self.max_alarms,
                        not_held = self.dropped,
                        "more active alarms than [limits] max_alarms: the rest are not held"
                    );
                }
                // Every alarm PV of its own, active alarms or not: each still says
                // "waiting for the alarm feed" or "alarm feed lost" until re-posted.
                Some(
                    old.values()
                        .chain(self.active.values())
                        .filter_map(|e| e.owner)
                        .chain((0..self.own.len()).map(Owner::Own))
                        .map(|o| (o, None))
                        .collect(),
                )
            }
            FeedMsg::Item(AlarmFeedItem::Transition(t)) => self.on_transition(&t),
            FeedMsg::Lost(reason) => {
                self.client = None;
                self.pending = None;
                if self.lost.as_deref() == Some(reason.as_str()) {
                    return None;
                }
                warn!(%reason, "alarm feed lost");
                self.lost = Some(reason);
                Some(Vec::new())
            }
        }
    }

    /// Applies a transition; the owner to re-post, unless a snapshot is being received.
    fn on_transition(&mut self, t: &AlarmTransition) -> Option<Changed> {
        let set = self.pending.as_ref().unwrap_or(&self.active);
        // An alarm that leaves needs no room; a new one is not held past the cap.
        if set.len() >= self.max_alarms
            && t.state != AlarmState::AckRtn
            && !set.contains_key(&t.reference)
        {
            return self.not_held(t);
        }
        let set = match self.pending.as_mut() {
            Some(p) => p,
            None => &mut self.active,
        };
        let owner = match set.get_mut(&t.reference) {
            Some(e) => {
                e.apply(t);
                e.owner
            }
            None => {
                let mut e = Entry::from_active(&ActiveAlarm {
                    reference: t.reference.clone(),
                    source_object: t.source_object.clone(),
                    alarm_type: t.alarm_type.clone(),
                    state: t.state,
                    priority: t.priority,
                    raised_at: t.raised_at,
                    last_transition_at: t.at,
                    operator: t.operator.clone(),
                    comment: t.comment.clone(),
                    category: t.category.clone(),
                    description: t.description.clone(),
                    current_value: t.current_value.clone(),
                    limit_value: t.limit_value.clone(),
                });
                e.apply(t);
                let owner = self.owner_of(&e);
                e.owner = owner;
                let set = match self.pending.as_mut() {
                    Some(p) => p,
                    None => &mut self.active,
                };
                set.insert(t.reference.clone(), e);
                owner
            }
        };
        if t.state == AlarmState::AckRtn {
            match self.pending.as_mut() {
                Some(p) => p.remove(&t.reference),
                None => self.active.remove(&t.reference),
            };
        }
        tracing::debug!(reference = %t.reference, kind = ?t.kind, state = ?t.state, "alarm transition");
        self.pending
            .is_none()
            .then(|| owner.into_iter().map(|o| (o, t.at)).collect())
    }

    /// The active set is full (`[limits] max_alarms`): the alarm of `t` is not held. The
    /// first one is logged; the table says so until a complete snapshot fits.
    fn not_held(&mut self, t: &AlarmTransition) -> Option<Changed> {
        if self.pending.is_some() {
            self.pending_dropped += 1;
            return None;
        }
        self.dropped += 1;
        if self.dropped == 1 {
            warn!(
                max_alarms = self.max_alarms,
                reference = %t.reference,
                "more active alarms than [limits] max_alarms: further raises are not held"
            );
        }
        // The table shows it.
        Some(Vec::new())
    }

    /// Re-posts the alarm of each owner in `owners`, and the table. While the feed is
    /// down every value PV that carries alarms (or is configured to) gets a MINOR
    /// "alarm feed lost" part: it cannot claim NO_ALARM while an alarm may be active.
    fn refresh(&mut self, mut owners: Changed, pvs: &mut Registry, dirty: &mut Vec<PvId>) {
        let lost_part = self
            .lost
            .as_ref()
            .map(|_| Alarm::new(Severity::Minor, AlarmStatus::Driver, FEED_LOST));
        let with_alarms: std::collections::HashSet<Owner> =
            self.active.values().filter_map(|e| e.owner).collect();
        for (i, pv) in pvs.iter_mut() {
            let owner = Owner::Value(i);
            let carries = self.ack_done.contains_key(&owner) || with_alarms.contains(&owner);
            let part = lost_part.clone().filter(|_| carries);
            if pv.feed_lost != part {
                pv.feed_lost = part;
                owners.push((owner, None));
            }
        }
        // One per owner, with its latest transition time.
        owners.sort_by_key(|(o, _)| *o);
        owners.dedup_by(|b, a| {
            let same = a.0 == b.0;
            if same {
                a.1 = a.1.max(b.1);
            }
            same
        });
        for (owner, at) in owners {
            self.ensure_ack(owner, pvs);
            let entries: Vec<&Entry> = self
                .active
                .values()
                .filter(|e| e.owner == Some(owner))
                .collect();
            let part = part_of(&self.cfg, self.scheme_of(owner, pvs), &entries);
            match owner {
                Owner::Value(i) => {
                    if let Some(pv) = pvs.get_mut(i) {
                        pv.sp_alarm = part;
                        if pv.alarms_changed(at) {
                            dirty.push(i);
                        }
                    }
                }
                Owner::Own(i) => {
                    let index = own_index(entries.iter().map(|e| e.state));
                    self.post_own(i, index, part, at);
                }
            }
        }
        if self.lost.is_some() {
            // The reason (which may name hosts) is logged, not shown.
            let alarm = Alarm::new(Severity::Invalid, AlarmStatus::Driver, FEED_LOST);
            for own in &mut self.own {
                let time = own.stamps.now(own.cfg.name.as_str());
                let _ = own
                    .pv
                    .post(&Update::default().with_alarm(alarm.clone()).with_time(time));
            }
        }
        self.post_table(pvs);
    }

    /// How the severity of the owner's alarms is chosen.
    fn scheme_of(&self, owner: Owner, pvs: &Registry) -> SeverityScheme {
        self.owner_settings(owner, pvs)
            .and_then(|s| s.2)
            .unwrap_or(self.cfg.severity)
    }

    /// Posts an `[[alarm_pv]]` at System Platform's time of its latest transition.
    fn post_own(&mut self, i: usize, index: i32, part: Option<Alarm>, at: Option<SystemTime>) {
        let Some(own) = self.own.get_mut(i) else {
            return;
        };
        let value = match own.cfg.pv_type {
            AlarmPvType::Enum => NtValue::Enum(index),
            AlarmPvType::Int32 => NtValue::Int32(index),
        };
        let time = own.stamps.next(
            own.cfg.name.as_str(),
            at.map_or_else(TimeStamp::now, TimeStamp::from),
        );
        let update = Update::value(value)
            .with_alarm(part.unwrap_or_else(Alarm::none))
            .with_time(time);
        if let Err(e) = own.pv.post(&update) {
            warn!(pv = %own.cfg.name, error = %e, "post failed");
        }
    }
}

#[cfg(test)]
mod tests;
