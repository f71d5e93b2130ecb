//! The bridge: serves mapped System Platform attributes as PVAccess PVs.
//!
//! One task owns all state. It keeps a link to the gateway (connect, open a session,
//! Register, SubscribeBulk in chunks, one event stream demultiplexed by item handle),
//! posts each data change to its PV with the quality as `alarm` and the source time as
//! `timeStamp`, and turns puts into gateway writes that complete on OnWriteComplete.
//!
//! When the gateway is lost every PV goes INVALID ("gateway connection lost"), keeping
//! its last value; puts then fail at once. The link comes back with capped exponential
//! backoff, a new session and one new subscription of every tag.
//!
//! - `convert.rs`: MXAccess values <-> PV values, exact or refused (`isotime.rs`: Time text).
//! - `quality.rs`: quality -> `alarm`.
//! - `pv.rs`: one mapped PV (its structure, metadata and pending writes).
//! - `alarms/`: System Platform alarms: the feed, their PVs, `:ACK`, the table
//!   (`table.rs`), the `kind` severity scheme (`severity.rs`).
//! - `limits.rs`: local `value_alarm` limits applied to `alarm`.
//! - `strays.rs`: events the bridge ignores (unknown items, undecodable), logged once.
//! - `stamp.rs`: the rule that keeps each PV's posted `timeStamp` from going back.

mod alarms;
mod convert;
#[cfg(test)]
mod convert_props;
mod isotime;
mod limits;
mod pv;
mod quality;
mod stamp;
mod strays;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::lock::Mutex;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{self, Config};
use crate::gateway::{
    ApiKey, ClientOptions, EventStream, GatewayClient, GatewayError, ItemHandle, ServerHandle,
    Session, SessionEvent, TlsOptions, UserId, ValueLimits, WriteEntry, WriteKind,
};
use crate::pva::{self, PutRequest, PvEvent, Server, ServerConfig};

pub use convert::{default_pv_type, iso8601, to_mx, to_nt};
pub use quality::quality_alarm;

use pv::{InFlight, MappedPv, PendingWrite};

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("PVAccess server: {0}")]
    Pva(#[from] pva::PvaError),
    #[error("gateway API key: {0}")]
    ApiKey(String),
}

/// How the bridge reaches the gateway, resolved from `[gateway]`, and the caps on what
/// it decodes, from `[limits]`.
fn client_options(
    gw: &config::Gateway,
    limits: &config::Limits,
) -> Result<ClientOptions, BridgeError> {
    let mut opts = ClientOptions::plaintext(gw.endpoint.clone());
    opts.limits = ValueLimits {
        max_array_length: limits.max_array_length,
        max_string_length: limits.max_string_length,
    };
    opts.connect_timeout = gw.connect_timeout;
    opts.request_timeout = gw.request_timeout;
    opts.keepalive_interval = gw.keepalive_interval;
    opts.keepalive_timeout = gw.keepalive_timeout;
    if let Some(key) = gw
        .api_key
        .load()
        .map_err(|e| BridgeError::ApiKey(e.to_string()))?
    {
        let key = ApiKey::new(key.expose()).map_err(|e| BridgeError::ApiKey(e.to_string()))?;
        opts = opts.with_api_key(key);
    }
    if gw.tls.enabled {
        opts.tls = Some(TlsOptions {
            ca_file: gw.tls.ca_file.clone(),
            server_name: gw.tls.server_name.clone(),
        });
    }
    Ok(opts)
}

/// The PVAccess server settings: `[server]`, falling back to `EPICS_PVAS_*`.
pub fn server_config(s: &config::Server) -> ServerConfig {
    let mut c = ServerConfig::from_env();
    if let Some(ifs) = &s.interfaces {
        c = c.interfaces(ifs.iter().map(|a| a.to_string()));
    }
    if let Some(p) = s.tcp_port {
        c = c.tcp_port(p);
    }
    if let Some(p) = s.udp_port {
        c = c.udp_port(p);
    }
    if let Some(b) = &s.beacon_destinations {
        c = c.beacon_destinations(b.iter().cloned());
    }
    if let Some(a) = s.auto_beacon {
        c = c.auto_beacon(a);
    }
    c
}

/// A live gateway link.
struct Link {
    session: Session,
    server: ServerHandle,
    /// User ids for the secured write modes, by `[users]` key.
    users: HashMap<String, UserId>,
}

/// What the connect task hands back: the link, its event stream, each tag's item
/// handle (by index in `pvs`), and the events that came while subscribing.
type Connected = Result<
    (
        Link,
        EventStream,
        Vec<(usize, Result<ItemHandle, String>)>,
        Vec<SessionEvent>,
    ),
    String,
>;

/// Messages from helper tasks to the bridge task.
enum Internal {
    /// The gateway accepted (Ok) or refused (Err) the write call for `id`.
    Sent {
        pv: usize,
        id: u64,
        result: Result<(), String>,
    },
    /// `id` had no OnWriteComplete within the write timeout.
    TimedOut { pv: usize, id: u64 },
    /// `id` was confirmed [`pv::WRITE_SETTLE`] ago and no data change followed.
    Settled { pv: usize, id: u64 },
}

/// Closes the sessions of lost links. One the gateway no longer knows counts as closed;
/// one it cannot answer for now stays for the next connect.
async fn close_stale_sessions(client: &GatewayClient, stale: &Mutex<Vec<String>>) {
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

/// Runs the bridge until `shutdown` resolves.
pub async fn run(
    config: Config,
    pva_config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BridgeError> {
    let opts = client_options(&config.gateway, &config.limits)?;
    let server = Arc::new(Server::new(&pva_config)?);
    let (events_tx, mut pv_events) = pva::event_channel_with(pva::PutLimits {
        max_queued: config.limits.max_puts_queued,
        max_array_length: config.limits.max_array_length,
        max_string_length: config.limits.max_string_length,
    });
    let mut pvs = Vec::with_capacity(config.pvs.len());
    let mut by_name = HashMap::new();
    for (i, cfg) in config.pvs.iter().enumerate() {
        let mapped = MappedPv::new(cfg.clone(), &config.defaults, &events_tx)?;
        server.add_pv(&mapped.pv)?;
        by_name.insert(Arc::<str>::from(cfg.name.as_str()), i);
        pvs.push(mapped);
    }
    let alarms = alarms::Alarms::new(&config, &opts, server.clone(), &events_tx, &pvs)?;
    server.start()?;
    let info = server.info()?;
    info!(
        pvs = pvs.len(),
        tcp_port = info.tcp_port,
        udp_port = info.udp_port,
        interfaces = ?info.interfaces,
        "serving PVs"
    );
    let mut bridge = Bridge {
        config,
        opts,
        pvs,
        by_name,
        by_item: HashMap::new(),
        link: None,
        lost_reason: None,
        stale_sessions: Arc::default(),
        next_write: 0,
        in_flight: Arc::default(),
        internal: mpsc::unbounded_channel(),
        alarms,
        strays: strays::Strays::default(),
        dirty: Vec::new(),
    };
    bridge.serve(&mut pv_events, shutdown).await;
    drop(bridge);
    drop(server);
    Ok(())
}

struct Bridge {
    config: Config,
    opts: ClientOptions,
    pvs: Vec<MappedPv>,
    by_name: HashMap<Arc<str>, usize>,
    /// Item handle -> index in `pvs`, for the current session.
    by_item: HashMap<i32, usize>,
    link: Option<Link>,
    /// Why the link is down, as last posted to the PVs.
    lost_reason: Option<String>,
    /// Sessions of lost links not yet closed at the gateway: the next connect closes them
    /// before it opens a new one, so the gateway never holds two subscriptions of a tag.
    stale_sessions: Arc<Mutex<Vec<String>>>,
    next_write: u64,
    /// Puts sent to the gateway and not yet answered, over all PVs (each
    /// [`PendingWrite`] holds one count; see [`pv::InFlight`]).
    in_flight: Arc<AtomicUsize>,
    /// Results of write calls and write timeouts, from helper tasks.
    internal: (
        mpsc::UnboundedSender<Internal>,
        mpsc::UnboundedReceiver<Internal>,
    ),
    /// System Platform alarms (their own feed, `:ACK` PVs, the table).
    alarms: alarms::Alarms,
    /// Events ignored, so each kind is logged once per session.
    strays: strays::Strays,
    /// PVs with news taken in this turn (indices into `pvs`), each posted once at its end.
    dirty: Vec<usize>,
}

/// At most this many gateway events are taken in one turn, so that puts are still
/// served during a flood.
const MAX_TURN: usize = 4096;

impl Bridge {
    async fn serve(
        &mut self,
        pv_events: &mut pva::EventReceiver,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let gw = &self.config.gateway;
        let mut backoff = crate::gateway::Backoff::new(gw.reconnect_initial, gw.reconnect_max);
        let mut connecting: Option<tokio::task::JoinHandle<Connected>> = Some(self.spawn_connect());
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut events: Option<EventStream> = None;
        // Why the event stream ended in this turn, if it did.
        let mut ended: Option<String> = None;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(ev) = pv_events.recv() => self.on_pv_event(ev),
                Some(msg) = self.internal.1.recv() => self.on_internal(msg),
                Some(msg) = self.alarms.feed.recv() => {
                    self.alarms.on_feed(msg, &mut self.pvs, &mut self.dirty);
                    ended = self.take_ready(&mut events).await;
                }
                done = async { match connecting.as_mut() { Some(task) => task.await, None => std::future::pending().await } }, if connecting.is_some() => {
                    connecting = None;
                    match done {
                        Ok(Ok((link, stream, items, early))) => {
                            self.on_connected(link, items);
                            for ev in early {
                                self.on_session_event(ev);
                            }
                            events = Some(stream);
                            backoff.reset();
                        }
                        Ok(Err(reason)) => {
                            self.on_lost(&reason);
                            retry_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                        }
                        Err(e) => {
                            self.on_lost(&format!("connect task failed: {e}"));
                            retry_at = Some(tokio::time::Instant::now() + backoff.current());
                        }
                    }
                }
                _ = async { match retry_at { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } }, if retry_at.is_some() => {
                    retry_at = None;
                    connecting = Some(self.spawn_connect());
                }
                ev = async { match events.as_mut() { Some(stream) => stream.next().await, None => std::future::pending().await } }, if events.is_some() => {
                    ended = match ev {
                        Some(Ok(ev)) => {
                            self.on_session_event(ev);
                            self.take_ready(&mut events).await
                        }
                        Some(Err(e)) => Some(format!("event stream failed: {e}")),
                        None => Some("the gateway ended the event stream".to_string()),
                    };
                }
            }
            // The end of the turn: each PV with news posts once.
            for i in self.dirty.drain(..) {
                if let Some(pv) = self.pvs.get_mut(i) {
                    pv.flush();
                }
            }
            if let Some(reason) = ended.take() {
                events = None;
                self.close_link(&reason);
                retry_at = Some(tokio::time::Instant::now() + backoff.current());
            }
        }
        if let Some(link) = self.link.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), link.session.close()).await;
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                close_stale_sessions(link.session.client(), &self.stale_sessions),
            )
            .await;
        }
    }

    /// The rest of a turn that began with a gateway event or an alarm message: everything
    /// of the event stream and the alarm feed that is ready now (up to [`MAX_TURN`]
    /// events). Data changes and alarm transitions of one PV taken together are then
    /// posted as one update. Returns why the event stream ended, if it did.
    async fn take_ready(&mut self, events: &mut Option<EventStream>) -> Option<String> {
        // First let the tasks that read the gateway's connections run: what arrived
        // together (a data change and the alarm it raised) is then taken together.
        tokio::task::yield_now().await;
        let mut ended = None;
        if let Some(stream) = events.as_mut() {
            for _ in 0..MAX_TURN {
                match stream.next().now_or_never() {
                    None => break,
                    Some(Some(Ok(ev))) => self.on_session_event(ev),
                    Some(Some(Err(e))) => {
                        ended = Some(format!("event stream failed: {e}"));
                        break;
                    }
                    Some(None) => {
                        ended = Some("the gateway ended the event stream".to_string());
                        break;
                    }
                }
            }
        }
        self.alarms.on_ready(&mut self.pvs, &mut self.dirty);
        ended
    }

    /// Connects, opens a session, registers and subscribes every tag, in a task of its
    /// own so puts keep being answered meanwhile.
    fn spawn_connect(&self) -> tokio::task::JoinHandle<Connected> {
        let opts = self.opts.clone();
        let gw = self.config.gateway.clone();
        let tags: Vec<String> = self
            .pvs
            .iter()
            .map(|p| p.cfg.tag.as_str().to_string())
            .collect();
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
                // overflows: attach the stream first and drain it while subscribing.
                let mut events = session
                    .events(None)
                    .await
                    .map_err(|e| fail("cannot attach the event stream", e))?;
                let mut early = Vec::new();
                let results = {
                    let subscribe =
                        session.subscribe_bulk_chunked(server, &tags, gw.subscribe_chunk.get());
                    tokio::pin!(subscribe);
                    loop {
                        tokio::select! {
                            results = &mut subscribe => {
                                break results.map_err(|e| fail("SubscribeBulk failed", e))?;
                            }
                            ev = events.next() => match ev {
                                Some(Ok(ev)) => early.push(ev),
                                Some(Err(e)) => return Err(fail("event stream failed while subscribing", e)),
                                None => return Err("the gateway ended the event stream while subscribing".into()),
                            },
                        }
                    }
                };
                let items = results
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| {
                        (
                            i,
                            r.outcome.map(|()| r.item_handle).map_err(|e| e.to_string()),
                        )
                    })
                    .collect();
                Ok::<_, String>((server, user_ids, items, events, early))
            }
            .await;
            let (server, user_ids, items, events, early) = match setup {
                Ok(done) => done,
                Err(e) => {
                    // The session exists at the gateway: the next connect closes it.
                    stale.lock().push(session.id().to_string());
                    return Err(e);
                }
            };
            Ok((
                Link {
                    session,
                    server,
                    users: user_ids,
                },
                events,
                items,
                early,
            ))
        })
    }

    fn on_connected(&mut self, link: Link, items: Vec<(usize, Result<ItemHandle, String>)>) {
        self.by_item.clear();
        self.strays.reset();
        self.lost_reason = None;
        let mut failed = 0;
        for (i, item) in items {
            let Some(pv) = self.pvs.get_mut(i) else {
                continue;
            };
            match item {
                Ok(handle) => {
                    pv.item = Some(handle);
                    self.by_item.insert(handle.0, i);
                }
                Err(reason) => {
                    failed += 1;
                    warn!(pv = %pv.cfg.name.as_str(), tag = %pv.cfg.tag.as_str(), %reason, "subscribe failed");
                    pv.item = None;
                    pv.subscribe_failed(&reason);
                }
            }
        }
        info!(
            session = %link.session.id(),
            subscribed = self.by_item.len(),
            failed,
            "gateway session up"
        );
        self.link = Some(link);
    }

    /// The link is gone: every PV goes INVALID, pending writes fail. Its session, which
    /// may live on at the gateway, is closed by the next connect.
    fn close_link(&mut self, reason: &str) {
        if let Some(link) = self.link.take() {
            let id = link.session.id().to_string();
            self.stale_sessions.lock().push(id);
        }
        self.on_lost(reason);
    }

    fn on_lost(&mut self, reason: &str) {
        self.link = None;
        self.by_item.clear();
        // Retries that fail the same way change nothing a client can see.
        if self.lost_reason.as_deref() == Some(reason) {
            tracing::debug!(%reason, "gateway still unavailable");
            return;
        }
        warn!(%reason, "gateway connection lost");
        self.lost_reason = Some(reason.to_string());
        let message = format!("gateway connection lost: {reason}");
        for pv in &mut self.pvs {
            pv.item = None;
            pv.connection_lost(&message);
        }
    }

    fn on_session_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::DataChange(dc) => {
                let item = self.by_item.get(&dc.item_handle.0).copied();
                if let Some((i, pv)) = item.and_then(|i| Some((i, self.pvs.get_mut(i)?))) {
                    if pv.data_change(&dc.value, dc.quality, dc.source_time, &dc.statuses) {
                        self.dirty.push(i);
                    }
                } else {
                    self.strays.unknown_item("data change", dc.item_handle.0);
                }
            }
            SessionEvent::Undecodable(u) => {
                let item = self.by_item.get(&u.item_handle.0).copied();
                let pv = item
                    .filter(|_| u.data_change)
                    .and_then(|i| Some((i, self.pvs.get_mut(i)?)));
                match pv {
                    Some((i, pv)) => {
                        self.strays.undecodable(&u, Some((i, pv.cfg.name.as_str())));
                        pv.value_not_shown(&u.reason);
                    }
                    None => self.strays.undecodable(&u, None),
                }
            }
            SessionEvent::WriteComplete(wc) => {
                let item = self.by_item.get(&wc.item_handle.0).copied();
                let waiting = |i: usize| self.pvs.get(i).is_some_and(|pv| !pv.pending.is_empty());
                let Some(i) = item.filter(|&i| waiting(i)) else {
                    match item.and_then(|i| self.pvs.get(i)) {
                        Some(pv) => self.strays.unexpected_write(pv.cfg.name.as_str()),
                        None => self
                            .strays
                            .unknown_item("write completion", wc.item_handle.0),
                    }
                    return;
                };
                let outcome = match wc.failure() {
                    None => Ok(()),
                    Some(status) => Err(format!(
                        "System Platform refused the write: {}",
                        status
                            .detail_name()
                            .map(str::to_string)
                            .unwrap_or_else(|| status.to_string())
                    )),
                };
                let settling = self
                    .pvs
                    .get_mut(i)
                    .and_then(|pv| pv.write_complete(outcome));
                if let Some(id) = settling {
                    let tx = self.internal.0.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(pv::WRITE_SETTLE).await;
                        let _ = tx.send(Internal::Settled { pv: i, id });
                    });
                }
            }
            SessionEvent::ReplayGap(_) => {
                warn!("event replay gap: values refresh with the next data changes");
            }
            _ => {}
        }
    }

    fn on_pv_event(&mut self, ev: PvEvent) {
        match ev {
            PvEvent::Put(put) => self.on_put(put),
            PvEvent::Connected { .. } | PvEvent::Disconnected { .. } => {}
        }
    }

    fn on_put(&mut self, put: PutRequest) {
        let Some(put) = self.alarms.take_put(put, &self.pvs) else {
            return;
        };
        let Some(&i) = self.by_name.get(&put.pv) else {
            put.completion
                .complete(Err(format!("{}: unknown PV", put.pv)));
            return;
        };
        let Some(link) = &self.link else {
            put.completion.complete(Err(format!(
                "{}: gateway unavailable: write not sent",
                put.pv
            )));
            return;
        };
        let Some(pv) = self.pvs.get_mut(i) else {
            put.completion
                .complete(Err(format!("{}: unknown PV", put.pv)));
            return;
        };
        let entry = match pv.prepare_write(&put) {
            Ok(entry) => entry,
            Err(message) => {
                put.completion.complete(Err(message));
                return;
            }
        };
        let limits = &self.config.limits;
        let waiting = pv.writes_waiting();
        if waiting >= limits.max_puts_per_pv {
            put.completion.complete(Err(format!(
                "{}: {waiting} puts already wait for System Platform on this PV \
                 ([limits] max_puts_per_pv {}): put refused",
                put.pv, limits.max_puts_per_pv
            )));
            return;
        }
        let in_flight = self.in_flight.load(Ordering::Acquire);
        if in_flight >= limits.max_puts_in_flight {
            put.completion.complete(Err(format!(
                "{}: {in_flight} puts already wait for System Platform \
                 ([limits] max_puts_in_flight {}): put refused",
                put.pv, limits.max_puts_in_flight
            )));
            return;
        }
        let (kind, user, verifier) = match pv.cfg.write.as_ref() {
            Some(config::WriteMode::Write { user }) => (WriteKind::Write, user.clone(), None),
            Some(config::WriteMode::Write2 { user }) => (WriteKind::Write2, user.clone(), None),
            Some(config::WriteMode::Secured { user }) => (
                WriteKind::WriteSecured,
                Some(user.clone()),
                Some(user.clone()),
            ),
            Some(config::WriteMode::Verified { user, verifier }) => (
                WriteKind::WriteSecured,
                Some(user.clone()),
                Some(verifier.clone()),
            ),
            None => {
                put.completion
                    .complete(Err(format!("{} is read-only: put refused", put.pv)));
                return;
            }
        };
        let id_of = |u: Option<config::User>| u.and_then(|u| link.users.get(&u.key).copied());
        let mut entry = WriteEntry {
            user: id_of(user).unwrap_or(UserId(0)),
            verifier: id_of(verifier).unwrap_or(UserId(0)),
            ..entry
        };
        if kind == WriteKind::Write2 {
            entry.timestamp = Some(std::time::SystemTime::now());
        }
        self.next_write += 1;
        let id = self.next_write;
        info!(pv = %put.pv, tag = %pv.cfg.tag.as_str(), value = %convert::brief(&entry.value, 80), account = %put.credentials.account, peer = %put.credentials.peer, "write");
        pv.pending.push_back(PendingWrite {
            id,
            started: Instant::now(),
            completion: put.completion,
            changed: false,
            _in_flight: InFlight::new(&self.in_flight),
        });
        let session = link.session.clone();
        let server = link.server;
        let tx = self.internal.0.clone();
        let timeout = self.config.gateway.write_timeout;
        tokio::spawn(async move {
            let result = session
                .write(server, kind, &entry)
                .await
                .map_err(|e| format!("the gateway refused the write: {e}"));
            let sent = result.is_ok();
            let _ = tx.send(Internal::Sent { pv: i, id, result });
            if sent {
                tokio::time::sleep(timeout).await;
                let _ = tx.send(Internal::TimedOut { pv: i, id });
            }
        });
    }

    fn on_internal(&mut self, msg: Internal) {
        let (Internal::Sent { pv, .. }
        | Internal::Settled { pv, .. }
        | Internal::TimedOut { pv, .. }) = &msg;
        let Some(pv) = self.pvs.get_mut(*pv) else {
            return;
        };
        match msg {
            Internal::Sent {
                id,
                result: Err(message),
                ..
            } => {
                pv.fail_write(id, &message);
            }
            Internal::Sent { .. } => {}
            Internal::Settled { id, .. } => pv.settle(id),
            Internal::TimedOut { id, .. } => {
                let t = humantime::format_duration(self.config.gateway.write_timeout);
                pv.fail_write(
                    id,
                    &format!("no write confirmation from System Platform within {t}"),
                );
            }
        }
    }
}
