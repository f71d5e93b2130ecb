//! The PVAccess server.

use cxx::UniquePtr;

use super::error::PvaError;
use super::ffi::bridge::{self, PvServer, WireServerSettings};
use super::shared_pv::SharedPv;
use super::table::TablePv;

/// Where a server's settings start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Defaults,
    Env,
    Isolated,
}

/// How to build a [`Server`]: a base (pvxs defaults, `EPICS_PVAS_*`, or isolated
/// loopback) plus explicit overrides.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    base: Base,
    interfaces: Option<Vec<String>>,
    beacon_destinations: Option<Vec<String>>,
    tcp_port: Option<u16>,
    udp_port: Option<u16>,
    auto_beacon: Option<bool>,
}

impl ServerConfig {
    fn with_base(base: Base) -> Self {
        ServerConfig {
            base,
            interfaces: None,
            beacon_destinations: None,
            tcp_port: None,
            udp_port: None,
            auto_beacon: None,
        }
    }

    /// pvxs defaults (all interfaces, TCP 5075, UDP 5076), ignoring the environment.
    pub fn defaults() -> Self {
        Self::with_base(Base::Defaults)
    }

    /// `EPICS_PVAS_INTF_ADDR_LIST`, `EPICS_PVAS_SERVER_PORT`, `EPICS_PVAS_BROADCAST_PORT`,
    /// `EPICS_PVAS_BEACON_ADDR_LIST`, `EPICS_PVAS_AUTO_BEACON_ADDR_LIST` (falling back to
    /// the `EPICS_PVA_*` names, as pvxs does).
    pub fn from_env() -> Self {
        Self::with_base(Base::Env)
    }

    /// Loopback only, random free ports, no beacons: for tests.
    pub fn isolated() -> Self {
        Self::with_base(Base::Isolated)
    }

    pub fn interfaces(mut self, addrs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.interfaces = Some(addrs.into_iter().map(Into::into).collect());
        self
    }

    pub fn beacon_destinations(
        mut self,
        addrs: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.beacon_destinations = Some(addrs.into_iter().map(Into::into).collect());
        self
    }

    /// TCP port; 0 picks a free one.
    pub fn tcp_port(mut self, port: u16) -> Self {
        self.tcp_port = Some(port);
        self
    }

    /// UDP (search) port; 0 picks a free one.
    pub fn udp_port(mut self, port: u16) -> Self {
        self.udp_port = Some(port);
        self
    }

    pub fn auto_beacon(mut self, on: bool) -> Self {
        self.auto_beacon = Some(on);
        self
    }

    fn to_wire(&self) -> WireServerSettings {
        WireServerSettings {
            base: match self.base {
                Base::Defaults => 0,
                Base::Env => 1,
                Base::Isolated => 2,
            },
            set_interfaces: self.interfaces.is_some(),
            interfaces: self.interfaces.clone().unwrap_or_default(),
            set_beacon_destinations: self.beacon_destinations.is_some(),
            beacon_destinations: self.beacon_destinations.clone().unwrap_or_default(),
            set_tcp_port: self.tcp_port.is_some(),
            tcp_port: self.tcp_port.unwrap_or_default(),
            set_udp_port: self.udp_port.is_some(),
            udp_port: self.udp_port.unwrap_or_default(),
            set_auto_beacon: self.auto_beacon.is_some(),
            auto_beacon: self.auto_beacon.unwrap_or_default(),
        }
    }
}

/// What a server actually uses, with ports resolved once it is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub interfaces: Vec<String>,
    pub beacon_destinations: Vec<String>,
    pub tcp_port: u16,
    pub udp_port: u16,
    pub auto_beacon: bool,
    /// `EPICS_PVA_*` settings that let a client (pvget, p4p, ...) find this server.
    pub client_env: Vec<(String, String)>,
}

/// One connected PVAccess client, from pvxs's own server report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientInfo {
    /// `IP:port`.
    pub peer: String,
    /// Authentication method (`anonymous`, `ca`).
    pub method: String,
    /// The account the client claims (with `ca`; empty otherwise).
    pub account: String,
    /// Channels (PVs) open through this connection.
    pub channels: u32,
    /// Bytes sent to the client and received from it since it connected.
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// A pvxs PVAccess server. Stopped when dropped.
pub struct Server {
    inner: UniquePtr<PvServer>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

/// How long [`Server::start`] waits for the server to answer its own request.
const LOOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl Server {
    /// Builds (binds) a server; it serves nothing until [`Server::start`].
    pub fn new(config: &ServerConfig) -> Result<Self, PvaError> {
        let inner = bridge::server_new(&config.to_wire())
            .map_err(|e| PvaError::native("create server", e))?;
        Ok(Server { inner })
    }

    /// Starts serving. Then, unless `MXPVA_PVXS_LOOP=0` is set, asks the server for a
    /// way onto its own loop (cpp/loop.h), where the bridge's turns then make their
    /// posts and put replies (issue 23); without it they are handed over from the
    /// bridge's thread, which costs pvxs's thread more per post.
    pub fn start(&self) -> Result<(), PvaError> {
        self.inner
            .start()
            .map_err(|e| PvaError::native("start server", e))?;
        if std::env::var_os("MXPVA_PVXS_LOOP").is_some_and(|v| v == "0") {
            tracing::info!("MXPVA_PVXS_LOOP=0: posts and put replies are handed to pvxs's loop from the bridge's thread");
            return Ok(());
        }
        let asked = std::time::Instant::now();
        match self.inner.reach_loop(LOOP_TIMEOUT.as_secs_f64()) {
            Ok(1) => tracing::info!(
                took_ms = asked.elapsed().as_millis() as u64,
                "posts and put replies run on pvxs's server loop"
            ),
            Ok(2) => tracing::debug!(
                "another server of this process runs posts and put replies on its loop"
            ),
            Ok(_) => tracing::warn!(
                timeout_s = LOOP_TIMEOUT.as_secs_f64(),
                "the server did not answer its own request for its loop: posts and put replies are handed over from the bridge's thread (slower, still correct)"
            ),
            Err(e) => tracing::warn!(
                error = %e.what(),
                "could not ask the server for its loop: posts and put replies are handed over from the bridge's thread (slower, still correct)"
            ),
        }
        Ok(())
    }

    /// Whether this server's own loop makes the posts and put replies of the bridge's
    /// turns (see [`Server::start`]; one server of a process at a time).
    pub fn runs_posts_on_its_loop(&self) -> bool {
        self.inner.holds_loop()
    }

    pub fn stop(&self) -> Result<(), PvaError> {
        self.inner
            .stop()
            .map_err(|e| PvaError::native("stop server", e))
    }

    pub fn info(&self) -> Result<ServerInfo, PvaError> {
        let w = self
            .inner
            .info()
            .map_err(|e| PvaError::native("read server config", e))?;
        Ok(ServerInfo {
            interfaces: w.interfaces,
            beacon_destinations: w.beacon_destinations,
            tcp_port: w.tcp_port,
            udp_port: w.udp_port,
            auto_beacon: w.auto_beacon,
            client_env: w
                .client_env
                .iter()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    /// The connected clients, as pvxs's server report lists them. It runs on the
    /// server's own event loop and waits for it: call it from a task, never from a pvxs
    /// callback.
    pub fn clients(&self) -> Result<Vec<ClientInfo>, PvaError> {
        let wire = self
            .inner
            .clients()
            .map_err(|e| PvaError::native("read the server report", e))?;
        Ok(wire
            .into_iter()
            .map(|c| ClientInfo {
                peer: c.peer,
                method: c.method,
                account: c.account,
                channels: c.channels,
                bytes_sent: c.tx,
                bytes_received: c.rx,
            })
            .collect())
    }

    /// Serves `pv` under its name. A name already served is replaced.
    pub fn add_pv(&self, pv: &SharedPv) -> Result<(), PvaError> {
        self.add(pv.name(), pv.handle())
    }

    /// Serves the table `pv` under its name. A name already served is replaced.
    pub fn add_table(&self, pv: &TablePv) -> Result<(), PvaError> {
        self.add(pv.name(), pv.handle())
    }

    fn add(&self, name: &str, handle: &bridge::PvHandle) -> Result<(), PvaError> {
        self.inner
            .add_pv(name, handle)
            .map_err(|e| PvaError::native(format!("add PV {name}"), e))
    }

    pub fn remove_pv(&self, name: &str) -> Result<(), PvaError> {
        self.inner
            .remove_pv(name)
            .map_err(|e| PvaError::native(format!("remove PV {name}"), e))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.inner.stop();
    }
}
