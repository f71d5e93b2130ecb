//! Subscribe while watched (`subscribe = "on_demand"`, `linger`): `mxpva sim` and
//! `mxpva run` as processes on loopback, the PVs read by pvget, pvput and p4p, the
//! simulator's advised items counted through its control service (ListSessions).
//!
//! - An on-demand PV is not advised (not even added) at the gateway until a client
//!   connects; pvget's first GET gets the value the test set in the simulator before,
//!   with no alarm; a p4p monitor's first update is the value set before, not INVALID;
//!   the tag is advised while watched and un-advised once `linger` has passed after the
//!   last client left (and not before).
//! - A put to an on-demand PV nobody watched is confirmed (pvput, p4p) and reaches the
//!   simulator.
//! - A reload switches a PV from on_demand to always (advised with no client) and back
//!   (un-advised after its linger).
//! - With the gateway down, the first client of an on-demand PV does not hang: it gets
//!   the PV INVALID with the reason, and mxpva serves on.
//! - The first client's wait is bounded by `[gateway] request_timeout`: with the
//!   simulator's events stalled it gets the PV INVALID, saying no value came; a tag
//!   System Platform does not know shows its reason at once.
//! - A client that comes back within the linger finds the tag still advised: it is not
//!   un-advised at the end of the first linger, and its monitor sees no disconnect.
//! - A new session (the gateway restarted) advises the watched on-demand PVs, not the
//!   lingering ones.

mod clients;

use std::time::{Duration, Instant};

use clients::clients;
use clients::plant::Plant;

const HEAD: &str = r#"
[gateway]
endpoint = "http://{gateway}"
client_name = "mxpva-ondemand"{extra}
reconnect_initial = "100ms"
reconnect_max = "400ms"

[alarms]
enabled = false

[defaults]
prefix = "D:"
subscribe = "on_demand"
linger = "1s"

[[pv]]
name = "Temp"
tag = "Tank001.Temp"
type = "float64"
subscribe = "always"
"#;

/// The on-demand PVs: Level typed, Mode as the attribute reports it, SP writable.
const ON_DEMAND: &str = r#"
[[pv]]
name = "Level"
tag = "Tank001.Level"
type = "float64"

[[pv]]
name = "Mode"
tag = "Tank001.Mode"

[[pv]]
name = "SP"
tag = "Tank001.SP"
type = "float64"
writable = true
"#;

/// The config: `extra` holds extra `[gateway]` lines.
fn config(extra: &str, mapping: &str) -> String {
    format!("{}{mapping}", HEAD.replace("{extra}", extra))
}

impl Plant {
    /// The simulator (unless `gateway_down`) and the bridge serving `mapping`.
    async fn start(name: &str, mapping: &str, gateway_down: bool) -> Plant {
        Plant::start_with(name, "", mapping, gateway_down).await
    }

    /// [`Plant::start`] with extra `[gateway]` lines.
    async fn start_with(name: &str, extra: &str, mapping: &str, gateway_down: bool) -> Plant {
        let plant = Plant::new(&format!("ondemand-{name}"))
            .galaxy("on_demand")
            .config(&config(extra, mapping));
        if gateway_down {
            plant.gateway_down().start().await
        } else {
            plant.start().await
        }
    }

    /// The bridge's session at the simulator, if it has one: (items, advised items).
    async fn items(&self) -> Option<(usize, usize)> {
        self.control()
            .sessions()
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.client_session_name == "mxpva-ondemand" && s.state == "Ready")
            .map(|s| (s.item_count, s.advised_count))
    }

    /// Waits (at most 20 s) until the bridge's session has `advised` items advised;
    /// returns its (items, advised).
    async fn advised(&self, advised: usize, what: &str) -> (usize, usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.items().await;
            if let Some(n) = now.filter(|n| n.1 == advised) {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the session has (items, advised) {now:?}, expected {advised} advised"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// pvget -v's `alarm` severity and message, and its value line.
fn severity_of(pvget_v: &str) -> Option<i64> {
    let line = pvget_v
        .lines()
        .find(|l| l.trim().starts_with("int severity"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_demand_pv_is_advised_while_watched_with_a_real_first_value() {
    let plant = Plant::start("watched", ON_DEMAND, false).await;
    // Only the always PV is at the gateway: the on-demand ones are not even added.
    let (items, _) = plant.advised(1, "at start").await;
    assert_eq!(items, 1, "on-demand tags were added at start");
    // Still so once the bridge serves (its always PV has a value).
    let text = clients()
        .pvget_until(&plant.env, &["D:Temp"], "D:Temp")
        .await;
    assert!(text.contains("D:Temp"), "{text}");
    assert_eq!(plant.items().await, Some((1, 1)));
    // The on-demand PVs nobody watches are not served, so the status PVs count them
    // among the PVs but not as INVALID.
    let mut status = clients().p4p_watch(&plant.env, &["D:mxpva:PVs:Invalid"]);
    let seen = status
        .until(
            "D:mxpva:PVs:Invalid",
            "no PV counts as INVALID",
            Duration::from_secs(20),
            |s| s.error.is_none() && s.v["value"] == 0,
        )
        .await;
    assert_eq!(seen.severity(), Some(0), "{seen:?}");
    drop(status);
    assert_eq!(plant.items().await, Some((1, 1)));

    // pvget: its first GET is the value set in the simulator before any client came.
    plant
        .control()
        .set_value("Tank001.Level", "42.5", None)
        .await
        .unwrap();
    let got = clients().run("pvget", &plant.env, &["-v", "D:Level"]).await;
    let text = got.text();
    assert!(got.ok, "{text}");
    assert!(text.contains("double value 42.5"), "{text}");
    assert_eq!(severity_of(&text), Some(0), "{text}");

    // p4p monitor: its first update is the value set before, with no alarm.
    plant
        .control()
        .set_value("Tank001.Mode", "7", None)
        .await
        .unwrap();
    let mut watch = clients().p4p_watch(&plant.env, &["D:Mode"]);
    // (p4p tells of the channel's initial disconnected state first.)
    let first = watch
        .until("D:Mode", "a first value", Duration::from_secs(20), |s| {
            s.error.is_none()
        })
        .await;
    assert_eq!(first.v["value"], 7, "{first:?}");
    assert_eq!(first.severity(), Some(0), "{first:?}");
    // Watched: Mode is advised (Level too while it lingers, or not any more).
    let (_, advised) = plant.items().await.unwrap();
    assert!(
        advised >= 2,
        "D:Mode is watched but {advised} items are advised"
    );
    // Level's client is long gone: it goes after its linger, Mode stays.
    plant.advised(2, "D:Level un-advised, D:Mode watched").await;

    // The watcher leaves: Mode is un-advised once its linger (1 s) has passed, not before.
    let left = Instant::now();
    drop(watch);
    plant.advised(1, "D:Mode un-advised after its linger").await;
    let after = left.elapsed();
    assert!(
        after >= Duration::from_millis(950),
        "D:Mode was un-advised {after:?} after its client left, within its 1 s linger"
    );
    let log = plant.logged("un-advising on-demand PVs", 2).await;
    assert!(
        log.contains("advising on-demand PVs for their first clients"),
        "{log}"
    );

    // Watched again: a fresh first value, the one the simulator holds now.
    plant
        .control()
        .set_value("Tank001.Mode", "9", None)
        .await
        .unwrap();
    let got = clients().p4p_get(&plant.env, &["D:Mode"]).await;
    assert_eq!(got["D:Mode"]["value"], 9, "{got}");
    assert_eq!(got["D:Mode"]["alarm"]["severity"], 0, "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_to_an_on_demand_pv_nobody_watched_is_confirmed() {
    let plant = Plant::start("put", ON_DEMAND, false).await;
    plant.advised(1, "at start").await;
    let put = clients().run("pvput", &plant.env, &["D:SP", "12.5"]).await;
    let text = put.text();
    assert!(!text.contains("Error"), "{text}");
    let new = text.lines().find(|l| l.starts_with("New")).unwrap_or("");
    assert!(new.contains("12.5"), "{text}");
    // p4p too, after the linger (a fresh advise): "ok" is the server's confirmation.
    plant.advised(1, "D:SP un-advised after its linger").await;
    assert_eq!(
        clients().p4p_put(&plant.env, "D:SP", "13.25").await.trim(),
        "ok"
    );
    let got = clients().p4p_get(&plant.env, &["D:SP"]).await;
    assert_eq!(got["D:SP"]["value"], 13.25, "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_switches_a_pv_between_always_and_on_demand() {
    let plant = Plant::start("reload", ON_DEMAND, false).await;
    plant.advised(1, "at start").await;
    // Level becomes always: advised with no client.
    plant.write_config(&config(
        "",
        &ON_DEMAND.replacen(
            "type = \"float64\"\n",
            "type = \"float64\"\nsubscribe = \"always\"\n",
            1,
        ),
    ));
    plant.hangup();
    plant.logged("config reloaded", 1).await;
    plant.advised(2, "D:Level advised as always").await;
    let got = clients().p4p_get(&plant.env, &["D:Level"]).await;
    assert_eq!(got["D:Level"]["value"], 1.0, "{got}");
    // Back to on_demand, nobody watching: un-advised after its linger.
    plant.write_config(&config("", ON_DEMAND));
    plant.hangup();
    plant.logged("config reloaded", 2).await;
    plant.advised(1, "D:Level un-advised as on_demand").await;
    // And it still serves its first client a value.
    let got = clients().p4p_get(&plant.env, &["D:Level"]).await;
    assert_eq!(got["D:Level"]["value"], 1.0, "{got}");
    assert_eq!(got["D:Level"]["alarm"]["severity"], 0, "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_gateway_down_a_first_client_gets_the_reason_not_a_hang() {
    let plant = Plant::start("down", ON_DEMAND, true).await;
    let text = clients()
        .pvget_until(&plant.env, &["-v", "D:Level"], "gateway connection lost")
        .await;
    assert!(text.contains("gateway connection lost"), "{text}");
    assert_eq!(severity_of(&text), Some(3), "{text}");
    // A PV typed by the attribute alone is served too (as a string, with the reason).
    let got = clients().p4p_get(&plant.env, &["D:Mode"]).await;
    let message = got["D:Mode"]["alarm"]["message"].as_str().unwrap_or("");
    assert!(message.contains("gateway connection lost"), "{got}");
    // A put fails with the reason, and mxpva serves on.
    let put = clients().run("pvput", &plant.env, &["D:SP", "1"]).await;
    assert!(put.text().contains("gateway unavailable"), "{}", put.text());
    let text = clients()
        .run("pvget", &plant.env, &["D:Level"])
        .await
        .text();
    assert!(text.contains("D:Level"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_advises_only_the_on_demand_pvs_watched_now() {
    // Level lingers a minute: still advised, but nobody watches it, at the session loss.
    let mapping = ON_DEMAND.replacen(
        "type = \"float64\"\n",
        "type = \"float64\"\nlinger = \"60s\"\n",
        1,
    );
    let plant = Plant::start("session", &mapping, false).await;
    plant.advised(1, "at start").await;
    let got = clients().p4p_get(&plant.env, &["D:Level"]).await;
    assert_eq!(got["D:Level"]["value"], 1.0, "{got}");
    let mut watch = clients().p4p_watch(&plant.env, &["D:Mode"]);
    watch
        .until("D:Mode", "a first value", Duration::from_secs(20), |s| {
            s.error.is_none() && s.severity() == Some(0)
        })
        .await;
    plant
        .advised(3, "Temp, lingering Level and watched Mode")
        .await;

    // The gateway restarts: every session is gone.
    plant.control().restart().await.unwrap();
    watch
        .until("D:Mode", "the session loss", Duration::from_secs(20), |s| {
            s.severity() == Some(3)
        })
        .await;
    // The new session advises Temp and the watched Mode, not the lingering Level.
    plant.advised(2, "a new session").await;
    watch
        .until("D:Mode", "a value again", Duration::from_secs(20), |s| {
            s.error.is_none() && s.severity() == Some(0)
        })
        .await;
    assert_eq!(plant.items().await, Some((2, 2)));
    // Level, closed at the loss and watched by nobody, is not counted as INVALID.
    let mut status = clients().p4p_watch(&plant.env, &["D:mxpva:PVs:Invalid"]);
    status
        .until(
            "D:mxpva:PVs:Invalid",
            "no served PV is INVALID after the reconnect",
            Duration::from_secs(20),
            |s| s.error.is_none() && s.v["value"] == 0,
        )
        .await;
    drop(status);
    // Level's next first client gets a fresh value.
    plant
        .control()
        .set_value("Tank001.Level", "3.5", None)
        .await
        .unwrap();
    let got = clients().p4p_get(&plant.env, &["D:Level"]).await;
    assert_eq!(got["D:Level"]["value"], 3.5, "{got}");
    assert_eq!(got["D:Level"]["alarm"]["severity"], 0, "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_client_waits_for_a_value_no_longer_than_the_bound() {
    // The bound is [gateway] request_timeout: 1 s here.
    let mapping = format!(
        "{ON_DEMAND}\n[[pv]]\nname = \"Missing\"\ntag = \"Tank009.Level\"\ntype = \"float64\"\n"
    );
    let bound = "\nrequest_timeout = \"1s\"";
    let plant = Plant::start_with("bound", bound, &mapping, false).await;
    plant.advised(1, "at start").await;

    // A tag System Platform does not know: the first client gets the reason at once.
    let got = clients().p4p_get(&plant.env, &["D:Missing"]).await;
    assert_eq!(got["D:Missing"]["alarm"]["severity"], 3, "{got}");
    let message = got["D:Missing"]["alarm"]["message"].as_str().unwrap_or("");
    assert!(message.contains("InvalidReference"), "{got}");

    // Events stall: the advise goes through but no value comes. The first client is
    // served INVALID after the bound, with the reason, well within pvget's 5 s.
    let stall = mxpva::sim::Faults {
        stall_events: true,
        ..Default::default()
    };
    plant.control().set_faults(&stall).await.unwrap();
    let got = clients().run("pvget", &plant.env, &["-v", "D:Level"]).await;
    let text = got.text();
    assert!(
        text.contains("no value from System Platform within 1s of the first client"),
        "{text}"
    );
    assert_eq!(severity_of(&text), Some(3), "{text}");
    // The value comes once the events flow again, to the next client too.
    let mut watch = clients().p4p_watch(&plant.env, &["D:Level"]);
    plant
        .control()
        .set_faults(&mxpva::sim::Faults::default())
        .await
        .unwrap();
    let seen = watch
        .until("D:Level", "the value", Duration::from_secs(20), |s| {
            s.severity() == Some(0)
        })
        .await;
    assert_eq!(seen.v["value"], 1.0, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_back_within_the_linger_keeps_the_tag_advised() {
    let mapping = format!(
        "{ON_DEMAND}\n[[pv]]\nname = \"Flow\"\ntag = \"Tank001.Flow\"\ntype = \"float64\"\nlinger = \"5s\"\n"
    );
    let plant = Plant::start("back", &mapping, false).await;
    plant.advised(1, "at start").await;
    let got = clients().p4p_get(&plant.env, &["D:Flow"]).await;
    assert_eq!(got["D:Flow"]["alarm"]["severity"], 0, "{got}");
    let left = std::time::SystemTime::now();
    // Back within the linger, and watching past its end.
    let mut watch = clients().p4p_watch(&plant.env, &["D:Flow"]);
    watch
        .until("D:Flow", "a first value", Duration::from_secs(20), |s| {
            s.error.is_none()
        })
        .await;
    let past = left + Duration::from_secs(7);
    watch
        .until(
            "D:Flow",
            "an update 2 s past the first linger",
            Duration::from_secs(30),
            |s| {
                assert_eq!(s.error, None, "the watcher was disconnected");
                assert_eq!(s.severity(), Some(0), "{s:?}");
                let secs = s.v["timeStamp"]["secondsPastEpoch"].as_u64().unwrap_or(0);
                std::time::UNIX_EPOCH + Duration::from_secs(secs) > past
            },
        )
        .await;
    assert_eq!(plant.items().await, Some((2, 2)));
    let log = std::fs::read_to_string(&plant.log).unwrap();
    assert!(!log.contains("un-advising on-demand PVs"), "{log}");
    // Once it leaves, the tag goes after the linger.
    drop(watch);
    plant.advised(1, "D:Flow un-advised").await;
}
