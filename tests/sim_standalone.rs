//! `mxpva sim` as a separate process, driven through the gateway client and
//! the control service; and the Galaxy file validation.
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mxpva::gateway::*;
use mxpva::sim::{Faults, Galaxy, GalaxyError, RemoteSim};

const BIN: &str = env!("CARGO_BIN_EXE_mxpva");

/// Kills the child we started when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn connect_retry(endpoint: &str) -> GatewayClient {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match GatewayClient::connect(&ClientOptions::plaintext(endpoint)).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("mxpva sim did not come up: {e}"),
        }
    }
}

#[tokio::test]
async fn standalone_sim_serves_and_obeys_the_control_service() {
    let port = free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let _child = ChildGuard(
        Command::new(BIN)
            .args(["sim", "--listen", &endpoint])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = connect_retry(&endpoint).await;
    let control = RemoteSim::connect(&endpoint, None).await.unwrap();

    let s = client.open_session("standalone").await.unwrap();
    let server = s.register("standalone").await.unwrap();
    let tags = vec!["Pump001.Mode".to_string()];
    let item = s.subscribe_bulk(server, &tags).await.unwrap()[0].item_handle;
    let mut events = s.events(None).await.unwrap();

    control
        .set_value("Pump001.Mode", "Manual", None)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ev = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let SessionEvent::DataChange(d) = ev {
            if d.item_handle == item && d.value == MxValue::String("Manual".into()) {
                break;
            }
        }
    }
    let listed = control.sessions().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].client_session_name, "standalone");
    assert!(listed[0].subscriber_attached);

    control.raise_alarm("Pump001.PumpFault").await.unwrap();
    let active = client
        .query_active_alarms("Galaxy!Area001.Pump001")
        .await
        .unwrap();
    assert!(active
        .iter()
        .any(|a| a.reference == "Galaxy!Area001.Pump001.PumpFault"));

    control
        .set_faults(&Faults {
            refuse_sessions: true,
            ..Faults::default()
        })
        .await
        .unwrap();
    assert!(client.open_session("refused").await.is_err());
    control.set_faults(&Faults::default()).await.unwrap();

    control.drop_event_streams(Some(s.id())).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
        {
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                assert_eq!(e.rpc_code(), Some(RpcCode::Unavailable));
                break;
            }
            None => panic!("stream ended without a status"),
        }
    }
    let e = control.set_value("Nope.Attr", "1", None).await.unwrap_err();
    assert!(e.to_string().contains("Nope.Attr"), "{e}");
    control.restart().await.unwrap();
    assert_eq!(
        s.register("x").await.unwrap_err().rpc_code(),
        Some(RpcCode::NotFound)
    );
}

#[test]
fn standalone_sim_rejects_a_bad_galaxy_file() {
    let path = std::env::temp_dir().join(format!("mxpva-bad-galaxy-{}.toml", std::process::id()));
    std::fs::write(&path, "[galaxy]\nnmae = \"x\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["sim", "--listen", "127.0.0.1:0", "--galaxy"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown field `nmae`"), "{stderr}");
}

#[test]
fn shipped_galaxy_file_is_valid() {
    let g = Galaxy::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/sim-galaxy.toml"
    )))
    .unwrap();
    for r in [
        "Pump001.Speed",
        "Pump001.SpeedSP",
        "Pump001.Running",
        "Pump001.Mode",
        "Pump001.Starts",
        "Tank001.Level",
        "Line001.Profile",
        "Valve001.Position",
    ] {
        assert!(g.attribute_index(r).is_some(), "{r}");
    }
    assert!(g.alarm_index("Galaxy!Area001.Tank001.Level.HiHi").is_some());
}

#[test]
fn galaxy_validation_reports_every_problem() {
    let text = r#"
[galaxy]
name = "G"
[auth]
mode = "api_key"
[[auth.keys]]
key = "mxgw_a_b"
scopes = ["invoke:raed"]
[[areas]]
name = "A"
[[objects]]
tag = "Obj"
area = "Nowhere"
[[objects.attributes]]
name = "X"
type = "Complex"
[[objects.attributes]]
name = "Y"
type = "Double"
security = "Secret"
[[objects.attributes]]
name = "Z"
type = "Double"
dynamics = { kind = "follow", source = "Missing", tau_s = 1.0 }
[[objects.attributes]]
name = "W"
type = "Boolean"
initial = 3
[[objects.attributes.alarms]]
name = "W.Hi"
kind = "Hi"
priority = 1000
"#;
    assert_problems(
        text,
        &[
            "unknown scope \"invoke:raed\"",
            "area Nowhere is not defined",
            "type \"Complex\" is not simulated",
            "unknown security classification \"Secret\"",
            "dynamics source Missing",
            "initial value 3 does not suit type Boolean",
            "needs a limit and a numeric attribute",
            "priority 1000 is not in 1..=999",
        ],
    );
}

/// Loading `text` fails with Galaxy problems that include each of `needles`.
fn assert_problems(text: &str, needles: &[&str]) {
    let Err(GalaxyError::Invalid { problems, .. }) = Galaxy::from_toml(text, "bad.toml") else {
        panic!("expected validation problems")
    };
    let all = problems.join("\n");
    for needle in needles {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn galaxy_sizes_and_durations_out_of_range_are_problems_not_panics() {
    let text = r#"
[galaxy]
name = "G"
[[areas]]
name = "A"
[[objects]]
tag = "Obj"
area = "A"
[[objects.attributes]]
name = "Huge"
type = "Double"
array_length = 1000000000000
[[objects.attributes]]
name = "Forever"
type = "ElapsedTime"
initial = 1e300
"#;
    assert_problems(
        text,
        &[
            "Obj.Huge: array_length 1000000000000 is above the simulator's 1000000",
            "Obj.Forever: initial elapsed time 1e300 s is out of range",
        ],
    );
}

#[test]
fn galaxy_containment_too_deep_or_looping_is_a_problem() {
    let mut text = String::from("[galaxy]\nname = \"G\"\n[[areas]]\nname = \"A\"\n");
    // O1 in the area, O2 in O1, ... O150 in O149: deeper than the simulator takes.
    for i in 1..=150 {
        text += &format!("[[objects]]\ntag = \"O{i}\"\narea = \"A\"\n");
        if i > 1 {
            text += &format!("parent = \"O{}\"\n", i - 1);
        }
    }
    // L1 in L2 in L1.
    text += "[[objects]]\ntag = \"L1\"\narea = \"A\"\nparent = \"L2\"\n";
    text += "[[objects]]\ntag = \"L2\"\narea = \"A\"\nparent = \"L1\"\n";
    assert_problems(
        &text,
        &[
            "O102: contained more than 100 objects deep",
            "O150: contained more than 100 objects deep",
            "L1: containment cycle",
        ],
    );
    let Err(GalaxyError::Invalid { problems, .. }) = Galaxy::from_toml(&text, "deep.toml") else {
        unreachable!()
    };
    assert!(
        !problems.iter().any(|p| p.starts_with("O101:")),
        "O101 is exactly 100 deep: {problems:?}"
    );
}
