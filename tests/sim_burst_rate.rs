//! The simulator's fixed-rate burst (used by the benchmark harness for latency):
//! events spread over time at the asked rate, each stamped with its own queue time.
use std::time::{Duration, Instant};

use mxpva::gateway::*;
use mxpva::sim::{Galaxy, RemoteSim, SimHandle, SimOptions};

async fn start() -> (SimHandle, String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let sim = SimHandle::new(
        Galaxy::demo(),
        SimOptions {
            first_update_delay: Some(Duration::from_millis(10)),
            ..SimOptions::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sim.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    (sim, addr, stop)
}

#[tokio::test]
async fn burst_at_rate_spreads_events_and_stamps_each_with_its_time() {
    let (_sim, addr, _stop) = start().await;
    let client = GatewayClient::connect(&ClientOptions::plaintext(addr.clone()))
        .await
        .unwrap();
    let session = client.open_session("rate").await.unwrap();
    let server = session.register("rate").await.unwrap();
    let tags = [
        "Pump001.SpeedSP".to_string(),
        "Pump001.MaxSpeed".to_string(),
    ];
    let items: Vec<ItemHandle> = session
        .subscribe_bulk(server, &tags)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.item_handle)
        .collect();
    let mut events = session.events(None).await.unwrap();
    for _ in 0..items.len() {
        events.next().await.unwrap().unwrap();
    }
    let start_seq = events.last_sequence();

    // Through the control service, as the harness drives a standalone simulator.
    let remote = RemoteSim::connect(&addr, None).await.unwrap();
    let t0 = Instant::now();
    remote
        .burst_at_rate(session.id(), 200, 2000.0)
        .await
        .unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(95),
        "200 at 2000/s in {took:?}"
    );

    let mut times = Vec::new();
    let mut values = Vec::new();
    while times.len() < 200 {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("events within 5 s")
            .unwrap()
            .unwrap();
        if let SessionEvent::DataChange(dc) = ev {
            if dc.worker_sequence > start_seq {
                times.push(dc.source_time.unwrap());
                values.push(dc.value);
            }
        }
    }
    assert_eq!(values[0], MxValue::Double(0.0));
    assert_eq!(values[199], MxValue::Double(199.0));
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "source times go forward"
    );
    let spread = times[199].duration_since(times[0]).unwrap();
    assert!(
        spread >= Duration::from_millis(90),
        "source times span {spread:?}, not the ~100 ms of the burst"
    );
}

/// At 10,000/s the events are 100 us apart: they are queued apart, each with its own
/// time, not gathered by the millisecond (tokio's timer wakes at 1 ms at the finest, which
/// queued ten events at once under one source time).
#[tokio::test]
async fn burst_at_rate_queues_events_apart_not_by_the_millisecond() {
    let (_sim, addr, _stop) = start().await;
    let client = GatewayClient::connect(&ClientOptions::plaintext(addr.clone()))
        .await
        .unwrap();
    let session = client.open_session("rate").await.unwrap();
    let server = session.register("rate").await.unwrap();
    let tags = ["Pump001.SpeedSP".to_string()];
    session.subscribe_bulk(server, &tags).await.unwrap();
    let mut events = session.events(None).await.unwrap();
    events.next().await.unwrap().unwrap();
    let start_seq = events.last_sequence();

    let remote = RemoteSim::connect(&addr, None).await.unwrap();
    remote
        .burst_at_rate(session.id(), 200, 10_000.0)
        .await
        .unwrap();
    let mut times = Vec::new();
    while times.len() < 200 {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("events within 5 s")
            .unwrap()
            .unwrap();
        if let SessionEvent::DataChange(dc) = ev {
            if dc.worker_sequence > start_seq {
                times.push(dc.source_time.unwrap());
            }
        }
    }
    let mut distinct = times.clone();
    distinct.dedup();
    // 20 ms of events: by the millisecond they carry about 21 distinct times; queued
    // apart, up to 200 (fewer when the sleeping thread woke late on a busy machine).
    assert!(
        distinct.len() >= 50,
        "200 events at 10,000/s carry {} distinct source times: queued by the millisecond",
        distinct.len()
    );
}

#[tokio::test]
async fn burst_refuses_a_negative_rate() {
    let (_sim, addr, _stop) = start().await;
    let remote = RemoteSim::connect(&addr, None).await.unwrap();
    let e = remote.burst_at_rate("nobody", 1, -5.0).await.unwrap_err();
    assert!(e.message.contains("negative"), "{e}");
}

#[tokio::test]
async fn burst_refuses_a_rate_too_low_for_any_timer() {
    let (_sim, addr, _stop) = start().await;
    let remote = RemoteSim::connect(&addr, None).await.unwrap();
    let e = remote
        .burst_at_rate("nobody", 10, 1e-300)
        .await
        .unwrap_err();
    assert!(
        e.message
            .contains("rate 1e-300 is too low: 10 events would take longer than any timer"),
        "{e}"
    );
}
