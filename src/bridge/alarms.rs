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
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::convert::iso8601;
use super::pv::MappedPv;
use crate::config::{self, AlarmPvType};
use crate::gateway::{
    ActiveAlarm, AlarmFeedItem, AlarmState, AlarmTransition, AlarmTransitionKind, ClientOptions,
    GatewayClient, GatewayError,
};
use crate::pva::{
    Access, Alarm, AlarmStatus, Column, Display, EventSender, NtValue, PutRequest, PvType,
    PvaError, ScalarType, Server, Severity, SharedPv, TablePv, TableUpdate, TimeStamp, Update,
};

/// Joins the parts of a PV's alarm: the highest severity wins (the earlier part on a
/// tie, `base` last), and the message keeps every part's message, the winner's first.
/// A plain-Good `base` ("Good") adds nothing when another part speaks.
pub(super) fn combine<'a>(
    parts: impl IntoIterator<Item = Option<&'a Alarm>>,
    base: &'a Alarm,
    base_plain: bool,
) -> Alarm {
    let mut all: Vec<&Alarm> = parts.into_iter().flatten().collect();
    if !base_plain || all.is_empty() {
        all.push(base);
    }
    let Some(top) = all.iter().copied().max_by_key(|a| a.severity) else {
        return base.clone();
    };
    // max_by_key keeps the last maximum; take the first one instead.
    let top = all
        .iter()
        .copied()
        .find(|a| a.severity == top.severity)
        .unwrap_or(top);
    let mut message = top.message.clone();
    for a in all.iter().filter(|a| !std::ptr::eq(**a, top)) {
        if !a.message.is_empty() {
            if !message.is_empty() {
                message.push_str("; ");
            }
            message.push_str(&a.message);
        }
    }
    Alarm::new(top.severity, top.status, message)
}

/// At most this many feed messages are taken in one batch before posting, so that the
/// bridge task still serves puts and data changes during a flood.
const MAX_BATCH: usize = 4096;

/// The message of a PV while the alarm feed is down.
const FEED_LOST: &str = "alarm feed lost";

/// What the feed task tells the bridge task.
pub(super) enum FeedMsg {
    /// The feed is (re)attached; a snapshot follows. The client serves AcknowledgeAlarm.
    Attached(GatewayClient),
    Item(AlarmFeedItem),
    /// The feed ended or could not attach; the task retries after a backoff.
    Lost(String),
}

/// Keeps a StreamAlarms call open until the receiver goes away.
fn spawn_feed(
    opts: ClientOptions,
    prefix: String,
    backoff: (Duration, Duration),
    tx: mpsc::UnboundedSender<FeedMsg>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = backoff.0;
        loop {
            let attached = async {
                let client = GatewayClient::connect(&opts).await?;
                let feed = client.stream_alarms(&prefix).await?;
                Ok::<_, GatewayError>((client, feed))
            }
            .await;
            let reason = match attached {
                Ok((client, mut feed)) => {
                    if tx.send(FeedMsg::Attached(client)).is_err() {
                        return;
                    }
                    loop {
                        match feed.next().await {
                            Some(Ok(item)) => {
                                // The backoff resets only once a whole snapshot came: a
                                // feed that attaches and then fails keeps backing off.
                                if matches!(item, AlarmFeedItem::SnapshotComplete { .. }) {
                                    delay = backoff.0;
                                }
                                if tx.send(FeedMsg::Item(item)).is_err() {
                                    return;
                                }
                            }
                            Some(Err(e)) => break format!("alarm feed failed: {e}"),
                            None => break "the gateway ended the alarm feed".to_string(),
                        }
                    }
                }
                Err(e) => format!("cannot attach the alarm feed: {e}"),
            };
            if tx.send(FeedMsg::Lost(reason)).is_err() {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(backoff.1);
        }
    })
}

/// Which PV an alarm shows on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Owner {
    /// Index into the bridge's mapped PVs.
    Value(usize),
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

    fn part(&self, cfg: &config::Alarms) -> Alarm {
        let (severity, what) = match self.state {
            AlarmState::UnackAlm => (cfg.severity_of(self.priority), "alarm, unacknowledged"),
            AlarmState::AckAlm => (cfg.severity_of(self.priority), "alarm, acknowledged"),
            AlarmState::UnackRtn => (cfg.returned_unacked, "alarm returned, unacknowledged"),
            AlarmState::AckRtn => (config::Severity::None, "alarm returned, acknowledged"),
        };
        let severity = super::limits::severity(severity);
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
fn part_of(cfg: &config::Alarms, entries: &[&Entry]) -> Option<Alarm> {
    let mut parts: Vec<(&Entry, Alarm)> = entries.iter().map(|e| (*e, e.part(cfg))).collect();
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
}

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

/// The alarm columns of the active-alarm table.
fn table_columns() -> Vec<Column> {
    let s = |n: &str, l: &str| Column::new(n, l, ScalarType::String);
    vec![
        s("reference", "Reference"),
        s("pv", "PV"),
        s("type", "Type"),
        Column::new("priority", "Priority", ScalarType::Int32),
        s("state", "State"),
        s("raised", "Raised"),
        s("acked", "Acknowledged"),
        s("operator", "Operator"),
        s("comment", "Comment"),
        s("value", "Value"),
        s("limit", "Limit"),
    ]
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
    /// Lower-case `Object.Attr` of each mapped PV -> its index (the first PV wins).
    by_tag: HashMap<String, usize>,
    /// The active set, by full reference.
    active: BTreeMap<String, Entry>,
    /// A snapshot being received (after `Attached`, before `SnapshotComplete`).
    pending: Option<BTreeMap<String, Entry>>,
    /// Why the feed is down, while it is.
    lost: Option<String>,
    own: Vec<OwnPv>,
    /// `:ACK` PV name -> (owner, PV).
    acks: HashMap<Arc<str>, (Owner, Arc<SharedPv>)>,
    /// Owners whose `:ACK` PV exists (or that have none on purpose).
    ack_done: HashMap<Owner, bool>,
    table: Option<TablePv>,
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
        pvs: &[MappedPv],
    ) -> Result<Self, PvaError> {
        let cfg = config.alarms.clone();
        let (tx, feed) = mpsc::unbounded_channel();
        let task = cfg.enabled.then(|| {
            spawn_feed(
                opts.clone(),
                cfg.filter_prefix.clone(),
                (
                    config.gateway.reconnect_initial,
                    config.gateway.reconnect_max,
                ),
                tx,
            )
        });
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
        for (i, p) in pvs.iter().enumerate() {
            add_named(&p.cfg.alarms, Owner::Value(i));
        }
        for (i, p) in config.alarm_pvs.iter().enumerate() {
            add_named(&p.alarms, Owner::Own(i));
        }
        let mut by_tag = HashMap::new();
        for (i, p) in pvs.iter().enumerate() {
            by_tag
                .entry(p.cfg.tag.base().to_ascii_lowercase())
                .or_insert(i);
        }
        let mut own = Vec::new();
        for c in &config.alarm_pvs {
            let mut pv = SharedPv::new(c.name.as_str(), Access::ReadOnly, events)?;
            let (ty, value) = match c.pv_type {
                AlarmPvType::Enum => (PvType::Enum, NtValue::Enum(0)),
                AlarmPvType::Int32 => (PvType::Scalar(ScalarType::Int32), NtValue::Int32(0)),
            };
            let mut initial = Update::value(value)
                .with_alarm(Alarm::new(
                    Severity::Invalid,
                    AlarmStatus::Undefined,
                    "waiting for the alarm feed",
                ))
                .with_time(TimeStamp::now())
                .with_display(Display {
                    description: c.description.clone().unwrap_or_default(),
                    ..Default::default()
                });
            if ty == PvType::Enum {
                initial = initial.with_choices(OWN_CHOICES);
            }
            pv.open(ty, &initial)?;
            server.add_pv(&pv)?;
            own.push(OwnPv { cfg: c.clone(), pv });
        }
        let table = match &cfg.table {
            Some(name) if cfg.enabled => {
                let mut t = TablePv::new(name.as_str(), table_columns(), events)?;
                let empty = TableUpdate {
                    columns: Some(Self::rows(&BTreeMap::new(), &[], &[])),
                    alarm: Some(Alarm::new(
                        Severity::Invalid,
                        AlarmStatus::Undefined,
                        "waiting for the alarm feed",
                    )),
                    time: Some(TimeStamp::now()),
                };
                t.open(&empty)?;
                server.add_table(&t)?;
                Some(t)
            }
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
        };
        if alarms.cfg.enabled {
            let known: Vec<Owner> = alarms.named.values().copied().collect();
            for owner in known {
                alarms.ensure_ack(owner, pvs);
            }
        }
        Ok(alarms)
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

    fn owner_name<'a>(&'a self, owner: Owner, pvs: &'a [MappedPv]) -> &'a str {
        match owner {
            Owner::Value(i) => pvs[i].cfg.name.as_str(),
            Owner::Own(i) => self.own[i].cfg.name.as_str(),
        }
    }

    fn acknowledge_enabled(&self, owner: Owner, pvs: &[MappedPv]) -> bool {
        match owner {
            Owner::Value(i) => pvs[i].cfg.acknowledge,
            Owner::Own(i) => self.own[i].cfg.acknowledge,
        }
    }

    /// Serves the owner's `:ACK` PV once.
    fn ensure_ack(&mut self, owner: Owner, pvs: &[MappedPv]) {
        if self.ack_done.contains_key(&owner) {
            return;
        }
        let wanted = self.acknowledge_enabled(owner, pvs);
        self.ack_done.insert(owner, wanted);
        if !wanted {
            return;
        }
        let target = self.owner_name(owner, pvs).to_string();
        let name = format!("{target}{}", self.cfg.ack_suffix);
        let made = (|| {
            let mut pv = SharedPv::new(&name, Access::ReadWrite, &self.events)?;
            pv.open(
                PvType::Scalar(ScalarType::String),
                &Update::value(NtValue::String(String::new()))
                    .with_alarm(Alarm::none())
                    .with_time(TimeStamp::now())
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
                self.acks
                    .insert(Arc::from(name.as_str()), (owner, Arc::new(pv)));
            }
            Err(e) => warn!(pv = %name, error = %e, "cannot serve the acknowledgement PV"),
        }
    }

    /// A message of the feed task, and every one queued behind it (up to [`MAX_BATCH`]):
    /// the PVs and the table are posted once for the whole batch, not once per message,
    /// so that an alarm flood does not rebuild and post the table for each transition.
    pub fn on_feed(&mut self, msg: FeedMsg, pvs: &mut [MappedPv]) {
        self.on_batch(msg, pvs);
    }

    /// [`Alarms::on_feed`]; returns how many messages the batch took.
    fn on_batch(&mut self, first: FeedMsg, pvs: &mut [MappedPv]) -> usize {
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
            self.refresh(owners, pvs);
        }
        taken
    }

    /// Takes one message into the state; the owners to re-post when something is to be
    /// posted (the table at least), `None` when nothing is.
    fn apply(&mut self, msg: FeedMsg) -> Option<Vec<Owner>> {
        match msg {
            FeedMsg::Attached(client) => {
                self.client = Some(client);
                self.pending = Some(BTreeMap::new());
                None
            }
            FeedMsg::Item(AlarmFeedItem::Active(a)) => {
                let mut e = Entry::from_active(&a);
                e.owner = self.owner_of(&e);
                self.pending
                    .get_or_insert_with(BTreeMap::new)
                    .insert(e.reference.clone(), e);
                None
            }
            FeedMsg::Item(AlarmFeedItem::SnapshotComplete { active_alarm_count }) => {
                let new = self.pending.take().unwrap_or_default();
                if new.len() != active_alarm_count as usize {
                    warn!(
                        received = new.len(),
                        announced = active_alarm_count,
                        "alarm snapshot count differs"
                    );
                }
                let old = std::mem::replace(&mut self.active, new);
                self.lost = None;
                info!(active = self.active.len(), "alarm snapshot");
                // Every alarm PV of its own, active alarms or not: each still says
                // "waiting for the alarm feed" or "alarm feed lost" until re-posted.
                Some(
                    old.values()
                        .chain(self.active.values())
                        .filter_map(|e| e.owner)
                        .chain((0..self.own.len()).map(Owner::Own))
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
    fn on_transition(&mut self, t: &AlarmTransition) -> Option<Vec<Owner>> {
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
        self.pending.is_none().then(|| owner.into_iter().collect())
    }

    /// Re-posts the alarm of each owner in `owners`, and the table. While the feed is
    /// down every value PV that carries alarms (or is configured to) gets a MINOR
    /// "alarm feed lost" part: it cannot claim NO_ALARM while an alarm may be active.
    fn refresh(&mut self, mut owners: Vec<Owner>, pvs: &mut [MappedPv]) {
        let lost_part = self
            .lost
            .as_ref()
            .map(|_| Alarm::new(Severity::Minor, AlarmStatus::Driver, FEED_LOST));
        let with_alarms: std::collections::HashSet<Owner> =
            self.active.values().filter_map(|e| e.owner).collect();
        for (i, pv) in pvs.iter_mut().enumerate() {
            let owner = Owner::Value(i);
            let carries = self.ack_done.contains_key(&owner) || with_alarms.contains(&owner);
            let part = lost_part.clone().filter(|_| carries);
            if pv.feed_lost != part {
                pv.feed_lost = part;
                owners.push(owner);
            }
        }
        owners.sort();
        owners.dedup();
        for owner in owners {
            self.ensure_ack(owner, pvs);
            let entries: Vec<&Entry> = self
                .active
                .values()
                .filter(|e| e.owner == Some(owner))
                .collect();
            let part = self.part_of(&entries);
            match owner {
                Owner::Value(i) => {
                    pvs[i].sp_alarm = part;
                    pvs[i].alarms_changed();
                }
                Owner::Own(i) => {
                    let index = own_index(entries.iter().map(|e| e.state));
                    self.post_own(i, index, part);
                }
            }
        }
        if self.lost.is_some() {
            // The reason (which may name hosts) is logged, not shown.
            let alarm = Alarm::new(Severity::Invalid, AlarmStatus::Driver, FEED_LOST);
            for i in 0..self.own.len() {
                let _ = self.own[i].pv.post(
                    &Update::default()
                        .with_alarm(alarm.clone())
                        .with_time(TimeStamp::now()),
                );
            }
            self.post_table(alarm, pvs);
        } else {
            self.post_table(Alarm::none(), pvs);
        }
    }

    fn part_of(&self, entries: &[&Entry]) -> Option<Alarm> {
        part_of(&self.cfg, entries)
    }

    fn post_own(&self, i: usize, index: i32, part: Option<Alarm>) {
        let own = &self.own[i];
        let value = match own.cfg.pv_type {
            AlarmPvType::Enum => NtValue::Enum(index),
            AlarmPvType::Int32 => NtValue::Int32(index),
        };
        let update = Update::value(value)
            .with_alarm(part.unwrap_or_else(Alarm::none))
            .with_time(TimeStamp::now());
        if let Err(e) = own.pv.post(&update) {
            warn!(pv = %own.cfg.name, error = %e, "post failed");
        }
    }

    /// Every column of the table for `active`, rows by priority then raise time.
    fn rows(active: &BTreeMap<String, Entry>, names: &[&str], own: &[&str]) -> Vec<NtValue> {
        let mut rows: Vec<&Entry> = active.values().collect();
        rows.sort_by(|a, b| {
            (a.priority, a.raised_at, &a.reference).cmp(&(b.priority, b.raised_at, &b.reference))
        });
        let col = |f: &dyn Fn(&Entry) -> String| {
            NtValue::StringArray(rows.iter().map(|e| f(e)).collect())
        };
        let time = |t: Option<SystemTime>| t.map(iso8601).unwrap_or_default();
        vec![
            col(&|e| e.reference.clone()),
            col(&|e| match e.owner {
                Some(Owner::Value(i)) => names.get(i).copied().unwrap_or_default().to_string(),
                Some(Owner::Own(i)) => own.get(i).copied().unwrap_or_default().to_string(),
                None => String::new(),
            }),
            col(&|e| e.alarm_type.clone()),
            NtValue::Int32Array(rows.iter().map(|e| e.priority).collect()),
            col(&|e| e.state_word().to_string()),
            col(&|e| time(e.raised_at)),
            col(&|e| time(e.acked_at)),
            col(&|e| e.operator.clone()),
            col(&|e| e.comment.clone()),
            col(&|e| e.value.clone()),
            col(&|e| e.limit.clone()),
        ]
    }

    fn post_table(&self, alarm: Alarm, pvs: &[MappedPv]) {
        let Some(table) = &self.table else { return };
        let names: Vec<&str> = pvs.iter().map(|p| p.cfg.name.as_str()).collect();
        let own: Vec<&str> = self.own.iter().map(|o| o.cfg.name.as_str()).collect();
        let update = TableUpdate {
            columns: Some(Self::rows(&self.active, &names, &own)),
            alarm: Some(alarm),
            time: Some(TimeStamp::now()),
        };
        if let Err(e) = table.post(&update) {
            warn!(pv = %table.name(), error = %e, "post failed");
        }
    }

    /// A put to an `:ACK` PV is taken here; any other put is handed back.
    pub fn take_put(&mut self, put: PutRequest, pvs: &[MappedPv]) -> Option<PutRequest> {
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
        let operator = if put.credentials.account.is_empty() {
            "anonymous".to_string()
        } else {
            put.credentials.account.clone()
        };
        info!(pv = %pv, %operator, peer = %put.credentials.peer, alarms = refs.len(), "acknowledge");
        tokio::spawn(async move {
            let mut refused = Vec::new();
            for r in &refs {
                if let Err(e) = client.acknowledge_alarm(r, &comment, &operator).await {
                    let why = e
                        .mx_failure()
                        .and_then(|f| f.detail_name())
                        .map_or_else(|| e.to_string(), str::to_string);
                    warn!(reference = %r, reason = %why, "acknowledgement refused");
                    refused.push(format!("{r}: {why}"));
                }
            }
            if refused.is_empty() {
                let _ = ack_pv
                    .post(&Update::value(NtValue::String(comment)).with_time(TimeStamp::now()));
                put.completion.complete(Ok(()));
            } else {
                put.completion.complete(Err(format!(
                    "{pv}: System Platform refused the acknowledgement: {}",
                    refused.join(", ")
                )));
            }
        });
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_references() {
        assert_eq!(
            short_reference("Galaxy!Area001.Tank001.Level.HiHi", "Tank001"),
            "Tank001.Level.HiHi"
        );
        assert_eq!(
            short_reference("Galaxy!Area001.Pump001.PumpFault", ""),
            "Pump001.PumpFault"
        );
        assert_eq!(
            short_reference("Tank001.PVHiAlarm", "Tank001"),
            "Tank001.PVHiAlarm"
        );
    }

    #[test]
    fn higher_severity_wins_and_messages_are_kept() {
        let hihi = Alarm::new(
            Severity::Major,
            AlarmStatus::Record,
            "HiHi alarm, unacknowledged (priority 100)",
        );
        let uncertain = Alarm::new(Severity::Minor, AlarmStatus::None, "Uncertain");
        let bad = Alarm::new(
            Severity::Invalid,
            AlarmStatus::Driver,
            "Bad: communication failure",
        );
        let good = Alarm::new(Severity::NoAlarm, AlarmStatus::None, "Good");
        let a = combine([Some(&hihi)], &uncertain, false);
        assert_eq!(
            (a.severity, a.status, a.message.as_str()),
            (
                Severity::Major,
                AlarmStatus::Record,
                "HiHi alarm, unacknowledged (priority 100); Uncertain"
            )
        );
        let a = combine([Some(&hihi)], &bad, false);
        assert_eq!(
            (a.severity, a.status, a.message.as_str()),
            (
                Severity::Invalid,
                AlarmStatus::Driver,
                "Bad: communication failure; HiHi alarm, unacknowledged (priority 100)"
            )
        );
        assert_eq!(combine([Some(&hihi)], &good, true).message, hihi.message);
        assert_eq!(combine([None], &good, true), good);
    }

    fn entry(name: &str, state: AlarmState, priority: i32) -> Entry {
        Entry {
            reference: format!("Galaxy!Area.Tank001.Level.{name}"),
            short: format!("Tank001.Level.{name}"),
            alarm_type: name.into(),
            state,
            priority,
            raised_at: None,
            acked_at: None,
            operator: String::new(),
            comment: String::new(),
            value: String::new(),
            limit: String::new(),
            owner: None,
        }
    }

    #[test]
    fn the_most_urgent_alarm_of_a_severity_is_named_first() {
        use AlarmState::*;
        let text = "[gateway]\nendpoint = \"http://127.0.0.1:1\"\n\
                    [[pv]]\nname = \"L\"\ntag = \"Tank001.Level\"\n";
        let cfg = config::Config::from_str_at(text, std::path::Path::new("a.toml"))
            .unwrap()
            .alarms;
        // By default priorities up to 500 are MAJOR, 600 and on MINOR.
        let (a, b, c, d) = (
            entry("A", AckAlm, 10),
            entry("B", UnackAlm, 200),
            entry("C", UnackAlm, 50),
            entry("D", UnackAlm, 700),
        );
        let part = part_of(&cfg, &[&a, &b, &c, &d]).unwrap();
        assert_eq!(
            (part.severity, part.status),
            (Severity::Major, AlarmStatus::Record)
        );
        assert_eq!(
            part.message,
            "C alarm, unacknowledged (priority 50); B alarm, unacknowledged (priority 200); \
             A alarm, acknowledged (priority 10); D alarm, unacknowledged (priority 700)"
        );
        assert_eq!(
            part_of(&cfg, &[&b, &c]).unwrap().message,
            "C alarm, unacknowledged (priority 50); B alarm, unacknowledged (priority 200)"
        );
        assert!(part_of(&cfg, &[]).is_none());
    }

    #[tokio::test]
    async fn a_flood_of_transitions_is_taken_as_one_batch() {
        let text = "[gateway]\nendpoint = \"http://127.0.0.1:1\"\n\
                    [[pv]]\nname = \"L\"\ntag = \"Tank001.Level\"\n";
        let config = config::Config::from_str_at(text, std::path::Path::new("a.toml")).unwrap();
        let server = Arc::new(Server::new(&crate::pva::ServerConfig::isolated()).unwrap());
        let (events, _rx) = crate::pva::event_channel();
        let opts = ClientOptions::plaintext("127.0.0.1:1");
        let mut alarms = Alarms::new(&config, &opts, server, &events, &[]).unwrap();
        // The test is the feed task.
        alarms.task.take().unwrap().abort();
        let (tx, rx) = mpsc::unbounded_channel();
        alarms.feed = rx;
        let transition = |i: usize, state| {
            FeedMsg::Item(AlarmFeedItem::Transition(AlarmTransition {
                reference: format!("Galaxy!Area.Tank{}.Level.HiHi", i % 10),
                source_object: String::new(),
                alarm_type: "HiHi".into(),
                kind: AlarmTransitionKind::Raise,
                state,
                priority: 100,
                raised_at: None,
                at: None,
                operator: String::new(),
                comment: String::new(),
                category: String::new(),
                description: String::new(),
                current_value: None,
                limit_value: None,
            }))
        };
        tx.send(FeedMsg::Item(AlarmFeedItem::SnapshotComplete {
            active_alarm_count: 0,
        }))
        .unwrap();
        for i in 1..1000 {
            tx.send(transition(i, AlarmState::UnackAlm)).unwrap();
        }
        let first = alarms.feed.recv().await.unwrap();
        assert_eq!(alarms.on_batch(first, &mut []), 1000);
        assert_eq!(alarms.active.len(), 10);
        assert!(alarms.feed.try_recv().is_err(), "all taken");
        // Nothing queued: a batch of one.
        assert_eq!(
            alarms.on_batch(transition(0, AlarmState::AckAlm), &mut []),
            1
        );
    }

    #[test]
    fn the_worst_state_is_the_value_of_an_alarm_pv() {
        use AlarmState::*;
        assert_eq!(own_index([UnackRtn, AckAlm].into_iter()), 2);
        assert_eq!(own_index([UnackRtn, UnackAlm, AckAlm].into_iter()), 1);
        assert_eq!(own_index([UnackRtn].into_iter()), 3);
        assert_eq!(own_index([].into_iter()), 0);
    }
}
