//! The link to the gateway: connect, open a session, Register, authenticate the
//! `[users]`, SubscribeBulk in chunks while draining the event stream; the session's
//! item handles; a lost link (every PV INVALID, pending writes failed) and the sessions
//! of lost links, closed by the next connect.

use std::collections::{HashMap, HashSet};

use tracing::{info, warn};

use super::pace::{ConnectPace, Window};
use super::registry::PvId;
use super::{Bridge, BridgeError};
use crate::config;
use crate::gateway::{
    refuse_shared_handles, ClientOptions, EventStream, GatewayClient, GatewayError, ItemHandle,
    ServerHandle, Session, SessionEvent, SubscribeResult, UserId,
};
use crate::lock::Mutex;

/// How the bridge reaches the gateway, resolved from `[gateway]`, and the caps on what
/// it decodes, from `[limits]`.
pub(crate) fn client_options(
    gw: &config::Gateway,
    limits: &config::Limits,
) -> Result<ClientOptions, BridgeError> {
    config::client_options(gw, limits).map_err(|e| BridgeError::ApiKey(e.0))
}

/// A live gateway link.
pub(super) struct Link {
    pub session: Session,
    pub server: ServerHandle,
    /// User ids for the secured write modes, by `[users]` key.
    pub users: HashMap<String, UserId>,
    /// The session's subscription window (`pace.rs`).
    pub window: Window,
    /// Items advised at connect with room whose first data change is still to come.
    pub waiting: HashSet<ItemHandle>,
}

/// What the connect task hands back: the link, its event stream, each tag's item
/// handle (by PV id), and the events that came while subscribing.
pub(super) type Connected = Result<
    (
        Link,
        EventStream,
        Vec<(PvId, String, Result<ItemHandle, String>)>,
        Vec<SessionEvent>,
    ),
    String,
>;

/// Closes the sessions of lost links. One the gateway no longer knows counts as closed;
/// one it cannot answer for now stays for the next connect.
pub(super) async fn close_stale_sessions(client: &GatewayClient, stale: &Mutex<Vec<String>>) {
    let ids = stale.lock().clone();
    for id in ids {
        match client.close_session(&id).await {
            Err(e) if e.is_transient() => {
                warn!(session = %id, error = %e, "cannot close the session of the lost link yet");
                continue;
            }
            Ok(state) => info!(session = %id, ?state, "closed the session of the lost link"),
            Err(e) => info!(session = %id, error = %e, "the session of the lost link is gone"),
        }
        stale.lock().retain(|s| *s != id);
    }
}

impl Bridge {
    /// Connects, opens a session, registers and subscribes every tag, in a task of its
    /// own so puts keep being answered meanwhile.
    pub(super) fn spawn_connect(&self) -> tokio::task::JoinHandle<Connected> {
        let opts = self.opts.clone();
        let gw = self.config.gateway.clone();
        // In the order the PVs were added, each tag with its PV.
        // On-demand PVs only while watched.
        let (ids, tags): (Vec<PvId>, Vec<String>) = self
            .pvs
            .ids()
            .into_iter()
            .filter(|&id| self.wants_item(id))
            .filter_map(|id| Some((id, self.pvs.get(id)?.cfg.tag.as_str().to_string())))
            .unzip();
        let stale = self.stale_sessions.clone();
        let users: Vec<(String, config::User)> = self
            .config
            .users
            .iter()
            .map(|(k, u)| (k.clone(), u.clone()))
            .collect();
        tokio::spawn(async move {
            let fail = |what: &str, e: GatewayError| format!("{what}: {e}");
            let client = GatewayClient::connect(&opts)
                .await
                .map_err(|e| fail("cannot connect", e))?;
            close_stale_sessions(&client, &stale).await;
            let session = client
                .open_session(&gw.client_name)
                .await
                .map_err(|e| fail("cannot open a session", e))?;
            // Counted stale until the bridge takes the link (`on_connected`): if this task
            // fails, or is aborted by a reload, the next connect closes the session.
            stale.lock().push(session.id().to_string());
            let setup = async {
                let server = session
                    .register(&gw.client_name)
                    .await
                    .map_err(|e| fail("Register failed", e))?;
                let mut user_ids = HashMap::new();
                for (key, user) in users {
                    let id = match &user.identity {
                        config::Identity::Id(id) => UserId(*id),
                        config::Identity::Credentials { name, password } => {
                            let password =
                                password.load().map_err(|e| format!("user {key}: {e}"))?;
                            session
                                .authenticate_user(server, name, password.expose())
                                .await
                                .map_err(|e| fail(&format!("cannot authenticate user {key}"), e))?
                        }
                    };
                    user_ids.insert(key, id);
                }
                // The gateway queues the first value of every advised tag at once, in a
                // bounded queue (10,000 events by default) that faults the session when it
                // overflows: attach the stream first, drain it while subscribing, and keep
                // the items whose first value is still to come within the window
                // (`pace.rs`).
                let mut events = session
                    .events(None)
                    .await
                    .map_err(|e| fail("cannot attach the event stream", e))?;
                let mut early = Vec::new();
                let mut pace = ConnectPace::new(Window::new(&gw));
                let chunk = pace.window.chunk(gw.subscribe_chunk.get());
                let (chunks_tx, mut chunks) = tokio::sync::mpsc::unbounded_channel();
                let mut results: Vec<SubscribeResult> = Vec::with_capacity(tags.len());
                {
                    let window = pace.window.clone();
                    let session = &session;
                    let tags = &tags;
                    let subscribe = async move {
                        for part in tags.chunks(chunk) {
                            let paced = window.room(part.len()).await;
                            let got = session.subscribe_bulk(server, part).await?;
                            let _ = chunks_tx.send((got, paced));
                        }
                        drop(chunks_tx);
                        Ok::<_, GatewayError>(())
                    };
                    tokio::pin!(subscribe);
                    let mut done = false;
                    loop {
                        tokio::select! {
                            r = &mut subscribe, if !done => {
                                r.map_err(|e| fail("SubscribeBulk failed", e))?;
                                done = true;
                            }
                            got = chunks.recv() => match got {
                                Some((got, paced)) => {
                                    pace.on_chunk(&got, paced);
                                    results.extend(got);
                                }
                                None => break,
                            },
                            ev = events.next() => match ev {
                                Some(Ok(ev)) => {
                                    pace.on_event(&ev);
                                    early.push(ev);
                                }
                                Some(Err(e)) => return Err(fail("event stream failed while subscribing", e)),
                                None => return Err("the gateway ended the event stream while subscribing".into()),
                            },
                        }
                    }
                }
                refuse_shared_handles(&mut results);
                pace.refused(&results);
                let items = ids
                    .into_iter()
                    .zip(tags)
                    .zip(results)
                    .map(|((i, tag), r)| {
                        (
                            i,
                            tag,
                            r.outcome.map(|()| r.item_handle).map_err(|e| e.to_string()),
                        )
                    })
                    .collect();
                Ok::<_, String>((server, user_ids, items, events, early, pace))
            }
            .await;
            let (server, user_ids, items, events, early, pace) = setup?;
            Ok((
                Link {
                    session,
                    server,
                    users: user_ids,
                    window: pace.window,
                    waiting: pace.waiting,
                },
                events,
                items,
                early,
            ))
        })
    }

    pub(super) fn on_connected(
        &mut self,
        mut link: Link,
        items: Vec<(PvId, String, Result<ItemHandle, String>)>,
    ) {
        let mut waiting_items = std::mem::take(&mut link.waiting);
        let mut waiting = Vec::new();
        let id = link.session.id();
        self.stale_sessions.lock().retain(|s| s != id);
        self.pvs.clear_items();
        self.strays.reset();
        self.lost_reason = None;
        let mut failed = 0;
        // PVs subscribed as they are now; the others (added, or re-opened with another
        // tag, while connecting) are subscribed after.
        let mut asked: HashSet<PvId> = HashSet::with_capacity(items.len());
        // Items of PVs removed or re-opened with another tag while connecting.
        let mut unwanted = Vec::new();
        for (i, tag, item) in items {
            let current = self.pvs.get(i).is_some_and(|pv| pv.cfg.tag.as_str() == tag);
            if current {
                asked.insert(i);
            }
            let item = match item.map(|handle| (handle, self.pvs.bind(i, &tag, handle))) {
                Ok((handle, Ok(_))) => Ok(handle),
                Ok((handle, Err(why))) if why.unsubscribe() => {
                    // Not bound: removed or re-tagged meanwhile, or advised twice.
                    unwanted.push(handle);
                    continue;
                }
                Ok((_, Err(why))) => Err(why.to_string()),
                Err(reason) => Err(reason),
            };
            match item {
                Err(_) if !current => {}
                Ok(handle) => {
                    if waiting_items.remove(&handle) {
                        waiting.push(i);
                    }
                }
                Err(reason) => {
                    let Some(pv) = self.pvs.get_mut(i) else {
                        continue;
                    };
                    failed += 1;
                    warn!(pv = %pv.cfg.name.as_str(), tag = %pv.cfg.tag.as_str(), %reason, "subscribe failed");
                    pv.subscribe_failed(&reason);
                }
            }
        }
        // Items not taken (their PVs went meanwhile) are unsubscribed: no room held.
        link.window.give_back(waiting_items.len());
        self.pace.start(link.window.clone(), waiting);
        info!(
            session = %link.session.id(),
            subscribed = self.pvs.subscribed(),
            failed,
            "gateway session up"
        );
        self.ops.status.gateway_up(link.session.id());
        crate::systemd::status(&format!(
            "serving {} PVs, gateway session {}",
            self.pvs.len(),
            link.session.id()
        ));
        self.link = Some(link);
        self.connected_on_demand(&asked);
        self.after_connect(&asked, unwanted);
    }

    /// The link is gone: every PV goes INVALID, pending writes fail. Its session, which
    /// may live on at the gateway, is closed by the next connect.
    pub(super) fn close_link(&mut self, reason: &str) {
        if let Some(link) = self.link.take() {
            let id = link.session.id().to_string();
            self.stale_sessions.lock().push(id);
        }
        self.on_lost(reason);
    }

    pub(super) fn on_lost(&mut self, reason: &str) {
        self.link = None;
        self.writes.link_lost();
        self.pvs.clear_items();
        self.pace.lost();
        // Held data changes name items of the lost session.
        self.early.clear();
        self.on_demand_link_lost(reason);
        self.ops.status.gateway_lost(reason);
        // Retries that fail the same way change nothing a client can see.
        if self.lost_reason.as_deref() == Some(reason) {
            tracing::debug!(%reason, "gateway still unavailable");
            return;
        }
        warn!(%reason, "gateway connection lost");
        crate::systemd::status(&format!("gateway connection lost: {reason}"));
        self.lost_reason = Some(reason.to_string());
        let message = format!("gateway connection lost: {reason}");
        for (_, pv) in self.pvs.iter_mut() {
            pv.connection_lost(&message);
        }
    }
}
