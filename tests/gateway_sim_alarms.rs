//! The real gateway client against the real simulator, over loopback gRPC: the alarm
//! feed and acknowledgements, and the Galaxy Repository with deploys.
mod clients;

use std::time::Duration;

use clients::sim::*;
use mxpva::gateway::*;
use mxpva::sim::Galaxy;

/// One area, one object, one HiHi alarm on Boiler001.Pressure.
const ALARM_GALAXY: &str = include_str!("fixtures/galaxy/sim_alarms.toml");

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

/// How far `t` is from the host's clock moved by `offset_ms`, in seconds (signed).
fn off_by(t: std::time::SystemTime, offset_ms: i64) -> f64 {
    let now = std::time::SystemTime::now();
    let node = if offset_ms >= 0 {
        now + Duration::from_millis(offset_ms as u64)
    } else {
        now - Duration::from_millis(offset_ms.unsigned_abs())
    };
    match t.duration_since(node) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// `[galaxy] clock_offset_ms`: the System Platform node's clock runs ahead of the host's
/// (or behind), and every time the simulator reports comes from it: the source times of
/// a first value, a written value and a snapshot read, an alarm's raise and transition
/// times, the last deploy time. A deploy of a Galaxy with another offset moves it.
#[tokio::test]
async fn every_time_the_simulator_reports_is_off_by_its_clock_offset() {
    for offset_ms in [20_000i64, -20_000] {
        let with = |ms: i64| {
            let text =
                ALARM_GALAXY.replace("[galaxy]\n", &format!("[galaxy]\nclock_offset_ms = {ms}\n"));
            Galaxy::from_toml(&text, "clock offset test").unwrap()
        };
        let h = start(with(offset_ms), fast()).await;
        let near = |what: &str, t: Option<std::time::SystemTime>| {
            let off = off_by(t.expect(what), offset_ms);
            assert!(
                off.abs() < 5.0,
                "{what} with clock_offset_ms = {offset_ms}: {off:.3} s from the host's clock moved by it"
            );
        };
        let (c, s, server) = session(&h).await;
        let mut events = s.events(None).await.unwrap();
        let item = subscribe(&s, server, &["Boiler001.Pressure"]).await[0];
        near(
            "a first value's source time",
            data_change(&mut events, item).await.source_time,
        );
        near(
            "the last deploy time",
            c.galaxy().last_deploy_time().await.unwrap(),
        );

        // A write across the HiHi limit: its data change, and the alarm it raises.
        let mut feed = c.stream_alarms("").await.unwrap();
        assert!(matches!(
            next_feed(&mut feed).await,
            AlarmFeedItem::SnapshotComplete { .. }
        ));
        s.write(
            server,
            WriteKind::Write,
            &WriteEntry::new(item, MxValue::Double(60.0)),
        )
        .await
        .unwrap();
        let (changes, done) = until_write_complete(&mut events, item).await;
        assert!(done.failure().is_none(), "{done:?}");
        near(
            "a written value's source time",
            changes.last().and_then(|d| d.source_time),
        );
        let t = next_transition(&mut feed).await;
        assert_eq!(t.kind, AlarmTransitionKind::Raise);
        near("an alarm transition's time", t.at);
        near("an alarm's raise time", t.raised_at);
        let active = c.query_active_alarms("").await.unwrap();
        near("an active alarm's raise time", active[0].raised_at);

        let read = s
            .read_bulk(server, &["Boiler001.Pressure".to_string()], WAIT)
            .await
            .unwrap();
        near(
            "a read's source time",
            read[0].outcome.as_ref().unwrap().source_time,
        );

        // A deploy with the clock 40 s the other way: the node's clock jumps.
        let other = -offset_ms;
        h.sim.deploy_galaxy(with(other));
        h.sim
            .set_value("Boiler001.Pressure", MxValue::Double(20.0))
            .unwrap();
        let t = next_transition(&mut feed).await;
        assert_eq!(t.kind, AlarmTransitionKind::Clear);
        let off = off_by(t.at.unwrap(), other);
        assert!(
            off.abs() < 5.0,
            "after a deploy with clock_offset_ms = {other}: {off:.3} s"
        );
    }
    // More than a year either way is refused, naming the key.
    let text = ALARM_GALAXY.replace("[galaxy]\n", "[galaxy]\nclock_offset_ms = -40000000000\n");
    let e = Galaxy::from_toml(&text, "clock offset test").unwrap_err();
    assert!(
        e.to_string().contains("galaxy.clock_offset_ms must be"),
        "{e}"
    );
}
