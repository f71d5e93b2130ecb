use super::*;

/// A write sent with id `id`, whose answer lands in `answers`.
fn sent_write(w: &mut PvWrites, id: u64, answers: &Arc<std::sync::Mutex<Vec<(u64, PutOutcome)>>>) {
    let mut completion = PutCompletion::new(cxx::UniquePtr::null());
    let record = answers.clone();
    completion.observe(Box::new(move |r: &crate::pva::PutReply<'_>| {
        record.lock().unwrap().push((id, r.outcome));
    }));
    w.pending.push_back(PendingWrite {
        id,
        started: Instant::now(),
        completion,
        changed: false,
        _in_flight: InFlight::new(&Arc::default()),
        sent: true,
        written: None,
        timeout_at: None,
        accepted: true,
        early: None,
    });
}

#[tokio::test(start_paused = true)]
async fn a_late_completion_of_a_timed_out_write_never_answers_the_next_write() {
    let mut w = PvWrites::default();
    let answers = Arc::default();
    sent_write(&mut w, 1, &answers);
    sent_write(&mut w, 2, &answers);
    let now = tokio::time::Instant::now();
    let until = now + std::time::Duration::from_secs(3);
    w.timed_out("SP", 1, "no write confirmation", until);
    assert_eq!(*answers.lock().unwrap(), [(1, PutOutcome::TimedOut)]);
    // Write 1's OnWriteComplete comes late: it is write 1's, and write 2 still waits.
    assert!(w.awaits_completion(now));
    assert!(w.late_completion("SP"));
    assert!(!w.late_completion("SP"));
    assert_eq!(w.oldest_sent().map(|p| p.id), Some(2));
    w.fail("SP", 2, PutOutcome::GatewayError, "the write call failed");
    assert_eq!(
        *answers.lock().unwrap(),
        [(1, PutOutcome::TimedOut), (2, PutOutcome::GatewayError)]
    );
    // A late completion that never came is forgotten after `until`.
    sent_write(&mut w, 3, &answers);
    w.timed_out("SP", 3, "no write confirmation", until);
    assert!(w.awaits_completion(until - std::time::Duration::from_millis(1)));
    assert!(!w.awaits_completion(until));
    assert!(!w.late_completion("SP"));
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

#[test]
fn an_onwritecomplete_before_the_calls_reply_waits_for_the_reply() {
    let mut w = PvWrites::default();
    let answers = Arc::default();
    sent_write(&mut w, 1, &answers);
    w.pending.iter_mut().for_each(|p| p.accepted = false);
    // The stream brings an OnWriteComplete first: held, nothing answered, and no
    // further one is expected for this write.
    assert_eq!(w.complete("SP", Ok(()), None, false), None);
    assert!(answers.lock().unwrap().is_empty());
    assert!(w.oldest_sent().is_none());
    // The call fails in transport: that OnWriteComplete was an earlier write's.
    w.fail("SP", 1, PutOutcome::GatewayError, "the write call failed");
    assert_eq!(*answers.lock().unwrap(), [(1, PutOutcome::GatewayError)]);

    // Accepted: the held outcome is handed back, and then answers the write.
    sent_write(&mut w, 2, &answers);
    w.pending.iter_mut().for_each(|p| p.accepted = false);
    let refused = Err("System Platform refused the write".to_string());
    assert_eq!(w.complete("SP", refused.clone(), None, false), None);
    let held = w.call_accepted(2);
    assert_eq!(held, Some(refused));
    assert_eq!(w.oldest_sent().map(|p| p.id), Some(2));
    assert_eq!(w.complete("SP", held.unwrap(), None, false), None);
    assert_eq!(
        answers.lock().unwrap().last(),
        Some(&(2, PutOutcome::RefusedBySystemPlatform))
    );
    assert_eq!(w.call_accepted(2), None);
}
