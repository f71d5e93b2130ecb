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
//!   the old PV's, never going back (`stamp.rs`).
//! - Any other change is taken in place; metadata and limits are posted in place.
//! - An added PV is served at once and subscribed (SubscribeBulk) in the live session.
//!
//! The subscriptions run in a task of their own; their item handles come back as
//! [`Internal::Subscribed`]. Data changes of items not known yet that arrive meanwhile
//! are held (at most [`MAX_EARLY`]) and taken once the handles are known, so no first
//! value is lost. Without a link there is no gateway work: the next connect subscribes
//! the registry as it is then ([`Bridge::after_connect`] catches up with diffs applied
//! while connecting).

use std::collections::HashSet;

use tracing::{debug, info, warn};

use super::diff::{Change, Diff};
use super::pv::MappedPv;
use super::registry::{Bound, PvId};
use super::writes::{Internal, Subscribed};
use super::Bridge;
use crate::gateway::{ItemHandle, SessionEvent};

/// At most this many data changes of items not yet known are held while subscriptions
/// of a diff are under way; past it they are dropped as strays.
pub(super) const MAX_EARLY: usize = 65_536;

/// What [`Bridge::apply`] did, for the log.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Applied {
    pub added: usize,
    pub removed: usize,
    pub reopened: usize,
    pub changed_in_place: usize,
}

impl Bridge {
    /// Applies `diff` to the registry while serving.
    pub(super) fn apply(&mut self, diff: Diff) -> Applied {
        let mut applied = Applied::default();
        let mut unsubscribe: Vec<ItemHandle> = Vec::new();
        let mut subscribe: Vec<PvId> = Vec::new();
        // PVs whose alarm part is to be posted again: new, re-opened, or with other
        // alarm settings.
        let mut touched: HashSet<PvId> = HashSet::new();
        for id in diff.removed {
            self.forget_on_demand(id, "PV removed by a config reload");
            self.pace.release(id);
            let Some(mut pv) = self.pvs.remove(id) else {
                continue;
            };
            unsubscribe.extend(pv.item);
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
                // Its posts continue from the old PV's (`stamp.rs`).
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
                self.pace.release(c.id);
                if let Some(mut old) = self.pvs.replace(c.id, new) {
                    unsubscribe.extend(old.item);
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
                if c.changes.contains(&Change::Subscribe) && self.subscribe_changed(c.id) {
                    subscribe.push(c.id);
                }
                applied.changed_in_place += 1;
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
        self.spawn_subscriptions(unsubscribe, subscribe);
        applied
    }

    /// Unsubscribes `items` and subscribes the tags of `ids` in the live session, if any
    /// (of `ids`, those [`Bridge::wants_item`]: on-demand PVs only while watched).
    pub(super) fn spawn_subscriptions(&mut self, items: Vec<ItemHandle>, ids: Vec<PvId>) {
        if self.link.is_none() || (items.is_empty() && ids.is_empty()) {
            return;
        }
        let ids = self.wanted_for_advise(ids);
        let Some(link) = &self.link else {
            return;
        };
        if items.is_empty() && ids.is_empty() {
            return;
        }
        let (ids, tags): (Vec<PvId>, Vec<String>) = ids
            .into_iter()
            .filter_map(|id| Some((id, self.pvs.get(id)?.cfg.tag.as_str().to_string())))
            .unzip();
        let session = link.session.clone();
        let server = link.server;
        let window = link.window.clone();
        let chunk = window.chunk(self.config.gateway.subscribe_chunk.get());
        let tx = self.internal.0.clone();
        self.subscribing += 1;
        tokio::spawn(async move {
            if !items.is_empty() {
                match session.unsubscribe_bulk(server, &items).await {
                    Ok(results) => {
                        let failed = results.iter().filter(|r| r.outcome.is_err()).count();
                        info!(items = items.len(), failed, "unsubscribed");
                    }
                    Err(e) => warn!(items = items.len(), error = %e, "UnsubscribeBulk failed"),
                }
            }
            // Chunk by chunk, each once the window has room (`pace.rs`); the handles of
            // each chunk go to the bridge at once, so that it takes their first values.
            let mut ids = ids.into_iter().zip(tags.iter().cloned());
            let mut parts = tags.chunks(chunk).peekable();
            let session_id = session.id().to_string();
            if parts.peek().is_none() {
                let _ = tx.send(Internal::Subscribed(Subscribed {
                    session: session_id,
                    ids: Vec::new(),
                    results: Ok(Vec::new()),
                    paced: 0,
                    last: true,
                }));
                return;
            }
            while let Some(part) = parts.next() {
                let paced = if window.room(part.len()).await {
                    part.len()
                } else {
                    0
                };
                let part_ids: Vec<(PvId, String)> = ids.by_ref().take(part.len()).collect();
                let (results, last) = match session.subscribe_bulk(server, part).await {
                    Ok(rs) => (
                        Ok(rs
                            .into_iter()
                            .map(|r| r.outcome.map(|()| r.item_handle).map_err(|e| e.to_string()))
                            .collect()),
                        parts.peek().is_none(),
                    ),
                    Err(e) => (Err(format!("SubscribeBulk failed: {e}")), true),
                };
                // A failed call fails the rest too (those hold no room).
                let mut part_ids = part_ids;
                if last {
                    part_ids.extend(ids.by_ref());
                }
                let _ = tx.send(Internal::Subscribed(Subscribed {
                    session: session_id.clone(),
                    ids: part_ids,
                    results,
                    paced,
                    last,
                }));
                if last {
                    break;
                }
            }
        });
    }

    /// The item handles of a chunk of a diff's subscriptions (the first `paced` of `ids`
    /// hold room in the window); then the data changes held meanwhile. A handle is bound
    /// only to a PV that still maps the tag it was advised for ([`Registry::bind`]); one
    /// not bound is unsubscribed and frees its room.
    ///
    /// [`Registry::bind`]: super::registry::Registry::bind
    pub(super) fn on_subscribed(&mut self, done: Subscribed) {
        let Subscribed {
            session,
            ids,
            results,
            paced,
            last,
        } = done;
        if last {
            self.subscribing = self.subscribing.saturating_sub(1);
        }
        let live = self
            .link
            .as_ref()
            .is_some_and(|l| l.session.id() == session);
        // A lost session ended every advise under way (`on_demand_link_lost`): a late
        // result of it ends none of the new session's.
        let asked: Vec<PvId> = if live {
            ids.iter().map(|(id, _)| *id).collect()
        } else {
            Vec::new()
        };
        if live {
            let mut gone = Vec::new();
            let results: Vec<Result<ItemHandle, String>> = match results {
                Ok(r) => r,
                Err(e) => ids.iter().map(|_| Err(e.clone())).collect(),
            };
            let mut free = 0;
            for (n, ((id, tag), r)) in ids.into_iter().zip(results).enumerate() {
                let room = n < paced;
                // Whether the PV still maps the tag: the failure of an advise of its old
                // one is not its own.
                let current = self
                    .pvs
                    .get(id)
                    .is_some_and(|pv| pv.cfg.tag.as_str() == tag);
                let r = r.map(|item| (item, self.pvs.bind(id, &tag, item)));
                match r {
                    Ok((_, Ok(Bound::New))) => {
                        if room {
                            self.pace.hold(id);
                            continue;
                        }
                    }
                    Ok((_, Ok(Bound::Already))) => {}
                    Ok((item, Err(why))) => {
                        debug!(item = item.0, %tag, reason = %why, "item handle not bound");
                        if why.unsubscribe() {
                            gone.push(item);
                        } else if let Some(pv) = self.pvs.get_mut(id).filter(|_| current) {
                            let reason = why.to_string();
                            warn!(pv = %pv.cfg.name.as_str(), %tag, %reason, "subscribe failed");
                            pv.subscribe_failed(&reason);
                        }
                    }
                    Err(reason) => {
                        if let Some(pv) = self.pvs.get_mut(id).filter(|_| current) {
                            warn!(pv = %pv.cfg.name.as_str(), %tag, %reason, "subscribe failed");
                            pv.subscribe_failed(&reason);
                        }
                    }
                }
                if room {
                    free += 1;
                }
            }
            self.pace.give_back(free);
            if last {
                info!(
                    subscribed = self.pvs.subscribed(),
                    first_values_to_come = self.pace.waiting(),
                    "subscriptions of the reload done"
                );
            }
            self.spawn_subscriptions(gone, Vec::new());
        }
        self.advised(&asked);
        // Data changes held for items known now are taken; the others wait on while
        // subscriptions are under way.
        for ev in std::mem::take(&mut self.early) {
            self.on_session_event(ev);
        }
    }

    /// Holds a data change of an item not known yet while subscriptions are under way;
    /// hands it back when it is not held.
    pub(super) fn hold_early(&mut self, ev: SessionEvent) -> Option<SessionEvent> {
        if self.subscribing > 0 && self.early.len() < MAX_EARLY {
            self.early.push(ev);
            None
        } else {
            Some(ev)
        }
    }

    /// After a connect: PVs added while it subscribed are subscribed now, and items of
    /// PVs removed meanwhile are unsubscribed.
    pub(super) fn after_connect(&mut self, asked: &HashSet<PvId>, got: Vec<ItemHandle>) {
        let missing: Vec<PvId> = self
            .pvs
            .ids()
            .into_iter()
            .filter(|id| !asked.contains(id))
            .collect();
        self.spawn_subscriptions(got, missing);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use tokio::sync::mpsc;

    use super::super::*;
    use crate::gateway::{MxValue, Quality};
    use crate::pva::TimeStamp;

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
        let opts = client_options(&config.gateway, &config.limits).unwrap();
        let server = Arc::new(Server::new(&ServerConfig::isolated()).unwrap());
        let (events, _rx) = pva::event_channel();
        let mut pvs = Registry::default();
        for cfg in diff::diff(std::iter::empty(), &diff::desired(&config)).added {
            pvs.add(cfg, &config.defaults, &server, &events).unwrap();
        }
        let alarms = alarms::Alarms::new(&config, &opts, server.clone(), &events, &pvs).unwrap();
        let in_flight = Arc::default();
        let ops = operate::Ops::new(&config, &server, &events, &in_flight).unwrap();
        Bridge {
            access: crate::access::Access::start(&config).unwrap(),
            audit: AuditTrail::start(None).unwrap(),
            config,
            opts,
            server,
            events,
            subscribing: 0,
            early: Vec::new(),
            pace: pace::Pacing::default(),
            pvs,
            link: None,
            lost_reason: None,
            stale_sessions: Arc::default(),
            next_write: 0,
            in_flight,
            writes: write_calls::WriteCalls::default(),
            internal: mpsc::unbounded_channel(),
            alarms,
            strays: strays::Strays::default(),
            dirty: Vec::new(),
            demand: demand::Demand::default(),
            ops,
            rule_pvs: Vec::new(),
            follower: None,
            discovered: mpsc::unbounded_channel(),
        }
    }

    fn served_time(b: &Bridge, name: &str) -> (i64, i32) {
        let id = b.pvs.id_of_name(name).unwrap();
        let t = b.pvs.get(id).unwrap().pv.current().unwrap().time.unwrap();
        (t.seconds, t.nanos)
    }

    /// Issue 21, defect 3: with System Platform's clock ahead of the bridge's, a PV
    /// re-opened by a reload (here: `writable` toggled) posted its first update at the
    /// bridge's clock, back from the last time its name was posted at.
    #[tokio::test]
    async fn a_pv_re_opened_by_a_reload_continues_from_the_old_pv_s_last_time() {
        let mut b = bridge(config(""));
        let ahead = SystemTime::now() + Duration::from_secs(20);
        let id = b.pvs.id_of_name("Level").unwrap();
        let pv = b.pvs.get_mut(id).unwrap();
        pv.data_change(&MxValue::Double(1.0), Quality::GOOD, Some(ahead), &[]);
        pv.flush();
        let last = served_time(&b, "Level");
        let t = TimeStamp::from(ahead);
        assert_eq!(last, (t.seconds, t.nanos), "the source time is posted");
        for (n, extra) in ["writable = true\n", "", "writable = true\n"]
            .into_iter()
            .enumerate()
        {
            let new = config(extra);
            let d = diff::diff(b.pvs.configs(), &diff::desired(&new));
            b.config = new;
            let applied = b.apply(d);
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
        let ahead = SystemTime::now() + Duration::from_secs(20);
        let id = b.pvs.id_of_name("Level").unwrap();
        let pv = b.pvs.get_mut(id).unwrap();
        pv.data_change(&MxValue::Double(1.0), Quality::GOOD, Some(ahead), &[]);
        pv.flush();
        let last = served_time(&b, "Level");
        let without = Config::from_str_at(
            "[gateway]\nendpoint = \"http://127.0.0.1:1\"\n[alarms]\nenabled = false\n\
             [[pv]]\nname = \"Other\"\ntag = \"Tank001.Temp\"\n",
            std::path::Path::new("apply_test.toml"),
        )
        .unwrap();
        for new in [without, config("")] {
            let d = diff::diff(b.pvs.configs(), &diff::desired(&new));
            b.config = new;
            b.apply(d);
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
