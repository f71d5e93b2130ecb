//! One mapped PV: its SharedPv, its structure and metadata, and the puts waiting on it
//! (`writes/pending.rs`).

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::warn;

use crate::bridge::values::combine::combine;
use crate::bridge::values::convert::{brief, pv_type_of, to_mx, to_nt};
use crate::bridge::values::limits::{severity, Limits};
use crate::bridge::values::quality::{is_quality_alarm, quality_alarm};
use crate::bridge::values::stamp::Stamps;
use crate::bridge::writes::pending::PvWrites;
use crate::config;
use crate::gateway::{ItemHandle, MxDataType, MxStatus, MxValue, Quality, WriteEntry};
use crate::pva::{
    Access, Alarm, AlarmStatus, Control, Display, EventSender, NtValue, PutRequest, PvType,
    ScalarType, Severity, SharedPv, TimeStamp, Update, ValueAlarm,
};

pub(in crate::bridge) struct MappedPv {
    /// Its id, set by the registry as it takes the record in (`records.rs`).
    pub(super) id: crate::bridge::pv_id::PvId,
    /// Its config: the one copy, shared with the loaded config (`Config::pvs`).
    pub cfg: Arc<config::Pv>,
    pub pv: SharedPv,
    /// The item handle in the current session: its data (a buffered item when
    /// `cfg.buffered`, bound so by `Registry::bind`).
    pub item: Option<ItemHandle>,
    /// The attribute's type and arrayness, from its last data change.
    attr_type: Option<(MxDataType, bool)>,
    /// The puts to this PV waiting for System Platform (`writes/pending.rs`).
    pub writes: PvWrites,
    /// The value of the last data change of a writable scalar attribute, as shown.
    shown: Option<MxValue>,
    bool_as_enum: bool,
    /// What the PV holds of its posts, so that a post leaves out what is unchanged
    /// (unmarked: each client's copy keeps it; issue 23: a post costs pvxs's loop and
    /// every monitor less).
    held: Cell<Held>,
    /// The alarm of the value itself (quality, conversion, link), before System Platform
    /// alarms and local limits join it; and whether it is plain Good (nothing to say).
    base_alarm: BaseAlarm,
    /// Its rarely used parts (alarm parts, limits, write item), boxed while one is set:
    /// most PVs have none (a PV is small when its rarely used parts are not inline; issue 23).
    rare: Option<Box<Rare>>,
    /// The last posted time: posted times never go back (see `values/stamp.rs`).
    stamps: Stamps,
    /// What the bridge took for this PV in the current turn and posts once at its end
    /// ([`MappedPv::flush`]): a data change's value, and the latest own time of the facts
    /// taken (data change, alarm transitions). Boxed while something is staged: between
    /// turns most PVs have nothing (issue 23: 8 bytes a PV, not 64).
    staged: Option<Box<Staged>>,
}

/// What a PV holds of its last posts ([`MappedPv::held`]), one byte.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Held(u8);

impl Held {
    const NOTHING: Held = Held(0);
    /// The alarm last posted is plain Good: a post whose alarm is plain Good too leaves
    /// the alarm fields out.
    const GOOD_ALARM: u8 = 1;
    /// The PV holds the seconds of `stamps`' last time, and user tag 0: a data change
    /// within that second posts its nanoseconds alone ([`Update::time_nanos_only`]).
    const SECONDS: u8 = 2;

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    fn with(self, bit: u8, on: bool) -> Held {
        Held(if on { self.0 | bit } else { self.0 & !bit })
    }
}

/// What few PVs have ([`MappedPv::rare`]).
#[derive(Default)]
struct Rare {
    /// The alarm parts besides the value's own.
    parts: AlarmParts,
    /// Local `value_alarm` limits, when configured and active.
    limits: Option<Limits>,
    /// A writable buffered PV's plain item of the same attribute, which its puts are
    /// written through (the gateway's documents say nothing of writes on a buffered
    /// handle); its data changes are not posted.
    write_item: Option<ItemHandle>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.parts.is_empty() && self.limits.is_none() && self.write_item.is_none()
    }
}

/// The parts of a PV's alarm that join its value's own ([`MappedPv::combined`]).
#[derive(Default)]
struct AlarmParts {
    /// Its System Platform alarms as one part, set by `alarms/`.
    sp_alarm: Option<Alarm>,
    /// MINOR "alarm feed lost" while the alarm feed is down and this PV carries (or is
    /// configured to carry) alarms, set by `alarms/`.
    feed_lost: Option<Alarm>,
    /// The part its local `value_alarm` limits give for the last value.
    limit_alarm: Option<Alarm>,
}

impl AlarmParts {
    fn is_empty(&self) -> bool {
        self.sp_alarm.is_none() && self.feed_lost.is_none() && self.limit_alarm.is_none()
    }
}

/// `value_alarm` limits that apply (configured and active): most PVs have none.
fn limits_of(cfg: &config::Pv) -> Option<Limits> {
    let limits = Limits::new(cfg.meta.value_alarm.as_deref().copied());
    limits.applies().then_some(limits)
}

/// What [`MappedPv::sample`] did with a data change.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// The PV is newly marked to be posted at the end of the turn.
    pub marked: bool,
    /// It replaced a staged sample not posted yet (same alarm severity and status).
    pub coalesced: bool,
}

/// See [`MappedPv::staged`].
#[derive(Default)]
struct Staged {
    /// Something is to be posted.
    dirty: bool,
    /// A data change is among it (its value may still be `None`: a Null value).
    data: bool,
    value: Option<NtValue>,
    time: Option<TimeStamp>,
}

impl Staged {
    /// Marks the PV to be posted; true when it was not yet (the caller lists it).
    fn mark(&mut self, time: TimeStamp) -> bool {
        let later = |a: &TimeStamp, b: &TimeStamp| (a.seconds, a.nanos) > (b.seconds, b.nanos);
        match &self.time {
            Some(t) if !later(&time, t) => {}
            _ => self.time = Some(time),
        }
        !std::mem::replace(&mut self.dirty, true)
    }
}

fn configured_type(cfg: &config::Pv) -> Option<PvType> {
    cfg.pv_type
}

/// The MXAccess type a PV type writes as, before the attribute has reported its own.
fn attr_type_for(ty: PvType) -> (MxDataType, bool) {
    let scalar = |t: ScalarType| match t {
        ScalarType::Bool => MxDataType::Boolean,
        ScalarType::Float32 => MxDataType::Float,
        ScalarType::Float64 => MxDataType::Double,
        ScalarType::String => MxDataType::String,
        ScalarType::Int64 | ScalarType::UInt32 | ScalarType::UInt64 => MxDataType::LongInteger,
        _ => MxDataType::Integer,
    };
    match ty {
        PvType::Enum => (MxDataType::Boolean, false),
        PvType::Scalar(t) => (scalar(t), false),
        PvType::Array(t) => (scalar(t), true),
    }
}

impl MappedPv {
    /// A PV starting afresh (tests; the bridge makes PVs with [`MappedPv::continuing`]).
    #[cfg(test)]
    pub fn new(
        cfg: Arc<config::Pv>,
        defaults: &config::Defaults,
        events: &EventSender,
    ) -> Result<Self, crate::pva::PvaError> {
        Self::continuing(cfg, defaults, events, Stamps::default())
    }

    /// A PV that continues from `stamps`, the last posted time of the PV it replaces
    /// under the same name (a re-open): its posts never go back from that PV's.
    pub fn continuing(
        cfg: Arc<config::Pv>,
        _defaults: &config::Defaults,
        events: &EventSender,
        stamps: Stamps,
    ) -> Result<Self, crate::pva::PvaError> {
        let access = if cfg.write.is_some() {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        let pv = SharedPv::with_shared_name(cfg.name.shared(), access, events)?;
        let bool_as_enum = cfg.boolean == config::BooleanRepr::Enum;
        // Limits apply to scalars only; validation refuses them on arrays.
        let limits = limits_of(&cfg);
        let rare = limits.map(|limits| {
            Box::new(Rare {
                limits: Some(limits),
                ..Rare::default()
            })
        });
        let mut mapped = MappedPv {
            id: crate::bridge::pv_id::PvId::numbered(0),
            cfg,
            pv,
            item: None,
            attr_type: None,
            writes: PvWrites::default(),
            shown: None,
            bool_as_enum,
            held: Cell::new(Held::NOTHING),
            base_alarm: BaseAlarm::None,
            rare,
            stamps,
            staged: None,
        };
        // With a configured type the PV is served at once, INVALID until data arrives;
        // otherwise clients wait until the attribute reports its type.
        // Until then that INVALID is the base alarm, so that a System Platform alarm
        // arriving before the first data change joins it instead of hiding it.
        // An on-demand PV is not served before its first client: that client waits
        // for the first value (`link/demand.rs`).
        let ty = configured_type(&mapped.cfg).filter(|_| !mapped.cfg.subscribe.is_on_demand());
        if let Some(ty) = ty {
            let alarm = Alarm::new(
                Severity::Invalid,
                AlarmStatus::Undefined,
                "waiting for initial data from System Platform",
            );
            mapped.base_alarm.set(Cow::Owned(alarm.clone()), false);
            mapped.open(ty, None, alarm, TimeStamp::now());
        }
        Ok(mapped)
    }

    fn name(&self) -> &str {
        self.cfg.name.as_str()
    }

    /// Every item it holds in the current session (to un-advise).
    pub fn items(&self) -> std::iter::Flatten<std::array::IntoIter<Option<ItemHandle>, 2>> {
        [self.item, self.write_item()].into_iter().flatten()
    }

    /// A writable buffered PV without the plain item its puts go through.
    pub fn needs_write_item(&self) -> bool {
        self.cfg.buffered && self.cfg.writable() && self.write_item().is_none()
    }

    /// The item its puts are written through: its own, or a buffered PV's write item.
    pub fn write_handle(&self) -> Option<ItemHandle> {
        if self.cfg.buffered {
            self.write_item()
        } else {
            self.item
        }
    }

    /// A writable buffered PV's plain item, which its puts are written through.
    pub fn write_item(&self) -> Option<ItemHandle> {
        self.rare.as_ref().and_then(|r| r.write_item)
    }

    /// Sets (or clears) its write item; hands back the one it held.
    pub fn set_write_item(&mut self, item: Option<ItemHandle>) -> Option<ItemHandle> {
        if item.is_none() && self.rare.is_none() {
            return None;
        }
        self.set_rare(|r| std::mem::replace(&mut r.write_item, item))
    }

    /// Changes its rarely used parts with `f`: boxed while one is set.
    fn set_rare<T>(&mut self, f: impl FnOnce(&mut Rare) -> T) -> T {
        let rare = self.rare.get_or_insert_with(Box::default);
        let out = f(rare);
        if rare.is_empty() {
            self.rare = None;
        }
        out
    }

    /// Its last posted time, for a PV that takes its place under the same name.
    pub fn stamps(&self) -> &Stamps {
        &self.stamps
    }

    /// Metadata for a PV of type `ty`, from the config.
    fn metadata(&self, ty: PvType, update: &mut Update) {
        let numeric = matches!(ty, PvType::Scalar(t) | PvType::Array(t) if t.is_numeric());
        let mut display = Display {
            description: self
                .cfg
                .meta
                .description
                .as_deref()
                .unwrap_or_default()
                .into(),
            units: self.cfg.meta.units.as_deref().unwrap_or_default().into(),
            ..Default::default()
        };
        if numeric {
            if let Some(r) = &self.cfg.meta.display {
                display.limit_low = r.low.unwrap_or(0.0);
                display.limit_high = r.high.unwrap_or(0.0);
            }
            display.precision = self.cfg.meta.precision.map(i32::from).unwrap_or(0);
            if let Some(c) = &self.cfg.meta.control {
                update.control = Some(Control {
                    limit_low: c.low.unwrap_or(0.0),
                    limit_high: c.high.unwrap_or(0.0),
                    min_step: c.min_step.unwrap_or(0.0),
                });
            }
            if let (Some(a), PvType::Scalar(_)) = (&self.cfg.meta.value_alarm, ty) {
                update.value_alarm = Some(ValueAlarm {
                    active: a.active,
                    low_alarm_limit: a.lolo.unwrap_or(f64::NAN),
                    low_warning_limit: a.low.unwrap_or(f64::NAN),
                    high_warning_limit: a.high.unwrap_or(f64::NAN),
                    high_alarm_limit: a.hihi.unwrap_or(f64::NAN),
                    low_alarm_severity: severity(a.lolo_severity),
                    low_warning_severity: severity(a.low_severity),
                    high_warning_severity: severity(a.high_severity),
                    high_alarm_severity: severity(a.hihi_severity),
                    hysteresis: a.hysteresis,
                });
            }
        }
        update.display = Some(display);
        if ty == PvType::Enum {
            update.choices = Some(self.cfg.choices.to_vec());
        }
    }

    /// (Re)opens the PV as `ty`.
    fn open(&mut self, ty: PvType, value: Option<NtValue>, alarm: Alarm, time: TimeStamp) {
        if value.is_none() {
            // It shows no value of System Platform's now.
            self.shown = None;
        }
        let name = self.cfg.name.as_str();
        // Without a value it is the bridge's own post (INVALID until the first value).
        let time = if value.is_some() {
            self.stamps.next(name, time)
        } else {
            self.stamps.own(name, time)
        };
        if self.pv.is_open() {
            let _ = self.pv.close();
        }
        self.held.set(Held::NOTHING);
        let mut initial = Update {
            value,
            alarm: Some(alarm),
            time: Some(time),
            ..Default::default()
        };
        self.metadata(ty, &mut initial);
        #[cfg(test)]
        crate::bridge::interleavings::posted(self.cfg.name.as_str(), initial.time.as_ref());
        if let Err(e) = self.pv.open(ty, &initial) {
            warn!(pv = %self.name(), error = %e, "cannot open PV");
        }
    }

    fn post(&self, update: Update) {
        #[cfg(test)]
        crate::bridge::interleavings::posted(self.cfg.name.as_str(), update.time.as_ref());
        #[cfg(test)]
        tests::record(&update);
        let good = update.alarm.as_ref().map(base_alarm::is_good);
        // The seconds the PV holds after this post: the stamps' last, unless the post
        // carries an older time (a batch posted after the stamps moved on).
        let seconds = update
            .time
            .map(|t| t.user_tag == 0 && Some(t.seconds) == self.stamps.last_seconds());
        match self.pv.post_owned(update) {
            Ok(()) => {
                let mut held = self.held.get();
                if let Some(good) = good {
                    held = held.with(Held::GOOD_ALARM, good);
                }
                if let Some(seconds) = seconds {
                    held = held.with(Held::SECONDS, seconds);
                }
                self.held.set(held);
            }
            Err(e) => {
                self.held.set(Held::NOTHING);
                warn!(pv = %self.name(), error = %e, "post failed");
            }
        }
    }

    /// `base` with this PV's System Platform alarms and limit alarm joined to it.
    fn combined(&self) -> Alarm {
        let (base, plain) = self.base_alarm.get();
        let Some(parts) = self
            .rare
            .as_ref()
            .map(|r| &r.parts)
            .filter(|p| !p.is_empty())
        else {
            // The common case, without combine()'s list.
            return base.clone();
        };
        combine(
            [
                parts.sp_alarm.as_ref(),
                parts.limit_alarm.as_ref(),
                parts.feed_lost.as_ref(),
            ],
            base,
            plain,
        )
    }

    /// Sets its System Platform alarms part (`alarms/`); post it with
    /// [`MappedPv::alarms_changed`].
    pub fn set_sp_alarm(&mut self, part: Option<Alarm>) {
        self.set_part(|p| &mut p.sp_alarm, part);
    }

    /// MINOR "alarm feed lost" while the alarm feed is down and this PV carries (or is
    /// configured to carry) alarms (`alarms/`).
    pub fn feed_lost(&self) -> Option<&Alarm> {
        self.rare.as_ref().and_then(|r| r.parts.feed_lost.as_ref())
    }

    /// Sets or clears its "alarm feed lost" part (`alarms/`).
    pub fn set_feed_lost(&mut self, part: Option<Alarm>) {
        self.set_part(|p| &mut p.feed_lost, part);
    }

    /// Sets one alarm part; the parts are boxed while one is set (`rare`).
    fn set_part(&mut self, field: fn(&mut AlarmParts) -> &mut Option<Alarm>, part: Option<Alarm>) {
        if part.is_none() && self.rare.is_none() {
            return;
        }
        self.set_rare(|r| *field(&mut r.parts) = part);
    }

    /// The System Platform alarms changed (`sp_alarm`) at `at` (System Platform's time of
    /// the transition; `None`: now). The alarm is posted with the turn's other news of
    /// this PV by [`MappedPv::flush`]; true when the PV is newly marked for it.
    pub fn alarms_changed(&mut self, at: Option<SystemTime>) -> bool {
        if !self.pv.is_open() {
            return false;
        }
        let time = match (self.cfg.timestamp, at) {
            (config::TimestampSource::Source, Some(t)) => TimeStamp::from(t),
            _ => TimeStamp::now(),
        };
        self.staged_mut().mark(time)
    }

    /// What is staged, made on first use.
    fn staged_mut(&mut self) -> &mut Staged {
        self.staged.get_or_insert_with(Box::default)
    }

    /// A data change is staged, not posted yet.
    fn data_staged(&self) -> bool {
        self.staged.as_ref().is_some_and(|s| s.data)
    }

    /// Posts what the turn took for this PV as one update: the value of its data change
    /// (if one came), the alarm as it is now, and the latest time among them (kept from
    /// going back by [`Stamps`]). Then completes the writes that waited for the value.
    pub fn flush(&mut self) {
        self.flush_as(None);
    }

    /// [`MappedPv::flush`], with `alarm` instead of the PV's alarm now (that of a staged
    /// sample, posted after a later one was taken).
    fn flush_as(&mut self, alarm: Option<Alarm>) {
        let Some(staged) = self.staged.take() else {
            return;
        };
        if !staged.dirty {
            return;
        }
        let staged = *staged;
        if let Some(update) = self.update_of(staged.value, staged.time, alarm) {
            self.post(update);
        }
        if staged.data {
            self.writes.shown();
        }
    }

    /// The update of staged news (`value`, at `time`; `alarm`, else the PV's alarm now),
    /// if the PV is open.
    fn update_of(
        &mut self,
        value: Option<NtValue>,
        time: Option<TimeStamp>,
        alarm: Option<Alarm>,
    ) -> Option<Update> {
        if !self.pv.is_open() {
            return None;
        }
        let name = self.cfg.name.as_str();
        let held = self.stamps.last_seconds();
        let time = match time {
            Some(t) => self.stamps.next(name, t),
            None => self.stamps.now(name),
        };
        // Within the second the PV holds: the nanoseconds alone. Until this update is
        // posted the PV holds the older time, so a second update made meanwhile (the
        // next sample of a batch) carries its whole time.
        let posted = self.held.get();
        self.held.set(posted.with(Held::SECONDS, false));
        let nanos_only =
            posted.has(Held::SECONDS) && held == Some(time.seconds) && time.user_tag == 0;
        let alarm = alarm.unwrap_or_else(|| self.combined());
        let mut update = Update::default().with_time(time);
        update.time_nanos_only = nanos_only;
        if !(posted.has(Held::GOOD_ALARM) && base_alarm::is_good(&alarm)) {
            update = update.with_alarm(alarm);
        }
        update.value = value;
        Some(update)
    }

    /// [`MappedPv::sample`] of one sample of an OnBufferedDataChange, whose samples
    /// are posted together: the sample staged before this one is added to `batch`
    /// instead of being posted (a change that posts otherwise, such as a re-open, posts
    /// `batch` first). The caller posts `batch` ([`MappedPv::post_one`], then
    /// [`MappedPv::batch_posted`]) before anything else of this PV is posted.
    pub fn buffered_sample(
        &mut self,
        value: &MxValue,
        quality: Quality,
        source: Option<SystemTime>,
        statuses: &[MxStatus],
        batch: &mut Vec<Update>,
    ) -> bool {
        self.sample_in(value, quality, source, statuses, false, Some(batch))
            .marked
    }

    /// Posts one update of a batch ([`MappedPv::buffered_sample`]).
    pub fn post_one(&self, update: Update) {
        self.post(update);
    }

    /// A batch of samples was posted: the writes waiting for their value complete.
    pub fn batch_posted(&mut self) {
        self.writes.shown();
    }

    fn post_batch(&mut self, batch: &mut Vec<Update>) {
        if batch.is_empty() {
            return;
        }
        for update in batch.drain(..) {
            self.post(update);
        }
        self.batch_posted();
    }

    /// An alarm on an open PV (value kept). A closed PV opens with it, without a value:
    /// as its configured type, else as the type it was last served as, else as a string.
    fn post_alarm(&mut self, alarm: Alarm) {
        self.flush();
        self.base_alarm.set(Cow::Owned(alarm), false);
        let alarm = self.combined();
        if self.pv.is_open() {
            let time = self.stamps.now(self.cfg.name.as_str());
            self.post(Update::default().with_alarm(alarm).with_time(time));
        } else if let Some(ty) =
            configured_type(&self.cfg).or_else(|| self.pv.shape().map(|s| s.pv_type))
        {
            self.open(ty, None, alarm, TimeStamp::now());
        } else {
            let ty = PvType::Scalar(ScalarType::String);
            self.open(
                ty,
                Some(NtValue::String(String::new())),
                alarm,
                TimeStamp::now(),
            );
        }
    }

    /// An on-demand PV whose first client cannot have a value (the gateway is down, the
    /// advise failed, no value came in time): served now with `alarm` and no value.
    pub fn serve_without_value(&mut self, alarm: Alarm) {
        self.post_alarm(alarm);
    }

    /// An on-demand PV that nobody watches any more and whose tag is un-advised: no
    /// longer served until its next client, who then waits for a fresh value rather
    /// than seeing this one's last. It has no clients, so closing disconnects nobody.
    pub fn close_unwatched(&mut self) {
        self.flush();
        if self.pv.is_open() {
            if let Err(e) = self.pv.close() {
                warn!(pv = %self.name(), error = %e, "cannot close PV");
            }
        }
    }

    /// The PV's own value is INVALID now (quality, link, conversion): for the status PVs.
    /// An on-demand PV that nobody watches is not served, so it is not counted.
    pub fn is_invalid(&self) -> bool {
        let unwatched = self.cfg.subscribe.is_on_demand() && !self.pv.is_open();
        !unwatched && self.base_alarm.alarm().severity == Severity::Invalid
    }

    pub fn subscribe_failed(&mut self, reason: &str) {
        self.post_alarm(Alarm::new(
            Severity::Invalid,
            AlarmStatus::Conf,
            format!("cannot subscribe {}: {reason}", self.cfg.tag.as_str()),
        ));
    }

    /// A data change the gateway client could not decode (a value past a cap, a time
    /// out of range, ...): the PV keeps its last value and says why.
    pub fn value_not_shown(&mut self, reason: &str) {
        self.post_alarm(Alarm::new(
            Severity::Invalid,
            AlarmStatus::Driver,
            format!("value not shown: {reason}"),
        ));
    }

    pub fn connection_lost(&mut self, message: &str) {
        self.writes.link_lost(self.cfg.name.as_str(), message);
        if self.pv.is_open() {
            self.post_alarm(Alarm::new(Severity::Invalid, AlarmStatus::Driver, message));
        }
    }

    /// Takes a new config that keeps the PV open (metadata, limits, write mode, alarms,
    /// timestamp). With `post_metadata` the new metadata is posted in place: the value,
    /// alarm and monitors stay.
    pub fn reconfigure(&mut self, cfg: Arc<config::Pv>, post_metadata: bool) {
        let limits = limits_of(&cfg);
        if limits.is_some() || self.rare.is_some() {
            self.set_rare(|r| r.limits = limits);
        }
        if cfg.write.is_none() {
            // No longer kept by the data changes to come.
            self.shown = None;
        }
        self.cfg = cfg;
        if !post_metadata || !self.pv.is_open() {
            return;
        }
        if let Some(shape) = self.pv.shape() {
            let mut update = Update::default();
            self.metadata(shape.pv_type, &mut update);
            self.post(update);
        }
    }

    /// The PV leaves the mapping (`why`: removed, or replaced by a re-opened one): a write
    /// not yet sent is withdrawn and never sent, one sent fails (it may or may not have
    /// been applied), and its clients are disconnected.
    pub fn retire(&mut self, why: &str) {
        let name = self.cfg.name.as_str().to_string();
        self.writes.retire(&name, why);
        if self.pv.is_open() {
            if let Err(e) = self.pv.close() {
                warn!(pv = %name, error = %e, "cannot close PV");
            }
        }
    }

    /// Writes sent and not yet answered, and confirmed ones waiting for their data change.
    /// The value clients see now, when the bridge knows it without reading the PV back
    /// from pvxs (which copies its whole structure): a writable scalar PV's last data
    /// change, posted (none staged) and served as the type the PV is open as. `None`:
    /// not known here ([`SharedPv::current`] knows).
    pub fn value_shown(&self) -> Option<NtValue> {
        if self.data_staged() || self.cfg.write.is_none() {
            return None;
        }
        let shown = self.shown.as_ref()?;
        let ty = configured_type(&self.cfg).or_else(|| pv_type_of(shown, self.bool_as_enum))?;
        if self.pv.shape()?.pv_type != ty || !self.pv.is_open() {
            return None;
        }
        to_nt(shown, ty).ok()
    }

    pub fn writes_waiting(&self) -> usize {
        self.writes.waiting()
    }

    /// Checks a put and turns it into a write of the attribute's type.
    pub fn prepare_write(&self, put: &PutRequest) -> Result<WriteEntry, String> {
        let name = self.name();
        let Some(value) = &put.value else {
            return Err(format!("{name}: the put carries no value"));
        };
        let Some(item) = self.write_handle() else {
            let how = if self.cfg.buffered {
                " (a buffered PV writes through a plain item of the attribute)"
            } else {
                ""
            };
            return Err(format!(
                "{name}: {} is not subscribed{how}: write not sent",
                self.cfg.tag.as_str()
            ));
        };
        if let Some(c) = &self.cfg.meta.control {
            if let Some(x) = numeric(value) {
                if x.is_finite() {
                    let low = c.low.unwrap_or(f64::NEG_INFINITY);
                    let high = c.high.unwrap_or(f64::INFINITY);
                    if x < low || x > high {
                        return Err(format!(
                            "{name}: {x} is outside the control limits {} to {}",
                            fmt_limit(c.low),
                            fmt_limit(c.high)
                        ));
                    }
                }
            }
        }
        let (t, array) = self
            .attr_type
            .or_else(|| self.pv.shape().map(|s| attr_type_for(s.pv_type)))
            .ok_or_else(|| format!("{name}: the attribute's type is not known yet"))?;
        let mx = to_mx(value, t, array).map_err(|e| format!("{name}: {e}"))?;
        Ok(WriteEntry::new(item, mx))
    }

    /// OnWriteComplete for the oldest sent write (see [`PvWrites::complete`]), with what
    /// this PV shows and whether this turn posts a data change.
    pub fn write_complete(&mut self, outcome: Result<(), String>) -> Option<u64> {
        let data_staged = self.data_staged();
        let name = self.cfg.name.as_str();
        self.writes
            .complete(name, outcome, self.shown.as_ref(), data_staged)
    }
}

/// Keeps the value a writable PV shows, for [`MappedPv::write_complete`]: scalars only
/// (`served`: the data change's value was converted and posted), reusing a string's room.
fn remember_shown(shown: &mut Option<MxValue>, value: &MxValue, served: bool) {
    match (shown.as_mut(), value) {
        (_, MxValue::Null | MxValue::Array(_) | MxValue::Bytes(_)) => *shown = None,
        _ if !served => *shown = None,
        (Some(MxValue::String(old)), MxValue::String(new)) => old.clone_from(new),
        _ => *shown = Some(value.clone()),
    }
}

fn fmt_limit(l: Option<f64>) -> String {
    l.map(|x| x.to_string())
        .unwrap_or_else(|| "unbounded".into())
}

fn numeric(v: &NtValue) -> Option<f64> {
    Some(match v {
        NtValue::Int8(x) => (*x).into(),
        NtValue::Int16(x) => (*x).into(),
        NtValue::Int32(x) => (*x).into(),
        NtValue::Int64(x) => *x as f64,
        NtValue::UInt8(x) => (*x).into(),
        NtValue::UInt16(x) => (*x).into(),
        NtValue::UInt32(x) => (*x).into(),
        NtValue::UInt64(x) => *x as f64,
        NtValue::Float32(x) => (*x).into(),
        NtValue::Float64(x) => *x,
        _ => return None,
    })
}

mod base_alarm;
use base_alarm::BaseAlarm;
mod sample;
#[cfg(test)]
mod tests;
