//! Unit tests of the alarm side.

use super::state::*;
use super::*;
use crate::bridge::mapping::registry::Registry;
use crate::config::{self, AlarmPvType, SeverityScheme};
use crate::gateway::*;
use crate::pva::*;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::mpsc;

#[test]
fn short_references() {
    assert_eq!(
        short_reference("Galaxy!Area001.Tank001.Level.HiHi", "Tank001"),
        "Tank001.Level.HiHi"
    );
    assert_eq!(
        short_reference("Galaxy!Area001.Pump001.PumpFault", ""),
        "Pump001.PumpFault"
    );
    assert_eq!(
        short_reference("Tank001.PVHiAlarm", "Tank001"),
        "Tank001.PVHiAlarm"
    );
}

fn entry(name: &str, state: AlarmState, priority: i32) -> Entry {
    Entry {
        reference: format!("Galaxy!Area.Tank001.Level.{name}"),
        short: format!("Tank001.Level.{name}"),
        alarm_type: name.into(),
        state,
        priority,
        raised_at: None,
        acked_at: None,
        operator: String::new(),
        comment: String::new(),
        value: String::new(),
        limit: String::new(),
        owner: None,
    }
}

#[test]
fn the_most_urgent_alarm_of_a_severity_is_named_first() {
    use AlarmState::*;
    let text = "[gateway]\nendpoint = \"http://127.0.0.1:1\"\n\
                [[pv]]\nname = \"L\"\ntag = \"Tank001.Level\"\n";
    let cfg = config::Config::from_str_at(text, std::path::Path::new("a.toml"))
        .unwrap()
        .alarms;
    // By default priorities up to 500 are MAJOR, 600 and on MINOR.
    let (a, b, c, d) = (
        entry("A", AckAlm, 10),
        entry("B", UnackAlm, 200),
        entry("C", UnackAlm, 50),
        entry("D", UnackAlm, 700),
    );
    let part = part_of(&cfg, SeverityScheme::Priority, &[&a, &b, &c, &d]).unwrap();
    assert_eq!(
        (part.severity, part.status),
        (Severity::Major, AlarmStatus::Record)
    );
    assert_eq!(
        part.message,
        "C alarm, unacknowledged (priority 50); B alarm, unacknowledged (priority 200); \
         A alarm, acknowledged (priority 10); D alarm, unacknowledged (priority 700)"
    );
    assert_eq!(
        part_of(&cfg, SeverityScheme::Priority, &[&b, &c])
            .unwrap()
            .message,
        "C alarm, unacknowledged (priority 50); B alarm, unacknowledged (priority 200)"
    );
    assert!(part_of(&cfg, SeverityScheme::Priority, &[]).is_none());
}

#[tokio::test]
async fn a_flood_of_transitions_is_taken_as_one_batch() {
    // The test is the feed task.
    let (mut alarms, tx) = fed_by_test("");
    let transition = |i: usize, state| {
        raise(
            &format!("Galaxy!Area.Tank{}.Level.HiHi", i % 10),
            100,
            state,
        )
    };
    tx.send(COMPLETE).unwrap();
    for i in 1..1000 {
        tx.send(transition(i, AlarmState::UnackAlm)).unwrap();
    }
    let first = alarms.feed.recv().await.unwrap();
    assert_eq!(
        alarms.on_batch(first, &mut Registry::default(), &mut Vec::new()),
        1000
    );
    assert_eq!(alarms.active.len(), 10);
    assert!(alarms.feed.try_recv().is_err(), "all taken");
    // Nothing queued: a batch of one.
    assert_eq!(
        alarms.on_batch(
            transition(0, AlarmState::AckAlm),
            &mut Registry::default(),
            &mut Vec::new()
        ),
        1
    );
}

#[test]
fn the_worst_state_is_the_value_of_an_alarm_pv() {
    use AlarmState::*;
    assert_eq!(own_index([UnackRtn, AckAlm].into_iter()), 2);
    assert_eq!(own_index([UnackRtn, UnackAlm, AckAlm].into_iter()), 1);
    assert_eq!(own_index([UnackRtn].into_iter()), 3);
    assert_eq!(own_index([].into_iter()), 0);
}

/// The alarm side of a bridge with `extra` config, fed by the test.
fn fed_by_test(extra: &str) -> (Alarms, mpsc::UnboundedSender<FeedMsg>) {
    let text = format!(
        "[gateway]\nendpoint = \"http://127.0.0.1:1\"\n{extra}\n\
         [[pv]]\nname = \"L\"\ntag = \"Tank001.Level\"\n"
    );
    let config = config::Config::from_str_at(&text, std::path::Path::new("a.toml")).unwrap();
    let server = Arc::new(Server::new(&crate::pva::ServerConfig::isolated()).unwrap());
    let (events, _rx) = crate::pva::event_channel();
    let opts = ClientOptions::plaintext("127.0.0.1:1");
    let mut alarms = Alarms::new(&config, &opts, server, &events, &Registry::default()).unwrap();
    alarms.task.take().unwrap().abort();
    let (tx, rx) = mpsc::unbounded_channel();
    alarms.feed = rx;
    (alarms, tx)
}

fn raise(reference: &str, priority: i32, state: AlarmState) -> FeedMsg {
    FeedMsg::Item(AlarmFeedItem::Transition(AlarmTransition {
        reference: reference.into(),
        source_object: String::new(),
        alarm_type: "HiHi".into(),
        kind: AlarmTransitionKind::Raise,
        state,
        priority,
        raised_at: None,
        at: None,
        operator: String::new(),
        comment: String::new(),
        category: String::new(),
        description: String::new(),
        current_value: None,
        limit_value: None,
    }))
}

const COMPLETE: FeedMsg = FeedMsg::Item(AlarmFeedItem::SnapshotComplete {
    active_alarm_count: 0,
});

#[tokio::test]
async fn past_max_alarms_raises_are_not_held_and_the_table_says_so() {
    let (mut alarms, _tx) = fed_by_test("[limits]\nmax_alarms = 5");
    let mut dirty = Vec::new();
    alarms.on_batch(COMPLETE, &mut Registry::default(), &mut dirty);
    assert_eq!(alarms.table_alarm(0).severity, Severity::NoAlarm);
    for i in 0..8 {
        let r = format!("Galaxy!Area.Tank{i}.Level.HiHi");
        alarms.on_batch(
            raise(&r, 100, AlarmState::UnackAlm),
            &mut Registry::default(),
            &mut dirty,
        );
    }
    assert_eq!(alarms.active.len(), 5, "held up to the cap");
    let a = alarms.table_alarm(0);
    assert_eq!(
        (a.severity, a.status, a.message.as_str()),
        (
            Severity::Minor,
            AlarmStatus::Conf,
            "3 alarm raises not held: more than 5 active alarms ([limits] max_alarms)"
        )
    );
    // Alarms held still move, and one that leaves makes room.
    let held = "Galaxy!Area.Tank0.Level.HiHi";
    alarms.on_batch(
        raise(held, 100, AlarmState::AckRtn),
        &mut Registry::default(),
        &mut dirty,
    );
    assert_eq!(alarms.active.len(), 4);
    alarms.on_batch(
        raise("Galaxy!Area.Tank9.Level.HiHi", 100, AlarmState::UnackAlm),
        &mut Registry::default(),
        &mut dirty,
    );
    assert_eq!(alarms.active.len(), 5);
    // A snapshot that fits clears the report.
    alarms.on_batch(COMPLETE, &mut Registry::default(), &mut dirty);
    assert_eq!(alarms.table_alarm(0).severity, Severity::NoAlarm);
    // One that does not holds the first five and says how many it left.
    for i in 0..7 {
        let active = ActiveAlarm {
            reference: format!("Galaxy!Area.Pump{i}.Fault"),
            source_object: String::new(),
            alarm_type: "Discrete".into(),
            state: AlarmState::UnackAlm,
            priority: 100,
            raised_at: None,
            last_transition_at: None,
            operator: String::new(),
            comment: String::new(),
            category: String::new(),
            description: String::new(),
            current_value: None,
            limit_value: None,
        };
        alarms.on_batch(
            FeedMsg::Item(AlarmFeedItem::Active(active)),
            &mut Registry::default(),
            &mut dirty,
        );
    }
    alarms.on_batch(COMPLETE, &mut Registry::default(), &mut dirty);
    assert_eq!(alarms.active.len(), 5);
    assert!(
        alarms
            .table_alarm(0)
            .message
            .starts_with("2 alarm raises not held"),
        "{:?}",
        alarms.table_alarm(0)
    );
}

#[tokio::test]
async fn the_table_shows_the_most_urgent_max_table_rows_and_counts_the_rest() {
    let (mut alarms, _tx) = fed_by_test("[limits]\nmax_table_rows = 3");
    let mut dirty = Vec::new();
    alarms.on_batch(COMPLETE, &mut Registry::default(), &mut dirty);
    for (i, priority) in [700, 5, 300, 900, 50, 400].into_iter().enumerate() {
        let r = format!("Galaxy!Area.Tank{i}.Level.HiHi");
        alarms.on_batch(
            raise(&r, priority, AlarmState::UnackAlm),
            &mut Registry::default(),
            &mut dirty,
        );
    }
    let (columns, left_out) = Alarms::rows(
        &alarms.active,
        &Registry::default(),
        &[],
        alarms.max_table_rows,
    );
    assert_eq!(left_out, 3);
    let NtValue::Int32Array(priorities) = &columns[3] else {
        panic!("the priority column: {columns:?}");
    };
    assert_eq!(priorities, &[5, 50, 300]);
    let a = alarms.table_alarm(left_out);
    assert_eq!(
        (a.severity, a.message.as_str()),
        (
            Severity::NoAlarm,
            "3 more alarms not shown: the table shows the 3 most urgent ([limits] max_table_rows)"
        )
    );
    // Every row fits: nothing to say.
    assert_eq!(
        Alarms::rows(&alarms.active, &Registry::default(), &[], 6).1,
        0
    );
}

#[test]
fn under_the_kind_scheme_hi_is_minor_and_hihi_major_whatever_the_priority() {
    let text = "[gateway]\nendpoint = \"http://127.0.0.1:1\"\n\
                [alarms]\nseverity = \"kind\"\n\
                [[pv]]\nname = \"L\"\ntag = \"Tank001.Level\"\n";
    let cfg = config::Config::from_str_at(text, std::path::Path::new("a.toml"))
        .unwrap()
        .alarms;
    assert_eq!(cfg.severity, SeverityScheme::Kind);
    let mut hi = entry("Hi", AlarmState::UnackAlm, 500);
    let hihi = entry("HiHi", AlarmState::UnackAlm, 200);
    let severity = |e: &Entry, s| e.part(&cfg, s).severity;
    assert_eq!(severity(&hi, SeverityScheme::Kind), Severity::Minor);
    assert_eq!(severity(&hihi, SeverityScheme::Kind), Severity::Major);
    // By priority both are MAJOR (1 to 500).
    assert_eq!(severity(&hi, SeverityScheme::Priority), Severity::Major);
    assert_eq!(severity(&hihi, SeverityScheme::Priority), Severity::Major);
    // A kind `kind` does not know goes by its priority band.
    hi.alarm_type = "SPC".into();
    hi.short = "Tank001.Level.Drift".into();
    hi.priority = 700;
    assert_eq!(severity(&hi, SeverityScheme::Kind), Severity::Minor);
    hi.priority = 100;
    assert_eq!(severity(&hi, SeverityScheme::Kind), Severity::Major);
}

/// Issue 21, defect 3, for an `[[alarm_pv]]`: re-opened by a type change while System
/// Platform's clock is ahead, it posted at the bridge's clock, back from its last time.
#[tokio::test]
async fn an_alarm_pv_re_opened_by_a_type_change_continues_from_its_last_time() {
    let own = |ty: &str| {
        format!("[[alarm_pv]]\nname = \"Pump:Fault\"\nalarms = [\"Pump001.PumpFault\"]\ntype = \"{ty}\"\n")
    };
    let (mut alarms, _tx) = fed_by_test(&own("enum"));
    let ahead = SystemTime::now() + std::time::Duration::from_secs(20);
    alarms.post_own(0, 1, None, Some(ahead));
    let time = |a: &Alarms| {
        let t = a.own[0].pv.current().unwrap().time.unwrap();
        (t.seconds, t.nanos)
    };
    let last = time(&alarms);
    let t = TimeStamp::from(ahead);
    assert_eq!(
        last,
        (t.seconds, t.nanos),
        "the transition's time is posted"
    );
    let text = format!(
        "[gateway]\nendpoint = \"http://127.0.0.1:1\"\n{}\n\
         [[pv]]\nname = \"L\"\ntag = \"Tank001.Level\"\n",
        own("int32")
    );
    let new = config::Config::from_str_at(&text, std::path::Path::new("a.toml")).unwrap();
    let opts = ClientOptions::plaintext("127.0.0.1:1");
    let link = FeedLink {
        opts: &opts,
        gateway: &new.gateway,
        changed: false,
    };
    alarms.reload_settings(&new, &link, &Registry::default());
    assert_eq!(alarms.own[0].cfg.pv_type, AlarmPvType::Int32, "re-opened");
    let now = time(&alarms);
    assert!(
        now > last,
        "the re-opened alarm PV posted {now:?}, back from {last:?}"
    );
}
