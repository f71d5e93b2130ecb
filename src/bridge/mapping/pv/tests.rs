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

/// A write of `pv` sent with id `id`, whose answer lands in `answers`.
fn sent_write(pv: &mut MappedPv, id: u64, answers: &Arc<std::sync::Mutex<Vec<(u64, PutOutcome)>>>) {
    let mut completion = PutCompletion::new(cxx::UniquePtr::null());
    let record = answers.clone();
    completion.observe(Box::new(move |r: &crate::pva::PutReply<'_>| {
        record.lock().unwrap().push((id, r.outcome));
    }));
    pv.pending.push_back(PendingWrite {
        id,
        started: Instant::now(),
        completion,
        changed: false,
        _in_flight: InFlight::new(&Arc::default()),
        sent: true,
        written: None,
        timeout_at: None,
    });
}

#[tokio::test(start_paused = true)]
async fn a_late_completion_of_a_timed_out_write_never_answers_the_next_write() {
    let text = "[gateway]\nendpoint = \"http://127.0.0.1:1\"\n\
                    [[pv]]\nname = \"SP\"\ntag = \"Pump001.SpeedSP\"\ntype = \"float64\"\nwritable = true\n";
    let config = config::Config::from_str_at(text, std::path::Path::new("pv_test.toml")).unwrap();
    let (events, _rx) = crate::pva::event_channel();
    let mut pv = MappedPv::new(config.pvs[0].clone(), &config.defaults, &events).unwrap();
    let answers = Arc::default();
    sent_write(&mut pv, 1, &answers);
    sent_write(&mut pv, 2, &answers);
    let now = tokio::time::Instant::now();
    let until = now + std::time::Duration::from_secs(3);
    pv.timed_out(1, "no write confirmation", until);
    assert_eq!(*answers.lock().unwrap(), [(1, PutOutcome::TimedOut)]);
    // Write 1's OnWriteComplete comes late: it is write 1's, and write 2 still waits.
    assert!(pv.awaits_completion(now));
    assert!(pv.late_completion());
    assert!(!pv.late_completion());
    assert_eq!(pv.oldest_sent().map(|w| w.id), Some(2));
    pv.fail_write(2, PutOutcome::GatewayError, "the write call failed");
    assert_eq!(
        *answers.lock().unwrap(),
        [(1, PutOutcome::TimedOut), (2, PutOutcome::GatewayError)]
    );
    // A late completion that never came is forgotten after `until`.
    sent_write(&mut pv, 3, &answers);
    pv.timed_out(3, "no write confirmation", until);
    assert!(pv.awaits_completion(until - std::time::Duration::from_millis(1)));
    assert!(!pv.awaits_completion(until));
    assert!(!pv.late_completion());
}

#[test]
fn a_write_counts_in_flight_until_it_is_gone_however_it_ends() {
    let count = Arc::new(AtomicUsize::new(0));
    let a = InFlight::new(&count);
    let b = InFlight::new(&count);
    assert_eq!(count.load(Ordering::Acquire), 2);
    drop(a);
    assert_eq!(count.load(Ordering::Acquire), 1);
    let moved = vec![b];
    drop(moved);
    assert_eq!(count.load(Ordering::Acquire), 0);
}
