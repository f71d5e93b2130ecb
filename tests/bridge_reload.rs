//! A mapping that changes while it serves: SIGHUP reloads the config of `mxpva run`.
//! `mxpva sim` and `mxpva run` as processes on loopback, the PVs read by p4p, pvmonitor
//! and pvget, the simulator's sessions read through its control service.
//!
//! - A reload that adds two PVs, removes one, changes one's units and another's type:
//!   the added ones serve, the removed one disconnects, the changed ones show their new
//!   units and type; the watchers of the PVs that stay see no disconnect and no INVALID,
//!   and their updates go on; the bridge's session is the same one, with the new items
//!   subscribed and the removed one unsubscribed (no full resubscribe).
//! - A reload of an invalid file (or of a file that is gone) keeps the mapping in
//!   service; the log names the error with its `file:line:col`.
//! - A put waiting for System Platform on a PV that a reload removes fails with a clear
//!   message.
//! - A removed PV's `:ACK` PV goes with it; the others stay.
//! - A reload that adds an `[[alarm_pv]]`, removes another and renames the table: the
//!   new alarm PV serves its alarm, the removed one (and its `:ACK`) disconnects, the old
//!   table name is gone and the new one lists the active alarms; the watched value PVs see
//!   no disconnect and no INVALID.
//! - A reload that narrows `[alarms] filter_prefix`: the feed restarts, the alarm left out
//!   leaves the table and its PV's alarm; the one kept stays.
//! - Changed `[gateway]` settings reconnect (a new session, the old one closed); changed
//!   `[server]` settings are named in a warning.

mod clients;

use std::time::{Duration, Instant};

use clients::clients;
use clients::lines::{Lines, P4P_LINES};
use clients::plant::Plant;
use mxpva::sim::Faults;
use serde_json::Value;

const HEAD: &str = r#"
[gateway]
endpoint = "http://{gateway}"
client_name = "mxpva-reload"
reconnect_initial = "100ms"
reconnect_max = "400ms"

[defaults]
prefix = "R:"

[alarms]
enabled = {alarms}
"#;

/// The mapping at start.
const BEFORE: &str = r#"
[[pv]]
name = "Level"
tag = "Tank001.Level"
type = "float64"
units = "m"

[[pv]]
name = "Temp"
tag = "Tank001.Temp"
type = "float64"
units = "C"

[[pv]]
name = "Flow"
tag = "Tank001.Flow"
type = "float64"

[[pv]]
name = "Pressure"
tag = "Tank001.Pressure"
type = "float64"
units = "bar"

[[pv]]
name = "Mode"
tag = "Tank001.Mode"
type = "int32"

[[pv]]
name = "SP"
tag = "Tank001.SP"
type = "float64"
writable = true
"#;

/// The mapping after the reload: Volume and Mass added, Flow removed, Pressure in kPa,
/// Mode served as float64. Level, Temp and SP stay as they were (their tables moved).
const AFTER: &str = r#"
[[pv]]
name = "Volume"
tag = "Tank001.Volume"
type = "float64"

[[pv]]
name = "Temp"
tag = "Tank001.Temp"
type = "float64"
units = "C"

[[pv]]
name = "Level"
tag = "Tank001.Level"
type = "float64"
units = "m"

[[pv]]
name = "Pressure"
tag = "Tank001.Pressure"
type = "float64"
units = "kPa"

[[pv]]
name = "Mode"
tag = "Tank001.Mode"
type = "float64"

[[pv]]
name = "SP"
tag = "Tank001.SP"
type = "float64"
writable = true

[[pv]]
name = "Mass"
tag = "Tank001.Mass"
type = "float64"
"#;

/// The bridge's config: HEAD and `mapping` (mappings that name alarms turn the feed on).
fn config(mapping: &str) -> String {
    let alarms = mapping.contains("alarms = [");
    format!("{}{mapping}", HEAD.replace("{alarms}", &alarms.to_string()))
}

impl Plant {
    async fn start(name: &str, mapping: &str) -> Plant {
        Plant::new(&format!("reload-{name}"))
            .galaxy("reload")
            .config(&config(mapping))
            .start()
            .await
    }

    async fn p4p_get(&self, pv: &str) -> Value {
        self.get(&[pv]).await
    }
}

impl Lines {
    /// Waits for `gone` to disconnect and for 5 updates each of R:Level and R:Temp since
    /// line `from`; none of theirs since then is a disconnect or an alarm.
    async fn gone_and_steady(&mut self, gone: &str, from: usize) {
        self.next(&format!("{gone} disconnects"), |v| {
            v["pv"] == gone && v["error"].is_string()
        })
        .await;
        for pv in ["R:Level", "R:Temp"] {
            while self.of(pv, from).len() < 5 {
                self.next(&format!("{pv} updates after the reload"), |v| v["pv"] == pv)
                    .await;
            }
            for v in self.of(pv, from) {
                assert!(v["error"].is_null(), "{pv} was disconnected: {v}");
                assert_eq!(v["sev"], 0, "{pv} flickered: {v}");
            }
        }
    }
}

fn units(v: &Value, pv: &str) -> String {
    v[pv]["display"]["units"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_removes_and_changes_pvs_and_the_rest_never_flicker() {
    let plant = Plant::start("diff", BEFORE).await;
    let text = clients()
        .pvget_until(&plant.env, &["R:Level"], "R:Level")
        .await;
    assert!(text.contains("R:Level"), "{text}");
    // Watchers of PVs that stay, and of the one to be removed.
    let (_p4p, lines) = clients().spawn_lines(
        "python",
        &plant.env,
        &["-u", "-c", P4P_LINES, "R:Level", "R:Temp", "R:Flow"],
    );
    let mut lines = Lines(lines, Vec::new());
    for pv in ["R:Level", "R:Temp", "R:Flow"] {
        lines
            .until(&format!("{pv} has a value"), |v| {
                v["pv"] == pv && v["sev"] == 0 && v["value"].is_number()
            })
            .await;
    }
    let (_pvmon, _first, mut pvmon) = clients().pvmonitor(&plant.env, "R:Level").await;
    let got = plant.p4p_get("R:Pressure").await;
    assert_eq!(units(&got, "R:Pressure"), "bar", "{got}");
    let before = plant.session("mxpva-reload").await;
    assert_eq!(before.item_count, 6, "{before:?}");

    let reload_at = lines.1.len();
    plant.write_config(&config(AFTER));
    plant.hangup();
    let log = plant.logged("config reloaded", 1).await;
    assert!(
        log.contains("added=2") && log.contains("removed=1") && log.contains("reopened=1"),
        "{log}"
    );

    // The removed PV disconnects; the watched PVs keep updating, never flickering.
    lines.gone_and_steady("R:Flow", reload_at).await;
    // pvmonitor saw updates of R:Level through the reload and never a disconnect.
    let mut shown = Vec::new();
    while let Ok(line) = pvmon.try_recv() {
        shown.push(line);
    }
    assert!(
        shown.iter().filter(|l| l.starts_with("R:Level")).count() > 0,
        "pvmonitor: {shown:#?}"
    );
    assert!(
        !shown
            .iter()
            .any(|l| l.contains("isconnect") || l.contains("INVALID")),
        "pvmonitor: {shown:#?}"
    );

    // The added PVs serve, the changed ones show their new units and type.
    let got = plant.p4p_get("R:Volume").await;
    assert_eq!(got["R:Volume"]["value"], 7.5, "{got}");
    let got = plant.p4p_get("R:Mass").await;
    assert_eq!(got["R:Mass"]["value"], 8.5, "{got}");
    let got = plant.p4p_get("R:Pressure").await;
    assert_eq!(units(&got, "R:Pressure"), "kPa", "{got}");
    let text = clients()
        .pvget_until(&plant.env, &["-v", "R:Mode"], "double value 2")
        .await;
    assert!(text.contains("double value 2"), "R:Mode as float64: {text}");
    let text = clients().run("pvget", &plant.env, &["R:Flow"]).await.text();
    assert!(!text.contains("R:Flow 2"), "R:Flow still served: {text}");

    // Same session: 6 - 1 removed + 2 added; Mode re-subscribed (one out, one in).
    let after = plant.session("mxpva-reload").await;
    assert_eq!(
        after.session_id, before.session_id,
        "a new session was opened"
    );
    assert_eq!(after.item_count, 7, "{after:?}");
    let log = std::fs::read_to_string(&plant.log).unwrap();
    assert_eq!(log.matches("gateway session up").count(), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_an_invalid_file_keeps_the_mapping_and_logs_where() {
    let plant = Plant::start("invalid", BEFORE).await;
    let text = clients()
        .pvget_until(&plant.env, &["R:Flow"], "R:Flow")
        .await;
    assert!(text.contains("R:Flow"), "{text}");
    // Line 17 of the file: a type that does not exist.
    let bad = BEFORE.replacen("type = \"float64\"", "type = \"float65\"", 1);
    plant.write_config(&config(&bad));
    let line = std::fs::read_to_string(&plant.config)
        .unwrap()
        .lines()
        .position(|l| l.contains("float65"))
        .unwrap()
        + 1;
    plant.hangup();
    let log = plant.logged("config reload refused", 1).await;
    let place = format!("bridge.toml:{line}:");
    assert!(log.contains(&place), "no {place} in:\n{log}");
    assert!(log.contains("float65"), "{log}");
    // Still serving the old mapping, every PV of it.
    for pv in ["R:Level", "R:Flow", "R:Mode"] {
        let text = clients().pvget_until(&plant.env, &[pv], pv).await;
        assert!(text.contains(pv), "{pv} after the refused reload: {text}");
    }
    // A file that is gone is refused the same way.
    std::fs::remove_file(&plant.config).unwrap();
    plant.hangup();
    let log = plant.logged("config reload refused", 2).await;
    assert!(log.contains("bridge.toml"), "{log}");
    let text = clients()
        .pvget_until(&plant.env, &["R:Flow"], "R:Flow")
        .await;
    assert!(
        text.contains("R:Flow"),
        "R:Flow after the refused reload: {text}"
    );
    // And a good file afterwards is taken.
    plant.write_config(&config(AFTER));
    plant.hangup();
    plant.logged("config reloaded", 1).await;
    let got = plant.p4p_get("R:Mass").await;
    assert_eq!(got["R:Mass"]["value"], 8.5, "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_waiting_on_a_pv_a_reload_removes_fails_clearly() {
    let plant = Plant::start("put", BEFORE).await;
    let text = clients().pvget_until(&plant.env, &["R:SP"], "R:SP").await;
    assert!(text.contains("R:SP"), "{text}");
    plant
        .control()
        .set_faults(&Faults {
            write_delay: Duration::from_secs(60),
            write_fault_prefix: "Tank001.SP".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let env = plant.env.clone();
    let put = tokio::spawn(async move { clients().p4p_put(&env, "R:SP", "42.0").await });
    // The write is sent and waits for its OnWriteComplete.
    plant.logged("write pv=R:SP", 1).await;
    let without_sp = AFTER.replace(
        "[[pv]]\nname = \"SP\"\ntag = \"Tank001.SP\"\ntype = \"float64\"\nwritable = true\n",
        "",
    );
    assert!(!without_sp.contains("Tank001.SP"));
    plant.write_config(&config(&without_sp));
    plant.hangup();
    plant.logged("config reloaded", 1).await;
    let answer = tokio::time::timeout(Duration::from_secs(20), put)
        .await
        .expect("the put is answered")
        .unwrap();
    assert!(
        answer.contains("RemoteError") && answer.contains("PV removed by a config reload"),
        "{answer}"
    );
    // Nothing more is written to it: the bridge logs no further write.
    let log = std::fs::read_to_string(&plant.log).unwrap();
    let writes = log.lines().filter(|l| l.contains("write pv=R:SP")).count();
    assert_eq!(writes, 1, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_pv_takes_its_ack_pv_with_it_and_the_others_keep_theirs() {
    let named = |text: &str, pv: &str, alarm: &str| {
        text.replacen(
            &format!("name = \"{pv}\"\ntag = \"Tank001.{pv}\"\ntype = \"float64\"\n"),
            &format!(
                "name = \"{pv}\"\ntag = \"Tank001.{pv}\"\ntype = \"float64\"\nalarms = [\"Tank001.{alarm}\"]\n"
            ),
            1,
        )
    };
    let before = named(&named(BEFORE, "Flow", "Flow.Hi"), "Level", "Level.HiHi");
    assert!(before.contains("Flow.Hi") && before.contains("Level.HiHi"));
    let plant = Plant::start("ack", &before).await;
    for pv in ["R:Flow:ACK", "R:Level:ACK"] {
        let text = clients().pvget_until(&plant.env, &[pv], pv).await;
        assert!(text.contains(pv), "{pv} not served at start: {text}");
    }
    let after = named(AFTER, "Level", "Level.HiHi");
    assert!(!after.contains("Tank001.Flow"));
    plant.write_config(&config(&after));
    plant.hangup();
    plant.logged("acknowledgement PV removed", 1).await;
    let text = clients()
        .run("pvget", &plant.env, &["-w", "2", "R:Flow:ACK"])
        .await
        .text();
    assert!(text.contains("Timeout"), "R:Flow:ACK still served: {text}");
    let text = clients()
        .pvget_until(&plant.env, &["R:Level:ACK"], "R:Level:ACK")
        .await;
    assert!(text.contains("R:Level:ACK"), "R:Level:ACK went too: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_gateway_settings_reconnect_and_server_settings_are_named() {
    let plant = Plant::start("gateway", BEFORE).await;
    let text = clients()
        .pvget_until(&plant.env, &["R:Flow"], "R:Flow")
        .await;
    assert!(text.contains("R:Flow"), "{text}");
    let old = plant.session("mxpva-reload").await;
    let text = std::fs::read_to_string(&plant.config)
        .unwrap()
        .replace(
            "client_name = \"mxpva-reload\"",
            "client_name = \"mxpva-reloaded\"",
        )
        .replace("[defaults]", "[server]\nauto_beacon = false\n\n[defaults]");
    std::fs::write(&plant.config, text).unwrap();
    plant.hangup();
    let log = plant.logged("gateway session up", 2).await;
    assert!(log.contains("reconnect=true"), "{log}");
    assert!(
        log.contains("changed settings need a restart") && log.contains("[server]"),
        "{log}"
    );
    // A new session under the new name; the old one is closed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sessions = plant.control().sessions().await.unwrap();
        let new = sessions
            .iter()
            .any(|s| s.client_session_name == "mxpva-reloaded" && s.state == "Ready");
        let old_gone = sessions
            .iter()
            .all(|s| s.session_id != old.session_id || s.state != "Ready");
        if new && old_gone {
            break;
        }
        assert!(Instant::now() < deadline, "sessions: {sessions:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = plant.p4p_get("R:Flow").await;
    assert_eq!(got["R:Flow"]["value"], 3.0, "{got}");
}

/// `[alarms] table` (after the prefix; the head ends in `[alarms]`), the mapping, and one
/// `[[alarm_pv]]`.
fn with_alarm_pv(table: &str, alarm_pv: &str, alarm: &str) -> String {
    format!(
        "table = \"{table}\"\n{BEFORE}\n[[alarm_pv]]\nname = \"{alarm_pv}\"\n\
         alarms = [\"Tank001.{alarm}\"]\ntype = \"enum\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_and_removes_alarm_pvs_and_renames_the_table() {
    let before = with_alarm_pv("AlarmsA", "FlowAlarm", "Flow.Hi");
    let plant = Plant::with_two_alarms("alarm-pvs", &before, "R:AlarmsA").await;
    for pv in ["R:FlowAlarm", "R:FlowAlarm:ACK"] {
        let text = clients().pvget_until(&plant.env, &[pv], pv).await;
        assert!(text.contains(pv), "{pv} not served at start: {text}");
    }
    let (_p4p, lines) = clients().spawn_lines(
        "python",
        &plant.env,
        &["-u", "-c", P4P_LINES, "R:Level", "R:Temp", "R:FlowAlarm"],
    );
    let mut lines = Lines(lines, Vec::new());
    for pv in ["R:Level", "R:Temp"] {
        lines
            .until(&format!("{pv} has a value"), |v| {
                v["pv"] == pv && v["sev"] == 0 && v["value"].is_number()
            })
            .await;
    }
    lines
        .until("R:FlowAlarm shows its alarm", |v| {
            v["pv"] == "R:FlowAlarm" && v["sev"].as_i64().is_some_and(|s| s > 0)
        })
        .await;

    let reload_at = lines.1.len();
    plant.write_config(&config(&with_alarm_pv(
        "AlarmsB",
        "PressureAlarm",
        "Pressure.Hi",
    )));
    plant.hangup();
    let log = plant.logged("config reloaded", 1).await;
    assert!(!log.contains("need a restart"), "{log}");

    // The removed alarm PV disconnects (its `:ACK` and the old table name are gone); the
    // value PVs watched through the reload keep updating: no disconnect, no INVALID.
    lines.gone_and_steady("R:FlowAlarm", reload_at).await;
    for pv in ["R:FlowAlarm", "R:FlowAlarm:ACK", "R:AlarmsA"] {
        let text = clients()
            .run("pvget", &plant.env, &["-w", "2", pv])
            .await
            .text();
        assert!(text.contains("Timeout"), "{pv} still served: {text}");
    }
    // The added one serves its active alarm; the new table lists the active alarms.
    let text = clients()
        .pvget_until(&plant.env, &["R:PressureAlarm"], "UNACK_ALM")
        .await;
    assert!(text.contains("UNACK_ALM"), "R:PressureAlarm: {text}");
    let text = clients()
        .pvget_until(&plant.env, &["R:PressureAlarm:ACK"], "R:PressureAlarm:ACK")
        .await;
    assert!(text.contains("R:PressureAlarm:ACK"), "{text}");
    let text = plant.table_until("R:AlarmsB", "Pressure.Hi").await;
    assert!(
        text.contains("Flow.Hi") && text.contains("R:PressureAlarm"),
        "R:AlarmsB: {text}"
    );
}

impl Plant {
    /// Starts with `mapping`, raises Flow.Hi and Pressure.Hi, and waits until the table
    /// `table` lists both.
    async fn with_two_alarms(name: &str, mapping: &str, table: &str) -> Plant {
        let plant = Plant::start(name, mapping).await;
        for reference in [
            "Galaxy!Plant.Tank001.Flow.Hi",
            "Galaxy!Plant.Tank001.Pressure.Hi",
        ] {
            plant.control().raise_alarm(reference).await.unwrap();
        }
        let text = plant.table_until(table, "Pressure.Hi").await;
        assert!(text.contains("Flow.Hi"), "{table}: {text}");
        plant
    }

    /// The table `pv` as p4p reads it, polled until it holds `needle` (at most 20 s).
    async fn table_until(&self, pv: &str, needle: &str) -> String {
        self.get_until(pv, |t| t.contains(needle)).await
    }

    /// `pv` as p4p reads it (JSON), polled until `ok` accepts it (at most 20 s).
    async fn get_until(&self, pv: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.p4p_get(pv).await.to_string();
            if ok(&text) || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrower_filter_prefix_takes_the_alarms_it_leaves_out_away() {
    let mapping = with_alarm_pv("Alarms", "FlowAlarm", "Flow.Hi");
    let plant = Plant::with_two_alarms("filter", &mapping, "R:Alarms").await;
    let got = plant
        .get_until("R:Pressure", |t| t.contains("Hi alarm"))
        .await;
    assert!(
        got.contains("Hi alarm"),
        "R:Pressure shows its alarm: {got}"
    );

    let narrowed = mapping.replacen(
        "table = ",
        "filter_prefix = \"Galaxy!Plant.Tank001.Flow\"\ntable = ",
        1,
    );
    plant.write_config(&config(&narrowed));
    plant.hangup();
    plant.logged("alarm feed restarted", 1).await;
    let text = plant
        .get_until("R:Alarms", |t| !t.contains("Pressure.Hi"))
        .await;
    assert!(
        !text.contains("Pressure.Hi") && text.contains("Flow.Hi"),
        "R:Alarms after the reload: {text}"
    );
    let got = plant
        .get_until("R:Pressure", |t| !t.contains("Hi alarm"))
        .await;
    assert!(!got.contains("Hi alarm"), "R:Pressure: {got}");
    let text = plant
        .get_until("R:FlowAlarm", |t| t.contains("Hi alarm"))
        .await;
    assert!(text.contains("Hi alarm"), "R:FlowAlarm: {text}");
}
