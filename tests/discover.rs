//! Galaxy discovery (issue 12): `mxpva discover`, `[[discover]]` rules and deploys.
//! `mxpva sim` and `mxpva run` as processes on loopback; PVs read by pvget, p4p and
//! pvmonitor; deploys made by rewriting the simulator's Galaxy file and sending SIGHUP.
//!
//! - `discover --endpoint` on the demo Galaxy lists every attribute with its type, array
//!   shape, units, description and writability (from the Galaxy file itself), its alarms;
//!   the output passes `mxpva check` unchanged and `mxpva run` serves it (pvget).
//! - A deploy that adds, removes and retypes attributes while p4p and pvmonitor watch PVs
//!   that stay: the new PV serves, the removed one disconnects, the retyped one has its
//!   new type, the watched ones see no disconnect and no INVALID. A PV named by both a
//!   rule and an explicit `[[pv]]` is the explicit one.
//! - Two PVs of one name (a rule's and an explicit one): the error names both sources.
//! - SIGHUP with changed rules: the rule-made PVs follow (renamed, added, removed).
//! - SIGHUP tightening a rule's `access_group` while the Galaxy Repository cannot be read
//!   (the simulator's `galaxy_unavailable` fault): puts to its PVs are denied at once.

mod clients;

use clients::clients;
use clients::lines::{Lines, P4P_LINES};
use clients::plant::{demo_galaxy, galaxy_fixture, Plant};

use clients::mxpva_output as mxpva;

/// The served type the issue's mapping gives a Galaxy type (Boolean as NTEnum).
fn served(galaxy_type: &str, array: bool) -> String {
    let t = match galaxy_type {
        "Boolean" if !array => "enum",
        "Boolean" => "bool",
        "Integer" => "int32",
        "LongInteger" => "int64",
        "Float" => "float32",
        "Double" | "ElapsedTime" => "float64",
        "String" | "Time" => "string",
        other => panic!("the demo Galaxy has a {other}: extend the test"),
    };
    if array {
        format!("{t}[]")
    } else {
        t.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_lists_every_attribute_of_the_demo_galaxy_and_its_output_serves() {
    let mut plant = Plant::new("discover-demo")
        .galaxy_text(demo_galaxy())
        .start()
        .await;
    let dir = plant.dir.clone();
    let url = format!("http://{}", plant.gateway);
    let (code, out, err) = mxpva(&["discover", "--endpoint", &url]);
    assert_eq!(code, 0, "{err}");
    let mapping: toml::Table = out.parse().expect("discover prints TOML");
    let pvs = mapping["pv"].as_array().expect("[[pv]] tables");
    let by_tag = |tag: &str| {
        pvs.iter()
            .find(|p| p["tag"].as_str() == Some(tag))
            .unwrap_or_else(|| panic!("no [[pv]] of {tag} in\n{out}"))
    };

    // Every attribute of the Galaxy file, as the file describes it.
    let galaxy: toml::Table = demo_galaxy().parse().unwrap();
    let mut seen = 0;
    for o in galaxy["objects"].as_array().unwrap() {
        let object = o["tag"].as_str().unwrap();
        for a in o["attributes"].as_array().unwrap() {
            let name = a["name"].as_str().unwrap();
            let array = a.get("array_length").is_some();
            let tag = format!("{object}.{name}{}", if array { "[]" } else { "" });
            let pv = by_tag(&tag);
            let ty = served(a["type"].as_str().unwrap(), array);
            assert_eq!(pv["type"].as_str(), Some(ty.as_str()), "{tag}: {pv}");
            assert_eq!(
                pv["name"].as_str(),
                Some(format!("{object}:{name}").as_str())
            );
            let numeric = !matches!(ty.trim_end_matches("[]"), "enum" | "bool" | "string");
            let units = a
                .get("eng_units")
                .and_then(|u| u.as_str())
                .filter(|_| numeric);
            assert_eq!(
                pv.get("units").and_then(|u| u.as_str()),
                units,
                "{tag}: {pv}"
            );
            let description = a.get("description").and_then(|u| u.as_str());
            assert_eq!(
                pv.get("description").and_then(|u| u.as_str()),
                description,
                "{tag}: {pv}"
            );
            let security = a
                .get("security")
                .and_then(|s| s.as_str())
                .unwrap_or("FreeAccess");
            // No [users] with --endpoint: SecuredWrite and VerifiedWrite are read-only.
            let writes = matches!(security, "FreeAccess" | "Operate" | "Tune");
            assert_eq!(
                pv["writable"].as_bool(),
                Some(writes),
                "{tag} ({security}): {pv}"
            );
            // The attribute's alarms: named under it, listed on its PV.
            for al in a
                .get("alarms")
                .and_then(|l| l.as_array())
                .into_iter()
                .flatten()
            {
                let alarm = format!("{object}.{}", al["name"].as_str().unwrap());
                let carrier = pvs
                    .iter()
                    .find(|p| {
                        p.get("alarms")
                            .and_then(|l| l.as_array())
                            .is_some_and(|l| l.iter().any(|r| r.as_str() == Some(&alarm)))
                    })
                    .unwrap_or_else(|| panic!("no PV carries {alarm}:\n{out}"));
                if al["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{name}."))
                {
                    assert_eq!(carrier["tag"].as_str(), Some(tag.as_str()), "{alarm}");
                }
            }
            seen += 1;
        }
    }
    assert!(seen > 10, "the demo Galaxy has attributes");
    assert!(
        out.contains("Interlock") && out.contains("SecuredWrite"),
        "{out}"
    );

    // The output passes check unchanged and serves.
    let file = dir.join("discovered.toml");
    std::fs::write(&file, &out).unwrap();
    let (code, table, err) = mxpva(&["check", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "check refused the output: {err}\n{out}");
    assert!(
        table.contains(&format!("pvs:       {}", pvs.len())),
        "{table}"
    );
    plant.write_config(&out);
    plant.start_bridge();
    let env = plant.env.clone();
    let names: Vec<&str> = pvs.iter().map(|p| p["name"].as_str().unwrap()).collect();
    let text = clients()
        .pvget_until(&env, &["Pump001:SpeedSP"], "Pump001:SpeedSP")
        .await;
    assert!(text.contains("Pump001:SpeedSP"), "{text}");
    let mut args = vec!["-w", "5"];
    args.extend(names.iter().copied());
    let text = clients().run("pvget", &env, &args).await.text();
    for name in &names {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name} "))),
            "pvget of {name}: {text}"
        );
    }
}

/// The Galaxy after: Old removed, New added, Mode retyped to Double.
fn after() -> String {
    galaxy_fixture("discover")
        .replace(
            "name = \"Mode\"\ntype = \"Integer\"\ninitial = 2\n",
            "name = \"Mode\"\ntype = \"Double\"\ninitial = 2.5\n",
        )
        .replace(
            "name = \"Old\"\ntype = \"Double\"\ninitial = 1.5\n",
            "name = \"New\"\ntype = \"Double\"\ninitial = 4.25\n",
        )
}

const CONFIG: &str = r#"
[gateway]
endpoint = "http://{gateway}"
reconnect_initial = "100ms"
reconnect_max = "400ms"

[alarms]
enabled = false

# The rule would name Tank001.Temp `Tank001:Temp` too: the explicit entry wins.
[[pv]]
name = "Tank001:Temp"
tag = "Tank001.Temp"
type = "float64"
units = "K"

[[discover]]
objects = "Tank*"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_adds_removes_and_retypes_and_the_rest_never_flicker() {
    let plant = Plant::new("discover-deploy")
        .galaxy("discover")
        .config(CONFIG)
        .start()
        .await;
    let env = plant.env.clone();
    let text = clients()
        .pvget_value_until(&env, "Tank001:Old", "1.5")
        .await;
    assert!(text.contains("1.5"), "the rule-made PV serves: {text}");

    // The explicit entry wins over the rule for Tank001.Temp.
    let got = clients().p4p_get(&env, &["Tank001:Temp"]).await;
    assert_eq!(got["Tank001:Temp"]["display"]["units"], "K", "{got}");

    let (_p4p, lines) = clients().spawn_lines(
        "python",
        &env,
        &[
            "-u",
            "-c",
            P4P_LINES,
            "Tank001:Level",
            "Tank001:Temp",
            "Tank001:Old",
        ],
    );
    let mut lines = Lines(lines, Vec::new());
    for pv in ["Tank001:Level", "Tank001:Temp", "Tank001:Old"] {
        lines
            .until(&format!("{pv} has a value"), |v| {
                v["pv"] == pv && v["sev"] == 0 && v["value"].is_number()
            })
            .await;
    }
    let (_pvmon, _first, mut pvmon) = clients().pvmonitor(&env, "Tank001:Level").await;

    let from = lines.1.len();
    let after = after();
    assert!(after.contains("New") && after.contains("2.5") && !after.contains("Old"));
    plant.deploy(&after);
    // The bootstrap event was deploy 1; this deploy is the next.
    let needle = "discovered mapping applied why=deploy 2 ";
    let text = plant.logged(needle, 1).await;
    let applied = text.lines().find(|l| l.contains(needle)).unwrap();
    assert!(
        applied.contains("added=1")
            && applied.contains("removed=1")
            && applied.contains("reopened=1"),
        "{applied}"
    );

    // The removed PV disconnects; the watched ones keep updating, never flickering.
    lines
        .until("Tank001:Old disconnects", |v| {
            v["pv"] == "Tank001:Old" && v["error"].is_string()
        })
        .await;
    for pv in ["Tank001:Level", "Tank001:Temp"] {
        while lines.of(pv, from).len() < 5 {
            lines
                .next(&format!("{pv} updates after the deploy"), |v| v["pv"] == pv)
                .await;
        }
        for v in lines.of(pv, from) {
            assert!(v["error"].is_null(), "{pv} was disconnected: {v}");
            assert_eq!(v["sev"], 0, "{pv} flickered: {v}");
        }
    }
    // pvmonitor's own lines since: up to one of Tank001:Level (its output reaches the test
    // when pvmonitor writes it, not with the p4p lines above), then what else came.
    let mut shown: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !shown.iter().any(|l| l.starts_with("Tank001:Level")) {
        match tokio::time::timeout_at(deadline, pvmon.recv()).await {
            Ok(Some(line)) => shown.push(line),
            _ => break,
        }
    }
    while let Ok(line) = pvmon.try_recv() {
        shown.push(line);
    }
    assert!(
        shown.iter().any(|l| l.starts_with("Tank001:Level")),
        "pvmonitor: {shown:#?}"
    );
    assert!(
        !shown
            .iter()
            .any(|l| l.contains("isconnect") || l.contains("INVALID")),
        "pvmonitor: {shown:#?}"
    );

    // The new PV serves; the retyped one is a double now.
    let text = clients()
        .pvget_value_until(&env, "Tank001:New", "4.25")
        .await;
    assert!(text.contains("4.25"), "{text}");
    let text = clients()
        .pvget_until(&env, &["-v", "Tank001:Mode"], "double value 2.5")
        .await;
    assert!(
        text.contains("double value 2.5"),
        "Tank001:Mode retyped: {text}"
    );
    let text = clients()
        .run("pvget", &env, &["-w", "2", "Tank001:Old"])
        .await
        .text();
    assert!(!text.contains("1.5"), "Tank001:Old still served: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pvs_of_one_name_are_an_error_naming_both() {
    let plant = Plant::new("discover-duplicate")
        .galaxy("discover")
        .start()
        .await;
    let endpoint = &plant.gateway;
    // Tank001:Level is the rule's name for Tank001.Level, and this entry's for another tag.
    let config = plant.dir.join("dup.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nendpoint = \"http://{endpoint}\"\n\n[[pv]]\nname = \"Tank001:Level\"\ntag = \"Tank001.Mode\"\n\n[[discover]]\nobjects = \"Tank001\"\n"
        ),
    )
    .unwrap();
    let (code, out, err) = mxpva(&["discover", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 78, "{out}{err}");
    assert!(
        err.contains("duplicate PV name `Tank001:Level`")
            && err.contains("discover[1]")
            && err.contains("Tank001.Level")
            && err.contains("pv[1]")
            && err.contains("Tank001.Mode"),
        "{err}"
    );
    // check itself does not read the Galaxy: the file is valid offline.
    let (code, _, err) = mxpva(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_runs_the_changed_rules_again() {
    let head = "[gateway]\nendpoint = \"http://{gateway}\"\n\n[alarms]\nenabled = false\n\n";
    let plant = Plant::new("discover-sighup")
        .galaxy("discover")
        .config(&format!("{head}[[discover]]\nattributes = [\"Level\"]\n"))
        .start()
        .await;
    let env = plant.env.clone();
    let text = clients()
        .pvget_until(&env, &["Tank001:Level"], "Tank001:Level ")
        .await;
    assert!(text.contains("Tank001:Level "), "{text}");

    // Another template and another attribute: the rule-made PVs follow at once.
    plant.write_config(&format!(
        "{head}[[discover]]\nattributes = [\"Level\", \"Old\"]\nname = \"N:{{attribute}}\"\n"
    ));
    plant.hangup();
    let text = plant
        .logged("discovered mapping applied why=config reload", 1)
        .await;
    // The rule's filters and template changed: its PV goes at the reload (no rule in force
    // makes it), and the discovery adds what the new rule makes.
    let reloaded = text
        .lines()
        .find(|l| l.contains("config reloaded"))
        .unwrap();
    assert!(reloaded.contains("removed=1"), "{reloaded}");
    let applied = text
        .lines()
        .find(|l| l.contains("discovered mapping applied why=config reload"))
        .unwrap();
    assert!(
        applied.contains("added=2") && applied.contains("removed=0"),
        "{applied}"
    );
    let text = clients().pvget_value_until(&env, "N:Old", "1.5").await;
    assert!(text.contains("1.5"), "{text}");
    let text = clients().pvget_until(&env, &["N:Level"], "N:Level ").await;
    assert!(text.contains("N:Level "), "{text}");
    let text = clients()
        .run("pvget", &env, &["-w", "2", "Tank001:Level"])
        .await
        .text();
    assert!(
        text.contains("Timeout"),
        "Tank001:Level still served: {text}"
    );
}

/// Issue 21, defect 4: a reload that tightens a rule's `access_group` is in force for the
/// PVs the rule made at once, while the re-discovery it starts cannot read the Galaxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_rule_access_group_holds_while_the_galaxy_is_unreachable() {
    let mut plant = Plant::new("discover-rule-access")
        .galaxy("discover")
        .file(
            "mxpva.acf",
            "ASG(DEFAULT) { RULE(1, READ) }\n\
             ASG(LOOSE) {\n  RULE(1, READ)\n  RULE(1, WRITE)\n}\n\
             ASG(TIGHT) { RULE(1, READ) }\n",
        )
        .start()
        .await;
    let control = plant.control().clone();
    let config = |group: &str| {
        format!(
            "[gateway]\nendpoint = \"http://{{gateway}}\"\nreconnect_initial = \"100ms\"\n\
             reconnect_max = \"400ms\"\n\n[alarms]\nenabled = false\n\n\
             [access]\nfile = \"mxpva.acf\"\n\n\
             [[discover]]\nobjects = \"Tank001\"\nattributes = [\"Old\"]\naccess_group = \"{group}\"\n"
        )
    };
    plant.write_config(&config("LOOSE"));
    plant.start_bridge();
    let env = plant.env.clone();
    let c = clients();
    let text = c.pvget_value_until(&env, "Tank001:Old", "1.5").await;
    assert!(text.contains("1.5"), "{text}");
    // The loose group lets anyone write.
    let out = c.p4p_put(&env, "Tank001:Old", "2.5").await;
    assert_eq!(out.trim(), "ok", "{out}");
    let wrote = |writes: &[mxpva::sim::WriteSeen], v: f64| {
        writes
            .iter()
            .any(|w| w.reference == "Tank001.Old" && w.value == format!("Double({v:?})"))
    };
    assert!(wrote(&control.writes().await.unwrap(), 2.5));

    // The Galaxy Repository goes out of reach; the rule's group becomes one that denies
    // writes. The re-discovery of the reload fails, and the tighter group holds anyway.
    control
        .set_faults(&mxpva::sim::Faults {
            galaxy_unavailable: true,
            ..mxpva::sim::Faults::default()
        })
        .await
        .unwrap();
    plant.write_config(&config("TIGHT"));
    plant.hangup();
    plant.logged("config reloaded", 1).await;
    let text = plant.logged("discovery failed", 1).await;
    let failed = text
        .lines()
        .find(|l| l.contains("discovery failed"))
        .unwrap();
    assert!(
        failed.contains("why=config reload")
            && failed.contains("the Galaxy Repository database cannot be reached"),
        "{failed}"
    );
    let me = {
        let out = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let denied =
        format!("put denied by access security: Tank001:Old (group TIGHT, {me}@127.0.0.1)");
    // pvput exits 0 on an error: its output says.
    let out = c.run("pvput", &env, &["Tank001:Old", "3.5"]).await.text();
    assert!(out.contains(&format!("Error: {denied}")), "{out}");
    let out = c.p4p_put(&env, "Tank001:Old", "4.5").await;
    assert_eq!(out.trim(), format!("RemoteError: {denied}"), "{out}");
    let writes = control.writes().await.unwrap();
    assert!(!wrote(&writes, 3.5) && !wrote(&writes, 4.5), "{writes:?}");
    // Only the access changed: the PV is served as before.
    let text = c.pvget_value_until(&env, "Tank001:Old", "2.5").await;
    assert!(text.contains("2.5"), "{text}");
}
