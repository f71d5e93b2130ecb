//! The active set followed: feed messages (snapshots and transitions), the posts of
//! each owner's alarm part, and the alarms' PVs made at start.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::feed::{spawn_feed, FeedMsg};
use super::reload::open_table;
use super::state::{
    own_index, owner_maps, part_of, Alarms, Changed, Entry, OwnPv, Owner, FEED_LOST, MAX_BATCH,
};
use crate::bridge::mapping::registry::Registry;
use crate::bridge::pv_id::PvId;
use crate::bridge::values::stamp::Stamps;
use crate::config::{self, AlarmPvType, SeverityScheme};
use crate::gateway::{
    ActiveAlarm, AlarmFeedItem, AlarmState, AlarmTransition, Backoff, ClientOptions,
};
use crate::pva::{
    Alarm, AlarmStatus, EventSender, NtValue, PvaError, Server, Severity, TimeStamp, Update,
};

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
    pub(super) fn owner_of(&self, e: &Entry) -> Option<Owner> {
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
            return self.by_tag.get(attr).map(Owner::Value);
        }
        // Feature-named: `tank001.pvhialarm` -> the longest `tank001.pv` with a PV.
        if !lower.ends_with("alarm") {
            return None;
        }
        self.by_tag.longest_prefix_of(&lower).map(Owner::Value)
    }

    /// The owner's PV name, `acknowledge` and `alarm_severity`; `None` for an index in
    /// neither list (which the owner maps never hold).
    pub(super) fn owner_settings<'a>(
        &'a self,
        owner: Owner,
        pvs: &'a Registry,
    ) -> Option<(&'a str, bool, Option<SeverityScheme>)> {
        match owner {
            Owner::Value(i) => pvs.get(i).map(|p| {
                let c = &p.cfg;
                (c.name.as_str(), c.acknowledge, c.meta.alarm_severity)
            }),
            Owner::Own(i) => self.own.get(i).map(|p| {
                let c = &p.cfg;
                (c.name.as_str(), c.acknowledge, c.alarm_severity)
            }),
        }
    }

    pub(super) fn owner_name<'a>(&'a self, owner: Owner, pvs: &'a Registry) -> &'a str {
        self.owner_settings(owner, pvs).map_or("", |s| s.0)
    }

    pub(super) fn acknowledge_enabled(&self, owner: Owner, pvs: &Registry) -> bool {
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
    pub(super) fn on_batch(
        &mut self,
        first: FeedMsg,
        pvs: &mut Registry,
        dirty: &mut Vec<PvId>,
    ) -> usize {
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
    pub(super) fn apply(&mut self, msg: FeedMsg) -> Option<Changed> {
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
    pub(super) fn on_transition(&mut self, t: &AlarmTransition) -> Option<Changed> {
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
    pub(super) fn not_held(&mut self, t: &AlarmTransition) -> Option<Changed> {
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
    pub(super) fn refresh(
        &mut self,
        mut owners: Changed,
        pvs: &mut Registry,
        dirty: &mut Vec<PvId>,
    ) {
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
            if pv.feed_lost() != part.as_ref() {
                pv.set_feed_lost(part);
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
                        pv.set_sp_alarm(part);
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
    pub(super) fn scheme_of(&self, owner: Owner, pvs: &Registry) -> SeverityScheme {
        self.owner_settings(owner, pvs)
            .and_then(|s| s.2)
            .unwrap_or(self.cfg.severity)
    }

    /// Posts an `[[alarm_pv]]` at System Platform's time of its latest transition.
    pub(super) fn post_own(
        &mut self,
        i: usize,
        index: i32,
        part: Option<Alarm>,
        at: Option<SystemTime>,
    ) {
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
