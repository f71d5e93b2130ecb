//! The simulator decodes what its clients write with the gateway module's code, so a
//! hostile gRPC client could once stop it: a sparse array claiming u32::MAX elements
//! made it allocate them ("memory allocation of 103079215080 bytes failed", abort).
//! A raw client (the generated code of proto/, from OUT_DIR) sends such writes; each is
//! refused with the cap it passes, and the simulator keeps serving.

use std::time::Duration;

use mxpva::gateway::{ClientOptions, GatewayClient, MxArray, MxValue, SessionEvent};
use mxpva::sim::{Galaxy, SimHandle, SimOptions};

#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
mod pb {
    tonic::include_proto!("mxaccess_gateway.v1");
}

use pb::mx_command::Payload;
use pb::mx_value::Kind;

fn sparse(element: pb::MxDataType, total: u32, elements: Vec<(u32, Kind)>) -> pb::MxValue {
    pb::MxValue {
        kind: Some(Kind::SparseArrayValue(pb::MxSparseArray {
            element_data_type: element as i32,
            total_length: total,
            elements: elements
                .into_iter()
                .map(|(index, k)| pb::MxSparseElement {
                    index,
                    value: Some(pb::MxValue {
                        kind: Some(k),
                        ..Default::default()
                    }),
                })
                .collect(),
        })),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_the_caps_are_refused_and_the_simulator_keeps_serving() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = SimOptions {
        tick: Some(Duration::from_millis(20)),
        first_update_delay: Some(Duration::from_millis(10)),
        ..SimOptions::default()
    };
    let sim = SimHandle::new(Galaxy::demo(), opts);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sim.serve(listener, async move {
        let _ = stopped.await;
    }));

    // A session, its server handle and two items, through the crate's own client.
    let client = GatewayClient::connect(&ClientOptions::plaintext(addr.to_string()))
        .await
        .unwrap();
    let session = client.open_session("hostile-writer").await.unwrap();
    let server = session.register("hostile-writer").await.unwrap();
    let tags = vec!["Line001.Recipe[]".to_string(), "Pump001.Mode".to_string()];
    let items = session.subscribe_bulk(server, &tags).await.unwrap();
    let mut events = session.events(None).await.unwrap();
    let (recipe, mode) = (items[0].item_handle.0, items[1].item_handle.0);

    // The same session from a raw client, which can send anything.
    let raw =
        pb::mx_access_gateway_client::MxAccessGatewayClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
    let write = |item: i32, value: pb::MxValue, time: Option<prost_types::Timestamp>| {
        let (kind, payload) = match time {
            None => (
                pb::MxCommandKind::Write,
                Payload::Write(pb::WriteCommand {
                    server_handle: server.0,
                    item_handle: item,
                    value: Some(value),
                    user_id: 0,
                }),
            ),
            Some(t) => (
                pb::MxCommandKind::Write2,
                Payload::Write2(pb::Write2Command {
                    server_handle: server.0,
                    item_handle: item,
                    value: Some(value),
                    timestamp_value: Some(t),
                    user_id: 0,
                }),
            ),
        };
        let request = pb::MxCommandRequest {
            session_id: session.id().to_string(),
            client_correlation_id: "hostile".into(),
            command: Some(pb::MxCommand {
                kind: kind as i32,
                payload: Some(payload),
            }),
        };
        let mut raw = raw.clone();
        async move {
            let status = raw
                .invoke(request)
                .await
                .unwrap()
                .into_inner()
                .protocol_status
                .unwrap();
            (
                pb::ProtocolStatusCode::try_from(status.code).unwrap(),
                status.message,
            )
        }
    };
    let refused = |message: &str| (pb::ProtocolStatusCode::InvalidRequest, message.to_string());

    assert_eq!(
        write(
            recipe,
            sparse(pb::MxDataType::String, u32::MAX, vec![]),
            None
        )
        .await,
        refused("sparse array of 4294967295 elements exceeds [limits] max_array_length 100000")
    );
    assert_eq!(
        write(
            recipe,
            sparse(
                pb::MxDataType::Integer,
                100_001,
                vec![(0, Kind::Int32Value(1))]
            ),
            None
        )
        .await,
        refused("sparse array of 100001 elements exceeds [limits] max_array_length 100000")
    );
    let long = pb::MxValue {
        kind: Some(Kind::StringValue("x".repeat(70_000))),
        ..Default::default()
    };
    assert_eq!(
        write(mode, long, None).await,
        refused("string of 70000 bytes exceeds [limits] max_string_length 65536")
    );
    let manual = pb::MxValue {
        kind: Some(Kind::StringValue("Manual".into())),
        ..Default::default()
    };
    let before_year_1 = prost_types::Timestamp {
        seconds: -62_135_596_801,
        nanos: 0,
    };
    assert_eq!(
        write(mode, manual, Some(before_year_1)).await,
        refused(
            "time -62135596801s 0ns is outside 0001-01-01 to 9999-12-31 or not a valid timestamp"
        )
    );

    // A sparse write within the caps is expanded as the gateway does: the whole array,
    // default-filled, with the given element set.
    let ok = write(
        recipe,
        sparse(pb::MxDataType::Integer, 4, vec![(1, Kind::Int32Value(99))]),
        None,
    )
    .await;
    assert_eq!(ok.0, pb::ProtocolStatusCode::Ok, "{ok:?}");
    let written = MxValue::Array(MxArray::Int32(vec![0, 99, 0, 0]));
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.next().await {
                Some(Ok(SessionEvent::DataChange(dc)))
                    if dc.item_handle.0 == recipe && dc.value == written =>
                {
                    break
                }
                Some(Ok(_)) => {}
                other => panic!("the event stream ended: {other:?}"),
            }
        }
    })
    .await
    .expect("the sparse write shows as a data change within 10 s");
    let _ = session.close().await;
    let _ = stop.send(());
}
