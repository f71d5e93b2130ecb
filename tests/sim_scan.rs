//! The simulator's scan model (issue 24): an attribute changed several times within one
//! scan (the Galaxy's `tick_ms`) by control calls reports to a plain item only its latest
//! value, at the end of the scan; a buffered item gets every sample, each with its own
//! time, at its buffered update interval. A write keeps its prompt data change.
mod clients;

use std::time::Duration;

use clients::sim::{data_change, wait_for, write_complete};
use mxpva::gateway::*;
use mxpva::sim::{Galaxy, SimOptions};

const GALAXY: &str = include_str!("fixtures/galaxy/sim_scan.toml");

fn double(v: &MxValue) -> f64 {
    match v {
        MxValue::Double(x) => *x,
        other => panic!("a Double, got {other:?}"),
    }
}

#[tokio::test]
async fn a_plain_item_gets_the_latest_value_of_a_scan_and_a_buffered_item_every_sample() {
    let galaxy = Galaxy::from_toml(GALAXY, "scan").unwrap();
    // A scan of a second: the ten SetValue calls below take far less.
    let opts = SimOptions {
        tick: Some(Duration::from_millis(1000)),
        first_update_delay: Some(Duration::from_millis(10)),
        ..SimOptions::default()
    };
    let h = clients::sim::start(galaxy, opts).await;
    let (_c, s, server) = clients::sim::session(&h).await;
    s.set_buffered_update_interval(server, Duration::from_millis(50))
        .await
        .unwrap();
    let mut events = s.events(None).await.unwrap();
    let plain = s.add_item(server, "Line1.Flow").await.unwrap();
    s.advise(server, plain).await.unwrap();
    let buffered = s.add_buffered_item(server, "Line1.Flow").await.unwrap();
    s.advise(server, buffered).await.unwrap();
    // First values (the buffered one as its first sample).
    assert_eq!(double(&data_change(&mut events, plain).await.value), 0.0);
    let first = wait_for(
        &mut events,
        |e| matches!(e, SessionEvent::BufferedDataChange(b) if b.item_handle == buffered),
    )
    .await;
    let SessionEvent::BufferedDataChange(first) = first else {
        unreachable!()
    };
    assert_eq!(first.samples.len(), 1, "{first:?}");
    assert_eq!(double(&first.samples[0].0), 0.0);

    for k in 1..=10 {
        h.sim
            .set_value("Line1.Flow", MxValue::Double(f64::from(k)))
            .unwrap();
    }
    let mut plain_values = Vec::new();
    let mut samples: Vec<(f64, std::time::SystemTime)> = Vec::new();
    while plain_values.last() != Some(&10.0) || samples.last().map(|s| s.0) != Some(10.0) {
        match wait_for(&mut events, |_| true).await {
            SessionEvent::DataChange(d) if d.item_handle == plain => {
                plain_values.push(double(&d.value))
            }
            SessionEvent::DataChange(d) if d.item_handle == buffered => {
                panic!("a buffered item got an OnDataChange: {d:?}")
            }
            SessionEvent::BufferedDataChange(b) if b.item_handle == buffered => {
                for (v, q, t) in b.samples {
                    assert_eq!(q, Quality::GOOD);
                    samples.push((double(&v), t.expect("a source time")));
                }
            }
            _ => {}
        }
    }
    // The plain item: the latest value at the end of the scan (two scans at most, when
    // the calls straddled a scan's end), never every value.
    assert!(
        !plain_values.is_empty() && plain_values.len() <= 2,
        "the plain item got {plain_values:?}"
    );
    // The buffered item: every sample, in order, each with its own time.
    let values: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let expected: Vec<f64> = (1..=10).map(f64::from).collect();
    assert_eq!(values, expected);
    for pair in samples.windows(2) {
        assert!(pair[1].1 >= pair[0].1, "{samples:?}");
    }

    // A write keeps its prompt data change, within the scan.
    let entry = WriteEntry::new(plain, MxValue::Double(42.0));
    s.write(server, WriteKind::Write, &entry).await.unwrap();
    let d = data_change(&mut events, plain).await;
    assert_eq!(double(&d.value), 42.0);
    write_complete(&mut events, plain).await;
}

/// The next OnBufferedDataChange of `buffered`; `plain` may get its first value only.
async fn next_buffered(
    events: &mut EventStream,
    plain: ItemHandle,
    buffered: ItemHandle,
) -> BufferedDataChange {
    let e = wait_for(events, |e| match e {
        SessionEvent::DataChange(d) if d.item_handle == plain => {
            // Only the first value: a buffered burst changes no attribute.
            assert_eq!(double(&d.value), 0.0, "{d:?}");
            false
        }
        SessionEvent::BufferedDataChange(b) => b.item_handle == buffered,
        _ => false,
    })
    .await;
    match e {
        SessionEvent::BufferedDataChange(b) => b,
        _ => unreachable!(),
    }
}

/// BufferedBurst (the benchmark's buffered counterpart of Burst): raw samples taken by
/// every advised buffered item, which leave by the rules of every sample: at most 1,000
/// kept per item (the newest), one OnBufferedDataChange per buffered update interval
/// carrying every sample since the last, each with its own time. Plain items get nothing.
#[tokio::test]
async fn a_buffered_burst_leaves_by_the_rules_of_every_sample() {
    let galaxy = Galaxy::from_toml(GALAXY, "scan").unwrap();
    let h = clients::sim::start(galaxy, clients::sim::fast()).await;
    let (_c, s, server) = clients::sim::session(&h).await;
    // Long enough that the two bursts below surely come within one interval.
    let interval = Duration::from_secs(1);
    s.set_buffered_update_interval(server, interval)
        .await
        .unwrap();
    let mut events = s.events(None).await.unwrap();
    let plain = s.add_item(server, "Line1.Flow").await.unwrap();
    s.advise(server, plain).await.unwrap();
    let buffered = s.add_buffered_item(server, "Line1.Flow").await.unwrap();
    s.advise(server, buffered).await.unwrap();
    let first = next_buffered(&mut events, plain, buffered).await;
    assert_eq!(first.samples.len(), 1, "the first value: {first:?}");

    // 1,500 samples: the item keeps the newest 1,000, 1 us apart, in one event.
    h.sim.buffered_burst(s.id(), 1500, 1.0).unwrap();
    let b = next_buffered(&mut events, plain, buffered).await;
    let at = std::time::Instant::now();
    let values: Vec<f64> = b.samples.iter().map(|x| double(&x.0)).collect();
    let expected: Vec<f64> = (501..=1500).map(f64::from).collect();
    assert_eq!(values, expected);
    for pair in b.samples.windows(2) {
        assert_eq!(pair[0].1, Quality::GOOD);
        let (t0, t1) = (pair[0].2.unwrap(), pair[1].2.unwrap());
        assert_eq!(t1.duration_since(t0).unwrap(), Duration::from_micros(1));
    }

    // Two bursts right after an event: one event with both, an interval later (at
    // least half of it after this test saw the last: the rest is slack for a slow
    // machine).
    h.sim.buffered_burst(s.id(), 2, 2000.0).unwrap();
    h.sim.buffered_burst(s.id(), 3, 2002.0).unwrap();
    let b = next_buffered(&mut events, plain, buffered).await;
    assert!(
        at.elapsed() >= interval / 2,
        "one event per buffered update interval: the next came {:?} after",
        at.elapsed()
    );
    let values: Vec<f64> = b.samples.iter().map(|x| double(&x.0)).collect();
    assert_eq!(values, [2000.0, 2001.0, 2002.0, 2003.0, 2004.0]);

    // A session with no advised buffered item is told so.
    s.unadvise(server, buffered).await.unwrap();
    let e = h.sim.buffered_burst(s.id(), 1, 0.0).unwrap_err();
    assert!(e.contains("no advised buffered items"), "{e}");
}
