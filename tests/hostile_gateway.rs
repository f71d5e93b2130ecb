//! A hostile gateway: a gRPC server of the test's own that speaks the MXAccess Gateway
//! contract (the generated code of proto/, from OUT_DIR) and feeds `mxpva run` messages
//! the real gateway should never send: arrays and sparse arrays claiming 4294967295
//! elements, strings past the cap, NaN and infinities, times before the year 1 and nanos
//! past a second, qualities wider than 16 bits, unknown data types, families and status
//! codes, one item handle given to two tags, events for items never subscribed, and
//! write completions nobody waits for or in another order than the writes.
//!
//! Read with p4p: the affected PVs say why in `alarm.message`, the others keep serving
//! correct values, puts complete with their own outcome, the process stays up, and the
//! bridge never needed a second gateway session.

mod clients;
mod hostile;

use std::time::Duration;

use clients::{clients, Seen};
use hostile::pb;
use hostile::{data_change, double, handle, value, write_complete, Rig, FILETIME_EPOCH};

const INVALID: i64 = 3;
const DRIVER: i64 = 2;
const CONF: i64 = 5;
const NO_ALARM: i64 = 0;

fn says(s: &Seen, severity: i64, status: i64, message: &str) -> bool {
    s.severity() == Some(severity) && s.status() == Some(status) && s.message() == message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_gateway_data_shows_on_its_pv_alone() {
    let mut rig = Rig::start("data").await;
    let pvs: Vec<String> = [
        "Good",
        "Huge",
        "Sparse",
        "LongText",
        "OldSource",
        "BadTime",
        "BadNanos",
        "BadQuality",
        "UnknownType",
        "OddStatus",
        "Dup1",
        "Dup2",
    ]
    .iter()
    .map(|p| format!("HOSTILE:{p}"))
    .collect();
    let names: Vec<&str> = pvs.iter().map(String::as_str).collect();
    let mut watch = rig.watch(&names);
    let within = Duration::from_secs(20);

    // One good value first, so that the PVs that go bad later had one to keep.
    rig.send(data_change(handle("Plant.Good"), double(1.5)));
    rig.send(data_change(handle("Plant.BadTime"), double(7.0)));
    watch
        .until("HOSTILE:BadTime", "the first value", within, |s| {
            s.v["value"] == 7.0
        })
        .await;

    use pb::mx_value::Kind;
    let huge_array = value(Kind::ArrayValue(pb::MxArray {
        element_data_type: pb::MxDataType::Double as i32,
        dimensions: vec![u32::MAX],
        double_values: vec![1.0, 2.0],
        ..Default::default()
    }));
    rig.send(data_change(handle("Plant.Huge[]"), huge_array));
    let huge_sparse = value(Kind::SparseArrayValue(pb::MxSparseArray {
        element_data_type: pb::MxDataType::Double as i32,
        total_length: u32::MAX,
        elements: vec![],
    }));
    rig.send(data_change(handle("Plant.Sparse"), huge_sparse));
    let long_text = "x".repeat(70_000);
    rig.send(data_change(
        handle("Plant.LongText"),
        value(Kind::StringValue(long_text)),
    ));
    rig.send(data_change(handle("Plant.Nan"), double(f64::NAN)));
    let mut old = data_change(handle("Plant.OldSource"), double(5.0));
    old.source_timestamp = Some(prost_types::Timestamp {
        seconds: FILETIME_EPOCH,
        nanos: 0,
    });
    rig.send(old);
    let mut bad_time = data_change(handle("Plant.BadTime"), double(8.0));
    // One second before 0001-01-01, the start of protobuf's Timestamp range.
    bad_time.source_timestamp = Some(prost_types::Timestamp {
        seconds: -62_135_596_801,
        nanos: 0,
    });
    rig.send(bad_time);
    let mut bad_nanos = data_change(handle("Plant.BadNanos"), double(9.0));
    bad_nanos.source_timestamp = Some(prost_types::Timestamp {
        seconds: 0,
        nanos: 1_000_000_000,
    });
    rig.send(bad_nanos);
    let mut bad_quality = data_change(handle("Plant.BadQuality"), double(10.0));
    bad_quality.quality = 0x1_00C0;
    rig.send(bad_quality);
    let unknown_type = value(Kind::ArrayValue(pb::MxArray {
        element_data_type: 999,
        double_values: vec![1.0],
        ..Default::default()
    }));
    rig.send(data_change(handle("Plant.UnknownType[]"), unknown_type));
    let mut odd = data_change(
        handle("Plant.OddStatus"),
        pb::MxValue {
            data_type: 999,
            ..double(3.25)
        },
    );
    odd.statuses = vec![pb::MxStatusProxy {
        success: 0,
        category: 77,
        detected_by: 99,
        detail: 123_456,
        raw_category: 77,
        raw_detected_by: 99,
        diagnostic_text: "d".repeat(5_000),
    }];
    rig.send(odd);
    // Events nobody can use: items never subscribed, the shared handle, an unknown
    // family, a family that disagrees with its body, a write completion for nobody.
    rig.send(data_change(9_999, double(1.0)));
    rig.send(data_change(handle("Plant.Dup1"), double(1.0)));
    let mut unknown_family = data_change(handle("Plant.Good"), double(666.0));
    unknown_family.family = 99;
    rig.send(unknown_family);
    let mut disagreeing = data_change(handle("Plant.Good"), double(667.0));
    disagreeing.family = pb::MxEventFamily::OnWriteComplete as i32;
    rig.send(disagreeing);
    rig.send(write_complete(9_998, vec![]));
    rig.send(write_complete(handle("Plant.Good"), vec![]));
    rig.send(pb::MxEvent {
        family: pb::MxEventFamily::OnBufferedDataChange as i32,
        item_handle: 9_997,
        ..Default::default()
    });
    // The last event: once Good shows it, the bridge has taken every one before.
    rig.send(data_change(handle("Plant.Good"), double(2.5)));

    let good = watch
        .until(
            "HOSTILE:Good",
            "the value after the hostile events",
            within,
            |s| s.v["value"] == 2.5,
        )
        .await;
    assert!(says(&good, NO_ALARM, 0, "Good"), "{:?}", good.v);

    let not_shown = |reason: &str| format!("value not shown: {reason}");
    for (pv, message) in [
        (
            "Huge",
            not_shown("array of 4294967295 elements exceeds [limits] max_array_length 100000"),
        ),
        (
            "Sparse",
            not_shown("a sparse array is accepted only in writes"),
        ),
        (
            "LongText",
            not_shown("string of 70000 bytes exceeds [limits] max_string_length 65536"),
        ),
        (
            "BadTime",
            not_shown("source time -62135596801s 0ns is outside 0001-01-01 to 9999-12-31 or not a valid timestamp"),
        ),
        (
            "BadNanos",
            not_shown("source time 0s 1000000000ns is outside 0001-01-01 to 9999-12-31 or not a valid timestamp"),
        ),
        (
            "BadQuality",
            not_shown("quality 65728 is not a 16-bit OPC quality"),
        ),
        (
            "UnknownType",
            not_shown("arrays of unknown data type 999 are not supported"),
        ),
    ] {
        let name = format!("HOSTILE:{pv}");
        watch
            .until(&name, &message, within, |s| says(s, INVALID, DRIVER, &message))
            .await;
    }
    // The PV that had a value keeps it while it says why the next is not shown.
    let bad_time = watch
        .until("HOSTILE:BadTime", "its last value", within, |_| true)
        .await;
    assert_eq!(bad_time.v["value"], 7.0, "{:?}", bad_time.v);

    // NaN is a double like any other (read with pvget: JSON has no NaN); so is a
    // value stamped 1601-01-01.
    rig.assert_pvget("HOSTILE:Nan", "nan").await;
    let old = watch
        .until("HOSTILE:OldSource", "5.0", within, |s| s.v["value"] == 5.0)
        .await;
    assert!(says(&old, NO_ALARM, 0, "Good"), "{:?}", old.v);
    // A value with an unknown data type but a double in it is that double; an
    // unknown status says so, and its 5,000-byte diagnostic is cut.
    let odd = watch
        .until("HOSTILE:OddStatus", "3.25", within, |s| {
            s.v["value"] == 3.25
        })
        .await;
    assert!(odd.message().contains("123456"), "{:?}", odd.v);
    assert!(odd.message().len() < 1_200, "{}", odd.message().len());

    // One handle for two tags: neither can be served, both say why.
    let dup = "cannot subscribe {tag}: the gateway gave item handle 50 to 2 tags \
               (Plant.Dup1, Plant.Dup2); their events cannot be told apart";
    for (pv, tag) in [("Dup1", "Plant.Dup1"), ("Dup2", "Plant.Dup2")] {
        let message = dup.replace("{tag}", tag);
        watch
            .until(&format!("HOSTILE:{pv}"), &message, within, |s| {
                says(s, INVALID, CONF, &message)
            })
            .await;
    }

    // NaN and infinities keep coming through, and the good PV keeps serving.
    rig.send(data_change(handle("Plant.Nan"), double(f64::INFINITY)));
    rig.send(data_change(handle("Plant.Good"), double(3.5)));
    rig.assert_pvget("HOSTILE:Nan", "inf").await;
    watch
        .until("HOSTILE:Good", "3.5", within, |s| s.v["value"] == 3.5)
        .await;
    rig.assert_alive_with_one_session();
}

/// Write completions for items nobody wrote, for an item with no write pending,
/// twice for one write, and in the other order than the writes: each put gets its own
/// item's outcome, the strays are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_completions_answer_their_own_puts_whatever_their_order() {
    let mut rig = Rig::start("writes").await;
    for (tag, x) in [("Plant.SP1", 0.5), ("Plant.SP2", 0.25), ("Plant.Good", 1.0)] {
        rig.send(data_change(handle(tag), double(x)));
    }
    let mut watch = rig.watch(&["HOSTILE:SP1", "HOSTILE:SP2"]);
    let within = Duration::from_secs(20);
    for (pv, x) in [("HOSTILE:SP1", 0.5), ("HOSTILE:SP2", 0.25)] {
        watch
            .until(pv, "its first value", within, |s| s.v["value"] == x)
            .await;
    }
    let env = rig.env.clone();
    let put = |pv: &'static str, value: &'static str| {
        let env = env.clone();
        tokio::spawn(async move { clients().p4p_put(&env, pv, value).await })
    };
    let sp1 = put("HOSTILE:SP1", "1.0");
    let sp2 = put("HOSTILE:SP2", "2.0");
    let mut written = Vec::new();
    while written.len() < 2 {
        let (item, value) = tokio::time::timeout(within, rig.writes.recv())
            .await
            .expect("both puts were written within 20 s")
            .unwrap();
        written.push((item, value));
    }
    // Strays first: an item never subscribed, an item with nothing pending.
    rig.send(write_complete(9_998, vec![]));
    rig.send(write_complete(handle("Plant.Good"), vec![]));
    // Then the answers, last write first: SP2 refused, SP1 applied (and answered twice).
    written.reverse();
    let denied = pb::MxStatusProxy {
        success: 0,
        category: pb::MxStatusCategory::SecurityError as i32,
        detail: 1008,
        ..Default::default()
    };
    for (item, value) in &written {
        if *item == handle("Plant.SP2") {
            assert_eq!(
                value.as_ref().and_then(|v| v.kind.clone()),
                double(2.0).kind
            );
            rig.send(write_complete(*item, vec![denied.clone()]));
        } else {
            assert_eq!(*item, handle("Plant.SP1"));
            assert_eq!(
                value.as_ref().and_then(|v| v.kind.clone()),
                double(1.0).kind
            );
            rig.send(write_complete(*item, vec![]));
            rig.send(write_complete(*item, vec![]));
            rig.send(data_change(*item, double(1.0)));
        }
    }
    assert_eq!(sp1.await.unwrap().trim(), "ok");
    assert_eq!(
        sp2.await.unwrap().trim(),
        "RemoteError: HOSTILE:SP2: System Platform refused the write: WriteAccessDenied"
    );
    watch
        .until("HOSTILE:SP1", "the written value", within, |s| {
            s.v["value"] == 1.0
        })
        .await;
    let sp2 = watch
        .until("HOSTILE:SP2", "its value", within, |_| true)
        .await;
    assert_eq!(sp2.v["value"], 0.25, "the refused write changed nothing");
    rig.assert_alive_with_one_session();
}

/// A Time of 1601-01-01T00:00:00Z (the FILETIME epoch, a Time attribute never set) is
/// a legitimate value: served as such, and the bridge stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_of_1601_is_served() {
    let mut rig = Rig::start("time1601").await;
    let mut watch = rig.watch(&["HOSTILE:Never", "HOSTILE:Good"]);
    let never = pb::MxValue {
        data_type: pb::MxDataType::Time as i32,
        ..value(pb::mx_value::Kind::TimestampValue(prost_types::Timestamp {
            seconds: FILETIME_EPOCH,
            nanos: 0,
        }))
    };
    rig.send(data_change(handle("Plant.Never"), never));
    rig.send(data_change(handle("Plant.Good"), double(4.5)));
    let within = Duration::from_secs(20);
    watch
        .until("HOSTILE:Good", "4.5", within, |s| s.v["value"] == 4.5)
        .await;
    let never = watch
        .until("HOSTILE:Never", "1601-01-01", within, |s| {
            s.v["value"]
                .as_str()
                .is_some_and(|v| v.starts_with("1601-01-01T00:00:00"))
        })
        .await;
    assert!(says(&never, NO_ALARM, 0, "Good"), "{:?}", never.v);
    rig.assert_alive_with_one_session();
}

/// A flood of events that cannot be shown or used: each kind is logged once, nothing is
/// kept per event, and the good PV is served right after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_hostile_events_is_logged_once_and_kept_nowhere() {
    const ROUNDS: usize = 20_000;
    let mut rig = Rig::start_logged("flood", "info").await;
    let mut watch = rig.watch(&["HOSTILE:Good", "HOSTILE:Huge"]);
    let within = Duration::from_secs(60);
    let flood = |rig: &mut Rig, last: f64| {
        for _ in 0..ROUNDS {
            let huge = value(pb::mx_value::Kind::ArrayValue(pb::MxArray {
                element_data_type: pb::MxDataType::Double as i32,
                dimensions: vec![u32::MAX],
                ..Default::default()
            }));
            rig.send(data_change(handle("Plant.Huge[]"), huge));
            rig.send(data_change(9_999, double(1.0)));
            let mut unknown = data_change(handle("Plant.Good"), double(-1.0));
            unknown.family = 99;
            rig.send(unknown);
            rig.send(write_complete(9_998, vec![]));
            rig.send(write_complete(handle("Plant.Good"), vec![]));
        }
        rig.send(data_change(handle("Plant.Good"), double(last)));
    };
    rig.send(data_change(handle("Plant.Good"), double(0.5)));
    watch
        .until("HOSTILE:Good", "0.5", within, |s| s.v["value"] == 0.5)
        .await;
    // Two floods as large as each other: the second may hold no more than the first left.
    let mut rss = vec![rig.rss_kib()];
    for last in [1.5, 2.5] {
        flood(&mut rig, last);
        watch
            .until("HOSTILE:Good", "the value after a flood", within, |s| {
                s.v["value"] == last
            })
            .await;
        rss.push(rig.rss_kib());
    }
    let huge = watch
        .until("HOSTILE:Huge", "its reason", within, |s| {
            s.message()
                .starts_with("value not shown: array of 4294967295")
        })
        .await;
    assert_eq!(huge.severity(), Some(INVALID));
    let events = ROUNDS * 5;
    eprintln!(
        "mxpva VmRSS: {} KiB before, {} KiB after {events} events, {} KiB after {events} more",
        rss[0], rss[1], rss[2]
    );
    assert!(
        rss[2] < rss[1] + 8 * 1024,
        "mxpva grew from {} KiB to {} KiB in the second flood",
        rss[1],
        rss[2]
    );
    let log = std::fs::read_to_string(&rig.log).unwrap();
    let strays = log
        .lines()
        .filter(|l| l.contains("mxpva::bridge::link::strays"))
        .count();
    // One line per kind (undecodable on Huge, unknown item, unknown family, write
    // completion with nothing pending), not one per event.
    assert_eq!(strays, 4, "{log}");
    rig.assert_alive_with_one_session();
}

/// A worker sequence that goes back breaks the stream's order, which no event can be
/// trusted after: it is a link fault like a lost stream. Every PV says so (keeping its
/// value), the bridge opens one new session, and the PVs serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_that_goes_back_is_a_link_fault_the_bridge_recovers_from() {
    let mut rig = Rig::start("sequence").await;
    let mut watch = rig.watch(&["HOSTILE:Good"]);
    let within = Duration::from_secs(20);
    rig.send_as(5, data_change(handle("Plant.Good"), double(1.0)));
    watch
        .until("HOSTILE:Good", "1.0", within, |s| s.v["value"] == 1.0)
        .await;
    rig.send_as(5, data_change(handle("Plant.Good"), double(2.0)));
    let lost = watch
        .until("HOSTILE:Good", "the link fault", within, |s| {
            s.severity() == Some(INVALID) && s.status() == Some(DRIVER)
        })
        .await;
    assert_eq!(
        lost.message(),
        "gateway connection lost: event stream failed: StreamEvents: unexpected reply from the gateway: worker_sequence went from 5 to 5",
    );
    assert_eq!(lost.v["value"], 1.0, "the last value is kept");
    rig.resubscribed().await;
    assert_eq!(rig.sessions_opened(), 2);
    rig.send(data_change(handle("Plant.Good"), double(3.0)));
    let back = watch
        .until("HOSTILE:Good", "3.0", within, |s| s.v["value"] == 3.0)
        .await;
    assert!(says(&back, NO_ALARM, 0, "Good"), "{:?}", back.v);
}

/// A write call that fails in transport (gRPC UNAVAILABLE, as when the connection drops
/// while it is in flight) is no refusal by System Platform: whether System Platform
/// applied the write is unknown. The client's message says so, the audit trail records
/// `gateway_error`, and the write is never retried. Two write calls are in flight at once
/// (two PVs), and a PV's second put waits for the call of its first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_call_failing_in_transport_is_a_gateway_error_and_never_retried() {
    // The `write` line of an audited put is debug.
    let mut rig = Rig::start_logged("transport", "info,mxpva::bridge::core::puts=debug").await;
    let mut watch = rig.watch(&["HOSTILE:SP1", "HOSTILE:SP2"]);
    rig.send(data_change(handle("Plant.SP1"), double(0.5)));
    rig.send(data_change(handle("Plant.SP2"), double(0.25)));
    let within = Duration::from_secs(20);
    for (pv, x) in [("HOSTILE:SP1", 0.5), ("HOSTILE:SP2", 0.25)] {
        watch
            .until(pv, "its first value", within, |s| s.v["value"] == x)
            .await;
    }
    rig.fail_writes(true);
    rig.hold_writes();
    let env = rig.env.clone();
    // A lone put goes as a plain Write, held in flight by the gateway.
    let first = {
        let env = env.clone();
        tokio::spawn(async move {
            clients()
                .run("pvput", &env, &["HOSTILE:SP1", "1.0"])
                .await
                .text()
        })
    };
    assert_eq!(
        next_write(&mut rig).await,
        (handle("Plant.SP1"), double(1.0).kind)
    );
    // A put to another PV goes once it has waited the bridge's hold for the call in
    // flight (2 ms): a second write call in flight.
    let put = |pv: &'static str, value: &'static str| {
        let env = env.clone();
        tokio::spawn(async move { clients().p4p_put(&env, pv, value).await })
    };
    let second = put("HOSTILE:SP2", "1.5");
    assert_eq!(
        next_write(&mut rig).await,
        (handle("Plant.SP2"), double(1.5).kind)
    );
    // A second put to SP1 waits for the call of its first: the calls in flight never hold
    // two writes of one PV.
    let third = put("HOSTILE:SP1", "2.0");
    clients::logged(&rig.log, "write pv=HOSTILE:SP", 3).await;
    assert!(
        rig.writes.try_recv().is_err(),
        "a second write of SP1 went while its first was in flight"
    );
    rig.release_writes();
    let unknown = "whether System Platform applied it is unknown";
    let reset = "Write: gRPC Unavailable: hostile: connection reset while the write was in flight";
    let out = first.await.unwrap();
    assert!(
        out.contains(&format!(
            "Error: HOSTILE:SP1: the write call failed ({reset}): {unknown}"
        )),
        "{out}"
    );
    let failed =
        |pv: &str| format!("RemoteError: {pv}: the write call failed ({reset}): {unknown}");
    assert_eq!(second.await.unwrap().trim(), failed("HOSTILE:SP2"));
    assert_eq!(
        next_write(&mut rig).await,
        (handle("Plant.SP1"), double(2.0).kind)
    );
    assert_eq!(third.await.unwrap().trim(), failed("HOSTILE:SP1"));

    // Never retried: the next write the gateway receives is the next put's.
    rig.fail_writes(false);
    let fourth = put("HOSTILE:SP2", "4.0");
    assert_eq!(
        next_write(&mut rig).await,
        (handle("Plant.SP2"), double(4.0).kind)
    );
    rig.send(write_complete(handle("Plant.SP2"), vec![]));
    rig.send(data_change(handle("Plant.SP2"), double(4.0)));
    assert_eq!(fourth.await.unwrap().trim(), "ok");
    assert!(rig.writes.try_recv().is_err(), "a write was sent again");

    let records = rig.audit(4).await;
    let by_value = |v: f64| {
        records
            .iter()
            .find(|r| r["requested"] == v)
            .unwrap_or_else(|| panic!("no audit record of a put of {v}: {records:?}"))
    };
    for (v, pv, call) in [
        (1.0, "HOSTILE:SP1", "Write: gRPC Unavailable"),
        (1.5, "HOSTILE:SP2", "Write: gRPC Unavailable"),
        (2.0, "HOSTILE:SP1", "Write: gRPC Unavailable"),
    ] {
        let r = by_value(v);
        assert_eq!(r["outcome"], "gateway_error", "{r}");
        assert_eq!(r["pv"], pv, "{r}");
        let message = r["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{pv}: the write call failed ({call}"))
                && message.ends_with(unknown),
            "{r}"
        );
    }
    assert_eq!(by_value(4.0)["outcome"], "confirmed");
    rig.assert_alive_with_one_session();
}

/// The next write the hostile gateway received (within 20 s): item handle and value.
async fn next_write(rig: &mut Rig) -> (i32, Option<pb::mx_value::Kind>) {
    let (item, value) = tokio::time::timeout(Duration::from_secs(20), rig.writes.recv())
        .await
        .expect("a write within 20 s")
        .unwrap();
    (item, value.and_then(|v| v.kind))
}
