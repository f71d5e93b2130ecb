//! The bridge end to end, as a site runs it: `mxpva sim` (the gateway) and `mxpva run`
//! as separate processes on loopback, read and written with real PVAccess clients
//! (p4p, pvget, pvput, pvmonitor, pvinfo, pvapy). The simulator is driven through its
//! control service, and checked through a gateway session of the test's own.

mod clients;

use std::time::{Duration, Instant, SystemTime};

use clients::plant::{demo_galaxy, Plant};
use clients::{clients, Seen, Watch};
use mxpva::gateway::{ClientOptions, GatewayClient, MxValue, Quality};
use mxpva::sim::{Faults, SessionStats};
use serde_json::Value;

/// The mapping under test: every MXAccess type the simulator has, metadata, both
/// timestamp sources, writable and refused attributes, and a tag that does not exist.
const CONFIG: &str = r#"
[gateway]
endpoint = "http://{gateway}"
client_name = "mxpva-e2e"
reconnect_initial = "100ms"
reconnect_max = "400ms"
write_timeout = "1500ms"

[defaults]
prefix = "E2E:"

[[pv]]
name = "Speed"
tag = "Pump001.Speed"
type = "float64"
units = "rpm"
precision = 1
description = "Pump speed"
display = { low = 0.0, high = 3000.0 }

[[pv]]
name = "SpeedRx"
tag = "Pump001.Speed"
timestamp = "receive"

[[pv]]
name = "SpeedSP"
tag = "Pump001.SpeedSP"
type = "float64"
control = { low = 0.0, high = 3000.0 }
writable = true

[[pv]]
name = "Running"
tag = "Pump001.Running"
choices = ["Stopped", "Running"]
writable = true

[[pv]]
name = "RunningBool"
tag = "Pump001.Running"
type = "bool"

[[pv]]
name = "Mode"
tag = "Pump001.Mode"
writable = true

[[pv]]
name = "Starts"
tag = "Pump001.Starts"

[[pv]]
name = "Vibration"
tag = "Pump001.Vibration"

[[pv]]
name = "Totalizer"
tag = "Tank001.Totalizer"

[[pv]]
name = "LastMaintenance"
tag = "Pump001.LastMaintenance"

[[pv]]
name = "RunTime"
tag = "Pump001.RunTime"

[[pv]]
name = "Profile"
tag = "Line001.Profile[]"

[[pv]]
name = "Recipe"
tag = "Line001.Recipe[]"
writable = true

[[pv]]
name = "MaxSpeedText"
tag = "Pump001.MaxSpeed"
type = "string"
writable = true

[[pv]]
name = "Position"
tag = "Valve001.Position"
writable = true

[[pv]]
name = "Missing"
tag = "Pump009.Speed"
type = "float64"

[[pv]]
name = "BadIndex"
tag = "Line001.Profile[99]"
type = "float64"
"#;

/// Every PV of [`CONFIG`], and how many tags the bridge subscribes.
const PVS: &[&str] = &[
    "E2E:Speed",
    "E2E:SpeedRx",
    "E2E:SpeedSP",
    "E2E:Running",
    "E2E:RunningBool",
    "E2E:Mode",
    "E2E:Starts",
    "E2E:Vibration",
    "E2E:Totalizer",
    "E2E:LastMaintenance",
    "E2E:RunTime",
    "E2E:Profile",
    "E2E:Recipe",
    "E2E:MaxSpeedText",
    "E2E:Position",
    "E2E:Missing",
    "E2E:BadIndex",
];

const NO_ALARM: i64 = 0;
const MINOR: i64 = 1;
const INVALID: i64 = 3;
// alarm.status codes
const NONE: i64 = 0;
const DEVICE: i64 = 1;
const DRIVER: i64 = 2;
const CONF: i64 = 5;
const UNDEFINED: i64 = 6;

impl Plant {
    /// The demo Galaxy and the bridge on [`CONFIG`], serving.
    async fn start(name: &str) -> Plant {
        let plant = Plant::new(&format!("e2e-{name}"))
            .galaxy_text(demo_galaxy())
            .config(CONFIG)
            .start()
            .await;
        // Clients started before the server is up back off their searches; wait for it.
        plant.served(&["E2E:Speed"]).await;
        plant
    }

    fn watch(&self, pvs: &[&str]) -> Watch {
        clients().p4p_watch(&self.env, pvs)
    }

    /// The attribute as System Platform holds it, read by a session of the test's own.
    async fn attribute(&self, tag: &str) -> mxpva::gateway::ReadValue {
        let client = GatewayClient::connect(&ClientOptions::plaintext(self.gateway.as_str()))
            .await
            .unwrap();
        let session = client.open_session("e2e-observer").await.unwrap();
        let server = session.register("e2e-observer").await.unwrap();
        let read = session
            .read_bulk(server, &[tag.to_string()], Duration::from_secs(5))
            .await
            .unwrap();
        let _ = session.close().await;
        read.into_iter().next().unwrap().outcome.unwrap()
    }

    /// The bridge's sessions (the observer's are closed and gone).
    async fn bridge_sessions(&self) -> Vec<SessionStats> {
        self.control()
            .sessions()
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.client_session_name == "mxpva-e2e")
            .collect()
    }
}

fn is_good(s: &Seen) -> bool {
    s.severity() == Some(NO_ALARM) && s.message() == "Good"
}

/// The gateway time of a value as the PV's `timeStamp` carries it.
fn stamp(v: &Value) -> (i64, i64) {
    (
        v["timeStamp"]["secondsPastEpoch"].as_i64().unwrap(),
        v["timeStamp"]["nanoseconds"].as_i64().unwrap(),
    )
}

fn stamp_of(t: SystemTime) -> (i64, i64) {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    (d.as_secs() as i64, i64::from(d.subsec_nanos()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_is_served_with_its_metadata_and_source_time() {
    let plant = Plant::start("types").await;
    let c = plant.control();
    // Hold values the dynamics would otherwise move.
    for (tag, text) in [
        ("Pump001.Speed", "1234.5"),
        ("Pump001.Running", "false"),
        ("Pump001.Mode", "Manual"),
        ("Pump001.Starts", "7"),
        ("Pump001.Vibration", "2.5"),
        ("Tank001.Totalizer", "123456789012"),
        ("Pump001.LastMaintenance", "2026-03-04T05:06:07.25Z"),
        ("Pump001.RunTime", "90.5"),
        ("Line001.Profile", "1.5, 2, 3, 4, 5, 6, 7, 8.25"),
        ("Line001.Recipe", "11, 22, 33, 44"),
    ] {
        c.set_value(tag, text, None).await.unwrap();
    }
    let mut watch = plant.watch(&["E2E:Speed", "E2E:Profile"]);
    watch
        .until(
            "E2E:Speed",
            "the held value",
            Duration::from_secs(15),
            |s| s.v["value"] == 1234.5,
        )
        .await;
    watch
        .until(
            "E2E:Profile",
            "the held array",
            Duration::from_secs(15),
            |s| s.v["value"][7] == 8.25,
        )
        .await;
    let all = plant.get(PVS).await;
    let pv = |name: &str| -> &Value { &all[format!("E2E:{name}")] };
    let nt_scalar = "epics:nt/NTScalar:1.0";
    let nt_array = "epics:nt/NTScalarArray:1.0";
    for (name, id, value) in [
        ("Speed", nt_scalar, serde_json::json!(1234.5)),
        ("SpeedRx", nt_scalar, serde_json::json!(1234.5)),
        ("RunningBool", nt_scalar, serde_json::json!(false)),
        ("Mode", nt_scalar, serde_json::json!("Manual")),
        ("Starts", nt_scalar, serde_json::json!(7)),
        ("Vibration", nt_scalar, serde_json::json!(2.5)),
        ("Totalizer", nt_scalar, serde_json::json!(123456789012i64)),
        (
            "LastMaintenance",
            nt_scalar,
            serde_json::json!("2026-03-04T05:06:07.250Z"),
        ),
        ("RunTime", nt_scalar, serde_json::json!(90.5)),
        (
            "Profile",
            nt_array,
            serde_json::json!([1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.25]),
        ),
        ("Recipe", nt_array, serde_json::json!([11, 22, 33, 44])),
        (
            "Running",
            "epics:nt/NTEnum:1.0",
            serde_json::json!({"index": 0, "choices": ["Stopped", "Running"]}),
        ),
    ] {
        let v = pv(name);
        assert_eq!(v["_id"], id, "{name}: {v}");
        assert_eq!(v["value"], value, "{name}: {v}");
        assert_eq!(v["alarm"]["severity"], NO_ALARM, "{name}: {v}");
        assert_eq!(v["alarm"]["message"], "Good", "{name}: {v}");
    }
    // Metadata from the config.
    let speed = pv("Speed");
    assert_eq!(speed["display"]["units"], "rpm");
    assert_eq!(speed["display"]["precision"], 1);
    assert_eq!(speed["display"]["description"], "Pump speed");
    assert_eq!(speed["display"]["limitHigh"], 3000.0);
    assert_eq!(pv("SpeedSP")["control"]["limitHigh"], 3000.0);

    // Tags System Platform cannot resolve: those PVs alone are INVALID, with the reason.
    for (name, message) in [
        (
            "Missing",
            "Bad: configuration error: InvalidReference: object Pump009 does not exist",
        ),
        (
            "BadIndex",
            "Bad: configuration error: IndexOutOfRange: Line001.Profile[99]: elements are 1..=8",
        ),
    ] {
        let v = pv(name);
        assert_eq!(v["alarm"]["severity"], INVALID, "{v}");
        assert_eq!(v["alarm"]["status"], CONF, "{v}");
        assert_eq!(v["alarm"]["message"], message, "{v}");
    }

    // timeStamp is the source time System Platform reports, to the nanosecond...
    let source = plant.attribute("Pump001.Speed").await;
    assert_eq!(source.value, MxValue::Double(1234.5));
    let source_time = stamp_of(source.source_time.expect("a source time"));
    assert_eq!(stamp(speed), source_time, "{speed}");
    // ...or, where configured, the time the bridge received it.
    let received = stamp(pv("SpeedRx"));
    assert_ne!(received, source_time);
    assert!(
        received > source_time,
        "received {received:?} before {source_time:?}"
    );
    assert!(received.0 - source_time.0 < 5);

    // The same PVs through the other clients.
    let info = clients()
        .run("pvinfo", &plant.env, &["E2E:Profile"])
        .await
        .text();
    assert!(info.contains("epics:nt/NTScalarArray:1.0"), "{info}");
    assert!(info.contains("double[] value"), "{info}");
    let get = clients()
        .run("pvget", &plant.env, &["E2E:LastMaintenance", "E2E:Starts"])
        .await
        .text();
    assert!(get.contains("2026-03-04T05:06:07.250Z"), "{get}");
    assert!(get.contains(" 7"), "{get}");
    let pvapy = clients()
        .python(
            &plant.env,
            "import pvaccess\n\
             v = pvaccess.Channel('E2E:Totalizer').get('field(value,alarm)')\n\
             print(v['value'], v['alarm']['message'])",
            &[],
        )
        .await
        .text();
    assert!(pvapy.contains("123456789012 Good"), "{pvapy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_changes_show_as_alarms_with_the_quality_in_words() {
    let plant = Plant::start("quality").await;
    let c = plant.control();
    c.set_value("Pump001.Speed", "1500", None).await.unwrap();
    let mut watch = plant.watch(&["E2E:Speed"]);
    let (pvmonitor, _, mut lines) = clients().pvmonitor(&plant.env, "E2E:Speed").await;
    watch
        .until("E2E:Speed", "good at 1500", Duration::from_secs(15), |s| {
            is_good(s) && s.v["value"] == 1500.0
        })
        .await;
    for (quality, severity, status, message) in [
        (0xD8, NO_ALARM, NONE, "Good: local override"),
        (0x54, MINOR, NONE, "Uncertain: engineering units exceeded"),
        (0x50, MINOR, DEVICE, "Uncertain: sensor not accurate"),
        (0x04, INVALID, CONF, "Bad: configuration error"),
        (0x08, INVALID, DRIVER, "Bad: not connected"),
        (0x0C, INVALID, DEVICE, "Bad: device failure"),
        (0x10, INVALID, DEVICE, "Bad: sensor failure"),
        (0x18, INVALID, DRIVER, "Bad: communication failure"),
        (0x20, INVALID, UNDEFINED, "Bad: waiting for initial data"),
        (
            0x55,
            MINOR,
            NONE,
            "Uncertain: engineering units exceeded, low limited",
        ),
        (0xC0, NO_ALARM, NONE, "Good"),
    ] {
        c.set_quality("Pump001.Speed", Some(Quality(quality)))
            .await
            .unwrap();
        let seen = watch
            .until(
                "E2E:Speed",
                &format!("quality {quality:#04x} shows as {message}"),
                Duration::from_secs(10),
                |s| s.message() == message,
            )
            .await;
        assert_eq!(seen.severity(), Some(severity), "{message}: {:?}", seen.v);
        assert_eq!(seen.status(), Some(status), "{message}: {:?}", seen.v);
        // The value is kept whatever the quality.
        assert_eq!(seen.v["value"], 1500.0, "{message}");
    }
    // Good values after a Good one leave the alarm fields out of the update (issue 23):
    // the client's copy keeps them.
    for value in [1501.0, 1502.0] {
        c.set_value("Pump001.Speed", &value.to_string(), None)
            .await
            .unwrap();
        let seen = watch
            .until(
                "E2E:Speed",
                &format!("{value} seen"),
                Duration::from_secs(10),
                |s| s.v["value"] == value,
            )
            .await;
        assert_eq!(seen.severity(), Some(NO_ALARM), "{:?}", seen.v);
        assert_eq!(seen.status(), Some(NONE), "{:?}", seen.v);
        assert_eq!(seen.message(), "Good", "{:?}", seen.v);
    }
    // pvmonitor saw the bad period too.
    let mut printed = Vec::new();
    let saw_invalid = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.recv().await {
            if line.contains("INVALID") {
                return true;
            }
            printed.push(line);
        }
        false
    })
    .await;
    assert_eq!(saw_invalid, Ok(true), "pvmonitor printed {printed:#?}");
    pvmonitor.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_complete_when_system_platform_confirms_or_fail_with_its_reason() {
    let plant = Plant::start("puts").await;
    let mut watch = plant.watch(&["E2E:SpeedSP", "E2E:Mode", "E2E:Recipe"]);
    watch
        .until("E2E:SpeedSP", "served", Duration::from_secs(15), is_good)
        .await;

    // Confirmed, then read back through the bridge and at System Platform.
    let out = plant.pvput("E2E:SpeedSP", "1500").await;
    assert!(!out.contains("Error"), "{out}");
    // pvput reads back once the put completes: the new value is already there.
    let new = out
        .lines()
        .find(|l| l.starts_with("New"))
        .unwrap_or_default();
    assert!(new.trim_end().ends_with(" 1500"), "{out}");
    assert_eq!(
        plant.attribute("Pump001.SpeedSP").await.value,
        MxValue::Double(1500.0)
    );
    watch
        .until(
            "E2E:SpeedSP",
            "reads back 1500",
            Duration::from_secs(5),
            |s| s.v["value"] == 1500.0,
        )
        .await;
    let out = plant.pvput("E2E:Running", "Stopped").await;
    assert!(!out.contains("Error"), "{out}");
    assert_eq!(
        plant.attribute("Pump001.Running").await.value,
        MxValue::Bool(false)
    );
    assert_eq!(
        plant.p4p_put("E2E:Recipe", "[5, 6, 7, 8]").await.trim(),
        "ok"
    );
    watch
        .until("E2E:Recipe", "reads back", Duration::from_secs(5), |s| {
            s.v["value"] == serde_json::json!([5, 6, 7, 8])
        })
        .await;
    let pvapy = clients()
        .python(
            &plant.env,
            "import pvaccess\npvaccess.Channel('E2E:Mode').put('Manual'); print('ok')",
            &[],
        )
        .await
        .text();
    assert!(pvapy.contains("ok"), "{pvapy}");
    assert_eq!(
        plant.attribute("Pump001.Mode").await.value,
        MxValue::String("Manual".into())
    );

    // Refused by System Platform (ViewOnly), with its reason.
    let out = plant.pvput("E2E:Position", "5").await;
    assert!(
        out.contains("Error: E2E:Position: System Platform refused the write: WriteAccessDenied"),
        "{out}"
    );

    // Refused by the bridge before anything is sent; nothing reaches System Platform.
    let out = plant.pvput("E2E:SpeedSP", "5000").await;
    assert!(
        out.contains("Error: E2E:SpeedSP: 5000 is outside the control limits 0 to 3000"),
        "{out}"
    );
    for (value, shown) in [("float('nan')", "NaN"), ("float('inf')", "inf")] {
        let out = plant.p4p_put("E2E:SpeedSP", value).await;
        assert!(
            out.contains(&format!(
                "RemoteError: E2E:SpeedSP: {shown} cannot be written"
            )),
            "{out}"
        );
    }
    // A string into a number: the client cannot encode it...
    let out = plant.pvput("E2E:SpeedSP", "fast").await;
    assert!(out.contains("Error:"), "{out}");
    // ...and where the PV is a string, the bridge cannot convert it for the attribute.
    let out = plant.pvput("E2E:MaxSpeedText", "fast").await;
    assert!(
        out.contains("Error: E2E:MaxSpeedText: 'fast' is not a number"),
        "{out}"
    );
    assert_eq!(
        plant.attribute("Pump001.SpeedSP").await.value,
        MxValue::Double(1500.0)
    );

    // No OnWriteComplete within write_timeout: the put fails and says so.
    plant
        .control()
        .set_faults(&Faults {
            write_delay: Duration::from_secs(4),
            write_fault_prefix: "Pump001.Mode".into(),
            ..Faults::default()
        })
        .await
        .unwrap();
    let out = plant.pvput("E2E:Mode", "Auto").await;
    assert!(
        out.contains("Error: E2E:Mode: no write confirmation from System Platform within 1s 500ms"),
        "{out}"
    );
    plant
        .control()
        .set_faults(&Faults::default())
        .await
        .unwrap();
}

/// An RPC to a served PV is refused as pvxs refuses it for a PV without an RPC handler
/// (the shim's PV keeps its context in that handler's place: issue 23, memory per PV),
/// and the PV still takes puts afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_to_a_pv_is_refused_and_puts_still_work() {
    let plant = Plant::start("rpc").await;
    let out = plant.run("pvcall", &["E2E:SpeedSP"]).await.text();
    assert!(out.contains("RPC not implemented by this PV"), "{out}");
    let out = plant.pvput("E2E:SpeedSP", "1200").await;
    assert!(!out.contains("Error"), "{out}");
    assert_eq!(
        plant.attribute("Pump001.SpeedSP").await.value,
        MxValue::Double(1200.0)
    );
}

/// Waits until every PV is INVALID with `message` in its alarm, keeping its value.
async fn all_lost(plant: &Plant, message: &str) {
    let all = plant.get(PVS).await;
    for pv in PVS {
        let v = &all[*pv];
        assert_eq!(v["alarm"]["severity"], INVALID, "{pv}: {v}");
        assert_eq!(v["alarm"]["status"], DRIVER, "{pv}: {v}");
        let text = v["alarm"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{pv}: {v}");
    }
}

/// Every PV is back with good data, from exactly one bridge session holding one item
/// per mapped tag.
async fn all_back(plant: &Plant, watch: &mut Watch) {
    watch
        .until("E2E:Speed", "good again", Duration::from_secs(15), is_good)
        .await;
    let all = plant.get(PVS).await;
    for pv in PVS
        .iter()
        .filter(|p| !["E2E:Missing", "E2E:BadIndex"].contains(*p))
    {
        let v = &all[*pv];
        assert_eq!(v["alarm"]["severity"], NO_ALARM, "{pv}: {v}");
    }
    // The sessions of lost links are closed: the gateway holds one subscription per tag.
    let ready = plant.bridge_sessions().await;
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert_eq!(ready[0].state, "Ready", "{ready:?}");
    assert_eq!(ready[0].item_count, PVS.len(), "{ready:?}");
    assert!(ready[0].subscriber_attached, "{ready:?}");
    let out = plant.pvput("E2E:SpeedSP", "1700").await;
    assert!(!out.contains("Error"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_turns_every_pv_invalid_and_its_return_restores_them() {
    let mut plant = Plant::start("killed").await;
    plant
        .control()
        .set_value("Pump001.Speed", "1234.5", None)
        .await
        .unwrap();
    let mut watch = plant.watch(&["E2E:Speed"]);
    watch
        .until(
            "E2E:Speed",
            "the held value",
            Duration::from_secs(15),
            |s| is_good(s) && s.v["value"] == 1234.5,
        )
        .await;

    let killed = SystemTime::now();
    plant.kill_sim().await;
    let lost = watch
        .until(
            "E2E:Speed",
            "INVALID: gateway connection lost",
            Duration::from_secs(5),
            |s| s.severity() == Some(INVALID),
        )
        .await;
    let after = lost.at.duration_since(killed).unwrap_or_default();
    println!("INVALID at the client {after:?} after the kill");
    assert!(after < Duration::from_secs(2), "{after:?}");
    assert!(
        lost.message().starts_with("gateway connection lost: "),
        "{:?}",
        lost.v
    );
    assert_eq!(lost.v["value"], 1234.5, "the last value is kept");
    all_lost(&plant, "gateway connection lost").await;

    // A put fails at once; nothing is queued.
    let started = Instant::now();
    let out = plant.pvput("E2E:SpeedSP", "100").await;
    println!("put during the outage answered in {:?}", started.elapsed());
    assert!(
        out.contains("Error: E2E:SpeedSP: gateway unavailable: write not sent"),
        "{out}"
    );

    // The gateway returns on the same address; the bridge finds it, subscribes once.
    plant.start_sim().await;
    all_back(&plant, &mut watch).await;
    // The put made during the outage was never sent.
    let sp = plant.attribute("Pump001.SpeedSP").await.value;
    assert_eq!(sp, MxValue::Double(1700.0), "only the later put arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_gateway_is_detected_and_faults_and_restarts_recover() {
    let plant = Plant::start("faults").await;
    let mut watch = plant.watch(&["E2E:Speed"]);
    watch
        .until("E2E:Speed", "served", Duration::from_secs(15), is_good)
        .await;

    // A gateway that stops answering without closing its connections.
    let stop = |sig: &str| plant.signal_sim(sig);
    let stopped = SystemTime::now();
    stop("-STOP");
    let lost = watch
        .until("E2E:Speed", "INVALID", Duration::from_secs(10), |s| {
            s.severity() == Some(INVALID)
        })
        .await;
    stop("-CONT");
    let after = lost.at.duration_since(stopped).unwrap_or_default();
    println!("silent gateway: INVALID at the client {after:?} after SIGSTOP");
    assert!(after < Duration::from_secs(2), "{after:?}: {:?}", lost.v);
    assert!(
        lost.message().starts_with("gateway connection lost: "),
        "{:?}",
        lost.v
    );
    all_back(&plant, &mut watch).await;

    // A worker crash faults the session.
    let session = plant.bridge_sessions().await;
    let session = session.iter().find(|s| s.state == "Ready").unwrap();
    plant
        .control()
        .fault_session(&session.session_id, "worker process exited")
        .await
        .unwrap();
    lost_then_back(&plant, &mut watch, "the session faulted").await;

    // The event stream is dropped (the session survives).
    plant.control().drop_event_streams(None).await.unwrap();
    lost_then_back(&plant, &mut watch, "the event stream dropped").await;

    // The gateway restarts and forgets every session.
    plant.control().restart().await.unwrap();
    lost_then_back(&plant, &mut watch, "the gateway restarted").await;
}

/// After `what`, the PVs go INVALID saying the gateway connection is lost, then come back.
async fn lost_then_back(plant: &Plant, watch: &mut Watch, what: &str) {
    watch
        .until(
            "E2E:Speed",
            &format!("INVALID after {what}"),
            Duration::from_secs(10),
            |s| s.severity() == Some(INVALID) && s.message().starts_with("gateway connection lost"),
        )
        .await;
    all_back(plant, watch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_session_keeps_pvs_invalid_until_the_gateway_accepts() {
    let plant = Plant::start("refused").await;
    let mut watch = plant.watch(&["E2E:Speed"]);
    watch
        .until("E2E:Speed", "served", Duration::from_secs(15), is_good)
        .await;
    plant
        .control()
        .set_faults(&Faults {
            refuse_sessions: true,
            ..Faults::default()
        })
        .await
        .unwrap();
    plant.control().restart().await.unwrap();
    let refused = watch
        .until("E2E:Speed", "refused", Duration::from_secs(10), |s| {
            s.message().contains("cannot open a session")
        })
        .await;
    assert_eq!(refused.severity(), Some(INVALID));
    let out = plant.pvput("E2E:SpeedSP", "100").await;
    assert!(
        out.contains("Error: E2E:SpeedSP: gateway unavailable: write not sent"),
        "{out}"
    );
    plant
        .control()
        .set_faults(&Faults::default())
        .await
        .unwrap();
    all_back(&plant, &mut watch).await;
}

/// The keys of config/sim-galaxy.toml's `[auth]`, used when it requires them.
const OPERATOR_KEY: &str = "mxgw_operator_3f9c2a7e41b8";
const ADMIN_KEY: &str = "mxgw_admin_0a5f7c3e9b12";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_opens_the_gateway_and_never_reaches_logs_or_clients() {
    // The demo Galaxy, with API keys required.
    let shipped = demo_galaxy();
    assert!(shipped.contains("mode = \"open\""));
    let plant = Plant::new("e2e-api-key")
        .galaxy_text(shipped.replace("mode = \"open\"", "mode = \"api_key\""))
        .admin_key(ADMIN_KEY)
        .start()
        .await;

    // Two bridges: one with the operator's key, one with a key the gateway does not know.
    let mut bridges = Vec::new();
    let mut envs = Vec::new();
    for (prefix, key) in [
        ("KEY:", OPERATOR_KEY),
        ("NOKEY:", "mxgw_operator_5d1e8b6c0f47"),
    ] {
        let config = format!(
            "[gateway]\nendpoint = \"http://{{gateway}}\"\napi_key_env = \"E2E_GATEWAY_KEY\"\n\
             reconnect_initial = \"100ms\"\nreconnect_max = \"400ms\"\n\
             [defaults]\nprefix = \"{prefix}\"\n\
             [[pv]]\nname = \"SpeedSP\"\ntag = \"Pump001.SpeedSP\"\ntype = \"float64\"\nwritable = true\n"
        );
        let bridge = plant.extra_bridge(
            prefix.trim_end_matches(':'),
            &config,
            &[("E2E_GATEWAY_KEY", key), ("RUST_LOG", "trace")],
        );
        envs.push((bridge.env.clone(), bridge.log.clone(), key));
        bridges.push(bridge);
    }

    // With its key the bridge serves and writes.
    let (env, _, _) = &envs[0];
    let mut watch = clients().p4p_watch(env, &["KEY:SpeedSP"]);
    watch
        .until("KEY:SpeedSP", "served", Duration::from_secs(30), is_good)
        .await;
    let out = clients()
        .run("pvput", env, &["KEY:SpeedSP", "1300"])
        .await
        .text();
    assert!(!out.contains("Error"), "{out}");

    // Without a valid key every PV says why, and puts fail at once.
    let (env, _, bad_key) = &envs[1];
    let mut watch = clients().p4p_watch(env, &["NOKEY:SpeedSP"]);
    let refused = watch
        .until("NOKEY:SpeedSP", "refused", Duration::from_secs(30), |s| {
            s.message().starts_with("gateway connection lost: ")
        })
        .await;
    assert_eq!(refused.severity(), Some(INVALID));
    assert!(
        refused.message().contains("nauthenticated"),
        "{:?}",
        refused.v
    );
    assert!(!refused.message().contains(bad_key), "{:?}", refused.v);
    let out = clients()
        .run("pvput", env, &["NOKEY:SpeedSP", "1300"])
        .await
        .text();
    assert!(out.contains("gateway unavailable: write not sent"), "{out}");

    // Neither key appears in the trace-level logs, whatever they printed.
    drop(bridges);
    for (_, log, key) in &envs {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.len() > 10_000,
            "trace logging was on: {} bytes",
            text.len()
        );
        let secret = key.rsplit('_').next().unwrap();
        assert!(!text.contains(secret), "{} shows the key", log.display());
    }
}
