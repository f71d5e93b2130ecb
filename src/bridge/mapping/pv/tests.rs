use super::*;

#[test]
fn an_alarm_before_the_first_data_change_keeps_the_pv_invalid() {
    let text = r#"
[gateway]
endpoint = "http://127.0.0.1:1"
[[pv]]
name = "Level"
tag = "Tank001.Level"
type = "float64"
"#;
    let config = config::Config::from_str_at(text, std::path::Path::new("pv_test.toml")).unwrap();
    let (events, _rx) = crate::pva::event_channel();
    let mut pv = MappedPv::new(config.pvs[0].clone(), &config.defaults, &events).unwrap();
    pv.sp_alarm = Some(Alarm::new(
        Severity::Major,
        AlarmStatus::Record,
        "HiHi alarm, unacknowledged (priority 100)",
    ));
    let a = pv.combined();
    assert_eq!(
            (a.severity, a.status, a.message.as_str()),
            (
                Severity::Invalid,
                AlarmStatus::Undefined,
                "waiting for initial data from System Platform; HiHi alarm, unacknowledged (priority 100)"
            )
        );
}
