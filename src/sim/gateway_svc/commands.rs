//! Commands: `Invoke`'s dispatch of each MXAccess command, and the server and
//! item handles they work on.
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::Status;

use super::auth::Principal;
use super::reads::resolve;
use super::{failure, invalid_arg, GatewaySvc, Refusal, E_ACCESSDENIED};
use crate::gateway::convert::status_to_pb;
use crate::gateway::pb::gw as pb;
use crate::gateway::pb::gw::mx_command::Payload;
use crate::gateway::pb::gw::mx_command_reply::Reply;
use crate::gateway::{detail, MxStatus, MxStatusCategory};
use crate::sim::session::{Handles, Item, SimSession, State};

pub(super) fn payload_kind(p: &Payload) -> pb::MxCommandKind {
    use pb::MxCommandKind as K;
    match p {
        Payload::Register(_) => K::Register,
        Payload::Unregister(_) => K::Unregister,
        Payload::AddItem(_) => K::AddItem,
        Payload::AddItem2(_) => K::AddItem2,
        Payload::RemoveItem(_) => K::RemoveItem,
        Payload::Advise(_) => K::Advise,
        Payload::AdviseSupervisory(_) => K::AdviseSupervisory,
        Payload::UnAdvise(_) => K::UnAdvise,
        Payload::Write(_) => K::Write,
        Payload::Write2(_) => K::Write2,
        Payload::WriteSecured(_) => K::WriteSecured,
        Payload::WriteSecured2(_) => K::WriteSecured2,
        Payload::AuthenticateUser(_) => K::AuthenticateUser,
        Payload::AddItemBulk(_) => K::AddItemBulk,
        Payload::AdviseItemBulk(_) => K::AdviseItemBulk,
        Payload::RemoveItemBulk(_) => K::RemoveItemBulk,
        Payload::UnAdviseItemBulk(_) => K::UnAdviseItemBulk,
        Payload::SubscribeBulk(_) => K::SubscribeBulk,
        Payload::UnsubscribeBulk(_) => K::UnsubscribeBulk,
        Payload::WriteBulk(_) => K::WriteBulk,
        Payload::Write2Bulk(_) => K::Write2Bulk,
        Payload::WriteSecuredBulk(_) => K::WriteSecuredBulk,
        Payload::WriteSecured2Bulk(_) => K::WriteSecured2Bulk,
        Payload::ReadBulk(_) => K::ReadBulk,
        Payload::DrainEvents(_) => K::DrainEvents,
        Payload::AddBufferedItem(_) => K::AddBufferedItem,
        Payload::SetBufferedUpdateInterval(_) => K::SetBufferedUpdateInterval,
    }
}

impl GatewaySvc {
    pub(super) fn session(&self, id: &str) -> Result<Arc<SimSession>, Status> {
        self.core
            .sessions
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("session {id:?} not found")))
    }

    fn add_item(
        &self,
        sess: &SimSession,
        who: &Principal,
        server: i32,
        reference: &str,
        buffered: bool,
    ) -> Result<i32, Refusal> {
        who.check_read(reference).map_err(Refusal::Denied)?;
        let target = resolve(&self.core, reference).map_err(invalid_arg)?;
        let mut h = sess.handles.lock();
        if !h.servers.contains_key(&server) {
            return Err(invalid_arg(format!("unknown server handle {server}")));
        }
        let handle = h.next_item;
        h.next_item += 1;
        h.items.insert(
            handle,
            Item {
                server,
                reference: reference.into(),
                target,
                advised: false,
                supervisory: false,
                first_due: None,
                last_version: 0,
                cached: None,
                buffered,
                samples: Vec::new(),
                last_flush: Instant::now(),
                flush_queued: false,
            },
        );
        Ok(handle)
    }

    fn with_item<T>(
        h: &mut Handles,
        server: i32,
        item: i32,
        f: impl FnOnce(&mut Item) -> T,
    ) -> Result<T, Refusal> {
        if !h.servers.contains_key(&server) {
            return Err(invalid_arg(format!("unknown server handle {server}")));
        }
        match h.items.get_mut(&item).filter(|i| i.server == server) {
            Some(i) => Ok(f(i)),
            None => Err(invalid_arg(format!("unknown item handle {item}"))),
        }
    }

    /// Advise an item: its first OnDataChange goes on the due-list, and the item into the
    /// index of its attribute.
    fn advise(
        &self,
        sess: &Arc<SimSession>,
        server: i32,
        item: i32,
        supervisory: bool,
    ) -> Result<(), Refusal> {
        let due = Instant::now() + self.core.first_update_delay;
        // Lock order: subscribers, then the session's handles.
        let mut subs = self.core.subs.lock();
        let mut h = sess.handles.lock();
        let ready = h.state == State::Ready;
        let target = Self::with_item(&mut h, server, item, |i| {
            if i.advised {
                return None;
            }
            i.advised = true;
            i.supervisory = supervisory;
            i.first_due = Some(due);
            i.last_version = 0;
            Some(i.target.clone())
        })?;
        if let (Some(t), true) = (target, ready) {
            subs.add(&t, sess, item);
            subs.first_due(due, sess, item);
            self.core.due_wake.notify_one();
        }
        Ok(())
    }

    fn unadvise(&self, sess: &Arc<SimSession>, server: i32, item: i32) -> Result<(), Refusal> {
        let mut subs = self.core.subs.lock();
        let mut h = sess.handles.lock();
        let was = Self::with_item(&mut h, server, item, |i| {
            let was = i.advised.then(|| i.target.clone());
            i.advised = false;
            i.first_due = None;
            i.cached = None;
            was
        })?;
        if let Some(t) = was {
            subs.remove(&t, sess, item);
        }
        Ok(())
    }

    fn remove_item(&self, sess: &Arc<SimSession>, server: i32, item: i32) -> Result<(), Refusal> {
        let mut subs = self.core.subs.lock();
        let mut h = sess.handles.lock();
        let was = Self::with_item(&mut h, server, item, |i| {
            i.advised.then(|| i.target.clone())
        })?;
        if let Some(t) = was {
            subs.remove(&t, sess, item);
        }
        h.items.remove(&item);
        Ok(())
    }

    pub(super) fn subscribe_result(
        server: i32,
        tag: &str,
        item: i32,
        r: Result<(), Refusal>,
    ) -> pb::SubscribeResult {
        let mut out = pb::SubscribeResult {
            server_handle: server,
            tag_address: tag.to_string(),
            item_handle: item,
            was_successful: r.is_ok(),
            ..Default::default()
        };
        match r {
            Ok(()) => out.statuses = vec![status_to_pb(&MxStatus::ok())],
            Err(Refusal::Mx(hr, st)) => {
                out.error_message = st.to_string();
                out.hresult = hr;
                out.statuses = vec![status_to_pb(&st)];
            }
            Err(Refusal::Denied(m)) => {
                out.error_message = format!("PERMISSION_DENIED: {m}");
                out.hresult = E_ACCESSDENIED;
            }
            Err(Refusal::Invalid(m)) => out.error_message = format!("INVALID_REQUEST: {m}"),
        }
        out
    }

    pub(super) async fn run(
        &self,
        sess: &Arc<SimSession>,
        who: &Principal,
        payload: Payload,
    ) -> Result<Option<Reply>, Refusal> {
        let core = &self.core;
        let bulk = |results| {
            Ok(Some(Reply::BulkSubscribe(pb::BulkSubscribeReply {
                results,
            })))
        };
        match payload {
            Payload::Register(c) => {
                let mut h = sess.handles.lock();
                let s = h.next_server;
                h.next_server += 1;
                h.servers.insert(s, c.client_name);
                Ok(Some(Reply::Register(pb::RegisterReply {
                    server_handle: s,
                })))
            }
            Payload::Unregister(c) => {
                let mut subs = core.subs.lock();
                let mut h = sess.handles.lock();
                if h.servers.remove(&c.server_handle).is_none() {
                    return Err(invalid_arg(format!(
                        "unknown server handle {}",
                        c.server_handle
                    )));
                }
                h.items.retain(|&ih, i| {
                    if i.server != c.server_handle {
                        return true;
                    }
                    if i.advised {
                        subs.remove(&i.target, sess, ih);
                    }
                    false
                });
                Ok(None)
            }
            Payload::AddItem(c) => {
                let ih = self.add_item(sess, who, c.server_handle, &c.item_definition, false)?;
                Ok(Some(Reply::AddItem(pb::AddItemReply { item_handle: ih })))
            }
            Payload::AddItem2(c) => {
                let ih = self.add_item(sess, who, c.server_handle, &c.item_definition, false)?;
                Ok(Some(Reply::AddItem(pb::AddItemReply { item_handle: ih })))
            }
            Payload::RemoveItem(c) => self
                .remove_item(sess, c.server_handle, c.item_handle)
                .map(|_| None),
            Payload::Advise(c) => self
                .advise(sess, c.server_handle, c.item_handle, false)
                .map(|_| None),
            Payload::AdviseSupervisory(c) => self
                .advise(sess, c.server_handle, c.item_handle, true)
                .map(|_| None),
            Payload::UnAdvise(c) => self
                .unadvise(sess, c.server_handle, c.item_handle)
                .map(|_| None),
            Payload::Write(c) => self.write_one(sess, who, c.server_handle, &c),
            Payload::Write2(c) => self.write_one(sess, who, c.server_handle, &c),
            Payload::WriteSecured(c) => self.write_one(sess, who, c.server_handle, &c),
            Payload::WriteSecured2(c) => self.write_one(sess, who, c.server_handle, &c),
            Payload::AuthenticateUser(c) => {
                if !sess.handles.lock().servers.contains_key(&c.server_handle) {
                    return Err(invalid_arg(format!(
                        "unknown server handle {}",
                        c.server_handle
                    )));
                }
                match core
                    .galaxy()
                    .users
                    .iter()
                    .find(|u| u.name.eq_ignore_ascii_case(&c.user_name) && u.password == c.password)
                {
                    Some(u) => Ok(Some(Reply::AuthenticateUser(pb::AuthenticateUserReply {
                        user_id: u.id,
                    }))),
                    None => Err(Refusal::Mx(
                        E_ACCESSDENIED,
                        failure(
                            MxStatusCategory::SecurityError,
                            detail::USER_NOT_HAVING_ACCESS_RIGHTS,
                            "unknown user or wrong password",
                        ),
                    )),
                }
            }
            Payload::AddItemBulk(c) => bulk(
                c.tag_addresses
                    .iter()
                    .map(
                        |t| match self.add_item(sess, who, c.server_handle, t, false) {
                            Ok(ih) => Self::subscribe_result(c.server_handle, t, ih, Ok(())),
                            Err(e) => Self::subscribe_result(c.server_handle, t, 0, Err(e)),
                        },
                    )
                    .collect(),
            ),
            Payload::SubscribeBulk(c) => bulk(
                c.tag_addresses
                    .iter()
                    .map(|t| {
                        let r = self
                            .add_item(sess, who, c.server_handle, t, false)
                            .and_then(|ih| {
                                self.advise(sess, c.server_handle, ih, false).map(|_| ih)
                            });
                        match r {
                            Ok(ih) => Self::subscribe_result(c.server_handle, t, ih, Ok(())),
                            Err(e) => Self::subscribe_result(c.server_handle, t, 0, Err(e)),
                        }
                    })
                    .collect(),
            ),
            Payload::AdviseItemBulk(c) => bulk(self.by_handle(
                sess,
                c.server_handle,
                &c.item_handles,
                |s, i| self.advise(sess, s, i, false),
            )),
            Payload::UnAdviseItemBulk(c) => bulk(self.by_handle(
                sess,
                c.server_handle,
                &c.item_handles,
                |s, i| self.unadvise(sess, s, i),
            )),
            Payload::RemoveItemBulk(c) => bulk(self.by_handle(
                sess,
                c.server_handle,
                &c.item_handles,
                |s, i| self.remove_item(sess, s, i),
            )),
            Payload::UnsubscribeBulk(c) => {
                bulk(
                    self.by_handle(sess, c.server_handle, &c.item_handles, |s, i| {
                        self.unadvise(sess, s, i)
                            .and_then(|_| self.remove_item(sess, s, i))
                    }),
                )
            }
            Payload::WriteBulk(c) => self.write_bulk(&c.entries, c.server_handle, sess, who),
            Payload::Write2Bulk(c) => self.write_bulk(&c.entries, c.server_handle, sess, who),
            Payload::WriteSecuredBulk(c) => self.write_bulk(&c.entries, c.server_handle, sess, who),
            Payload::WriteSecured2Bulk(c) => {
                self.write_bulk(&c.entries, c.server_handle, sess, who)
            }
            Payload::ReadBulk(c) => self.read_bulk(sess, who, c).await.map(Some),
            Payload::DrainEvents(c) => {
                let max = if c.max_events == 0 {
                    1000
                } else {
                    c.max_events as usize
                };
                let mut log = sess.log.lock();
                if log.subscriber.is_some() {
                    return Err(Refusal::Invalid(
                        "DrainEvents is not available while an event stream is attached".into(),
                    ));
                }
                let n = log.queue.len().min(max);
                let events = log.queue.drain(..n).collect();
                Ok(Some(Reply::DrainEvents(pb::DrainEventsReply { events })))
            }
            Payload::AddBufferedItem(c) => {
                let ih = self.add_item(sess, who, c.server_handle, &c.item_definition, true)?;
                Ok(Some(Reply::AddItem(pb::AddItemReply { item_handle: ih })))
            }
            Payload::SetBufferedUpdateInterval(c) => {
                if c.interval_ms == 0 {
                    return Err(invalid_arg("the buffered update interval must be > 0 ms"));
                }
                let mut h = sess.handles.lock();
                if !h.servers.contains_key(&c.server_handle) {
                    return Err(invalid_arg(format!(
                        "unknown server handle {}",
                        c.server_handle
                    )));
                }
                h.buffer_intervals.insert(
                    c.server_handle,
                    Duration::from_millis(u64::from(c.interval_ms)),
                );
                Ok(None)
            }
        }
    }

    fn by_handle(
        &self,
        sess: &SimSession,
        server: i32,
        items: &[i32],
        mut f: impl FnMut(i32, i32) -> Result<(), Refusal>,
    ) -> Vec<pb::SubscribeResult> {
        items
            .iter()
            .map(|&i| {
                let tag = sess
                    .handles
                    .lock()
                    .items
                    .get(&i)
                    .map(|x| x.reference.clone())
                    .unwrap_or_default();
                Self::subscribe_result(server, &tag, i, f(server, i))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::pb::gw::mx_access_gateway_server::MxAccessGateway;
    use crate::sim::subs::Key;
    use crate::sim::{Galaxy, SimHandle, SimOptions};
    use tonic::Request;

    struct Fixture {
        sim: SimHandle,
        svc: GatewaySvc,
        who: Principal,
    }

    impl Fixture {
        async fn open(&self, name: &str) -> (Arc<SimSession>, i32) {
            let id = self
                .svc
                .open_session(Request::new(pb::OpenSessionRequest {
                    client_session_name: name.into(),
                }))
                .await
                .unwrap()
                .into_inner()
                .session_id;
            let sess = self.svc.session(&id).unwrap();
            let server = self.register(&sess).await;
            (sess, server)
        }

        async fn register(&self, sess: &Arc<SimSession>) -> i32 {
            let r = self.run(sess, Payload::Register(pb::RegisterCommand::default()));
            match r.await {
                Some(Reply::Register(r)) => r.server_handle,
                r => panic!("{r:?}"),
            }
        }

        async fn run(&self, sess: &Arc<SimSession>, p: Payload) -> Option<Reply> {
            self.svc.run(sess, &self.who, p).await.unwrap()
        }

        /// The handles SubscribeBulk (or AddItemBulk: `advise` false) gives `tags`.
        async fn items(
            &self,
            sess: &Arc<SimSession>,
            server: i32,
            tags: &[&str],
            advise: bool,
        ) -> Vec<i32> {
            let tag_addresses = tags.iter().map(|t| t.to_string()).collect();
            let p = if advise {
                Payload::SubscribeBulk(pb::SubscribeBulkCommand {
                    server_handle: server,
                    tag_addresses,
                })
            } else {
                Payload::AddItemBulk(pb::AddItemBulkCommand {
                    server_handle: server,
                    tag_addresses,
                })
            };
            match self.run(sess, p).await {
                Some(Reply::BulkSubscribe(r)) => r.results.iter().map(|r| r.item_handle).collect(),
                r => panic!("{r:?}"),
            }
        }

        /// (session, item) advised on `k`, per the index.
        fn advised(&self, k: Key) -> Vec<(String, i32)> {
            let mut v: Vec<_> = self
                .svc
                .core
                .subs
                .lock()
                .of(k)
                .iter()
                .map(|s| (s.sess.id.clone(), s.item))
                .collect();
            v.sort();
            v
        }
    }

    #[tokio::test]
    async fn commands_session_ends_and_deploys_keep_the_attribute_index() {
        let sim = SimHandle::new(Galaxy::demo(), SimOptions::default());
        let svc = GatewaySvc {
            core: sim.core.clone(),
        };
        let who = super::super::authorize(&svc.core, &tonic::metadata::MetadataMap::new(), "admin")
            .unwrap();
        let f = Fixture { sim, svc, who };
        let g = f.sim.galaxy();
        let sp = Key::Attr(g.attribute("Pump001.SpeedSP").unwrap().0);
        let hihi = Key::Alarm(g.alarm_index("Tank001.Level.HiHi").unwrap());

        let (a, server) = f.open("a").await;
        let id = |s: &Arc<SimSession>, i: i32| (s.id.clone(), i);
        let [h1, h2, _nope] = f
            .items(
                &a,
                server,
                &["Pump001.SpeedSP", "Tank001.Level.HiHi", "Nope001.X"],
                true,
            )
            .await[..]
        else {
            panic!("three handles")
        };
        assert_eq!(f.advised(sp), [id(&a, h1)]);
        assert_eq!(f.advised(hihi), [id(&a, h2)]);

        // Added is not advised; Advise / AdviseSupervisory put it in.
        let [h4] = f.items(&a, server, &["Pump001.SpeedSP"], false).await[..] else {
            panic!("one handle")
        };
        assert_eq!(f.advised(sp), [id(&a, h1)]);
        let advise = |item_handle| {
            Payload::AdviseSupervisory(pb::AdviseSupervisoryCommand {
                server_handle: server,
                item_handle,
            })
        };
        f.run(&a, advise(h4)).await;
        assert_eq!(f.advised(sp), [id(&a, h1), id(&a, h4)]);

        // UnAdvise, RemoveItem.
        f.run(
            &a,
            Payload::UnAdvise(pb::UnAdviseCommand {
                server_handle: server,
                item_handle: h1,
            }),
        )
        .await;
        assert_eq!(f.advised(sp), [id(&a, h4)]);
        f.run(
            &a,
            Payload::RemoveItem(pb::RemoveItemCommand {
                server_handle: server,
                item_handle: h4,
            }),
        )
        .await;
        assert!(f.advised(sp).is_empty());

        // The bulk forms.
        let (server_handle, item_handles) = (server, vec![h1]);
        f.run(
            &a,
            Payload::AdviseItemBulk(pb::AdviseItemBulkCommand {
                server_handle,
                item_handles: item_handles.clone(),
            }),
        )
        .await;
        assert_eq!(f.advised(sp), [id(&a, h1)]);
        f.run(
            &a,
            Payload::UnsubscribeBulk(pb::UnsubscribeBulkCommand {
                server_handle,
                item_handles,
            }),
        )
        .await;
        assert!(f.advised(sp).is_empty());
        let (server_handle, item_handles) = (server, vec![h2]);
        f.run(
            &a,
            Payload::UnAdviseItemBulk(pb::UnAdviseItemBulkCommand {
                server_handle,
                item_handles: item_handles.clone(),
            }),
        )
        .await;
        assert!(f.advised(hihi).is_empty());
        f.run(
            &a,
            Payload::RemoveItemBulk(pb::RemoveItemBulkCommand {
                server_handle,
                item_handles,
            }),
        )
        .await;

        // Unregister takes the server handle's items along.
        f.items(&a, server, &["Pump001.SpeedSP"], true).await;
        assert_eq!(f.advised(sp).len(), 1);
        f.run(
            &a,
            Payload::Unregister(pb::UnregisterCommand {
                server_handle: server,
            }),
        )
        .await;
        assert!(f.advised(sp).is_empty());

        // Two sessions; closing one leaves the other's item.
        let server = f.register(&a).await;
        let [ha] = f.items(&a, server, &["Pump001.SpeedSP"], true).await[..] else {
            panic!("one handle")
        };
        let (b, server_b) = f.open("b").await;
        let [hb] = f.items(&b, server_b, &["Pump001.SpeedSP"], true).await[..] else {
            panic!("one handle")
        };
        let mut both = vec![id(&a, ha), id(&b, hb)];
        both.sort();
        assert_eq!(f.advised(sp), both);
        f.svc
            .close_session(Request::new(pb::CloseSessionRequest {
                session_id: b.id.clone(),
            }))
            .await
            .unwrap();
        assert_eq!(f.advised(sp), [id(&a, ha)]);

        // A deploy builds the index again (here: the same Galaxy, the same index).
        f.sim.deploy_galaxy(Galaxy::demo());
        assert_eq!(f.advised(sp), [id(&a, ha)]);
        // A restart forgets every session.
        f.sim.restart();
        assert!(f.advised(sp).is_empty());
    }
}
