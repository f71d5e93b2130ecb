//! Push: OnDataChange and OnBufferedDataChange leave when the change happens.
//!
//! The real gateway forwards MXAccess events as MXAccess fires them; it does not poll.
//! So does the simulator: whoever changes the world (a write System Platform applies,
//! the control API, a deploy, the dynamics tick) calls [`publish`] with what changed,
//! under the world lock, and the items advised on those attributes (found through
//! [`crate::sim::subs::Subscribers`]) get their event at once. The work is proportional
//! to the items advised on what changed. Two things wait for a moment and have their own
//! due-lists: the first OnDataChange after Advise (the first-update delay) and the flush
//! of a buffered item's samples (its buffered update interval); [`deliver_due`] serves
//! them when the simulator's timer fires.
//!
//! **Scans.** System Platform reports an attribute to a plain item once per scan (the
//! Galaxy's `tick_ms`), with its latest value: an attribute changed several times within
//! one scan by control calls (SetValue, SetQuality, alarms forced) reaches a plain item
//! only at the end of that scan ([`publish_in_scan`], then the tick), while a buffered
//! item gets every change as a sample with its own time, at once. A write System
//! Platform applies keeps its prompt data change ([`publish`]), and Burst stays raw, as
//! does its buffered counterpart ([`buffered_burst`]): samples taken by the buffered
//! items, which then leave by the rules of every sample.
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::reads::{data_change, read_target};
use crate::gateway::convert::{data_type_to_pb, status_to_pb, time_to_pb, value_to_pb};
use crate::gateway::pb::gw as pb;
use crate::gateway::{MxDataType, MxStatus, MxValue, Quality};
use crate::sim::session::{Item, SimSession, State, DEFAULT_BUFFER_INTERVAL, MAX_BUFFERED_SAMPLES};
use crate::sim::subs::{Due, Key, Sub, Subscribers};
use crate::sim::world::{Changes, World};
use crate::sim::{AlarmNews, Core, Galaxy};

/// Publish what changed in the world: alarm transitions to the StreamAlarms
/// subscribers, and an OnDataChange (or a buffered sample) to every item advised on a
/// changed attribute or alarm. The caller holds the world lock (`w`), so that the events
/// of one attribute leave in the order of its changes.
pub(crate) fn publish(core: &Core, g: &Galaxy, w: &World, changes: Changes) {
    for t in changes.transitions {
        let _ = core.alarm_tx.send(AlarmNews::Transition(Box::new(t)));
    }
    if changes.attrs.is_empty() && changes.alarms.is_empty() {
        return;
    }
    let now = Instant::now();
    let mut subs = core.subs.lock();
    let keys = changes
        .attrs
        .iter()
        .map(|&a| Key::Attr(a))
        .chain(changes.alarms.iter().map(|&a| Key::Alarm(a)));
    let per_session = by_session(keys.flat_map(|k| subs.of(k)));
    for (sess, items) in per_session {
        deliver(core, g, w, &mut subs, &sess, &items, now);
    }
}

/// Publish what a control call changed during the current scan: alarm transitions to
/// the StreamAlarms subscribers and samples to the buffered items at once; the plain
/// items get the latest value at the end of the scan ([`scan_end`]).
pub(crate) fn publish_in_scan(core: &Core, g: &Galaxy, w: &World, changes: Changes) {
    for t in changes.transitions {
        let _ = core.alarm_tx.send(AlarmNews::Transition(Box::new(t)));
    }
    if changes.attrs.is_empty() && changes.alarms.is_empty() {
        return;
    }
    let now = Instant::now();
    let mut subs = core.subs.lock();
    let keys: Vec<Key> = changes
        .attrs
        .iter()
        .map(|&a| Key::Attr(a))
        .chain(changes.alarms.iter().map(|&a| Key::Alarm(a)))
        .collect();
    for &k in &keys {
        subs.scanned(k);
    }
    let per_session = by_session(keys.iter().flat_map(|&k| subs.of(k)));
    for (sess, items) in per_session {
        deliver_to(core, g, w, &mut subs, &sess, &items, now, false);
    }
}

/// The end of a scan: what control calls changed during it joins the tick's changes, so
/// that its plain items get the latest value now.
pub(crate) fn scan_end(core: &Core, changes: &mut Changes) {
    for k in core.subs.lock().take_scanned() {
        match k {
            Key::Attr(a) if !changes.attrs.contains(&a) => changes.attrs.push(a),
            Key::Alarm(a) if !changes.alarms.contains(&a) => changes.alarms.push(a),
            _ => {}
        }
    }
}

/// Serve the due-lists: first values after Advise, flushes of buffered items.
pub(crate) fn deliver_due(core: &Core, now: Instant) {
    let w = core.world.lock();
    let g = core.galaxy();
    let mut subs = core.subs.lock();
    let (first, flushes) = subs.take_due(now);
    for (sess, items) in by_session(first.iter()) {
        deliver(core, &g, &w, &mut subs, &sess, &items, now);
    }
    for (sess, items) in by_session(flushes.iter()) {
        flush_due(core, &g, &mut subs, &sess, &items, now);
    }
}

/// Items grouped by session (sessions are few: a linear search finds the group).
fn by_session<'a>(subs: impl Iterator<Item = &'a Sub>) -> Vec<(Arc<SimSession>, Vec<i32>)> {
    let mut out: Vec<(Arc<SimSession>, Vec<i32>)> = Vec::new();
    for s in subs {
        match out.iter_mut().find(|(x, _)| Arc::ptr_eq(x, &s.sess)) {
            Some((_, items)) => items.push(s.item),
            None => out.push((s.sess.clone(), vec![s.item])),
        }
    }
    out
}

/// The next OnDataChange payload of an advised item, if one is due: the first after
/// Advise (once its moment has come), then one per change of value or quality.
fn next_sample(
    g: &Galaxy,
    world: &World,
    item: &mut Item,
    now: Instant,
) -> Option<(MxValue, MxDataType, Quality, SystemTime, Vec<MxStatus>)> {
    let first = match item.first_due {
        Some(d) if now >= d => true,
        Some(_) => return None,
        None => false,
    };
    let (value, dt, q, time, version, statuses) = read_target(g, world, &item.target);
    if !first && version <= item.last_version {
        return None;
    }
    item.last_version = version;
    // MXAccess fires on a change of value or quality: an array whose other elements
    // changed is no change for an element item.
    if !first
        && item
            .cached
            .as_ref()
            .is_some_and(|(cv, cq, _)| *cv == value && *cq == q)
    {
        return None;
    }
    item.first_due = None;
    item.cached = Some((value.clone(), q, time));
    Some((value, dt, q, time, statuses))
}

/// Send the due OnDataChange of `items` of `sess` (or buffer it, for buffered items).
fn deliver(
    core: &Core,
    g: &Galaxy,
    w: &World,
    subs: &mut Subscribers,
    sess: &Arc<SimSession>,
    items: &[i32],
    now: Instant,
) {
    deliver_to(core, g, w, subs, sess, items, now, true);
}

/// [`deliver`]; with `plain` false, to the buffered items only (the plain ones wait for
/// the end of the scan).
#[allow(clippy::too_many_arguments)] // deliver's own, and whether plain items take it now
fn deliver_to(
    core: &Core,
    g: &Galaxy,
    w: &World,
    subs: &mut Subscribers,
    sess: &Arc<SimSession>,
    items: &[i32],
    now: Instant,
    plain: bool,
) {
    each_item(sess, items, |events, server, interval, ih, item| {
        if !item.advised || (!plain && !item.buffered) {
            return;
        }
        let Some((value, dt, q, time, statuses)) = next_sample(g, w, item, now) else {
            return;
        };
        if !item.buffered {
            events.push(data_change(
                &sess.id,
                server,
                ih,
                &value,
                dt,
                q,
                time,
                g.now(),
                &statuses,
            ));
            return;
        }
        if item.samples.len() >= MAX_BUFFERED_SAMPLES {
            item.samples.remove(0);
        }
        item.samples.push((value, q, time));
        if now.duration_since(item.last_flush) >= interval {
            events.push(flush(g, &sess.id, server, ih, item, now));
        } else if !item.flush_queued {
            queue_flush(core, subs, sess, ih, item, interval);
        }
    });
}

/// The control call BufferedBurst, raw as Burst is (the Galaxy's values do not change):
/// every advised buffered item of `sess` takes `count` synthetic Double samples, `first`,
/// `first + 1`, ..., GOOD, 1 us apart and ending now, as if its attribute had changed
/// that many times since the last scan. They leave as any sample does: at most
/// [`MAX_BUFFERED_SAMPLES`] kept per item (the oldest dropped), in one
/// OnBufferedDataChange per buffered update interval (at once when the interval since
/// the item's last one has passed). Returns how many items took them.
pub(crate) fn buffered_burst(
    core: &Core,
    sess: &Arc<SimSession>,
    count: usize,
    first: f64,
) -> usize {
    let now = Instant::now();
    let end = core.now();
    let g = core.galaxy();
    let items: Vec<i32> = {
        let h = sess.handles.lock();
        let mut v: Vec<i32> = h
            .items
            .iter()
            .filter(|(_, i)| i.advised && i.buffered)
            .map(|(k, _)| *k)
            .collect();
        v.sort_unstable();
        v
    };
    let mut subs = core.subs.lock();
    let mut took = 0;
    each_item(sess, &items, |events, server, interval, ih, item| {
        if !item.advised || !item.buffered {
            return;
        }
        took += 1;
        let keep = count.min(MAX_BUFFERED_SAMPLES);
        let over = (item.samples.len() + keep).saturating_sub(MAX_BUFFERED_SAMPLES);
        item.samples.drain(..over.min(item.samples.len()));
        for k in count - keep..count {
            let before = Duration::from_micros((count - 1 - k) as u64);
            let time = end.checked_sub(before).unwrap_or(end);
            item.samples
                .push((MxValue::Double(first + k as f64), Quality::GOOD, time));
        }
        if now.duration_since(item.last_flush) >= interval {
            events.push(flush(&g, &sess.id, server, ih, item, now));
        } else if !item.flush_queued {
            queue_flush(core, &mut subs, sess, ih, item, interval);
        }
    });
    took
}

/// Flush the buffered `items` of `sess` whose interval has passed; the others wait on.
fn flush_due(
    core: &Core,
    g: &Galaxy,
    subs: &mut Subscribers,
    sess: &Arc<SimSession>,
    items: &[i32],
    now: Instant,
) {
    each_item(sess, items, |events, server, interval, ih, item| {
        item.flush_queued = false;
        if !item.advised || !item.buffered || item.samples.is_empty() {
            return;
        }
        if now.duration_since(item.last_flush) >= interval {
            events.push(flush(g, &sess.id, server, ih, item, now));
        } else {
            // The interval changed (SetBufferedUpdateInterval) since it was queued.
            queue_flush(core, subs, sess, ih, item, interval);
        }
    });
}

/// Run `f` on each of `items` of a ready session (with its server handle and buffered
/// update interval), then push the events it made.
fn each_item(
    sess: &SimSession,
    items: &[i32],
    mut f: impl FnMut(&mut Vec<pb::MxEvent>, i32, Duration, i32, &mut Item),
) {
    let mut events = Vec::new();
    {
        let mut h = sess.handles.lock();
        if h.state != State::Ready {
            return;
        }
        for &ih in items {
            let Some(server) = h.items.get(&ih).map(|i| i.server) else {
                continue;
            };
            let interval = h
                .buffer_intervals
                .get(&server)
                .copied()
                .unwrap_or(DEFAULT_BUFFER_INTERVAL);
            if let Some(item) = h.items.get_mut(&ih) {
                f(&mut events, server, interval, ih, item);
            }
        }
    }
    if events.is_empty() {
        return;
    }
    let mut it = events.into_iter();
    let n = it.len();
    sess.push_with(n, |_| it.next().unwrap_or_default());
}

/// Put a buffered item's flush on the due-list, for when its interval has passed.
fn queue_flush(
    core: &Core,
    subs: &mut Subscribers,
    sess: &Arc<SimSession>,
    ih: i32,
    item: &mut Item,
    interval: Duration,
) {
    item.flush_queued = true;
    subs.flush_due(Due {
        at: item.last_flush + interval,
        sub: Sub {
            sess: sess.clone(),
            item: ih,
        },
    });
    core.due_wake.notify_one();
}

/// The OnBufferedDataChange of the samples `item` holds.
fn flush(
    g: &Galaxy,
    session: &str,
    server: i32,
    ih: i32,
    item: &mut Item,
    now: Instant,
) -> pb::MxEvent {
    item.last_flush = now;
    let declared = item
        .target
        .attribute()
        .and_then(|a| g.attributes.get(a).map(|d| d.data_type));
    buffered_data_change(
        session,
        server,
        ih,
        declared,
        std::mem::take(&mut item.samples),
        g.now(),
    )
}

fn buffered_data_change(
    session: &str,
    server: i32,
    item: i32,
    declared: Option<MxDataType>,
    samples: Vec<(MxValue, Quality, SystemTime)>,
    worker: SystemTime,
) -> pb::MxEvent {
    let data_type = declared.unwrap_or(MxDataType::Unknown);
    let mut body = pb::OnBufferedDataChangeEvent {
        data_type: data_type_to_pb(data_type) as i32,
        ..Default::default()
    };
    for (v, q, t) in samples {
        body.values.push(value_to_pb(&v, declared));
        body.qualities.push(i32::from(q.0));
        body.timestamps.push(time_to_pb(t));
    }
    pb::MxEvent {
        session_id: session.to_string(),
        family: pb::MxEventFamily::OnBufferedDataChange as i32,
        server_handle: server,
        item_handle: item,
        statuses: vec![status_to_pb(&MxStatus::ok())],
        worker_timestamp: Some(time_to_pb(worker)),
        body: Some(pb::mx_event::Body::OnBufferedDataChange(body)),
        ..Default::default()
    }
}
