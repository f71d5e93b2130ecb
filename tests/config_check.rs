//! `mxpva check` run as a real process: exact messages and exit code 78 on bad configs,
//! and success on every shipped config/*.toml.

use std::path::Path;
use std::process::{Command, Output};

const EXIT_CONFIG: i32 = 78;

fn check(config: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mxpva"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check", "--config", config])
        .output()
        .expect("run mxpva")
}

/// Runs `check` on a fixture and returns its stderr, asserting exit 78 and empty stdout.
fn check_fails(fixture: &str) -> String {
    let path = format!("tests/fixtures/config/{fixture}");
    let out = check(&path);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(EXIT_CONFIG), "{fixture}: {stderr}");
    assert!(out.stdout.is_empty(), "{fixture}: stdout not empty");
    stderr
}

#[test]
fn unknown_key() {
    assert_eq!(
        check_fails("unknown_key.toml"),
        "tests/fixtures/config/unknown_key.toml:10:1: pv[2].tga: unknown field `tga`, expected \
         one of `name`, `tag`, `type`, `units`, `precision`, `description`, `display`, \
         `control`, `value_alarm`, `writable`, `write_mode`, `user`, `verifier`, `timestamp`, \
         `choices`, `alarms`, `acknowledge`, `alarm_severity`, `subscribe`, `linger`, \
         `access_group`, `access_level`, `buffered`\n"
    );
}

#[test]
fn unknown_table() {
    assert_eq!(
        check_fails("unknown_table.toml"),
        "tests/fixtures/config/unknown_table.toml:4:2: gatway: unknown field `gatway`, expected \
         one of `gateway`, `server`, `defaults`, `users`, `pv`, `alarms`, `alarm_pv`, `limits`, \
         `status`, `log`, `access`, `audit`, `discover`\n"
    );
}

#[test]
fn duplicate_pv_names_both_locations() {
    assert_eq!(
        check_fails("duplicate_pv.toml"),
        "tests/fixtures/config/duplicate_pv.toml:13:8: pv[3].name: duplicate PV name `T:Speed`, \
         first defined at tests/fixtures/config/duplicate_pv.toml:5:8 (pv[1].name)\n"
    );
}

#[test]
fn bad_type() {
    assert_eq!(
        check_fails("bad_type.toml"),
        "tests/fixtures/config/bad_type.toml:4:8: pv[1].type: unknown type `double`, expected \
         one of `bool`, `int8`, `int16`, `int32`, `int64`, `uint8`, `uint16`, `uint32`, \
         `uint64`, `float32`, `float64`, `string`, `enum`, or an array of one of them such as \
         `float64[]` (no `enum[]`)\n"
    );
}

#[test]
fn bad_tag() {
    assert_eq!(
        check_fails("bad_tag.toml"),
        "tests/fixtures/config/bad_tag.toml:3:7: pv[1].tag: tag `Pump001` has no attribute \
         part; expected `Object.Attribute`, `Object.Attribute[]` or `Object.Attribute[N]`\n"
    );
}

#[test]
fn missing_tag() {
    assert_eq!(
        check_fails("missing_tag.toml"),
        "tests/fixtures/config/missing_tag.toml:5:1: pv[2]: missing key `tag`\n"
    );
}

#[test]
fn inline_api_key_is_refused_without_echo() {
    let stderr = check_fails("inline_api_key.toml");
    assert_eq!(
        stderr,
        "tests/fixtures/config/inline_api_key.toml:3:11: gateway.api_key: an API key must not \
         be written in the config file: name an environment variable with `api_key_env` or a \
         file with `api_key_file`\n"
    );
    assert!(!stderr.contains("s3cr3t"));
    assert!(!stderr.contains("mxgw_7"));
}

#[test]
fn api_key_in_env_field_is_refused_without_echo() {
    let stderr = check_fails("api_key_in_env_field.toml");
    assert_eq!(
        stderr,
        "tests/fixtures/config/api_key_in_env_field.toml:2:15: gateway.api_key_env: \
         `api_key_env` holds what looks like an API key: it takes the name of an environment \
         variable that holds the key\n"
    );
    assert!(!stderr.contains("s3cr3t"));
}

#[test]
fn write_modes_need_their_users() {
    assert_eq!(
        check_fails("secured_without_user.toml"),
        "tests/fixtures/config/secured_without_user.toml:9:14: pv[1].write_mode: write_mode \
         `secured` needs `user` (the key of a [users.KEY] table)\n\
         tests/fixtures/config/secured_without_user.toml:15:14: pv[2].write_mode: write_mode \
         `verified` needs two different users, but user and verifier are both `operator`\n\
         tests/fixtures/config/secured_without_user.toml:24:8: pv[3].user: unknown user \
         `nobody`: define it in a [users.nobody] table\n\
         tests/fixtures/config/secured_without_user.toml:32:12: pv[4].verifier: `verifier` \
         applies only to write_mode `verified`, not `secured`\n\
         tests/fixtures/config/secured_without_user.toml:37:14: pv[5].write_mode: `write_mode` \
         is set but the PV is not writable: add `writable = true`\n"
    );
}

#[test]
fn bad_limits_all_reported_at_once() {
    assert_eq!(
        check_fails("bad_limits.toml"),
        "tests/fixtures/config/bad_limits.toml:5:11: pv[1].display: display.low (10) is \
         greater than display.high (0)\n\
         tests/fixtures/config/bad_limits.toml:6:11: pv[1].control: control.low (5) is greater \
         than control.high (1)\n\
         tests/fixtures/config/bad_limits.toml:6:47: pv[1].control.min_step: min_step is -1: \
         it must not be negative\n\
         tests/fixtures/config/bad_limits.toml:7:15: pv[1].value_alarm: value_alarm.low (5) is \
         greater than value_alarm.high (3)\n\
         tests/fixtures/config/bad_limits.toml:7:59: pv[1].value_alarm.hihi: limit is NaN: \
         limits must be finite numbers\n\
         tests/fixtures/config/bad_limits.toml:13:11: pv[2].display: `display` applies only to \
         numeric types, not `string`\n\
         tests/fixtures/config/bad_limits.toml:19:11: pv[3].choices: a Boolean needs exactly 2 \
         choices (false first, then true), found 1\n"
    );
}

#[test]
fn type_and_tag_disagree() {
    assert_eq!(
        check_fails("array_mismatch.toml"),
        "tests/fixtures/config/array_mismatch.toml:4:8: pv[1].type: type `float64[]` is an \
         array, but tag `Line001.Profile` is not: write the tag as `Line001.Profile[]`\n\
         tests/fixtures/config/array_mismatch.toml:9:8: pv[2].type: tag `Line001.Profile[]` is \
         a whole array, but type `float64` is a scalar: write `float64[]`\n"
    );
}

#[test]
fn gateway_settings() {
    assert_eq!(
        check_fails("bad_gateway.toml"),
        "tests/fixtures/config/bad_gateway.toml:2:12: gateway.endpoint: endpoint \
         `localhost:5000` must start with `http://` or `https://`\n\
         tests/fixtures/config/bad_gateway.toml:3:11: gateway.ca_file: `ca_file` applies only \
         with TLS (an `https://` endpoint)\n\
         tests/fixtures/config/bad_gateway.toml:4:19: gateway.subscribe_chunk: subscribe_chunk \
         is 0, expected 1 to 100000\n\
         tests/fixtures/config/bad_gateway.toml:6:17: gateway.reconnect_max: reconnect_max \
         (100ms) is shorter than reconnect_initial (2s)\n\
         tests/fixtures/config/bad_gateway.toml:7:21: gateway.keepalive_timeout: must be longer \
         than zero\n"
    );
}

#[test]
fn duration_without_unit() {
    assert_eq!(
        check_fails("duration_without_unit.toml"),
        "tests/fixtures/config/duration_without_unit.toml:2:19: gateway.connect_timeout: a \
         duration needs a unit: write \"5000ms\" or \"5000s\", not 5000\n"
    );
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    assert_eq!(
        check_fails("syntax_error.toml"),
        "tests/fixtures/config/syntax_error.toml:6:13: pv[1].tag: invalid basic string, \
         expected `\"`\n"
    );
}

#[test]
fn missing_file() {
    let out = check("tests/fixtures/config/does_not_exist.toml");
    assert_eq!(out.status.code(), Some(EXIT_CONFIG));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "tests/fixtures/config/does_not_exist.toml: cannot read config file: no such file\n"
    );
}

/// Every shipped bridge config passes `check` and prints a table naming each of its PVs;
/// every shipped simulator Galaxy (`*-galaxy.toml`) loads in the simulator.
#[test]
fn every_shipped_config_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        if path.to_str().unwrap().ends_with("-galaxy.toml") {
            if let Err(e) = mxpva::sim::Galaxy::load(&path) {
                panic!("{}: {e}", path.display());
            }
            continue;
        }
        let rel = format!("config/{}", path.file_name().unwrap().to_str().unwrap());
        let out = check(&rel);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(0), "{rel}: {stderr}");
        assert!(stderr.is_empty(), "{rel}: {stderr}");
        assert!(stdout.contains("PV "), "{rel}: no table in\n{stdout}");
        seen += 1;
    }
    assert!(seen >= 2, "expected demo.toml and example.toml in config/");
}

#[test]
fn demo_config_maps_the_demo_pvs() {
    let out = check("config/demo.toml");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    for row in [
        "DEMO:Pump001:Speed ",
        "DEMO:Pump001:SpeedSP ",
        "DEMO:Pump001:Running ",
        "DEMO:Pump001:Mode ",
        "DEMO:Pump001:Starts ",
        "DEMO:Tank001:Level ",
        "DEMO:Line001:Profile ",
        "DEMO:Valve001:Position ",
    ] {
        assert!(stdout.contains(row), "{row} missing from\n{stdout}");
    }
}

#[test]
fn alarm_settings_every_problem_at_its_position() {
    let f = "tests/fixtures/config/bad_alarms.toml";
    let expected = [
        "3:20: alarms.returned_unacked: returned_unacked must be `none` or `minor`",
        "4:12: alarms.severity: SCHEME_epics",
        "7:12: alarms.priorities[2]: priorities 400 to 999 overlap alarms.priorities[1] (1 to 500)",
        "8:12: alarms.priorities[3]: from (900) is greater than to (100)",
        "9:20: alarms.priorities[4].to: priority 1200 is outside 0 to 999",
        "15:33: pv[1].alarms: alarm reference `Tank001` is not `Object.Alarm` (or \
         `Galaxy!Area.Object.Alarm`)",
        "16:18: pv[1].alarm_severity: SCHEME_Kind",
        "19:8: pv[2].name: PV name `T:Level:ACK` is the acknowledgement PV of pv[1] (`T:Level`): \
         rename one, change [alarms] ack_suffix, or set `acknowledge = false` on pv[1]",
        "24:11: alarm_pv[1].alarms: alarm `Tank001.Level.HiHi` is already used by pv[1].alarms, \
         at tests/fixtures/config/bad_alarms.toml:15:11",
        "24:46: alarm_pv[1].alarms: alarm reference `Pump 1.Fault` contains a space",
        "26:18: alarm_pv[1].alarm_severity: SCHEME_loud",
        "28:1: alarm_pv[2]: missing key `alarms` (the alarm references it shows)",
    ]
    .map(|l| {
        // The severity scheme's message names the word given and both schemes.
        let l = match l.split_once("SCHEME_") {
            Some((head, word)) => format!(
                "{head}unknown severity scheme `{word}`, expected `priority` (by priority \
                 band) or `kind` (HiHi and LoLo MAJOR, Hi and Lo MINOR, as an EPICS record)"
            ),
            None => l.to_string(),
        };
        format!("{f}:{l}\n")
    })
    .concat();
    assert_eq!(check_fails("bad_alarms.toml"), expected);
}

#[test]
fn alarm_names_and_suffix() {
    assert_eq!(
        check_fails("empty_ack_suffix.toml"),
        "tests/fixtures/config/empty_ack_suffix.toml:2:14: alarms.ack_suffix: ack_suffix is \
         empty: the acknowledgement PV would have the PV's own name\n"
    );
    assert_eq!(
        check_fails("bad_alarm_names.toml"),
        "tests/fixtures/config/bad_alarm_names.toml:2:9: alarms.table: PV name `ALARMS LIST` \
         contains a space: use ASCII letters, digits and `_-+:.;[]<>{}/`\n"
    );
}

#[test]
fn caps_out_of_range_name_the_key_and_the_range() {
    assert_eq!(
        check_fails("bad_caps.toml"),
        "tests/fixtures/config/bad_caps.toml:2:20: limits.max_array_length: max_array_length is 0, \
         expected 1 to 100000000\n\
         tests/fixtures/config/bad_caps.toml:3:19: limits.max_puts_per_pv: max_puts_per_pv is -3, \
         expected 1 to 100000000\n\
         tests/fixtures/config/bad_caps.toml:4:18: limits.max_table_rows: max_table_rows is \
         100000001, expected 1 to 100000000\n"
    );
}

/// Durations near `Duration::MAX` overflowed the link's clock arithmetic.
#[test]
fn durations_longer_than_a_day_are_refused() {
    assert_eq!(
        check_fails("huge_durations.toml"),
        "tests/fixtures/config/huge_durations.toml:2:21: gateway.reconnect_initial: \
         292271023045years 3months 23days 1h 15m 12s is longer than 24 hours, the longest accepted\n\
         tests/fixtures/config/huge_durations.toml:3:17: gateway.reconnect_max: \
         292271023045years 3months 23days 1h 15m 12s is longer than 24 hours, the longest accepted\n\
         tests/fixtures/config/huge_durations.toml:4:17: gateway.write_timeout: 1day 1h is longer \
         than 24 hours, the longest accepted\n"
    );
}
