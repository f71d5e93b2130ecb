use std::collections::HashMap;

use super::*;

fn id(n: u64) -> PvId {
    PvId::for_test(n)
}

fn tags(map: &HashMap<PvId, String>) -> impl FnMut(PvId) -> Option<(String, Role)> + '_ {
    move |i| map.get(&i).map(|t| (t.clone(), Role::Plain))
}

fn subscribe(call: Option<AdviseCall>) -> (u64, Vec<String>) {
    match call {
        Some(AdviseCall::Subscribe { call, tags }) => (call, tags),
        other => panic!("expected a SubscribeBulk, got {other:?}"),
    }
}

#[test]
fn chunks_go_one_at_a_time_within_the_window_and_room_comes_back_with_first_values() {
    let t0 = Instant::now();
    // Chunk 1: a window of 8 tags.
    let mut s = Subscriptions::new(1, Duration::from_secs(5));
    s.session_up();
    let map: HashMap<PvId, String> = (0..10).map(|n| (id(n), format!("T{n}"))).collect();
    for n in 0..10 {
        s.advise(id(n));
    }
    let mut bound = 0;
    for n in 0..8u64 {
        let (call, t) = subscribe(s.next_call(t0, tags(&map)));
        assert_eq!(t, vec![format!("T{n}")]);
        let ids = s
            .on_subscribed(call, Ok(vec![Ok(ItemHandle(n as i32))]), |_, _, _, _| {
                bound += 1;
                true
            })
            .unwrap();
        assert_eq!(ids, vec![id(n)]);
    }
    assert_eq!(s.holding(), 8);
    // The window is full: the ninth waits, then goes once a first value came.
    assert_eq!(s.next_call(t0, tags(&map)), None);
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(5)));
    s.first_value(id(3));
    s.first_value(id(3));
    let (_, t) = subscribe(s.next_call(t0, tags(&map)));
    assert_eq!(t, vec!["T8".to_string()]);
    assert_eq!(bound, 8);
}

#[test]
fn a_chunk_without_room_goes_after_the_timeout_holding_none() {
    let t0 = Instant::now();
    let mut s = Subscriptions::new(2, Duration::from_secs(1));
    s.session_up();
    let map: HashMap<PvId, String> = (0..40).map(|n| (id(n), format!("T{n}"))).collect();
    for n in 0..40 {
        s.advise(id(n));
    }
    for _ in 0..8 {
        let (call, t) = subscribe(s.next_call(t0, tags(&map)));
        let r = t
            .iter()
            .enumerate()
            .map(|(k, _)| Ok(ItemHandle(k as i32)))
            .collect();
        s.on_subscribed(call, Ok(r), |_, _, _, _| true).unwrap();
    }
    assert_eq!(s.holding(), 16);
    assert_eq!(s.next_call(t0, tags(&map)), None);
    assert_eq!(
        s.next_call(t0 + Duration::from_millis(999), tags(&map)),
        None
    );
    let (call, _) = subscribe(s.next_call(t0 + Duration::from_secs(1), tags(&map)));
    s.on_subscribed(
        call,
        Ok(vec![Ok(ItemHandle(90)), Ok(ItemHandle(91))]),
        |_, _, _, _| true,
    )
    .unwrap();
    // Unpaced: they hold no room.
    assert_eq!(s.holding(), 16);
}

#[test]
fn a_result_of_another_call_or_a_lost_session_binds_nothing() {
    let t0 = Instant::now();
    let mut s = Subscriptions::new(10, Duration::from_secs(1));
    s.session_up();
    let map: HashMap<PvId, String> = [(id(1), "A".to_string())].into();
    s.advise(id(1));
    let (call, _) = subscribe(s.next_call(t0, tags(&map)));
    let mut binds = 0;
    assert!(s
        .on_subscribed(call + 1, Ok(vec![Ok(ItemHandle(1))]), |_, _, _, _| {
            binds += 1;
            true
        })
        .is_none());
    s.session_lost();
    s.session_up();
    assert!(s
        .on_subscribed(call, Ok(vec![Ok(ItemHandle(1))]), |_, _, _, _| {
            binds += 1;
            true
        })
        .is_none());
    assert_eq!(binds, 0);
    // Asked again in the new session: a new call.
    s.advise(id(1));
    let (again, _) = subscribe(s.next_call(t0, tags(&map)));
    assert_ne!(again, call);
}

#[test]
fn each_entry_is_bound_with_the_tag_it_was_advised_for() {
    let t0 = Instant::now();
    let mut s = Subscriptions::new(10, Duration::from_secs(1));
    s.session_up();
    let mut map: HashMap<PvId, String> = [(id(1), "Old".to_string())].into();
    s.advise(id(1));
    let (call, t) = subscribe(s.next_call(t0, tags(&map)));
    assert_eq!(t, vec!["Old".to_string()]);
    // Re-tagged while in flight: asked again, with the new tag.
    map.insert(id(1), "New".to_string());
    s.forget(id(1));
    s.advise(id(1));
    assert!(s.is_advising(id(1)));
    let mut seen = Vec::new();
    s.on_subscribed(call, Ok(vec![Ok(ItemHandle(7))]), |i, tag, _, _| {
        seen.push((i, tag.to_string()));
        false
    })
    .unwrap();
    assert_eq!(seen, vec![(id(1), "Old".to_string())]);
    let (_, t) = subscribe(s.next_call(t0, tags(&map)));
    assert_eq!(t, vec!["New".to_string()]);
}

#[test]
fn a_reply_with_the_wrong_count_or_a_failed_call_fails_every_entry_and_frees_its_room() {
    let t0 = Instant::now();
    let mut s = Subscriptions::new(3, Duration::from_secs(1));
    s.session_up();
    let map: HashMap<PvId, String> = (0..6).map(|n| (id(n), format!("T{n}"))).collect();
    for n in 0..6 {
        s.advise(id(n));
    }
    let (call, _) = subscribe(s.next_call(t0, tags(&map)));
    let mut errors = Vec::new();
    s.on_subscribed(call, Ok(vec![Ok(ItemHandle(1))]), |_, _, _, r| {
        errors.push(r.unwrap_err());
        false
    })
    .unwrap();
    assert_eq!(errors.len(), 3);
    assert!(errors[0].contains("1 results for 3 tags"), "{}", errors[0]);
    let (call, _) = subscribe(s.next_call(t0, tags(&map)));
    s.on_subscribed(
        call,
        Err("SubscribeBulk failed: unavailable".into()),
        |_, _, _, r| {
            assert!(r.is_err());
            false
        },
    )
    .unwrap();
    assert_eq!(s.holding(), 0);
    assert!(s.is_idle());
}

#[test]
fn pvs_no_longer_wanted_are_skipped_and_unadvises_go_first() {
    let t0 = Instant::now();
    let mut s = Subscriptions::new(10, Duration::from_secs(1));
    s.session_up();
    let map: HashMap<PvId, String> = [(id(2), "B".to_string())].into();
    s.advise(id(1));
    s.advise(id(2));
    s.unadvise([ItemHandle(5)]);
    assert_eq!(
        s.next_call(t0, tags(&map)),
        Some(AdviseCall::Unsubscribe {
            items: vec![ItemHandle(5)]
        })
    );
    let (_, t) = subscribe(s.next_call(t0, tags(&map)));
    assert_eq!(t, vec!["B".to_string()]);
    // Without a session nothing is asked.
    s.session_lost();
    s.advise(id(2));
    s.unadvise([ItemHandle(6)]);
    assert_eq!(s.next_call(t0, tags(&map)), None);
}

#[test]
fn at_most_max_calls_are_in_flight_and_their_results_bind_in_any_order() {
    let t0 = Instant::now();
    let mut s = Subscriptions::new(1, Duration::from_secs(5));
    s.session_up();
    let map: HashMap<PvId, String> = (0..8).map(|n| (id(n), format!("T{n}"))).collect();
    for n in 0..8 {
        s.advise(id(n));
    }
    let calls: Vec<(u64, Vec<String>)> = (0..MAX_CALLS)
        .map(|_| subscribe(s.next_call(t0, tags(&map))))
        .collect();
    assert_eq!(
        s.next_call(t0, tags(&map)),
        None,
        "no more than MAX_CALLS in flight"
    );
    // The last call's results first: each binds with its own tag.
    let mut seen = Vec::new();
    for (call, t) in calls.iter().rev() {
        s.on_subscribed(*call, Ok(vec![Ok(ItemHandle(1))]), |i, tag, _, _| {
            seen.push((i, tag.to_string()));
            false
        })
        .unwrap();
        assert_eq!(seen.last().map(|(_, t)| t.clone()), t.first().cloned());
    }
    assert_eq!(seen.len(), MAX_CALLS);
    assert!(s.next_call(t0, tags(&map)).is_some());
}

#[test]
fn a_chunk_is_of_one_kind_and_buffered_items_are_paced_too() {
    let t0 = Instant::now();
    // A chunk of 4: a window of 32.
    let mut s = Subscriptions::new(4, Duration::from_secs(1));
    s.session_up();
    // A, B plain; C, D buffered; E the write item of a buffered PV (plain kind).
    let roles: HashMap<PvId, (String, Role)> = [
        (id(1), ("T.A".to_string(), Role::Plain)),
        (id(2), ("T.B".to_string(), Role::Plain)),
        (id(3), ("T.C".to_string(), Role::Buffered)),
        (id(4), ("T.D".to_string(), Role::Buffered)),
        (id(5), ("T.E".to_string(), Role::Write)),
    ]
    .into_iter()
    .collect();
    for n in 1..=5 {
        s.advise(id(n));
    }
    let of = |i: PvId| roles.get(&i).cloned();
    let first = s.next_call(t0, of);
    let Some(AdviseCall::Subscribe { call: c1, tags }) = first else {
        panic!("expected a plain chunk, got {first:?}");
    };
    assert_eq!(tags, vec!["T.A", "T.B"]);
    let second = s.next_call(t0, of);
    let Some(AdviseCall::SubscribeBuffered {
        call: c2,
        tags,
        interval,
    }) = second
    else {
        panic!("expected a buffered chunk, got {second:?}");
    };
    assert_eq!(tags, vec!["T.C", "T.D"]);
    // The session's first buffered chunk sets its buffered update interval.
    assert_eq!(interval, Some(crate::config::DEFAULT_BUFFERED_INTERVAL));
    let third = s.next_call(t0, of);
    let Some(AdviseCall::Subscribe { call: c3, tags }) = third else {
        panic!("expected a plain chunk, got {third:?}");
    };
    assert_eq!(tags, vec!["T.E"]);
    assert!(s.is_advising(id(3)));
    // Each result is handed back with the role it was advised for.
    let mut seen = Vec::new();
    for (call, n) in [(c1, 2), (c2, 2), (c3, 1)] {
        let r = (0..n).map(|k| Ok(ItemHandle(k))).collect();
        s.on_subscribed(call, Ok(r), |i, tag, role, _| {
            seen.push((i, tag.to_string(), role));
            true
        })
        .unwrap();
    }
    assert_eq!(
        seen,
        vec![
            (id(1), "T.A".to_string(), Role::Plain),
            (id(2), "T.B".to_string(), Role::Plain),
            (id(3), "T.C".to_string(), Role::Buffered),
            (id(4), "T.D".to_string(), Role::Buffered),
            (id(5), "T.E".to_string(), Role::Write),
        ]
    );
    // All five hold room until their first data change (a buffered item's first
    // OnBufferedDataChange).
    assert_eq!(s.holding(), 5);
    s.first_value(id(3));
    assert_eq!(s.holding(), 4);
    assert!(s.is_idle());
    // Later buffered chunks of the session do not set it again; a new session does.
    s.advise(id(3));
    let again = s.next_call(t0, of);
    assert!(
        matches!(
            again,
            Some(AdviseCall::SubscribeBuffered { interval: None, .. })
        ),
        "{again:?}"
    );
    s.set_buffered_interval(Duration::from_millis(250));
    s.session_up();
    s.advise(id(4));
    let new_session = s.next_call(t0, of);
    assert!(
        matches!(
            new_session,
            Some(AdviseCall::SubscribeBuffered { interval: Some(d), .. }) if d == Duration::from_millis(250)
        ),
        "{new_session:?}"
    );
}

/// Issue 23: while the bridge is behind the gateway's events, the window is half its
/// size; a chunk without room there goes after the timeout. Un-advises go meanwhile.
#[test]
fn the_window_is_halved_while_the_bridge_is_behind_the_gateways_events() {
    let t0 = Instant::now();
    // Chunks of 2, a window of 16: 8 while behind.
    let mut s = Subscriptions::new(2, Duration::from_secs(3));
    s.session_up();
    let map: HashMap<PvId, String> = (0..20).map(|n| (id(n), format!("T{n}"))).collect();
    for n in 0..20 {
        s.advise(id(n));
    }
    s.set_behind(true);
    let mut n = 0;
    while let Some(call) = s.next_call(t0, tags(&map)) {
        let (call, _) = subscribe(Some(call));
        let items = vec![Ok(ItemHandle(n)), Ok(ItemHandle(n + 1))];
        s.on_subscribed(call, Ok(items), |_, _, _, _| true).unwrap();
        n += 2;
    }
    assert_eq!(s.holding(), 8, "half the window");
    s.unadvise([ItemHandle(99)]);
    assert_eq!(
        s.next_call(t0, tags(&map)),
        Some(AdviseCall::Unsubscribe {
            items: vec![ItemHandle(99)]
        })
    );
    // A first value frees room, but not enough for a chunk of two in half the window.
    s.first_value(id(0));
    assert_eq!(s.next_call(t0, tags(&map)), None);
    s.first_value(id(1));
    let (call, t) = subscribe(s.next_call(t0, tags(&map)));
    assert_eq!(t, vec!["T8".to_string(), "T9".to_string()]);
    s.on_subscribed(
        call,
        Ok(vec![Ok(ItemHandle(8)), Ok(ItemHandle(9))]),
        |_, _, _, _| true,
    )
    .unwrap();
    // Full: the next goes after the timeout, paced (room in the whole window).
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(s.next_call(t1, tags(&map)), None);
    assert_eq!(s.next_deadline(), Some(t1 + Duration::from_secs(3)));
    subscribe(s.next_call(t1 + Duration::from_secs(3), tags(&map)));
    // Caught up: the whole window.
    s.set_behind(false);
    let (call, t) = subscribe(s.next_call(t1, tags(&map)));
    assert_eq!(t, vec!["T12".to_string(), "T13".to_string()]);
    s.on_subscribed(
        call,
        Ok(vec![Ok(ItemHandle(12)), Ok(ItemHandle(13))]),
        |_, _, _, _| true,
    )
    .unwrap();
    assert!(s.holding() >= 10);
}
