use super::*;

pub(super) fn record(pv: &str) -> AuditRecord {
    AuditRecord {
        time: rfc3339(SystemTime::UNIX_EPOCH),
        pv: pv.into(),
        tag: Some("T.X".into()),
        group: "DEFAULT".into(),
        account: "a".into(),
        host: "127.0.0.1".into(),
        method: "ca".into(),
        previous: Some(1.5.into()),
        requested: Some(2.into()),
        outcome: "confirmed".into(),
        status: None,
        message: None,
        duration_ms: 1.0,
        comment: None,
        alarms: None,
        ..AuditRecord::default()
    }
}

/// The lines queued in `rx`'s messages, and whether each message was for the file.
fn queued(rx: &Receiver<Msg>) -> Vec<(String, bool)> {
    rx.try_iter()
        .flat_map(|m| match m {
            Msg::Lines { lines, to_file } => lines.into_iter().map(move |l| (l, to_file)),
            _ => panic!("not records"),
        })
        .collect()
}

/// Runs `f` with a log that shows `mxpva::audit` (written nowhere), as `mxpva run`'s
/// default `RUST_LOG=info` does.
fn logged<R>(f: impl FnOnce() -> R) -> R {
    let log = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(log, f)
}

fn wait_for(what: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !what() {
        assert!(Instant::now() < until, "timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn records_are_json_lines_and_a_reopen_follows_a_rename() {
    let dir = std::env::temp_dir().join(format!("mxpva-audit-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&path);
    let trail = AuditTrail::start(Some(&path)).unwrap();
    trail.record(record("P:1"));
    wait_for(|| trail.health().written() == 1);
    let rotated = dir.join("audit.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    trail.reopen(Some(&path));
    trail.record(record("P:2"));
    wait_for(|| trail.health().written() == 2);
    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    let v: Value = serde_json::from_str(old.trim()).unwrap();
    assert_eq!(v["pv"], "P:1");
    assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
    let v: Value = serde_json::from_str(new.trim()).unwrap();
    assert_eq!(v["pv"], "P:2");
    assert!(!trail.health().fault());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_file_is_a_fault_not_a_stop() {
    let path = Path::new("/nonexistent-mxpva-dir/audit.jsonl");
    let trail = AuditTrail::start(Some(path)).unwrap();
    trail.record(record("P:1"));
    wait_for(|| trail.health().failed() >= 1);
    assert!(trail.health().fault());
    assert!(trail
        .health()
        .message()
        .contains("cannot open the audit file"));
    // Still takes records (counted as failed), never blocks.
    for _ in 0..100 {
        trail.record(record("P:2"));
    }
    wait_for(|| trail.health().failed() + trail.health().dropped() >= 101);
}

#[test]
fn without_a_file_a_record_is_only_logged() {
    let (tx, rx) = sync_channel(8);
    let trail = AuditTrail::with_queue(tx, Arc::default(), false);
    // A log that leaves `mxpva::audit` out: the record goes nowhere, not even queued.
    trail.record(record("P:1"));
    assert!(rx.try_recv().is_err());
    logged(|| {
        for _ in 0..3 {
            trail.record(record("P:1"));
        }
    });
    let lines = queued(&rx);
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|(_, to_file)| !to_file), "{lines:?}");
    assert_eq!(trail.health.dropped.load(Ordering::Relaxed), 0);
    // A reopen onto a file: the records from then on are for the file too.
    trail.reopen(Some(Path::new("/nonexistent/audit.jsonl")));
    assert!(matches!(rx.try_recv(), Ok(Msg::Reopen(Some(_)))));
    trail.record(record("P:1"));
    assert_eq!(queued(&rx).iter().filter(|(_, f)| *f).count(), 1);
}

/// Issue 23: the writer thread logs the records (off the bridge's thread), and a turn's
/// records go to it in one message.
#[test]
fn a_turns_records_go_to_the_writer_in_one_message() {
    let (tx, rx) = sync_channel(8);
    let trail = AuditTrail::with_queue(tx, Arc::default(), true);
    let turn = trail.defer();
    for i in 0..5 {
        trail.record(record(&format!("P:{i}")));
    }
    assert!(rx.try_recv().is_err(), "nothing before the turn ends");
    drop(turn);
    let Ok(Msg::Lines { lines, to_file }) = rx.try_recv() else {
        panic!("the turn's records were not queued");
    };
    assert!(to_file);
    let pvs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["pv"].clone())
        .collect();
    assert_eq!(pvs, ["P:0", "P:1", "P:2", "P:3", "P:4"]);
    assert!(rx.try_recv().is_err());
    assert_eq!(trail.queued.load(Ordering::Acquire), 5);
    // The turn's list keeps its room for the next turn.
    assert!(trail.spare.lock().capacity() >= 5);
    let next = trail.defer();
    assert!(trail.spare.lock().capacity() == 0);
    drop(next);
}

/// A full queue drops records and counts them, with a file (its fault) and without one
/// (the queue then feeds the log alone: a log that falls behind is its fault).
#[test]
fn a_full_queue_drops_and_counts() {
    for (to_file, what) in [(true, "file"), (false, "log")] {
        // No writer: the queue of 2 fills and stays full.
        let (tx, _rx) = sync_channel(2);
        let trail = AuditTrail::with_queue(tx, Arc::default(), to_file);
        logged(|| {
            for _ in 0..10 {
                trail.record(record("P:1"));
            }
        });
        assert_eq!(trail.health().dropped(), 8);
        assert!(trail.health().fault());
        assert_eq!(
            trail.health().shown().0,
            Some(format!(
                "the audit {what} falls behind: 8 audit records dropped since start"
            ))
        );
    }
}

#[test]
fn past_the_byte_bound_a_record_is_kept_with_its_arrays_cut() {
    // With a file and without one (the queue holds the log's lines in memory too).
    for to_file in [true, false] {
        // No writer: the queue holds what it is given.
        let (tx, rx) = sync_channel(16);
        let trail = AuditTrail::with_queue(tx, Arc::default(), to_file);
        trail
            .queued_bytes
            .store(AUDIT_QUEUE_BYTES - 3000, Ordering::Release);
        let mut r = record("P:1");
        r.requested = Some(vec![123_456_789; 10_000].into());
        logged(|| trail.record(r));
        let Some((line, for_file)) = queued(&rx).pop() else {
            panic!("the record was not queued");
        };
        assert_eq!(for_file, to_file);
        assert!(line.len() <= 3000, "{} bytes", line.len());
        let v: Value = serde_json::from_str(&line).unwrap();
        let kept = v["requested"].as_array().unwrap().len();
        assert!(kept > 0);
        assert_eq!(
            kept as u64 + v["requested_omitted"].as_u64().unwrap(),
            10_000
        );
        assert_eq!(trail.health().dropped(), 0);
    }
}

#[test]
fn close_waits_for_the_queue_to_reach_the_file() {
    let dir = std::env::temp_dir().join(format!("mxpva-audit-close-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&path);
    let trail = AuditTrail::start(Some(&path)).unwrap();
    for i in 0..2000 {
        trail.record(record(&format!("P:{i}")));
    }
    assert!(trail.close(AUDIT_CLOSE_WAIT));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2000);
    // After the close a record is counted, not lost silently.
    trail.record(record("P:late"));
    assert_eq!(trail.health().failed(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_left_with_a_cut_line_gets_its_end_of_line_first() {
    let dir = std::env::temp_dir().join(format!("mxpva-audit-cut-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("audit.jsonl");
    std::fs::write(&path, "{\"pv\":\"P:0\"}\n{\"pv\":\"P:cut").unwrap();
    let trail = AuditTrail::start(Some(&path)).unwrap();
    trail.record(record("P:1"));
    assert!(trail.close(AUDIT_CLOSE_WAIT));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[2].starts_with("{\"time\""), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refusals_past_a_clients_limit_are_counted_and_the_count_goes_on_its_next_record() {
    let (tx, rx) = sync_channel(100);
    let trail = AuditTrail::with_queue(tx, Arc::default(), true);
    let refused = |host: &str| {
        let mut r = record("P:1");
        r.outcome = "refused".into();
        r.host = host.into();
        r
    };
    for _ in 0..25 {
        trail.record(refused("10.0.0.9"));
    }
    assert_eq!(trail.health().suppressed(), 5);
    let mut r = record("P:1");
    r.host = "10.0.0.9".into();
    trail.record(r);
    let lines: Vec<Value> = queued(&rx)
        .iter()
        .map(|(l, _)| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 21);
    assert_eq!(lines[19].get("refusals_suppressed"), None);
    assert_eq!(lines[20]["refusals_suppressed"], 5);
    assert_eq!(lines[20]["outcome"], "confirmed");
}

#[test]
fn the_audit_pv_counts_every_drop() {
    let (tx, _rx) = sync_channel(1);
    let trail = AuditTrail::with_queue(tx, Arc::default(), true);
    for _ in 0..4 {
        trail.record(record("P:1"));
    }
    let health = trail.health();
    assert_eq!(
        health.shown(),
        (
            Some("the audit file falls behind: 3 audit records dropped since start".into()),
            None
        )
    );
    health.clear_fault();
    assert_eq!(
        health.shown(),
        (None, Some("OK; 3 audit records dropped since start".into()))
    );
}

/// Issue 23: the bridge defers a turn's records to its end; they then reach the file, in
/// order, and a deferral made while one lives defers with it.
#[test]
fn deferred_records_reach_the_file_in_order_when_the_deferral_ends() {
    let dir = std::env::temp_dir().join(format!("mxpva-audit-defer-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&path);
    let trail = AuditTrail::start(Some(&path)).unwrap();
    let turn = trail.defer();
    trail.record(record("P:1"));
    let inner = trail.defer();
    trail.clone().record(record("P:2"));
    drop(inner);
    trail.record(record("P:3"));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(trail.health().written(), 0, "nothing before the turn ends");
    drop(turn);
    wait_for(|| trail.health().written() == 3);
    trail.record(record("P:4"));
    wait_for(|| trail.health().written() == 4);
    let text = std::fs::read_to_string(&path).unwrap();
    let pvs: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["pv"].to_string())
        .collect();
    assert_eq!(pvs, ["\"P:1\"", "\"P:2\"", "\"P:3\"", "\"P:4\""]);
    assert!(trail.close(Duration::from_secs(5)));
    let _ = std::fs::remove_dir_all(&dir);
}
