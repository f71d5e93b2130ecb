//! Pieces shared by the benchmarks: where target/ is, building a C++ program against
//! the pvxs the crate links, and child processes spoken to by lines on stdin/stdout.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// target/bench/, created.
pub fn bench_dir() -> PathBuf {
    let out = target_dir().join("bench");
    std::fs::create_dir_all(&out).unwrap();
    out
}

/// Compiles benches/cpp/`name`.cpp against the same pvxs the crate links, into
/// target/bench/`name`.
pub fn build_cpp(name: &str) -> PathBuf {
    let exe = bench_dir().join(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("benches/cpp/{name}.cpp"));
    let mut cmd = Command::new(std::env::var("CXX").unwrap_or_else(|_| "c++".into()));
    cmd.args(["-O2", "-std=c++17", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src);
    if env!("MXPVA_PVXS_OLD_ABI") == "1" {
        cmd.arg("-D_GLIBCXX_USE_CXX11_ABI=0");
    }
    for dir in env!("MXPVA_PVXS_INCLUDE_DIRS").split(':') {
        cmd.arg(format!("-I{dir}"));
    }
    for dir in env!("MXPVA_PVXS_LIB_DIRS").split(':') {
        cmd.arg(format!("-L{dir}")).arg(format!("-Wl,-rpath,{dir}"));
    }
    cmd.args(["-lpvxs", "-lCom"]);
    let status = cmd.status().expect("run the C++ compiler");
    assert!(status.success(), "building {} failed", src.display());
    exe
}

/// A child process driven by lines: commands on stdin, answers on stdout.
pub struct Proc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Proc {
    /// Starts `exe` with no inherited EPICS_* variables, then `env`; stderr goes to
    /// `stderr` (a file) or is inherited.
    pub fn spawn_with(mut cmd: Command, env: &[(String, String)], stderr: Option<&Path>) -> Proc {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        match stderr {
            Some(path) => cmd.stderr(std::fs::File::create(path).unwrap()),
            None => cmd.stderr(Stdio::inherit()),
        };
        for (k, _) in std::env::vars() {
            if k.starts_with("EPICS_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Proc {
            child,
            stdin,
            lines,
        }
    }

    pub fn spawn(exe: &Path, args: &[String], env: &[(String, String)]) -> Proc {
        let mut cmd = Command::new(exe);
        cmd.args(args);
        Proc::spawn_with(cmd, env, None)
    }

    pub fn line(&mut self) -> String {
        self.lines
            .next()
            .expect("benchmark program ended early")
            .unwrap()
    }

    /// Lines up to and including the first that starts with `word`.
    pub fn expect(&mut self, word: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let line = self.line();
            let done = line.starts_with(word);
            before.push(line);
            if done {
                return before;
            }
        }
    }

    pub fn say(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn terminate(mut self, grace: std::time::Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        drop(self.stdin.take());
        let t0 = std::time::Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if t0.elapsed() > grace {
                let _ = self.child.kill();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16) {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let t0 = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(300), "nothing on {addr}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// PVAccess settings for one server and its clients on loopback ports the caller picks
/// now: `server` is the EPICS_PVAS_* environment, `client` the EPICS_PVA_* one.
pub struct Pva {
    pub tcp: u16,
    pub server: Vec<(String, String)>,
    pub client: Vec<(String, String)>,
}

pub fn pva_env() -> Pva {
    let (tcp, udp) = (free_port(), free_udp_port());
    let s = |k: &str, v: String| (k.to_string(), v);
    Pva {
        tcp,
        server: vec![
            s("EPICS_PVAS_INTF_ADDR_LIST", "127.0.0.1".into()),
            s("EPICS_PVAS_SERVER_PORT", tcp.to_string()),
            s("EPICS_PVAS_BROADCAST_PORT", udp.to_string()),
            s("EPICS_PVAS_BEACON_ADDR_LIST", "127.0.0.1".into()),
            s("EPICS_PVAS_AUTO_BEACON_ADDR_LIST", "NO".into()),
        ],
        client: vec![
            s("EPICS_PVA_ADDR_LIST", "127.0.0.1".into()),
            s("EPICS_PVA_AUTO_ADDR_LIST", "NO".into()),
            s("EPICS_PVA_BROADCAST_PORT", udp.to_string()),
            s("EPICS_PVA_SERVER_PORT", tcp.to_string()),
        ],
    }
}

/// Starts `mxpva sim` on `galaxy` on a free loopback port, its log (`RUST_LOG=warn`) into
/// `log`; returns it once it listens, with its address.
pub fn spawn_sim(galaxy: &Path, log: &Path) -> (Proc, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mxpva"));
    cmd.args(["sim", "--listen", &addr, "--galaxy"])
        .arg(galaxy)
        .env("RUST_LOG", "warn");
    let sim = Proc::spawn_with(cmd, &[], Some(log));
    wait_port(port);
    (sim, addr)
}

/// The unix time (ns) at the start of the first log line holding `needle`.
pub fn logged_at(log: &Path, needle: &str) -> Option<i64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains(needle))?;
    let mut parts = line.split('\u{1b}');
    let mut plain = parts.next().unwrap_or_default().to_string();
    for part in parts {
        plain += part.split_once('m').map_or(part, |(_, rest)| rest);
    }
    let stamp = humantime::parse_rfc3339(plain.split_whitespace().next()?).ok()?;
    Some(stamp.duration_since(UNIX_EPOCH).ok()?.as_nanos() as i64)
}

/// Attributes per object in the generated bench Galaxies (`O<k>.A<i>`).
pub const PER_OBJECT: usize = 100;

/// The tag of attribute `i` in [`write_bench_galaxy`]'s Galaxy.
pub fn bench_tag(i: usize) -> String {
    format!("O{}.A{}", i / PER_OBJECT, i % PER_OBJECT)
}

/// Writes `dir/file`: a simulator Galaxy of `n` Double attributes `O<i/100>.A<i%100>`,
/// 1 s tick, the given first-update delay; `extra(i)` is the rest of attribute i's table
/// (`initial = ...` or `dynamics = ...`, newline-terminated).
pub fn write_bench_galaxy(
    dir: &Path,
    file: &str,
    n: usize,
    first_update_delay_ms: u64,
    extra: impl Fn(usize) -> String,
) -> PathBuf {
    let mut t = format!(
        "[galaxy]\nname = \"Bench\"\ntick_ms = 1000\nfirst_update_delay_ms = {first_update_delay_ms}\n\
         security_enabled = false\n\n[[areas]]\nname = \"Area\"\n",
    );
    for i in 0..n {
        if i % PER_OBJECT == 0 {
            t += &format!(
                "\n[[objects]]\ntag = \"O{}\"\narea = \"Area\"\n",
                i / PER_OBJECT
            );
        }
        t += &format!(
            "[[objects.attributes]]\nname = \"A{}\"\ntype = \"Double\"\n{}",
            i % PER_OBJECT,
            extra(i)
        );
    }
    let path = dir.join(file);
    std::fs::write(&path, t).unwrap();
    path
}
