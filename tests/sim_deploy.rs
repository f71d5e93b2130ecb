//! The simulator's deploys (`SimHandle::deploy_galaxy`, what `mxpva sim --galaxy FILE`
//! does on SIGHUP), seen through the gateway client as a real client sees the gateway:
//! the DeployEvent and the deploy time, the new hierarchy, and the advised items of an
//! attribute removed (Bad: configuration error, InvalidReference), retyped (the new type)
//! and kept (nothing but its own updates); an attribute deployed again reports again.

use std::time::{Duration, Instant};

use mxpva::gateway::{
    ClientOptions, DataChange, EventStream, GatewayClient, HierarchyQuery, ItemHandle, MxDataType,
    MxValue, Quality, SessionEvent,
};
use mxpva::sim::{Galaxy, SimHandle, SimOptions};

const BEFORE: &str = include_str!("fixtures/galaxy/sim_deploy.toml");

fn after() -> String {
    BEFORE
        .replace(
            "type = \"Integer\"\ninitial = 2\n",
            "type = \"Double\"\ninitial = 2.5\n",
        )
        .replace("name = \"Old\"", "name = \"New\"")
}

/// Data changes in arrival order; each item's are taken in turn.
struct Changes(EventStream, Vec<DataChange>);

impl Changes {
    async fn next(&mut self, item: ItemHandle) -> DataChange {
        if let Some(i) = self.1.iter().position(|d| d.item_handle == item) {
            return self.1.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.0.next()).await {
                Ok(Some(Ok(SessionEvent::DataChange(d)))) if d.item_handle == item => return d,
                Ok(Some(Ok(SessionEvent::DataChange(d)))) => self.1.push(d),
                Ok(Some(Ok(_))) => continue,
                other => panic!("no data change of {item:?}: {other:?}; held {:?}", self.1),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_changes_the_hierarchy_and_the_items_of_what_changed() {
    let sim = SimHandle::new(
        Galaxy::from_toml(BEFORE, "before").unwrap(),
        SimOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sim.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    let c = GatewayClient::connect(&ClientOptions::plaintext(addr.to_string()))
        .await
        .unwrap();
    let mut deploys = c.galaxy().watch_deploy_events(None).await.unwrap();
    let first = deploys.next().await.unwrap().unwrap();

    let s = c.open_session("deploy").await.unwrap();
    let server = s.register("deploy").await.unwrap();
    let mut events = Changes(s.events(None).await.unwrap(), Vec::new());
    let tags: Vec<String> = [
        "Tank001.Level",
        "Tank001.Mode",
        "Tank001.Old",
        "Tank001.New",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    let items: Vec<ItemHandle> = s
        .subscribe_bulk(server, &tags)
        .await
        .unwrap()
        .iter()
        .map(|r| r.item_handle)
        .collect();
    let (level, mode, old, new) = (items[0], items[1], items[2], items[3]);
    assert_eq!(events.next(old).await.value, MxValue::Double(1.5));
    assert_eq!(events.next(mode).await.value, MxValue::Int32(2));
    // Not deployed yet: an unresolved reference.
    assert_eq!(events.next(new).await.quality, Quality::BAD_CONFIG_ERROR);
    events.next(level).await;

    let seq = sim.deploy_galaxy(Galaxy::from_toml(&after(), "after").unwrap());
    let ev = deploys.next().await.unwrap().unwrap();
    assert_eq!(ev.sequence, seq);
    assert_eq!(ev.sequence, first.sequence + 1);
    assert!(
        ev.time_of_last_deploy > first.time_of_last_deploy,
        "{ev:?} after {first:?}"
    );

    // The hierarchy is the new one.
    let objects = c
        .galaxy()
        .discover_all(&HierarchyQuery {
            include_attributes: true,
            ..HierarchyQuery::default()
        })
        .await
        .unwrap();
    let tank = objects.iter().find(|o| o.tag_name == "Tank001").unwrap();
    let names: Vec<(&str, MxDataType)> = tank
        .attributes
        .iter()
        .map(|a| (a.name.as_str(), a.data_type))
        .collect();
    assert_eq!(
        names,
        [
            ("Level", MxDataType::Double),
            ("Mode", MxDataType::Double),
            ("New", MxDataType::Double)
        ]
    );

    // The removed attribute's item: what an undeployed object's item reports.
    let gone = events.next(old).await;
    assert_eq!(gone.quality, Quality::BAD_CONFIG_ERROR, "{gone:?}");
    let status = gone.statuses.first().expect("a status");
    assert_eq!(status.detail_name(), Some("InvalidReference"), "{status}");
    // The retyped and the added ones report their values.
    assert_eq!(events.next(mode).await.value, MxValue::Double(2.5));
    let added = events.next(new).await;
    assert_eq!(added.value, MxValue::Double(1.5));
    assert!(added.quality.is_good(), "{added:?}");
    // The kept one goes on with good values.
    for _ in 0..3 {
        let d = events.next(level).await;
        assert!(d.quality.is_good(), "{d:?}");
    }

    // Deployed again, the attribute reports again.
    sim.deploy_galaxy(Galaxy::from_toml(BEFORE, "before").unwrap());
    let back = events.next(old).await;
    assert_eq!(back.value, MxValue::Double(1.5));
    assert!(back.quality.is_good(), "{back:?}");
    let _ = stop.send(());
}
