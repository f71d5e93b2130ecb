//! The typed model that `Config::load` returns: defaults, overrides and validation.

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use mxpva::config::{
    ApiKeySource, BooleanRepr, Config, Identity, PasswordSource, PvType, ScalarType, Severity,
    TagIndex, TimestampSource, WriteMode,
};

fn parse(text: &str) -> Result<Config, String> {
    Config::from_str_at(text, Path::new("/etc/mxpva/site.toml")).map_err(|e| e.to_string())
}

const ONE_PV: &str = "[[pv]]\nname = \"A\"\ntag = \"Obj.A\"\n";

#[test]
fn defaults_when_tables_are_absent() {
    let c = parse(ONE_PV).unwrap();
    let g = &c.gateway;
    assert_eq!(g.endpoint, "http://localhost:5000");
    assert_eq!(g.api_key, ApiKeySource::None);
    assert!(!g.tls.enabled);
    assert_eq!(g.client_name, "mxpva");
    assert_eq!(g.connect_timeout, Duration::from_secs(5));
    assert_eq!(g.request_timeout, Duration::from_secs(10));
    assert_eq!(g.write_timeout, Duration::from_secs(10));
    assert_eq!(g.subscribe_chunk, NonZeroUsize::new(500).unwrap());
    assert_eq!(g.reconnect_initial, Duration::from_millis(500));
    assert_eq!(g.reconnect_max, Duration::from_secs(30));
    assert_eq!(c.server, Default::default());
    let pv = &c.pvs[0];
    assert_eq!(pv.name.as_str(), "A");
    assert_eq!(pv.tag.as_str(), "Obj.A");
    assert_eq!(pv.pv_type, None);
    assert_eq!(pv.boolean, BooleanRepr::Enum);
    assert_eq!(*pv.choices, ["False".to_string(), "True".to_string()]);
    assert_eq!(pv.write, None);
    assert_eq!(pv.timestamp, TimestampSource::Source);
    assert_eq!(pv.location, "/etc/mxpva/site.toml:1:1");
}

#[test]
fn demo_config_has_the_demo_pvs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml");
    let c = Config::load(&path).unwrap();
    let speed = c.pv("DEMO:Pump001:Speed").unwrap();
    assert_eq!(speed.tag.as_str(), "Pump001.Speed");
    assert_eq!(speed.pv_type, Some(PvType::Scalar(ScalarType::Float64)));
    assert_eq!(speed.meta.units.as_deref(), Some("rpm"));
    assert!(!speed.writable());
    let d = **speed.meta.display.as_ref().unwrap();
    assert_eq!((d.low, d.high), (Some(0.0), Some(3000.0)));

    let sp = c.pv("DEMO:Pump001:SpeedSP").unwrap();
    assert_eq!(sp.write, Some(WriteMode::Write { user: None }));
    let ctl = **sp.meta.control.as_ref().unwrap();
    assert_eq!((ctl.low, ctl.high), (Some(0.0), Some(3000.0)));

    let running = c.pv("DEMO:Pump001:Running").unwrap();
    assert_eq!(running.boolean, BooleanRepr::Enum);
    assert_eq!(
        *running.choices,
        ["Stopped".to_string(), "Running".to_string()]
    );
    assert!(running.writable());

    let mode = c.pv("DEMO:Pump001:Mode").unwrap();
    assert_eq!(mode.pv_type, Some(PvType::Scalar(ScalarType::String)));
    assert!(mode.writable());

    let starts = c.pv("DEMO:Pump001:Starts").unwrap();
    assert_eq!(starts.pv_type, Some(PvType::Scalar(ScalarType::Int32)));

    assert!(c.pv("DEMO:Tank001:Level").is_some());
    let profile = c.pv("DEMO:Line001:Profile").unwrap();
    assert_eq!(profile.tag.index(), TagIndex::Whole);
    assert_eq!(profile.tag.base(), "Line001.Profile");
    assert_eq!(profile.pv_type, Some(PvType::Array(ScalarType::Float64)));

    assert!(c.pv("DEMO:Valve001:Position").unwrap().writable());
}

#[test]
fn example_config_users_and_write_modes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let c = Config::load(&path).unwrap();
    assert!(c.gateway.tls.enabled);
    assert_eq!(
        c.gateway.api_key,
        ApiKeySource::Env("MXPVA_GATEWAY_API_KEY".into())
    );
    // Relative paths are resolved against the config file's directory.
    assert_eq!(
        c.gateway.tls.ca_file.as_deref(),
        Some(path.parent().unwrap().join("certs/plant-ca.pem").as_path())
    );
    let run = c.pv("PLANT:LINE1:Pump101:Run").unwrap();
    match &run.write {
        Some(WriteMode::Secured { user }) => {
            assert_eq!(user.key, "operator");
            assert_eq!(
                user.identity,
                Identity::Credentials {
                    name: "line1_operator".into(),
                    password: PasswordSource::Env("MXPVA_OPERATOR_PASSWORD".into()),
                }
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    match &c.pv("PLANT:LINE1:Pump101:Interlock").unwrap().write {
        Some(WriteMode::Verified { user, verifier }) => {
            assert_eq!(user.key, "operator");
            assert_eq!(verifier.identity, Identity::Id(17));
        }
        other => panic!("unexpected {other:?}"),
    }
    let speed = c.pv("PLANT:LINE1:Pump101:Speed").unwrap();
    let alarm = **speed.meta.value_alarm.as_ref().unwrap();
    assert_eq!(alarm.hihi, Some(3500.0));
    assert_eq!(alarm.hihi_severity, Severity::Major);
    assert_eq!(alarm.low_severity, Severity::Minor);
    assert_eq!(
        c.pv("PLANT:LINE1:Line1:Profile3").unwrap().tag.index(),
        TagIndex::Element(3)
    );
}

#[test]
fn defaults_apply_and_pvs_override() {
    let c = parse(
        r#"
[defaults]
prefix = "P:"
writable = true
write_mode = "write2"
timestamp = "receive"
boolean = "bool"
boolean_choices = ["Off", "On"]

[[pv]]
name = "A"
tag = "Obj.A"

[[pv]]
name = "B"
tag = "Obj.B"
writable = false
timestamp = "source"
type = "enum"
"#,
    )
    .unwrap();
    let a = c.pv("P:A").unwrap();
    assert_eq!(a.write, Some(WriteMode::Write2 { user: None }));
    assert_eq!(a.timestamp, TimestampSource::Receive);
    assert_eq!(a.boolean, BooleanRepr::Bool);
    assert_eq!(*a.choices, ["Off".to_string(), "On".to_string()]);
    let b = c.pv("P:B").unwrap();
    assert_eq!(b.write, None);
    assert_eq!(b.timestamp, TimestampSource::Source);
    assert_eq!(b.boolean, BooleanRepr::Enum);
}

#[test]
fn tls_follows_the_scheme() {
    let c = parse(&format!(
        "[gateway]\nendpoint = \"https://gw:5001\"\n{ONE_PV}"
    ))
    .unwrap();
    assert!(c.gateway.tls.enabled);
    assert_eq!(
        parse(&format!(
            "[gateway]\nendpoint = \"https://gw:5001\"\ntls = false\n{ONE_PV}"
        ))
        .unwrap_err(),
        "/etc/mxpva/site.toml:3:7: gateway.tls: `tls = false` contradicts the `https://` \
         endpoint: use `http://` for plaintext"
    );
    assert_eq!(
        parse(&format!("[gateway]\ntls = true\n{ONE_PV}")).unwrap_err(),
        "/etc/mxpva/site.toml:2:7: gateway.tls: `tls = true` needs an `https://` endpoint"
    );
}

#[test]
fn api_key_sources() {
    assert_eq!(
        parse(&format!(
            "[gateway]\napi_key_env = \"K\"\napi_key_file = \"k\"\n{ONE_PV}"
        ))
        .unwrap_err(),
        "/etc/mxpva/site.toml:2:15: gateway.api_key_env: set `api_key_env` or `api_key_file`, \
         not both"
    );
    let c = parse(&format!(
        "[gateway]\napi_key_file = \"keys/gw.key\"\n{ONE_PV}"
    ))
    .unwrap();
    assert_eq!(
        c.gateway.api_key,
        ApiKeySource::File("/etc/mxpva/keys/gw.key".into())
    );

    // Loading reads the file, trims it, and the result never prints the key.
    let dir = std::env::temp_dir().join(format!("mxpva-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gw.key"), "mxgw_1_abcdef\n").unwrap();
    let key = ApiKeySource::File(dir.join("gw.key"))
        .load()
        .unwrap()
        .unwrap();
    assert_eq!(key.expose(), "mxgw_1_abcdef");
    assert!(!format!("{key} {key:?}").contains("abcdef"));
    std::fs::write(dir.join("empty.key"), "  \n").unwrap();
    let err = ApiKeySource::File(dir.join("empty.key"))
        .load()
        .unwrap_err();
    assert!(err.to_string().ends_with("empty.key is empty"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    let err = ApiKeySource::Env("MXPVA_TEST_SURELY_UNSET_VARIABLE".into())
        .load()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable MXPVA_TEST_SURELY_UNSET_VARIABLE is not set"
    );
}

#[test]
fn server_options() {
    let c = parse(&format!(
        "[server]\ninterfaces = [\"127.0.0.1\", \"::1\"]\ntcp_port = 15075\n\
         udp_port = 15076\nbeacon_destinations = [\"10.0.0.255:5076\"]\nauto_beacon = false\n{ONE_PV}"
    ))
    .unwrap();
    assert_eq!(c.server.interfaces.as_ref().unwrap().len(), 2);
    assert_eq!(c.server.tcp_port, Some(15075));
    assert_eq!(c.server.udp_port, Some(15076));
    assert_eq!(c.server.auto_beacon, Some(false));
    assert_eq!(
        parse(&format!("[server]\ninterfaces = [\"eth0\"]\n{ONE_PV}")).unwrap_err(),
        "/etc/mxpva/site.toml:2:15: server.interfaces: `eth0` is not an IP address"
    );
    assert_eq!(
        parse(&format!("[server]\ntcp_port = 70000\n{ONE_PV}")).unwrap_err(),
        "/etc/mxpva/site.toml:2:12: server.tcp_port: invalid value: integer `70000`, expected u16"
    );
}

#[test]
fn choices_need_an_enum() {
    assert_eq!(
        parse("[[pv]]\nname = \"A\"\ntag = \"O.A\"\ntype = \"bool\"\nchoices = [\"a\", \"b\"]\n")
            .unwrap_err(),
        "/etc/mxpva/site.toml:5:11: pv[1].choices: `choices` apply only to a Boolean served as \
         NTEnum, not `bool`"
    );
    assert_eq!(
        parse(
            "[defaults]\nboolean = \"bool\"\n[[pv]]\nname = \"A\"\ntag = \"O.A\"\n\
             choices = [\"a\", \"b\"]\n"
        )
        .unwrap_err(),
        "/etc/mxpva/site.toml:6:11: pv[1].choices: `choices` apply only to a Boolean served as \
         NTEnum, and [defaults] boolean is `bool`: add `type = \"enum\"`"
    );
    assert_eq!(
        parse("[[pv]]\nname = \"A\"\ntag = \"O.A\"\nchoices = [\"a\", \"a\"]\n").unwrap_err(),
        "/etc/mxpva/site.toml:4:11: pv[1].choices: both choices are `a`: they must differ"
    );
}

#[test]
fn users_need_one_identity() {
    let err = parse(&format!(
        "[users.a]\nname = \"x\"\n[users.b]\nid = 3\npassword_env = \"P\"\n\
         [users.c]\nname = \"y\"\npassword = \"hunter2\"\n[users.d]\n{ONE_PV}"
    ))
    .unwrap_err();
    assert_eq!(
        err,
        "/etc/mxpva/site.toml:2:8: users.a.name: a user `name` needs `password_env` or \
         `password_file`\n\
         /etc/mxpva/site.toml:4:6: users.b.id: a user `id` takes no password: remove \
         `password_env` / `password_file`\n\
         /etc/mxpva/site.toml:8:12: users.c.password: a password must not be written in the \
         config file: use `password_env` or `password_file`\n\
         /etc/mxpva/site.toml:9:1: users.d: a user needs `name` (with `password_env` or \
         `password_file`) or `id`"
    );
    assert!(!err.contains("hunter2"));
}

#[test]
fn names_and_precision() {
    assert_eq!(
        parse("[[pv]]\nname = \"A B\"\ntag = \"O.A\"\n").unwrap_err(),
        "/etc/mxpva/site.toml:2:8: pv[1].name: PV name `A B` contains a space: use ASCII \
         letters, digits and `_-+:.;[]<>{}/`"
    );
    assert_eq!(
        parse("[[pv]]\nname = \"A\"\ntag = \"O.A\"\nprecision = 40\n").unwrap_err(),
        "/etc/mxpva/site.toml:4:13: pv[1].precision: precision is 40, expected 0 to 17"
    );
    assert_eq!(
        parse("[[pv]]\nname = \"A\"\ntag = \"O.A\"\ntype = \"string\"\nprecision = 2\n")
            .unwrap_err(),
        "/etc/mxpva/site.toml:5:13: pv[1].precision: `precision` applies only to numeric \
         types, not `string`"
    );
    assert_eq!(
        parse("").unwrap_err(),
        "/etc/mxpva/site.toml:1:1: no [[pv]] tables and no [[discover]] rules: the config maps nothing"
    );
}

#[test]
fn duplicate_after_prefix() {
    // The same full name from two spellings is still a duplicate.
    let err = parse(
        "[defaults]\nprefix = \"P:\"\n[[pv]]\nname = \"A\"\ntag = \"O.A\"\n\
         [[pv]]\nname = \"A\"\ntag = \"O.B\"\n",
    )
    .unwrap_err();
    assert_eq!(
        err,
        "/etc/mxpva/site.toml:7:8: pv[2].name: duplicate PV name `P:A`, first defined at \
         /etc/mxpva/site.toml:4:8 (pv[1].name)"
    );
}

#[test]
fn alarm_keys_and_their_defaults() {
    use mxpva::config::{AlarmPvType, Severity, SeverityScheme};
    let text = r#"
[defaults]
prefix = "P:"

[[pv]]
name = "Level"
tag = "Tank001.Level"
alarms = ["Tank001.Level.HiHi"]

[[pv]]
name = "Temp"
tag = "Tank001.Temp"
acknowledge = false

[[alarm_pv]]
name = "Fault"
alarms = ["Galaxy!Plant.Pump001.PumpFault"]
type = "int32"
"#;
    let c = Config::from_str_at(text, std::path::Path::new("a.toml")).unwrap();
    let a = &c.alarms;
    assert!(a.enabled && a.acknowledge);
    assert_eq!(a.ack_suffix, ":ACK");
    assert_eq!(a.table.as_ref().unwrap().as_str(), "P:ALARMS:ACTIVE");
    assert_eq!(a.returned_unacked, Severity::None);
    assert_eq!(a.severity_of(1), Severity::Major);
    assert_eq!(a.severity_of(500), Severity::Major);
    assert_eq!(a.severity_of(501), Severity::Minor);
    assert_eq!(a.severity_of(999), Severity::Minor);
    assert_eq!(*c.pvs[0].meta.alarms, ["Tank001.Level.HiHi"]);
    assert!(c.pvs[0].acknowledge && !c.pvs[1].acknowledge);
    assert_eq!(c.alarm_pvs[0].name.as_str(), "P:Fault");
    assert_eq!(c.alarm_pvs[0].pv_type, AlarmPvType::Int32);
    assert_eq!(a.severity, SeverityScheme::Priority);
    assert_eq!(c.pvs[0].meta.alarm_severity, None);
    assert_eq!(c.alarm_pvs[0].alarm_severity, None);

    let text = r#"
[alarms]
acknowledge = false
table = ""
returned_unacked = "minor"
priorities = [{ from = 1, to = 250, severity = "major" }, { from = 251, to = 999, severity = "minor" }]
severity = "kind"

[[pv]]
name = "L"
tag = "Tank001.Level"
alarm_severity = "priority"
"#;
    let c = Config::from_str_at(text, std::path::Path::new("b.toml")).unwrap();
    assert!(c.alarms.table.is_none());
    assert!(
        !c.pvs[0].acknowledge,
        "[alarms] acknowledge = false turns every :ACK off"
    );
    assert_eq!(c.alarms.returned_unacked, Severity::Minor);
    assert_eq!(c.alarms.severity_of(300), Severity::Minor);
    assert_eq!(c.alarms.severity, SeverityScheme::Kind);
    assert_eq!(c.pvs[0].meta.alarm_severity, Some(SeverityScheme::Priority));
}
