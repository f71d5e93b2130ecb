//! OnBufferedDataChange: each sample of a buffered PV posted as its own update, in the
//! order System Platform gives, each with its own value, alarm and timeStamp (the
//! timeStamp rule of `values/stamp.rs`: a sample not later than the last posted goes
//! 1 ns after it). At most `[limits] max_buffered_samples` of one event are taken, the
//! newest (`link/buffered.rs`); `Updates:BufferedDropped` counts the others. Each sample
//! counts as a data change (`Updates:Rate`).
//!
//! The samples of the events taken together (`serve.rs` hands over the buffered events
//! that were ready one after the other) are first made into updates, then posted
//! round robin over their PVs, each PV's in order. pvxs sends one update of each
//! monitor per turn of its network thread: samples of several PVs queued at once leave
//! together, where one PV's samples posted alone leave one by one, each waking the
//! thread and the client (docs/performance.md, "Buffered samples").

use super::Bridge;
use crate::bridge::pv_id::PvId;
use crate::gateway::{BufferedDataChange, SessionEvent};
use crate::pva::Update;

impl Bridge {
    pub(in crate::bridge) fn on_buffered(&mut self, events: Vec<BufferedDataChange>) {
        let mut batches: Vec<(PvId, Vec<Update>)> = Vec::new();
        for b in events {
            self.batch_buffered(b, &mut batches);
        }
        self.post_round_robin(batches);
    }

    /// The updates of one event's samples, added to its PV's batch (the last sample
    /// stays staged, posted at the end of the turn).
    fn batch_buffered(&mut self, b: BufferedDataChange, batches: &mut Vec<(PvId, Vec<Update>)>) {
        let Some(i) = self.pvs.id_of_item(b.item_handle) else {
            let handle = b.item_handle.0;
            if self
                .link
                .subs
                .hold_early(SessionEvent::BufferedDataChange(b))
                .is_some()
            {
                self.link
                    .strays
                    .unknown_item("buffered data change", handle);
            }
            return;
        };
        self.link.subs.first_value(i);
        let cap = self.config.limits.max_buffered_samples;
        let name = self.pvs.get(i).map_or("", |pv| pv.cfg.name.as_str());
        let skip = self.link.dropped.take(name, b.samples.len(), cap);
        if skip > 0 {
            self.ops.status.buffered_dropped(skip as u64);
        }
        let k = match batches.iter().position(|(id, _)| *id == i) {
            Some(k) => k,
            None => {
                batches.push((i, Vec::with_capacity(b.samples.len().saturating_sub(skip))));
                batches.len() - 1
            }
        };
        let Some((_, batch)) = batches.get_mut(k) else {
            return;
        };
        let mut marked = false;
        for (value, quality, time) in b.samples.iter().skip(skip) {
            if self.demand.is_first_placeholder(&self.pvs, i, *quality) {
                continue;
            }
            let Some(pv) = self.pvs.get_mut(i) else {
                break;
            };
            self.ops.status.data_change();
            // A second sample adds the one before it to the batch: one update per
            // sample; the last is posted at the end of the turn.
            marked |= pv.buffered_sample(value, *quality, *time, &b.statuses, batch);
            self.demand.value_seen(&self.pvs, i);
        }
        if marked {
            self.dirty.push(i);
        }
    }

    /// Posts the batches: the first update of each PV, then the second, ...
    fn post_round_robin(&mut self, batches: Vec<(PvId, Vec<Update>)>) {
        let mut lists: Vec<_> = batches
            .into_iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(i, b)| (i, b.into_iter()))
            .collect();
        let mut left = lists.len();
        while left > 0 {
            left = 0;
            for (i, list) in &mut lists {
                if let Some(update) = list.next() {
                    left += 1;
                    if let Some(pv) = self.pvs.get(*i) {
                        pv.post_one(update);
                    }
                }
            }
        }
        for (i, _) in lists {
            if let Some(pv) = self.pvs.get_mut(i) {
                pv.batch_posted();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use crate::bridge::core::Bridge;
    use crate::bridge::interleavings::take_posted;
    use crate::bridge::link::subscriptions::Role;
    use crate::config::Config;
    use crate::gateway::{BufferedDataChange, ItemHandle, MxValue, Quality, ServerHandle};
    use crate::pva::{self, Server, ServerConfig, TimeStamp};

    /// The buffered events taken together: their samples are posted round robin over
    /// their PVs, and each PV's every sample, in order, at its source time (a PV's
    /// second event in the group after its first).
    #[tokio::test]
    async fn the_samples_of_events_taken_together_go_round_robin_each_pv_s_in_order() {
        let text = "[gateway]\nendpoint = \"http://127.0.0.1:1\"\n[alarms]\nenabled = false\n\
                    [defaults]\nbuffered = true\n\
                    [[pv]]\nname = \"BufA\"\ntag = \"Tank001.Level\"\ntype = \"float64\"\n\
                    [[pv]]\nname = \"BufB\"\ntag = \"Tank002.Level\"\ntype = \"float64\"\n";
        let config = Config::from_str_at(text, Path::new("buffered_test.toml")).unwrap();
        let server = Arc::new(Server::new(&ServerConfig::isolated()).unwrap());
        let (events, _rx) = pva::event_channel();
        let mut b = Bridge::new(config, server, events).unwrap();
        for (name, tag, item) in [("BufA", "Tank001.Level", 1), ("BufB", "Tank002.Level", 2)] {
            let id = b.pvs.id_of_name(name).unwrap();
            b.pvs
                .bind(id, tag, Role::Buffered, ItemHandle(item))
                .unwrap();
        }
        let t0 = SystemTime::now();
        let at = |k: u64| t0 + Duration::from_millis(k);
        let event = |item, samples: &[u64]| BufferedDataChange {
            worker_sequence: 0,
            server_handle: ServerHandle(1),
            item_handle: ItemHandle(item),
            samples: samples
                .iter()
                .map(|&k| (MxValue::Double(k as f64), Quality::GOOD, Some(at(k))))
                .collect(),
            statuses: vec![],
        };
        // The first values open the PVs.
        b.on_buffered(vec![event(1, &[0]), event(2, &[0])]);
        b.end_turn();
        take_posted();
        b.on_buffered(vec![
            event(1, &[1, 2, 3]),
            event(2, &[1, 2, 3]),
            event(1, &[4, 5]),
        ]);
        b.end_turn();
        let posted = take_posted();
        let names: Vec<&str> = posted.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..4], ["BufA", "BufB", "BufA", "BufB"], "{names:?}");
        for (name, n) in [("BufA", 5), ("BufB", 3)] {
            let times: Vec<_> = posted
                .iter()
                .filter(|(p, _)| p == name)
                .map(|(_, t)| *t)
                .collect();
            let want: Vec<_> = (1..=n)
                .map(|k| TimeStamp::from(at(k)))
                .map(|t| (t.seconds, t.nanos))
                .collect();
            assert_eq!(
                times, want,
                "{name}: every sample, in order, at its source time"
            );
        }
    }
}
