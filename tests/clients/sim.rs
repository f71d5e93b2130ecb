//! The simulator alone, for the tests of the simulator itself (`gateway_sim*.rs`,
//! `sim_scan.rs`): served on loopback in the test's process, and the gateway client's
//! calls those tests share. Tests that run the bridge too use [`super::plant`].
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mxpva::gateway::*;
use mxpva::sim::{Galaxy, SimHandle, SimOptions, DEMO_GALAXY};
use tokio::sync::oneshot;

pub const OPERATOR_KEY: &str = "mxgw_operator_3f9c2a7e41b8";
pub const VIEWER_KEY: &str = "mxgw_viewer_8d1e6b0c55a2";
pub const PUMPDESK_KEY: &str = "mxgw_pumpdesk_b47e09d2c6f1";
pub const WAIT: Duration = Duration::from_secs(5);

pub struct Harness {
    pub sim: SimHandle,
    pub addr: SocketAddr,
    pub stop: Option<oneshot::Sender<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub fn fast() -> SimOptions {
    SimOptions {
        tick: Some(Duration::from_millis(20)),
        first_update_delay: Some(Duration::from_millis(10)),
        ..SimOptions::default()
    }
}

pub async fn start(galaxy: Galaxy, opts: SimOptions) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = SimHandle::new(galaxy, opts);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(sim.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    Harness {
        sim,
        addr,
        stop: Some(stop),
    }
}

pub async fn demo() -> Harness {
    start(Galaxy::demo(), fast()).await
}

pub fn api_key_galaxy(extra: &str) -> Galaxy {
    let text = DEMO_GALAXY.replace("mode = \"open\"", "mode = \"api_key\"") + extra;
    Galaxy::from_toml(&text, "test").unwrap()
}

pub async fn client(h: &Harness, key: Option<&str>) -> GatewayClient {
    let mut opts = ClientOptions::plaintext(h.addr.to_string());
    if let Some(k) = key {
        opts = opts.with_api_key(ApiKey::new(k).unwrap());
    }
    GatewayClient::connect(&opts).await.unwrap()
}

pub async fn session(h: &Harness) -> (GatewayClient, Session, ServerHandle) {
    let c = client(h, None).await;
    let s = c.open_session("test").await.unwrap();
    let server = s.register("test").await.unwrap();
    (c, s, server)
}

/// The next event that `pred` accepts, within WAIT.
pub async fn wait_for(
    events: &mut EventStream,
    mut pred: impl FnMut(&SessionEvent) -> bool,
) -> SessionEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, events.next())
            .await
            .expect("timed out waiting for an event")
            .expect("stream ended")
            .expect("stream failed");
        if pred(&ev) {
            return ev;
        }
    }
}

pub async fn data_change(events: &mut EventStream, item: ItemHandle) -> DataChange {
    match wait_for(
        events,
        |e| matches!(e, SessionEvent::DataChange(d) if d.item_handle == item),
    )
    .await
    {
        SessionEvent::DataChange(d) => d,
        _ => unreachable!(),
    }
}

pub async fn write_complete(events: &mut EventStream, item: ItemHandle) -> WriteComplete {
    match wait_for(
        events,
        |e| matches!(e, SessionEvent::WriteComplete(w) if w.item_handle == item),
    )
    .await
    {
        SessionEvent::WriteComplete(w) => w,
        _ => unreachable!(),
    }
}

/// The OnDataChange events of `item` up to its next OnWriteComplete, and that
/// OnWriteComplete: MXAccess fires the data change of an applied write before the write's
/// OnWriteComplete.
pub async fn until_write_complete(
    events: &mut EventStream,
    item: ItemHandle,
) -> (Vec<DataChange>, WriteComplete) {
    let mut changes = Vec::new();
    loop {
        match wait_for(events, |e| match e {
            SessionEvent::DataChange(d) => d.item_handle == item,
            SessionEvent::WriteComplete(w) => w.item_handle == item,
            _ => false,
        })
        .await
        {
            SessionEvent::DataChange(d) => changes.push(d),
            SessionEvent::WriteComplete(w) => return (changes, w),
            _ => unreachable!(),
        }
    }
}

/// The error that ends the stream (skipping events still in flight).
pub async fn stream_error(events: &mut EventStream) -> GatewayError {
    loop {
        match tokio::time::timeout(WAIT, events.next())
            .await
            .expect("stream did not end")
        {
            Some(Ok(_)) => continue,
            Some(Err(e)) => return e,
            None => panic!("stream ended without an error"),
        }
    }
}

pub async fn subscribe(s: &Session, server: ServerHandle, tags: &[&str]) -> Vec<ItemHandle> {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    let r = s.subscribe_bulk(server, &tags).await.unwrap();
    r.iter()
        .map(|r| {
            assert!(r.outcome.is_ok(), "{}: {:?}", r.tag, r.outcome);
            r.item_handle
        })
        .collect()
}

pub fn mx_detail(e: &GatewayError) -> Option<&'static str> {
    e.mx_failure().and_then(|f| f.detail_name())
}

// ---------------------------------------------------------------------------
