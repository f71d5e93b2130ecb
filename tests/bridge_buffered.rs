//! Buffered PVs end to end (issue 24): `mxpva sim` and `mxpva run` as processes on
//! loopback, the simulator driven through its control service, the PVs watched by a p4p
//! monitor that asks for a queue (`record[queueSize=200]`).
//!
//! - A burst of 100 samples 1 ms apart (100 SetValue calls) on a buffered PV reaches the
//!   queued monitor complete, in order, with strictly increasing timeStamps equal to the
//!   source times (recorded by a buffered item of the test's own gateway session); a
//!   plain PV of the same attribute gets the latest value of each scan.
//! - A reload switches a PV between buffered and plain without a disconnect.
//! - A burst across a gateway reconnect: no sample posted twice, nothing out of order
//!   (the first value after the reconnect follows the timeStamp rule).
//! - Past `[limits] max_buffered_samples`, the newest samples of an event reach the
//!   monitor in order, `Updates:BufferedDropped` counts the others, and the log names the
//!   cap once.
//!
//! The 1 ms between the SetValue calls is the burst itself (the input), not a wait for
//! the bridge: every wait here is for a monitor update or a log line.

mod clients;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clients::clients;
use clients::plant::Plant;
use mxpva::gateway::{ClientOptions, GatewayClient, MxValue, SessionEvent};
use serde_json::Value;

const CONFIG: &str = r#"
[gateway]
endpoint = "http://{gateway}"
client_name = "mxpva-buffered"
reconnect_initial = "100ms"
reconnect_max = "400ms"
buffered_interval = "100ms"

[alarms]
enabled = false

[[pv]]
name = "B:Flow"
tag = "Tank001.Flow"
type = "float64"
buffered = true
writable = true

[[pv]]
name = "P:Flow"
tag = "Tank001.Flow"
type = "float64"
buffered = {plain_buffered}
"#;

/// Prints one JSON line per update of every PV named (monitored with a queue of 200):
/// its name, the timeStamp as seconds and nanoseconds, the value and the alarm; an
/// `error` line on a disconnect.
const P4P_QUEUED: &str = r#"
import json, sys, threading, time
from p4p.client.thread import Context
ctx = Context('pva', nt=False)
lock = threading.Lock()
def cb(name):
    def f(v):
        if isinstance(v, Exception):
            line = {'pv': name, 'error': '%s: %s' % (type(v).__name__, v)}
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
subs = [ctx.monitor(n, cb(n), request='record[queueSize=200]', notify_disconnect=True)
        for n in sys.argv[1:]]
time.sleep(300)
"#;

/// The status PV of the data changes per second (`[status]` prefix by default `mxpva:`).
const RATE: &str = "mxpva:Updates:Rate";
/// The status PV of the buffered samples dropped past `[limits] max_buffered_samples`.
const DROPPED: &str = "mxpva:Updates:BufferedDropped";

/// A simulator process and a bridge process.
fn config_text(plain_buffered: bool) -> String {
    CONFIG.replace("{plain_buffered}", &plain_buffered.to_string())
}

impl Plant {
    async fn start(name: &str) -> Plant {
        Plant::start_with(name, "").await
    }

    /// [`Plant::start`], with `extra` (TOML tables) after the config.
    async fn start_with(name: &str, extra: &str) -> Plant {
        Plant::new(&format!("buffered-{name}"))
            .galaxy("buffered")
            .config(&(config_text(false) + extra))
            .start()
            .await
    }

    async fn set(&self, value: f64) {
        self.control()
            .set_value("Tank001.Flow", &value.to_string(), None)
            .await
            .unwrap();
    }

    /// 100 samples, 1 ms apart: `from`, `from + 1`, ...
    async fn burst(&self, from: f64) {
        for k in 0..100 {
            self.set(from + k as f64).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn monitor(&self, pvs: &[&str]) -> Monitor {
        let mut args = vec!["-c", P4P_QUEUED];
        args.extend_from_slice(pvs);
        let (child, lines) = clients().spawn_lines("python", &self.env, &args);
        Monitor {
            _child: child,
            lines,
            seen: Vec::new(),
        }
    }
}

/// One update as [`P4P_QUEUED`] printed it.
#[derive(Debug, Clone)]
struct Update {
    pv: String,
    time: (i64, i64),
    value: f64,
    severity: i64,
    message: String,
}

struct Monitor {
    _child: clients::ClientChild,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Every update so far, in order.
    seen: Vec<Update>,
}

impl Monitor {
    /// Reads updates until one of `pv` satisfies `done` (at most `within`), panicking on
    /// a disconnect; returns the index of that update in `seen`.
    async fn until(
        &mut self,
        pv: &str,
        what: &str,
        within: Duration,
        done: impl Fn(&Update) -> bool,
    ) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => panic!("the p4p monitor ended while waiting for {pv}: {what}"),
                Err(_) => panic!(
                    "{pv}: no update where {what} within {within:?}; last: {:#?}",
                    self.seen.iter().rev().take(5).collect::<Vec<_>>()
                ),
            };
            let j: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            if j.get("error").is_some() {
                // p4p reports "Disconnected" before a channel's first connect; after
                // the PV's first value, a disconnect is a failure.
                let name = j["pv"].as_str().unwrap_or_default();
                assert!(
                    !self.seen.iter().any(|u| u.pv == name),
                    "the monitor saw a disconnect or an error after a value: {line}"
                );
                continue;
            }
            let u = Update {
                pv: j["pv"].as_str().unwrap().to_string(),
                time: (j["s"].as_i64().unwrap(), j["ns"].as_i64().unwrap()),
                value: j["value"].as_f64().unwrap_or(f64::NAN),
                severity: j["sev"].as_i64().unwrap(),
                message: j["msg"].as_str().unwrap_or_default().to_string(),
            };
            let stop = u.pv == pv && done(&u);
            self.seen.push(u);
            if stop {
                return self.seen.len() - 1;
            }
        }
    }

    /// [`Monitor::until`], unless an update of `pv` seen already satisfies `done`.
    async fn seen_or_until(
        &mut self,
        pv: &str,
        what: &str,
        within: Duration,
        done: impl Fn(&Update) -> bool,
    ) {
        if !self.of(pv).iter().any(&done) {
            self.until(pv, what, within, done).await;
        }
    }

    fn of(&self, pv: &str) -> Vec<Update> {
        self.seen.iter().filter(|u| u.pv == pv).cloned().collect()
    }
}

fn stamp(t: SystemTime) -> (i64, i64) {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    (d.as_secs() as i64, i64::from(d.subsec_nanos()))
}

/// The source time of each sample of `Tank001.Flow`, by value, as a buffered item of
/// the test's own gateway session gets them, until `last` came.
async fn source_times(
    events: &mut mxpva::gateway::EventStream,
    last: f64,
) -> HashMap<u64, (i64, i64)> {
    let mut times = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !times.contains_key(&last.to_bits()) {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("the recorder's buffered item got every sample within 20 s")
            .expect("the recorder's event stream goes on")
            .unwrap();
        if let SessionEvent::BufferedDataChange(b) = ev {
            for (v, _, t) in b.samples {
                if let (MxValue::Double(v), Some(t)) = (v, t) {
                    times.insert(v.to_bits(), stamp(t));
                }
            }
        }
    }
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100_samples_reaches_a_queued_monitor_complete_in_order_at_source_times() {
    let plant = Plant::start("burst").await;
    // The source times, as a buffered item of a session of the test's own records them.
    let client = GatewayClient::connect(&ClientOptions::plaintext(plant.gateway.as_str()))
        .await
        .unwrap();
    let session = client.open_session("recorder").await.unwrap();
    let server = session.register("recorder").await.unwrap();
    session
        .set_buffered_update_interval(server, Duration::from_millis(50))
        .await
        .unwrap();
    let mut events = session.events(None).await.unwrap();
    let item = session
        .add_buffered_item(server, "Tank001.Flow")
        .await
        .unwrap();
    session.advise(server, item).await.unwrap();

    let mut m = plant.monitor(&["B:Flow", "P:Flow", RATE]);
    m.until(
        "B:Flow",
        "served with its first value",
        Duration::from_secs(20),
        |u| u.severity == 0 && u.value == 5.0,
    )
    .await;
    let start = m.seen.len();
    plant.burst(1000.0).await;
    m.until(
        "B:Flow",
        "the last sample (1099)",
        Duration::from_secs(20),
        |u| u.value == 1099.0,
    )
    .await;
    let times = source_times(&mut events, 1099.0).await;

    let burst: Vec<Update> = m.seen[start..]
        .iter()
        .filter(|u| u.pv == "B:Flow")
        .cloned()
        .collect();
    let values: Vec<f64> = burst.iter().map(|u| u.value).collect();
    let expected: Vec<f64> = (0..100).map(|k| 1000.0 + k as f64).collect();
    assert_eq!(
        values, expected,
        "the queued monitor of the buffered PV got every sample, in order, once"
    );
    for pair in burst.windows(2) {
        assert!(
            pair[1].time > pair[0].time,
            "timeStamps strictly increase: {pair:#?}"
        );
    }
    for u in &burst {
        assert_eq!(u.severity, 0, "{u:?}");
        assert_eq!(
            Some(&u.time),
            times.get(&u.value.to_bits()),
            "the timeStamp of sample {} is its source time",
            u.value
        );
    }
    // The plain PV of the same attribute gets the latest value of each scan (20 ms):
    // fewer updates than samples, in order, ending at the latest.
    if !m.of("P:Flow").iter().any(|u| u.value == 1099.0) {
        m.until("P:Flow", "the latest value", Duration::from_secs(20), |u| {
            u.value == 1099.0
        })
        .await;
    }
    let plain: Vec<f64> = m.seen[start..]
        .iter()
        .filter(|u| u.pv == "P:Flow")
        .map(|u| u.value)
        .collect();
    assert!(
        !plain.is_empty() && plain.len() < 100,
        "the plain PV got the latest value of each scan, not every sample: {plain:?}"
    );
    assert!(plain.windows(2).all(|w| w[1] > w[0]), "{plain:?}");
    // Updates:Rate counts samples: the burst's 100 (over two 1 s windows at most, so one
    // shows 50 or more), where counting events would give a few.
    if !m.of(RATE).iter().any(|u| u.value >= 50.0) {
        m.until(RATE, "a rate of 50 or more", Duration::from_secs(5), |u| {
            u.value >= 50.0
        })
        .await;
    }
    // No sample was dropped (the cap is 1,000).
    let log = std::fs::read_to_string(&plant.log).unwrap_or_default();
    assert!(!log.contains("max_buffered_samples"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_switches_a_pv_between_buffered_and_plain_without_a_disconnect() {
    let plant = Plant::start("reload").await;
    let mut m = plant.monitor(&["P:Flow"]);
    m.until("P:Flow", "served", Duration::from_secs(20), |u| {
        u.severity == 0 && u.value == 5.0
    })
    .await;
    // Plain -> buffered, in place.
    plant.write_config(&config_text(true));
    plant.hangup();
    let log = plant.logged("PV changed in place", 1).await;
    assert!(
        log.lines()
            .any(|l| l.contains("P:Flow") && l.contains("Buffered")),
        "{log}"
    );
    plant.set(2000.0).await;
    m.until(
        "P:Flow",
        "2000 through the buffered item",
        Duration::from_secs(20),
        |u| u.value == 2000.0 && u.severity == 0,
    )
    .await;
    // Buffered -> plain, in place.
    plant.write_config(&config_text(false));
    plant.hangup();
    plant.logged("PV changed in place", 2).await;
    plant.set(2001.0).await;
    m.until(
        "P:Flow",
        "2001 through the plain item",
        Duration::from_secs(20),
        |u| u.value == 2001.0 && u.severity == 0,
    )
    .await;
    // No disconnect (checked on every line by `until`), and the timeStamps never went
    // back across the switches.
    let seen = m.of("P:Flow");
    for pair in seen.windows(2) {
        assert!(pair[1].time > pair[0].time, "{pair:#?}");
    }
    // A put to a writable buffered PV (B:Flow) goes through a plain item of the
    // attribute; P:Flow, buffered again, shows it.
    plant.write_config(&config_text(true));
    plant.hangup();
    plant.logged("PV changed in place", 3).await;
    let put = clients().p4p_put(&plant.env, "B:Flow", "3000.0").await;
    assert_eq!(put.trim(), "ok", "{put}");
    m.until(
        "P:Flow",
        "the value put through B:Flow",
        Duration::from_secs(20),
        |u| u.value == 3000.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_across_a_reconnect_posts_no_sample_twice_and_nothing_out_of_order() {
    let plant = Plant::start("reconnect").await;
    let mut m = plant.monitor(&["B:Flow"]);
    m.until("B:Flow", "served", Duration::from_secs(20), |u| {
        u.severity == 0 && u.value == 5.0
    })
    .await;
    let start = m.seen.len();
    let control = plant.control().clone();
    let mut dropped = None;
    for k in 0..100 {
        plant.set(1000.0 + k as f64).await;
        if k == 50 {
            // The bridge's event stream ends: it reconnects with a new session.
            control.drop_event_streams(None).await.unwrap();
            dropped = Some(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(dropped.is_some());
    m.until(
        "B:Flow",
        "the last sample, valid",
        Duration::from_secs(20),
        |u| u.value == 1099.0 && u.severity == 0,
    )
    .await;
    let seen: Vec<Update> = m.seen[start..].to_vec();
    assert!(
        seen.iter()
            .any(|u| u.severity == 3 && u.message.contains("gateway connection lost")),
        "the monitor saw the reconnect: {seen:#?}"
    );
    for pair in seen.windows(2) {
        assert!(
            pair[1].time > pair[0].time,
            "timeStamps strictly increase: {pair:#?}"
        );
    }
    // Valid samples: increasing, each once; only the first value after the reconnect
    // may repeat the last one before it (the attribute's current value, re-read by the
    // new session's item), and it comes after the INVALID of the loss.
    let mut last: Option<&Update> = None;
    let mut after_loss = false;
    for u in &seen {
        if u.severity == 3 {
            after_loss = true;
            continue;
        }
        if let Some(l) = last {
            let repeat_allowed = after_loss && u.value == l.value;
            assert!(
                u.value > l.value || repeat_allowed,
                "sample {} after {} (after the loss: {after_loss}): {seen:#?}",
                u.value,
                l.value
            );
        }
        after_loss = false;
        last = Some(u);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_past_max_buffered_samples_are_dropped_oldest_first_counted_and_logged_once() {
    let plant = Plant::start_with("dropped", "\n[limits]\nmax_buffered_samples = 20\n").await;
    let mut m = plant.monitor(&["B:Flow", DROPPED]);
    m.until("B:Flow", "served", Duration::from_secs(20), |u| {
        u.severity == 0 && u.value == 5.0
    })
    .await;
    m.seen_or_until(DROPPED, "none dropped yet", Duration::from_secs(20), |u| {
        u.value == 0.0
    })
    .await;
    // The bridge's session: the simulator's buffered burst goes to its buffered items.
    let session = loop {
        let sessions = plant.control().sessions().await.unwrap();
        if let Some(s) = sessions
            .iter()
            .find(|s| s.client_session_name == "mxpva-buffered" && s.state == "Ready")
        {
            break s.session_id.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Two events of 50 samples each (one BufferedBurst is one OnBufferedDataChange of
    // every sample): the newest 20 of each are posted, 30 of each dropped.
    for (round, from) in [1000.0, 2000.0].into_iter().enumerate() {
        let start = m.seen.len();
        plant
            .control()
            .buffered_burst(&session, 50, from)
            .await
            .unwrap();
        m.until(
            "B:Flow",
            "the newest sample",
            Duration::from_secs(20),
            |u| u.value == from + 49.0,
        )
        .await;
        let got: Vec<f64> = m.seen[start..]
            .iter()
            .filter(|u| u.pv == "B:Flow")
            .map(|u| u.value)
            .collect();
        let newest: Vec<f64> = (30..50).map(|k| from + f64::from(k)).collect();
        assert_eq!(got, newest, "the newest 20 samples, in order, once");
        let dropped = 30.0 * (round + 1) as f64;
        m.seen_or_until(
            DROPPED,
            &format!("{dropped} dropped"),
            Duration::from_secs(20),
            |u| u.value == dropped,
        )
        .await;
    }
    assert!(
        m.of(DROPPED).iter().all(|u| u.value <= 60.0),
        "{:?}",
        m.of(DROPPED)
    );
    // The log names the cap once (further drops are logged at debug).
    let log = std::fs::read_to_string(&plant.log).unwrap();
    let named: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("max_buffered_samples"))
        .collect();
    assert_eq!(named.len(), 1, "{log}");
    assert!(
        named[0].contains("B:Flow") && named[0].contains("dropped=30"),
        "{}",
        named[0]
    );
}
