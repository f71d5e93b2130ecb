//! OnDataChange throughput from the simulator to the Rust client over
//! loopback gRPC: `cargo bench --bench gateway_events`.
//!
//! The simulator's paced burst mode (`SimHandle::burst`) queues synthetic
//! OnDataChange events on a session's advised items as fast as the bounded
//! event queue lets it; the client decodes every event into domain types
//! (`SessionEvent::DataChange`) and counts them. Events/s is N / (time from
//! the start of the burst to the arrival of the last event).
use std::time::{Duration, Instant};

use mxpva::gateway::{ClientOptions, GatewayClient, SessionEvent};
use mxpva::sim::{Galaxy, SimHandle, SimOptions};

const EVENTS: u64 = 1_000_000;
const ROUNDS: usize = 3;
const ROUND_LIMIT: Duration = Duration::from_secs(60);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = SimHandle::new(Galaxy::demo(), SimOptions::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sim.clone().serve(listener, async move {
        let _ = stopped.await;
    }));

    let client = GatewayClient::connect(&ClientOptions::plaintext(addr.to_string()))
        .await
        .unwrap();
    let session = client.open_session("bench").await.unwrap();
    let server_handle = session.register("bench").await.unwrap();
    // Attributes that do not move on their own, so only burst events flow.
    let tags: Vec<String> = [
        "Pump001.SpeedSP",
        "Pump001.Mode",
        "Pump001.MaxSpeed",
        "Pump001.Interlock",
        "Pump001.TripLimit",
        "Tank001.Description",
        "Line001.Recipe[]",
        "Pump001.LastMaintenance",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    for r in session.subscribe_bulk(server_handle, &tags).await.unwrap() {
        r.outcome.unwrap();
    }
    let mut events = session.events(None).await.unwrap();
    // The first data change of each item.
    for _ in 0..tags.len() {
        events.next().await.unwrap().unwrap();
    }

    let mut rates = Vec::new();
    for round in 1..=ROUNDS {
        let start_seq = events.last_sequence();
        let t0 = Instant::now();
        let producer = {
            let sim = sim.clone();
            let id = session.id().to_string();
            tokio::spawn(async move { sim.burst(&id, EVENTS, true).await })
        };
        let mut received = 0u64;
        while received < EVENTS {
            match tokio::time::timeout(ROUND_LIMIT.saturating_sub(t0.elapsed()), events.next())
                .await
            {
                Ok(Some(Ok(SessionEvent::DataChange(dc)))) => {
                    if dc.worker_sequence > start_seq {
                        received += 1;
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("event stream ended: {other:?}"),
                Err(_) => panic!(
                    "round {round}: only {received} of {EVENTS} events within {ROUND_LIMIT:?}"
                ),
            }
        }
        let elapsed = t0.elapsed();
        producer.await.unwrap().unwrap();
        let rate = EVENTS as f64 / elapsed.as_secs_f64();
        println!(
            "round {round}: {EVENTS} OnDataChange events in {:.3} s = {:.0} events/s",
            elapsed.as_secs_f64(),
            rate
        );
        rates.push(rate);
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "gateway_events: median {:.0} events/s, best {:.0} events/s (target >= 200000)",
        rates[rates.len() / 2],
        rates[rates.len() - 1]
    );
    drop(events);
    let _ = session.close().await;
    let _ = stop.send(());
    let _ = server.await;
}
