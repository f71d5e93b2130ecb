//! The real gateway client against the real simulator, over loopback gRPC: items,
//! writes, the bulk family, reads. Alarms and the Galaxy Repository are in
//! `gateway_sim_alarms.rs`; streams, sessions, keys and TLS in `gateway_sim_sessions.rs`.
mod clients;

use std::time::{Duration, Instant, SystemTime};

use clients::sim::*;
use mxpva::gateway::*;
use mxpva::sim::{Faults, Galaxy, SimOptions, DEMO_GALAXY};

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
