//! mxpva as a site deploys it (issue 14): the shipped systemd unit verifies, `mxpva run`
//! tells systemd READY only once its PVs are served and keeps the watchdog fed, its
//! JSON log lines parse with the structured fields, and `mxpva check` lists the status
//! PVs.

mod clients;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clients::{clients, free_ports, pva_env, spawn_mxpva_logged};

const UNIT: &str = include_str!("../packaging/mxpva.service");
/// The `ExecStart` of the shipped unit.
const EXEC_START: &str = "ExecStart=/usr/local/bin/mxpva run --config /etc/mxpva/mxpva.toml";

fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("deploy-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(prefix: &str, gateway: &str, extra: &str) -> String {
    format!(
        r#"
[gateway]
endpoint = "http://{gateway}"
reconnect_initial = "100ms"
reconnect_max = "400ms"

[defaults]
prefix = "{prefix}:"

[[pv]]
name = "SpeedSP"
tag = "Pump001.SpeedSP"
type = "float64"
writable = true
{extra}
"#
    )
}

/// `mxpva sim` on a port of its own (its log in `dir`); it and its `host:port`.
async fn start_sim(dir: &Path) -> (tokio::process::Child, String) {
    let (gateway_port, _) = free_ports();
    let gateway = format!("127.0.0.1:{gateway_port}");
    let galaxy = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim-galaxy.toml");
    let (sim, _control) =
        clients::start_sim(&gateway, galaxy.as_ref(), None, &dir.join("sim.log")).await;
    (sim, gateway)
}

#[test]
fn the_shipped_unit_passes_systemd_analyze_verify() {
    let Ok(version) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        println!(
            "SKIPPED: systemd-analyze is not installed (Debian package `systemd`): \
             packaging/mxpva.service was not verified"
        );
        return;
    };
    println!(
        "{}",
        String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or("")
    );
    // `verify` checks that ExecStart's binary exists: verify the unit as shipped with
    // ExecStart pointing at the binary under test, and nothing else changed.
    assert_eq!(
        UNIT.lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect::<Vec<_>>(),
        [EXEC_START],
        "the shipped ExecStart"
    );
    let binary = env!("CARGO_BIN_EXE_mxpva");
    let unit = UNIT.replace(
        EXEC_START,
        &EXEC_START.replace("/usr/local/bin/mxpva", binary),
    );
    let changed: Vec<(&str, &str)> = UNIT
        .lines()
        .zip(unit.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(UNIT.lines().count(), unit.lines().count());
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=mxpva",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(key)), "{key}");
    }
    let dir = test_dir("unit");
    let path = dir.join("mxpva.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // Unknown keys and bad values are only warnings: there must be none about the unit.
    let about_unit: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("mxpva.service"))
        .collect();
    assert!(about_unit.is_empty(), "{text}");
}

/// Receives sd_notify datagrams until one holds `line`; returns every message received.
async fn notified(sock: &tokio::net::UnixDatagram, line: &str, within: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Ok(r) => r.unwrap(),
            Err(_) => panic!("no {line:?} within {within:?}; received {seen:?}"),
        };
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        let done = msg.lines().any(|l| l == line);
        seen.push(msg);
        if done {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_notifies_ready_once_serving_and_keeps_the_watchdog_fed() {
    let dir = test_dir("notify");
    let (_sim, gateway) = start_sim(&dir).await;
    let config_path = dir.join("bridge.toml");
    std::fs::write(&config_path, config("NT", &gateway, "")).unwrap();

    let socket_path = dir.join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let (tcp, udp) = free_ports();
    let (mut server_env, env) = pva_env(tcp, udp);
    server_env.push(("NOTIFY_SOCKET".into(), socket_path.display().to_string()));
    // 400 ms: WATCHDOG=1 every 200 ms.
    server_env.push(("WATCHDOG_USEC".into(), "400000".into()));
    let bridge = spawn_mxpva_logged(
        &["run".as_ref(), "--config".as_ref(), config_path.as_os_str()],
        &server_env,
        Some(&dir.join("bridge.log")),
    );
    let before = notified(&sock, "READY=1", Duration::from_secs(30)).await;
    // Right after READY the PVs answer, the gateway session is up.
    let out = clients()
        .run("pvget", &env, &["NT:mxpva:Gateway", "NT:SpeedSP"])
        .await
        .text();
    assert!(
        out.contains("NT:mxpva:Gateway") && out.contains("Up"),
        "{out}"
    );
    assert!(
        out.contains("NT:SpeedSP") && !out.contains("Timeout"),
        "{out}"
    );
    let ready = before.last().unwrap();
    assert!(
        ready.contains("STATUS=serving 1 PVs, gateway up"),
        "{before:?}"
    );
    // The watchdog keeps being fed.
    let started = Instant::now();
    for _ in 0..5 {
        notified(&sock, "WATCHDOG=1", Duration::from_secs(5)).await;
    }
    println!("5 WATCHDOG=1 in {:?}", started.elapsed());
    // A reload says RELOADING, then READY again.
    clients::send_signal(&bridge, "-HUP");
    let reload = notified(&sock, "RELOADING=1", Duration::from_secs(10)).await;
    assert!(
        reload.last().unwrap().contains("MONOTONIC_USEC="),
        "{reload:?}"
    );
    notified(&sock, "READY=1", Duration::from_secs(10)).await;
    // SIGTERM: STOPPING=1, then a clean exit.
    clients::send_signal(&bridge, "-TERM");
    notified(&sock, "STOPPING=1", Duration::from_secs(10)).await;
    let mut bridge = bridge;
    let status = tokio::time::timeout(Duration::from_secs(10), bridge.wait())
        .await
        .expect("mxpva stops")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// Waits (at most 20 s) until `log` has a line `pred` accepts; returns all lines.
async fn log_lines(log: &Path, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut text = std::fs::read_to_string(log).unwrap_or_default();
        // Whole lines only: the last one may be being written.
        text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
        if text.lines().any(&pred) {
            return text.lines().map(str::to_string).collect();
        }
        assert!(Instant::now() < deadline, "no log line {what}:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn parse_all(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v.is_object(), "{l}");
            assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_parse_and_carry_the_structured_fields() {
    let dir = test_dir("json");
    let (_sim, gateway) = start_sim(&dir).await;
    let config_path = dir.join("bridge.toml");
    // The file says text; the command line wins.
    let extra = "[log]\nformat = \"text\"\n";
    std::fs::write(&config_path, config("JS", &gateway, extra)).unwrap();
    let (tcp, udp) = free_ports();
    let (mut server_env, env) = pva_env(tcp, udp);
    // pvxs's own lines (EPICS errlog) are objects too.
    server_env.push(("PVXS_LOG".into(), "pvxs.udp.setup=INFO".into()));
    server_env.push(("RUST_LOG".into(), clients::WRITE_LINES.into()));
    let log = dir.join("bridge.log");
    let _bridge = spawn_mxpva_logged(
        &[
            "run".as_ref(),
            "--config".as_ref(),
            config_path.as_os_str(),
            "--log-format".as_ref(),
            "json".as_ref(),
        ],
        &server_env,
        Some(&log),
    );
    let out = clients()
        .pvget_until(&env, &["JS:mxpva:Gateway"], "Up")
        .await;
    assert!(out.contains("Up"), "{out}");
    let out = clients()
        .run("pvput", &env, &["JS:SpeedSP", "321"])
        .await
        .text();
    assert!(!out.contains("Error"), "{out}");
    let lines = log_lines(&log, "of the put", |l| l.contains("JS:SpeedSP")).await;
    let objects = parse_all(&lines);
    let put = objects
        .iter()
        .find(|o| o["pv"] == "JS:SpeedSP" && o["message"] == "write")
        .unwrap_or_else(|| panic!("no write line with a pv field: {lines:#?}"));
    assert_eq!(put["tag"], "Pump001.SpeedSP", "{put}");
    assert!(put["account"].is_string(), "{put}");
    assert!(
        objects.iter().any(|o| o["session"].is_string()),
        "a line with the session: {lines:#?}"
    );
    assert!(
        objects
            .iter()
            .any(|o| o["target"] == "pvxs" && o["logger"] == "pvxs.udp.setup"),
        "a line of pvxs: {lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_in_the_file_and_status_prefix_off() {
    let dir = test_dir("json-file");
    let config_path = dir.join("bridge.toml");
    let extra = "[log]\nformat = \"json\"\n[status]\nprefix = \"\"\n";
    // No gateway: the PVs are served INVALID and the log says why.
    std::fs::write(&config_path, config("JF", "127.0.0.1:1", extra)).unwrap();
    let (tcp, udp) = free_ports();
    let (server_env, env) = pva_env(tcp, udp);
    let log = dir.join("bridge.log");
    let _bridge = spawn_mxpva_logged(
        &["run".as_ref(), "--config".as_ref(), config_path.as_os_str()],
        &server_env,
        Some(&log),
    );
    let lines = log_lines(&log, "gateway connection lost", |l| {
        l.contains("gateway connection lost")
    })
    .await;
    parse_all(&lines);
    // The mapped PV is served; no status PV is.
    let got = clients()
        .p4p_get(&env, &["JF:SpeedSP", "JF:mxpva:Gateway"])
        .await;
    assert!(got["JF:SpeedSP"].get("error").is_none(), "{got}");
    assert!(got["JF:mxpva:Gateway"].get("error").is_some(), "{got}");

    // `--log-format text` wins over the file.
    let log = dir.join("text.log");
    let (tcp, udp) = free_ports();
    let (server_env, _) = pva_env(tcp, udp);
    let _text = spawn_mxpva_logged(
        &[
            "run".as_ref(),
            "--config".as_ref(),
            config_path.as_os_str(),
            "--log-format".as_ref(),
            "text".as_ref(),
        ],
        &server_env,
        Some(&log),
    );
    let lines = log_lines(&log, "serving PVs", |l| l.contains("serving PVs")).await;
    let line = lines.iter().find(|l| l.contains("serving PVs")).unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(line).is_err(),
        "{line}"
    );
    assert!(line.contains("INFO"), "{line}");
}

#[test]
fn check_lists_the_status_pvs_and_the_log_format() {
    let dir = test_dir("check");
    let path = dir.join("site.toml");
    let run = |text: &str| {
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxpva"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let out = run(&config("CK", "127.0.0.1:5000", ""));
    for name in mxpva::config::STATUS_PVS {
        assert!(
            out.contains(&format!("CK:mxpva:{name} (status)")),
            "{name}:\n{out}"
        );
    }
    let under = format!(
        "status:    {} PVs under CK:mxpva:",
        mxpva::config::STATUS_PVS.len()
    );
    assert!(out.contains(&under), "{out}");
    assert!(out.contains("; log text"), "{out}");
    let out = run(&config(
        "CK",
        "127.0.0.1:5000",
        "[status]\nprefix = \"\"\n[log]\nformat = \"json\"\n",
    ));
    assert!(
        out.contains("status:    off (no status PVs); log json"),
        "{out}"
    );
    assert!(!out.contains("(status)"), "{out}");
}

#[test]
fn an_unknown_log_format_is_refused_by_name() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxpva"))
        .args(["run", "--config", "config/demo.toml", "--log-format", "xml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--log-format")
            && err.contains("unknown log format `xml`: use `text` or `json`"),
        "{err}"
    );
}
