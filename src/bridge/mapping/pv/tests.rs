use std::cell::RefCell;

use proptest::prelude::*;

use super::*;

thread_local! {
    /// The value and alarm of every update posted on this thread, in order.
    static POSTS: RefCell<Vec<(Option<NtValue>, Severity, AlarmStatus)>> =
        const { RefCell::new(Vec::new()) };
}

thread_local! {
    /// Whether each update posted on this thread carried its time's nanoseconds alone.
    static NANOS_ONLY: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
}

thread_local! {
    /// Whether each update posted on this thread carried the alarm fields, in order.
    static MARKED: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
}

fn take_marked() -> Vec<bool> {
    MARKED.with(|m| std::mem::take(&mut *m.borrow_mut()))
}

/// Called by `MappedPv::post` (tests only).
pub(super) fn record(update: &Update) {
    MARKED.with(|m| m.borrow_mut().push(update.alarm.is_some()));
    NANOS_ONLY.with(|m| m.borrow_mut().push(update.time_nanos_only));
    let (severity, status) = update
        .alarm
        .as_ref()
        .map_or((Severity::NoAlarm, AlarmStatus::None), |a| {
            (a.severity, a.status)
        });
    POSTS.with(|p| {
        p.borrow_mut()
            .push((update.value.clone(), severity, status))
    });
}

fn take_posts() -> Vec<(Option<NtValue>, Severity, AlarmStatus)> {
    POSTS.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// An open float64 PV with HIGH 10 / HIHI 20 limits, its first value posted.
fn limited_pv() -> MappedPv {
    let text = r#"
[gateway]
endpoint = "http://127.0.0.1:1"
[[pv]]
name = "Coalesce"
tag = "Tank001.Level"
type = "float64"
value_alarm = { high = 10.0, hihi = 20.0 }
"#;
    let config = config::Config::from_str_at(text, std::path::Path::new("pv_test.toml")).unwrap();
    let (events, _rx) = crate::pva::event_channel();
    let mut pv = MappedPv::new(config.pvs[0].clone(), &config.defaults, &events).unwrap();
    pv.sample(&MxValue::Double(0.0), Quality::GOOD, None, &[], false);
    pv.flush();
    take_posts();
    pv
}

fn values(posts: &[(Option<NtValue>, Severity, AlarmStatus)]) -> Vec<(f64, Severity)> {
    posts
        .iter()
        .map(|(v, s, _)| match v {
            Some(NtValue::Float64(x)) => (*x, *s),
            other => panic!("not a float64 value: {other:?}"),
        })
        .collect()
}

/// Issue 23: behind the gateway, a PV posts the latest of a run of samples with the same
/// alarm, and every sample whose alarm severity differs from the one before it.
#[test]
fn coalescing_keeps_the_latest_value_and_never_hides_an_alarm_change() {
    let mut pv = limited_pv();
    let mut coalesced = 0;
    // 1, 2, 3 (no alarm), 25 (HIHI), 5, 6 (no alarm), 15 (HIGH), Bad quality, 7.
    let samples: [(f64, Quality); 9] = [
        (1.0, Quality::GOOD),
        (2.0, Quality::GOOD),
        (3.0, Quality::GOOD),
        (25.0, Quality::GOOD),
        (5.0, Quality::GOOD),
        (6.0, Quality::GOOD),
        (15.0, Quality::GOOD),
        (16.0, Quality(0x00)),
        (7.0, Quality::GOOD),
    ];
    for (x, q) in samples {
        let taken = pv.sample(&MxValue::Double(x), q, None, &[], true);
        coalesced += usize::from(taken.coalesced);
    }
    pv.flush();
    let posted = values(&take_posts());
    let sev: Vec<Severity> = posted.iter().map(|p| p.1).collect();
    assert_eq!(
        posted.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![3.0, 25.0, 6.0, 15.0, 16.0, 7.0],
        "{posted:?}"
    );
    assert_eq!(
        sev,
        vec![
            Severity::NoAlarm,
            Severity::Major,
            Severity::NoAlarm,
            Severity::Minor,
            Severity::Invalid,
            Severity::NoAlarm
        ]
    );
    assert_eq!(coalesced, 3, "1, 2 and 5 were replaced");
}

/// Not behind: every sample is posted, in order.
#[test]
fn without_coalescing_every_sample_is_posted() {
    let mut pv = limited_pv();
    for x in [1.0, 2.0, 3.0] {
        let taken = pv.sample(&MxValue::Double(x), Quality::GOOD, None, &[], false);
        assert!(!taken.coalesced);
    }
    pv.flush();
    let posted = values(&take_posts());
    assert_eq!(
        posted,
        vec![
            (1.0, Severity::NoAlarm),
            (2.0, Severity::NoAlarm),
            (3.0, Severity::NoAlarm)
        ]
    );
}

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
    pv.set_sp_alarm(Some(Alarm::new(
        Severity::Major,
        AlarmStatus::Record,
        "HiHi alarm, unacknowledged (priority 100)",
    )));
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

/// Issue 23: a PV costs little beyond what pvxs needs. The config is shared (`Arc`) and
/// the parts most PVs never use (alarm parts, limits, the queues of its puts) are boxed
/// while unused; 1,080 bytes before, then 336 with the puts' queues inline.
#[test]
fn a_mapped_pv_stays_small() {
    let size = std::mem::size_of::<MappedPv>();
    assert!(size <= 272, "MappedPv is {size} bytes");
}

/// An audited put's previous value comes from the bridge's last post instead of a copy of
/// the PV read back from pvxs: it is what pvxs shows, and nothing while a data change is
/// staged, the PV shows no value of System Platform's, or it is not writable.
#[test]
fn the_value_shown_is_what_pvxs_shows_or_nothing() {
    let text = r#"
[gateway]
endpoint = "http://127.0.0.1:1"
[defaults]
writable = true
[[pv]]
name = "Level"
tag = "Tank001.Level"
type = "float64"
[[pv]]
name = "Mode"
tag = "Tank001.Mode"
"#;
    let config = config::Config::from_str_at(text, std::path::Path::new("pv_test.toml")).unwrap();
    let (events, _rx) = crate::pva::event_channel();
    let read_back = |pv: &MappedPv| pv.pv.current().ok().and_then(|u| u.value);
    let mut pv = MappedPv::new(config.pvs[0].clone(), &config.defaults, &events).unwrap();
    // Open, INVALID, no value of System Platform's yet.
    assert_eq!(pv.value_shown(), None);
    pv.sample(&MxValue::Double(4.5), Quality::GOOD, None, &[], false);
    assert_eq!(pv.value_shown(), None, "staged, not posted yet");
    pv.flush();
    assert_eq!(pv.value_shown(), Some(NtValue::Float64(4.5)));
    assert_eq!(pv.value_shown(), read_back(&pv));
    // An Int32 attribute behind a float64 PV: the value as served.
    pv.sample(&MxValue::Int32(7), Quality::GOOD, None, &[], false);
    pv.flush();
    assert_eq!(pv.value_shown(), Some(NtValue::Float64(7.0)));
    assert_eq!(pv.value_shown(), read_back(&pv));
    // A value that cannot be served: the PV keeps its last one, and the bridge knows none.
    pv.sample(
        &MxValue::String("x".into()),
        Quality::GOOD,
        None,
        &[],
        false,
    );
    pv.flush();
    assert_eq!(pv.value_shown(), None);
    // No longer writable: no longer kept.
    pv.sample(&MxValue::Double(1.0), Quality::GOOD, None, &[], false);
    pv.flush();
    assert_eq!(pv.value_shown(), Some(NtValue::Float64(1.0)));
    let mut read_only = (*config.pvs[0]).clone();
    read_only.write = None;
    pv.reconfigure(Arc::new(read_only), false);
    assert_eq!(pv.value_shown(), None);
    // Of no configured type: served as the attribute's, re-opened when that changes.
    let mut pv = MappedPv::new(config.pvs[1].clone(), &config.defaults, &events).unwrap();
    pv.sample(&MxValue::Int32(3), Quality::GOOD, None, &[], false);
    pv.flush();
    assert_eq!(pv.value_shown(), Some(NtValue::Int32(3)));
    assert_eq!(pv.value_shown(), read_back(&pv));
    pv.sample(
        &MxValue::String("auto".into()),
        Quality::GOOD,
        None,
        &[],
        false,
    );
    pv.flush();
    assert_eq!(pv.value_shown(), Some(NtValue::String("auto".into())));
    assert_eq!(pv.value_shown(), read_back(&pv));
    // Closed (an on-demand PV nobody watches): read back, not known here.
    pv.close_unwatched();
    assert_eq!(pv.value_shown(), None);
}

/// Every served PV holds one record, boxed: 152 bytes asked is a 160-byte malloc chunk
/// (issue 23: memory per PV; it was 240, a 256-byte chunk).
#[test]
fn a_record_stays_small() {
    assert_eq!(
        std::mem::size_of::<crate::bridge::values::stamp::Stamps>(),
        16
    );
    assert!(std::mem::size_of::<MappedPv>() <= 152);
}

/// Issue 23: a post leaves the alarm fields out while both the alarm last posted and its
/// own are plain Good (a monitor's copy keeps them); any other alarm is posted, and so is
/// the first Good after it.
#[test]
fn a_good_alarm_is_posted_once_until_the_alarm_changes() {
    let mut pv = limited_pv();
    take_marked();
    let bad = Quality(0x00);
    let good = Quality::GOOD;
    let samples = [
        (1.0, good),
        (2.0, good),
        (25.0, good),
        (26.0, good),
        (3.0, good),
        (4.0, good),
        (5.0, bad),
        (6.0, good),
        (7.0, good),
    ];
    for (x, q) in samples {
        pv.sample(&MxValue::Double(x), q, None, &[], false);
        pv.flush();
    }
    let sev: Vec<Severity> = values(&take_posts()).iter().map(|p| p.1).collect();
    assert_eq!(
        take_marked(),
        vec![false, false, true, true, true, false, true, true, false],
        "severities posted: {sev:?}"
    );
    // A re-open posts the alarm whole again, and the next Good is left out.
    let ty = pv.pv.shape().map(|s| s.pv_type).unwrap();
    let alarm = pv.combined();
    pv.open(ty, Some(NtValue::Float64(7.0)), alarm, TimeStamp::now());
    take_marked();
    for x in [8.0, 9.0] {
        pv.sample(&MxValue::Double(x), good, None, &[], false);
        pv.flush();
    }
    assert_eq!(take_marked(), vec![true, false]);
}

fn take_nanos_only() -> Vec<bool> {
    NANOS_ONLY.with(|m| std::mem::take(&mut *m.borrow_mut()))
}

/// Issue 23: a data change within the second the PV holds posts its nanoseconds alone;
/// the first post after a re-open, a new second, or the bridge's own clock crossing one,
/// carries the whole time.
#[test]
fn a_time_within_the_held_second_posts_its_nanoseconds_alone() {
    use std::time::{Duration, UNIX_EPOCH};
    let mut pv = limited_pv();
    let at = |s: u64, ns: u32| Some(UNIX_EPOCH + Duration::new(s, ns));
    take_nanos_only();
    let times = [
        at(4_000_000_000, 1),
        at(4_000_000_000, 500),
        at(4_000_000_000, 999_999_999),
        at(4_000_000_001, 0),
        at(4_000_000_001, 7),
    ];
    for t in times {
        pv.sample(&MxValue::Double(1.0), Quality::GOOD, t, &[], false);
        pv.flush();
    }
    assert_eq!(take_nanos_only(), vec![false, true, true, false, true]);
    let held = pv.pv.current().unwrap().time.unwrap();
    assert_eq!((held.seconds, held.nanos), (4_000_000_001, 7));
    let ty = pv.pv.shape().map(|s| s.pv_type).unwrap();
    let alarm = pv.combined();
    pv.open(ty, Some(NtValue::Float64(7.0)), alarm, TimeStamp::now());
    take_nanos_only();
    // The re-open posted the bridge's clock (before 4e9 s): the source's next time in
    // that second is still whole, the one after it is not.
    for t in [at(4_000_000_001, 9), at(4_000_000_001, 10)] {
        pv.sample(&MxValue::Double(2.0), Quality::GOOD, t, &[], false);
        pv.flush();
    }
    assert_eq!(take_nanos_only(), vec![false, true]);
}

/// One step of a PV's history for the time check below.
#[derive(Debug, Clone)]
enum TimeStep {
    /// A data change whose source time moves by `dt` ns (none: no source time).
    Change { dt: Option<i64>, good: bool },
    /// A buffered data change of `n` samples, 1 ms apart from the source time on.
    Batch { n: usize, dt: i64 },
    /// An alarm of the bridge (its own clock) on the open PV.
    Alarm,
    /// A re-open (a retype): the bridge's clock.
    Reopen,
}

fn time_step() -> impl Strategy<Value = TimeStep> {
    prop_oneof![
        6 => (proptest::option::weighted(0.85, -2_000_000_000i64..3_000_000_000), any::<bool>())
            .prop_map(|(dt, good)| TimeStep::Change { dt, good }),
        2 => (1usize..5, -1_500_000_000i64..2_000_000_000).prop_map(|(n, dt)| TimeStep::Batch { n, dt }),
        1 => Just(TimeStep::Alarm),
        1 => Just(TimeStep::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Issue 23: whatever order of source times, own times, batches and re-opens, the
    /// time pvxs holds for the PV after each step is the last time the PV posted (a
    /// post of the nanoseconds alone never leaves it with another second).
    #[test]
    fn the_time_a_pv_holds_is_the_last_it_posted(steps in proptest::collection::vec(time_step(), 1..40)) {
        use std::time::{Duration, SystemTime};
        let mut pv = limited_pv();
        // Source times start near the bridge's clock, so that both orders occur.
        let mut source: i128 = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128)
            - 1_000_000_000;
        let at = |ns: i128| std::time::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64);
        let mut x = 0.0;
        for step in &steps {
            x += 1.0;
            match *step {
                TimeStep::Change { dt, good } => {
                    let t = dt.map(|dt| {
                        source += i128::from(dt);
                        at(source)
                    });
                    let q = if good { Quality::GOOD } else { Quality(0x00) };
                    pv.sample(&MxValue::Double(x), q, t, &[], false);
                    pv.flush();
                }
                TimeStep::Batch { n, dt } => {
                    source += i128::from(dt);
                    let mut batch = Vec::new();
                    for k in 0..n {
                        let t = at(source + 1_000_000 * k as i128);
                        pv.buffered_sample(&MxValue::Double(x + k as f64), Quality::GOOD, Some(t), &[], &mut batch);
                    }
                    for update in batch.drain(..) {
                        pv.post_one(update);
                    }
                    pv.batch_posted();
                    pv.flush();
                }
                TimeStep::Alarm => pv.serve_without_value(Alarm::new(Severity::Minor, AlarmStatus::Device, "test alarm")),
                TimeStep::Reopen => {
                    let ty = pv.pv.shape().map(|s| s.pv_type).unwrap();
                    let alarm = pv.combined();
                    pv.open(ty, Some(NtValue::Float64(x)), alarm, TimeStamp::now());
                }
            }
            let held = pv.pv.current().unwrap().time;
            prop_assert_eq!(held, pv.stamps().last_time(), "after {:?}", step);
        }
        take_posts();
        take_marked();
        take_nanos_only();
    }
}
