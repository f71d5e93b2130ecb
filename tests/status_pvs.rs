//! The status PVs (`[status]`, issue 14) as an operator's tools see them: `mxpva sim`
//! and `mxpva run` as processes on loopback, the status PVs read with pvget and p4p.
//! They follow a gateway kill and its return, count updates and puts under a bounded
//! load, count p4p clients from pvxs's own report, and show a refused SIGHUP reload and
//! an audit file that cannot be written.

mod clients;

use std::time::{Duration, Instant, SystemTime};

use clients::plant::{demo_galaxy, Plant};
use clients::{clients, Seen, Watch};
use serde_json::Value;

const CONFIG: &str = r#"
[gateway]
endpoint = "http://{gateway}"
client_name = "mxpva-status"
reconnect_initial = "100ms"
reconnect_max = "400ms"

[defaults]
prefix = "ST:"

[[pv]]
name = "Speed"
tag = "Pump001.Speed"
type = "float64"

[[pv]]
name = "SpeedSP"
tag = "Pump001.SpeedSP"
type = "float64"
control = { low = 0.0, high = 3000.0 }
writable = true

[[pv]]
name = "Missing"
tag = "Pump009.Speed"
type = "float64"
"#;

const GATEWAY: &str = "ST:mxpva:Gateway";
const SESSION: &str = "ST:mxpva:Session";
const RECONNECTS: &str = "ST:mxpva:Reconnects";
const PVS: &str = "ST:mxpva:PVs";
const INVALID: &str = "ST:mxpva:PVs:Invalid";
const UPDATES_RATE: &str = "ST:mxpva:Updates:Rate";
const UPDATES_COUNT: &str = "ST:mxpva:Updates:Count";
const PUTS_RATE: &str = "ST:mxpva:Puts:Rate";
const PUTS_COUNT: &str = "ST:mxpva:Puts:Count";
const PUTS_FAILED: &str = "ST:mxpva:Puts:Failed";
const CLIENTS: &str = "ST:mxpva:Clients";
const CLIENTS_TABLE: &str = "ST:mxpva:Clients:Table";
const CONFIG_PV: &str = "ST:mxpva:Config";
const VERSION: &str = "ST:mxpva:Version";
const ALARM_FEED: &str = "ST:mxpva:AlarmFeed";
const UPTIME: &str = "ST:mxpva:Uptime";
const AUDIT: &str = "ST:mxpva:Audit";

const NO_ALARM: i64 = 0;
const MINOR: i64 = 1;
const MAJOR: i64 = 2;
const UP: i64 = 1;
const LOST: i64 = 2;

impl Plant {
    /// The demo Galaxy and the bridge on [`CONFIG`], once its status PVs serve.
    async fn start(name: &str) -> Plant {
        let plant = Plant::new(&format!("status-{name}"))
            .galaxy_text(demo_galaxy())
            .config(CONFIG)
            .start()
            .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = plant.get(&[VERSION]).await;
            if got[VERSION].get("error").is_none() {
                break plant;
            }
            assert!(Instant::now() < deadline, "no status PVs: {got}");
        }
    }

    fn watch(&self, pvs: &[&str]) -> Watch {
        clients().p4p_watch(&self.env, pvs)
    }
}

fn index(s: &Seen) -> Option<i64> {
    s.v["value"]["index"].as_i64()
}

fn number(s: &Seen) -> f64 {
    s.v["value"].as_f64().unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_pvs_read_with_pvget_and_p4p_as_normal_nt_pvs() {
    let plant = Plant::start("read").await;
    let mut watch = plant.watch(&[GATEWAY, INVALID]);
    watch
        .until(GATEWAY, "Up", Duration::from_secs(15), |s| {
            index(s) == Some(UP) && s.severity() == Some(NO_ALARM)
        })
        .await;
    // The unknown tag is INVALID: one of three, MINOR.
    let invalid = watch
        .until(INVALID, "1, MINOR", Duration::from_secs(10), |s| {
            s.v["value"] == 1 && s.severity() == Some(MINOR)
        })
        .await;
    assert_eq!(invalid.message(), "1 of 3 PVs INVALID", "{:?}", invalid.v);

    let all = [
        GATEWAY,
        SESSION,
        RECONNECTS,
        PVS,
        INVALID,
        UPDATES_RATE,
        UPDATES_COUNT,
        PUTS_RATE,
        PUTS_COUNT,
        PUTS_FAILED,
        CLIENTS,
        CLIENTS_TABLE,
        CONFIG_PV,
        VERSION,
        ALARM_FEED,
        UPTIME,
    ];
    let got = plant.get(&all).await;
    for pv in all {
        let v = &got[pv];
        assert!(v.get("error").is_none(), "{pv}: {v}");
        assert!(v["alarm"]["severity"].is_i64(), "{pv} has an alarm: {v}");
        assert!(
            v["timeStamp"]["secondsPastEpoch"].as_i64() > Some(0),
            "{pv}: {v}"
        );
    }
    let id = |pv: &str| got[pv]["_id"].as_str().unwrap_or_default().to_string();
    assert!(
        id(GATEWAY).starts_with("epics:nt/NTEnum:1"),
        "{}",
        id(GATEWAY)
    );
    assert!(id(ALARM_FEED).starts_with("epics:nt/NTEnum:1"));
    assert!(id(CLIENTS_TABLE).starts_with("epics:nt/NTTable:1"));
    for pv in [RECONNECTS, PVS, UPDATES_RATE, VERSION, CONFIG_PV] {
        assert!(
            id(pv).starts_with("epics:nt/NTScalar:1"),
            "{pv}: {}",
            id(pv)
        );
    }
    assert_eq!(
        got[GATEWAY]["value"]["choices"],
        serde_json::json!(["Connecting", "Up", "Lost"])
    );
    assert_eq!(got[PVS]["value"], 3);
    assert_eq!(got[RECONNECTS]["value"], 0);
    assert_eq!(
        got[VERSION]["value"],
        format!("mxpva {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        got[CONFIG_PV]["value"].as_str(),
        plant.config.to_str(),
        "the loaded file"
    );
    let session = got[SESSION]["value"].as_str().unwrap_or_default();
    let sessions = plant.control().sessions().await.unwrap();
    assert!(
        sessions
            .iter()
            .any(|s| s.session_id == session && s.client_session_name == "mxpva-status"),
        "{session} in {sessions:?}"
    );
    // The alarm feed of the simulator is attached.
    let mut feed = plant.watch(&[ALARM_FEED]);
    feed.until(ALARM_FEED, "Up", Duration::from_secs(10), |s| {
        index(s) == Some(UP) && s.severity() == Some(NO_ALARM)
    })
    .await;

    // pvget (pvAccessCPP) reads them too.
    let out = clients()
        .run("pvget", &plant.env, &[GATEWAY, PVS, VERSION, CLIENTS_TABLE])
        .await
        .text();
    assert!(out.contains("Up"), "{out}");
    assert!(
        out.contains(&format!("mxpva {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(out.contains("Peer") && out.contains("Account"), "{out}");

    // They are read-only: a put fails, saying so, and counts as a failed put.
    let failed = plant.get(&[PUTS_FAILED]).await[PUTS_FAILED]["value"].clone();
    let out = clients()
        .run("pvput", &plant.env, &[GATEWAY, "0"])
        .await
        .text();
    assert!(out.contains("Error") && out.contains("read-only"), "{out}");
    let out = clients().p4p_put(&plant.env, UPTIME, "5.0").await;
    assert!(
        out.contains("RemoteError") && out.contains("read-only"),
        "{out}"
    );
    let mut watch = plant.watch(&[PUTS_FAILED]);
    watch
        .until(PUTS_FAILED, "2 more", Duration::from_secs(10), |s| {
            s.v["value"].as_i64() == failed.as_i64().map(|n| n + 2)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_goes_lost_and_major_within_2s_of_a_kill_and_up_on_its_return() {
    let mut plant = Plant::start("kill").await;
    let mut watch = plant.watch(&[GATEWAY, RECONNECTS, SESSION, ALARM_FEED, INVALID]);
    watch
        .until(GATEWAY, "Up", Duration::from_secs(15), |s| {
            index(s) == Some(UP) && s.severity() == Some(NO_ALARM)
        })
        .await;
    watch
        .until(RECONNECTS, "0", Duration::from_secs(5), |s| {
            s.v["value"] == 0
        })
        .await;
    let first = watch
        .until(SESSION, "a session", Duration::from_secs(5), |s| {
            s.v["value"].as_str().is_some_and(|v| !v.is_empty())
        })
        .await
        .v["value"]
        .clone();

    let killed = SystemTime::now();
    plant.kill_sim().await;
    let lost = watch
        .until(GATEWAY, "Lost, MAJOR", Duration::from_secs(10), |s| {
            index(s) == Some(LOST) && s.severity() == Some(MAJOR)
        })
        .await;
    let after = lost.at.duration_since(killed).unwrap_or_default();
    println!("Gateway Lost at the client {after:?} after the kill");
    assert!(after < Duration::from_secs(2), "{after:?}");
    assert!(!lost.message().is_empty(), "the reason: {:?}", lost.v);
    watch
        .until(RECONNECTS, "1", Duration::from_secs(5), |s| {
            s.v["value"] == 1
        })
        .await;
    let out = clients().run("pvget", &plant.env, &[GATEWAY]).await.text();
    assert!(out.contains("Lost"), "{out}");
    // Every mapped PV is INVALID now, and the alarm feed is lost too.
    watch
        .until(INVALID, "3 of 3", Duration::from_secs(5), |s| {
            s.v["value"] == 3 && s.severity() == Some(MINOR)
        })
        .await;
    watch
        .until(ALARM_FEED, "Lost, MAJOR", Duration::from_secs(5), |s| {
            index(s) == Some(LOST) && s.severity() == Some(MAJOR)
        })
        .await;

    plant.start_sim().await;
    watch
        .until(GATEWAY, "Up again", Duration::from_secs(15), |s| {
            index(s) == Some(UP) && s.severity() == Some(NO_ALARM) && s.message().is_empty()
        })
        .await;
    let second = watch
        .until(SESSION, "a new session", Duration::from_secs(5), |s| {
            s.v["value"].as_str().is_some_and(|v| !v.is_empty()) && s.v["value"] != first
        })
        .await;
    watch
        .until(ALARM_FEED, "Up again", Duration::from_secs(15), |s| {
            index(s) == Some(UP) && s.severity() == Some(NO_ALARM)
        })
        .await;
    watch
        .until(
            INVALID,
            "only the unknown tag",
            Duration::from_secs(10),
            |s| s.v["value"] == 1,
        )
        .await;
    let sessions = plant.control().sessions().await.unwrap();
    assert!(
        sessions
            .iter()
            .any(|s| Some(s.session_id.as_str()) == second.v["value"].as_str()),
        "{:?} in {sessions:?}",
        second.v
    );
    // Still one loss: the failed retries while it was away are not counted.
    let got = plant.get(&[RECONNECTS]).await;
    assert_eq!(got[RECONNECTS]["value"], 1, "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_put_counters_move_under_a_bounded_load() {
    let plant = Plant::start("load").await;
    let mut watch = plant.watch(&[
        UPDATES_RATE,
        UPDATES_COUNT,
        PUTS_RATE,
        PUTS_COUNT,
        PUTS_FAILED,
    ]);
    let base = plant
        .get(&[SESSION, UPDATES_COUNT, PUTS_COUNT, PUTS_FAILED])
        .await;
    let session = base[SESSION]["value"].as_str().unwrap().to_string();
    let updates0 = base[UPDATES_COUNT]["value"].as_i64().unwrap();
    let puts0 = base[PUTS_COUNT]["value"].as_i64().unwrap();
    let failed0 = base[PUTS_FAILED]["value"].as_i64().unwrap();

    // 3,000 data changes, paced by the gateway's queue room.
    const BURST: i64 = 3000;
    plant
        .control()
        .burst(&session, BURST as u64, true)
        .await
        .unwrap();
    let counted = watch
        .until(
            UPDATES_COUNT,
            "the burst counted",
            Duration::from_secs(20),
            |s| s.v["value"].as_i64().is_some_and(|n| n >= updates0 + BURST),
        )
        .await;
    println!("Updates:Count {updates0} -> {}", counted.v["value"]);
    let rate = watch
        .until(
            UPDATES_RATE,
            "a rate above 0",
            Duration::from_secs(10),
            |s| number(s) > 0.0,
        )
        .await;
    println!("Updates:Rate {}", rate.v["value"]);

    // 30 puts in one p4p context: 25 accepted, 5 out of the control limits.
    let script = r#"
import sys
from p4p.client.thread import Context
ctx = Context('pva')
ok = bad = 0
for i in range(30):
    try:
        ctx.put('ST:SpeedSP', 100.0 + i if i % 6 else 1e9, timeout=10)
        ok += 1
    except Exception:
        bad += 1
print(ok, bad)
"#;
    let out = clients().python(&plant.env, script, &[]).await.text();
    assert!(out.trim().starts_with("25 5"), "{out}");
    watch
        .until(PUTS_COUNT, "30 more puts", Duration::from_secs(10), |s| {
            s.v["value"].as_i64() == Some(puts0 + 30)
        })
        .await;
    watch
        .until(PUTS_FAILED, "5 more failed", Duration::from_secs(10), |s| {
            s.v["value"].as_i64() == Some(failed0 + 5)
        })
        .await;
    watch
        .until(
            PUTS_RATE,
            "a put rate above 0",
            Duration::from_secs(10),
            |s| number(s) > 0.0,
        )
        .await;
    // Once the puts are over, the next 1 s window shows none.
    watch
        .until(
            PUTS_RATE,
            "the put rate back to 0",
            Duration::from_secs(10),
            |s| number(s) == 0.0,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_counts_two_p4p_clients_from_the_server_report() {
    let plant = Plant::start("clients").await;
    let mut a = plant.watch(&[CLIENTS, CLIENTS_TABLE]);
    a.until(
        CLIENTS,
        "1 client (this one)",
        Duration::from_secs(10),
        |s| s.v["value"] == 1,
    )
    .await;
    let mut b = plant.watch(&[VERSION]);
    b.until(VERSION, "connected", Duration::from_secs(10), |s| {
        s.error.is_none() && s.v["value"].is_string()
    })
    .await;
    a.until(CLIENTS, "2 clients", Duration::from_secs(10), |s| {
        s.v["value"] == 2
    })
    .await;
    // The table: a row per client, with its channels and bytes.
    let rows = |s: &Seen| s.v["value"]["peer"].as_array().map_or(0, Vec::len);
    let seen = a
        .until(CLIENTS_TABLE, "2 rows", Duration::from_secs(10), |s| {
            rows(s) == 2
        })
        .await;
    let table = &seen.v["value"];
    let column = |name: &str| table[name].as_array().unwrap().clone();
    assert!(
        column("peer")
            .iter()
            .all(|p| p.as_str().unwrap().starts_with("127.0.0.1:")),
        "{table}"
    );
    assert!(
        column("channels").iter().all(|c| c.as_i64() >= Some(1)),
        "{table}"
    );
    assert_eq!(column("account").len(), 2, "{table}");
    assert!(
        column("bytes_sent").iter().all(|b| b.as_f64() > Some(0.0)),
        "{table}"
    );
    assert!(
        column("bytes_received")
            .iter()
            .all(|b| b.as_f64() > Some(0.0)),
        "{table}"
    );
    // A's own row holds both its channels.
    assert!(column("channels").iter().any(|c| c == 2), "{table}");
    drop(b);
    a.until(CLIENTS, "1 client again", Duration::from_secs(10), |s| {
        s.v["value"] == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_goes_minor_after_a_refused_reload_and_back_after_a_good_one() {
    let plant = Plant::start("config").await;
    let mut watch = plant.watch(&[CONFIG_PV]);
    let loaded = watch
        .until(CONFIG_PV, "the loaded file", Duration::from_secs(10), |s| {
            s.severity() == Some(NO_ALARM)
        })
        .await;
    assert_eq!(loaded.v["value"].as_str(), plant.config.to_str());
    let good = std::fs::read_to_string(&plant.config).unwrap();

    std::fs::write(&plant.config, good.replace("client_name", "client_nam")).unwrap();
    plant.hangup();
    let refused = watch
        .until(
            CONFIG_PV,
            "MINOR with the error",
            Duration::from_secs(10),
            |s| s.severity() == Some(MINOR),
        )
        .await;
    assert!(
        refused.message().contains("unknown field `client_nam`"),
        "{:?}",
        refused.v
    );
    assert_eq!(refused.v["alarm"]["status"], 5, "CONF: {:?}", refused.v);
    assert_eq!(
        refused.v["timeStamp"], loaded.v["timeStamp"],
        "still the time of the file in service"
    );
    // The mapping in service goes on.
    let out = clients()
        .run("pvput", &plant.env, &["ST:SpeedSP", "250"])
        .await
        .text();
    assert!(!out.contains("Error"), "{out}");

    std::fs::write(&plant.config, &good).unwrap();
    plant.hangup();
    let back = watch
        .until(CONFIG_PV, "NO_ALARM again", Duration::from_secs(10), |s| {
            s.severity() == Some(NO_ALARM)
        })
        .await;
    let secs = |s: &Seen| {
        s.v["timeStamp"]["secondsPastEpoch"].as_i64().unwrap() * 1_000_000_000
            + s.v["timeStamp"]["nanoseconds"].as_i64().unwrap()
    };
    assert!(secs(&back) > secs(&loaded), "reloaded later: {:?}", back.v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_shows_a_file_it_cannot_write_and_its_recovery() {
    let plant = Plant::start("audit").await;
    let logs = plant.config.parent().unwrap().join("logs");
    let file = logs.join("audit.jsonl");
    let good = std::fs::read_to_string(&plant.config).unwrap();
    let audited = format!("{good}\n[audit]\nfile = \"{}\"\n", file.display());
    std::fs::write(&plant.config, audited).unwrap();
    plant.hangup();
    let mut watch = plant.watch(&[AUDIT]);
    watch
        .until(
            AUDIT,
            "OK once [audit] is set",
            Duration::from_secs(10),
            |s| s.error.is_none() && s.v["value"] == "OK" && s.severity() == Some(NO_ALARM),
        )
        .await;

    // The directory does not exist: the put's record cannot be written, the put still is.
    let out = clients()
        .run("pvput", &plant.env, &["ST:SpeedSP", "250"])
        .await
        .text();
    assert!(!out.contains("Error"), "{out}");
    let fault = watch
        .until(
            AUDIT,
            "MAJOR with the reason",
            Duration::from_secs(10),
            |s| s.severity() == Some(MAJOR),
        )
        .await;
    assert!(
        fault.message().contains("cannot open the audit file"),
        "{:?}",
        fault.v
    );

    // Once the directory is there, the reopen on SIGHUP takes the next record.
    std::fs::create_dir_all(&logs).unwrap();
    let log = plant.config.parent().unwrap().join("bridge.log");
    let reopened = "audit file reopened";
    let before = std::fs::read_to_string(&log)
        .unwrap()
        .matches(reopened)
        .count();
    plant.hangup();
    clients::logged(&log, reopened, before + 1).await;
    let out = clients()
        .run("pvput", &plant.env, &["ST:SpeedSP", "260"])
        .await
        .text();
    assert!(!out.contains("Error"), "{out}");
    watch
        .until(AUDIT, "OK again", Duration::from_secs(10), |s| {
            s.v["value"] == "OK" && s.severity() == Some(NO_ALARM)
        })
        .await;
    let text = std::fs::read_to_string(&file).unwrap();
    let record: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(record["pv"], "ST:SpeedSP", "{text}");
    assert_eq!(record["requested"], 260.0, "{text}");
    assert_eq!(record["outcome"], "confirmed", "{text}");

    // A put refused before it reaches the write path (a read-only PV) is audited too.
    let out = clients()
        .run("pvput", &plant.env, &["ST:Speed", "5"])
        .await
        .text();
    assert!(out.contains("ST:Speed is read-only: put refused"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let text = std::fs::read_to_string(&file).unwrap();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["pv"] == "ST:Speed");
        if let Some(r) = found {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no record of the refused put:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused["outcome"], "refused", "{refused}");
    assert_eq!(refused["requested"], 5.0, "{refused}");
    assert_eq!(
        refused["message"], "ST:Speed is read-only: put refused",
        "{refused}"
    );
}
