//! OnBufferedDataChange: each sample of a buffered PV posted as its own update, in the
//! order System Platform gives, each with its own value, alarm and timeStamp (the
//! timeStamp rule of `values/stamp.rs`: a sample not later than the last posted goes
//! 1 ns after it). At most `[limits] max_buffered_samples` of one event are taken, the
//! newest (`link/buffered.rs`); `Updates:BufferedDropped` counts the others. Each sample
//! counts as a data change (`Updates:Rate`).

use super::Bridge;
use crate::gateway::{BufferedDataChange, SessionEvent};

impl Bridge {
    pub(in crate::bridge) fn on_buffered(&mut self, b: BufferedDataChange) {
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
        for (value, quality, time) in b.samples.iter().skip(skip) {
            if self.demand.is_first_placeholder(&self.pvs, i, *quality) {
                continue;
            }
            let Some(pv) = self.pvs.get_mut(i) else {
                return;
            };
            self.ops.status.data_change();
            // A second sample posts the one before it (`MappedPv::data_change`): one
            // update per sample; the last is posted at the end of the turn.
            if pv.data_change(value, *quality, *time, &b.statuses) {
                self.dirty.push(i);
            }
            self.demand.value_seen(&self.pvs, i);
        }
    }
}
