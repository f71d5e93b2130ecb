//! The gateway of generated histories: items by session, an ordered event stream, the
//! calls the bridge made and their answers, a record of every write applied, and a
//! source clock per attribute that may jump.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use super::gen::TAGS;
use crate::bridge::link::subscriptions::{AdviseCall, Advised};
use crate::bridge::writes::calls::WriteCall;
use crate::gateway::{
    BufferedDataChange, DataChange, ItemHandle, MxStatus, MxStatusCategory, MxValue, Quality,
    ServerHandle, SessionEvent, WriteComplete,
};

/// The attribute whose writes System Platform refuses.
pub const REFUSED_TAG: &str = "Pump001.MaxSpeed";

/// A call the bridge made, not answered yet.
pub enum Pending {
    Subscribe {
        call: u64,
        tags: Vec<String>,
    },
    /// AddBufferedItem + Advise of each tag.
    SubscribeBuffered {
        call: u64,
        tags: Vec<String>,
    },
    Write(WriteCall),
}

pub struct Gateway {
    pub up: bool,
    pub session: u64,
    /// Items advised in the live session, by handle: their tag.
    pub items: HashMap<i32, String>,
    /// The buffered ones among them, with the samples taken since their last
    /// OnBufferedDataChange (value, source time).
    pub buffered: HashMap<i32, Vec<(f64, SystemTime)>>,
    /// Handles start at 1 in each session, so a handle of a lost session names another
    /// tag in the next one (as a real gateway may).
    next_handle: i32,
    /// The event stream of the live session, in order.
    pub events: VecDeque<SessionEvent>,
    pub pending: Vec<Pending>,
    /// How many writes it applied.
    pub applied: usize,
    /// The put (its number, the value it writes) each OnWriteComplete queued is for, by
    /// worker sequence.
    pub completes: HashMap<u64, usize>,
    /// Each attribute's value and source time.
    values: [f64; TAGS.len()],
    clocks: [SystemTime; TAGS.len()],
    sequence: u64,
    /// The alarm feed's source clock.
    alarm_clock: SystemTime,
}

impl Gateway {
    pub fn new() -> Self {
        let now = SystemTime::now();
        Gateway {
            up: false,
            session: 0,
            items: HashMap::new(),
            buffered: HashMap::new(),
            next_handle: 1,
            events: VecDeque::new(),
            pending: Vec::new(),
            applied: 0,
            completes: HashMap::new(),
            values: [0.0; TAGS.len()],
            clocks: [now; TAGS.len()],
            sequence: 0,
            alarm_clock: now,
        }
    }

    pub fn connect(&mut self) {
        self.up = true;
        self.session += 1;
        self.next_handle = 1;
    }

    /// The session is gone, and with it its items, events and calls.
    pub fn lose(&mut self) {
        self.up = false;
        self.items.clear();
        self.buffered.clear();
        self.events.clear();
        self.pending.clear();
    }

    fn tag_index(tag: &str) -> Option<usize> {
        TAGS.iter().position(|t| *t == tag)
    }

    fn data_change(&mut self, item: i32, tag: usize) {
        self.sequence += 1;
        let (value, time) = match (self.values.get(tag), self.clocks.get(tag)) {
            (Some(v), Some(t)) => (*v, *t),
            _ => return,
        };
        // A buffered item keeps the sample for its next OnBufferedDataChange.
        if let Some(samples) = self.buffered.get_mut(&item) {
            samples.push((value, time));
            return;
        }
        self.events.push_back(SessionEvent::DataChange(DataChange {
            worker_sequence: self.sequence,
            server_handle: ServerHandle(1),
            item_handle: ItemHandle(item),
            value: MxValue::Double(value),
            quality: Quality::GOOD,
            source_time: Some(time),
            statuses: Vec::new(),
        }));
    }

    /// The attribute changes, its source clock `jump_ms` on from its last time (back,
    /// when negative); each item advised on it gets the data change.
    pub fn change(&mut self, tag: usize, jump_ms: i64) {
        if let (Some(v), Some(c)) = (self.values.get_mut(tag), self.clocks.get_mut(tag)) {
            *v += 1.0;
            let d = Duration::from_millis(jump_ms.unsigned_abs());
            *c = if jump_ms >= 0 { *c + d } else { *c - d };
        }
        for h in self.items_of(tag) {
            self.data_change(h, tag);
        }
    }

    /// The items advised on attribute `tag`.
    fn items_of(&self, tag: usize) -> Vec<i32> {
        self.items
            .iter()
            .filter(|(_, t)| Self::tag_index(t) == Some(tag))
            .map(|(h, _)| *h)
            .collect()
    }

    fn write_complete(&mut self, item: i32, status: MxStatus, put: Option<usize>) {
        self.sequence += 1;
        if let Some(n) = put {
            self.completes.insert(self.sequence, n);
        }
        self.events
            .push_back(SessionEvent::WriteComplete(WriteComplete {
                worker_sequence: self.sequence,
                server_handle: ServerHandle(1),
                item_handle: ItemHandle(item),
                statuses: vec![status],
            }));
    }

    /// The time of the next alarm transition, `jump_ms` from the last one.
    pub fn alarm_clock(&mut self, jump_ms: i64) -> SystemTime {
        let d = Duration::from_millis(jump_ms.unsigned_abs());
        self.alarm_clock = if jump_ms >= 0 {
            self.alarm_clock + d
        } else {
            self.alarm_clock - d
        };
        self.alarm_clock
    }

    /// The bridge's calls of a turn.
    pub fn take(&mut self, advise: Vec<AdviseCall>, writes: Vec<WriteCall>) {
        for c in advise {
            match c {
                AdviseCall::Subscribe { call, tags } => {
                    self.pending.push(Pending::Subscribe { call, tags })
                }
                AdviseCall::SubscribeBuffered { call, tags, .. } => {
                    self.pending.push(Pending::SubscribeBuffered { call, tags })
                }
                // Applied at once (a failure would only leave an item advised until the
                // session ends: not generated).
                AdviseCall::Unsubscribe { items } => {
                    for h in items {
                        self.items.remove(&h.0);
                        self.buffered.remove(&h.0);
                    }
                }
            }
        }
        self.pending.extend(writes.into_iter().map(Pending::Write));
    }

    /// SubscribeBulk: a new item per tag, each with its first value queued.
    pub fn subscribe(&mut self, tags: &[String]) -> Vec<Advised> {
        tags.iter()
            .map(|tag| {
                let Some(t) = Self::tag_index(tag) else {
                    return Err(format!("{tag}: no such attribute"));
                };
                let h = self.next_handle;
                self.next_handle += 1;
                self.items.insert(h, tag.clone());
                self.data_change(h, t);
                Ok(ItemHandle(h))
            })
            .collect()
    }

    /// A write call: each entry applied to its item's attribute (a data change if the
    /// value changed, then OnWriteComplete), or refused when the item is not advised.
    pub fn write(&mut self, call: &WriteCall) -> Vec<Result<(), String>> {
        call.entries
            .iter()
            .map(|e| {
                let h = e.item_handle.0;
                let Some(tag) = self.items.get(&h).cloned() else {
                    return Err(format!("item handle {h} is not advised"));
                };
                // System Platform refuses every write of this attribute (its security
                // classification): OnWriteComplete carries the MXAccess status.
                if tag == REFUSED_TAG {
                    let denied = MxStatus::failure(
                        MxStatusCategory::SecurityError,
                        0,
                        "write access denied",
                    );
                    self.write_complete(h, denied, super::value_of(&e.value));
                    return Ok(());
                }
                let value = match &e.value {
                    MxValue::Double(v) => *v,
                    MxValue::Int32(v) => f64::from(*v),
                    _ => f64::NAN,
                };
                self.applied += 1;
                if let Some(t) = Self::tag_index(&tag) {
                    let changed = self.values.get(t) != Some(&value);
                    if let (true, Some(v)) = (changed, self.values.get_mut(t)) {
                        *v = value;
                        for item in self.items_of(t) {
                            self.data_change(item, t);
                        }
                    }
                }
                self.write_complete(h, MxStatus::ok(), super::value_of(&e.value));
                Ok(())
            })
            .collect()
    }

    /// AddBufferedItem + Advise of each tag: a new buffered item per tag, its first
    /// value its first sample.
    pub fn subscribe_buffered(&mut self, tags: &[String]) -> Vec<Advised> {
        tags.iter()
            .map(|tag| {
                let Some(t) = Self::tag_index(tag) else {
                    return Err(format!("{tag}: no such attribute"));
                };
                let h = self.next_handle;
                self.next_handle += 1;
                self.items.insert(h, tag.clone());
                self.buffered.insert(h, Vec::new());
                self.data_change(h, t);
                Ok(ItemHandle(h))
            })
            .collect()
    }

    /// The buffered update interval passed: each buffered item holding samples gets
    /// one OnBufferedDataChange of them, in the order they were taken.
    pub fn flush(&mut self) {
        let mut handles: Vec<i32> = self.buffered.keys().copied().collect();
        handles.sort_unstable();
        for h in handles {
            let Some(samples) = self.buffered.get_mut(&h).map(std::mem::take) else {
                continue;
            };
            if samples.is_empty() {
                continue;
            }
            self.sequence += 1;
            self.events
                .push_back(SessionEvent::BufferedDataChange(BufferedDataChange {
                    worker_sequence: self.sequence,
                    server_handle: ServerHandle(1),
                    item_handle: ItemHandle(h),
                    samples: samples
                        .into_iter()
                        .map(|(v, t)| (MxValue::Double(v), Quality::GOOD, Some(t)))
                        .collect(),
                    statuses: Vec::new(),
                }));
        }
    }

    /// A buffered item holds samples not delivered yet.
    pub fn holds_samples(&self) -> bool {
        self.buffered.values().any(|s| !s.is_empty())
    }
}
