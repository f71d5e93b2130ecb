//! `buffered` (`[[pv]]`, `[defaults]`, `[[discover]]`), `[gateway] buffered_interval` and
//! `[limits] max_buffered_samples`: defaults, overrides, refusals, the check's report.

use std::path::Path;
use std::time::Duration;

use crate::config::{Config, Limits, DEFAULT_BUFFERED_INTERVAL};

fn load(gateway: &str, rest: &str) -> Result<Config, String> {
    let text = format!("[gateway]\nendpoint = \"http://127.0.0.1:1\"\n{gateway}\n{rest}");
    Config::from_str_at(&text, Path::new("b.toml")).map_err(|e| e.to_string())
}

const A: &str = "[[pv]]\nname = \"A\"\ntag = \"T.A\"\n";

#[test]
fn buffered_is_off_unless_the_pv_or_the_defaults_turn_it_on() {
    let c = load("", A).unwrap();
    assert!(!c.pvs[0].buffered);
    assert!(!c.defaults.buffered);
    assert_eq!(c.gateway.buffered_interval, DEFAULT_BUFFERED_INTERVAL);
    assert_eq!(DEFAULT_BUFFERED_INTERVAL, Duration::from_secs(1));
    assert_eq!(c.limits.max_buffered_samples, 1000);
    assert_eq!(Limits::DEFAULT.max_buffered_samples, 1000);
    assert!(!c.mapping_table().contains("buffered:"));

    let c = load("", &format!("{A}buffered = true\n")).unwrap();
    assert!(c.pvs[0].buffered);
    let table = c.mapping_table();
    assert!(table.contains("pvs:       1 (1 buffered)"), "{table}");
    assert!(table.contains("A buffered: every sample"), "{table}");

    let c = load("", &format!("[defaults]\nbuffered = true\n{A}")).unwrap();
    assert!(c.pvs[0].buffered);
    let c = load(
        "",
        &format!("[defaults]\nbuffered = true\n{A}buffered = false\n"),
    )
    .unwrap();
    assert!(!c.pvs[0].buffered);

    let c = load(
        "buffered_interval = \"250ms\"",
        &format!("[limits]\nmax_buffered_samples = 20\n{A}"),
    )
    .unwrap();
    assert_eq!(c.gateway.buffered_interval, Duration::from_millis(250));
    assert_eq!(c.limits.max_buffered_samples, 20);
    let table = c.mapping_table();
    assert!(table.contains("buffered interval 250ms"), "{table}");
    assert!(table.contains("buffered samples per event 20"), "{table}");
}

#[test]
fn bad_buffered_keys_are_refused_naming_the_key_and_why() {
    let e = load("", &format!("{A}buffered = \"yes\"\n")).unwrap_err();
    assert!(
        e.contains("pv[1].buffered") || e.contains("buffered"),
        "{e}"
    );
    assert!(e.contains("b.toml:7:"), "{e}");
    let e = load("", "[limits]\nmax_buffered_samples = 0\n").unwrap_err();
    assert!(
        e.contains("limits.max_buffered_samples: max_buffered_samples is 0, expected 1 to"),
        "{e}"
    );
    let e = load("buffered_interval = \"0s\"", "").unwrap_err();
    assert!(
        e.contains("gateway.buffered_interval: must be longer than zero"),
        "{e}"
    );
    let e = load("buffered_interval = \"0.5ms\"", "").unwrap_err();
    assert!(
        e.contains("gateway.buffered_interval: is shorter than 1ms"),
        "{e}"
    );
    let e = load("buffered_interval = \"25h\"", "").unwrap_err();
    assert!(e.contains("gateway.buffered_interval"), "{e}");
    let e = load("", "[defaults]\nbuffered = 1\n").unwrap_err();
    assert!(e.contains("defaults.buffered"), "{e}");
}

#[test]
fn a_discover_rule_makes_its_pvs_buffered() {
    use crate::config::discover::{Candidate, GalaxyAccess};
    use crate::config::{PvType, ScalarType};
    let c = load(
        "",
        "[[discover]]\nobjects = \"Tank*\"\nbuffered = true\n\n[[discover]]\nobjects = \"Pump*\"\n",
    )
    .unwrap();
    let cand = |rule: usize, obj: &str| Candidate {
        rule,
        name: format!("{obj}:PV"),
        tag: format!("{obj}.PV"),
        pv_type: PvType::Scalar(ScalarType::Float64),
        units: None,
        description: None,
        access: GalaxyAccess::ReadOnly,
        alarms: Vec::new(),
        note: String::new(),
    };
    let made = c.rule_pvs(&[cand(0, "Tank001"), cand(1, "Pump001")]);
    let buffered: Vec<(String, bool)> = made
        .pvs
        .iter()
        .map(|p| (p.pv.tag.to_string(), p.pv.buffered))
        .collect();
    assert!(
        buffered.contains(&("Tank001.PV".to_string(), true)),
        "{buffered:?}"
    );
    assert!(
        buffered.contains(&("Pump001.PV".to_string(), false)),
        "{buffered:?}"
    );
}
