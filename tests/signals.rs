//! Signals a daemon meets in service: SIGHUP (systemd's `reload`, a closed terminal) never
//! stops `mxpva run` (which reloads its config: tests/bridge_reload.rs), `mxpva sim` or
//! `mxpva demo` (which have no config file to reload and log so); SIGTERM stops them
//! gracefully with exit status 0. Checked with pvget and a p4p monitor. A SIGHUP while
//! `mxpva run` is still starting becomes a reload once it serves.

mod clients;

use std::path::Path;
use std::time::Duration;

use clients::plant::test_dir;
use clients::{
    clients, free_ports, logged, pva_env, send_signal, spawn_mxpva_logged, start_bridge,
};

const CONFIG: &str = r#"
[gateway]
endpoint = "http://127.0.0.1:1"
reconnect_initial = "100ms"
reconnect_max = "500ms"

[defaults]
prefix = "SIG:"

[[pv]]
name = "SP"
tag = "Pump001.SpeedSP"
type = "float64"
units = "rpm"
"#;

/// What `mxpva sim` and `mxpva demo` log on SIGHUP.
const NOTHING_TO_RELOAD: &str = "SIGHUP received: this command has no config file to reload";

/// Three SIGHUPs leave the process running and logged as `said`; then SIGTERM ends it
/// with 0.
async fn survives_hangups_then_stops(child: &mut tokio::process::Child, log: &Path, said: &str) {
    for n in 1..=3 {
        send_signal(child, "-HUP");
        logged(log, "SIGHUP", n).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP ended the process"
    );
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains(said), "no {said:?} in:\n{text}");
    send_signal(child, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("SIGTERM stops the process within 10 s")
        .unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_never_stops_the_bridge() {
    let dir = test_dir("signals-run");
    let config = dir.join("bridge.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let log = dir.join("bridge.log");
    let (mut bridge, env) = start_bridge(&config, &log);
    let text = clients()
        .pvget_until(&env, &["-v", "SIG:SP"], "units rpm")
        .await;
    assert!(text.contains("string units rpm"), "{text}");
    for n in 1..=3 {
        send_signal(&bridge, "-HUP");
        logged(&log, "SIGHUP", n).await;
    }
    // Still serving, the same PV.
    let text = clients()
        .pvget_until(&env, &["-v", "SIG:SP"], "units rpm")
        .await;
    assert!(text.contains("string units rpm"), "{text}");
    // Each SIGHUP reloaded the (unchanged) file: nothing added, removed or changed.
    let text = logged(&log, "config reloaded", 3).await;
    assert!(
        text.contains("added=0 removed=0 reopened=0 changed_in_place=0"),
        "{text}"
    );
    survives_hangups_then_stops(&mut bridge, &log, "SIGHUP received: reloading the config").await;
}

/// Opens the FIFO `path` for writing, which returns once a reader (mxpva reading its
/// config) has opened it, and writes `text` into it.
async fn feed_fifo(path: &Path, text: &'static str) {
    let path = path.to_path_buf();
    let open = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut fifo = std::fs::OpenOptions::new().write(true).open(&path)?;
        fifo.write_all(text.as_bytes())
    });
    tokio::time::timeout(Duration::from_secs(20), open)
        .await
        .expect("mxpva opens its config within 20 s")
        .unwrap()
        .expect("write the config into the FIFO");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_while_starting_is_a_reload_once_serving() {
    let dir = test_dir("signals-early");
    // The config is a FIFO: mxpva blocks reading it until the test writes, so the SIGHUP
    // lands while it is starting, before it serves.
    let config = dir.join("bridge.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&config)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let log = dir.join("bridge.log");
    let (mut bridge, env) = start_bridge(&config, &log);
    let path = config.clone();
    let reader_waits = tokio::task::spawn_blocking(move || {
        // Opening for writing returns once mxpva has the FIFO open to read.
        std::fs::OpenOptions::new().write(true).open(path)
    });
    let mut fifo = tokio::time::timeout(Duration::from_secs(20), reader_waits)
        .await
        .expect("mxpva opens its config within 20 s")
        .unwrap()
        .unwrap();
    send_signal(&bridge, "-HUP");
    {
        use std::io::Write;
        fifo.write_all(CONFIG.as_bytes()).unwrap();
    }
    drop(fifo);
    // The start-up SIGHUP becomes a reload once serving: mxpva reads the FIFO again
    // (after it has read the first writing to its end).
    logged(
        &log,
        "SIGHUP received during start-up: reloading the config",
        1,
    )
    .await;
    feed_fifo(&config, CONFIG).await;
    let text = clients()
        .pvget_until(&env, &["-v", "SIG:SP"], "units rpm")
        .await;
    assert!(text.contains("string units rpm"), "{text}");
    logged(&log, "config reloaded", 1).await;
    assert!(
        bridge.try_wait().unwrap().is_none(),
        "the start-up SIGHUP ended mxpva"
    );
    send_signal(&bridge, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), bridge.wait())
        .await
        .expect("SIGTERM stops the process within 10 s")
        .unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_never_stops_the_simulator() {
    let dir = test_dir("signals-sim");
    let log = dir.join("sim.log");
    let (port, _) = free_ports();
    let endpoint = format!("127.0.0.1:{port}");
    let mut sim = spawn_mxpva_logged(
        &["sim".as_ref(), "--listen".as_ref(), endpoint.as_ref()],
        &[],
        Some(&log),
    );
    logged(&log, "serving the MXAccess Gateway contract", 1).await;
    survives_hangups_then_stops(&mut sim, &log, NOTHING_TO_RELOAD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_never_stops_the_demo_and_its_monitors_stay_connected() {
    let dir = test_dir("signals-demo");
    let log = dir.join("demo.log");
    let (tcp, udp) = free_ports();
    let (server_env, env) = pva_env(tcp, udp);
    let mut demo = spawn_mxpva_logged(&["demo".as_ref()], &server_env, Some(&log));
    let mut watch = clients().p4p_watch(&env, &["DEMO:Pump001:Speed"]);
    watch
        .until(
            "DEMO:Pump001:Speed",
            "a Good value",
            Duration::from_secs(30),
            |s| s.message() == "Good",
        )
        .await;
    for n in 1..=3 {
        send_signal(&demo, "-HUP");
        logged(&log, "SIGHUP", n).await;
    }
    // Updates keep coming on the same connection, and none was a disconnect.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let s = watch
            .until(
                "DEMO:Pump001:Speed",
                "another update",
                Duration::from_secs(10),
                |s| !seen.contains(&s.v["timeStamp"].to_string()),
            )
            .await;
        assert!(s.error.is_none(), "{:?}", s.error);
        assert_eq!(s.message(), "Good");
        seen.push(s.v["timeStamp"].to_string());
    }
    survives_hangups_then_stops(&mut demo, &log, NOTHING_TO_RELOAD).await;
}

/// A log nobody reads any more (a closed pipe: journald restarted, a log shipper gone)
/// stops nothing: the lines are lost, the bridge serves on, takes a reload and stops
/// cleanly. (tracing-subscriber reports a failed write with `eprintln!`, which panics
/// when stderr cannot be written.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_pipe_closed_under_the_bridge_stops_nothing() {
    use tokio::io::AsyncBufReadExt;
    let dir = test_dir("signals-closed-log");
    let config = dir.join("bridge.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let (tcp, udp) = free_ports();
    let (server_env, env) = pva_env(tcp, udp);
    let mut bridge = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxpva"))
        .args(["run", "--config"])
        .arg(&config)
        .envs(server_env.iter().map(|(k, v)| (k, v)))
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(bridge.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("mxpva logs that it serves within 20 s")
            .unwrap()
            .expect("the log goes on until the PVs are served");
        if line.contains("serving PVs") {
            break;
        }
    }
    drop(lines);
    let text = clients()
        .pvget_until(&env, &["-v", "SIG:SP"], "units rpm")
        .await;
    assert!(text.contains("string units rpm"), "{text}");
    // A reload logs several lines, into the closed pipe; its new units show it was taken.
    std::fs::write(&config, CONFIG.replace("\"rpm\"", "\"rpm2\"")).unwrap();
    send_signal(&bridge, "-HUP");
    let text = clients()
        .pvget_until(&env, &["-v", "SIG:SP"], "units rpm2")
        .await;
    assert!(text.contains("string units rpm2"), "{text}");
    assert!(
        bridge.try_wait().unwrap().is_none(),
        "mxpva ended when its log could not be written"
    );
    send_signal(&bridge, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), bridge.wait())
        .await
        .expect("SIGTERM stops the process within 10 s")
        .unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
}
