use super::*;

/// A write sent with id `id`, whose answer lands in `answers`.
fn sent_write(w: &mut PvWrites, id: u64, answers: &Answers) {
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
    // One that has not come by `until` is still owed: with no write sent, the next
    // OnWriteComplete is taken as it, and then none is expected.
    sent_write(&mut w, 3, &answers);
    w.timed_out("SP", 3, "no write confirmation", until);
    assert!(w.awaits_completion(until - std::time::Duration::from_millis(1)));
    assert!(w.awaits_completion(until));
    assert!(w.late_completion("SP"));
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

/// A sent write whose call the gateway has not answered yet.
fn unanswered_write(w: &mut PvWrites, id: u64, answers: &Answers) {
    sent_write(w, id, answers);
    w.pending.iter_mut().for_each(|p| p.accepted = p.id != id);
}

/// Write `id` times out at `now` and its late window passes with no OnWriteComplete.
fn lose_write(w: &mut PvWrites, id: u64, answers: &Answers, now: tokio::time::Instant) {
    sent_write(w, id, answers);
    let until = now + std::time::Duration::from_secs(3);
    w.timed_out("SP", id, "no write confirmation", until);
    // Past its window it is still owed (a late OnWriteComplete is expected).
    assert!(w.awaits_completion(until));
}

type Answers = Arc<std::sync::Mutex<Vec<(u64, PutOutcome)>>>;

#[tokio::test(start_paused = true)]
async fn an_onwritecomplete_before_the_calls_reply_is_held_only_while_one_is_owed() {
    let mut w = PvWrites::default();
    let answers: Answers = Arc::default();
    let now = tokio::time::Instant::now();
    // None owed: one that comes before the call's reply is the write's own.
    unanswered_write(&mut w, 1, &answers);
    assert_eq!(w.complete("SP", Ok(()), None, false), Some(1));
    w.settle("SP", 1);
    assert_eq!(*answers.lock().unwrap(), [(1, PutOutcome::Confirmed)]);

    // Write 2's OnWriteComplete is owed: the next one before a reply is held, and no
    // further one is expected for write 3.
    lose_write(&mut w, 2, &answers, now);
    unanswered_write(&mut w, 3, &answers);
    assert_eq!(w.complete("SP", Ok(()), None, false), None);
    assert_eq!(answers.lock().unwrap().len(), 2);
    assert!(w.oldest_sent().is_none());
    // Write 3's call fails in transport: what was held was write 2's.
    w.fail("SP", 3, PutOutcome::GatewayError, "the write call failed");
    assert_eq!(
        answers.lock().unwrap().last(),
        Some(&(3, PutOutcome::GatewayError))
    );
    // None is owed any more: an early one answers at once again.
    unanswered_write(&mut w, 4, &answers);
    assert_eq!(w.complete("SP", Ok(()), None, false), Some(4));

    // Owed again, and the call is accepted: the held outcome is handed back, and then
    // answers the write.
    w.settle("SP", 4);
    lose_write(&mut w, 5, &answers, now);
    unanswered_write(&mut w, 6, &answers);
    let refused = Err("System Platform refused the write".to_string());
    assert_eq!(w.complete("SP", refused.clone(), None, false), None);
    let held = w.call_accepted(6);
    assert_eq!(held, Some(refused));
    assert_eq!(w.oldest_sent().map(|p| p.id), Some(6));
    assert_eq!(w.complete("SP", held.unwrap(), None, false), None);
    assert_eq!(
        answers.lock().unwrap().last(),
        Some(&(6, PutOutcome::RefusedBySystemPlatform))
    );
    // Write 5's own may still come: with no write sent, it is taken as the lost one's.
    assert!(w.awaits_completion(now));
    assert!(w.late_completion("SP"));
    assert!(!w.awaits_completion(now));
}
