//! The hostile gateway of `hostile_gateway.rs`: a gRPC server that speaks the MXAccess
//! Gateway contract (the generated code of proto/, from OUT_DIR), hands out the item
//! handles of [`HANDLES`] and sends whatever events a test gives it; and [`Rig`], which
//! runs `mxpva run` against it with [`CONFIG`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clients::{clients, free_ports, pva_env, spawn_mxpva_logged, Watch};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};

#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod pb {
    tonic::include_proto!("mxaccess_gateway.v1");
}

use pb::mx_access_gateway_server::{MxAccessGateway, MxAccessGatewayServer};

/// The FILETIME epoch, 1601-01-01T00:00:00Z, in seconds from 1970.
pub const FILETIME_EPOCH: i64 = -11_644_473_600;

pub type BoxStream<T> =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// What the hostile gateway shares with the test.
pub struct Shared {
    /// The item handle it gives each tag (two tags share one).
    handles: Vec<(&'static str, i32)>,
    sessions_opened: AtomicUsize,
    /// The sender of the attached event stream, once the bridge has subscribed.
    events: watch::Sender<Option<mpsc::UnboundedSender<Result<pb::MxEvent, Status>>>>,
    /// Writes received: (item handle, value).
    writes: mpsc::UnboundedSender<(i32, Option<pb::MxValue>)>,
    /// The stream attached by the bridge, until SubscribeBulk hands it over.
    pending_stream: Mutex<Option<mpsc::UnboundedSender<Result<pb::MxEvent, Status>>>>,
    /// Write calls fail in transport or protocol ([`Rig::fail_writes`]).
    fail_writes: AtomicBool,
    /// While it holds `true`, plain write calls are received and not answered
    /// ([`Rig::hold_writes`]).
    hold: watch::Sender<bool>,
}

#[derive(Clone)]
pub struct Hostile(Arc<Shared>);

pub fn ok() -> Option<pb::ProtocolStatus> {
    Some(pb::ProtocolStatus {
        code: pb::ProtocolStatusCode::Ok as i32,
        message: String::new(),
    })
}

#[tonic::async_trait]
impl MxAccessGateway for Hostile {
    async fn open_session(
        &self,
        _: Request<pb::OpenSessionRequest>,
    ) -> Result<Response<pb::OpenSessionReply>, Status> {
        let n = self.0.sessions_opened.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(pb::OpenSessionReply {
            protocol_status: ok(),
            session_id: format!("hostile-{n}"),
            backend_name: "hostile".into(),
            ..Default::default()
        }))
    }

    async fn close_session(
        &self,
        r: Request<pb::CloseSessionRequest>,
    ) -> Result<Response<pb::CloseSessionReply>, Status> {
        Ok(Response::new(pb::CloseSessionReply {
            protocol_status: ok(),
            session_id: r.into_inner().session_id,
            final_state: pb::SessionState::Closed as i32,
        }))
    }

    async fn invoke(
        &self,
        r: Request<pb::MxCommandRequest>,
    ) -> Result<Response<pb::MxCommandReply>, Status> {
        use pb::mx_command::Payload;
        use pb::mx_command_reply::Reply;
        let command = r.into_inner().command.unwrap_or_default();
        let reply = match command.payload {
            Some(Payload::Register(_)) => {
                Some(Reply::Register(pb::RegisterReply { server_handle: 1 }))
            }
            Some(Payload::SubscribeBulk(s)) => {
                let results = s
                    .tag_addresses
                    .iter()
                    .map(|tag| {
                        let handle = self.0.handles.iter().find(|(t, _)| t == tag);
                        pb::SubscribeResult {
                            server_handle: 1,
                            tag_address: tag.clone(),
                            item_handle: handle.map_or(0, |h| h.1),
                            was_successful: handle.is_some(),
                            error_message: if handle.is_some() {
                                String::new()
                            } else {
                                format!("{tag} is not known")
                            },
                            ..Default::default()
                        }
                    })
                    .collect();
                // Subscribed: from now on the test may send events.
                let stream = self.0.pending_stream.lock().unwrap().take();
                self.0.events.send_replace(stream);
                Some(Reply::BulkSubscribe(pb::BulkSubscribeReply { results }))
            }
            Some(Payload::Write(w)) => {
                let _ = self.0.writes.send((w.item_handle, w.value));
                let mut held = self.0.hold.subscribe();
                let _ = held.wait_for(|h| !*h).await;
                if self.0.fail_writes.load(Ordering::SeqCst) {
                    // What the client sees when the connection drops mid-call.
                    return Err(Status::unavailable(
                        "hostile: connection reset while the write was in flight",
                    ));
                }
                None
            }
            // Puts that arrive together come as one bulk call: each entry accepted.
            // Failing: one result short.
            Some(Payload::WriteBulk(b)) => {
                let mut results: Vec<pb::BulkWriteResult> = b
                    .entries
                    .into_iter()
                    .map(|e| {
                        let _ = self.0.writes.send((e.item_handle, e.value));
                        pb::BulkWriteResult {
                            item_handle: e.item_handle,
                            was_successful: true,
                            ..Default::default()
                        }
                    })
                    .collect();
                if self.0.fail_writes.load(Ordering::SeqCst) {
                    results.pop();
                }
                Some(Reply::BulkWrite(pb::BulkWriteReply { results }))
            }
            _ => None,
        };
        Ok(Response::new(pb::MxCommandReply {
            kind: command.kind,
            protocol_status: ok(),
            reply,
            ..Default::default()
        }))
    }

    type StreamEventsStream = BoxStream<pb::MxEvent>;

    async fn stream_events(
        &self,
        _: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.0.pending_stream.lock().unwrap() = Some(tx);
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        )))
    }

    async fn acknowledge_alarm(
        &self,
        _: Request<pb::AcknowledgeAlarmRequest>,
    ) -> Result<Response<pb::AcknowledgeAlarmReply>, Status> {
        Ok(Response::new(pb::AcknowledgeAlarmReply {
            protocol_status: ok(),
            ..Default::default()
        }))
    }

    type StreamAlarmsStream = BoxStream<pb::AlarmFeedMessage>;

    /// No alarms: the snapshot is empty and the feed stays open.
    async fn stream_alarms(
        &self,
        _: Request<pb::StreamAlarmsRequest>,
    ) -> Result<Response<Self::StreamAlarmsStream>, Status> {
        let done = pb::AlarmFeedMessage {
            kind: Some(pb::alarm_feed_message::Kind::SnapshotComplete(
                pb::AlarmSnapshotComplete {
                    active_alarm_count: 0,
                },
            )),
        };
        Ok(Response::new(Box::pin(
            futures_util::stream::once(async { Ok(done) }).chain(futures_util::stream::pending()),
        )))
    }

    type QueryActiveAlarmsStream = BoxStream<pb::ActiveAlarmSnapshot>;

    async fn query_active_alarms(
        &self,
        _: Request<pb::QueryActiveAlarmsRequest>,
    ) -> Result<Response<Self::QueryActiveAlarmsStream>, Status> {
        Ok(Response::new(Box::pin(futures_util::stream::empty())))
    }
}

/// The tags and the item handles the hostile gateway gives them.
pub const HANDLES: &[(&str, i32)] = &[
    ("Plant.Good", 1),
    ("Plant.Huge[]", 2),
    ("Plant.Sparse", 3),
    ("Plant.LongText", 4),
    ("Plant.Nan", 5),
    ("Plant.OldSource", 6),
    ("Plant.BadTime", 7),
    ("Plant.BadNanos", 8),
    ("Plant.BadQuality", 9),
    ("Plant.UnknownType[]", 10),
    ("Plant.OddStatus", 11),
    ("Plant.Dup1", 50),
    ("Plant.Dup2", 50),
    ("Plant.SP1", 21),
    ("Plant.SP2", 22),
    ("Plant.Never", 30),
];

pub const CONFIG: &str = r#"
[gateway]
endpoint = "http://{gateway}"
client_name = "mxpva-hostile"
reconnect_initial = "100ms"
reconnect_max = "400ms"
write_timeout = "20s"

[audit]
file = "audit.jsonl"

[defaults]
prefix = "HOSTILE:"

[[pv]]
name = "Good"
tag = "Plant.Good"
type = "float64"

[[pv]]
name = "Huge"
tag = "Plant.Huge[]"
type = "float64[]"

[[pv]]
name = "Sparse"
tag = "Plant.Sparse"
type = "float64"

[[pv]]
name = "LongText"
tag = "Plant.LongText"
type = "string"

[[pv]]
name = "Nan"
tag = "Plant.Nan"
type = "float64"

[[pv]]
name = "OldSource"
tag = "Plant.OldSource"
type = "float64"

[[pv]]
name = "BadTime"
tag = "Plant.BadTime"
type = "float64"

[[pv]]
name = "BadNanos"
tag = "Plant.BadNanos"
type = "float64"

[[pv]]
name = "BadQuality"
tag = "Plant.BadQuality"
type = "float64"

[[pv]]
name = "UnknownType"
tag = "Plant.UnknownType[]"
type = "float64[]"

[[pv]]
name = "OddStatus"
tag = "Plant.OddStatus"
type = "float64"

[[pv]]
name = "Dup1"
tag = "Plant.Dup1"
type = "float64"

[[pv]]
name = "Dup2"
tag = "Plant.Dup2"
type = "float64"

[[pv]]
name = "SP1"
tag = "Plant.SP1"
type = "float64"
writable = true

[[pv]]
name = "SP2"
tag = "Plant.SP2"
type = "float64"
writable = true

[[pv]]
name = "Never"
tag = "Plant.Never"
type = "string"
"#;

/// The hostile gateway, `mxpva run` against it, and the clients' settings.
pub struct Rig {
    shared: Arc<Shared>,
    /// The bridge's log (stderr).
    pub log: std::path::PathBuf,
    /// The bridge's audit trail (`[audit] file`).
    pub audit: std::path::PathBuf,
    bridge: tokio::process::Child,
    /// The clients' PVAccess settings.
    pub env: Vec<(String, String)>,
    /// Writes the gateway received: (item handle, value).
    pub writes: mpsc::UnboundedReceiver<(i32, Option<pb::MxValue>)>,
    /// The event stream of the current session, and the next ones.
    events: mpsc::UnboundedSender<Result<pb::MxEvent, Status>>,
    streams: watch::Receiver<Option<mpsc::UnboundedSender<Result<pb::MxEvent, Status>>>>,
    sequence: u64,
}

impl Rig {
    pub async fn start(name: &str) -> Rig {
        Rig::start_logged(name, "mxpva=debug").await
    }

    /// [`Rig::start`] with `RUST_LOG` set to `log`.
    pub async fn start_logged(name: &str, log: &str) -> Rig {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway: SocketAddr = listener.local_addr().unwrap();
        let (writes_tx, writes) = mpsc::unbounded_channel();
        let (events_tx, mut events_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            handles: HANDLES.to_vec(),
            sessions_opened: AtomicUsize::new(0),
            events: events_tx,
            writes: writes_tx,
            pending_stream: Mutex::new(None),
            fail_writes: AtomicBool::new(false),
            hold: watch::channel(false).0,
        });
        let svc = MxAccessGatewayServer::new(Hostile(shared.clone()));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        // This run's log and audit trail alone: tests read them.
        let _ = std::fs::remove_file(dir.join("bridge.log"));
        let _ = std::fs::remove_file(dir.join("audit.jsonl"));
        let config = dir.join("bridge.toml");
        std::fs::write(&config, CONFIG.replace("{gateway}", &gateway.to_string())).unwrap();
        let (tcp, udp) = free_ports();
        let (server_env, env) = pva_env(tcp, udp);
        let bridge = spawn_mxpva_logged(
            &["run".as_ref(), "--config".as_ref(), config.as_os_str()],
            &[server_env, vec![("RUST_LOG".into(), log.into())]].concat(),
            Some(&dir.join("bridge.log")),
        );
        let events = next_stream(&mut events_rx).await;
        Rig {
            shared,
            log: dir.join("bridge.log"),
            audit: dir.join("audit.jsonl"),
            bridge,
            env,
            writes,
            events,
            streams: events_rx,
            sequence: 0,
        }
    }

    /// Waits for the bridge to subscribe again (a new session, a new event stream).
    pub async fn resubscribed(&mut self) {
        tokio::time::timeout(Duration::from_secs(30), self.streams.changed())
            .await
            .expect("the bridge subscribed again within 30 s")
            .unwrap();
        self.events = next_stream(&mut self.streams).await;
        self.sequence = 0;
    }

    /// From now on write calls fail (`true`): a plain write with gRPC UNAVAILABLE, as
    /// when the connection drops while it is in flight, a bulk one with a reply one
    /// result short.
    pub fn fail_writes(&self, fail: bool) {
        self.shared.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// Plain write calls are held (received, not answered) until [`Rig::release_writes`].
    pub fn hold_writes(&self) {
        self.shared.hold.send_replace(true);
    }

    /// The plain write calls held are answered, and those to come at once.
    pub fn release_writes(&self) {
        self.shared.hold.send_replace(false);
    }

    /// The audit trail's records once it holds `n` (at most 10 s).
    pub async fn audit(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
            let records: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if records.len() >= n {
                return records;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the audit trail has {} records, not {n}:\n{text}",
                records.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Gateway sessions the bridge opened.
    pub fn sessions_opened(&self) -> usize {
        self.shared.sessions_opened.load(Ordering::SeqCst)
    }

    /// Sends an event with worker sequence `seq`, whatever came before.
    pub fn send_as(&mut self, seq: u64, mut e: pb::MxEvent) {
        e.worker_sequence = seq;
        self.events
            .send(Ok(e))
            .expect("the event stream is attached");
    }

    /// Sends an event with the next worker sequence.
    pub fn send(&mut self, e: pb::MxEvent) {
        self.sequence += 1;
        self.send_as(self.sequence, e);
    }

    pub fn watch(&self, pvs: &[&str]) -> Watch {
        clients().p4p_watch(&self.env, pvs)
    }

    /// `pvget -v pv` shows `value` and a NO_ALARM alarm "Good".
    pub async fn assert_pvget(&self, pv: &str, value: &str) {
        let text = clients()
            .pvget_until(&self.env, &["-v", pv], &format!("double value {value}"))
            .await;
        assert!(text.contains(&format!("double value {value}")), "{text}");
        assert!(text.contains("int severity 0"), "{text}");
        assert!(text.contains("string message Good\n"), "{text}");
    }

    /// The bridge's VmRSS in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.bridge.id().expect("mxpva running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The bridge is still running and never opened a second session.
    pub fn assert_alive_with_one_session(&mut self) {
        assert!(
            self.bridge.try_wait().unwrap().is_none(),
            "mxpva run exited: {:?}",
            self.bridge.try_wait()
        );
        assert_eq!(self.sessions_opened(), 1);
    }
}

/// The next event stream the bridge subscribes on (within 30 s).
async fn next_stream(
    streams: &mut watch::Receiver<Option<mpsc::UnboundedSender<Result<pb::MxEvent, Status>>>>,
) -> mpsc::UnboundedSender<Result<pb::MxEvent, Status>> {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(tx) = streams.borrow_and_update().clone() {
                return tx;
            }
            streams.changed().await.unwrap();
        }
    })
    .await
    .expect("the bridge subscribed within 30 s")
}

pub fn now() -> prost_types::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub fn value(kind: pb::mx_value::Kind) -> pb::MxValue {
    pb::MxValue {
        kind: Some(kind),
        ..Default::default()
    }
}

pub fn double(x: f64) -> pb::MxValue {
    pb::MxValue {
        data_type: pb::MxDataType::Double as i32,
        ..value(pb::mx_value::Kind::DoubleValue(x))
    }
}

/// An OnDataChange of `item`, good quality, stamped now.
pub fn data_change(item: i32, v: pb::MxValue) -> pb::MxEvent {
    pb::MxEvent {
        family: pb::MxEventFamily::OnDataChange as i32,
        server_handle: 1,
        item_handle: item,
        value: Some(v),
        quality: 0xC0,
        source_timestamp: Some(now()),
        body: Some(pb::mx_event::Body::OnDataChange(pb::OnDataChangeEvent {})),
        ..Default::default()
    }
}

pub fn write_complete(item: i32, statuses: Vec<pb::MxStatusProxy>) -> pb::MxEvent {
    pb::MxEvent {
        family: pb::MxEventFamily::OnWriteComplete as i32,
        server_handle: 1,
        item_handle: item,
        statuses,
        body: Some(pb::mx_event::Body::OnWriteComplete(
            pb::OnWriteCompleteEvent {},
        )),
        ..Default::default()
    }
}

pub fn handle(tag: &str) -> i32 {
    HANDLES.iter().find(|(t, _)| *t == tag).unwrap().1
}
