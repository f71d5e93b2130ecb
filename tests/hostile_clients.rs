//! Hostile PVAccess clients against `mxpva run` (issue 10, "No input stops mxpva"):
//! `mxpva sim` and `mxpva run` as processes on loopback, a writable PV of every kind,
//! and real clients (p4p, pvput) putting what a client can send: NaN, infinities, huge
//! and negative numbers, fractions for integers, empty, non-UTF-8 and very long strings,
//! oversized arrays, a thousand puts at once, and clients that vanish mid-put.
//!
//! Through all of it the bridge keeps serving, its RSS stays bounded, and no refused put
//! reaches the gateway: the bridge's gateway session sees no event (every write brings an
//! OnWriteComplete, and this Galaxy has no dynamics) while refused puts are made.

mod clients;

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use clients::{clients, free_ports, pva_env, spawn_mxpva_logged, Env};
use mxpva::gateway::{ClientOptions, GatewayClient, MxArray, MxValue};
use mxpva::sim::{Faults, RemoteSim};
use serde_json::Value;

/// A Galaxy of writable attributes of every simulated type, none of which moves alone.
const GALAXY: &str = r#"
[galaxy]
name = "Hostile"
tick_ms = 100
first_update_delay_ms = 50
security_enabled = false

[auth]
mode = "open"

[[areas]]
name = "Area001"

[[objects]]
tag = "Hostile"
area = "Area001"
template = "$Hostile"

[[objects.attributes]]
name = "Dbl"
type = "Double"
initial = 2.0

[[objects.attributes]]
name = "Flt"
type = "Float"
initial = 2.5

[[objects.attributes]]
name = "Int"
type = "Integer"
initial = 7

[[objects.attributes]]
name = "Long"
type = "LongInteger"
initial = 8

[[objects.attributes]]
name = "Flag"
type = "Boolean"
initial = false

[[objects.attributes]]
name = "Text"
type = "String"
initial = "start"

[[objects.attributes]]
name = "When"
type = "Time"
initial = 2026-01-15T08:00:00Z

[[objects.attributes]]
name = "Span"
type = "ElapsedTime"
initial = 90.5

[[objects.attributes]]
name = "Dbls"
type = "Double"
array_length = 4
initial = [1.0, 2.0, 3.0, 4.0]

[[objects.attributes]]
name = "Ints"
type = "Integer"
array_length = 4
initial = [1, 2, 3, 4]

[[objects.attributes]]
name = "Texts"
type = "String"
array_length = 3
initial = ["a", "b", "c"]

[[objects.attributes]]
name = "Slow"
type = "Double"
initial = 0.0
"#;

/// Small caps, so that the test reaches each of them.
const CONFIG: &str = r#"
[gateway]
endpoint = "http://127.0.0.1:{port}"
client_name = "mxpva-hostile"
write_timeout = "30s"

[alarms]
enabled = false

[limits]
max_array_length = 16
max_string_length = 1000
max_puts_queued = 256
max_puts_per_pv = 8
max_puts_in_flight = 32

[defaults]
prefix = "H:"

[[pv]]
name = "Dbl"
tag = "Hostile.Dbl"
writable = true

[[pv]]
name = "DblI32"
tag = "Hostile.Dbl"
type = "int32"

[[pv]]
name = "DblF32"
tag = "Hostile.Dbl"
type = "float32"

[[pv]]
name = "Flt"
tag = "Hostile.Flt"
writable = true

[[pv]]
name = "IntF64"
tag = "Hostile.Int"
type = "float64"
writable = true

[[pv]]
name = "Long"
tag = "Hostile.Long"
writable = true

[[pv]]
name = "LongF64"
tag = "Hostile.Long"
type = "float64"
writable = true

[[pv]]
name = "Flag"
tag = "Hostile.Flag"
writable = true

[[pv]]
name = "Text"
tag = "Hostile.Text"
writable = true

[[pv]]
name = "When"
tag = "Hostile.When"
writable = true

[[pv]]
name = "Span"
tag = "Hostile.Span"
writable = true

[[pv]]
name = "Dbls"
tag = "Hostile.Dbls[]"
writable = true

[[pv]]
name = "Ints"
tag = "Hostile.Ints[]"
writable = true

[[pv]]
name = "Texts"
tag = "Hostile.Texts[]"
writable = true

[[pv]]
name = "Slow"
tag = "Hostile.Slow"
writable = true
"#;

const PVS: &[&str] = &[
    "H:Dbl",
    "H:Flt",
    "H:IntF64",
    "H:Long",
    "H:LongF64",
    "H:Flag",
    "H:Text",
    "H:When",
    "H:Span",
    "H:Dbls",
    "H:Ints",
    "H:Texts",
    "H:Slow",
];

/// Puts that must be refused: (PV, Python value, text the refusal must contain).
const REFUSED: &[(&str, &str, &str)] = &[
    (
        "H:Dbl",
        "float('nan')",
        "System Platform has no NaN or infinity",
    ),
    (
        "H:Dbl",
        "float('inf')",
        "System Platform has no NaN or infinity",
    ),
    (
        "H:Dbl",
        "float('-inf')",
        "System Platform has no NaN or infinity",
    ),
    // p4p turns 1e39 into a float32 infinity before sending.
    (
        "H:Flt",
        "1e39",
        "inf cannot be written: System Platform has no NaN or infinity",
    ),
    ("H:Flt", "float('nan')", "no NaN or infinity"),
    (
        "H:IntF64",
        "1e19",
        "10000000000000000000 is out of range for Integer (accepted -2147483648 to 2147483647)",
    ),
    ("H:IntF64", "-1e300", "out of range for Integer"),
    (
        "H:IntF64",
        "2.5",
        "2.5 is not a whole number: Integer takes whole numbers only",
    ),
    ("H:IntF64", "float('nan')", "NaN is not a whole number"),
    ("H:LongF64", "1e19", "out of range for LongInteger"),
    ("H:LongF64", "-9.3e18", "out of range for LongInteger"),
    ("H:Flag", "2", "2 is not a Boolean (accepted 0 or 1)"),
    ("H:Flag", "-1", "is not a Boolean (accepted 0 or 1)"),
    (
        "H:Text",
        "'x' * 70000",
        "string of 70000 bytes exceeds [limits] max_string_length 1000",
    ),
    (
        "H:Text",
        "'\\u00e9' * 501",
        "string of 1002 bytes exceeds [limits] max_string_length 1000",
    ),
    (
        "H:When",
        "'not a time'",
        "'not a time' is not an ISO 8601 time",
    ),
    ("H:When", "''", "is not an ISO 8601 time"),
    (
        "H:When",
        "'1600-12-31T23:59:59Z'",
        "is out of range for Time (accepted 1601-01-01",
    ),
    (
        "H:When",
        "'9' * 5000",
        "string of 5000 bytes exceeds [limits] max_string_length",
    ),
    (
        "H:Span",
        "1e30",
        "1e30 s is out of range for ElapsedTime (accepted 0 to 922337203685.4775 s)",
    ),
    ("H:Span", "1e300", "out of range for ElapsedTime"),
    ("H:Span", "-1.0", "-1 s is out of range for ElapsedTime"),
    ("H:Span", "float('inf')", "no NaN or infinity"),
    (
        "H:Dbls",
        "[0.0] * 100000",
        "array of 100000 elements exceeds [limits] max_array_length 16",
    ),
    ("H:Dbls", "[0.0] * 17", "array of 17 elements exceeds"),
    (
        "H:Dbls",
        "[1.0, float('nan')]",
        "element 1: NaN cannot be written",
    ),
    ("H:Ints", "[0] * 17", "array of 17 elements exceeds"),
    (
        "H:Texts",
        "['x' * 2000]",
        "element 0: string of 2000 bytes exceeds [limits] max_string_length",
    ),
    ("H:Texts", "['a'] * 1000", "array of 1000 elements exceeds"),
];

/// Puts that must be written, and the value System Platform then holds.
fn accepted() -> Vec<(&'static str, &'static str, &'static str, MxValue)> {
    let t1601 = UNIX_EPOCH - Duration::from_secs(11_644_473_600);
    vec![
        ("H:Dbl", "-1e300", "Hostile.Dbl", MxValue::Double(-1e300)),
        ("H:Flt", "3e38", "Hostile.Flt", MxValue::Float(3e38)),
        (
            "H:IntF64",
            "-2147483648.0",
            "Hostile.Int",
            MxValue::Int32(i32::MIN),
        ),
        (
            "H:Long",
            "2**63 - 1",
            "Hostile.Long",
            MxValue::Int64(i64::MAX),
        ),
        ("H:Flag", "1", "Hostile.Flag", MxValue::Bool(true)),
        (
            "H:Text",
            "'\\u00e9' * 500",
            "Hostile.Text",
            MxValue::String("é".repeat(500)),
        ),
        (
            "H:When",
            "'1601-01-01T00:00:00Z'",
            "Hostile.When",
            MxValue::Time(t1601),
        ),
        (
            "H:Span",
            "922337203685.0",
            "Hostile.Span",
            MxValue::Elapsed(Duration::from_secs(922_337_203_685)),
        ),
        (
            "H:Dbls",
            "[1e300, -0.0, 5e-324, 2.0]",
            "Hostile.Dbls[]",
            MxValue::Array(MxArray::Double(vec![1e300, -0.0, 5e-324, 2.0])),
        ),
        (
            "H:Ints",
            "[2**31 - 1, -2**31, 0, 1]",
            "Hostile.Ints[]",
            MxValue::Array(MxArray::Int32(vec![i32::MAX, i32::MIN, 0, 1])),
        ),
        (
            "H:Texts",
            "['', '\\u00e9', 'x' * 1000]",
            "Hostile.Texts[]",
            MxValue::Array(MxArray::String(vec![
                String::new(),
                "é".into(),
                "x".repeat(1000),
            ])),
        ),
    ]
}

/// p4p script: puts each (pv, Python value) of the JSON list in argv[1], one after the
/// other, and prints one JSON list of results: "ok" or the error text.
const P4P_PUTS: &str = r#"
import json, sys
from p4p.client.thread import Context
ctx = Context('pva')
out = []
for pv, expr in json.loads(sys.argv[1]):
    try:
        ctx.put(pv, eval(expr), timeout=20)
        out.append('ok')
    except Exception as e:
        out.append('%s: %s' % (type(e).__name__, e))
print(json.dumps(out))
"#;

/// p4p script: `argv[2]` puts at once over the PVs of the JSON list argv[1] (values 1,
/// 2, 3, ...), and a JSON list of results: "ok" or the error text.
const P4P_BURST: &str = r#"
import json, sys
from p4p.client.thread import Context
ctx = Context('pva')
pvs = json.loads(sys.argv[1])
n = int(sys.argv[2])
names = [pvs[i % len(pvs)] for i in range(n)]
values = [float(1 + i % 1000) for i in range(n)]
res = ctx.put(names, values, timeout=60, throw=False)
print(json.dumps(['ok' if r is None else '%s: %s' % (type(r).__name__, r) for r in res]))
"#;

/// p4p script: starts argv[2] puts on argv[1] and never waits for them to end.
const P4P_ABANDON: &str = r#"
import sys, time
from p4p.client.thread import Context
ctx = Context('pva')
n = int(sys.argv[2])
ctx.put([sys.argv[1]] * n, [float(100 + i) for i in range(n)], timeout=300, throw=False)
"#;

struct Plant {
    gateway: String,
    control: RemoteSim,
    _sim: tokio::process::Child,
    bridge: tokio::process::Child,
    log: PathBuf,
    env: Env,
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Plant {
    async fn start(name: &str) -> Plant {
        let dir = test_dir(name);
        let (gateway_port, _) = free_ports();
        let gateway = format!("127.0.0.1:{gateway_port}");
        let galaxy = dir.join("galaxy.toml");
        std::fs::write(&galaxy, GALAXY).unwrap();
        let sim = spawn_mxpva_logged(
            &[
                "sim".as_ref(),
                "--listen".as_ref(),
                gateway.as_ref(),
                "--galaxy".as_ref(),
                galaxy.as_os_str(),
            ],
            &[],
            Some(&dir.join("sim.log")),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let control = loop {
            match RemoteSim::connect(&gateway, None).await {
                Ok(control) => break control,
                Err(e) if Instant::now() > deadline => panic!("mxpva sim did not come up: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let config = dir.join("bridge.toml");
        std::fs::write(&config, CONFIG.replace("{port}", &gateway_port.to_string())).unwrap();
        let log = dir.join("bridge.log");
        let _ = std::fs::remove_file(&log);
        let (tcp, udp) = free_ports();
        let (mut server_env, env) = pva_env(tcp, udp);
        server_env.push(("RUST_LOG".into(), clients::WRITE_LINES.into()));
        let bridge = spawn_mxpva_logged(
            &["run".as_ref(), "--config".as_ref(), config.as_os_str()],
            &server_env,
            Some(&log),
        );
        let plant = Plant {
            gateway,
            control,
            _sim: sim,
            bridge,
            log,
            env,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = plant.get(PVS).await;
            let waiting: Vec<_> = PVS
                .iter()
                .filter(|pv| {
                    got[**pv].get("error").is_some() || got[**pv]["alarm"]["severity"] != 0
                })
                .collect();
            if waiting.is_empty() {
                break plant;
            }
            assert!(
                Instant::now() < deadline,
                "PVs not served with Good values: {waiting:?}: {got}"
            );
        }
    }

    async fn get(&self, pvs: &[&str]) -> Value {
        clients().p4p_get(&self.env, pvs).await
    }

    /// Runs a p4p script that prints one JSON value.
    async fn p4p_json(&self, script: &str, args: &[&str]) -> Value {
        let run = clients().python(&self.env, script, args).await;
        serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("p4p printed no JSON ({e}): {}", run.text()))
    }

    /// The bridge is still running and serves every PV.
    async fn assert_serving(&mut self, after: &str) {
        assert!(
            matches!(self.bridge.try_wait(), Ok(None)),
            "mxpva exited after {after}; see {}",
            self.log.display()
        );
        let got = self.get(PVS).await;
        for pv in PVS {
            assert!(got[*pv].get("error").is_none(), "{pv} after {after}: {got}");
        }
    }

    /// The bridge's VmRSS in KiB.
    fn rss_kib(&self) -> u64 {
        let pid = self.bridge.id().expect("mxpva running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Events the simulator has produced for the bridge's session: every write that
    /// reaches it adds an OnWriteComplete.
    async fn bridge_events(&self) -> u64 {
        let sessions = self.control.sessions().await.unwrap();
        let mine: Vec<_> = sessions
            .iter()
            .filter(|s| s.client_session_name == "mxpva-hostile" && s.state == "Ready")
            .collect();
        assert_eq!(mine.len(), 1, "{sessions:?}");
        mine[0].last_worker_sequence
    }

    /// The attributes as System Platform holds them, read by a session of the test's own.
    async fn attributes(&self, tags: &[&str]) -> Vec<MxValue> {
        let client = GatewayClient::connect(&ClientOptions::plaintext(&self.gateway))
            .await
            .unwrap();
        let session = client.open_session("hostile-observer").await.unwrap();
        let server = session.register("hostile-observer").await.unwrap();
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let read = session
            .read_bulk(server, &tags, Duration::from_secs(5))
            .await
            .unwrap();
        let _ = session.close().await;
        read.into_iter().map(|r| r.outcome.unwrap().value).collect()
    }

    /// How many writes the bridge logged as sent for `pv`.
    fn writes_logged(&self, pv: &str) -> usize {
        let needle = format!("write pv={pv} ");
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    }
}

/// pvput with raw bytes as the value (pvput prints "Error: ..." and still exits 0).
async fn pvput_bytes(env: &Env, pv: &str, value: &[u8]) -> String {
    let out = clients()
        .command("pvput", env)
        .arg(pv)
        .arg(std::ffi::OsStr::from_bytes(value))
        .output()
        .await
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_never_stop_mxpva() {
    let mut plant = Plant::start("all").await;
    let rss_start = plant.rss_kib();
    let tags: Vec<&str> = [
        "Hostile.Dbl",
        "Hostile.Flt",
        "Hostile.Int",
        "Hostile.Long",
        "Hostile.Flag",
        "Hostile.Text",
        "Hostile.When",
        "Hostile.Span",
        "Hostile.Dbls[]",
        "Hostile.Ints[]",
        "Hostile.Texts[]",
    ]
    .to_vec();
    let before = plant.attributes(&tags).await;
    let events_before = plant.bridge_events().await;

    // 1. Every kind of bad value into every kind of PV: each refused, naming the PV and
    //    why; none reaches the gateway.
    let list: Vec<(&str, &str)> = REFUSED.iter().map(|(pv, v, _)| (*pv, *v)).collect();
    let results = plant
        .p4p_json(P4P_PUTS, &[&serde_json::to_string(&list).unwrap()])
        .await;
    for ((pv, value, expected), got) in REFUSED.iter().zip(results.as_array().unwrap()) {
        let got = got.as_str().unwrap();
        assert!(
            got.starts_with(&format!("RemoteError: {pv}: ")) && got.contains(expected),
            "put {value} to {pv}: expected a refusal with '{expected}', got '{got}'"
        );
    }
    // The same through pvput: issue 10's input 1, and a string that is not UTF-8.
    let out = clients()
        .run("pvput", &plant.env, &["H:Span", "1e30"])
        .await
        .text();
    assert!(
        out.contains(
            "Error: H:Span: 1e30 s is out of range for ElapsedTime (accepted 0 to 922337203685.4775 s)"
        ),
        "{out}"
    );
    let out = pvput_bytes(&plant.env, "H:Text", b"caf\xe9 \xff\xfe").await;
    assert!(out.contains("Error: H:Text: "), "{out}");
    assert!(
        out.contains("Error: H:Text: cannot read the put: text of 7 bytes is not valid UTF-8"),
        "{out}"
    );
    let out = clients()
        .run("pvput", &plant.env, &["H:Dbl", "nan"])
        .await
        .text();
    assert!(out.contains("Error: H:Dbl: NaN cannot be written"), "{out}");
    plant.assert_serving("refused puts").await;
    assert_eq!(
        plant.bridge_events().await,
        events_before,
        "a refused put reached the gateway"
    );
    assert_eq!(plant.attributes(&tags).await, before);
    for pv in PVS {
        assert_eq!(plant.writes_logged(pv), 0, "{pv}: a write was sent");
    }

    // 2. Extreme values that are valid: each written exactly as sent.
    let accepted = accepted();
    let list: Vec<(&str, &str)> = accepted.iter().map(|(pv, v, _, _)| (*pv, *v)).collect();
    let results = plant
        .p4p_json(P4P_PUTS, &[&serde_json::to_string(&list).unwrap()])
        .await;
    for ((pv, value, _, _), got) in accepted.iter().zip(results.as_array().unwrap()) {
        assert_eq!(got, "ok", "put {value} to {pv}");
    }
    let written = plant
        .attributes(&accepted.iter().map(|a| a.2).collect::<Vec<_>>())
        .await;
    for ((pv, value, _, expected), got) in accepted.iter().zip(&written) {
        assert_eq!(got, expected, "put {value} to {pv}");
    }

    // Gateway data a PV's configured type cannot show: that PV alone is INVALID, with
    // the reason; the PV of the attribute's own type serves the value.
    let got = plant.get(&["H:Dbl", "H:DblI32", "H:DblF32"]).await;
    assert_eq!(got["H:Dbl"]["value"], -1e300, "{got}");
    assert_eq!(got["H:Dbl"]["alarm"]["severity"], 0, "{got}");
    for (pv, reason) in [
        (
            "H:DblI32",
            "-1e300 cannot be served as int: -1e300 is out of range for int (accepted -2147483648 to 2147483647)",
        ),
        (
            "H:DblF32",
            "-1e300 cannot be served as float: -1e300 is out of range for float",
        ),
    ] {
        assert_eq!(got[pv]["alarm"]["severity"], 3, "{got}");
        let message = got[pv]["alarm"]["message"].as_str().unwrap();
        assert!(message.starts_with(reason), "{pv}: {message}");
    }

    // 3. Issue 10's input 2: Times before 1970 from the gateway are values, served as
    //    such (the put above wrote the FILETIME epoch; the data change brought it back).
    let got = plant.get(&["H:When"]).await;
    assert_eq!(got["H:When"]["value"], "1601-01-01T00:00:00.000Z", "{got}");
    plant
        .control
        .set_value("Hostile.When", "1500-06-01T12:00:00Z", None)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = plant.get(&["H:When"]).await;
        if got["H:When"]["value"] == "1500-06-01T12:00:00.000Z" {
            assert_eq!(got["H:When"]["alarm"]["severity"], 0, "{got}");
            break;
        }
        assert!(Instant::now() < deadline, "1500-06-01 not served: {got}");
    }
    plant.assert_serving("times before 1970").await;

    // 4. A thousand puts at once: each written or refused by a cap; the bridge serves.
    let burst_pvs = ["H:Dbl", "H:IntF64", "H:Span", "H:LongF64", "H:Flt"];
    let results = plant
        .p4p_json(
            P4P_BURST,
            &[&serde_json::to_string(&burst_pvs).unwrap(), "1000"],
        )
        .await;
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 1000);
    let mut ok = 0;
    let mut capped = 0;
    let mut by_cap = std::collections::BTreeMap::<&str, usize>::new();
    for (i, r) in results.iter().enumerate() {
        let r = r.as_str().unwrap();
        let pv = burst_pvs[i % burst_pvs.len()];
        if r == "ok" {
            ok += 1;
        } else if r.starts_with(&format!("RemoteError: {pv}: "))
            && (r.contains("([limits] max_puts_per_pv 8): put refused")
                || r.contains("([limits] max_puts_in_flight 32): put refused")
                || r.contains("([limits] max_puts_queued 256): put refused"))
        {
            capped += 1;
            let cap = ["max_puts_per_pv", "max_puts_in_flight", "max_puts_queued"]
                .into_iter()
                .find(|c| r.contains(c))
                .unwrap_or_default();
            *by_cap.entry(cap).or_default() += 1;
        } else {
            panic!("put {i} to {pv}: neither written nor refused by a cap: {r}");
        }
    }
    assert!(ok >= burst_pvs.len() - 1, "{ok} of 1000 written");
    eprintln!("1000 puts at once: {ok} written, {capped} refused by a cap: {by_cap:?}");
    plant.assert_serving("1000 puts at once").await;

    // 5. Clients that vanish mid-put: 8 puts on a PV whose writes System Platform
    //    confirms only after 5 s; the client is killed while they wait.
    plant
        .control
        .set_faults(&Faults {
            write_delay: Duration::from_secs(5),
            write_fault_prefix: "Hostile.Slow".into(),
            ..Faults::default()
        })
        .await
        .unwrap();
    for round in 0..2 {
        let logged = plant.writes_logged("H:Slow");
        let (client, _lines) =
            clients().spawn_lines("python", &plant.env, &["-c", P4P_ABANDON, "H:Slow", "8"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while plant.writes_logged("H:Slow") < logged + 8 {
            assert!(
                Instant::now() < deadline,
                "round {round}: the 8 puts were not sent"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client.kill();
        // While they wait, a ninth is refused by the per-PV cap...
        let out = clients()
            .run("pvput", &plant.env, &["H:Slow", "1"])
            .await
            .text();
        assert!(
            out.contains("Error: H:Slow: 8 puts already wait for System Platform on this PV ([limits] max_puts_per_pv 8): put refused"),
            "{out}"
        );
        // ...and once System Platform has answered the abandoned ones, puts pass again.
        let value = (42 + round).to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = clients()
                .run("pvput", &plant.env, &["H:Slow", &value])
                .await
                .text();
            if !out.contains("Error:") {
                break;
            }
            assert!(
                out.contains("max_puts_per_pv") && Instant::now() < deadline,
                "{out}"
            );
        }
        assert_eq!(
            plant.attributes(&["Hostile.Slow"]).await,
            [MxValue::Double(f64::from(42 + round))]
        );
    }
    plant.assert_serving("clients that vanished mid-put").await;

    // 6. Memory: oversized puts, refused, many times over.
    let list: Vec<(&str, &str)> = (0..200)
        .flat_map(|_| {
            [
                ("H:Dbls", "[0.5] * 100000"),
                ("H:Text", "'y' * 200000"),
                ("H:Texts", "['z' * 100] * 5000"),
            ]
        })
        .collect();
    let results = plant
        .p4p_json(P4P_PUTS, &[&serde_json::to_string(&list).unwrap()])
        .await;
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.as_str().unwrap().contains("exceeds [limits] max_")),
        "{results}"
    );
    plant.assert_serving("oversized puts").await;
    let rss_end = plant.rss_kib();
    eprintln!("mxpva VmRSS: {rss_start} KiB at start, {rss_end} KiB after the hostile load");
    assert!(
        rss_end < 512 * 1024,
        "mxpva grew to {rss_end} KiB (from {rss_start} KiB)"
    );
}
