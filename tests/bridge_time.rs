//! Time that archivers can trust, and severities that EPICS users recognise, end to end:
//! `mxpva sim` and `mxpva run` as processes on loopback, the simulator driven through
//! its control service (and acknowledged through its AcknowledgeAlarm), the PVs read by
//! p4p, pvmonitor and pvget.
//!
//! - Through many alarm raises, clears and acknowledgements with data changes between
//!   them, no PV's timeStamp goes back (value PV, `:ACK`, `[[alarm_pv]]`, table).
//! - A data change and the alarm it raised, taken by the bridge in one turn, reach a
//!   monitor as one update.
//! - Under `[alarms] severity = "kind"`, Hi is MINOR and HiHi MAJOR; `alarm_severity`
//!   overrides it per PV.
//! - With the simulator's clock ahead (`[galaxy] clock_offset_ms`), PVs re-opened by
//!   reloads under a monitor never go back in time either.

mod clients;

use std::time::{Duration, Instant};

use clients::clients;
use clients::plant::Plant;
use mxpva::gateway::{AlarmFeedItem, AlarmTransitionKind, ClientOptions, GatewayClient};
use serde_json::Value;

const CONFIG: &str = r#"
[gateway]
endpoint = "http://{gateway}"
client_name = "mxpva-time"
reconnect_initial = "100ms"
reconnect_max = "400ms"

[defaults]
prefix = "T:"

[alarms]
severity = "{severity}"

[[pv]]
name = "Level"
tag = "Tank001.Level"
type = "float64"
# Named, so that T:Level:ACK is served from the start.
alarms = ["Tank001.Level.HiHi"]

[[pv]]
name = "Temp"
tag = "Tank001.Temp"
type = "float64"
alarm_severity = "priority"

[[alarm_pv]]
name = "Pump:Fault"
alarms = ["Pump001.PumpFault"]
"#;

const HIHI: &str = "Galaxy!Plant.Tank001.Level.HiHi";
const HI: &str = "Galaxy!Plant.Tank001.Level.Hi";
const FAULT: &str = "Galaxy!Plant.Pump001.PumpFault";
const MINOR: i64 = 1;
const MAJOR: i64 = 2;

/// Prints one JSON line per update of every PV named: its name, the timeStamp as
/// seconds and nanoseconds, the scalar value (if any) and the alarm.
const P4P_TIMES: &str = r#"
import json, sys, threading, time
from p4p.client.thread import Context
ctx = Context('pva', nt=False)
lock = threading.Lock()
def cb(name):
    def f(v):
        if isinstance(v, Exception):
            line = {'pv': name, 'error': str(v)}
        else:
            val = v['value']
            line = {'pv': name, 's': v['timeStamp.secondsPastEpoch'],
                    'ns': v['timeStamp.nanoseconds'], 'sev': v['alarm.severity'],
                    'msg': v['alarm.message'],
                    'value': val if isinstance(val, (int, float, str)) else None}
        with lock:
            sys.stdout.write(json.dumps(line) + '\n')
            sys.stdout.flush()
    return f
subs = [ctx.monitor(n, cb(n)) for n in sys.argv[1:]]
time.sleep(300)
"#;

/// A simulator process and a bridge process.
impl Plant {
    async fn start(name: &str, severity: &str) -> Plant {
        let plant = Plant::new(&format!("time-{name}"))
            .galaxy("time")
            .config(&CONFIG.replace("{severity}", severity))
            .start()
            .await;
        // Served, with the alarm feed attached (the table leaves "waiting").
        let text = clients()
            .pvget_until(&plant.env, &["-v", "T:ALARMS:ACTIVE"], "severity 0")
            .await;
        assert!(
            text.contains("severity 0"),
            "the bridge never served: {text}"
        );
        plant
    }

    async fn set(&self, value: &str) {
        self.control()
            .set_value("Tank001.Level", value, None)
            .await
            .unwrap();
    }

    async fn gateway_client(&self) -> GatewayClient {
        GatewayClient::connect(&ClientOptions::plaintext(&self.gateway))
            .await
            .unwrap()
    }
}

/// One update as [`P4P_TIMES`] printed it.
#[derive(Debug, Clone)]
struct Update {
    pv: String,
    time: (i64, i64),
    value: Value,
    severity: i64,
    message: String,
}

/// Reads updates until `done` accepts one (at most `within`); returns all of them.
async fn updates_until(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    within: Duration,
    what: &str,
    mut done: impl FnMut(&Update) -> bool,
) -> Vec<Update> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let line = match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("the p4p monitor ended while waiting for {what}"),
            Err(_) => panic!("no update where {what} within {within:?}: {seen:#?}"),
        };
        let j: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(j.get("error").is_none(), "{line}");
        let u = Update {
            pv: j["pv"].as_str().unwrap().to_string(),
            time: (j["s"].as_i64().unwrap(), j["ns"].as_i64().unwrap()),
            value: j["value"].clone(),
            severity: j["sev"].as_i64().unwrap(),
            message: j["msg"].as_str().unwrap_or_default().to_string(),
        };
        let stop = done(&u);
        seen.push(u);
        if stop {
            return seen;
        }
    }
}

/// The time pvmonitor printed on a line (`PV 2026-11-29 15:40:01.123  value ...`).
fn pvmonitor_time(line: &str) -> Option<String> {
    let mut f = line.split_whitespace();
    f.next()?;
    Some(format!("{} {}", f.next()?, f.next()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_never_go_back_through_alarm_raises_clears_and_acknowledgements() {
    let plant = Plant::start("churn", "priority").await;
    let pvs = ["T:Level", "T:Level:ACK", "T:Pump:Fault", "T:ALARMS:ACTIVE"];
    let mut args = vec!["-u", "-c", P4P_TIMES];
    args.extend_from_slice(&pvs);
    let (_p4p, mut lines) = clients().spawn_lines("python", &plant.env, &args);
    let (_pvmonitor, first, mut pvmonitor) = clients().pvmonitor(&plant.env, "T:Level").await;
    let mut seen = updates_until(&mut lines, Duration::from_secs(20), "T:Level is 50", |u| {
        u.pv == "T:Level" && u.value == 50.0
    })
    .await;

    // Quickly: the level across Hi and HiHi and back, the pump fault raised and cleared,
    // and acknowledgements through System Platform; each level is set as soon as the
    // last one shows, so that its alarm transitions interleave with the next values.
    let gw = plant.gateway_client().await;
    for round in 0..12 {
        for level in [85.0, 95.0, 60.0, 92.0, 70.0] {
            plant.set(&level.to_string()).await;
            seen.extend(
                updates_until(
                    &mut lines,
                    Duration::from_secs(20),
                    "the level shows",
                    |u| u.pv == "T:Level" && u.value == level,
                )
                .await,
            );
            if level == 95.0 {
                for r in [HIHI, HI, FAULT] {
                    // Refused when acknowledged already or not active: churn too.
                    let _ = gw.acknowledge_alarm(r, "churn", "tester").await;
                }
            }
        }
        if round % 2 == 0 {
            plant.control().raise_alarm(FAULT).await.unwrap();
        } else {
            plant.control().clear_alarm(FAULT, false).await.unwrap();
        }
    }
    // Acknowledgements through the :ACK PV as a client makes them.
    plant.set("95").await;
    seen.extend(
        updates_until(&mut lines, Duration::from_secs(20), "HiHi raised", |u| {
            u.pv == "T:Level" && u.message.starts_with("HiHi alarm, unacknowledged")
        })
        .await,
    );
    for comment in ["first", "second"] {
        let out = clients()
            .p4p_put(&plant.env, "T:Level:ACK", &format!("'{comment}'"))
            .await;
        assert!(
            out.trim() == "ok" || out.contains("AlarmAckedAlready"),
            "{out}"
        );
    }
    // The end: a last value every client must show.
    plant.set("12.5").await;
    seen.extend(
        updates_until(
            &mut lines,
            Duration::from_secs(20),
            "T:Level is 12.5",
            |u| u.pv == "T:Level" && u.value == 12.5,
        )
        .await,
    );
    let mut monitor_lines = vec![first];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // The value's field, not the line: a time of day such as 20:13:12.557 holds "12.5".
    let shows_last = |l: &String| l.split_whitespace().nth(3) == Some("12.5");
    while !monitor_lines.last().is_some_and(shows_last) {
        match tokio::time::timeout_at(deadline, pvmonitor.recv()).await {
            Ok(Some(line)) => monitor_lines.push(line),
            _ => panic!("pvmonitor never showed 12.5: {monitor_lines:#?}"),
        }
    }

    // A monitor's copy holds the whole time the server holds: an update within the
    // second carries its nanoseconds alone (issue 23), and p4p keeps the seconds.
    let got = clients().p4p_get(&plant.env, &["T:Level"]).await;
    let stamp = &got["T:Level"]["timeStamp"];
    let last = seen.iter().rev().find(|u| u.pv == "T:Level").unwrap();
    assert_eq!(
        (
            stamp["secondsPastEpoch"].as_i64(),
            stamp["nanoseconds"].as_i64()
        ),
        (Some(last.time.0), Some(last.time.1)),
        "p4p's get {got} and its monitor's last update {last:?}"
    );

    // Every PV's timeStamps, as p4p saw them, never go back.
    for pv in pvs {
        let mine: Vec<&Update> = seen.iter().filter(|u| u.pv == pv).collect();
        for w in mine.windows(2) {
            assert!(
                w[1].time >= w[0].time,
                "{pv}: timeStamp went back from {:?} to {:?}",
                w[0],
                w[1]
            );
        }
        eprintln!("{pv}: {} updates", mine.len());
    }
    // The churn was churn: many severity changes on the value PV, several on the others.
    let changes = |pv: &str| {
        let s: Vec<i64> = seen
            .iter()
            .filter(|u| u.pv == pv)
            .map(|u| u.severity)
            .collect();
        s.windows(2).filter(|w| w[0] != w[1]).count()
    };
    assert!(changes("T:Level") >= 10, "{:#?}", seen);
    assert!(
        seen.iter().filter(|u| u.pv == "T:Level:ACK").count() >= 2,
        "the :ACK PV posted"
    );
    assert!(changes("T:Pump:Fault") >= 2, "the alarm PV moved");
    // And as pvmonitor printed them (local time, to the millisecond).
    let times: Vec<String> = monitor_lines
        .iter()
        .filter(|l| l.starts_with("T:Level"))
        .filter_map(|l| pvmonitor_time(l))
        .collect();
    // A slow client gets squashed updates (pvAccess's overrun), so fewer lines than p4p.
    eprintln!("pvmonitor: {} updates", times.len());
    assert!(times.len() >= 3, "{monitor_lines:#?}");
    for w in times.windows(2) {
        assert!(w[1] >= w[0], "pvmonitor: {} then {}", w[0], w[1]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_change_and_its_alarm_taken_together_reach_a_monitor_as_one_update() {
    let plant = Plant::start("one-update", "priority").await;
    let (_p4p, mut lines) =
        clients().spawn_lines("python", &plant.env, &["-u", "-c", P4P_TIMES, "T:Level"]);
    updates_until(&mut lines, Duration::from_secs(20), "T:Level is 50", |u| {
        u.value == 50.0 && u.severity == 0
    })
    .await;
    // An observer of the gateway's alarm feed, attached before the crossing.
    let gw = plant.gateway_client().await;
    let mut feed = gw.stream_alarms("").await.unwrap();
    loop {
        match feed.next().await {
            Some(Ok(AlarmFeedItem::SnapshotComplete { .. })) => break,
            Some(Ok(_)) => {}
            other => panic!("the observer's alarm feed: {other:?}"),
        }
    }
    let bridge_session = plant
        .control()
        .sessions()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.client_session_name == "mxpva-time" && s.subscriber_attached)
        .expect("the bridge's session");

    // The bridge stops; the level crosses HiHi; the gateway sends the data change and
    // the raise as it would to any client; the bridge goes on and finds both waiting.
    plant.signal("-STOP");
    struct Resume<'a>(&'a Plant);
    impl Drop for Resume<'_> {
        fn drop(&mut self) {
            self.0.signal("-CONT");
        }
    }
    let resume = Resume(&plant);
    plant.set("95").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), feed.next()).await {
            Ok(Some(Ok(AlarmFeedItem::Transition(t))))
                if t.reference == HIHI && t.kind == AlarmTransitionKind::Raise =>
            {
                break
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no HiHi raise on the observer's feed: {other:?}"),
        }
    }
    // The data change has left the bridge session's queue for its stream.
    loop {
        let s = plant.control().sessions().await.unwrap();
        let s = s
            .iter()
            .find(|s| s.session_id == bridge_session.session_id)
            .unwrap();
        if s.queued_events == 0 && s.last_worker_sequence > bridge_session.last_worker_sequence {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the data change stays queued: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(resume);

    let seen = updates_until(&mut lines, Duration::from_secs(20), "T:Level is 95", |u| {
        u.value == 95.0
    })
    .await;
    let u = seen.last().unwrap();
    assert_eq!(
        u.severity, MAJOR,
        "value and severity in one update: {seen:#?}"
    );
    assert!(
        u.message
            .starts_with("HiHi alarm, unacknowledged (priority 200)"),
        "{u:?}"
    );
    // Nothing between: no update with the new value and the old severity came first.
    assert_eq!(seen.len(), 1, "{seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_severity_kind_hi_is_minor_and_hihi_major_as_pvget_and_p4p_read_them() {
    let plant = Plant::start("kind", "kind").await;
    let pvget = |needle: &'static str| {
        let env = plant.env.clone();
        async move {
            let text = clients()
                .pvget_until(&env, &["-v", "T:Level"], needle)
                .await;
            assert!(
                text.contains(needle),
                "pvget never showed {needle:?}: {text}"
            );
            text
        }
    };
    let p4p_alarm = async |pv: &str| {
        let got = clients().p4p_get(&plant.env, &[pv]).await;
        let a = &got[pv]["alarm"];
        (
            a["severity"].as_i64().unwrap_or(-1),
            a["message"].as_str().unwrap_or_default().to_string(),
        )
    };

    // Hi (priority 500, MAJOR by the default bands): MINOR by kind.
    plant.set("85").await;
    let text = pvget("Hi alarm, unacknowledged (priority 500)").await;
    assert!(text.contains("int severity 1"), "{text}");
    let (severity, message) = p4p_alarm("T:Level").await;
    assert_eq!(severity, MINOR, "{message}");
    assert!(message.starts_with("Hi alarm"), "{message}");

    // HiHi as well: MAJOR, named first.
    plant.set("95").await;
    let text = pvget("HiHi alarm, unacknowledged (priority 200)").await;
    assert!(text.contains("int severity 2"), "{text}");
    let (severity, message) = p4p_alarm("T:Level").await;
    assert_eq!(severity, MAJOR, "{message}");
    assert!(message.starts_with("HiHi alarm"), "{message}");

    // `alarm_severity = "priority"` on T:Temp: its Hi (priority 500) stays MAJOR.
    plant
        .control()
        .set_value("Tank001.Temp", "45", None)
        .await
        .unwrap();
    let text = clients()
        .pvget_until(&plant.env, &["-v", "T:Temp"], "Hi alarm, unacknowledged")
        .await;
    assert!(text.contains("int severity 2"), "{text}");
    assert_eq!(p4p_alarm("T:Temp").await.0, MAJOR);
}

/// A PV of known type is served INVALID from the bridge's start, at the bridge's time.
/// The first value's source time is older (the attribute last changed before the bridge
/// started), so the PV holds its timeStamp just past the INVALID one, as it must for an
/// archiver; that is not a source clock going back, and is not logged as one (at the
/// start of 100,000 discovered PVs it was one warning per PV).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_value_older_than_the_bridge_s_start_is_held_without_a_warning() {
    let mut plant = Plant::new("time-older-first")
        .galaxy("time_setpoint")
        .start()
        .await;
    // Not a synchronisation: the condition under test is a source time more than the
    // logged hold (1 s) older than the bridge's start.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    plant.write_config(
        "[gateway]\nendpoint = \"http://{gateway}\"\nclient_name = \"mxpva-time\"\n\n\
         [[pv]]\nname = \"T:SP\"\ntag = \"Tank001.Setpoint\"\ntype = \"float64\"\n",
    );
    plant.start_bridge();
    let env = plant.env.clone();
    let text = clients().pvget_value_until(&env, "T:SP", "12.5").await;
    assert!(text.contains("12.5"), "T:SP never had its value: {text}");
    let log_text = plant.logged("gateway session up", 1).await;
    assert!(
        !log_text.contains("source time went back"),
        "a first value behind the bridge's own INVALID post was logged as a clock going back:\n{log_text}"
    );
}

/// The config of [`a_re_opened_pv_s_timestamps_never_go_back_with_the_source_clock_ahead`],
/// with `writable` set on both PVs or on neither.
fn reopen_config(writable: bool) -> String {
    let w = if writable { "writable = true\n" } else { "" };
    format!(
        "[gateway]\nendpoint = \"http://{{gateway}}\"\nclient_name = \"mxpva-time\"\n\n\
         [defaults]\nprefix = \"T:\"\n\n\
         [[pv]]\nname = \"A\"\ntag = \"Tank001.Level\"\ntype = \"float64\"\n{w}\n\
         [[pv]]\nname = \"B\"\ntag = \"Tank001.Temp\"\ntype = \"float64\"\n{w}"
    )
}

/// Issue 21, defect 3, end to end: System Platform's clock runs 20 s ahead of the
/// bridge's (`[galaxy] clock_offset_ms`) and a first value takes 2 s after Advise. A
/// reload that toggles `writable` re-opens both PVs while p4p monitors them; the new PV
/// first posts INVALID "waiting for initial data", which was stamped with the bridge's
/// clock, 20 s back from the name's last posted time. Over four re-opens, every update the
/// monitor sees of each PV must come no earlier than the one before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_opened_pv_s_timestamps_never_go_back_with_the_source_clock_ahead() {
    const WAITING: &str = "waiting for initial data";
    const REOPENS: usize = 4;
    let plant = Plant::new("time-reopen-ahead")
        .galaxy("time_clock_ahead")
        .config(&reopen_config(false))
        .start()
        .await;
    let env = plant.env.clone();
    let pvs = ["T:A", "T:B"];
    // Both PVs have a value (not the INVALID of their start) before the monitor starts.
    for pv in pvs {
        let text = clients().pvget_until(&env, &["-v", pv], "severity 0").await;
        assert!(
            text.contains("severity 0"),
            "{pv} never had a value: {text}"
        );
    }
    let mut args = vec!["-u", "-c", P4P_TIMES];
    args.extend_from_slice(&pvs);
    let (_p4p, mut lines) = clients().spawn_lines("python", &env, &args);
    let valued = |u: &Update| u.severity != 3 && u.value.is_number();
    let mut seen = updates_until(
        &mut lines,
        Duration::from_secs(20),
        "T:A has a value",
        |u| u.pv == "T:A" && valued(u),
    )
    .await;
    seen.extend(
        updates_until(
            &mut lines,
            Duration::from_secs(20),
            "T:B has a value",
            |u| u.pv == "T:B" && valued(u),
        )
        .await,
    );

    for n in 1..=REOPENS {
        plant.write_config(&reopen_config(n % 2 == 1));
        plant.hangup();
        let text = plant.logged("config reloaded", n).await;
        assert_eq!(
            text.matches("PV re-opened").count(),
            2 * n,
            "reload {n} re-opens both PVs:\n{text}"
        );
        // Each PV's monitor sees the new PV: INVALID while it waits for its first value
        // (2 s), then a value.
        let mut waited = [false; 2];
        let mut valued_again = [false; 2];
        seen.extend(
            updates_until(
                &mut lines,
                Duration::from_secs(20),
                &format!("both PVs re-opened ({n}) and valued again"),
                |u| {
                    if let Some(i) = pvs.iter().position(|p| *p == u.pv) {
                        waited[i] |= u.message.contains(WAITING);
                        valued_again[i] |= waited[i] && valued(u);
                    }
                    valued_again == [true; 2]
                },
            )
            .await,
        );
    }
    // A last second of updates after the last re-open.
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(line)) = tokio::time::timeout_at(until, lines.recv()).await {
        let j: Value = serde_json::from_str(&line).unwrap();
        if j.get("error").is_none() {
            seen.push(Update {
                pv: j["pv"].as_str().unwrap().to_string(),
                time: (j["s"].as_i64().unwrap(), j["ns"].as_i64().unwrap()),
                value: j["value"].clone(),
                severity: j["sev"].as_i64().unwrap(),
                message: j["msg"].as_str().unwrap_or_default().to_string(),
            });
        }
    }

    let mut back = Vec::new();
    for pv in pvs {
        let of_pv: Vec<&Update> = seen.iter().filter(|u| u.pv == pv).collect();
        let waits = of_pv.iter().filter(|u| u.message.contains(WAITING)).count();
        assert!(
            waits >= REOPENS,
            "{pv}: the monitor saw {waits} of {REOPENS} re-opens: {of_pv:#?}"
        );
        for w in of_pv.windows(2) {
            if w[1].time < w[0].time {
                back.push(format!(
                    "{pv}: {:?} ({}) after {:?} ({})",
                    w[1].time, w[1].message, w[0].time, w[0].message
                ));
            }
        }
    }
    assert!(
        back.is_empty(),
        "{} of {} updates went back in time:\n{}",
        back.len(),
        seen.len(),
        back.join("\n")
    );
}
