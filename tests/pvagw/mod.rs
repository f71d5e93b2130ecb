//! The harness of tests/scale_out.rs: the simulated Galaxy of two areas, mxpva shards on
//! loopback ports of their own, and p4p's PVAccess gateway (pvagw) in front of them, run
//! from packaging/pvagw.json.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::clients::plant::{ExtraBridge, Plant};
use crate::clients::{self, clients, free_ports, pva_env, Env, Seen};
use mxpva::sim::RemoteSim;
use serde_json::Value;

/// `mxpva sim` on the test Galaxy (`tests/fixtures/galaxy/scale_out.toml`), no bridge:
/// the shards are the plant's bridges ([`Shard::start`]).
pub async fn start_plant(name: &str) -> Plant {
    Plant::new(&format!("scale-out-{name}"))
        .galaxy("scale_out")
        .start()
        .await
}

/// The simulator's endpoint URL.
pub fn endpoint(plant: &Plant) -> String {
    format!("http://{}", plant.gateway)
}

/// One mxpva process behind the gateway.
pub struct Shard {
    pub bridge: ExtraBridge,
    pub config: PathBuf,
    pub audit: PathBuf,
}

/// The loopback ports of a shard: (tcp, udp).
pub fn shard_ports() -> (u16, u16) {
    free_ports()
}

/// A shard's config, as docs/scale-out.md lays it out: `[server]` on loopback ports of its
/// own with beacons to the gateway only, one `[[discover]]` root, the alarm feed filtered
/// to that area, its own alarm table and status prefix, its own audit file.
///
/// The alarm feed filter is a prefix of the alarm's full reference,
/// `Galaxy!<area>.<object>.<alarm>`, whose area is the object's own: `Galaxy!North.` takes
/// North's alarms, and South, which has a sub-area, needs `Galaxy!South` (no dot) to take
/// SouthYard's too.
pub fn shard_config(
    endpoint: &str,
    name: &str,
    area: &str,
    (tcp, udp): (u16, u16),
    beacons: u16,
) -> String {
    let filter = if area == "South" {
        "Galaxy!South".to_string()
    } else {
        format!("Galaxy!{area}.")
    };
    let upper = area.to_ascii_uppercase();
    format!(
        r#"
[gateway]
endpoint = "{endpoint}"
client_name = "mxpva-{name}"
reconnect_initial = "100ms"
reconnect_max = "400ms"

[server]
interfaces = ["127.0.0.1"]
tcp_port = {tcp}
udp_port = {udp}
beacon_destinations = ["127.0.0.1:{beacons}"]
auto_beacon = false

[defaults]
prefix = "PLANT:"

[alarms]
filter_prefix = "{filter}"
table = "ALARMS:{upper}"

[status]
prefix = "PLANT:mxpva:{name}:"

[audit]
file = "audit-{name}.jsonl"

[[discover]]
root = "{area}"
"#
    )
}

impl Shard {
    pub fn start(plant: &Plant, name: &str, area: &str, ports: (u16, u16), beacons: u16) -> Shard {
        Shard::start_with(plant, name, area, ports, beacons, "")
    }

    /// [`Shard::start`] with `extra` appended to its config (top-level tables first).
    pub fn start_with(
        plant: &Plant,
        name: &str,
        area: &str,
        ports: (u16, u16),
        beacons: u16,
        extra: &str,
    ) -> Shard {
        let text = format!(
            "{extra}\n{}",
            shard_config(&endpoint(plant), name, area, ports, beacons)
        );
        let bridge = plant.extra_bridge(&format!("mxpva-{name}"), &text, &[]);
        Shard {
            bridge,
            config: plant.dir.join(format!("mxpva-{name}.toml")),
            audit: plant.dir.join(format!("audit-{name}.jsonl")),
        }
    }

    /// Kills it at once (SIGKILL, as a crash or a lost host).
    pub fn kill(&mut self) {
        self.bridge.process.start_kill().unwrap();
    }

    /// Its audit records.
    pub fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// `packaging/pvagw.json` without its C-style comments (pvagw reads them the same way).
pub fn shipped_pvagw_config() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/pvagw.json"))
            .unwrap();
    let mut plain = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("/*") {
        plain.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("an unclosed comment") + start + 2;
        rest = &rest[end..];
    }
    plain.push_str(rest);
    serde_json::from_str(&plain).unwrap()
}

/// pvagw, with the clients' settings to reach it.
pub struct Gateway {
    _process: clients::ClientChild,
    pub env: Env,
    pub log: PathBuf,
}

impl Gateway {
    /// Runs the shipped gateway config, its server side on free loopback ports, its client
    /// side searching the shards at `shard_udp` and taking their beacons on `beacons`.
    pub async fn start(dir: &Path, shard_udp: &[u16], beacons: u16) -> Gateway {
        Gateway::start_with(dir, shard_udp, beacons, None).await
    }

    /// [`Gateway::start`] with `acf` as the gateway's own access security file (the
    /// `access` key the shipped file has commented out).
    pub async fn start_with(
        dir: &Path,
        shard_udp: &[u16],
        beacons: u16,
        acf: Option<&str>,
    ) -> Gateway {
        let (tcp, udp) = free_ports();
        let mut conf = shipped_pvagw_config();
        let client = &mut conf["clients"][0];
        for key in ["addrlist", "autoaddrlist", "bcastport"] {
            assert!(
                client.get(key).is_some(),
                "pvagw.json: clients[0] has no {key}"
            );
        }
        assert_eq!(
            client["autoaddrlist"], false,
            "the shards are searched only where listed"
        );
        let addrs: Vec<String> = shard_udp.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        client["addrlist"] = addrs.join(" ").into();
        client["bcastport"] = beacons.into();
        let server = &mut conf["servers"][0];
        for key in [
            "interface",
            "serverport",
            "bcastport",
            "addrlist",
            "autoaddrlist",
        ] {
            assert!(
                server.get(key).is_some(),
                "pvagw.json: servers[0] has no {key}"
            );
        }
        server["interface"] = serde_json::json!(["127.0.0.1"]);
        server["serverport"] = tcp.into();
        server["bcastport"] = udp.into();
        server["addrlist"] = "".into();
        server["autoaddrlist"] = false.into();
        if let Some(acf) = acf {
            std::fs::write(dir.join("pvagw.acf"), acf).unwrap();
            server["access"] = "pvagw.acf".into();
        }
        let path = dir.join("pvagw.json");
        std::fs::write(&path, serde_json::to_string_pretty(&conf).unwrap()).unwrap();

        let log = dir.join("pvagw.log");
        let args = ["-m".as_ref(), "p4p.gw".as_ref(), path.as_os_str()];
        let process = clients().spawn_logged("python", &[], &args, &log);
        // Its servers are up before it logs this.
        clients::logged(&log, "Setup GW clients to ignore GW servers", 1).await;
        Gateway {
            _process: process,
            env: pva_env(tcp, udp).1,
            log,
        }
    }
}

/// The PVs `mxpva discover` makes for a shard, written next to its config, and their names
/// with `mxpva check --pv-names` (the check docs/scale-out.md gives).
pub fn served_names(shard: &Shard) -> Vec<String> {
    let (code, out, err) =
        clients::mxpva_output(&["discover", "--config", shard.config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let fixed = shard.config.with_extension("static.toml");
    std::fs::write(&fixed, out).unwrap();
    let (code, out, err) =
        clients::mxpva_output(&["check", "--config", fixed.to_str().unwrap(), "--pv-names"]);
    assert_eq!(code, 0, "{err}");
    out.lines().map(str::to_string).collect()
}

pub async fn pvput(env: &Env, pv: &str, value: &str) -> String {
    clients().run("pvput", env, &[pv, value]).await.text()
}

/// Gets `pvs` through the gateway with p4p until each has a value (at most 20 s).
pub async fn get_all(env: &Env, pvs: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = clients().p4p_get(env, pvs).await;
        if pvs.iter().all(|pv| got[pv].get("error").is_none()) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "not all served through the gateway: {got}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads the simulator's record of writes of `tag` whose value holds `value`.
pub async fn writes_of(control: &RemoteSim, tag: &str, value: &str) -> usize {
    let writes = control.writes().await.unwrap();
    writes
        .iter()
        .filter(|w| w.reference == tag && w.value.contains(value))
        .count()
}

pub fn stamp(s: &Seen) -> f64 {
    let t = &s.v["timeStamp"];
    t["secondsPastEpoch"].as_f64().unwrap() + t["nanoseconds"].as_f64().unwrap() * 1e-9
}
