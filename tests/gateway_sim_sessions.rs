//! The real gateway client against the real simulator, over loopback gRPC: event
//! streams and their replay, session faults and leases, API keys, connection errors,
//! TLS, and buffered items.
mod clients;

use std::time::{Duration, Instant};

use clients::sim::*;
use mxpva::gateway::*;
use mxpva::sim::{Faults, Galaxy, SimOptions};

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
