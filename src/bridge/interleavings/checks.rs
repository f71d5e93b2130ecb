//! The invariants, checked after every step and once a history has settled.

use std::collections::{HashMap, HashSet};

use proptest::test_runner::TestCaseError;

use super::acf;
use super::gateway::{self, Pending};
use super::gen::{self, Answering, Mapping, Step, NAMES};
use super::who;
use super::{fail, take_posted, value_of, World};
use crate::access::denied_message;
use crate::bridge::pv_id::PvId;
use crate::pva::PutOutcome;

impl World {
    /// The invariants after one step.
    pub(super) fn check_step(
        &mut self,
        step: &Step,
        before: &Mapping,
        before_ids: &HashMap<String, PvId>,
    ) -> Result<(), TestCaseError> {
        let at = self.step;
        // 2: at most one answer; 1: confirmed (or refused by System Platform) only on
        // its own OnWriteComplete, unless the PV got one of an answered put (see
        // `World::late_completed`).
        for (n, p) in self.puts.iter().enumerate() {
            let a = p.answers.lock().unwrap();
            if a.len() > 1 {
                return Err(fail(
                    at,
                    format!("put {n} to {} answered {} times: {a:?}", p.pv, a.len()),
                ));
            }
            let completed = matches!(
                a.first(),
                Some((
                    PutOutcome::Confirmed | PutOutcome::RefusedBySystemPlatform,
                    _
                ))
            );
            if completed && !p.completed && !self.late_completed.contains(&p.pv) {
                return Err(fail(
                    at,
                    format!(
                        "put {n} to {} answered {a:?} before its OnWriteComplete reached the bridge",
                        p.pv
                    ),
                ));
            }
        }
        // 3 and 6.
        let unchanged = self.unchanged(step, before, before_ids);
        for (name, t) in take_posted() {
            if unchanged.contains(&name) {
                return Err(fail(
                    at,
                    format!("{name} was posted by a reload that left it as it was"),
                ));
            }
            if let Some(last) = self.last_posted.get(&name) {
                if t < *last {
                    return Err(fail(
                        at,
                        format!("{name} posted {t:?} after {last:?}: its timeStamp went back"),
                    ));
                }
            }
            self.last_posted.insert(name, t);
        }
        // 4: an item a PV holds is advised for its tag.
        for id in self.bridge.pvs.ids() {
            let Some(pv) = self.bridge.pvs.get(id) else {
                continue;
            };
            let Some(item) = pv.item else { continue };
            if self.bridge.pvs.id_of_item(item) != Some(id) {
                return Err(fail(
                    at,
                    format!(
                        "{} holds item {} that finds another PV",
                        pv.cfg.name.as_str(),
                        item.0
                    ),
                ));
            }
            let at_gateway = self.gw.items.get(&item.0);
            if at_gateway.map(String::as_str) != Some(pv.cfg.tag.as_str()) {
                return Err(fail(
                    at,
                    format!(
                        "{} maps {} but holds item {} of {at_gateway:?}",
                        pv.cfg.name.as_str(),
                        pv.cfg.tag.as_str(),
                        item.0
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Invariant 1 on the write calls in flight: at most one write per PV and per item
    /// across them, as many calls as the bridge counts, and no more than its bound.
    pub(super) fn check_calls_in_flight(&mut self) -> Result<(), TestCaseError> {
        let mut pvs = HashSet::new();
        let mut items = HashSet::new();
        let mut calls = 0;
        for p in &self.gw.pending {
            let Pending::Write(w) = p else { continue };
            calls += 1;
            for ((pv, id), e) in w.puts.iter().zip(&w.entries) {
                if !pvs.insert(*pv) || !items.insert(e.item_handle.0) {
                    return Err(fail(
                        self.step,
                        format!(
                            "write {id} to item {} goes while another write of its PV ({pv:?}) or item is in a call in flight",
                            e.item_handle.0
                        ),
                    ));
                }
            }
        }
        self.most_calls = self.most_calls.max((calls, pvs.len()));
        let counted = self.bridge.writes.calls_in_flight();
        if calls != counted || calls > crate::bridge::writes::calls::MAX_CALLS {
            return Err(fail(
                self.step,
                format!(
                    "{calls} write calls in flight at the gateway, {counted} counted by the bridge (at most {})",
                    crate::bridge::writes::calls::MAX_CALLS
                ),
            ));
        }
        Ok(())
    }

    /// Invariant 1, as a write call leaves the bridge.
    pub(super) fn check_write_call(
        &mut self,
        call: &crate::bridge::writes::calls::WriteCall,
    ) -> Result<(), TestCaseError> {
        for (entry, (id, _)) in call.entries.iter().zip(&call.puts) {
            let Some(n) = value_of(&entry.value) else {
                return Err(fail(self.step, format!("a write of {:?}", entry.value)));
            };
            let item_tag = self.gw.items.get(&entry.item_handle.0).cloned();
            if self.gw.buffered.contains_key(&entry.item_handle.0) {
                return Err(fail(
                    self.step,
                    format!("a write through buffered item {}", entry.item_handle.0),
                ));
            }
            let current = self
                .bridge
                .pvs
                .get(*id)
                .map(|pv| pv.cfg.tag.as_str().to_string());
            let Some(put) = self.puts.get_mut(n) else {
                return Err(fail(self.step, format!("a write of value {n} no put made")));
            };
            put.sp_refused = item_tag.as_deref() == Some(gateway::REFUSED_TAG);
            if std::mem::replace(&mut put.sent, true) {
                return Err(fail(self.step, format!("put {n} to {} sent twice", put.pv)));
            }
            if item_tag.is_none() || item_tag != put.tag || item_tag != current {
                return Err(fail(
                    self.step,
                    format!(
                        "put {n} to {} accepted for {:?} goes to item {} of {item_tag:?}; the PV maps {current:?} now",
                        put.pv, put.tag, entry.item_handle.0
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The PVs a reload or deploy left as they were: the same PV (id) before and after,
    /// and for a reload, the same `[[pv]]` (or, for a rule-made PV, the same rule).
    fn unchanged(
        &self,
        step: &Step,
        before: &Mapping,
        before_ids: &HashMap<String, PvId>,
    ) -> HashSet<String> {
        let reload = match step {
            Step::Reload(_) | Step::Acf(..) => true,
            Step::Deploy { .. } => false,
            _ => return HashSet::new(),
        };
        let after = self.ids_by_name();
        let explicit: HashMap<String, usize> = (0..NAMES).map(|i| (self.name(i), i)).collect();
        // The alarms of an attribute show on one PV of its tag: a PV that comes, goes or
        // changes may move them to another PV of the same tag, which is a change of it.
        let mut moved: HashSet<usize> = HashSet::new();
        for (b, a) in before.pvs.iter().zip(&self.mapping.pvs) {
            if b != a {
                moved.extend(b.iter().chain(a.iter()).map(|p| p.tag));
            }
        }
        if !reload || before.rule != self.mapping.rule {
            moved.extend(gen::RULE_TAGS);
        }
        let tag_of = |name: &String| {
            let pv = self.bridge.pvs.get(*after.get(name)?)?;
            gen::TAGS.iter().position(|t| *t == pv.cfg.tag.as_str())
        };
        let kept: Vec<(String, PvId)> = after
            .iter()
            .filter(|(name, _)| tag_of(name).is_none_or(|t| !moved.contains(&t)))
            .map(|(n, id)| (n.clone(), *id))
            .collect();
        kept.into_iter()
            .filter(|(name, id)| before_ids.get(name) == Some(id))
            .filter(|(name, _)| {
                !reload
                    || match explicit.get(name) {
                        Some(&i) => before.pvs.get(i) == self.mapping.pvs.get(i),
                        None => before.rule == self.mapping.rule,
                    }
            })
            .map(|(name, _)| name)
            .collect()
    }

    pub(super) fn ids_by_name(&self) -> HashMap<String, PvId> {
        self.bridge
            .pvs
            .ids()
            .into_iter()
            .filter_map(|id| Some((self.bridge.pvs.get(id)?.cfg.name.as_str().to_string(), id)))
            .collect()
    }

    /// Invariant 5: every PV carries the access keys of the mapping in force (an explicit
    /// PV those of its `[[pv]]`, a rule-made PV those of its rule as it is now; none is
    /// left of a rule that is gone). Puts are checked as they are made (`World::put`).
    pub(super) fn check_access(&self) -> Result<(), TestCaseError> {
        let explicit: HashMap<String, usize> = (0..NAMES).map(|i| (self.name(i), i)).collect();
        for id in self.bridge.pvs.ids() {
            let Some(pv) = self.bridge.pvs.get(id) else {
                continue;
            };
            let name = pv.cfg.name.as_str();
            if let Some(&i) = explicit.get(name) {
                let has = (&*pv.cfg.access_group, pv.cfg.access_level);
                let want = self.access_keys(i);
                if want != Some(has) {
                    return Err(fail(
                        self.step,
                        format!("{name}: the mapping in force says (group, level) {want:?}, the PV has {has:?}"),
                    ));
                }
                continue;
            }
            let Some(rule) = &self.mapping.rule else {
                return Err(fail(
                    self.step,
                    format!("{name} is served though its rule is gone"),
                ));
            };
            let want = (gen::GROUPS[rule.group], rule.level, rule.writable);
            let has = (
                &*pv.cfg.access_group,
                pv.cfg.access_level,
                pv.cfg.write.is_some(),
            );
            if want != has {
                return Err(fail(
                    self.step,
                    format!("{name}: the rule in force says (group, level, writable) {want:?}, the PV has {has:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Invariant 5 on put `n` by `who` to `name`, of `keys` (group, level) in the mapping
    /// in force: denied (and answered at once, naming that group) exactly when the model
    /// of the ACF in force says so.
    pub(super) fn check_decision(
        &mut self,
        n: usize,
        name: &str,
        keys: (&str, u8),
        who: &who::Who,
    ) -> Result<(), TestCaseError> {
        let (group, level) = keys;
        let denied = !acf::grants_write(self.acf_in_force, group, level, who);
        let expected = denied_message(name, group, &who.rules_account(), who.host());
        let Some(put) = self.puts.get(n) else {
            return Err(fail(self.step, format!("no put {n}")));
        };
        let a = put.answers.lock().unwrap();
        let right = if denied {
            a.as_slice() == [(PutOutcome::Refused, Some(expected))]
        } else {
            !a.iter()
                .any(|(_, m)| m.as_deref().is_some_and(|m| m.starts_with("put denied")))
        };
        if !right {
            return Err(fail(
                self.step,
                format!(
                    "put {n} to {name} (group {group}, level {level}) by {who:?}: the ACF in force ({}) {} it, the bridge answered {a:?}",
                    acf::name(self.acf_in_force),
                    if denied { "denies" } else { "allows" },
                ),
            ));
        }
        drop(a);
        self.denied += usize::from(denied);
        self.ruled += usize::from(self.acf_in_force.is_some());
        Ok(())
    }

    /// Everything answered and delivered, and time run past every deadline.
    async fn settle(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..400 {
            if !self.gw.pending.is_empty() {
                self.apply(&Step::Answer(0, Answering::Asked)).await?;
            } else if !self.gw.events.is_empty() {
                self.apply(&Step::Events(64)).await?;
            } else if self.gw.holds_samples() {
                self.apply(&Step::Flush).await?;
            } else if let Some(at) = self.bridge.next_deadline() {
                let now = tokio::time::Instant::now();
                let ms = at.saturating_duration_since(now).as_millis() as u64 + 1;
                self.apply(&Step::Wait(ms)).await?;
            } else {
                return Ok(());
            }
            self.step += 1;
        }
        Err(fail(self.step, "the history never settled"))
    }

    /// The invariants once settled.
    pub(super) async fn check_settled(&mut self) -> Result<(), TestCaseError> {
        self.settle().await?;
        let at = self.step;
        for (n, p) in self.puts.iter().enumerate() {
            let a = p.answers.lock().unwrap();
            match a.as_slice() {
                [(_, Some(m))] if m.contains("abandoned") => {
                    return Err(fail(at, format!("put {n} to {} abandoned: {m}", p.pv)))
                }
                [(outcome, _)] => {
                    let gateway_error = *outcome == PutOutcome::GatewayError;
                    let by_sp = *outcome == PutOutcome::RefusedBySystemPlatform;
                    // `lost` only once the write left mxpva: one not sent is `refused`.
                    let lost_unsent = *outcome == PutOutcome::Lost && !p.sent;
                    if gateway_error != p.transport_failed
                        || (by_sp && !p.sp_refused)
                        || lost_unsent
                    {
                        return Err(fail(
                            at,
                            format!(
                                "put {n} to {} answered {a:?}: sent {}, its call failed in transport: {}, System Platform refused it: {}",
                                p.pv, p.sent, p.transport_failed, p.sp_refused
                            ),
                        ));
                    }
                }
                other => {
                    return Err(fail(
                        at,
                        format!(
                            "put {n} to {} answered {} times once settled: {other:?}",
                            p.pv,
                            other.len()
                        ),
                    ))
                }
            }
        }
        // 4: the items advised are those the PVs hold...
        let held: HashSet<i32> = self
            .bridge
            .pvs
            .ids()
            .into_iter()
            .filter_map(|id| self.bridge.pvs.get(id))
            .flat_map(|pv| pv.items())
            .map(|h| h.0)
            .collect();
        let advised: HashSet<i32> = self.gw.items.keys().copied().collect();
        if held != advised {
            return Err(fail(
                at,
                format!(
                    "settled: the PVs hold items {held:?}, the gateway advises {:?}",
                    self.gw.items
                ),
            ));
        }
        // ... and after a new session, exactly the PVs that should be advised hold one.
        if self.gw.up {
            self.apply(&Step::Lose).await?;
        }
        self.apply(&Step::Reconnect).await?;
        self.settle().await?;
        let at = self.step;
        for id in self.bridge.pvs.ids() {
            let Some(pv) = self.bridge.pvs.get(id) else {
                continue;
            };
            let wanted = self.bridge.demand.wants_item(&self.bridge.pvs, id);
            if wanted != pv.item.is_some() {
                return Err(fail(
                    at,
                    format!("after a new session {} (on demand: {}) should be advised: {wanted}, holds {:?}", pv.cfg.name.as_str(), pv.cfg.subscribe.is_on_demand(), pv.item),
                ));
            }
        }
        self.check_buffered_settled()
    }
}
