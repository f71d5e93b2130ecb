//! The per-PV keys of other features on `[[discover]]` rules: `access_group` and
//! `access_level` (issue 13), `subscribe` and `linger` (issue 14). A rule puts them on
//! every PV it makes; `mxpva check` refuses a group the ACF does not define, naming the
//! rule; `mxpva discover --config` prints them on its `[[pv]]` tables. Real clients:
//! pvget, pvput and the simulator's own record of sessions and writes.

mod clients;

use std::time::{Duration, Instant};

use clients::clients;
use clients::plant::{test_dir, Plant};
use mxpva::sim::RemoteSim;

const ACF: &str = r#"
ASG(DEFAULT) {
    RULE(1, READ)
    RULE(1, WRITE)
}
ASG(LOCKED) {
    RULE(1, READ)
}
"#;

const CLIENT: &str = "mxpva-rule-keys";

use clients::mxpva_output as mxpva;

/// The config: SpeedSP made by a rule in group LOCKED, on demand; Running by a rule of
/// the defaults (DEFAULT, always).
fn config(endpoint: &str, locked_group: &str) -> String {
    format!(
        r#"[gateway]
endpoint = "http://{endpoint}"
client_name = "{CLIENT}"

[alarms]
enabled = false

[access]
file = "mxpva.acf"

[defaults]
writable = true

[[discover]]
objects = "Pump001"
attributes = ["SpeedSP"]
access_group = "{locked_group}"
access_level = 1
subscribe = "on_demand"
linger = "1s"

[[discover]]
objects = "Pump001"
attributes = ["Running"]
"#
    )
}

/// The (items, advised) of the bridge's session at the simulator.
async fn items(control: &RemoteSim) -> Option<(usize, usize)> {
    control
        .sessions()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.client_session_name == CLIENT && s.state == "Ready")
        .map(|s| (s.item_count, s.advised_count))
}

/// Waits (at most 20 s) until the bridge's session has `advised` items advised.
async fn advised(control: &RemoteSim, advised: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = items(control).await;
        if now.is_some_and(|n| n.1 == advised) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the session has (items, advised) {now:?}, expected {advised} advised"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_puts_its_access_group_and_subscribe_mode_on_its_pvs() {
    let mut plant = Plant::new("discover-keys-serve")
        .galaxy("discover_keys")
        .file("mxpva.acf", ACF)
        .start()
        .await;
    let control = plant.control().clone();
    let dir = plant.dir.clone();
    plant.write_config(&config(&plant.gateway, "LOCKED"));
    let config_file = plant.config.clone();

    // `mxpva discover --config` prints the rule's keys on the PVs it makes; the file
    // passes check.
    let (code, out, err) = mxpva(&["discover", "--config", config_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let speed = out
        .split("[[pv]]")
        .find(|t| t.contains("tag = \"Pump001.SpeedSP\""))
        .unwrap_or_else(|| panic!("no SpeedSP table:\n{out}"));
    for line in [
        "access_group = \"LOCKED\"",
        "access_level = 1",
        "subscribe = \"on_demand\"",
        "linger = \"1000ms\"",
    ] {
        assert!(speed.contains(line), "no {line:?} in:\n{speed}");
    }
    let running = out
        .split("[[pv]]")
        .find(|t| t.contains("tag = \"Pump001.Running\""))
        .unwrap_or_else(|| panic!("no Running table:\n{out}"));
    assert!(!running.contains("access_group"), "{running}");
    assert!(!running.contains("subscribe"), "{running}");
    let printed = dir.join("printed.toml");
    std::fs::write(&printed, &out).unwrap();
    let (code, _, err) = mxpva(&["check", "--config", printed.to_str().unwrap()]);
    assert_eq!(code, 0, "the printed mapping fails check: {err}\n{out}");

    plant.start_bridge();
    let env = plant.env.clone();
    let text = clients()
        .pvget_until(&env, &["Pump001:Running"], "Pump001:Running ")
        .await;
    assert!(text.contains("Pump001:Running "), "{text}");
    // The rule's on-demand PV is not advised while nobody watches it.
    advised(&control, 1, "only Running, always subscribed").await;

    // Its group LOCKED gives no WRITE: the put is denied and never reaches the gateway.
    let out = clients()
        .run("pvput", &env, &["Pump001:SpeedSP", "1500"])
        .await
        .text();
    assert!(
        out.contains("put denied by access security: Pump001:SpeedSP (group LOCKED, "),
        "{out}"
    );
    // The other rule's PV is in DEFAULT, which writes.
    let out = clients()
        .run("pvput", &env, &["Pump001:Running", "0"])
        .await
        .text();
    assert!(!out.contains("Error"), "{out}");
    let writes = control.writes().await.unwrap();
    assert!(
        !writes.iter().any(|w| w.reference.contains("SpeedSP")),
        "a denied put reached the simulator: {writes:?}"
    );
    assert!(
        writes.iter().any(|w| w.reference.contains("Running")),
        "the allowed put did not reach the simulator: {writes:?}"
    );
    // READ is allowed: a GET is the first client of the on-demand PV, which is advised
    // for it and un-advised after its linger.
    let text = clients()
        .pvget_value_until(&env, "Pump001:SpeedSP", "1200")
        .await;
    assert!(text.contains("1200"), "{text}");
    advised(&control, 1, "SpeedSP un-advised after its 1 s linger").await;
}

#[tokio::test]
async fn check_refuses_a_rule_group_the_acf_does_not_define_naming_the_rule() {
    let dir = test_dir("discover-keys-check");
    std::fs::write(dir.join("mxpva.acf"), ACF).unwrap();
    let config_file = dir.join("bridge.toml");
    std::fs::write(&config_file, config("127.0.0.1:1", "NOPE")).unwrap();
    let (code, out, err) = mxpva(&["check", "--config", config_file.to_str().unwrap()]);
    assert_eq!(code, 78, "{out}{err}");
    assert!(err.contains("NOPE"), "{err}");
    assert!(err.contains("discover[1]"), "{err}");
    assert!(err.contains("bridge.toml:"), "no file position: {err}");

    // A bad access_level or subscribe on a rule is refused at its position too.
    let bad = config("127.0.0.1:1", "LOCKED").replace("access_level = 1", "access_level = 7");
    std::fs::write(&config_file, bad).unwrap();
    let (code, _, err) = mxpva(&["check", "--config", config_file.to_str().unwrap()]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("access_level"), "{err}");
    let bad = config("127.0.0.1:1", "LOCKED").replace("\"on_demand\"", "\"sometimes\"");
    std::fs::write(&config_file, bad).unwrap();
    let (code, _, err) = mxpva(&["check", "--config", config_file.to_str().unwrap()]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("sometimes"), "{err}");
}
