//! Applying a diff while serving, and the gateway work it implies.
//!
//! Only what the diff names is touched; every other PV keeps its SharedPv, its monitors,
//! its value and its subscription.
//! - A removed PV is retired: its writes fail (one not yet sent never is), its clients
//!   are disconnected, it is no longer served, its item is unsubscribed (UnsubscribeBulk)
//!   and its `:ACK` PV goes with it.
//! - A PV whose tag, type or writability changed is re-opened: a new PV under the same id
//!   and name (clients reconnect to it), its old item unsubscribed, its tag subscribed
//!   again so that the first value comes in its new type. Its timeStamps continue from
//!   the old PV's, never going back (`values/stamp.rs`).
//! - Any other change is taken in place; metadata and limits are posted in place. A
//!   switch of `buffered` keeps the PV, its clients and its value: its items are
//!   un-advised and its tag advised again the new way.
//! - An added PV is served at once and subscribed (SubscribeBulk) in the live session.
//!
//! The gateway calls go out from `link/subscriptions.rs` (paced, one SubscribeBulk at a
//! time); their results come back to `Bridge::on_subscribed` (`session.rs`), which binds each item
//! only to a PV that still maps to the tag it was advised for. Without a link there is
//! no gateway work: the next session advises the registry as it is then.

//!
//! A discovery of the `[[discover]]` rules (`mapping/deploys.rs`) is applied the same
//! way, its PVs joined with the config's.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::time::Instant;

use tracing::{info, warn};

use super::Bridge;
use crate::bridge::mapping::deploys::{Follower, Found};
use crate::bridge::mapping::diff::{diff, Change, Diff};
use crate::bridge::mapping::pv::MappedPv;
use crate::bridge::pv_id::PvId;
use crate::gateway::ItemHandle;

/// What [`Bridge::apply`] did, for the log.
#[derive(Debug, Default, Clone, Copy)]
pub(in crate::bridge) struct Applied {
    pub added: usize,
    pub removed: usize,
    pub reopened: usize,
    pub changed_in_place: usize,
}

impl Bridge {
    /// Applies `diff` to the registry while serving.
    pub(in crate::bridge) fn apply(&mut self, diff: Diff) -> Applied {
        let mut applied = Applied::default();
        let mut unsubscribe: Vec<ItemHandle> = Vec::new();
        let mut subscribe: Vec<PvId> = Vec::new();
        // PVs whose alarm part is to be posted again: new, re-opened, or with other
        // alarm settings.
        let mut touched: HashSet<PvId> = HashSet::new();
        for id in diff.removed {
            self.demand.forget(id, "PV removed by a config reload");
            self.link.subs.forget(id);
            let Some(mut pv) = self.pvs.remove(id) else {
                continue;
            };
            unsubscribe.extend(pv.items());
            pv.retire("PV removed by a config reload");
            if let Err(e) = self.server.remove_pv(pv.cfg.name.as_str()) {
                warn!(pv = %pv.cfg.name.as_str(), error = %e, "cannot stop serving the PV");
            }
            info!(pv = %pv.cfg.name.as_str(), tag = %pv.cfg.tag.as_str(), "PV removed");
            applied.removed += 1;
        }
        for c in diff.changed {
            let reopen = c
                .changes
                .iter()
                .any(|k| matches!(k, Change::Tag | Change::Type | Change::Writability));
            if reopen {
                let name = c.cfg.name.as_str().to_string();
                // Its posts continue from the old PV's (`values/stamp.rs`).
                let stamps = self.pvs.get(c.id).map(|old| old.stamps().clone());
                let stamps = stamps.unwrap_or_default();
                let events = &self.events;
                let new = match MappedPv::continuing(c.cfg, &self.config.defaults, events, stamps) {
                    Ok(new) => new,
                    Err(e) => {
                        warn!(pv = %name, error = %e, "cannot re-open the PV: the old one stays");
                        continue;
                    }
                };
                // The new PV takes the old one's place at the server.
                if let Err(e) = self
                    .server
                    .remove_pv(&name)
                    .and_then(|()| self.server.add_pv(&new.pv))
                {
                    warn!(pv = %name, error = %e, "cannot re-open the PV: the old one stays");
                    if let Some(old) = self.pvs.get(c.id) {
                        let _ = self.server.add_pv(&old.pv);
                    }
                    continue;
                }
                self.link.subs.forget(c.id);
                self.demand
                    .fail_held_puts(c.id, "PV re-opened by a config reload");
                if let Some(mut old) = self.pvs.replace(c.id, new) {
                    unsubscribe.extend(old.items());
                    old.retire("PV re-opened by a config reload");
                }
                info!(pv = %name, changes = ?c.changes, "PV re-opened");
                subscribe.push(c.id);
                touched.insert(c.id);
                applied.reopened += 1;
            } else if let Some(pv) = self.pvs.get_mut(c.id) {
                let post = c
                    .changes
                    .iter()
                    .any(|k| matches!(k, Change::Metadata | Change::Limits));
                info!(pv = %c.cfg.name.as_str(), changes = ?c.changes, "PV changed in place");
                if c.changes.contains(&Change::Alarms) {
                    touched.insert(c.id);
                }
                pv.reconfigure(c.cfg, post);
                if c.changes.contains(&Change::Buffered) {
                    // Advised again the new way; a late item of the old way is refused
                    // by `Registry::bind`.
                    unsubscribe.extend(pv.items());
                    self.pvs.unbind(c.id);
                    self.link.subs.forget(c.id);
                    subscribe.push(c.id);
                }
                if c.changes.contains(&Change::Subscribe)
                    && self
                        .demand
                        .subscribe_changed(&mut self.pvs, c.id, Instant::now())
                {
                    subscribe.push(c.id);
                }
                applied.changed_in_place += 1;
            }
        }
        for (id, cfg) in diff.same {
            // The same config, from the config now in force: the old copy goes.
            if let Some(pv) = self.pvs.get_mut(id) {
                pv.cfg = cfg;
            }
        }
        for cfg in diff.added {
            let name = cfg.name.as_str().to_string();
            match self
                .pvs
                .add(cfg, &self.config.defaults, &self.server, &self.events)
            {
                Ok(id) => {
                    info!(pv = %name, "PV added");
                    subscribe.push(id);
                    touched.insert(id);
                    applied.added += 1;
                }
                Err(e) => warn!(pv = %name, error = %e, "cannot serve the added PV"),
            }
        }
        self.alarms.remap(&mut self.pvs, &mut self.dirty, &touched);
        self.link.subs.unadvise(unsubscribe);
        let before = self.link.subs.is_idle();
        self.advise(subscribe);
        if before && !self.link.subs.is_idle() && self.link.starting.is_none() {
            self.link.reload_subscribing = true;
        }
        applied
    }
}

impl Bridge {
    /// Starts, updates or stops following deploys after the config changed.
    pub(in crate::bridge) fn follow_rules(&mut self) {
        if self.config.discover.is_empty() {
            self.rules.follower = None;
            self.rules.pvs.clear();
            return;
        }
        let config = Arc::new(self.config.clone());
        match self.rules.follower.as_mut() {
            Some(f) => f.update(config, self.opts.clone()),
            None => {
                let gw = &self.config.gateway;
                self.rules.follower = Some(Follower::spawn(
                    config,
                    self.opts.clone(),
                    (gw.reconnect_initial, gw.reconnect_max),
                    self.rules.discovered.0.clone(),
                ));
            }
        }
    }

    /// A discovery finished: its PVs, with the explicit ones, become the mapping.
    pub(in crate::bridge) fn on_discovered(&mut self, found: Found) {
        let Some(generation) = self.rules.follower.as_ref().map(|f| f.generation) else {
            return;
        };
        if found.generation != generation {
            // Made with rules since replaced; the discovery of the new ones follows.
            return;
        }
        let (discovery, made) = match found.result {
            Ok(d) => d,
            Err(e) => {
                warn!(why = %found.why, error = %e, "discovery failed: the mapping in service stays");
                return;
            }
        };
        let discovered_ms = found.started.elapsed().as_secs_f64() * 1e3;
        for line in discovery.skipped.iter().chain(&made.refused).take(20) {
            warn!("discovery: not mapped: {line}");
        }
        if !made.read_only_no_user.is_empty() {
            warn!(
                count = made.read_only_no_user.len(),
                first = %made.read_only_no_user.first().map_or("", String::as_str),
                "SecuredWrite/VerifiedWrite attributes served read-only: no `user`/`verifier` for them in [defaults] or the rule"
            );
        }
        self.rules.pvs = made.pvs;
        let (applied, _) = self.apply_mapping();
        info!(
            why = %found.why,
            objects = discovery.objects,
            rule_pvs = self.rules.pvs.len(),
            skipped = discovery.skipped.len() + made.refused.len(),
            added = applied.added,
            removed = applied.removed,
            reopened = applied.reopened,
            changed_in_place = applied.changed_in_place,
            discovery_ms = discovered_ms,
            total_ms = found.started.elapsed().as_secs_f64() * 1e3,
            "discovered mapping applied"
        );
    }

    /// Applies the desired mapping: the explicit PVs and the rule-made ones. An empty
    /// diff is applied too (applying also settles what a reload changed in the alarms).
    /// Returns what was done, and whether the diff was empty.
    pub(in crate::bridge) fn apply_mapping(&mut self) -> (Applied, bool) {
        let merged = self.config.merge_rule_pvs(self.rules.pvs.clone());
        for e in &merged.errors {
            warn!("{e}: the first one is served");
        }
        for line in merged.refused.iter().take(20) {
            warn!("rule-made PVs under the reloaded rules: not mapped: {line}");
        }
        self.guard.access.set_read_pvs(&self.config, &merged.pvs);
        let d = diff(self.pvs.configs(), &merged.pvs);
        let empty = d.is_empty();
        (self.apply(d), empty)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use super::Applied;
    use crate::bridge::core::Bridge;
    use crate::bridge::mapping::diff;
    use crate::bridge::pv_id::PvId;
    use crate::config::Config;
    use crate::gateway::{MxValue, Quality};
    use crate::pva::TimeStamp;
    use crate::pva::{self, Server, ServerConfig};

    const BASE: &str = "[gateway]\nendpoint = \"http://127.0.0.1:1\"\n\
                        [alarms]\nenabled = false\n\
                        [[pv]]\nname = \"Level\"\ntag = \"Tank001.Level\"\ntype = \"float64\"\n";

    fn config(extra: &str) -> Config {
        let text = format!("{BASE}{extra}");
        Config::from_str_at(&text, std::path::Path::new("apply_test.toml")).unwrap()
    }

    /// A bridge serving `config` on an isolated server, without a gateway link, as
    /// `run_reloading` makes it.
    fn bridge(config: Config) -> Bridge {
        let server = Arc::new(Server::new(&ServerConfig::isolated()).unwrap());
        let (events, _rx) = pva::event_channel();
        Bridge::new(config, server, events).unwrap()
    }

    fn served_time(b: &Bridge, name: &str) -> (i64, i32) {
        let id = b.pvs.id_of_name(name).unwrap();
        let t = b.pvs.get(id).unwrap().pv.current().unwrap().time.unwrap();
        (t.seconds, t.nanos)
    }

    /// A reload to `new`: the diff from the PVs served, applied.
    fn reload(b: &mut Bridge, new: Config) -> Applied {
        let d = diff::diff(b.pvs.configs(), &diff::desired(&new));
        b.config = new;
        b.apply(d)
    }

    /// `Level` posts a value stamped 20 s ahead of the bridge's clock (System Platform's
    /// clock ahead of it): its id, the source time, and the time served.
    fn level_posted_ahead(b: &mut Bridge) -> (PvId, SystemTime, (i64, i32)) {
        let ahead = SystemTime::now() + Duration::from_secs(20);
        let id = b.pvs.id_of_name("Level").unwrap();
        let pv = b.pvs.get_mut(id).unwrap();
        pv.sample(
            &MxValue::Double(1.0),
            Quality::GOOD,
            Some(ahead),
            &[],
            false,
        );
        pv.flush();
        (id, ahead, served_time(b, "Level"))
    }

    /// Issue 23: each PV's config is held once, shared by the config in force and the
    /// registry, at the start and after a reload that leaves it as it was (the reloaded
    /// file is another copy of it) or changes it in place.
    #[tokio::test]
    async fn each_pv_s_config_is_held_once() {
        let mut b = bridge(config(""));
        let id = b.pvs.id_of_name("Level").unwrap();
        let shared = |b: &Bridge| Arc::ptr_eq(&b.pvs.get(id).unwrap().cfg, &b.config.pvs[0]);
        assert!(shared(&b), "at the start");
        for extra in ["", "units = \"m\"\n"] {
            let new = config(extra);
            assert!(!Arc::ptr_eq(&new.pvs[0], &b.config.pvs[0]));
            reload(&mut b, new);
            assert_eq!(b.pvs.id_of_name("Level"), Some(id), "the same PV");
            assert!(shared(&b), "after a reload adding {extra:?}");
        }
    }

    /// Issue 21, defect 3: with System Platform's clock ahead of the bridge's, a PV
    /// re-opened by a reload (here: `writable` toggled) posted its first update at the
    /// bridge's clock, back from the last time its name was posted at.
    #[tokio::test]
    async fn a_pv_re_opened_by_a_reload_continues_from_the_old_pv_s_last_time() {
        let mut b = bridge(config(""));
        let (_, ahead, last) = level_posted_ahead(&mut b);
        let t = TimeStamp::from(ahead);
        assert_eq!(last, (t.seconds, t.nanos), "the source time is posted");
        for (n, extra) in ["writable = true\n", "", "writable = true\n"]
            .into_iter()
            .enumerate()
        {
            let applied = reload(&mut b, config(extra));
            assert_eq!(applied.reopened, 1, "re-open {n}");
            let now = served_time(&b, "Level");
            assert!(
                now > last,
                "re-open {n}: the re-opened PV posted {now:?}, back from {last:?}"
            );
        }
    }

    /// A PV removed and added again under its name while its last posted time is still
    /// ahead of the bridge's clock continues from it as well: a monitor of the name sees
    /// both.
    #[tokio::test]
    async fn a_pv_removed_and_added_again_continues_from_its_last_time() {
        let mut b = bridge(config(""));
        let (id, _, last) = level_posted_ahead(&mut b);
        let without = Config::from_str_at(
            "[gateway]\nendpoint = \"http://127.0.0.1:1\"\n[alarms]\nenabled = false\n\
             [[pv]]\nname = \"Other\"\ntag = \"Tank001.Temp\"\n",
            std::path::Path::new("apply_test.toml"),
        )
        .unwrap();
        for new in [without, config("")] {
            reload(&mut b, new);
        }
        let again = b.pvs.id_of_name("Level").unwrap();
        assert_ne!(again, id, "a new PV");
        let now = served_time(&b, "Level");
        assert!(
            now > last,
            "the PV added again posted {now:?}, back from {last:?}"
        );
    }
}
