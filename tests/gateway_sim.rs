//! The real gateway client against the real simulator, over loopback gRPC.
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use mxpva::gateway::*;
use mxpva::sim::{Faults, Galaxy, SimHandle, SimOptions, DEMO_GALAXY};
use tokio::sync::oneshot;

const OPERATOR_KEY: &str = "mxgw_operator_3f9c2a7e41b8";
const VIEWER_KEY: &str = "mxgw_viewer_8d1e6b0c55a2";
const PUMPDESK_KEY: &str = "mxgw_pumpdesk_b47e09d2c6f1";
const WAIT: Duration = Duration::from_secs(5);

struct Harness {
    sim: SimHandle,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn fast() -> SimOptions {
    SimOptions {
        tick: Some(Duration::from_millis(20)),
        first_update_delay: Some(Duration::from_millis(10)),
        ..SimOptions::default()
    }
}

async fn start(galaxy: Galaxy, opts: SimOptions) -> Harness {
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

async fn demo() -> Harness {
    start(Galaxy::demo(), fast()).await
}

fn api_key_galaxy(extra: &str) -> Galaxy {
    let text = DEMO_GALAXY.replace("mode = \"open\"", "mode = \"api_key\"") + extra;
    Galaxy::from_toml(&text, "test").unwrap()
}

async fn client(h: &Harness, key: Option<&str>) -> GatewayClient {
    let mut opts = ClientOptions::plaintext(h.addr.to_string());
    if let Some(k) = key {
        opts = opts.with_api_key(ApiKey::new(k).unwrap());
    }
    GatewayClient::connect(&opts).await.unwrap()
}

async fn session(h: &Harness) -> (GatewayClient, Session, ServerHandle) {
    let c = client(h, None).await;
    let s = c.open_session("test").await.unwrap();
    let server = s.register("test").await.unwrap();
    (c, s, server)
}

/// The next event that `pred` accepts, within WAIT.
async fn wait_for(
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

async fn data_change(events: &mut EventStream, item: ItemHandle) -> DataChange {
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

async fn write_complete(events: &mut EventStream, item: ItemHandle) -> WriteComplete {
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
async fn until_write_complete(
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
async fn stream_error(events: &mut EventStream) -> GatewayError {
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

async fn subscribe(s: &Session, server: ServerHandle, tags: &[&str]) -> Vec<ItemHandle> {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    let r = s.subscribe_bulk(server, &tags).await.unwrap();
    r.iter()
        .map(|r| {
            assert!(r.outcome.is_ok(), "{}: {:?}", r.tag, r.outcome);
            r.item_handle
        })
        .collect()
}

fn mx_detail(e: &GatewayError) -> Option<&'static str> {
    e.mx_failure().and_then(|f| f.detail_name())
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn single_item_lifecycle() {
    let h = demo().await;
    let (_c, s, server) = session(&h).await;
    assert!(s.id().starts_with("session-"));
    assert_eq!(s.info().gateway_protocol_version, 3);
    let mut events = s.events(None).await.unwrap();

    let sp = s.add_item(server, "Pump001.SpeedSP").await.unwrap();
    s.advise(server, sp).await.unwrap();
    let dc = data_change(&mut events, sp).await;
    assert_eq!(dc.value, MxValue::Double(1200.0));
    assert!(dc.quality.is_good(), "{}", dc.quality);
    assert_eq!(dc.server_handle, server);
    assert!(dc.source_time.is_some());

    let mode = s.add_item2(server, "Pump001.Mode", "ctx").await.unwrap();
    s.advise_supervisory(server, mode).await.unwrap();
    assert_eq!(
        data_change(&mut events, mode).await.value,
        MxValue::String("Auto".into())
    );

    s.unadvise(server, sp).await.unwrap();
    // Writing after UnAdvise is refused: advise before write.
    let e = s
        .write(
            server,
            WriteKind::Write,
            &WriteEntry::new(sp, MxValue::Double(5.0)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.mx_failure().unwrap().hresult as u32, 0x8007_0057, "{e}");
    s.remove_item(server, sp).await.unwrap();
    let e = s.advise(server, sp).await.unwrap_err();
    assert!(matches!(e, GatewayError::MxAccess { .. }), "{e}");
    // A syntactically bad reference fails at AddItem.
    assert!(s.add_item(server, "  ").await.is_err());
    s.unregister(server).await.unwrap();
    assert!(s.add_item(server, "Pump001.Mode").await.is_err());

    assert_eq!(s.close().await.unwrap(), SessionState::Closed);
    let e = s.register("again").await.unwrap_err();
    assert_eq!(e.rpc_code(), Some(RpcCode::NotFound), "{e}");
    assert!(e.is_session_lost());
}

#[tokio::test]
async fn an_elapsed_time_too_long_for_a_duration_fails_the_write_and_the_sim_goes_on() {
    // A writable ElapsedTime attribute on the last object of the demo plant (Valve001).
    let extra = "\n[[objects.attributes]]\nname = \"Dwell\"\ntype = \"ElapsedTime\"\n";
    let h = start(
        Galaxy::from_toml(&format!("{DEMO_GALAXY}{extra}"), "dwell").unwrap(),
        fast(),
    )
    .await;
    let (_c, s, server) = session(&h).await;
    let [dwell] = subscribe(&s, server, &["Valve001.Dwell"]).await[..] else {
        unreachable!()
    };
    let mut events = s.events(None).await.unwrap();
    data_change(&mut events, dwell).await;
    for huge in [1e30, f64::MAX] {
        let entry = WriteEntry::new(dwell, MxValue::Double(huge));
        s.write(server, WriteKind::Write, &entry).await.unwrap();
        let wc = write_complete(&mut events, dwell).await;
        let failure = wc.failure().expect("the write fails");
        assert_eq!(failure.detail_name(), Some("DataOutOfRange"), "{wc:?}");
        assert!(
            failure.diagnostic_text.contains("is not an elapsed time"),
            "{wc:?}"
        );
    }
    // The simulator still takes a good write and reports the new value.
    let entry = WriteEntry::new(dwell, MxValue::Double(2.5));
    s.write(server, WriteKind::Write, &entry).await.unwrap();
    let (changes, wc) = until_write_complete(&mut events, dwell).await;
    assert!(wc.failure().is_none(), "{wc:?}");
    assert_eq!(
        changes.iter().map(|d| &d.value).collect::<Vec<_>>(),
        [&MxValue::Elapsed(Duration::from_millis(2500))]
    );
}

#[tokio::test]
async fn events_arrive_in_worker_sequence_order() {
    let h = demo().await;
    let (_c, s, server) = session(&h).await;
    subscribe(
        &s,
        server,
        &[
            "Pump001.Speed",
            "Tank001.Level",
            "Line001.Heartbeat",
            "Line001.Profile[]",
            "Pump001.Vibration",
        ],
    )
    .await;
    let mut events = s.events(None).await.unwrap();
    let mut last = 0;
    for _ in 0..60 {
        let ev = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            ev.worker_sequence() > last,
            "{} after {last}",
            ev.worker_sequence()
        );
        last = ev.worker_sequence();
    }
}

#[tokio::test]
async fn writes_complete_with_status() {
    let h = demo().await;
    let (_c, s, server) = session(&h).await;
    let items = subscribe(
        &s,
        server,
        &[
            "Pump001.SpeedSP",
            "Pump001.Mode",
            "Line001.Recipe[2]",
            "Pump001.Running",
        ],
    )
    .await;
    let (sp, mode, recipe2, running) = (items[0], items[1], items[2], items[3]);
    let mut events = s.events(None).await.unwrap();
    // The first values come in handle order.
    for item in [sp, mode, recipe2, running] {
        data_change(&mut events, item).await;
    }
    // Each applied write: its OnDataChange (the new value), then its OnWriteComplete.
    let mut applied = async |kind: WriteKind, entry: WriteEntry| {
        let item = entry.item_handle;
        s.write(server, kind, &entry).await.unwrap();
        let (changes, wc) = until_write_complete(&mut events, item).await;
        assert!(wc.failure().is_none(), "{entry:?}: {wc:?}");
        changes
    };

    let changes = applied(
        WriteKind::Write,
        WriteEntry::new(sp, MxValue::Double(1500.0)),
    )
    .await;
    assert_eq!(
        changes.iter().map(|d| &d.value).collect::<Vec<_>>(),
        [&MxValue::Double(1500.0)]
    );

    // Write2 carries the value's timestamp.
    let ts = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut e = WriteEntry::new(mode, MxValue::String("Manual".into()));
    e.timestamp = Some(ts);
    let changes = applied(WriteKind::Write2, e).await;
    assert_eq!(
        changes
            .iter()
            .map(|d| (&d.value, d.source_time))
            .collect::<Vec<_>>(),
        [(&MxValue::String("Manual".into()), Some(ts))]
    );

    // One array element, converted from Int64 to the element type.
    let changes = applied(
        WriteKind::Write,
        WriteEntry::new(recipe2, MxValue::Int64(99)),
    )
    .await;
    assert_eq!(
        changes.iter().map(|d| &d.value).collect::<Vec<_>>(),
        [&MxValue::Int32(99)]
    );

    // A string converts to Boolean as MXAccess converts it.
    applied(
        WriteKind::Write,
        WriteEntry::new(running, MxValue::String("false".into())),
    )
    .await;
}

#[tokio::test]
async fn write_failures_carry_mxaccess_status() {
    let h = demo().await;
    let (_c, s, server) = session(&h).await;
    let tags = [
        "Pump001.SpeedSP",
        "Pump001.Speed",
        "Valve001.Position",
        "Pump001.Interlock",
        "Pump001.TripLimit",
        "Pump001.MaxSpeed",
        "Nope001.Attr",
        "Tank001.Level.HiHi",
    ];
    let items = subscribe(&s, server, &tags).await;
    let [sp, speed, valve, interlock, trip, maxspeed, nope, alarm] = items[..] else {
        unreachable!()
    };
    let mut events = s.events(None).await.unwrap();
    let user = s
        .authenticate_user(server, "operator", "operator")
        .await
        .unwrap();
    let supervisor = s
        .authenticate_user(server, "supervisor", "supervisor")
        .await
        .unwrap();
    let engineer = s
        .authenticate_user(server, "engineer", "engineer")
        .await
        .unwrap();
    let e = s
        .authenticate_user(server, "operator", "wrong")
        .await
        .unwrap_err();
    assert_eq!(mx_detail(&e), Some("UserNotHavingAccessRights"));

    let mut expect = async |kind: WriteKind, entry: WriteEntry, want: Option<&str>| {
        let item = entry.item_handle;
        s.write(server, kind, &entry).await.unwrap();
        let wc = write_complete(&mut events, item).await;
        assert_eq!(
            wc.failure().and_then(|f| f.detail_name()),
            want,
            "{entry:?}: {wc:?}"
        );
    };
    let w = |item, v| WriteEntry::new(item, v);
    expect(
        WriteKind::Write,
        w(sp, MxValue::Time(SystemTime::now())),
        Some("WrongDataType"),
    )
    .await;
    expect(
        WriteKind::Write,
        w(sp, MxValue::String("fast".into())),
        Some("UnableToConvertString"),
    )
    .await;
    expect(
        WriteKind::Write,
        w(sp, MxValue::Double(5000.0)),
        Some("DataOutOfRange"),
    )
    .await;
    expect(
        WriteKind::Write,
        w(sp, MxValue::Array(MxArray::Double(vec![1.0]))),
        Some("WrongNumberOfDimensions"),
    )
    .await;
    expect(
        WriteKind::Write,
        w(speed, MxValue::Double(1.0)),
        Some("NotWriteable"),
    )
    .await;
    expect(
        WriteKind::Write,
        w(valve, MxValue::Double(1.0)),
        Some("WriteAccessDenied"),
    )
    .await;
    expect(
        WriteKind::Write,
        w(nope, MxValue::Double(1.0)),
        Some("InvalidReference"),
    )
    .await;
    expect(
        WriteKind::Write,
        w(alarm, MxValue::Bool(false)),
        Some("NotWriteable"),
    )
    .await;
    // SecuredWrite needs WriteSecured with an authenticated user.
    expect(
        WriteKind::Write,
        w(interlock, MxValue::Bool(true)),
        Some("SecuredWrite"),
    )
    .await;
    let mut e = w(interlock, MxValue::Bool(true));
    e.user = UserId(77);
    expect(
        WriteKind::WriteSecured,
        e.clone(),
        Some("UserNotHavingAccessRights"),
    )
    .await;
    e.user = user;
    expect(WriteKind::WriteSecured, e, None).await;
    // VerifiedWrite needs a different verifier with Verify permission.
    expect(
        WriteKind::Write,
        w(trip, MxValue::Double(3000.0)),
        Some("VerifiedWrite"),
    )
    .await;
    let mut e = w(trip, MxValue::Double(3000.0));
    (e.user, e.verifier) = (user, user);
    expect(
        WriteKind::WriteSecured,
        e.clone(),
        Some("VerifierNotHavingVerifyRights"),
    )
    .await;
    e.verifier = supervisor;
    expect(WriteKind::WriteSecured2, e, None).await;
    // Tune needs a user with Tune permission.
    expect(
        WriteKind::Write,
        w(maxspeed, MxValue::Double(2500.0)),
        Some("WriteAccessDenied"),
    )
    .await;
    let mut e = w(maxspeed, MxValue::Double(2500.0));
    e.user = engineer;
    expect(WriteKind::Write, e, None).await;

    // Injected faults: failure, then delay.
    h.sim.set_faults(Faults {
        fail_writes_detail: Some(2),
        write_fault_prefix: "Pump001.".into(),
        ..Faults::default()
    });
    expect(
        WriteKind::Write,
        w(sp, MxValue::Double(10.0)),
        Some("PlatformCommunicationError"),
    )
    .await;
    h.sim.set_faults(Faults {
        write_delay: Duration::from_millis(300),
        ..Faults::default()
    });
    let t0 = Instant::now();
    expect(WriteKind::Write, w(sp, MxValue::Double(11.0)), None).await;
    assert!(t0.elapsed() >= Duration::from_millis(300));
    h.sim.set_faults(Faults::default());

    // NaN never leaves the client.
    let e = s
        .write(server, WriteKind::Write, &w(sp, MxValue::Double(f64::NAN)))
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::InvalidArgument { .. }), "{e}");
    // Unknown handle: the call itself fails.
    let e = s
        .write(
            server,
            WriteKind::Write,
            &w(ItemHandle(9999), MxValue::Double(1.0)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.mx_failure().unwrap().hresult as u32, 0x8007_0057);
}

#[tokio::test]
async fn bulk_family_results_in_order() {
    let h = demo().await;
    let (_c, s, server) = session(&h).await;
    let tags: Vec<String> = [
        "Pump001.SpeedSP",
        "Nope.Attr",
        "Line001.Profile[]",
        "bad ref",
        "Pump001.Mode",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    let added = s.add_item_bulk(server, &tags).await.unwrap();
    assert_eq!(
        added.iter().map(|r| r.tag.as_str()).collect::<Vec<_>>(),
        tags
    );
    // An unknown tag resolves late (bad quality on advise); a malformed one fails at once.
    assert!(added[0].outcome.is_ok() && added[1].outcome.is_ok() && added[3].outcome.is_err());
    let handles: Vec<ItemHandle> = added
        .iter()
        .filter(|r| r.outcome.is_ok())
        .map(|r| r.item_handle)
        .collect();
    let advised = s
        .advise_item_bulk(server, &[handles[0], ItemHandle(4242), handles[2]])
        .await
        .unwrap();
    assert_eq!(
        advised
            .iter()
            .map(|r| r.outcome.is_ok())
            .collect::<Vec<_>>(),
        [true, false, true]
    );
    let mut events = s.events(None).await.unwrap();
    data_change(&mut events, handles[0]).await;

    let mut entries = vec![
        WriteEntry::new(handles[0], MxValue::Double(100.0)),
        WriteEntry::new(ItemHandle(4242), MxValue::Double(1.0)),
    ];
    let r = s
        .write_bulk(server, WriteKind::Write, &entries)
        .await
        .unwrap();
    assert_eq!(
        r.iter().map(|r| r.outcome.is_ok()).collect::<Vec<_>>(),
        [true, false]
    );
    assert!(write_complete(&mut events, handles[0])
        .await
        .failure()
        .is_none());
    entries.truncate(1);
    entries[0].value = MxValue::Double(101.0);
    assert!(s
        .write_bulk(server, WriteKind::Write2, &entries)
        .await
        .unwrap()[0]
        .outcome
        .is_ok());
    assert!(s
        .write_bulk(server, WriteKind::WriteSecured, &entries)
        .await
        .unwrap()[0]
        .outcome
        .is_ok());
    assert!(s
        .write_bulk(server, WriteKind::WriteSecured2, &entries)
        .await
        .unwrap()[0]
        .outcome
        .is_ok());
    for _ in 0..3 {
        assert!(write_complete(&mut events, handles[0])
            .await
            .failure()
            .is_none());
    }

    assert!(
        s.unadvise_item_bulk(server, &handles[..1]).await.unwrap()[0]
            .outcome
            .is_ok()
    );
    assert!(s.remove_item_bulk(server, &handles[..1]).await.unwrap()[0]
        .outcome
        .is_ok());
    let un = s
        .unsubscribe_bulk(server, &[handles[2], handles[0]])
        .await
        .unwrap();
    assert_eq!(
        un.iter().map(|r| r.outcome.is_ok()).collect::<Vec<_>>(),
        [true, false]
    );

    // Chunked subscribe keeps the order across chunks.
    let many: Vec<String> = [
        "Pump001.Speed",
        "Pump001.Starts",
        "Tank001.Level",
        "Tank001.Volume",
        "Line001.Clock",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    let r = s.subscribe_bulk_chunked(server, &many, 2).await.unwrap();
    assert_eq!(r.iter().map(|r| r.tag.clone()).collect::<Vec<_>>(), many);
    assert!(r.iter().all(|r| r.outcome.is_ok()));
}

#[tokio::test]
async fn bulk_entries_denied_in_place_by_key_constraints() {
    let extra = r#"
[[auth.keys]]
key = "mxgw_pumpreader_77aa"
scopes = ["session:open", "invoke:read", "events:read"]
read_prefixes = ["Pump001."]
"#;
    let h = start(api_key_galaxy(extra), fast()).await;
    let c = client(&h, Some("mxgw_pumpreader_77aa")).await;
    let s = c.open_session("reader").await.unwrap();
    let server = s.register("reader").await.unwrap();
    let tags: Vec<String> = ["Pump001.Speed", "Tank001.Level", "Pump001.Mode"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    let r = s.subscribe_bulk(server, &tags).await.unwrap();
    assert!(r[0].outcome.is_ok() && r[2].outcome.is_ok());
    let denied = r[1].outcome.as_ref().unwrap_err();
    assert!(denied.message.starts_with("PERMISSION_DENIED"), "{denied}");
    let e = s.add_item(server, "Tank001.Level").await.unwrap_err();
    assert_eq!(e.rpc_code(), Some(RpcCode::PermissionDenied));
    let rb = s.read_bulk(server, &tags, Duration::ZERO).await.unwrap();
    assert!(rb[0].outcome.is_ok() && rb[1].outcome.is_err() && rb[2].outcome.is_ok());

    // Write constraints: prefix and classification.
    let c = client(&h, Some(PUMPDESK_KEY)).await;
    let s = c.open_session("desk").await.unwrap();
    let server = s.register("desk").await.unwrap();
    let items = subscribe(
        &s,
        server,
        &[
            "Pump001.SpeedSP",
            "Valve001.Position",
            "Pump001.MaxSpeed",
            "Pump001.Mode",
        ],
    )
    .await;
    let entries: Vec<WriteEntry> = [
        (items[0], MxValue::Double(900.0)),
        (items[1], MxValue::Double(1.0)),
        (items[2], MxValue::Double(1.0)),
        (items[3], MxValue::String("Auto".into())),
    ]
    .into_iter()
    .map(|(i, v)| WriteEntry::new(i, v))
    .collect();
    let r = s
        .write_bulk(server, WriteKind::Write, &entries)
        .await
        .unwrap();
    assert_eq!(r.iter().map(|r| r.item_handle).collect::<Vec<_>>(), items);
    assert_eq!(
        r.iter().map(|r| r.outcome.is_ok()).collect::<Vec<_>>(),
        [true, false, false, true]
    );
    assert!(r[1]
        .outcome
        .as_ref()
        .unwrap_err()
        .message
        .contains("may not write Valve001.Position"));
    assert!(r[2]
        .outcome
        .as_ref()
        .unwrap_err()
        .message
        .contains("up to Operate"));
    // Secured writes need invoke:secure, which this key lacks.
    let e = s
        .write_bulk(server, WriteKind::WriteSecured, &entries[..1])
        .await
        .unwrap_err();
    assert_eq!(e.rpc_code(), Some(RpcCode::PermissionDenied));
}

#[tokio::test]
async fn read_bulk_cached_and_snapshot() {
    let h = demo().await;
    let (_c, s, server) = session(&h).await;
    let sp = subscribe(&s, server, &["Pump001.SpeedSP"]).await[0];
    let mut events = s.events(None).await.unwrap();
    data_change(&mut events, sp).await;
    let before = h.sim.sessions()[0].item_count;
    let tags: Vec<String> = [
        "Pump001.SpeedSP",
        "Pump001.MaxSpeed",
        "Nope.Attr",
        "Line001.Profile[3]",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    let r = s
        .read_bulk(server, &tags, Duration::from_secs(2))
        .await
        .unwrap();
    let cached = r[0].outcome.as_ref().unwrap();
    assert!(cached.was_cached);
    assert_eq!(cached.value, MxValue::Double(1200.0));
    let snap = r[1].outcome.as_ref().unwrap();
    assert!(!snap.was_cached);
    assert_eq!(snap.value, MxValue::Double(2800.0));
    assert!(r[2].outcome.is_err());
    assert!(matches!(
        r[3].outcome.as_ref().unwrap().value,
        MxValue::Double(_)
    ));
    assert_eq!(
        h.sim.sessions()[0].item_count,
        before,
        "a snapshot leaves the session as it was"
    );

    // A snapshot that cannot see a data change in time fails its entry.
    let slow = SimOptions {
        first_update_delay: Some(Duration::from_millis(300)),
        ..fast()
    };
    let h = start(Galaxy::demo(), slow).await;
    let (_c, s, server) = session(&h).await;
    let r = s
        .read_bulk(server, &tags[1..2], Duration::from_millis(20))
        .await
        .unwrap();
    let e = r[0].outcome.as_ref().unwrap_err();
    assert_eq!(e.statuses[0].detail_name(), Some("RequestTimedOut"));
}

#[tokio::test]
async fn arrays_quality_and_unresolved_references() {
    let h = demo().await;
    let (_c, s, server) = session(&h).await;
    let items = subscribe(
        &s,
        server,
        &[
            "Line001.Profile[]",
            "Line001.Profile[2]",
            "Line001.Profile",
            "Nope001.X",
            "Tank001.Temperature",
        ],
    )
    .await;
    let mut events = s.events(None).await.unwrap();
    match data_change(&mut events, items[0]).await.value {
        MxValue::Array(MxArray::Double(v)) => assert_eq!(v.len(), 8),
        v => panic!("{v:?}"),
    }
    assert!(matches!(
        data_change(&mut events, items[1]).await.value,
        MxValue::Double(_)
    ));
    let bare = data_change(&mut events, items[2]).await;
    assert!(bare.quality.is_bad());
    assert_eq!(bare.statuses[0].detail_name(), Some("IndexOutOfRange"));
    let unknown = data_change(&mut events, items[3]).await;
    assert_eq!(unknown.quality, Quality::BAD_CONFIG_ERROR);
    assert_eq!(unknown.statuses[0].detail_name(), Some("InvalidReference"));
    data_change(&mut events, items[4]).await;
    h.sim
        .set_quality("Tank001.Temperature", Some(Quality::BAD_COMM_FAILURE))
        .unwrap();
    let dc = wait_for(
        &mut events,
        |e| matches!(e, SessionEvent::DataChange(d) if d.item_handle == items[4] && d.quality.is_bad()),
    )
    .await;
    let SessionEvent::DataChange(dc) = dc else {
        unreachable!()
    };
    assert_eq!(dc.quality.description(), "Bad: communication failure");
    h.sim
        .set_value("Tank001.Temperature", MxValue::Double(42.0))
        .unwrap();
    h.sim
        .set_quality("Tank001.Temperature", Some(Quality::UNCERTAIN_EU_EXCEEDED))
        .unwrap();
    wait_for(&mut events, |e| {
        matches!(e, SessionEvent::DataChange(d) if d.item_handle == items[4] && d.value == MxValue::Double(42.0) && d.quality.is_uncertain())
    })
    .await;
}

/// One area, one object, one HiHi alarm on Boiler001.Pressure.
const ALARM_GALAXY: &str = r#"
[galaxy]
name = "Galaxy"
[[users]]
name = "viewer"
password = "v"
id = 9
[[areas]]
name = "Plant"
[[objects]]
tag = "Boiler001"
area = "Plant"
[[objects.attributes]]
name = "Pressure"
type = "Double"
initial = 10.0
[[objects.attributes.alarms]]
name = "Pressure.HiHi"
kind = "HiHi"
limit = 50.0
priority = 100
description = "Boiler pressure high high"
"#;

fn alarm_galaxy() -> Galaxy {
    Galaxy::from_toml(ALARM_GALAXY, "alarm test").unwrap()
}

async fn next_feed(feed: &mut AlarmFeed) -> AlarmFeedItem {
    tokio::time::timeout(WAIT, feed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

async fn next_transition(feed: &mut AlarmFeed) -> AlarmTransition {
    match next_feed(feed).await {
        AlarmFeedItem::Transition(t) => t,
        other => panic!("expected a transition, got {other:?}"),
    }
}

#[tokio::test]
async fn alarms_snapshot_then_transitions_and_acknowledge() {
    let h = start(alarm_galaxy(), fast()).await;
    let c = client(&h, None).await;
    const REF: &str = "Galaxy!Plant.Boiler001.Pressure.HiHi";
    assert!(c.query_active_alarms("").await.unwrap().is_empty());
    h.sim
        .set_value("Boiler001.Pressure", MxValue::Double(60.0))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let active = c.query_active_alarms("Galaxy!Plant").await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(
        (
            active[0].reference.as_str(),
            active[0].state,
            active[0].priority
        ),
        (REF, AlarmState::UnackAlm, 100)
    );
    assert!(c
        .query_active_alarms("Galaxy!Other")
        .await
        .unwrap()
        .is_empty());

    let mut feed = c.stream_alarms("").await.unwrap();
    match next_feed(&mut feed).await {
        AlarmFeedItem::Active(a) => {
            assert_eq!(a.reference, REF);
            assert_eq!(a.limit_value, Some(MxValue::Double(50.0)));
            assert_eq!(a.category, "Plant");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        next_feed(&mut feed).await,
        AlarmFeedItem::SnapshotComplete {
            active_alarm_count: 1
        }
    );

    c.acknowledge_alarm(REF, "seen, venting", "operator1")
        .await
        .unwrap();
    let t = next_transition(&mut feed).await;
    assert_eq!(
        (t.kind, t.state),
        (AlarmTransitionKind::Acknowledge, AlarmState::AckAlm)
    );
    assert_eq!(
        (t.comment.as_str(), t.operator.as_str()),
        ("seen, venting", "operator1")
    );
    let e = c.acknowledge_alarm(REF, "", "operator1").await.unwrap_err();
    assert_eq!(mx_detail(&e), Some("AlarmAckedAlready"));
    let e = c
        .acknowledge_alarm("Galaxy!Plant.Boiler001.Nope", "", "x")
        .await
        .unwrap_err();
    assert_eq!(mx_detail(&e), Some("InvalidReference"));
    let e = c
        .acknowledge_alarm(REF, &"x".repeat(257), "x")
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::InvalidArgument { .. }));

    // Value back below the limit: CLEAR to ACK_RTN (no longer active).
    h.sim
        .set_value("Boiler001.Pressure", MxValue::Double(20.0))
        .unwrap();
    let t = next_transition(&mut feed).await;
    assert_eq!(
        (t.kind, t.state),
        (AlarmTransitionKind::Clear, AlarmState::AckRtn)
    );
    assert_eq!(t.current_value, Some(MxValue::Double(20.0)));
    assert!(c.query_active_alarms("").await.unwrap().is_empty());

    // Raise, clear unacknowledged (UNACK_RTN), raise again: RETRIGGER.
    h.sim.raise_alarm(REF).unwrap();
    let t = next_transition(&mut feed).await;
    assert_eq!(
        (t.kind, t.state),
        (AlarmTransitionKind::Raise, AlarmState::UnackAlm)
    );
    h.sim.clear_alarm(REF).unwrap();
    let t = next_transition(&mut feed).await;
    assert_eq!(
        (t.kind, t.state),
        (AlarmTransitionKind::Clear, AlarmState::UnackRtn)
    );
    h.sim.raise_alarm(REF).unwrap();
    assert_eq!(
        next_transition(&mut feed).await.kind,
        AlarmTransitionKind::Retrigger
    );
    h.sim.release_alarm(REF).unwrap();
    let t = next_transition(&mut feed).await;
    assert_eq!(
        (t.kind, t.state),
        (AlarmTransitionKind::Clear, AlarmState::UnackRtn)
    );
    c.acknowledge_alarm(REF, "ok", "op").await.unwrap();
    let t = next_transition(&mut feed).await;
    assert_eq!(
        (t.kind, t.state),
        (AlarmTransitionKind::Acknowledge, AlarmState::AckRtn)
    );
}

/// An alarm filter prefix is client input: one whose length ends inside a
/// multi-byte character of an alarm reference matches nothing (it used to cut
/// the reference there and panic the call), and the simulator goes on serving.
#[tokio::test]
async fn an_alarm_prefix_ending_inside_a_character_matches_nothing() {
    let text = ALARM_GALAXY.replace("name = \"Galaxy\"", "name = \"G\u{e4}laxy\"");
    let h = start(
        Galaxy::from_toml(&text, "non-ASCII galaxy").unwrap(),
        fast(),
    )
    .await;
    let c = client(&h, None).await;
    const REF: &str = "G\u{e4}laxy!Plant.Boiler001.Pressure.HiHi";
    h.sim.raise_alarm(REF).unwrap();
    // "Gx" is two bytes; the reference's second byte is inside its "\u{e4}".
    assert!(c.query_active_alarms("Gx").await.unwrap().is_empty());
    let mut feed = c.stream_alarms("Gx").await.unwrap();
    assert_eq!(
        next_feed(&mut feed).await,
        AlarmFeedItem::SnapshotComplete {
            active_alarm_count: 0
        }
    );
    let active = c.query_active_alarms("G\u{e4}laxy!").await.unwrap();
    assert_eq!(
        active
            .iter()
            .map(|a| a.reference.as_str())
            .collect::<Vec<_>>(),
        [REF]
    );
}

#[tokio::test]
async fn demo_tank_alarm_is_in_the_feed() {
    let h = demo().await;
    let c = client(&h, None).await;
    h.sim.raise_alarm("Tank001.Level.HiHi").unwrap();
    let active = c
        .query_active_alarms("Galaxy!Area001.Tank001.Level.HiHi")
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].priority, 200);
    assert_eq!(active[0].alarm_type, "HiHi");
}

#[tokio::test]
async fn galaxy_repository_paging_and_deploys() {
    let h = demo().await;
    let c = client(&h, None).await;
    let g = c.galaxy();
    assert!(g.test_connection().await.unwrap());
    let deployed = g.last_deploy_time().await.unwrap().expect("deployed");

    let all = g
        .discover_all(&HierarchyQuery {
            include_attributes: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|o| o.tag_name.as_str()).collect::<Vec<_>>(),
        ["Area001", "Line001", "Pump001", "Tank001", "Valve001"]
    );
    let pump = all.iter().find(|o| o.tag_name == "Pump001").unwrap();
    let speed = pump.attributes.iter().find(|a| a.name == "Speed").unwrap();
    assert_eq!(
        (
            speed.full_tag_reference.as_str(),
            speed.data_type,
            speed.eng_units.as_str()
        ),
        ("Pump001.Speed", MxDataType::Double, "rpm")
    );
    assert!(pump
        .attributes
        .iter()
        .any(|a| a.is_alarm && a.name == "PumpFault"));
    let profile = all[1]
        .attributes
        .iter()
        .find(|a| a.name == "Profile")
        .unwrap();
    assert!(profile.is_array && profile.array_dimension == 8);
    let valve = all.iter().find(|o| o.tag_name == "Valve001").unwrap();
    assert_eq!(
        valve.attributes[0].security,
        SecurityClassification::ViewOnly
    );
    assert_eq!(pump.area_gobject_id, all[0].gobject_id);

    // Pages of two.
    let mut q = HierarchyQuery {
        page_size: 2,
        ..Default::default()
    };
    let mut pages = Vec::new();
    loop {
        let p = g.discover_hierarchy(&q).await.unwrap();
        assert_eq!(p.total_object_count, 5);
        assert!(p.objects.len() <= 2);
        pages.extend(p.objects.into_iter().map(|o| o.tag_name));
        if p.next_page_token.is_empty() {
            break;
        }
        q.page_token = p.next_page_token;
    }
    assert_eq!(pages.len(), 5);
    // A token does not survive a change of filters.
    let p = g
        .discover_hierarchy(&HierarchyQuery {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let bad = HierarchyQuery {
        page_size: 2,
        page_token: p.next_page_token,
        tag_name_glob: "P*".into(),
        ..Default::default()
    };
    assert_eq!(
        g.discover_hierarchy(&bad).await.unwrap_err().rpc_code(),
        Some(RpcCode::InvalidArgument)
    );

    let glob = g
        .discover_all(&HierarchyQuery {
            tag_name_glob: "p*".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        glob.iter().map(|o| o.tag_name.as_str()).collect::<Vec<_>>(),
        ["Pump001"]
    );
    assert!(glob[0].attributes.is_empty(), "attributes only when asked");
    let alarmed = g
        .discover_all(&HierarchyQuery {
            alarm_bearing_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        alarmed
            .iter()
            .map(|o| o.tag_name.as_str())
            .collect::<Vec<_>>(),
        ["Pump001", "Tank001"]
    );
    let sub = g
        .discover_all(&HierarchyQuery {
            root_tag_name: Some("Tank001".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sub.len(), 1);
    let e = g
        .discover_hierarchy(&HierarchyQuery {
            root_tag_name: Some("Nope".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.rpc_code(), Some(RpcCode::NotFound));

    let roots = g.browse_children(None, 0, "", false).await.unwrap();
    assert_eq!(roots.children.len(), 1);
    assert!(roots.children[0].0.is_area && roots.children[0].1);
    let kids = g
        .browse_children(Some("Area001"), 3, "", false)
        .await
        .unwrap();
    assert_eq!(
        kids.children
            .iter()
            .map(|(o, _)| o.tag_name.as_str())
            .collect::<Vec<_>>(),
        ["Line001", "Pump001", "Tank001"]
    );
    let rest = g
        .browse_children(Some("Area001"), 3, &kids.next_page_token, false)
        .await
        .unwrap();
    assert_eq!(rest.children.len(), 1);
    assert!(rest.next_page_token.is_empty());

    // Deploy events: the current state first, then one per deploy.
    let mut watch = g.watch_deploy_events(None).await.unwrap();
    let first = tokio::time::timeout(WAIT, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.sequence, first.time_of_last_deploy),
        (1, Some(deployed))
    );
    let seq = h.sim.deploy();
    let next = tokio::time::timeout(WAIT, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.sequence, seq);
    assert!(next.time_of_last_deploy.unwrap() > deployed);
    // Up to date: no bootstrap event, the next one is the next deploy.
    let mut watch = g
        .watch_deploy_events(next.time_of_last_deploy)
        .await
        .unwrap();
    let seq = h.sim.deploy();
    assert_eq!(
        tokio::time::timeout(WAIT, watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .sequence,
        seq
    );
}

/// Open a session with one constant advised item, and a stream that has seen
/// the first data change. Returns the item.
async fn quiet_session(h: &Harness) -> (Session, ItemHandle, EventStream) {
    let (_c, s, server) = session(h).await;
    let sp = subscribe(&s, server, &["Pump001.SpeedSP"]).await[0];
    let mut events = s.events(None).await.unwrap();
    data_change(&mut events, sp).await;
    (s, sp, events)
}

async fn drop_stream_after_burst(h: &Harness, s: &Session, events: &mut EventStream, n: u64) {
    h.sim.burst(s.id(), n, false).await.unwrap();
    // Let the server hand everything to the transport, then cut the stream.
    let deadline = Instant::now() + WAIT;
    while h.sim.sessions()[0].queued_events > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(h.sim.drop_event_streams(Some(s.id())), 1);
    let e = stream_error(events).await;
    assert_eq!(e.rpc_code(), Some(RpcCode::Unavailable), "{e}");
}

#[tokio::test]
async fn resume_after_dropped_stream_replays_without_gap() {
    let h = demo().await;
    let (s, _sp, mut events) = quiet_session(&h).await;
    let resume_from = events.last_sequence();
    drop_stream_after_burst(&h, &s, &mut events, 50).await;
    let mut resumed = s.events(Some(resume_from)).await.unwrap();
    for expected in resume_from + 1..=resume_from + 50 {
        let ev = tokio::time::timeout(WAIT, resumed.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ev.worker_sequence(), expected, "{ev:?}");
    }
    // A second subscriber is refused while this one is attached.
    let e = s.events(None).await.unwrap_err();
    assert_eq!(e.rpc_code(), Some(RpcCode::FailedPrecondition), "{e}");
}

#[tokio::test]
async fn resume_too_far_back_starts_with_replay_gap() {
    let h = start(
        Galaxy::demo(),
        SimOptions {
            replay_capacity: 8,
            ..fast()
        },
    )
    .await;
    let (s, _sp, mut events) = quiet_session(&h).await;
    let resume_from = events.last_sequence();
    drop_stream_after_burst(&h, &s, &mut events, 50).await;
    let last = resume_from + 50;
    let mut resumed = s.events(Some(resume_from)).await.unwrap();
    let first = tokio::time::timeout(WAIT, resumed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        first,
        SessionEvent::ReplayGap(ReplayGap {
            requested_after: resume_from,
            oldest_available: last - 7
        })
    );
    for expected in last - 7..=last {
        assert_eq!(
            tokio::time::timeout(WAIT, resumed.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
                .worker_sequence(),
            expected
        );
    }
}

#[tokio::test]
async fn session_faults_overflow_restart_and_lease() {
    // Overflow of the bounded queue faults the session.
    let h = start(
        Galaxy::demo(),
        SimOptions {
            event_queue_capacity: 100,
            ..fast()
        },
    )
    .await;
    let (_c, s, server) = session(&h).await;
    subscribe(&s, server, &["Pump001.SpeedSP"]).await;
    assert!(h.sim.burst(s.id(), 200, false).await.is_err());
    assert!(h.sim.sessions()[0].state.contains("EventQueueOverflow"));
    let e = s.register("x").await.unwrap_err();
    assert!(
        matches!(
            e,
            GatewayError::Refused {
                code: ProtocolCode::SessionNotReady,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_session_lost());
    assert_eq!(
        s.events(None).await.unwrap_err().rpc_code(),
        Some(RpcCode::Aborted)
    );
    assert_eq!(s.close().await.unwrap(), SessionState::Closed);

    // A worker crash ends the attached stream.
    let (s, _sp, mut events) = quiet_session(&h).await;
    h.sim.fault_session(s.id(), "").unwrap();
    let e = stream_error(&mut events).await;
    assert_eq!(e.rpc_code(), Some(RpcCode::Aborted));
    assert!(e.is_session_lost());

    // A restart forgets every session.
    let (s, _sp, mut events) = quiet_session(&h).await;
    h.sim.restart();
    assert_eq!(
        stream_error(&mut events).await.rpc_code(),
        Some(RpcCode::Unavailable)
    );
    assert_eq!(
        s.register("x").await.unwrap_err().rpc_code(),
        Some(RpcCode::NotFound)
    );

    // Refused sessions.
    h.sim.set_faults(Faults {
        refuse_sessions: true,
        ..Faults::default()
    });
    let c = client(&h, None).await;
    let e = c.open_session("x").await.unwrap_err();
    assert!(
        matches!(
            e,
            GatewayError::Refused {
                code: ProtocolCode::WorkerUnavailable,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_transient());
    h.sim.set_faults(Faults::default());

    // Stalled events pile up in the queue, then flow again.
    let (s, sp, mut events) = quiet_session(&h).await;
    h.sim.set_faults(Faults {
        stall_events: true,
        ..Faults::default()
    });
    h.sim.burst(s.id(), 20, false).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(150), events.next())
            .await
            .is_err()
    );
    h.sim.set_faults(Faults::default());
    data_change(&mut events, sp).await;

    // Lease expiry.
    let h = start(
        Galaxy::demo(),
        SimOptions {
            lease: Duration::from_millis(100),
            sweep_interval: Duration::from_millis(20),
            ..fast()
        },
    )
    .await;
    let (_c, s, _server) = session(&h).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.register("x").await.unwrap_err().rpc_code(),
        Some(RpcCode::NotFound)
    );
}

#[tokio::test]
async fn drain_events_without_a_stream() {
    let h = demo().await;
    let (_c, s, server) = session(&h).await;
    let sp = subscribe(&s, server, &["Pump001.SpeedSP"]).await[0];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let drained = s.drain_events(10).await.unwrap();
    assert!(
        matches!(&drained[0], SessionEvent::DataChange(d) if d.item_handle == sp),
        "{drained:?}"
    );
    let _events = s.events(None).await.unwrap();
    let e = s.drain_events(10).await.unwrap_err();
    assert!(
        matches!(
            e,
            GatewayError::Refused {
                code: ProtocolCode::InvalidRequest,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn unauthenticated_and_permission_denied() {
    let h = start(api_key_galaxy(""), fast()).await;
    let anon = client(&h, None).await;
    assert_eq!(
        anon.open_session("x").await.unwrap_err().rpc_code(),
        Some(RpcCode::Unauthenticated)
    );
    let wrong = client(&h, Some("mxgw_operator_wrongsecret")).await;
    let e = wrong.open_session("x").await.unwrap_err();
    assert_eq!(e.rpc_code(), Some(RpcCode::Unauthenticated));
    assert!(!e.to_string().contains("wrongsecret"), "{e}");
    assert_eq!(
        wrong
            .galaxy()
            .test_connection()
            .await
            .unwrap_err()
            .rpc_code(),
        Some(RpcCode::Unauthenticated)
    );

    let viewer = client(&h, Some(VIEWER_KEY)).await;
    let s = viewer.open_session("viewer").await.unwrap();
    let server = s.register("viewer").await.unwrap();
    let sp = subscribe(&s, server, &["Pump001.SpeedSP"]).await[0];
    let e = s
        .write(
            server,
            WriteKind::Write,
            &WriteEntry::new(sp, MxValue::Double(1.0)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.rpc_code(), Some(RpcCode::PermissionDenied));
    assert!(e.to_string().contains("invoke:write"), "{e}");
    assert_eq!(
        viewer
            .acknowledge_alarm("Galaxy!Area001.Tank001.Level.HiHi", "", "v")
            .await
            .unwrap_err()
            .rpc_code(),
        Some(RpcCode::PermissionDenied)
    );
    assert!(viewer.galaxy().test_connection().await.unwrap());
    viewer.query_active_alarms("").await.unwrap();

    let desk = client(&h, Some(PUMPDESK_KEY)).await;
    assert_eq!(
        desk.galaxy()
            .test_connection()
            .await
            .unwrap_err()
            .rpc_code(),
        Some(RpcCode::PermissionDenied)
    );
    let s = desk.open_session("desk").await.unwrap();
    assert_eq!(s.close().await.unwrap(), SessionState::Closed);

    let op = client(&h, Some(OPERATOR_KEY)).await;
    let s = op.open_session("op").await.unwrap();
    let server = s.register("op").await.unwrap();
    let sp = subscribe(&s, server, &["Pump001.SpeedSP"]).await[0];
    let mut events = s.events(None).await.unwrap();
    s.write(
        server,
        WriteKind::Write,
        &WriteEntry::new(sp, MxValue::Double(800.0)),
    )
    .await
    .unwrap();
    assert!(write_complete(&mut events, sp).await.failure().is_none());
}

#[test]
fn api_key_never_printed() {
    let secret = "mxgw_ops_S3CR3Tvalue";
    let key = ApiKey::new(secret).unwrap();
    assert_eq!(key.key_id(), Some("ops"));
    let opts = ClientOptions::plaintext("127.0.0.1:1").with_api_key(key.clone());
    for text in [
        format!("{key:?}"),
        format!("{key}"),
        format!("{opts:?}"),
        format!("{opts:#?}"),
    ] {
        assert!(!text.contains("S3CR3T"), "{text}");
    }
    assert!(ApiKey::new(" ").is_err());
    assert!(ApiKey::new("has space").is_err());
    let dir = std::env::temp_dir().join(format!("mxpva-key-{}", std::process::id()));
    std::fs::write(&dir, format!("{secret}\n")).unwrap();
    assert_eq!(ApiKey::from_file(&dir).unwrap(), key);
    std::fs::remove_file(&dir).unwrap();
    let e = ApiKey::from_env("MXPVA_TEST_SURELY_UNSET_VAR").unwrap_err();
    assert!(e.to_string().contains("MXPVA_TEST_SURELY_UNSET_VAR"));
}

#[tokio::test]
async fn connection_errors_are_typed() {
    // Nothing listens on this port (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = GatewayClient::connect(&ClientOptions::plaintext(format!("127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::Connect { .. }), "{e}");
    assert!(e.is_transient());
    let e = GatewayClient::connect(&ClientOptions::plaintext("https://127.0.0.1:1"))
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::Config(_)), "{e}");
    let tls = ClientOptions {
        tls: Some(TlsOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            server_name: None,
        }),
        ..ClientOptions::plaintext("127.0.0.1:1")
    };
    let e = GatewayClient::connect(&tls).await.unwrap_err();
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}

#[tokio::test]
async fn tls_with_custom_ca_and_server_name_override() {
    let ck = rcgen::generate_simple_self_signed(vec!["gateway.test".to_string()]).unwrap();
    let tls = mxpva::sim::SimTls {
        cert_pem: ck.cert.pem().into_bytes(),
        key_pem: ck.signing_key.serialize_pem().into_bytes(),
    };
    let h = start(
        Galaxy::demo(),
        SimOptions {
            tls: Some(tls),
            ..fast()
        },
    )
    .await;
    let ca = std::env::temp_dir().join(format!("mxpva-test-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let with = |server_name: Option<&str>| ClientOptions {
        tls: Some(TlsOptions {
            ca_file: Some(ca.clone()),
            server_name: server_name.map(String::from),
        }),
        ..ClientOptions::plaintext(h.addr.to_string())
    };

    let c = GatewayClient::connect(&with(Some("gateway.test")))
        .await
        .unwrap();
    let s = c.open_session("tls").await.unwrap();
    assert_eq!(s.close().await.unwrap(), SessionState::Closed);

    // Without the override the certificate does not match 127.0.0.1.
    let failed = match GatewayClient::connect(&with(None)).await {
        Err(e) => Some(e),
        Ok(c) => c.open_session("x").await.err(),
    };
    assert!(failed.is_some(), "a name mismatch must fail");
    // A plaintext client cannot talk to a TLS gateway.
    let failed = match GatewayClient::connect(&ClientOptions::plaintext(h.addr.to_string())).await {
        Err(e) => Some(e),
        Ok(c) => c.open_session("x").await.err(),
    };
    assert!(failed.is_some());
    std::fs::remove_file(&ca).unwrap();
}

#[tokio::test]
async fn buffered_items_deliver_batches() {
    let h = demo().await;
    let (_c, s, server) = session(&h).await;
    let level = s.add_buffered_item(server, "Tank001.Level").await.unwrap();
    assert!(s
        .set_buffered_update_interval(server, Duration::ZERO)
        .await
        .is_err());
    s.set_buffered_update_interval(server, Duration::from_millis(150))
        .await
        .unwrap();
    s.advise(server, level).await.unwrap();
    let mut events = s.events(None).await.unwrap();
    let mut most = 0;
    for _ in 0..4 {
        // A buffered item never produces a plain OnDataChange.
        let ev = wait_for(&mut events, |e| match e {
            SessionEvent::DataChange(d) => {
                assert_ne!(
                    d.item_handle, level,
                    "plain OnDataChange for a buffered item"
                );
                false
            }
            SessionEvent::BufferedDataChange(b) => b.item_handle == level,
            _ => false,
        })
        .await;
        let SessionEvent::BufferedDataChange(b) = ev else {
            unreachable!()
        };
        assert!(b
            .samples
            .iter()
            .all(|(v, _, t)| matches!(v, MxValue::Double(_)) && t.is_some()));
        most = most.max(b.samples.len());
    }
    assert!(
        most >= 2,
        "a batch should hold several samples, most was {most}"
    );
}
