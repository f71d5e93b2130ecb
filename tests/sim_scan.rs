//! The simulator's scan model (issue 24): an attribute changed several times within one
//! scan (the Galaxy's `tick_ms`) by control calls reports to a plain item only its latest
//! value, at the end of the scan; a buffered item gets every sample, each with its own
//! time, at its buffered update interval. A write keeps its prompt data change.
mod sim_harness;

use std::time::Duration;

use mxpva::gateway::*;
use mxpva::sim::{Galaxy, SimOptions};
use sim_harness::{data_change, wait_for, write_complete};

const GALAXY: &str = r#"
[galaxy]
name = "Scan"

[[areas]]
name = "Plant"

[[objects]]
tag = "Line1"
area = "Plant"

[[objects.attributes]]
name = "Flow"
type = "Double"
initial = 0.0
"#;

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
    let h = sim_harness::start(galaxy, opts).await;
    let (_c, s, server) = sim_harness::session(&h).await;
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
