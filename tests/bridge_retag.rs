//! A PV re-tagged while the subscription of its old tag is still under way (issue 21,
//! defect 1): `mxpva sim` and `mxpva run` as processes on loopback, the PV read by p4p
//! and written by EPICS pvput, the writes read from the simulator's record.
//!
//! The simulator's events stall, so the first values of the eight PVs advised at
//! connect never come and they fill the subscription window (`[gateway]
//! subscribe_chunk = 1`: eight places). A reload adds X on `Pump001.MaxSpeed`: its
//! subscription waits for room. A second reload re-tags X to `Pump001.SpeedSP`: the PV
//! is re-opened and its new tag's subscription waits too. A third reload removes one of
//! the eight, which frees one place: the old tag's subscription, first in line, goes
//! alone and its result comes back while the new tag's still waits (as when first
//! values trickle in from a slow gateway). Then the events flow again. X must end up
//! bound to its new tag only: it shows the new tag's value, a put to X writes
//! `Pump001.SpeedSP`, never `Pump001.MaxSpeed`, and the old tag's item is unsubscribed.

mod clients;

use std::time::{Duration, Instant};

use clients::clients;
use clients::plant::{galaxy_fixture, Plant};
use mxpva::sim::Faults;

/// The eight PVs that fill the subscription window.
const FILLERS: usize = 8;

fn galaxy() -> String {
    let mut text = galaxy_fixture("retag");
    for i in 1..=FILLERS {
        text += &format!(
            "\n[[objects.attributes]]\nname = \"F{i}\"\ntype = \"Double\"\ninitial = {i}.0\n"
        );
    }
    text
}

fn mapping(fillers: usize, x: Option<&str>) -> String {
    let mut text = format!(
        r#"
[gateway]
endpoint = "http://{{gateway}}"
client_name = "mxpva-retag"
subscribe_chunk = 1
request_timeout = "30s"
reconnect_initial = "100ms"
reconnect_max = "400ms"

[defaults]
prefix = "T:"
"#
    );
    for i in 1..=fillers {
        text += &format!("\n[[pv]]\nname = \"F{i}\"\ntag = \"Tank001.F{i}\"\ntype = \"float64\"\n");
    }
    if let Some(tag) = x {
        text += &format!(
            "\n[[pv]]\nname = \"X\"\ntag = \"{tag}\"\ntype = \"float64\"\nwritable = true\n"
        );
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pv_retagged_while_its_old_tag_is_subscribing_writes_the_new_tag_only() {
    let mut plant = Plant::new("retag-put").galaxy_text(galaxy()).start().await;
    let control = plant.control().clone();
    let stall = Faults {
        stall_events: true,
        ..Default::default()
    };
    control.set_faults(&stall).await.unwrap();

    plant.write_config(&mapping(FILLERS, None));
    plant.start_bridge();
    let env = plant.env.clone();
    // The eight fillers are advised and hold the whole window: no first value comes.
    let text = plant.logged("gateway session up", 1).await;
    assert!(text.contains(&format!("subscribed={FILLERS}")), "{text}");

    // X on the old tag: its subscription waits for room.
    plant.write_config(&mapping(FILLERS, Some("Pump001.MaxSpeed")));
    plant.hangup();
    let text = plant.logged("config reloaded", 1).await;
    assert!(text.contains("added=1"), "{text}");
    // Re-tagged: re-opened under the same id, its new tag's subscription waits too.
    plant.write_config(&mapping(FILLERS, Some("Pump001.SpeedSP")));
    plant.hangup();
    let text = plant.logged("config reloaded", 2).await;
    assert!(text.contains("PV re-opened"), "{text}");
    assert!(
        !text.contains("subscriptions of the reload done"),
        "the window did not hold the subscriptions back:\n{text}"
    );

    // One filler less: one place free, taken by the old tag's subscription (the window
    // gives room in the order it was asked for). Its result comes back alone.
    plant.write_config(&mapping(FILLERS - 1, Some("Pump001.SpeedSP")));
    plant.hangup();
    let text = plant.logged("config reloaded", 3).await;
    assert!(text.contains("removed=1"), "{text}");
    plant.logged("subscriptions of the reload done", 1).await;

    // The events flow: the first values free the window, the rest goes.
    control.set_faults(&Faults::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let shown = loop {
        let got = clients().p4p_get(&env, &["T:X"]).await;
        if got["T:X"]["alarm"]["severity"] == 0 && got["T:X"]["value"].is_number() {
            break got;
        }
        assert!(Instant::now() < deadline, "T:X shows no value: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A put to X reaches the new tag only.
    let out = clients().run("pvput", &env, &["T:X", "42"]).await.text();
    assert!(!out.contains("Error"), "pvput: {out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let writes = loop {
        let writes = control.writes().await.unwrap();
        if !writes.is_empty() {
            break writes;
        }
        assert!(Instant::now() < deadline, "no write reached the simulator");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        writes
            .iter()
            .all(|w| w.reference == "Pump001.SpeedSP" && w.value.contains("42")),
        "the put to T:X reached another tag: {writes:?}"
    );
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        shown["T:X"]["value"], 700.0,
        "T:X showed another tag's value (Pump001.SpeedSP is 700): {shown}"
    );

    // The old tag's item is unsubscribed: seven fillers and X's new tag stay advised.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let session = control
            .sessions()
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.client_session_name == "mxpva-retag" && s.state == "Ready")
            .expect("the bridge's session");
        if session.advised_count == FILLERS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "advised at the gateway: {session:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
