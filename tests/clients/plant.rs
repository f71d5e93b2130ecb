//! The one harness of the tests that start the simulator and the bridge as processes
//! (issue 26): a [`Plant`] is `mxpva sim` on a Galaxy fixture and `mxpva run` on a
//! mapping, on loopback ports of their own, with the clients' EPICS environment, both
//! logs, SIGHUP and the client helpers the tests share.
//!
//! ```ignore
//! let plant = Plant::new("reload-adds")
//!     .galaxy("tank")                      // tests/fixtures/galaxy/tank.toml
//!     .config(r#"
//!         [gateway]
//!         endpoint = "http://{gateway}"
//!         [[pv]]
//!         name = "R:Level"
//!         tag = "Tank001.Level"
//!     "#)
//!     .start()
//!     .await;
//! plant.served(&["R:Level"]).await;
//! ```
//!
//! In a config, `{gateway}` is the simulator's `127.0.0.1:port` and `{dir}` the test's
//! directory (under `CARGO_TARGET_TMPDIR`), where the Galaxy, the config, the logs and
//! the files given with [`PlantBuilder::file`] are written. A config with no `[gateway]`
//! table gets one naming the simulator.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mxpva::gateway::ApiKey;
use mxpva::sim::{RemoteSim, SessionStats};
use serde_json::Value;

use super::{clients, free_ports, pva_env, spawn_mxpva_logged, Env, Run};

/// A Galaxy fixture: `tests/fixtures/galaxy/<name>.toml`.
pub fn galaxy_fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/galaxy")
        .join(format!("{name}.toml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The demo's Galaxy, `config/sim-galaxy.toml`.
pub fn demo_galaxy() -> String {
    include_str!("../../config/sim-galaxy.toml").to_string()
}

/// A fresh directory for the test `name`.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct PlantBuilder {
    name: String,
    galaxy: Option<String>,
    admin_key: Option<String>,
    config: Option<String>,
    files: Vec<(String, String)>,
    bridge_env: Env,
    bridge_args: Vec<String>,
    gateway_down: bool,
    bridge_wrapper: Vec<String>,
    sim_in_process: bool,
}

impl PlantBuilder {
    /// The Galaxy of `tests/fixtures/galaxy/<fixture>.toml`.
    pub fn galaxy(mut self, fixture: &str) -> Self {
        self.galaxy = Some(galaxy_fixture(fixture));
        self
    }

    /// A Galaxy given as text: for one a test breaks or builds on purpose.
    pub fn galaxy_text(mut self, text: impl Into<String>) -> Self {
        self.galaxy = Some(text.into());
        self
    }

    /// The simulator's control service wants this API key (a Galaxy with `mode = "api_key"`).
    pub fn admin_key(mut self, key: &str) -> Self {
        self.admin_key = Some(key.to_string());
        self
    }

    /// The bridge's config (see the module's doc for `{gateway}` and `{dir}`).
    pub fn config(mut self, text: &str) -> Self {
        self.config = Some(text.to_string());
        self
    }

    /// A file written into the test's directory before anything starts (an ACF, a key).
    pub fn file(mut self, name: &str, text: &str) -> Self {
        self.files.push((name.to_string(), text.to_string()));
        self
    }

    /// An environment setting of the bridge (`RUST_LOG`, a key variable); `{dir}` in
    /// the value is the test's directory.
    pub fn bridge_env(mut self, name: &str, value: &str) -> Self {
        self.bridge_env.push((name.to_string(), value.to_string()));
        self
    }

    /// More arguments of `mxpva run` (`--log-format json`).
    pub fn bridge_arg(mut self, arg: &str) -> Self {
        self.bridge_args.push(arg.to_string());
        self
    }

    /// Run the bridge under a command (`unshare -m sh -c ... sh`): the wrapper's
    /// arguments, then the mxpva binary and its own. `{dir}` in them is the test's
    /// directory. The bridge's log then goes through a pipe the test copies.
    pub fn bridge_wrapper(mut self, command: &[&str]) -> Self {
        self.bridge_wrapper = command.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Serve the simulator in the test's process instead of as `mxpva sim`: for a test
    /// that drives it faster than its control service can ([`Plant::sim_handle`]).
    pub fn sim_in_process(mut self) -> Self {
        self.sim_in_process = true;
        self
    }

    /// Start the bridge with no simulator: its gateway port is free, nothing answers.
    /// [`Plant::start_sim`] brings the simulator up later.
    pub fn gateway_down(mut self) -> Self {
        self.gateway_down = true;
        self
    }

    pub async fn start(self) -> Plant {
        let dir = test_dir(&self.name);
        for (name, text) in &self.files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let galaxy = self
            .galaxy
            .expect("a Plant needs a Galaxy: .galaxy(fixture)");
        std::fs::write(dir.join("galaxy.toml"), &galaxy).unwrap();
        let (gateway_port, _) = free_ports();
        let (tcp, udp) = free_ports();
        let (mut server_env, env) = pva_env(tcp, udp);
        // Every put's `write` line, which tests read (a test's own RUST_LOG comes after).
        server_env.push(("RUST_LOG".into(), super::WRITE_LINES.into()));
        let dir_text = dir.display().to_string();
        server_env.extend(
            self.bridge_env
                .into_iter()
                .map(|(k, v)| (k, v.replace("{dir}", &dir_text))),
        );
        let mut plant = Plant {
            gateway: format!("127.0.0.1:{gateway_port}"),
            config: dir.join("bridge.toml"),
            log: dir.join("bridge.log"),
            sim_log: dir.join("sim.log"),
            dir,
            admin_key: self.admin_key,
            control: None,
            sim: None,
            bridge: None,
            server_env,
            bridge_args: self.bridge_args,
            bridge_wrapper: self.bridge_wrapper,
            sim_in_process: self.sim_in_process.then(InProcessSim::default),
            env,
        };
        if let Some(config) = &self.config {
            plant.write_config(config);
        }
        if !self.gateway_down {
            plant.start_sim().await;
        }
        if self.config.is_some() {
            plant.start_bridge();
        }
        plant
    }
}

/// The simulator and the bridge of one test; both are killed when it drops.
pub struct Plant {
    /// The test's directory.
    pub dir: PathBuf,
    /// The simulator's `127.0.0.1:port`.
    pub gateway: String,
    /// The bridge's config file and log, and the simulator's log.
    pub config: PathBuf,
    pub log: PathBuf,
    pub sim_log: PathBuf,
    /// The clients' settings to reach the bridge.
    pub env: Env,
    admin_key: Option<String>,
    control: Option<RemoteSim>,
    sim: Option<tokio::process::Child>,
    bridge: Option<tokio::process::Child>,
    server_env: Env,
    bridge_args: Vec<String>,
    bridge_wrapper: Vec<String>,
    sim_in_process: Option<InProcessSim>,
}

/// A simulator served in the test's process: its handle, and what stops it.
#[derive(Default)]
struct InProcessSim {
    handle: Option<mxpva::sim::SimHandle>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Plant {
    pub fn new(name: &str) -> PlantBuilder {
        PlantBuilder {
            name: name.to_string(),
            galaxy: None,
            admin_key: None,
            config: None,
            files: Vec::new(),
            bridge_env: Vec::new(),
            bridge_args: Vec::new(),
            gateway_down: false,
            bridge_wrapper: Vec::new(),
            sim_in_process: false,
        }
    }

    /// The simulator's control service.
    pub fn control(&self) -> &RemoteSim {
        self.control.as_ref().expect("the simulator runs")
    }

    /// The gateway port.
    pub fn gateway_port(&self) -> u16 {
        self.gateway.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The simulator served in the test's process ([`PlantBuilder::sim_in_process`]).
    pub fn sim_handle(&self) -> &mxpva::sim::SimHandle {
        self.sim_in_process
            .as_ref()
            .and_then(|s| s.handle.as_ref())
            .expect("a simulator in process")
    }

    /// Starts the simulator on the plant's gateway port, on `galaxy.toml` of its directory.
    pub async fn start_sim(&mut self) {
        if let Some(in_process) = &mut self.sim_in_process {
            let text = std::fs::read_to_string(self.dir.join("galaxy.toml")).unwrap();
            let galaxy = mxpva::sim::Galaxy::from_toml(&text, "galaxy.toml").unwrap();
            let listener = tokio::net::TcpListener::bind(&self.gateway).await.unwrap();
            let handle = mxpva::sim::SimHandle::new(galaxy, mxpva::sim::SimOptions::default());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(handle.clone().serve(listener, async move {
                let _ = stopped.await;
            }));
            in_process.handle = Some(handle);
            in_process.stop = Some(stop);
            let key = self.admin_key.as_deref().map(|k| ApiKey::new(k).unwrap());
            self.control = Some(
                RemoteSim::connect(&self.gateway, key.as_ref())
                    .await
                    .unwrap(),
            );
            return;
        }
        let key = self.admin_key.as_deref().map(|k| ApiKey::new(k).unwrap());
        let (sim, control) = super::start_sim(
            &self.gateway,
            &self.dir.join("galaxy.toml"),
            key.as_ref(),
            &self.sim_log,
        )
        .await;
        self.sim = Some(sim);
        self.control = Some(control);
    }

    /// Kills the simulator (the gateway goes away at once) and waits for its end.
    pub async fn kill_sim(&mut self) {
        self.control = None;
        if let Some(in_process) = &mut self.sim_in_process {
            in_process.handle = None;
            if let Some(stop) = in_process.stop.take() {
                let _ = stop.send(());
            }
        }
        if let Some(mut sim) = self.sim.take() {
            sim.kill().await.unwrap();
        }
    }

    /// Kills the simulator and starts it again on the same port: a gateway restart.
    pub async fn restart_sim(&mut self) {
        self.kill_sim().await;
        self.start_sim().await;
    }

    /// Replaces the simulator's Galaxy file and sends it SIGHUP: a deploy.
    pub fn deploy(&self, galaxy: &str) {
        std::fs::write(self.dir.join("galaxy.toml"), galaxy).unwrap();
        super::hangup(self.sim.as_ref().expect("the simulator runs"));
    }

    /// Starts `mxpva run` on the config file.
    pub fn start_bridge(&mut self) {
        if self.bridge_wrapper.is_empty() {
            let mut args: Vec<&std::ffi::OsStr> =
                vec!["run".as_ref(), "--config".as_ref(), self.config.as_os_str()];
            args.extend(
                self.bridge_args
                    .iter()
                    .map(|a| std::ffi::OsStr::new(a.as_str())),
            );
            self.bridge = Some(spawn_mxpva_logged(&args, &self.server_env, Some(&self.log)));
            return;
        }
        let dir = self.dir.display().to_string();
        let wrapper: Vec<String> = self
            .bridge_wrapper
            .iter()
            .map(|a| a.replace("{dir}", &dir))
            .collect();
        let mut bridge = tokio::process::Command::new(&wrapper[0])
            .args(&wrapper[1..])
            .arg(env!("CARGO_BIN_EXE_mxpva"))
            .args(["run", "--config"])
            .arg(&self.config)
            .args(&self.bridge_args)
            .envs(self.server_env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the bridge under {wrapper:?}: {e}"));
        // Through a pipe, copied by the test: limits the wrapper sets (a file size) do
        // not reach the log.
        let mut stderr = bridge.stderr.take().unwrap();
        let log = self.log.clone();
        tokio::spawn(async move {
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .await
                .unwrap();
            let _ = tokio::io::copy(&mut stderr, &mut file).await;
        });
        self.bridge = Some(bridge);
    }

    /// The bridge's process id.
    pub fn bridge_pid(&self) -> u32 {
        self.bridge
            .as_ref()
            .and_then(|b| b.id())
            .expect("the bridge runs")
    }

    /// The bridge's process.
    pub fn bridge(&mut self) -> &mut tokio::process::Child {
        self.bridge.as_mut().expect("the bridge runs")
    }

    /// Writes the bridge's config (see the module's doc for `{gateway}` and `{dir}`).
    pub fn write_config(&self, text: &str) {
        let mut text = text
            .replace("{gateway}", &self.gateway)
            .replace("{dir}", &self.dir.display().to_string());
        if !text.lines().any(|l| l.trim() == "[gateway]") {
            text = format!(
                "[gateway]\nendpoint = \"http://{}\"\n\n{text}",
                self.gateway
            );
        }
        std::fs::write(&self.config, text).unwrap();
    }

    /// A signal to the simulator (`-STOP`, `-CONT`).
    pub fn signal_sim(&self, signal: &str) {
        super::send_signal(self.sim.as_ref().expect("the simulator runs"), signal);
    }

    /// Another `mxpva run` on the same simulator, on PVAccess ports of its own: its config
    /// (`{gateway}` and `{dir}` as for the plant's), its log `<name>.log`, and
    /// environment settings of its own.
    pub fn extra_bridge(&self, name: &str, config: &str, env: &[(&str, &str)]) -> ExtraBridge {
        let path = self.dir.join(format!("{name}.toml"));
        let text = config
            .replace("{gateway}", &self.gateway)
            .replace("{dir}", &self.dir.display().to_string());
        std::fs::write(&path, text).unwrap();
        let log = self.dir.join(format!("{name}.log"));
        let (tcp, udp) = free_ports();
        let (mut server_env, client_env) = pva_env(tcp, udp);
        server_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let process = spawn_mxpva_logged(
            &["run".as_ref(), "--config".as_ref(), path.as_os_str()],
            &server_env,
            Some(&log),
        );
        ExtraBridge {
            process,
            env: client_env,
            log,
        }
    }

    /// A signal to the bridge (`-STOP`, `-CONT`, `-TERM`).
    pub fn signal(&self, signal: &str) {
        super::send_signal(self.bridge.as_ref().expect("the bridge runs"), signal);
    }

    /// SIGHUP to the bridge.
    pub fn hangup(&self) {
        super::hangup(self.bridge.as_ref().expect("the bridge runs"));
    }

    /// Writes `config`, sends SIGHUP and waits until the log holds one more line with
    /// `needle` than before.
    pub async fn reload_config(&self, config: &str, needle: &str) -> String {
        let before = self.log_text().matches(needle).count();
        self.write_config(config);
        self.hangup();
        self.logged(needle, before + 1).await
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most 20 s) until the bridge's log holds `count` lines with `needle`.
    pub async fn logged(&self, needle: &str, count: usize) -> String {
        super::logged(&self.log, needle, count).await
    }

    /// The records of the audit trail `audit.jsonl` in the test's directory, once it holds
    /// `n` (at most 10 s).
    pub async fn audit(&self, n: usize) -> Vec<Value> {
        let path = self.dir.join("audit.jsonl");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let records: Vec<Value> = text
                .lines()
                .map(|l| {
                    serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("audit line {l:?} is not JSON: {e}"))
                })
                .collect();
            if records.len() >= n {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "the audit trail has {} records, not {n}:\n{text}",
                records.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The bridge's session at the simulator, once Ready (at most 20 s).
    pub async fn session(&self, client_name: &str) -> SessionStats {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let sessions = self.control().sessions().await.unwrap();
            if let Some(s) = sessions
                .iter()
                .find(|s| s.client_session_name == client_name && s.state == "Ready")
            {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no Ready session {client_name}: {sessions:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// p4p's get of `pvs`: per PV, its value as JSON or `{"error": ...}`.
    pub async fn get(&self, pvs: &[&str]) -> Value {
        clients().p4p_get(&self.env, pvs).await
    }

    /// Waits (at most 30 s) until p4p gets every one of `pvs` without an error.
    pub async fn served(&self, pvs: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.get(pvs).await;
            if pvs.iter().all(|pv| got[*pv].get("error").is_none()) {
                return got;
            }
            assert!(Instant::now() < deadline, "not every PV is served: {got}");
        }
    }

    /// Runs a client tool (`pvget`, `pvput`, `pvmonitor`, `pvinfo`) against the bridge.
    pub async fn run(&self, tool: &str, args: &[&str]) -> Run {
        clients().run(tool, &self.env, args).await
    }

    /// pvput `value` to `pv`; its output (pvput prints "Error: ..." and exits 0).
    pub async fn pvput(&self, pv: &str, value: &str) -> String {
        self.run("pvput", &[pv, value]).await.text()
    }

    /// p4p's put of `python_value` to `pv`: "ok" or the error p4p raised.
    pub async fn p4p_put(&self, pv: &str, python_value: &str) -> String {
        clients().p4p_put(&self.env, pv, python_value).await
    }
}

/// A bridge of [`Plant::extra_bridge`]; killed when it drops.
pub struct ExtraBridge {
    pub process: tokio::process::Child,
    /// The clients' settings to reach it.
    pub env: Env,
    pub log: PathBuf,
}
