//! The MXAccess Gateway simulator (`mxpva sim`).
//!
//! A tonic server of the same contract as the real gateway
//! (proto/mxaccess_gateway/v1, proto/galaxy_repository/v1), backed by a
//! simulated Galaxy described in TOML ([`Galaxy`], config/sim-galaxy.toml).
//! It enforces the gateway's documented rules (API key scopes, session lease,
//! one event subscriber, bounded event queue that faults the session on
//! overflow, replay buffer with `replay_gap`, advise-before-write, MXAccess
//! statuses for failed writes) and never bends them for a client.
//!
//! Tests and tools drive it at run time through [`SimHandle`] (in process) or
//! the `mxpva_sim.v1.SimControl` gRPC service (proto/mxpva_sim/v1), which is
//! served on the same port and is not part of the gateway contract.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mxpva::sim::{Galaxy, SimHandle, SimOptions};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let sim = SimHandle::new(Galaxy::demo(), SimOptions::default());
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(sim.clone().serve(listener, async { let _ = stopped.await; }));
//! // ... connect a mxpva::gateway::GatewayClient to addr, drive faults with `sim` ...
//! let _ = stop.send(());
//! server.await??;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `values.rs`: pure value helpers (arrays, zero values, write coercion, text and
//!   time parsing); depends on no other simulator file.
//! - `config.rs`: the TOML Galaxy schema; `config/build.rs`: its validation and name
//!   resolution. Uses `values.rs`.
//! - `world.rs`: live values, dynamics, quality cycles, alarms. Uses `config.rs` and
//!   `values.rs`; neither uses it.
//! - `session.rs`: sessions, handles, event queue and replay buffer.
//! - `subs.rs`: the index from an attribute to the items advised on it, and the
//!   due-lists (first value after Advise, buffered flushes).
//! - `gateway_svc/`: the MxAccessGateway service: `mod.rs` the tonic service with its
//!   event and alarm streams; `auth.rs` API keys and scopes; `reads.rs` references,
//!   reads and OnDataChange delivery; `writes.rs` the write path; `commands.rs` the
//!   dispatch of Invoke's commands.
//! - `galaxy_svc.rs`: the GalaxyRepository service.
//! - `control.rs`: [`SimHandle`] methods and the SimControl service.
//! - `deploy.rs`: deploys of a changed Galaxy ([`SimHandle::deploy_galaxy`]; `mxpva sim
//!   --galaxy FILE` re-reads FILE on SIGHUP).
//! - `remote.rs`: [`RemoteSim`], a client of SimControl for a standalone simulator.
//! - `lock.rs`: the poison-tolerant mutex that guards the shared state.

mod clock;
mod config;
mod control;
mod deploy;
mod galaxy_svc;
mod gateway_svc;
mod remote;
mod session;
mod subs;
mod values;
mod world;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

pub use config::{AlarmKind, AuthMode, Dynamics, Galaxy, GalaxyError, DEMO_GALAXY, SCOPES};
pub use control::{Faults, SessionStats, WriteSeen};
pub use remote::{RemoteSim, RemoteSimError};

use crate::gateway::pb::galaxy as gpb;
use crate::gateway::pb::gw as pb;
use crate::gateway::AlarmTransition;
use crate::lock::Mutex;
use session::SimSession;
use world::World;

/// Session and event-pipeline settings. Defaults are the real gateway's.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Session lease, extended by every call; an attached stream keeps it alive.
    pub lease: Duration,
    /// How often expired sessions are swept.
    pub sweep_interval: Duration,
    /// Per-session event queue bound; overflow faults the session.
    pub event_queue_capacity: usize,
    /// Events kept for resume.
    pub replay_capacity: usize,
    pub replay_retention: Duration,
    pub max_sessions: usize,
    /// Overrides the Galaxy's `first_update_delay_ms`.
    pub first_update_delay: Option<Duration>,
    /// Overrides the Galaxy's `tick_ms`.
    pub tick: Option<Duration>,
    /// ReadBulk snapshot timeout when the request says 0.
    pub default_read_timeout: Duration,
    /// Serve TLS with this identity instead of plaintext.
    pub tls: Option<SimTls>,
}

/// A TLS server identity (PEM certificate chain and private key).
#[derive(Clone)]
pub struct SimTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for SimTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimTls(<identity>)")
    }
}

impl SimTls {
    /// Read the certificate and key PEM files.
    pub fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, SimError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| SimError::Tls(format!("cannot read {}: {e}", p.display())))
        };
        Ok(SimTls {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            lease: Duration::from_secs(1800),
            sweep_interval: Duration::from_secs(30),
            event_queue_capacity: 10_000,
            replay_capacity: 1024,
            replay_retention: Duration::from_secs(300),
            max_sessions: 64,
            first_update_delay: None,
            tick: None,
            default_read_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// Errors of [`serve`] and [`run_standalone`].
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the simulator's gRPC server failed: {0}")]
    Server(String),
    #[error(transparent)]
    Galaxy(#[from] GalaxyError),
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

/// `mxpva sim`: serve `galaxy` (the shipped demo plant when None) on `listen`
/// until Ctrl-C / SIGTERM. `tls`: certificate and key PEM files to serve TLS
/// instead of plaintext. SIGHUP re-reads the `galaxy` file and deploys it
/// (`deploy.rs`); a file that does not load changes nothing (the log says why).
pub fn run_standalone(
    listen: std::net::SocketAddr,
    galaxy: Option<&std::path::Path>,
    tls: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<(), SimError> {
    let opts = SimOptions {
        tls: tls.map(|(c, k)| SimTls::load(c, k)).transpose()?,
        ..SimOptions::default()
    };
    let file = galaxy.map(std::path::Path::to_path_buf);
    let galaxy = match galaxy {
        Some(p) => Galaxy::load(p)?,
        None => Galaxy::from_toml(DEMO_GALAXY, "config/sim-galaxy.toml (built in)")?,
    };
    // One thread, as the gateway's worker runs a session's MXAccess calls on one STA
    // thread. Each event then goes out as it is fired: a second worker thread batched a
    // paced stream's events, which flattered mxpva's CPU per update, and took CPU from
    // mxpva under 100 writers (docs/performance.md, "The put cycle, trimmed").
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SimError::Runtime)?;
    rt.block_on(async move {
        let signals = crate::signals::Signals::install().map_err(SimError::Runtime)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|error| SimError::Bind {
                addr: listen,
                error,
            })?;
        tracing::info!(
            addr = %listener.local_addr().unwrap_or(listen),
            galaxy = %galaxy.name,
            objects = galaxy.objects.len(),
            attributes = galaxy.attributes.len(),
            auth = ?galaxy.auth_mode,
            tls = opts.tls.is_some(),
            "mxpva sim serving the MXAccess Gateway contract"
        );
        let handle = SimHandle::new(galaxy, opts);
        // Without a Galaxy file there is nothing to deploy: SIGHUP is logged and ignored.
        let Some(path) = file else {
            return handle.serve(listener, signals.shutdown()).await;
        };
        let (tx, mut hangups) = tokio::sync::mpsc::unbounded_channel();
        let deployer = handle.clone();
        let reloads = tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                while hangups.try_recv().is_ok() {}
                match Galaxy::load(&path) {
                    Ok(g) => {
                        deployer.deploy_galaxy(g);
                    }
                    Err(e) => tracing::warn!(
                        file = %path.display(),
                        "SIGHUP: the Galaxy file does not load; the deployed Galaxy stays:\n{e}"
                    ),
                }
            }
        });
        let result = handle.serve(listener, signals.shutdown_reloading(tx)).await;
        reloads.abort();
        result
    })
}

/// A message for StreamAlarms subscribers.
#[derive(Clone, Debug)]
pub(crate) enum AlarmNews {
    Transition(Box<AlarmTransition>),
    /// The simulated gateway restarted: streams end.
    Restart,
}

pub(crate) struct DeployState {
    pub sequence: u64,
    pub time: SystemTime,
}

/// State shared by the services and the handle.
pub(crate) struct Core {
    /// The Galaxy as last deployed (`SimHandle::deploy_galaxy` swaps it, under the world
    /// lock, so that the world and the Galaxy always match for whoever holds that lock).
    galaxy: Mutex<Arc<Galaxy>>,
    pub opts: SimOptions,
    pub first_update_delay: Duration,
    pub tick: Duration,
    /// The System Platform node's clock (`clock.rs`), set with the Galaxy.
    pub clock: clock::Clock,
    /// Lock order: world, then `subs`, then a session's handles, then its log.
    pub world: Mutex<World>,
    /// Which items are advised on what, and the work due later (`subs.rs`).
    pub subs: Mutex<subs::Subscribers>,
    /// Wakes the simulator's timer when work was added to a due-list.
    pub due_wake: tokio::sync::Notify,
    pub sessions: Mutex<HashMap<String, Arc<SimSession>>>,
    pub faults: Mutex<Faults>,
    /// Mirrors `faults.stall_events` for the hot path of the event streams.
    pub stalled: AtomicBool,
    pub alarm_tx: broadcast::Sender<AlarmNews>,
    pub deploy: Mutex<DeployState>,
    pub deploy_tx: broadcast::Sender<gpb::DeployEvent>,
    /// Bumped by a restart; streams that are not per-session watch it.
    pub epoch: watch::Sender<u64>,
    pub next_session: AtomicU64,
    pub started: Instant,
    /// The write calls received, oldest first (at most [`control::WRITES_KEPT`]).
    pub writes: Mutex<std::collections::VecDeque<(Arc<str>, crate::gateway::MxValue)>>,
}

/// In-process control of a simulator; cheap to clone.
#[derive(Clone)]
pub struct SimHandle {
    core: Arc<Core>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("galaxy", &self.core.galaxy().name)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// Build a simulator (not yet serving).
    pub fn new(galaxy: Galaxy, mut opts: SimOptions) -> Self {
        if let Some(capacity) = galaxy.event_queue_capacity {
            opts.event_queue_capacity = capacity;
        }
        let first_update_delay = opts
            .first_update_delay
            .unwrap_or(Duration::from_millis(galaxy.first_update_delay_ms));
        let tick = opts.tick.unwrap_or(Duration::from_millis(galaxy.tick_ms));
        let world = World::new(&galaxy);
        let clock = clock::Clock::new(galaxy.clock_offset_ms);
        let deployed = clock.now();
        let (alarm_tx, _) = broadcast::channel(4096);
        let (deploy_tx, _) = broadcast::channel(64);
        let (epoch, _) = watch::channel(0);
        SimHandle {
            core: Arc::new(Core {
                galaxy: Mutex::new(Arc::new(galaxy)),
                opts,
                first_update_delay,
                tick,
                clock,
                world: Mutex::new(world),
                subs: Mutex::default(),
                due_wake: tokio::sync::Notify::new(),
                sessions: Mutex::new(HashMap::new()),
                faults: Mutex::new(Faults::default()),
                stalled: AtomicBool::new(false),
                alarm_tx,
                deploy: Mutex::new(DeployState {
                    sequence: 1,
                    time: deployed,
                }),
                deploy_tx,
                epoch,
                next_session: AtomicU64::new(1),
                started: Instant::now(),
                writes: Mutex::default(),
            }),
        }
    }

    /// Serve the gateway, the Galaxy Repository and the control service on
    /// `listener` until `shutdown` completes. Runs the value dynamics too.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), SimError> {
        let core = self.core.clone();
        // Kestrel, the real gateway's server, sends without Nagle's delay. tonic ignores
        // `tcp_nodelay` for a given listener, so set it on each accepted connection.
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            |conn| {
                if let Ok(stream) = &conn {
                    let _ = stream.set_nodelay(true);
                }
                conn
            },
        );
        let max = crate::gateway::MAX_MESSAGE_BYTES;
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &core.opts.tls {
            let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
            builder = builder
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .map_err(|e| SimError::Tls(e.to_string()))?;
        }
        let ticker = tokio::spawn(run_dynamics(core.clone()));
        let sweeper = tokio::spawn(run_sweeper(core.clone()));
        let result = builder
            .initial_stream_window_size(Some(4 * 1024 * 1024))
            .initial_connection_window_size(Some(8 * 1024 * 1024))
            .add_service(
                pb::mx_access_gateway_server::MxAccessGatewayServer::new(gateway_svc::GatewaySvc {
                    core: core.clone(),
                })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            )
            .add_service(
                gpb::galaxy_repository_server::GalaxyRepositoryServer::new(
                    galaxy_svc::GalaxySvc::new(core.clone()),
                )
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            )
            .add_service(
                crate::gateway::pb::control::sim_control_server::SimControlServer::new(
                    control::ControlSvc {
                        handle: self.clone(),
                    },
                ),
            )
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        ticker.abort();
        sweeper.abort();
        // End whatever streams are still attached.
        self.restart();
        result.map_err(|e| SimError::Server(e.to_string()))
    }
}

/// Serve a simulator of `galaxy` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    galaxy: Galaxy,
    opts: SimOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SimError> {
    SimHandle::new(galaxy, opts).serve(listener, shutdown).await
}

/// The simulator's timer: the dynamics tick, and the due-lists (first values after
/// Advise, buffered flushes). Everything else is pushed when it happens
/// (`gateway_svc/push.rs`), so between two deadlines this sleeps.
async fn run_dynamics(core: Arc<Core>) {
    let tick = core.tick.max(Duration::from_millis(1));
    let mut next_tick = tokio::time::Instant::now() + tick;
    loop {
        let due = core
            .subs
            .lock()
            .next_due()
            .map(tokio::time::Instant::from_std);
        let wake = due.map_or(next_tick, |d| d.min(next_tick));
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = core.due_wake.notified() => {}
        }
        let now = tokio::time::Instant::now();
        if now >= next_tick {
            next_tick += tick;
            if next_tick <= now {
                // Late (a busy machine): the next tick is a period from now, not a burst.
                next_tick = now + tick;
            }
            let mut world = core.world.lock();
            let g = core.galaxy();
            let mut changes = world.tick(&g);
            // The end of the scan: plain items get what control calls changed in it.
            gateway_svc::scan_end(&core, &mut changes);
            gateway_svc::publish(&core, &g, &world, changes);
        }
        gateway_svc::deliver_due(&core, now.into_std());
    }
}

async fn run_sweeper(core: Arc<Core>) {
    let mut interval = tokio::time::interval(core.opts.sweep_interval);
    loop {
        interval.tick().await;
        let expired: Vec<Arc<SimSession>> = core
            .sessions
            .lock()
            .values()
            .filter(|s| {
                let attached = s.log.lock().subscriber.is_some();
                !attached && s.handles.lock().last_used.elapsed() > core.opts.lease
            })
            .cloned()
            .collect();
        for s in expired {
            tracing::info!(session = %s.id, "session lease expired");
            s.handles.lock().state = session::State::Closed;
            core.sessions.lock().remove(&s.id);
            core.forget_session(&s);
        }
    }
}

impl Core {
    /// The Galaxy as deployed now.
    pub(crate) fn galaxy(&self) -> Arc<Galaxy> {
        self.galaxy.lock().clone()
    }

    /// Deploys `g`; its `clock_offset_ms` sets the node's clock.
    pub(crate) fn set_galaxy(&self, g: Arc<Galaxy>) {
        self.clock.set(g.clock_offset_ms);
        *self.galaxy.lock() = g;
    }

    /// The System Platform node's clock now (`clock.rs`).
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    pub(crate) fn faults(&self) -> Faults {
        self.faults.lock().clone()
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Forget a session that ended (closed, expired, dropped by a restart): its items
    /// leave the index and its due work is dropped. Call after its state is Closed, so
    /// that an Advise racing with the end does not add it back.
    pub(crate) fn forget_session(&self, sess: &Arc<SimSession>) {
        let mut subs = self.subs.lock();
        let h = sess.handles.lock();
        subs.forget(
            sess,
            h.items
                .iter()
                .filter(|(_, i)| i.advised)
                .map(|(ih, i)| (*ih, &i.target)),
        );
    }
}
