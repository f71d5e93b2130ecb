//! Past one host (issue 25, docs/scale-out.md): mxpva shards and a hot standby behind p4p's
//! PVAccess gateway. `mxpva sim`, `mxpva run` and `python -m p4p.gw` (pvagw) as processes
//! on loopback; every client (pvget, pvput, p4p) reaches the PVs through the gateway only.
//! The gateway runs `packaging/pvagw.json` with its ports and interfaces changed to free
//! loopback ones; every other key is used as shipped.
//!
//! - `mxpva discover --areas` counts each area of the simulated Galaxy, sub-areas included.
//! - Two shards (one per area, each with its own alarm table, status prefix and alarm feed
//!   filter) behind pvagw: no PV name is served by both (`mxpva check --pv-names` on the
//!   mappings `mxpva discover` writes); pvget, a confirmed and a refused pvput, a p4p
//!   monitor with alarm fields, each shard's alarm table and status PVs, all through the
//!   gateway; killing one shard disconnects its PVs and leaves the other's alone.
//! - Hot standby: two processes with the same mapping; the serving one is killed with a
//!   put in flight. The p4p monitor through pvagw sees a disconnect (no INVALID), then good
//!   values from the standby within 5 s (the time is printed: the figure in
//!   docs/scale-out.md). Each put is confirmed once; the puts answered before the kill and
//!   after the switch reached the simulator once each; the put in flight reached it twice,
//!   because pvagw's client (pvxs) sends a put whose connection dropped again to the
//!   standby, and its client got the standby's answer.

mod clients;
mod os_accounts;
mod pvagw;

use std::time::{Duration, Instant, SystemTime};

use clients::{clients, free_ports};
use os_accounts::OsAccounts;
use pvagw::*;
use serde_json::Value;

const MAJOR: i64 = 2;
const UP: i64 = 1;

/// `mxpva discover --areas` on the simulated Galaxy: each area with its counts, a
/// sub-area under its parent and counted in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_areas_counts_each_area_and_its_sub_areas() {
    let plant = start_plant("areas").await;
    let endpoint = endpoint(&plant);
    let (code, out, err) = clients::mxpva_output(&["discover", "--endpoint", &endpoint, "--areas"]);
    assert_eq!(code, 0, "{out}{err}");
    println!("{out}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    // AREA OBJECTS ATTRIBUTES ALARMS OWN
    assert_eq!(
        rows,
        vec![
            vec!["AREA", "OBJECTS", "ATTRIBUTES", "ALARMS", "OWN"],
            vec!["North", "2", "4", "1", "4"],
            vec!["South", "2", "3", "1", "2"],
            vec!["SouthYard", "1", "1", "1", "1"],
            vec!["(all)", "4", "7", "2"],
        ],
        "{out}"
    );
    assert!(
        out.contains("\n  SouthYard "),
        "indented under South: {out}"
    );

    // A filter and --areas together are refused.
    let (code, _, err) = clients::mxpva_output(&[
        "discover",
        "--endpoint",
        &endpoint,
        "--areas",
        "--root",
        "North",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--root"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_behind_pvagw_serve_all_and_a_killed_shard_takes_only_its_own_pvs() {
    let plant = start_plant("shards").await;
    let dir = plant.dir.clone();
    let control = plant.control().clone();
    let (_, beacons) = free_ports();
    let (north_ports, south_ports) = (shard_ports(), shard_ports());
    let north = Shard::start(&plant, "north", "North", north_ports, beacons);
    let mut south = Shard::start(&plant, "south", "South", south_ports, beacons);

    // No PV name is served by both shards; each serves its area (a sub-area included).
    let (n, s) = (served_names(&north), served_names(&south));
    let both: Vec<&String> = n.iter().filter(|x| s.contains(x)).collect();
    assert!(both.is_empty(), "served by both shards: {both:?}");
    for name in [
        "PLANT:NPump:Speed",
        "PLANT:NTank:Level:ACK",
        "PLANT:ALARMS:NORTH",
    ] {
        assert!(n.contains(&name.to_string()), "north lacks {name}: {n:?}");
    }
    for name in ["PLANT:STank:Level", "PLANT:mxpva:south:Gateway"] {
        assert!(s.contains(&name.to_string()), "south lacks {name}: {s:?}");
    }

    let gw = Gateway::start(&dir, &[north_ports.1, south_ports.1], beacons).await;
    let env = &gw.env;

    // Reads from both shards.
    let got = get_all(
        env,
        &[
            "PLANT:NPump:Speed",
            "PLANT:SPump:Speed",
            "PLANT:STank:Level",
        ],
    )
    .await;
    assert_eq!(got["PLANT:STank:Level"]["value"], 40.0, "{got}");

    // A confirmed put to each shard, and a refused one.
    let put = pvput(env, "PLANT:NPump:SpeedSP", "1500").await;
    assert!(!put.contains("Error") && put.contains("1500"), "{put}");
    let put = pvput(env, "PLANT:SPump:SpeedSP", "1400").await;
    assert!(!put.contains("Error") && put.contains("1400"), "{put}");
    let writes = control.writes().await.unwrap();
    for (tag, v) in [("NPump.SpeedSP", "1500"), ("SPump.SpeedSP", "1400")] {
        assert!(
            writes
                .iter()
                .any(|w| w.reference == tag && w.value.contains(v)),
            "{tag} = {v} not written: {writes:?}"
        );
    }
    let refused = pvput(env, "PLANT:NPump:Limit", "5").await;
    assert!(
        refused.contains("Error: PLANT:NPump:Limit is read-only: put refused"),
        "{refused}"
    );
    // The confirmed put is in the north shard's audit, under the gateway's account.
    let records = north.audit();
    let confirmed = records
        .iter()
        .find(|r| r["pv"] == "PLANT:NPump:SpeedSP")
        .unwrap_or_else(|| panic!("no audit record: {records:?}"));
    assert_eq!(confirmed["outcome"], "confirmed", "{confirmed}");
    assert_eq!(
        confirmed["host"], "127.0.0.1",
        "the gateway's address: {confirmed}"
    );
    println!("audit at the shard of a put through pvagw: {confirmed}");

    // A monitor with alarm fields, through the gateway; each alarm only in its shard's table.
    let mut watch = clients().p4p_watch(
        env,
        &[
            "PLANT:NTank:Level",
            "PLANT:STank:Level",
            "PLANT:NPump:Speed",
        ],
    );
    let within = Duration::from_secs(20);
    watch
        .until("PLANT:NTank:Level", "a first value", within, |s| {
            s.error.is_none()
        })
        .await;
    control.set_value("NTank.Level", "95", None).await.unwrap();
    control.set_value("STank.Level", "96", None).await.unwrap();
    for pv in ["PLANT:NTank:Level", "PLANT:STank:Level"] {
        let seen = watch
            .until(pv, "MAJOR with a message", within, |s| {
                s.severity() == Some(MAJOR) && !s.message().is_empty()
            })
            .await;
        println!("{pv} through pvagw: alarm {}", seen.v["alarm"]);
    }
    let deadline = Instant::now() + within;
    let tables = loop {
        let t = clients()
            .p4p_get(env, &["PLANT:ALARMS:NORTH", "PLANT:ALARMS:SOUTH"])
            .await;
        let (north_t, south_t) = (
            t["PLANT:ALARMS:NORTH"].to_string(),
            t["PLANT:ALARMS:SOUTH"].to_string(),
        );
        if north_t.contains("NTank.Level.HiHi") && south_t.contains("STank.Level.HiHi") {
            break (north_t, south_t);
        }
        assert!(Instant::now() < deadline, "the alarm tables: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !tables.0.contains("STank"),
        "north's feed is filtered to North: {}",
        tables.0
    );
    assert!(
        !tables.1.contains("NTank"),
        "south's feed is filtered to South: {}",
        tables.1
    );

    // Each shard's status PVs, through the gateway.
    let status = get_all(
        env,
        &[
            "PLANT:mxpva:north:Gateway",
            "PLANT:mxpva:south:Gateway",
            "PLANT:mxpva:north:PVs",
            "PLANT:mxpva:south:PVs",
        ],
    )
    .await;
    for shard in ["north", "south"] {
        let gateway = &status[format!("PLANT:mxpva:{shard}:Gateway").as_str()];
        assert_eq!(gateway["value"]["index"], UP, "{status}");
    }
    assert_eq!(status["PLANT:mxpva:north:PVs"]["value"], 4, "{status}");
    assert_eq!(status["PLANT:mxpva:south:PVs"]["value"], 3, "{status}");

    // Killing the south shard disconnects its PVs only.
    let seen_before = watch
        .until("PLANT:NPump:Speed", "a value", within, |s| {
            s.error.is_none()
        })
        .await
        .at;
    south.kill();
    let killed = SystemTime::now();
    watch
        .until("PLANT:STank:Level", "a disconnect", within, |s| {
            s.error.is_some()
        })
        .await;
    let updates = std::cell::Cell::new(0);
    watch
        .until(
            "PLANT:NPump:Speed",
            "5 more updates, no disconnect",
            within,
            |s| {
                assert!(
                    s.error.is_none() || s.at < seen_before,
                    "north's PV went: {s:?}"
                );
                assert!(s.severity() != Some(3), "north's PV went INVALID: {s:?}");
                if s.at > killed {
                    updates.set(updates.get() + 1);
                }
                updates.get() >= 5
            },
        )
        .await;
    let got = clients()
        .p4p_get(
            env,
            &[
                "PLANT:NPump:SpeedSP",
                "PLANT:SPump:SpeedSP",
                "PLANT:mxpva:south:Gateway",
            ],
        )
        .await;
    assert_eq!(got["PLANT:NPump:SpeedSP"]["value"], 1500.0, "{got}");
    assert!(got["PLANT:SPump:SpeedSP"].get("error").is_some(), "{got}");
    assert!(
        got["PLANT:mxpva:south:Gateway"].get("error").is_some(),
        "{got}"
    );
    let put = pvput(env, "PLANT:NPump:SpeedSP", "1600").await;
    assert!(!put.contains("Error") && put.contains("1600"), "{put}");
    drop(north);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_standby_behind_pvagw_takes_over_within_5_s_and_confirms_each_put_once() {
    let plant = start_plant("standby").await;
    let dir = plant.dir.clone();
    let control = plant.control().clone();
    let (_, beacons) = free_ports();
    let (a_ports, b_ports) = (shard_ports(), shard_ports());
    // The serving process starts first, so the gateway's channels are on it.
    let mut a = Shard::start(&plant, "a", "North", a_ports, beacons);
    let gw = Gateway::start(&dir, &[a_ports.1, b_ports.1], beacons).await;
    let env = gw.env.clone();
    const SPEED: &str = "PLANT:NPump:Speed";
    const SETPOINT: &str = "PLANT:NPump:SpeedSP";
    get_all(&env, &[SPEED, "PLANT:mxpva:a:Gateway"]).await;
    let mut watch = clients().p4p_watch(&env, &[SPEED]);
    let within = Duration::from_secs(20);
    watch
        .until(SPEED, "a first value", within, |s| s.error.is_none())
        .await;
    assert_eq!(clients().p4p_put(&env, SETPOINT, "1001").await.trim(), "ok");

    // The standby: the same mapping, its own status prefix and audit file.
    let b = Shard::start(&plant, "b", "North", b_ports, beacons);
    let status = get_all(&env, &["PLANT:mxpva:b:Gateway"]).await;
    assert_eq!(
        status["PLANT:mxpva:b:Gateway"]["value"]["index"], UP,
        "{status}"
    );

    // A put in flight at the kill: System Platform takes 3 s to confirm it.
    control
        .set_faults(&mxpva::sim::Faults {
            write_delay: Duration::from_secs(3),
            write_fault_prefix: "NPump.SpeedSP".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let in_flight = {
        let env = env.clone();
        tokio::spawn(async move { clients().p4p_put(&env, SETPOINT, "1002").await })
    };
    let deadline = Instant::now() + within;
    while writes_of(&control, "NPump.SpeedSP", "1002").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the put never reached the gateway"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let last = watch.latest_now(SPEED).unwrap();
    assert!(last.error.is_none(), "{last:?}");
    a.kill();
    let killed = SystemTime::now();
    let gone = watch
        .until(SPEED, "a disconnect", within, |s| s.error.is_some())
        .await;
    let back = watch
        .until(SPEED, "a good value after the kill", within, |s| {
            // Between the kill and the standby: a disconnect, never an INVALID value.
            assert!(s.severity() != Some(3), "INVALID after the kill: {s:?}");
            s.error.is_none() && s.at > killed && s.severity() == Some(0)
        })
        .await;
    let failover = back.at.duration_since(killed).unwrap();
    println!(
        "failover: kill -> first good monitor update through pvagw: {:.3} s",
        failover.as_secs_f64()
    );
    println!(
        "  in between: {:?} after {:.3} s",
        gone.error.as_deref().unwrap_or(""),
        gone.at
            .duration_since(killed)
            .unwrap_or_default()
            .as_secs_f64()
    );
    println!(
        "  timeStamp: last before the kill {:.3}, first from the standby {:.3} ({:+.3} s)",
        stamp(&last),
        stamp(&back),
        stamp(&back) - stamp(&last)
    );
    assert!(
        failover < Duration::from_secs(5),
        "the standby took over after {failover:?}"
    );

    // The put in flight at the kill: pvagw's client (pvxs) sends a put whose connection
    // dropped before its answer again once the PV reconnects, so the standby writes it a
    // second time; its client gets one answer, the standby's.
    let answer = in_flight.await.unwrap();
    println!(
        "  the put in flight at the kill answered: {}",
        answer.trim()
    );
    assert_eq!(
        answer.trim(),
        "ok",
        "the put in flight, sent again to the standby"
    );

    // The standby takes new puts.
    control
        .set_faults(&mxpva::sim::Faults::default())
        .await
        .unwrap();
    assert_eq!(clients().p4p_put(&env, SETPOINT, "1003").await.trim(), "ok");

    // What reached System Platform: the puts answered before the kill and after the switch
    // once each (none replayed); the one in flight twice, once from each process.
    let writes = control.writes().await.unwrap();
    println!(
        "  writes received by the simulator: {:?}",
        writes
            .iter()
            .filter(|w| w.reference == "NPump.SpeedSP")
            .map(|w| w.value.as_str())
            .collect::<Vec<_>>()
    );
    for (v, times) in [("1001", 1), ("1002", 2), ("1003", 1)] {
        assert_eq!(
            writes_of(&control, "NPump.SpeedSP", v).await,
            times,
            "writes of {v}: {writes:?}"
        );
    }
    // Two audit files; each put confirmed once, by the process that answered it: the one in
    // flight by the standby, and not at all by the killed process, which died first.
    let requested = |r: &Value, v: f64| r["pv"] == SETPOINT && r["requested"] == v;
    let confirmed = |records: &[Value], v: f64| {
        records
            .iter()
            .filter(|r| requested(r, v) && r["outcome"] == "confirmed")
            .count()
    };
    let (audit_a, audit_b) = (a.audit(), b.audit());
    assert_eq!(
        [1001.0, 1002.0, 1003.0].map(|v| (confirmed(&audit_a, v), confirmed(&audit_b, v))),
        [(1, 0), (0, 1), (0, 1)],
        "a: {audit_a:?}\nb: {audit_b:?}"
    );
    assert!(
        !audit_a.iter().any(|r| requested(r, 1002.0)),
        "the killed process recorded no outcome: {audit_a:?}"
    );
}

/// Access security at two layers (run as root; skipped otherwise, saying so): pvagw's
/// own ACF judges the person (its account as its client claims it, its host), and passes
/// the put on under the gateway's own account and host; mxpva's ACF admits only those, so
/// the shard refuses a person who goes around the gateway. What each audit trail records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_pvagw_the_gateway_judges_the_person_and_the_shard_sees_the_gateway() {
    let n = std::process::id() % 100_000;
    let (op, guest) = (format!("mxgwop{n}"), format!("mxgwgst{n}"));
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-clients/venv");
    clients(); // installs the venv the accounts' clients are copied from
    let accounts = match OsAccounts::create(&venv, &[(op.as_str(), None), (guest.as_str(), None)]) {
        Ok(a) => a,
        Err(why) => {
            println!("SKIPPED behind_pvagw_the_gateway_judges_the_person_and_the_shard_sees_the_gateway: {why} (CI runs it as root)");
            return;
        }
    };
    // The account pvagw runs as: the test's own.
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();

    let plant = start_plant("access").await;
    let dir = plant.dir.clone();
    let (_, beacons) = free_ports();
    let ports = shard_ports();
    // mxpva: puts only from the gateway's account on the gateway's host.
    std::fs::write(
        dir.join("mxpva.acf"),
        format!(
            "UAG(gateway) {{ {me} }}\nHAG(gateway) {{ 127.0.0.1 }}\n\
             ASG(DEFAULT) {{\n  RULE(1, READ)\n  RULE(1, WRITE, TRAPWRITE) {{ UAG(gateway) HAG(gateway) }}\n}}\n"
        ),
    )
    .unwrap();
    let shard = Shard::start_with(
        &plant,
        "north",
        "North",
        ports,
        beacons,
        "[access]\nfile = \"mxpva.acf\"\n",
    );
    // pvagw: puts only from the operators, logged (TRAPWRITE).
    let pvagw_acf = format!(
        "UAG(operators) {{ {op} }}\nASG(DEFAULT) {{\n  RULE(1, WRITE, TRAPWRITE) {{ UAG(operators) }}\n}}\n"
    );
    let gw = Gateway::start_with(&dir, &[ports.1], beacons, Some(&pvagw_acf)).await;
    const SETPOINT: &str = "PLANT:NPump:SpeedSP";
    get_all(&gw.env, &[SETPOINT]).await;

    let allowed = accounts.p4p_put(&op, &gw.env, SETPOINT, "1300").await;
    assert_eq!(allowed.trim(), "ok", "the operator through the gateway");
    let refused = accounts.p4p_put(&guest, &gw.env, SETPOINT, "1301").await;
    assert_ne!(refused.trim(), "ok", "the guest through the gateway");
    println!("the guest's put through pvagw: {}", refused.trim());
    // Around the gateway, straight at the shard's loopback port.
    let (_, spare) = free_ports();
    let direct: clients::Env = [
        ("EPICS_PVA_ADDR_LIST", format!("127.0.0.1:{}", ports.1)),
        ("EPICS_PVA_AUTO_ADDR_LIST", "NO".to_string()),
        ("EPICS_PVA_BROADCAST_PORT", spare.to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec();
    let around = accounts.p4p_put(&guest, &direct, SETPOINT, "1302").await;
    assert!(
        around.contains("put denied by access security") && around.contains(&guest),
        "the guest around the gateway: {around}"
    );

    // mxpva's audit: the operator's put under the gateway's account and host; nothing of
    // the put pvagw refused; the guest's own put, denied, under the guest's name.
    let records = shard.audit();
    let by_value = |v: f64| records.iter().find(|r| r["requested"] == v);
    let through = by_value(1300.0).unwrap_or_else(|| panic!("{records:?}"));
    println!("mxpva's audit of the operator's put through pvagw: {through}");
    assert_eq!(
        (
            through["account"].as_str(),
            through["host"].as_str(),
            through["outcome"].as_str()
        ),
        (Some(me.as_str()), Some("127.0.0.1"), Some("confirmed")),
        "{through}"
    );
    assert!(by_value(1301.0).is_none(), "{records:?}");
    let denied = by_value(1302.0).unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(
        (denied["account"].as_str(), denied["outcome"].as_str()),
        (Some(guest.as_str()), Some("denied")),
        "{denied}"
    );
    // pvagw's audit (the p4p.gw audit logger, TRAPWRITE) names the person.
    let log = clients::logged(&gw.log, &op, 1).await;
    let line = log.lines().find(|l| l.contains(op.as_str())).unwrap();
    println!("pvagw's audit of the operator's put: {line}");
    assert!(line.contains("audit") && line.contains(SETPOINT), "{line}");
}
