//! System Platform alarms end to end: the simulator (in the test's process, driven
//! through its control service and, for a flood, its handle) raises, clears and
//! acknowledges alarms; `mxpva run`, reaching it through a relay the
//! test can cut, serves them; pvget, pvput, pvmonitor, p4p and pvapy read
//! them: alarm fields, `:ACK` puts, the active-alarm NTTable, an `[[alarm_pv]]`, a
//! gateway outage during active alarms, and local limits with hysteresis.

mod clients;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clients::plant::{galaxy_fixture, Plant};
use clients::{clients, free_ports, pva_env};
use mxpva::gateway::{AlarmState, ClientOptions, GatewayClient};
use mxpva::pva::{self, Access, NtValue, PvEvent, PvType, ScalarType, ServerConfig, SharedPv};
use tokio::sync::watch;

const HIHI: &str = "Galaxy!Plant.Tank001.Level.HiHi";
const HI: &str = "Galaxy!Plant.Tank001.Level.Hi";
const FAULT: &str = "Galaxy!Plant.Pump001.PumpFault";

const BRIDGE: &str = r#"
[gateway]
endpoint = "ENDPOINT"
reconnect_initial = "100ms"
reconnect_max = "300ms"

[defaults]
prefix = "T:"

[[pv]]
name = "Level"
tag = "Tank001.Level"
type = "float64"

[[pv]]
name = "Temp"
tag = "Tank001.Temp"
type = "float64"
value_alarm = { low = 5.0, high = 30.0, hihi = 40.0, hysteresis = 2.0 }

[[alarm_pv]]
name = "Pump:Fault"
alarms = ["Pump001.PumpFault"]
type = "enum"
"#;

/// A TCP relay the test can cut, standing for the network to the gateway.
struct Relay {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let state = up.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut down = state.subscribe();
                if !*down.borrow() {
                    continue; // dropped: the gateway is unreachable
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Relay { addr, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// The simulator and the bridge, the bridge reaching the simulator through [`Relay`].
struct Harness {
    plant: Plant,
    relay: Relay,
    env: Vec<(String, String)>,
}

async fn start(users: &str) -> Harness {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut plant = Plant::new(&format!("alarms-{n}"))
        .galaxy_text(
            galaxy_fixture("alarms")
                .replace("# USERS: the test's [[users]] tables go here.", users),
        )
        .sim_in_process()
        .start()
        .await;
    let relay = Relay::start(plant.gateway.parse().unwrap()).await;
    plant.write_config(&BRIDGE.replace("ENDPOINT", &format!("http://{}", relay.addr)));
    plant.start_bridge();
    let env = plant.env.clone();
    let h = Harness { plant, relay, env };
    // Served and connected: the value arrived, and the table says the feed is attached.
    h.pvget_until("T:Level", "string message Good").await;
    h.table_until(|t| t.contains("severity 0")).await;
    h
}

/// Reads the table with p4p: the table's alarm, then one line per row.
const P4P_TABLE: &str = r#"
from p4p.client.thread import Context
v = Context('pva').get('T:ALARMS:ACTIVE', timeout=10)
print('severity', v.alarm.severity, v.alarm.message)
c = v.value.todict()
for i in range(len(c['reference'])):
    print('|'.join(str(c[k][i]) for k in ['reference', 'pv', 'type', 'priority', 'state', 'raised', 'acked', 'operator', 'comment', 'value', 'limit']))
"#;

impl Harness {
    async fn pvget_until(&self, pv: &str, needle: &str) -> String {
        let text = clients().pvget_until(&self.env, &["-v", pv], needle).await;
        assert!(
            text.contains(needle),
            "{pv} never showed {needle:?}:\n{text}"
        );
        text
    }

    /// The table as p4p reads it, polled until `ok` accepts it (at most 10 s).
    async fn table_until(&self, ok: impl Fn(&str) -> bool) -> String {
        let mut text = String::new();
        for _ in 0..50 {
            text = clients().python(&self.env, P4P_TABLE, &[]).await.stdout;
            if ok(&text) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the table never got there:\n{text}");
    }

    async fn gateway_alarms(&self) -> Vec<mxpva::gateway::ActiveAlarm> {
        let c = GatewayClient::connect(&ClientOptions::plaintext(self.plant.gateway.clone()))
            .await
            .unwrap();
        c.query_active_alarms("").await.unwrap()
    }

    async fn pvput(&self, pv: &str, value: &str) -> String {
        clients().run("pvput", &self.env, &[pv, value]).await.text()
    }
}

/// The rows of a table read by `P4P_TABLE`, as `(reference, pv, state, operator, comment)`.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.contains('|'))
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Prints, for each update of T:Level: receive time, timeStamp, severity, message.
const P4P_MONITOR: &str = r#"
import sys, time, threading
from p4p.client.thread import Context
ctx = Context('pva', nt=False)
def cb(v):
    t = time.time()
    ts = v.timeStamp.secondsPastEpoch + v.timeStamp.nanoseconds * 1e-9
    print('update %.6f %.6f %d %s' % (t, ts, v.alarm.severity, v.alarm.message), flush=True)
sub = ctx.monitor('T:Level', cb)
threading.Event().wait(120)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_show_on_pvs_acknowledge_through_ack_and_fill_the_table() {
    let h = start("").await;
    let (mut monitor, mut lines) =
        clients().spawn_lines("python", &h.env, &["-u", "-c", P4P_MONITOR]);
    let next_update = async |lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
                             needle: &str| loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.recv())
            .await
            .unwrap_or_else(|_| panic!("no update with {needle:?}"))
            .expect("monitor ended");
        if line.starts_with("update ") && line.contains(needle) {
            return line;
        }
    };
    next_update(&mut lines, "Good").await;

    // RAISE: MAJOR (priority 100), with the message, within 100 ms of the transition.
    let t0 = SystemTime::now();
    h.plant.control().raise_alarm(HIHI).await.unwrap();
    let line = next_update(&mut lines, "HiHi alarm, unacknowledged (priority 100)").await;
    let f: Vec<&str> = line.split(' ').collect();
    let (received, stamped, severity) = (
        f[1].parse::<f64>().unwrap(),
        f[2].parse::<f64>().unwrap(),
        f[3],
    );
    assert_eq!(severity, "2", "{line}");
    let posted_ms = (stamped - secs(t0)) * 1000.0;
    let seen_ms = (received - secs(t0)) * 1000.0;
    eprintln!("raise -> PV posted {posted_ms:.1} ms, seen by p4p {seen_ms:.1} ms");
    assert!(posted_ms < 100.0, "posted {posted_ms} ms after the raise");
    // The client side adds a Python process on a loaded 2-core machine: a wider margin.
    assert!(seen_ms < 300.0, "seen {seen_ms} ms after the raise");

    let text = h.pvget_until("T:Level", "HiHi alarm").await;
    assert!(text.contains("int severity 2"), "{text}");
    assert!(text.contains("int status 3"), "{text}");
    let table = h.table_until(|t| t.contains(HIHI)).await;
    let r = &rows(&table)[0];
    assert_eq!(
        (
            r[0].as_str(),
            r[1].as_str(),
            r[2].as_str(),
            r[3].as_str(),
            r[4].as_str()
        ),
        (HIHI, "T:Level", "HiHi", "100", "UNACK_ALM"),
        "{table}"
    );
    assert!(
        !r[5].is_empty() && r[6].is_empty(),
        "raised, not acked: {table}"
    );
    assert_eq!((r[9].as_str(), r[10].as_str()), ("50", "90"), "{table}");

    // ACKNOWLEDGE through :ACK with a comment: the gateway records comment and operator.
    let out = h.pvput("T:Level:ACK", "seen, venting").await;
    assert!(!out.contains("Error"), "{out}");
    let active = h.gateway_alarms().await;
    let a = active.iter().find(|a| a.reference == HIHI).unwrap();
    assert_eq!(a.state, AlarmState::AckAlm);
    assert_eq!(a.comment, "seen, venting");
    let account = a.operator.clone();
    assert!(!account.is_empty());
    next_update(&mut lines, "HiHi alarm, acknowledged (priority 100)").await;
    let table = h.table_until(|t| t.contains("|ACK_ALM|")).await;
    let r = &rows(&table)[0];
    assert_eq!(
        (r[4].as_str(), r[7].as_str(), r[8].as_str()),
        ("ACK_ALM", account.as_str(), "seen, venting"),
        "{table}"
    );
    assert!(!r[6].is_empty(), "acked time: {table}");

    // Refused by System Platform: the only alarm is acknowledged already.
    let out = h.pvput("T:Level:ACK", "again").await;
    assert!(
        out.contains("T:Level:ACK: System Platform refused the acknowledgement: ")
            && out.contains("AlarmAckedAlready"),
        "{out}"
    );

    // A second alarm (priority 600: MINOR): the worse one leads, both are told.
    h.plant.control().raise_alarm(HI).await.unwrap();
    let line = next_update(&mut lines, "Hi alarm, unacknowledged (priority 600)").await;
    assert!(
        line.contains(
            " 2 HiHi alarm, acknowledged (priority 100); Hi alarm, unacknowledged (priority 600)"
        ),
        "{line}"
    );

    // CLEAR of an acknowledged alarm: it leaves; CLEAR of the other: returned, unacked.
    h.plant.control().clear_alarm(HIHI, false).await.unwrap();
    next_update(&mut lines, " 1 Hi alarm, unacknowledged (priority 600)").await;
    h.plant.control().clear_alarm(HI, false).await.unwrap();
    let line = next_update(
        &mut lines,
        "Hi alarm returned, unacknowledged (priority 600)",
    )
    .await;
    assert!(line.contains(" 0 Hi alarm returned"), "{line}");
    let table = h
        .table_until(|t| rows(t).len() == 1 && t.contains("UNACK_RTN"))
        .await;
    assert_eq!(rows(&table)[0][0], HI, "{table}");

    // RETRIGGER: back in alarm before anyone acknowledged.
    h.plant.control().raise_alarm(HI).await.unwrap();
    next_update(&mut lines, " 1 Hi alarm, unacknowledged (priority 600)").await;
    // Acknowledge while returned: the alarm leaves, the PV is NO_ALARM again.
    h.plant.control().clear_alarm(HI, false).await.unwrap();
    next_update(&mut lines, "Hi alarm returned, unacknowledged").await;
    let out = h.pvput("T:Level:ACK", "ok").await;
    assert!(!out.contains("Error"), "{out}");
    let line = next_update(&mut lines, " 0 Good").await;
    assert!(!line.contains("alarm"), "{line}");
    h.table_until(|t| rows(t).is_empty()).await;
    let out = h.pvput("T:Level:ACK", "nothing").await;
    assert!(
        out.contains("T:Level:ACK: T:Level has no active alarm to acknowledge"),
        "{out}"
    );

    // An alarm with a PV of its own (NTEnum), read with pvapy.
    h.plant.control().raise_alarm(FAULT).await.unwrap();
    let text = h
        .pvget_until("T:Pump:Fault", "PumpFault alarm, unacknowledged")
        .await;
    assert!(text.contains("int severity 2"), "{text}");
    assert!(
        text.contains("PumpFault alarm, unacknowledged (priority 300)"),
        "{text}"
    );
    let run = clients()
        .python(
            &h.env,
            "import pvaccess\n\
             v = pvaccess.Channel('T:Pump:Fault').get('')\n\
             print('index', v['value']['index'], v['alarm']['message'])",
            &[],
        )
        .await;
    assert!(
        run.stdout
            .contains("index 1 PumpFault alarm, unacknowledged (priority 300)"),
        "{}",
        run.text()
    );
    let out = h.pvput("T:Pump:Fault:ACK", "reset at the drive").await;
    assert!(!out.contains("Error"), "{out}");
    h.pvget_until("T:Pump:Fault", "PumpFault alarm, acknowledged")
        .await;
    let table = h.table_until(|t| t.contains("|ACK_ALM|")).await;
    assert_eq!(rows(&table)[0][1], "T:Pump:Fault", "{table}");

    assert!(monitor.is_running());
    monitor.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_gateway_outage_the_alarm_set_is_exactly_the_gateways() {
    let h = start("").await;
    h.plant.control().raise_alarm(HIHI).await.unwrap();
    h.plant.control().raise_alarm(HI).await.unwrap();
    h.table_until(|t| rows(t).len() == 2).await;
    // Acknowledge Hi, so that clearing it during the outage makes it leave (ACK_RTN).
    let c = GatewayClient::connect(&ClientOptions::plaintext(h.plant.gateway.clone()))
        .await
        .unwrap();
    c.acknowledge_alarm(HI, "", "tester").await.unwrap();
    h.table_until(|t| t.contains("|ACK_ALM|")).await;

    // The gateway becomes unreachable; meanwhile alarms change.
    h.relay.set_up(false);
    h.pvget_until("T:Level", "gateway connection lost").await;
    let table = h
        .table_until(|t| t.contains("severity 3 alarm feed lost"))
        .await;
    assert_eq!(
        rows(&table).len(),
        2,
        "the last known set stays listed: {table}"
    );
    h.plant.control().clear_alarm(HI, false).await.unwrap(); // ACK_ALM -> ACK_RTN: gone
    h.plant.control().clear_alarm(HIHI, false).await.unwrap(); // UNACK_ALM -> UNACK_RTN: stays
    h.plant.control().raise_alarm(FAULT).await.unwrap(); // new
    h.relay.set_up(true);

    let table = h
        .table_until(|t| t.contains("severity 0") && t.contains(FAULT))
        .await;
    let got: Vec<(String, String)> = rows(&table)
        .into_iter()
        .map(|r| (r[0].clone(), r[4].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (HIHI.to_string(), "UNACK_RTN".to_string()),
            (FAULT.to_string(), "UNACK_ALM".to_string()),
        ],
        "{table}"
    );
    // The alarm feed may be back before the data session: wait for the link too.
    let text = h.pvget_until("T:Level", "int severity 0").await;
    assert!(text.contains("HiHi alarm returned"), "{text}");
    assert!(!text.contains("Hi alarm, "), "Hi is gone: {text}");
    h.pvget_until("T:Pump:Fault", "PumpFault alarm, unacknowledged")
        .await;
}

/// The account pvput presents, as a pvxs server sees it.
async fn pvput_account() -> String {
    let server = pva::Server::new(&ServerConfig::isolated()).unwrap();
    server.start().unwrap();
    let env = server.info().unwrap().client_env;
    let (events, mut rx) = pva::event_channel();
    let mut pv = SharedPv::new("WHO", Access::ReadWrite, &events).unwrap();
    pv.open(
        PvType::Scalar(ScalarType::String),
        &pva::Update::value(NtValue::String(String::new())),
    )
    .unwrap();
    server.add_pv(&pv).unwrap();
    let put = tokio::spawn(async move { clients().run("pvput", &env, &["WHO", "x"]).await });
    let account = loop {
        match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
            Ok(Some(PvEvent::Put(p))) => {
                let a = p.credentials.account.clone();
                p.completion.complete(Ok(()));
                break a;
            }
            Ok(Some(_)) => continue,
            other => panic!("no put: {other:?}"),
        }
    };
    put.await.unwrap();
    account
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_acknowledgement_and_local_limits_with_hysteresis() {
    let account = pvput_account().await;
    assert!(!account.is_empty());
    // The client's account is a Galaxy user without the AckAlarms permission.
    let users = format!(
        "[[users]]\nname = \"{account}\"\npassword = \"x\"\nid = 5\npermissions = [\"Operate\"]\n"
    );
    let h = start(&users).await;
    h.plant.control().raise_alarm(HIHI).await.unwrap();
    h.pvget_until("T:Level", "HiHi alarm, unacknowledged").await;
    let out = h.pvput("T:Level:ACK", "not mine to ack").await;
    assert!(
        out.contains(&format!(
            "T:Level:ACK: System Platform refused the acknowledgement: {HIHI}: NoAlarmAckPrivilege"
        )),
        "{out}"
    );
    let a = h.gateway_alarms().await;
    assert_eq!(a[0].state, AlarmState::UnackAlm, "still unacknowledged");
    h.pvget_until("T:Level", "HiHi alarm, unacknowledged").await;

    // Local limits: low 5, high 30, hihi 40, hysteresis 2; applied as a record does.
    let steps: [(f64, &str, &str); 7] = [
        (35.0, "int severity 1", "HIGH limit alarm (>= 30)"),
        (41.0, "int severity 2", "HIHI limit alarm (>= 40)"),
        (38.5, "int severity 2", "HIHI limit alarm (>= 40)"), // within the hysteresis
        (37.5, "int severity 1", "HIGH limit alarm (>= 30)"),
        (28.5, "int severity 1", "HIGH limit alarm (>= 30)"), // within the hysteresis
        (27.0, "int severity 0", "Good"),
        (4.0, "int severity 1", "LOW limit alarm (<= 5)"),
    ];
    for (x, severity, message) in steps {
        h.plant
            .control()
            .set_value("Tank001.Temp", &x.to_string(), None)
            .await
            .unwrap();
        let text = h.pvget_until("T:Temp", &format!("double value {x}")).await;
        assert!(text.contains(severity), "{x}: {text}");
        assert!(text.contains(message), "{x}: {text}");
        if message != "Good" {
            assert!(text.contains("int status 3"), "{x}: {text}");
        }
    }
    // valueAlarm carries the limits too.
    let text = h.pvget_until("T:Temp", "highAlarmLimit").await;
    assert!(text.contains("double highAlarmLimit 40"), "{text}");
}

/// `mxpva demo` as a user runs it: Tank001.Level crosses HiHi within a minute, shows on
/// DEMO:Tank001:Level and DEMO:ALARMS:ACTIVE, and is acknowledged through its :ACK PV.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_crosses_hihi_and_acknowledges_through_ack() {
    let (tcp, udp) = free_ports();
    let (server_env, env) = pva_env(tcp, udp);
    let mut demo = clients::spawn_mxpva(&["demo".as_ref()], &server_env);
    let run = clients()
        .python(
            &env,
            "from p4p.client.thread import Context\n\
             import time\n\
             c = Context('pva')\n\
             end = time.time() + 65\n\
             while time.time() < end:\n\
             \x20   v = c.get('DEMO:ALARMS:ACTIVE', timeout=10)\n\
             \x20   refs = list(v.value.todict()['reference'])\n\
             \x20   if any(r.endswith('Tank001.Level.HiHi') for r in refs):\n\
             \x20       print('seen', refs)\n\
             \x20       break\n\
             \x20   time.sleep(0.5)\n",
            &[],
        )
        .await;
    assert!(
        run.stdout.contains("seen"),
        "no HiHi within 65 s: {}",
        run.text()
    );
    let text = clients()
        .pvget_until(&env, &["-v", "DEMO:Tank001:Level"], "HiHi alarm")
        .await;
    assert!(text.contains("HiHi alarm"), "{text}");
    let out = clients()
        .run("pvput", &env, &["DEMO:Tank001:Level:ACK", "demo ack"])
        .await
        .text();
    // Refused only if the alarm was acknowledged in between (it was not) or returned and
    // left; the demo's operator is the local account, not a Galaxy user.
    assert!(!out.contains("Error"), "{out}");
    // Acknowledged: still in alarm and so shown acknowledged, or (had it just returned)
    // gone from the PV.
    let mut text = String::new();
    for _ in 0..50 {
        text = clients()
            .run("pvget", &env, &["-v", "DEMO:Tank001:Level"])
            .await
            .text();
        if text.contains("HiHi alarm, acknowledged") || !text.contains("HiHi") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        text.contains("HiHi alarm, acknowledged") || !text.contains("HiHi"),
        "{text}"
    );
    demo.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_pv_without_active_alarms_is_no_alarm_after_start_and_after_a_reconnect() {
    let h = start("").await;
    // No alarm of Pump001 is active: the snapshot makes the alarm PV NORMAL, NO_ALARM.
    let text = h.pvget_until("T:Pump:Fault", "int severity 0").await;
    assert!(!text.contains("waiting for the alarm feed"), "{text}");
    h.relay.set_up(false);
    h.pvget_until("T:Pump:Fault", "alarm feed lost").await;
    h.relay.set_up(true);
    h.table_until(|t| t.contains("severity 0")).await;
    let text = h.pvget_until("T:Pump:Fault", "int severity 0").await;
    assert!(!text.contains("alarm feed lost"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_alarm_feed_shows_on_pvs_that_carry_alarms() {
    let h = start("").await;
    h.plant.control().raise_alarm(HIHI).await.unwrap();
    h.pvget_until("T:Level", "HiHi alarm, unacknowledged").await;
    let (mut monitor, mut lines) =
        clients().spawn_lines("python", &h.env, &["-u", "-c", P4P_MONITOR]);
    let next_update = async |lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
                             ok: &dyn Fn(&str) -> bool| loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.recv())
            .await
            .unwrap_or_else(|_| panic!("no such update"))
            .expect("monitor ended");
        if line.starts_with("update ") && ok(&line) {
            return line;
        }
    };
    next_update(&mut lines, &|l| l.contains("HiHi alarm")).await;

    // Only the feed ends: more transitions than the simulator's alarm channel holds make
    // it drop the feed subscriber ("fell behind; resubscribe"); the data session stays.
    // (Through the simulator's own handle: its control service is slower than the feed.)
    for _ in 0..20_000 {
        h.plant.sim_handle().clear_alarm(HI).unwrap();
        h.plant.sim_handle().raise_alarm(HI).unwrap();
    }
    let line = next_update(&mut lines, &|l| l.contains("alarm feed lost")).await;
    assert!(!line.contains("connection lost"), "{line}");
    assert!(
        line.contains(" 2 HiHi alarm, unacknowledged (priority 100)"),
        "the alarms stay, MAJOR leads: {line}"
    );
    assert!(!line.contains("resubscribe"), "no transport detail: {line}");
    // The next snapshot clears it.
    let line = next_update(&mut lines, &|l| !l.contains("alarm feed lost")).await;
    assert!(line.contains("HiHi alarm"), "{line}");

    // The whole gateway unreachable: the value's own INVALID leads, the feed is named.
    h.relay.set_up(false);
    let text = h.pvget_until("T:Level", "alarm feed lost").await;
    assert!(text.contains("gateway connection lost"), "{text}");
    assert!(text.contains("int severity 3"), "{text}");
    // A PV without alarms is not touched.
    let text = h.pvget_until("T:Temp", "gateway connection lost").await;
    assert!(!text.contains("alarm feed lost"), "{text}");
    h.relay.set_up(true);
    h.table_until(|t| t.contains("severity 0")).await;
    let text = h.pvget_until("T:Level", "HiHi alarm, unacknowledged").await;
    assert!(!text.contains("alarm feed lost"), "{text}");
    assert!(monitor.is_running());
    monitor.kill();
}
