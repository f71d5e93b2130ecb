//! The simulator pushes data changes when they happen (issue 15), as the real gateway
//! forwards MXAccess events as they fire, rather than from a polling loop.
//!
//! The Galaxy here ticks once a minute (the longest tick a Galaxy may have) and its first
//! OnDataChange after Advise takes a second. A simulator that polled for changes would
//! poll once a second at best (its old loop ran at the first-update delay), so every
//! data change these tests see before a later event of the same session (each
//! synchronised on an event, never on a sleep) was pushed when it happened; and each
//! test checks it ends well inside the first minute, before any tick.
//!
//! - A write's OnDataChange comes at once and before its OnWriteComplete; a write of
//!   the value the attribute has gives the OnWriteComplete alone.
//! - SimControl SetValue / SetQuality (and releasing a held quality) reach a buffered
//!   item at once, each its own sample; a plain item gets the latest value at the end of
//!   the scan (issue 24), so none of them within the first minute.
//! - A value set across an alarm limit raises (and back, clears) its alarm at once.
//! - A p4p put through `mxpva run` in front of such a simulator completes, and a get
//!   right after it reads the value back.
mod clients;

use std::time::{Duration, Instant};

use clients::clients;
use clients::plant::Plant;
use mxpva::gateway::*;
use mxpva::sim::{Galaxy, RemoteSim, SimHandle, SimOptions};

const GALAXY: &str = include_str!("fixtures/galaxy/sim_push.toml");

/// The tick of [`GALAXY`]: nothing the tests see may wait for it.
const TICK: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

struct Sim {
    handle: SimHandle,
    addr: std::net::SocketAddr,
    started: Instant,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn sim() -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = SimHandle::new(
        Galaxy::from_toml(GALAXY, "sim_push").unwrap(),
        SimOptions::default(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    tokio::spawn(handle.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    Sim {
        handle,
        addr,
        started,
        _stop: stop,
    }
}

impl Sim {
    /// A session with `tags` subscribed, its event stream, and their first values.
    async fn session(
        &self,
        tags: &[&str],
    ) -> (Session, ServerHandle, Vec<ItemHandle>, EventStream) {
        let c = GatewayClient::connect(&ClientOptions::plaintext(self.addr.to_string()))
            .await
            .unwrap();
        let s = c.open_session("push").await.unwrap();
        let server = s.register("push").await.unwrap();
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let items: Vec<ItemHandle> = s
            .subscribe_bulk(server, &tags)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                assert!(r.outcome.is_ok(), "{}: {:?}", r.tag, r.outcome);
                r.item_handle
            })
            .collect();
        let mut events = s.events(None).await.unwrap();
        for &item in &items {
            until(&mut events, "a first value", |e| is_change_of(e, item)).await;
        }
        (s, server, items, events)
    }

    /// Nothing a test saw can have come from a tick.
    fn before_any_tick(&self) {
        let t = self.started.elapsed();
        assert!(t < TICK, "the test took {t:?}: a tick may have happened");
    }
}

fn is_change_of(e: &SessionEvent, item: ItemHandle) -> bool {
    matches!(e, SessionEvent::DataChange(d) if d.item_handle == item)
}

/// The events up to and including the first that `last` accepts (within [`WAIT`]).
async fn until(
    events: &mut EventStream,
    what: &str,
    last: impl Fn(&SessionEvent) -> bool,
) -> Vec<SessionEvent> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}; saw {seen:?}"))
            .expect("the event stream ended")
            .expect("the event stream failed");
        let done = last(&ev);
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

/// What `events` says of `item`: its data changes as (value, quality), and whether
/// an OnWriteComplete of it came, in order.
fn of_item(events: &[SessionEvent], item: ItemHandle) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::DataChange(d) if d.item_handle == item => {
                Some(format!("change {:?} {}", d.value, d.quality.description()))
            }
            SessionEvent::WriteComplete(w) if w.item_handle == item => {
                Some(format!("write complete, failure {:?}", w.failure()))
            }
            _ => None,
        })
        .collect()
}

/// Writes `value` to `item` and returns the session's events up to its OnWriteComplete.
async fn write(
    s: &Session,
    server: ServerHandle,
    events: &mut EventStream,
    item: ItemHandle,
    value: f64,
) -> Vec<SessionEvent> {
    let entry = WriteEntry::new(item, MxValue::Double(value));
    s.write(server, WriteKind::Write, &entry).await.unwrap();
    until(
        events,
        "OnWriteComplete",
        |e| matches!(e, SessionEvent::WriteComplete(w) if w.item_handle == item),
    )
    .await
}

#[tokio::test]
async fn a_write_s_data_change_comes_at_once_and_before_its_write_complete() {
    let sim = sim().await;
    let (s, server, items, mut events) = sim.session(&["Tank001.SP"]).await;
    let sp = items[0];
    let good = "change Double(20.0) Good";
    let done = "write complete, failure None";

    let t = Instant::now();
    let seen = write(&s, server, &mut events, sp, 20.0).await;
    let took = t.elapsed();
    assert_eq!(of_item(&seen, sp), [good, done]);

    // The value it has: the OnWriteComplete alone. Had it brought a data change, that
    // would come before the next write's events.
    let seen = write(&s, server, &mut events, sp, 20.0).await;
    assert_eq!(of_item(&seen, sp), [done]);
    let seen = write(&s, server, &mut events, sp, 30.0).await;
    assert_eq!(
        of_item(&seen, sp),
        ["change Double(30.0) Good", done],
        "the write of the same value brought a data change"
    );
    // Element and batch writes of other kinds go the same way.
    let entries = [WriteEntry::new(sp, MxValue::Double(31.0))];
    s.write_bulk(server, WriteKind::Write2, &entries)
        .await
        .unwrap();
    let seen = until(
        &mut events,
        "OnWriteComplete",
        |e| matches!(e, SessionEvent::WriteComplete(w) if w.item_handle == sp),
    )
    .await;
    assert_eq!(of_item(&seen, sp), ["change Double(31.0) Good", done]);
    sim.before_any_tick();
    eprintln!("write to OnWriteComplete, with its data change first: {took:?}");
}

/// The samples of `item`'s OnBufferedDataChange events in `events`, as (value, quality).
fn samples_of(events: &[SessionEvent], item: ItemHandle) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::BufferedDataChange(b) if b.item_handle == item => Some(
                b.samples
                    .iter()
                    .map(|(v, q, _)| format!("{v:?} {}", q.description()))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Control calls change an attribute within the current scan (issue 24): a buffered item
/// gets each change as a sample at once (at its next flush, no tick needed), and a plain
/// item waits for the end of the scan (a minute here), so it sees none of them.
#[tokio::test]
async fn a_simcontrol_set_value_or_quality_reaches_a_buffered_item_at_once_and_a_plain_one_at_the_scan_end(
) {
    let sim = sim().await;
    let control = RemoteSim::connect(&sim.addr.to_string(), None)
        .await
        .unwrap();
    let (s, server, items, mut events) = sim.session(&["Tank001.Level"]).await;
    let level = items[0];
    s.set_buffered_update_interval(server, Duration::from_millis(10))
        .await
        .unwrap();
    let buffered = s.add_buffered_item(server, "Tank001.Level").await.unwrap();
    s.advise(server, buffered).await.unwrap();
    let is_batch = |e: &SessionEvent| matches!(e, SessionEvent::BufferedDataChange(b) if b.item_handle == buffered);
    let first = until(&mut events, "the buffered item's first value", is_batch).await;
    assert_eq!(samples_of(&first, buffered).len(), 1, "{first:?}");
    let mut plain_seen = of_item(&first, level);

    control
        .set_value("Tank001.Level", "75", None)
        .await
        .unwrap();
    let seen = until(&mut events, "the sample of SetValue", is_batch).await;
    assert_eq!(samples_of(&seen, buffered), ["Double(75.0) Good"]);
    plain_seen.extend(of_item(&seen, level));

    let bad = Quality::BAD_COMM_FAILURE;
    control
        .set_quality("Tank001.Level", Some(bad))
        .await
        .unwrap();
    let seen = until(&mut events, "the sample of SetQuality", is_batch).await;
    assert_eq!(
        samples_of(&seen, buffered),
        ["Double(75.0) Bad: communication failure"]
    );
    plain_seen.extend(of_item(&seen, level));

    // Released: back to Good at once (the tick no longer visits this attribute).
    control.set_quality("Tank001.Level", None).await.unwrap();
    let seen = until(&mut events, "the sample of the release", is_batch).await;
    assert_eq!(samples_of(&seen, buffered), ["Double(75.0) Good"]);
    plain_seen.extend(of_item(&seen, level));

    // Value and quality in one call: one sample; then two more calls in the same scan,
    // each its own sample (the in-process handle pushes the same way), and the same
    // value again is no change.
    control
        .set_value("Tank001.Level", "80", Some(Quality::UNCERTAIN_EU_EXCEEDED))
        .await
        .unwrap();
    sim.handle
        .set_value("Tank001.Level", MxValue::Double(81.0))
        .unwrap();
    sim.handle
        .set_value("Tank001.Level", MxValue::Double(81.0))
        .unwrap();
    let mut seen = Vec::new();
    while samples_of(&seen, buffered).len() < 2 {
        seen.extend(until(&mut events, "the samples of three calls", is_batch).await);
    }
    assert_eq!(
        samples_of(&seen, buffered),
        [
            "Double(80.0) Uncertain: engineering units exceeded",
            "Double(81.0) Uncertain: engineering units exceeded"
        ]
    );
    plain_seen.extend(of_item(&seen, level));
    // The plain item waits for the end of the scan: none of these reached it yet.
    assert!(plain_seen.is_empty(), "{plain_seen:?}");
    sim.before_any_tick();
}

const BRIDGE: &str = r#"
[gateway]
endpoint = "http://{gateway}"
client_name = "mxpva-push"

[[pv]]
name = "PUSH:SP"
tag = "Tank001.SP"
type = "float64"
writable = true
"#;

/// Puts `sys.argv[2]` to PV `sys.argv[1]` and gets it right after; prints JSON:
/// how long the put took, and the value read back (or the error).
const PUT_GET: &str = r#"
import json, sys, time
from p4p.client.thread import Context
ctx = Context('pva')
out = {}
try:
    t = time.monotonic()
    ctx.put(sys.argv[1], float(sys.argv[2]), timeout=10)
    out['put_ms'] = (time.monotonic() - t) * 1000
    out['value'] = float(ctx.get(sys.argv[1], timeout=5))
except Exception as e:
    out['error'] = '%s: %s' % (type(e).__name__, e)
print(json.dumps(out))
"#;

#[tokio::test]
async fn a_p4p_put_through_mxpva_run_completes_and_reads_back_at_once() {
    // The first value after Advise takes 3 s here: a simulator that polled for changes
    // would poll every 3 s.
    let started = Instant::now();
    let plant = Plant::new("sim-push")
        .galaxy_text(GALAXY.replace(
            "first_update_delay_ms = 1000",
            "first_update_delay_ms = 3000",
        ))
        .config(BRIDGE)
        .start()
        .await;
    let control = plant.control().clone();
    let env = plant.env.clone();
    // Served with its first value (10, NO_ALARM), not the INVALID of its start.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = plant.get(&["PUSH:SP"]).await;
        if got["PUSH:SP"]["value"].as_f64() == Some(10.0)
            && got["PUSH:SP"]["alarm"]["severity"].as_i64() == Some(0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PUSH:SP never had its first value: {got}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for value in ["42.5", "42.5", "-7.25"] {
        let run = clients().python(&env, PUT_GET, &["PUSH:SP", value]).await;
        let out: serde_json::Value = serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("the script printed no JSON ({e}): {}", run.text()));
        assert!(out["error"].is_null(), "put {value}: {out}");
        assert_eq!(
            out["value"].as_f64(),
            value.parse::<f64>().ok(),
            "put {value}, read back: {out}"
        );
        eprintln!(
            "p4p put {value}: {:.1} ms",
            out["put_ms"].as_f64().unwrap_or(-1.0)
        );
    }
    // Every put reached the gateway as a write, the same value twice.
    let writes: Vec<String> = control
        .writes()
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.reference == "Tank001.SP")
        .map(|w| w.value)
        .collect();
    assert_eq!(writes, ["Double(42.5)", "Double(42.5)", "Double(-7.25)"]);
    let t = started.elapsed();
    assert!(t < TICK, "the test took {t:?}: a tick may have happened");
}

/// The next alarm transition on `feed` (within [`WAIT`]).
async fn next_transition(feed: &mut AlarmFeed) -> AlarmTransition {
    loop {
        match tokio::time::timeout(WAIT, feed.next()).await {
            Ok(Some(Ok(AlarmFeedItem::Transition(t)))) => return t,
            Ok(Some(Ok(_))) => {}
            other => panic!("the alarm feed: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_set_across_a_limit_raises_and_clears_its_alarm_at_once() {
    let sim = sim().await;
    let c = GatewayClient::connect(&ClientOptions::plaintext(sim.addr.to_string()))
        .await
        .unwrap();
    let mut feed = c.stream_alarms("").await.unwrap();
    loop {
        match feed.next().await {
            Some(Ok(AlarmFeedItem::SnapshotComplete { .. })) => break,
            Some(Ok(_)) => {}
            other => panic!("the alarm feed: {other:?}"),
        }
    }
    // Across HiHi and back within one tick: both transitions, each when the value moved.
    sim.handle
        .set_value("Tank001.Level", MxValue::Double(95.0))
        .unwrap();
    let raised = next_transition(&mut feed).await;
    assert!(raised.reference.ends_with("Level.HiHi"), "{raised:?}");
    assert_eq!(raised.kind, AlarmTransitionKind::Raise, "{raised:?}");
    sim.handle
        .set_value("Tank001.Level", MxValue::Double(60.0))
        .unwrap();
    let cleared = next_transition(&mut feed).await;
    assert!(cleared.reference.ends_with("Level.HiHi"), "{cleared:?}");
    assert_eq!(cleared.kind, AlarmTransitionKind::Clear, "{cleared:?}");
    sim.before_any_tick();
}
