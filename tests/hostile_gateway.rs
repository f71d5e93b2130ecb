//! A hostile gateway: a gRPC server of the test's own that speaks the MXAccess Gateway
//! contract (the generated code of proto/, from OUT_DIR) and feeds `mxpva run` messages
//! the real gateway should never send: arrays and sparse arrays claiming 4294967295
//! elements, strings past the cap, NaN and infinities, times before 1601 and nanos past
//! a second, qualities wider than 16 bits, unknown data types, families and status
//! codes, one item handle given to two tags, events for items never subscribed, and
//! write completions nobody waits for or in another order than the writes.
//!
//! Read with p4p: the affected PVs say why in `alarm.message`, the others keep serving
//! correct values, puts complete with their own outcome, the process stays up, and the
//! bridge never needed a second gateway session.

mod clients;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clients::{clients, free_ports, pva_env, spawn_mxpva_logged, Seen, Watch};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};

#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
mod pb {
    tonic::include_proto!("mxaccess_gateway.v1");
}

use pb::mx_access_gateway_server::{MxAccessGateway, MxAccessGatewayServer};

const INVALID: i64 = 3;
const DRIVER: i64 = 2;
const CONF: i64 = 5;
const NO_ALARM: i64 = 0;

/// The FILETIME epoch, 1601-01-01T00:00:00Z, in seconds from 1970.
const FILETIME_EPOCH: i64 = -11_644_473_600;

type BoxStream<T> =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// What the hostile gateway shares with the test.
struct Shared {
    /// The item handle it gives each tag (two tags share one).
    handles: Vec<(&'static str, i32)>,
    sessions_opened: AtomicUsize,
    /// The sender of the attached event stream, once the bridge has subscribed.
    events: watch::Sender<Option<mpsc::UnboundedSender<Result<pb::MxEvent, Status>>>>,
    /// Writes received: (item handle, value).
    writes: mpsc::UnboundedSender<(i32, Option<pb::MxValue>)>,
    /// The stream attached by the bridge, until SubscribeBulk hands it over.
    pending_stream: Mutex<Option<mpsc::UnboundedSender<Result<pb::MxEvent, Status>>>>,
}

#[derive(Clone)]
struct Hostile(Arc<Shared>);

fn ok() -> Option<pb::ProtocolStatus> {
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
                None
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
const HANDLES: &[(&str, i32)] = &[
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

const CONFIG: &str = r#"
[gateway]
endpoint = "http://{gateway}"
client_name = "mxpva-hostile"
reconnect_initial = "100ms"
reconnect_max = "400ms"
write_timeout = "20s"

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
struct Rig {
    shared: Arc<Shared>,
    bridge: tokio::process::Child,
    env: Vec<(String, String)>,
    writes: mpsc::UnboundedReceiver<(i32, Option<pb::MxValue>)>,
    events: mpsc::UnboundedSender<Result<pb::MxEvent, Status>>,
    sequence: u64,
}

impl Rig {
    async fn start(name: &str) -> Rig {
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
        });
        let svc = MxAccessGatewayServer::new(Hostile(shared.clone()));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("bridge.toml");
        std::fs::write(&config, CONFIG.replace("{gateway}", &gateway.to_string())).unwrap();
        let (tcp, udp) = free_ports();
        let (server_env, env) = pva_env(tcp, udp);
        let bridge = spawn_mxpva_logged(
            &["run".as_ref(), "--config".as_ref(), config.as_os_str()],
            &[server_env, vec![("RUST_LOG".into(), "mxpva=debug".into())]].concat(),
            Some(&dir.join("bridge.log")),
        );
        let events = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(tx) = events_rx.borrow_and_update().clone() {
                    return tx;
                }
                events_rx.changed().await.unwrap();
            }
        })
        .await
        .expect("the bridge subscribed within 30 s");
        Rig {
            shared,
            bridge,
            env,
            writes,
            events,
            sequence: 0,
        }
    }

    /// Sends an event with the next worker sequence.
    fn send(&mut self, mut e: pb::MxEvent) {
        self.sequence += 1;
        e.worker_sequence = self.sequence;
        self.events
            .send(Ok(e))
            .expect("the event stream is attached");
    }

    fn watch(&self, pvs: &[&str]) -> Watch {
        clients().p4p_watch(&self.env, pvs)
    }

    /// `pvget -v pv` shows `value` and a NO_ALARM alarm "Good".
    async fn assert_pvget(&self, pv: &str, value: &str) {
        let text = clients()
            .pvget_until(&self.env, &["-v", pv], &format!("double value {value}"))
            .await;
        assert!(text.contains(&format!("double value {value}")), "{text}");
        assert!(text.contains("int severity 0"), "{text}");
        assert!(text.contains("string message Good\n"), "{text}");
    }

    /// The bridge is still running and never opened a second session.
    fn assert_alive_with_one_session(&mut self) {
        assert!(
            self.bridge.try_wait().unwrap().is_none(),
            "mxpva run exited: {:?}",
            self.bridge.try_wait()
        );
        assert_eq!(self.shared.sessions_opened.load(Ordering::SeqCst), 1);
    }
}

fn now() -> prost_types::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn value(kind: pb::mx_value::Kind) -> pb::MxValue {
    pb::MxValue {
        kind: Some(kind),
        ..Default::default()
    }
}

fn double(x: f64) -> pb::MxValue {
    pb::MxValue {
        data_type: pb::MxDataType::Double as i32,
        ..value(pb::mx_value::Kind::DoubleValue(x))
    }
}

/// An OnDataChange of `item`, good quality, stamped now.
fn data_change(item: i32, v: pb::MxValue) -> pb::MxEvent {
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

fn write_complete(item: i32, statuses: Vec<pb::MxStatusProxy>) -> pb::MxEvent {
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

fn handle(tag: &str) -> i32 {
    HANDLES.iter().find(|(t, _)| *t == tag).unwrap().1
}

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
    bad_time.source_timestamp = Some(prost_types::Timestamp {
        seconds: FILETIME_EPOCH - 1,
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
            not_shown("source time -11644473601s 0ns is outside 1601-01-01 to 9999-12-31 or not a valid timestamp"),
        ),
        (
            "BadNanos",
            not_shown("source time 0s 1000000000ns is outside 1601-01-01 to 9999-12-31 or not a valid timestamp"),
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
