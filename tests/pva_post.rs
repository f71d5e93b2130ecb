//! The post path of the pvxs shim: PVs of one shape share one prototype whose fields are
//! looked up once and one scratch value every post is built in (cpp/value.h `Prototype`).
//! These check that nothing of one post leaks into another (another PV's, or the next of
//! the same PV), that every type round-trips through `post` and `post_owned`, and that a
//! PV re-opened as another type posts through the new type's fields.
use mxpva::pva::*;
use proptest::prelude::*;

fn open(
    server: &Server,
    events: &EventSender,
    name: &str,
    ty: PvType,
    initial: &Update,
) -> SharedPv {
    let mut pv = SharedPv::new(name, Access::ReadOnly, events).unwrap();
    pv.open(ty, initial).unwrap();
    server.add_pv(&pv).unwrap();
    pv
}

fn time(seconds: i64, nanos: i32) -> TimeStamp {
    TimeStamp {
        seconds,
        nanos,
        user_tag: 0,
    }
}

fn display(description: &str) -> Display {
    Display {
        limit_low: -1.0,
        limit_high: 1.0,
        description: description.into(),
        units: "m".into(),
        precision: 2,
        form: DisplayForm::Decimal,
    }
}

#[test]
fn posts_to_pvs_of_one_shape_stay_with_their_pv() {
    let (events, _rx) = event_channel();
    let server = Server::new(&ServerConfig::isolated()).unwrap();
    let ty = PvType::Scalar(ScalarType::Float64);
    let a0 = Update::value(NtValue::Float64(1.0))
        .with_alarm(Alarm::new(Severity::NoAlarm, AlarmStatus::None, "Good"))
        .with_time(time(100, 1))
        .with_display(display("A"));
    let b0 = Update::value(NtValue::Float64(2.0))
        .with_alarm(Alarm::new(Severity::Major, AlarmStatus::Device, "B alarm"))
        .with_time(time(200, 2))
        .with_display(display("B"));
    let a = open(&server, &events, "T:A", ty, &a0);
    let b = open(&server, &events, "T:B", ty, &b0);
    server.start().unwrap();

    // A post to A marks value, alarm, time and display in the shared scratch value.
    let a1 = Update::value(NtValue::Float64(10.0))
        .with_alarm(Alarm::new(Severity::Minor, AlarmStatus::Driver, "A moved"))
        .with_time(time(101, 5))
        .with_display(display("A again"));
    a.post_owned(a1.clone()).unwrap();
    // A post of the time alone to B must not carry any of that.
    b.post_owned(Update::default().with_time(time(201, 7)))
        .unwrap();
    let b_now = b.current().unwrap();
    assert_eq!(b_now.value, b0.value, "B's value is its own");
    assert_eq!(b_now.alarm, b0.alarm, "B's alarm is its own");
    assert_eq!(b_now.display, b0.display, "B's display is its own");
    assert_eq!(b_now.time, Some(time(201, 7)));
    let a_now = a.current().unwrap();
    assert_eq!(
        (a_now.value, a_now.alarm, a_now.time, a_now.display),
        (a1.value, a1.alarm, a1.time, a1.display)
    );

    // And the next post to A itself starts clean: an alarm alone keeps A's value and time.
    let alarm = Alarm::new(Severity::Invalid, AlarmStatus::Undefined, "lost");
    a.post(&Update::default().with_alarm(alarm.clone()))
        .unwrap();
    let a_now = a.current().unwrap();
    assert_eq!(a_now.value, Some(NtValue::Float64(10.0)));
    assert_eq!(a_now.time, Some(time(101, 5)));
    assert_eq!(a_now.alarm, Some(alarm));
}

#[test]
fn a_failed_post_leaves_the_next_post_clean() {
    let (events, _rx) = event_channel();
    let server = Server::new(&ServerConfig::isolated()).unwrap();
    let ty = PvType::Scalar(ScalarType::Int32);
    let initial = Update::value(NtValue::Int32(1)).with_time(time(1, 0));
    let mut closed = open(&server, &events, "T:CLOSED", ty, &initial);
    let live = open(&server, &events, "T:LIVE", ty, &initial);
    server.start().unwrap();
    closed.close().unwrap();
    // pvxs refuses this one after the shim filled the shared scratch value.
    let err = closed
        .post_owned(Update::value(NtValue::Int32(99)).with_alarm(Alarm::new(
            Severity::Major,
            AlarmStatus::Db,
            "x",
        )))
        .unwrap_err();
    assert_eq!(err.to_string(), "T:CLOSED: PV is not open");
    live.post_owned(Update::default().with_time(time(2, 0)))
        .unwrap();
    let now = live.current().unwrap();
    assert_eq!(
        now.value,
        Some(NtValue::Int32(1)),
        "the refused value leaked"
    );
    assert_eq!(now.alarm, Some(Alarm::none()), "the refused alarm leaked");
}

#[test]
fn a_pv_reopened_as_another_type_posts_through_the_new_fields() {
    let (events, _rx) = event_channel();
    let server = Server::new(&ServerConfig::isolated()).unwrap();
    let scalar = PvType::Scalar(ScalarType::Float64);
    let array = PvType::Array(ScalarType::Int16);
    let mut pv = open(
        &server,
        &events,
        "T:RETYPE",
        scalar,
        &Update::value(NtValue::Float64(1.5)).with_display(display("d")),
    );
    // Another PV keeps the old shape, to show both prototypes stay in use.
    let other = open(
        &server,
        &events,
        "T:KEEP",
        scalar,
        &Update::value(NtValue::Float64(0.0)).with_display(display("k")),
    );
    server.start().unwrap();
    pv.close().unwrap();
    pv.open(array, &Update::value(NtValue::Int16Array(vec![1, 2])))
        .unwrap();
    let update = Update::value(NtValue::Int16Array(vec![i16::MIN, 0, i16::MAX]))
        .with_alarm(Alarm::new(Severity::Minor, AlarmStatus::Record, "retyped"))
        .with_time(time(300, 3));
    pv.post_owned(update.clone()).unwrap();
    let now = pv.current().unwrap();
    assert_eq!(
        (now.value, now.alarm, now.time, now.display),
        (update.value, update.alarm, update.time, None)
    );
    let err = pv.post(&Update::value(NtValue::Float64(2.0))).unwrap_err();
    assert!(
        err.to_string().contains("posted to a PV of type short[]"),
        "{err}"
    );
    other
        .post_owned(Update::value(NtValue::Float64(4.25)))
        .unwrap();
    assert_eq!(other.current().unwrap().value, Some(NtValue::Float64(4.25)));
}

/// Every PV type with a generated value: (type, value).
fn any_value() -> impl Strategy<Value = NtValue> {
    use proptest::collection::vec;
    use NtValue as V;
    let f32s = any::<f32>().prop_filter("NaN never compares equal", |x| !x.is_nan());
    let f64s = any::<f64>().prop_filter("NaN never compares equal", |x| !x.is_nan());
    let n = 0..40usize;
    prop_oneof![
        any::<bool>().prop_map(V::Bool),
        any::<i8>().prop_map(V::Int8),
        any::<i16>().prop_map(V::Int16),
        any::<i32>().prop_map(V::Int32),
        any::<i64>().prop_map(V::Int64),
        any::<u8>().prop_map(V::UInt8),
        any::<u16>().prop_map(V::UInt16),
        any::<u32>().prop_map(V::UInt32),
        any::<u64>().prop_map(V::UInt64),
        f32s.clone().prop_map(V::Float32),
        f64s.clone().prop_map(V::Float64),
        any::<String>().prop_map(V::String),
        vec(any::<bool>(), n.clone()).prop_map(V::BoolArray),
        vec(any::<i8>(), n.clone()).prop_map(V::Int8Array),
        vec(any::<i16>(), n.clone()).prop_map(V::Int16Array),
        vec(any::<i32>(), n.clone()).prop_map(V::Int32Array),
        vec(any::<i64>(), n.clone()).prop_map(V::Int64Array),
        vec(any::<u8>(), n.clone()).prop_map(V::UInt8Array),
        vec(any::<u16>(), n.clone()).prop_map(V::UInt16Array),
        vec(any::<u32>(), n.clone()).prop_map(V::UInt32Array),
        vec(any::<u64>(), n.clone()).prop_map(V::UInt64Array),
        vec(f32s, n.clone()).prop_map(V::Float32Array),
        vec(f64s, n.clone()).prop_map(V::Float64Array),
        vec(any::<String>(), n).prop_map(V::StringArray),
        (0..3i32).prop_map(V::Enum),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Two generated values posted in turn to a PV of their type, the first through
    /// `post_owned` and the second through `post`, each with its own alarm and time,
    /// read back exactly.
    #[test]
    fn generated_values_read_back_exactly(
        (first, second) in any_value().prop_flat_map(|v| {
            let ty = v.pv_type();
            (Just(v), any_value().prop_filter("same type", move |w| w.pv_type() == ty))
        }),
        message in ".{0,40}",
        seconds in any::<i32>(),
        nanos in 0..1_000_000_000i32,
    ) {
        let (events, _rx) = event_channel();
        let mut pv = SharedPv::new("T:GEN", Access::ReadOnly, &events).unwrap();
        let ty = first.pv_type();
        let mut initial = Update::value(first.clone());
        if ty == PvType::Enum {
            initial = initial.with_choices(["a", "b", "c"]);
        }
        pv.open(ty, &initial).unwrap();
        let alarm = Alarm::new(Severity::Major, AlarmStatus::Client, message);
        let t = time(seconds.into(), nanos);
        pv.post_owned(Update::value(first.clone()).with_alarm(alarm.clone())).unwrap();
        let now = pv.current().unwrap();
        prop_assert_eq!(now.value, Some(first));
        prop_assert_eq!(now.alarm, Some(alarm.clone()));
        pv.post(&Update::value(second.clone()).with_time(t)).unwrap();
        let now = pv.current().unwrap();
        prop_assert_eq!(now.value, Some(second));
        prop_assert_eq!(now.alarm, Some(alarm));
        prop_assert_eq!(now.time, Some(t));
    }
}
