//! Buffered PVs in generated histories: the gateway model's buffered items
//! (`gateway.rs`: AddBufferedItem + Advise, samples kept until [`Step::Flush`] hands them
//! over as one OnBufferedDataChange), and invariant 7.

use proptest::test_runner::TestCaseError;

use super::gateway::Pending;
use super::gen::Answering;
use super::{fail, World};

impl World {
    /// The answer to a buffered advise call: as asked, failing in transport, or twice.
    pub(super) fn answer_buffered(&mut self, call: u64, tags: &[String], how: Answering) {
        let results = match how {
            Answering::Failed => Err("AddBufferedItem failed: transport error".to_string()),
            _ => Ok(self.gw.subscribe_buffered(tags)),
        };
        if let (Answering::Twice, Ok(r)) = (how, &results) {
            self.bridge.on_subscribed(call, Ok(r.clone()));
        }
        self.bridge.on_subscribed(call, results);
    }

    /// Invariant 7: a PV's data item is buffered exactly when the PV is; a buffered
    /// PV's write item is a plain item of its tag; no plain call carries a buffered item.
    pub(super) fn check_buffered(&self) -> Result<(), TestCaseError> {
        for id in self.bridge.pvs.ids() {
            let Some(pv) = self.bridge.pvs.get(id) else {
                continue;
            };
            let name = pv.cfg.name.as_str();
            if let Some(item) = pv.item {
                let buffered = self.gw.buffered.contains_key(&item.0);
                if buffered != pv.cfg.buffered {
                    return Err(fail(
                        self.step,
                        format!(
                            "{name} (buffered: {}) holds item {} advised buffered: {buffered}",
                            pv.cfg.buffered, item.0
                        ),
                    ));
                }
            }
            if let Some(w) = pv.write_item() {
                let tag = self.gw.items.get(&w.0).map(String::as_str);
                if !pv.cfg.buffered
                    || !pv.cfg.writable()
                    || tag != Some(pv.cfg.tag.as_str())
                    || self.gw.buffered.contains_key(&w.0)
                    || self.bridge.pvs.id_of_write_item(w) != Some(id)
                {
                    return Err(fail(
                        self.step,
                        format!(
                            "{name} (buffered: {}, writable: {}, tag {}) holds write item {} of {tag:?}",
                            pv.cfg.buffered,
                            pv.cfg.writable(),
                            pv.cfg.tag.as_str(),
                            w.0
                        ),
                    ));
                }
            }
        }
        for p in &self.gw.pending {
            if let Pending::Subscribe { tags, .. } | Pending::SubscribeBuffered { tags, .. } = p {
                if tags.is_empty() {
                    return Err(fail(self.step, "an advise call of no tags"));
                }
            }
        }
        Ok(())
    }

    /// Once settled: every writable buffered PV that holds its data item holds its
    /// write item too.
    pub(super) fn check_buffered_settled(&self) -> Result<(), TestCaseError> {
        for id in self.bridge.pvs.ids() {
            let Some(pv) = self.bridge.pvs.get(id) else {
                continue;
            };
            if pv.item.is_some() && pv.needs_write_item() {
                return Err(fail(
                    self.step,
                    format!(
                        "settled: writable buffered {} holds no write item",
                        pv.cfg.name.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }
}
