//! In-process checks of the pvxs shim: open, post, read back, type checks.
use mxpva::pva::*;

#[test]
fn post_and_read_back_every_field() {
    let (events, _rx) = event_channel();
    let server = Server::new(&ServerConfig::isolated()).unwrap();
    let mut pv = SharedPv::new("T:F64", Access::ReadOnly, &events).unwrap();
    let initial = Update::value(NtValue::Float64(1.5))
        .with_alarm(Alarm::new(Severity::Minor, AlarmStatus::Device, "sensor"))
        .with_time(TimeStamp {
            seconds: 1_700_000_000,
            nanos: 123,
            user_tag: 7,
        })
        .with_display(Display {
            limit_low: -10.0,
            limit_high: 10.0,
            description: "desc".into(),
            units: "rpm".into(),
            precision: 3,
            form: DisplayForm::Engineering,
        })
        .with_control(Control {
            limit_low: -5.0,
            limit_high: 5.0,
            min_step: 0.5,
        });
    pv.open(PvType::Scalar(ScalarType::Float64), &initial)
        .unwrap();
    server.add_pv(&pv).unwrap();
    server.start().unwrap();
    assert_eq!(pv.current().unwrap().display, initial.display);
    pv.post(&Update::value(NtValue::Float64(2.5))).unwrap();
    let now = pv.current().unwrap();
    assert_eq!(now.value, Some(NtValue::Float64(2.5)));
    assert_eq!(now.alarm, initial.alarm, "unposted fields keep their value");
    assert_eq!(now.control, initial.control);
    let err = pv.post(&Update::value(NtValue::Int32(1))).unwrap_err();
    assert!(
        err.to_string()
            .contains("value of type int posted to a PV of type double"),
        "{err}"
    );
    let err = pv
        .post(&Update::default().with_value_alarm(ValueAlarm::default()))
        .unwrap_err();
    assert!(err.to_string().contains("valueAlarm"), "{err}");
    let info = server.info().unwrap();
    assert_ne!(info.tcp_port, 0);
    assert_eq!(info.interfaces, vec!["127.0.0.1".to_string()]);
}

#[test]
fn client_env_names_the_isolated_server() {
    let server = Server::new(&ServerConfig::isolated()).unwrap();
    server.start().unwrap();
    let info = server.info().unwrap();
    let env: std::collections::HashMap<_, _> = info.client_env.into_iter().collect();
    assert_eq!(env["EPICS_PVA_ADDR_LIST"], "127.0.0.1");
    assert_eq!(env["EPICS_PVA_AUTO_ADDR_LIST"], "NO");
    assert_eq!(env["EPICS_PVA_BROADCAST_PORT"], info.udp_port.to_string());
    assert_eq!(env["EPICS_PVA_SERVER_PORT"], info.tcp_port.to_string());
}

#[test]
fn posting_to_a_closed_pv_is_an_error_not_a_crash() {
    let (events, _rx) = event_channel();
    let mut pv = SharedPv::new("T:CLOSED", Access::ReadOnly, &events).unwrap();
    let err = pv.post(&Update::value(NtValue::Float64(1.0))).unwrap_err();
    assert_eq!(err.to_string(), "T:CLOSED: PV is not open");
    pv.open(
        PvType::Scalar(ScalarType::Float64),
        &Update::value(NtValue::Float64(0.0)),
    )
    .unwrap();
    let err = pv
        .open(PvType::Scalar(ScalarType::Float64), &Update::default())
        .unwrap_err();
    assert!(err.to_string().contains("already open"), "{err}");
    pv.close().unwrap();
    let err = pv.post(&Update::value(NtValue::Float64(1.0))).unwrap_err();
    assert_eq!(err.to_string(), "T:CLOSED: PV is not open");
}
