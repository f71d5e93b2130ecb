//! The adapter around the bridge's decisions: the tokio loop and the gateway I/O.
//!
//! It owns what does I/O and holds no decisions: the gateway session and its event
//! stream, the connect task and its backoff, the gateway calls in flight (SubscribeBulk,
//! UnsubscribeBulk and write calls, which the bridge hands out as data and whose results
//! it hands back), one sleep until the bridge's next deadline, the reload requests and
//! shutdown. Each turn takes what is ready, lets the bridge decide, then makes the calls
//! the bridge asked for.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;
use tracing::{info, warn};

use super::core::reload::{prepare, Prepared};
use super::core::Bridge;
use super::link::subscriptions::{AdviseCall, Advised};
use super::link::{close_stale_sessions, connect, Connected, Link};
use super::writes::calls::{self, CallDone};
use super::Reload;
use crate::access::audit::Deferral;
use crate::gateway::{
    refuse_shared_handles, Backoff, BufferedDataChange, EventStream, ServerHandle, Session,
    SessionEvent,
};
use crate::lock::Mutex;
use crate::pva;

/// At most this many gateway events are taken in one turn, so that puts are still
/// served during a flood.
const MAX_TURN: usize = 4096;

/// While the bridge is behind the gateway's events, a turn takes up to this many: each
/// data change then costs little more than replacing the staged one of its PV
/// (`coalesce`), and the gateway's queue is drained before it faults the session.
const MAX_TURN_BEHIND: usize = 65_536;

/// A turn takes gateway events for at most about this long, and posts for at most about
/// this long again ([`end_turn`]): everything of the bridge (the gateway connection's
/// keep-alives included, whose answer is due within `[gateway] keepalive_timeout`) runs
/// on one thread, between turns. Events still ready then mean the bridge is behind.
const TAKE_BUDGET: Duration = Duration::from_millis(20);
const POST_BUDGET: Duration = Duration::from_millis(20);
/// The post budget while the gateway's events outran the last turn: draining them comes
/// first, the PVs lag (and their data changes are coalesced meanwhile).
const POST_BUDGET_BEHIND: Duration = Duration::from_millis(5);
/// Turns that end with work left (events still ready when the take budget ran out, PVs
/// with news left by the post budget) make the bridge behind only once they have gone on
/// for this long: one turn stretched by the thread waiting for a CPU (a busy host) is
/// not a backlog, and coalescing for it would drop values a client could have had.
/// More events ready than a turn takes ([`MAX_TURN`]) is one at once.
const PRESSED_FOR: Duration = Duration::from_millis(100);
/// Coalescing ends once the bridge has kept up for this long (so a burst does not turn
/// it on and off, and log it, at every turn).
const CAUGHT_UP_AFTER: Duration = Duration::from_secs(1);
/// The clock is read every this many events or posts (a buffered data change counts
/// as many as it has samples: each is posted).
const BUDGET_STEP: usize = 32;
/// A turn stops posting when this many posts and put replies wait for pvxs's loop
/// (about 20 ms of its work, `pva::handoff`): handing the posts over costs the bridge
/// little, so the time budget alone would queue without bound for a loop that sends
/// more slowly than the gateway's events come. Its PVs with news wait, and coalesce.
const LOOP_BACKLOG: usize = 4096;
/// Buffered data changes ready one after the other are handed to the bridge together,
/// up to about this many samples ([`Bridge::on_buffered`]: their samples are posted
/// round robin over their PVs).
const BUFFERED_GROUP: usize = 4096;

/// What a gateway call in flight hands back.
enum Answer {
    Subscribed {
        call: u64,
        results: Result<Vec<Advised>, String>,
    },
    Written(CallDone),
    Unsubscribed,
}

type Call = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// The gateway side of the adapter.
#[derive(Default)]
struct Gateway {
    /// The live session and its server handle.
    session: Option<(Session, ServerHandle)>,
    /// Sessions of lost links not yet closed at the gateway: the next connect closes them
    /// before it opens a new one, so the gateway never holds two subscriptions of a tag.
    stale: Arc<Mutex<Vec<String>>>,
    /// Calls in flight in the live session.
    calls: FuturesUnordered<Call>,
}

impl Gateway {
    /// The session is gone: its calls are dropped (the bridge answers their puts), and it
    /// is closed by the next connect.
    fn lost(&mut self) {
        if let Some((session, _)) = self.session.take() {
            self.stale.lock().push(session.id().to_string());
        }
        self.calls = FuturesUnordered::new();
    }

    fn advise(&mut self, call: AdviseCall) {
        let Some((session, server)) = self.session.clone() else {
            return;
        };
        match call {
            AdviseCall::Subscribe { call, tags } => {
                self.calls.push(Box::pin(async move {
                    let results = match session.subscribe_bulk(server, &tags).await {
                        Ok(mut rs) => {
                            refuse_shared_handles(&mut rs);
                            Ok(rs
                                .into_iter()
                                .map(|r| {
                                    r.outcome.map(|()| r.item_handle).map_err(|e| e.to_string())
                                })
                                .collect())
                        }
                        Err(e) => Err(format!("SubscribeBulk failed: {e}")),
                    };
                    Answer::Subscribed { call, results }
                }));
            }
            AdviseCall::SubscribeBuffered {
                call,
                tags,
                interval,
            } => {
                self.calls.push(Box::pin(async move {
                    let results = subscribe_buffered(&session, server, &tags, interval).await;
                    Answer::Subscribed { call, results }
                }));
            }
            AdviseCall::Unsubscribe { items } => {
                self.calls.push(Box::pin(async move {
                    match session.unsubscribe_bulk(server, &items).await {
                        Ok(results) => {
                            let failed = results.iter().filter(|r| r.outcome.is_err()).count();
                            info!(items = items.len(), failed, "unsubscribed");
                        }
                        Err(e) => warn!(items = items.len(), error = %e, "UnsubscribeBulk failed"),
                    }
                    Answer::Unsubscribed
                }));
            }
        }
    }

    fn write(&mut self, call: calls::WriteCall) {
        let Some((session, server)) = self.session.clone() else {
            return;
        };
        self.calls.push(Box::pin(async move {
            Answer::Written(calls::make(session, server, call).await)
        }));
    }
}

pub(super) async fn serve(
    bridge: &mut Bridge,
    pv_events: &mut pva::EventReceiver,
    shutdown: impl Future<Output = ()>,
    reload: Option<Reload>,
) {
    tokio::pin!(shutdown);
    let (reload_path, mut reloads) = match reload {
        Some(r) => (Some(r.path), Some(r.requests)),
        None => (None, None),
    };
    // A reload being read and resolved off this task (reload.rs), and whether another was
    // asked for meanwhile.
    let mut preparing: Option<tokio::task::JoinHandle<Prepared>> = None;
    let mut reload_again = false;
    let mut gw = Gateway::default();
    let settings = &bridge.config.gateway;
    let mut backoff = Backoff::new(settings.reconnect_initial, settings.reconnect_max);
    let mut connecting = Some(spawn_connect(bridge, &gw));
    let mut retry_at: Option<Instant> = None;
    let mut events: Option<EventStream> = None;
    // Why the event stream ended in this turn, if it did.
    let mut ended: Option<String> = None;
    // One sleep, until the bridge's next deadline.
    let mut sleep = Box::pin(tokio::time::sleep_until(Instant::now()));
    let mut armed: Option<Instant> = None;
    // Whether the gateway's events outran the turns, and since when turns left work.
    let mut pressure = Pressure::default();
    let mut behind_since: Option<Instant> = None;
    loop {
        let deadline = bridge.next_deadline();
        if deadline != armed {
            if let Some(at) = deadline {
                sleep.as_mut().reset(at);
            }
            armed = deadline;
        }
        // The audit records of a turn wait for its end (from the start of the arm that
        // takes work: never while the select waits, when a record made by a task or another
        // thread would be held): its replies and posts then reach pvxs back to back, and
        // the records' log lines go out in one write.
        let mut turn: Option<Deferral> = None;
        tokio::select! {
            _ = &mut shutdown => break,
            Some(ev) = pv_events.recv() => {
                turn = Some(begin_turn(bridge));
                bridge.on_pv_event(ev);
                // First clients that came together are advised together (within a
                // turn's budget: thousands of channels may come at once).
                let started = std::time::Instant::now();
                for n in 0..MAX_TURN {
                    if n % BUDGET_STEP == BUDGET_STEP - 1 && started.elapsed() >= TAKE_BUDGET {
                        break;
                    }
                    match pv_events.try_recv() {
                        Ok(ev) => bridge.on_pv_event(ev),
                        Err(_) => break,
                    }
                }
            }
            () = &mut sleep, if armed.is_some() => {
                turn = Some(begin_turn(bridge));
                armed = None;
                bridge.on_timers();
            }
            Some(()) = async { match reloads.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => {
                // Requests that came together are one reload; one that comes while a
                // reload is being prepared is made after it.
                while reloads.as_mut().is_some_and(|r| r.try_recv().is_ok()) {}
                if preparing.is_some() {
                    reload_again = true;
                } else if let Some(path) = reload_path.clone() {
                    bridge.reload_asked();
                    preparing = Some(spawn_prepare(path));
                }
            }
            done = async { match preparing.as_mut() { Some(task) => task.await, None => std::future::pending().await } }, if preparing.is_some() => {
                preparing = None;
                // The news of PVs the reload may re-open or remove is posted first.
                end_turn(bridge, None);
                let relink = match (done, reload_path.as_deref()) {
                    (Ok(prepared), Some(path)) => bridge.apply_reload(prepared, path),
                    (Err(e), _) => {
                        warn!(error = %e, "config reload failed: still serving the config in service");
                        crate::systemd::ready("config reload failed: serving the config in service");
                        false
                    }
                    (Ok(_), None) => false,
                };
                if reload_again {
                    reload_again = false;
                    if let Some(path) = reload_path.clone() {
                        bridge.reload_asked();
                        preparing = Some(spawn_prepare(path));
                    }
                }
                if relink {
                    // The link is made again with the new settings, at once.
                    if let Some(task) = connecting.take() {
                        task.abort();
                    }
                    if events.is_some() {
                        ended = Some("the [gateway] settings changed: reconnecting".to_string());
                    } else {
                        retry_at = Some(Instant::now());
                    }
                    let s = &bridge.config.gateway;
                    backoff = Backoff::new(s.reconnect_initial, s.reconnect_max);
                }
            }
            Some(answer) = gw.calls.next(), if !gw.calls.is_empty() => {
                turn = Some(begin_turn(bridge));
                match answer {
                    Answer::Subscribed { call, results } => bridge.on_subscribed(call, results),
                    Answer::Written(done) => bridge.on_call_done(done),
                    Answer::Unsubscribed => {}
                }
            }
            _ = bridge.ops.tick.tick() => bridge.on_tick(),
            Some(found) = bridge.rules.discovered.1.recv() => bridge.on_discovered(found),
            Some(msg) = bridge.alarms.feed.recv() => {
                turn = Some(begin_turn(bridge));
                bridge.alarms.on_feed(msg, &mut bridge.pvs, &mut bridge.urgent);
                ended = take_ready(bridge, &mut events, &mut pressure).await;
            }
            done = async { match connecting.as_mut() { Some(task) => task.await, None => std::future::pending().await } }, if connecting.is_some() => {
                connecting = None;
                match done {
                    Ok(Ok(c)) => {
                        let Connected { session, server, users, events: stream } = c;
                        let id = session.id().to_string();
                        gw.stale.lock().retain(|s| *s != id);
                        gw.session = Some((session, server));
                        bridge.on_connected(Link { session: id, users });
                        events = Some(stream);
                        backoff.reset();
                    }
                    Ok(Err(reason)) => {
                        bridge.on_lost(&reason);
                        bridge.ops.first_connect_over(&bridge.pvs, false);
                        retry_at = Some(Instant::now() + backoff.next_delay());
                    }
                    Err(e) => {
                        bridge.on_lost(&format!("connect task failed: {e}"));
                        bridge.ops.first_connect_over(&bridge.pvs, false);
                        retry_at = Some(Instant::now() + backoff.current());
                    }
                }
            }
            _ = async { match retry_at { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } }, if retry_at.is_some() => {
                retry_at = None;
                connecting = Some(spawn_connect(bridge, &gw));
            }
            // PVs with news left by the last turn's post budget.
            () = tokio::task::yield_now(), if !bridge.dirty.is_empty() => { }
            ev = async { match events.as_mut() { Some(stream) => stream.next().await, None => std::future::pending().await } }, if events.is_some() => {
                turn = Some(begin_turn(bridge));
                ended = match ev {
                    Some(Ok(ev)) => {
                        bridge.on_session_event(ev);
                        take_ready(bridge, &mut events, &mut pressure).await
                    }
                    Some(Err(e)) => Some(format!("event stream failed: {e}")),
                    None => Some("the gateway ended the event stream".to_string()),
                };
            }
        }
        let turn = turn.unwrap_or_else(|| bridge.guard.audit.defer());
        if let Some(reason) = ended.take() {
            // Every value taken is posted before the PVs say the link is lost.
            end_turn(bridge, None);
            events = None;
            gw.lost();
            bridge.close_link(&reason);
            pressure = Pressure::default();
            behind_since = None;
            retry_at = Some(Instant::now() + backoff.current());
        } else {
            // Behind the gateway's events, the posts wait more: they lag, the session
            // does not.
            let budget = if pressure.stream_behind {
                POST_BUDGET_BEHIND
            } else {
                POST_BUDGET
            };
            let backlog = end_turn(bridge, Some(budget));
            let now = pressure.turn_done(backlog, Instant::now());
            behind(bridge, now, &mut behind_since);
            bridge.link.subs.set_behind(pressure.stream_behind);
        }
        let (advise, writes) = bridge.turn_done();
        for call in advise {
            gw.advise(call);
        }
        for call in writes {
            gw.write(call);
        }
        // The turn's posts and replies, collected in order since its start, are made
        // back to back (`pva::handoff`): pvxs's loop takes them in a few wakeups.
        pva::handoff::end();
        crate::logging::held(|| drop(turn));
    }
    crate::systemd::stopping();
    if let Some((session, _)) = gw.session.take() {
        let _ = tokio::time::timeout(Duration::from_secs(2), session.close()).await;
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            close_stale_sessions(session.client(), &gw.stale),
        )
        .await;
    }
}

/// Reads the config at `path` and resolves its ACF's HAG hosts on tokio's blocking pool,
/// so that serving goes on meanwhile (a slow resolver takes seconds per name).
fn spawn_prepare(path: std::path::PathBuf) -> tokio::task::JoinHandle<Prepared> {
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || prepare(&path, started))
}

/// AddBufferedItem and Advise of each tag, in order (the contract has no bulk form),
/// after the session's SetBufferedUpdateInterval when `interval` is given. An item added
/// whose Advise failed is removed again.
async fn subscribe_buffered(
    session: &Session,
    server: ServerHandle,
    tags: &[String],
    interval: Option<Duration>,
) -> Result<Vec<Advised>, String> {
    if let Some(interval) = interval {
        if let Err(e) = session.set_buffered_update_interval(server, interval).await {
            warn!(error = %e, ?interval, "SetBufferedUpdateInterval failed: buffered items deliver at the gateway's own interval");
        }
    }
    let mut results = Vec::with_capacity(tags.len());
    for tag in tags {
        let item = match session.add_buffered_item(server, tag).await {
            Ok(item) => item,
            Err(e) => {
                results.push(Err(format!("AddBufferedItem failed: {e}")));
                continue;
            }
        };
        match session.advise(server, item).await {
            Ok(()) => results.push(Ok(item)),
            Err(e) => {
                let _ = session.remove_item(server, item).await;
                results.push(Err(format!("Advise of the buffered item failed: {e}")));
            }
        }
    }
    Ok(results)
}

/// Connects in a task of its own, so puts keep being answered meanwhile.
fn spawn_connect(
    bridge: &Bridge,
    gw: &Gateway,
) -> tokio::task::JoinHandle<Result<Connected, String>> {
    let users = bridge
        .config
        .users
        .iter()
        .map(|(k, u)| (k.clone(), u.clone()))
        .collect();
    tokio::spawn(connect(
        bridge.opts.clone(),
        bridge.config.gateway.clone(),
        users,
        gw.stale.clone(),
    ))
}

/// The rest of a turn that began with a gateway event or an alarm message: what of the
/// event stream is ready now, for at most [`TAKE_BUDGET`] (and up to [`MAX_TURN`] events,
/// [`MAX_TURN_BEHIND`] while coalescing), and the alarm feed's messages ready. Data
/// changes and alarm transitions of one PV taken together are then posted as one update.
/// `pressure` learns whether events were still ready at the end (more than a turn takes,
/// or the budget ran out), or the stream ran dry. Returns why the event stream ended, if
/// it did.
async fn take_ready(
    bridge: &mut Bridge,
    events: &mut Option<EventStream>,
    pressure: &mut Pressure,
) -> Option<String> {
    // First let the tasks that read the gateway's connections run: what arrived
    // together (a data change and the alarm it raised) is then taken together.
    tokio::task::yield_now().await;
    let started = std::time::Instant::now();
    let mut ended = None;
    if let Some(stream) = events.as_mut() {
        let mut taken = 0usize;
        // The work taken (events; a buffered one counts its samples), and when the
        // clock is read next.
        let mut work = 0usize;
        let mut next_check = BUDGET_STEP;
        let mut late = false;
        let mut group: Vec<BufferedDataChange> = Vec::new();
        let mut group_samples = 0usize;
        loop {
            let cap = if bridge.coalesce {
                MAX_TURN_BEHIND
            } else {
                MAX_TURN
            };
            if work >= next_check {
                next_check = work + BUDGET_STEP;
                late = started.elapsed() >= TAKE_BUDGET;
            }
            let over = if taken >= cap {
                Some(Took::Full)
            } else if late {
                Some(Took::OutOfTime)
            } else {
                None
            };
            match stream.next().now_or_never() {
                None => {
                    pressure.took = Some(Took::Dry {
                        few: taken < MAX_TURN / 4,
                    });
                    break;
                }
                Some(Some(Ok(ev))) => {
                    match ev {
                        SessionEvent::BufferedDataChange(b) => {
                            work += b.samples.len().max(1);
                            group_samples += b.samples.len();
                            group.push(b);
                            if group_samples >= BUFFERED_GROUP {
                                group_samples = 0;
                                bridge.on_buffered(std::mem::take(&mut group));
                            }
                        }
                        ev => {
                            work += 1;
                            if !group.is_empty() {
                                group_samples = 0;
                                bridge.on_buffered(std::mem::take(&mut group));
                            }
                            bridge.on_session_event(ev);
                        }
                    }
                    if let Some(over) = over {
                        // More is ready than this turn takes.
                        pressure.took = Some(over);
                        break;
                    }
                    taken += 1;
                }
                Some(Some(Err(e))) => {
                    ended = Some(format!("event stream failed: {e}"));
                    break;
                }
                Some(None) => {
                    ended = Some("the gateway ended the event stream".to_string());
                    break;
                }
            }
        }
        if !group.is_empty() {
            bridge.on_buffered(group);
        }
    }
    bridge.alarms.on_ready(&mut bridge.pvs, &mut bridge.urgent);
    ended
}

/// How a turn's take of the gateway's events ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Took {
    /// The stream ran dry; `few`: after fewer than a quarter of [`MAX_TURN`] events.
    Dry { few: bool },
    /// Events still ready after as many as a turn takes.
    Full,
    /// Events still ready when [`TAKE_BUDGET`] ran out.
    OutOfTime,
}

/// Whether the bridge is behind the gateway's events, from how its turns ended.
#[derive(Default)]
struct Pressure {
    /// How this turn's take ended, if it took events.
    took: Option<Took>,
    /// The gateway's events outran the turns: more were ready than a turn takes, or the
    /// take budget ran out with events still ready for [`PRESSED_FOR`]. Cleared when a
    /// turn finds the stream dry after few events. Posts then get the shorter budget.
    stream_behind: bool,
    /// Since when every turn left work (events ready, or PVs with news unposted).
    pressed_since: Option<Instant>,
}

impl Pressure {
    /// The end of a turn whose posts left PVs with news when `backlog`: whether the bridge
    /// is behind now (it coalesces data changes while it is).
    fn turn_done(&mut self, backlog: bool, now: Instant) -> bool {
        let took = self.took.take();
        let left = backlog || matches!(took, Some(Took::Full | Took::OutOfTime));
        if left {
            self.pressed_since.get_or_insert(now);
        } else if took.is_some() {
            // The stream ran dry and every PV with news was posted.
            self.pressed_since = None;
        }
        let pressed = self
            .pressed_since
            .is_some_and(|t| now.saturating_duration_since(t) >= PRESSED_FOR);
        match took {
            Some(Took::Full) => self.stream_behind = true,
            Some(Took::OutOfTime) if pressed => self.stream_behind = true,
            Some(Took::Dry { few: true }) => self.stream_behind = false,
            _ => {}
        }
        self.stream_behind || pressed
    }
}

/// The end of a turn ([`Bridge::end_turn`], all posted without `budget`): the PVs in
/// `bridge.urgent` are posted, then those in `bridge.dirty`, oldest first, for at most
/// `budget`; the others stay staged for the next turns (a data change of one of them
/// meanwhile posts it first, or, while coalescing, replaces its staged one). True when
/// some are left.
/// A turn that takes work starts: this thread collects its posts and replies
/// ([`pva::handoff::begin`]) and the audit trail holds its records, until the turn ends.
fn begin_turn(bridge: &Bridge) -> Deferral {
    pva::handoff::begin();
    bridge.guard.audit.defer()
}

fn end_turn(bridge: &mut Bridge, budget: Option<Duration>) -> bool {
    let Some(budget) = budget else {
        bridge.end_turn();
        return false;
    };
    bridge.advise_watched();
    for i in std::mem::take(&mut bridge.urgent) {
        if let Some(pv) = bridge.pvs.get_mut(i) {
            pv.flush();
        }
    }
    let started = std::time::Instant::now();
    let mut posted = 0usize;
    while let Some(&i) = bridge.dirty.get(posted) {
        if let Some(pv) = bridge.pvs.get_mut(i) {
            pv.flush();
        }
        posted += 1;
        if posted.is_multiple_of(BUDGET_STEP)
            && (started.elapsed() >= budget || pva::handoff::waiting() >= LOOP_BACKLOG)
        {
            break;
        }
    }
    bridge.dirty.drain(..posted);
    !bridge.dirty.is_empty()
}

/// Coalescing goes on when the bridge is behind (the gateway's events outran a turn, or
/// PVs with news wait for a later turn's posts), and off once it has not been for
/// [`CAUGHT_UP_AFTER`]; each is logged. `since`: when it was last behind.
fn behind(bridge: &mut Bridge, now: bool, since: &mut Option<Instant>) {
    if now {
        *since = Some(Instant::now());
        if !bridge.coalesce {
            warn!("behind the gateway's events: data changes are coalesced (the latest value of each PV, every change of alarm severity or status kept) until the bridge catches up");
            bridge.coalesce = true;
        }
    } else if bridge.coalesce && since.is_none_or(|t| t.elapsed() >= CAUGHT_UP_AFTER) {
        info!("caught up with the gateway's events: every data change is posted again");
        bridge.coalesce = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A turn stretched past its take budget (the thread waited for a CPU) is not a
    /// backlog; turns that leave work for PRESSED_FOR are, and a stream with more ready
    /// than a turn takes is at once.
    #[test]
    fn one_slow_turn_is_not_behind_a_lasting_backlog_is() {
        let t0 = Instant::now();
        let mut p = Pressure::default();
        p.took = Some(Took::OutOfTime);
        assert!(!p.turn_done(false, t0));
        p.took = Some(Took::Dry { few: true });
        assert!(!p.turn_done(false, t0 + Duration::from_millis(5)));
        // Posts left behind turn after turn, and the take budget running out.
        p.took = Some(Took::Dry { few: true });
        assert!(!p.turn_done(true, t0 + Duration::from_millis(10)));
        p.took = Some(Took::OutOfTime);
        assert!(!p.turn_done(false, t0 + Duration::from_millis(60)));
        assert!(!p.stream_behind);
        p.took = Some(Took::OutOfTime);
        assert!(p.turn_done(false, t0 + Duration::from_millis(110)));
        assert!(
            p.stream_behind,
            "a take budget out for 100 ms: the stream is behind"
        );
        // The stream ran dry after a few events: caught up.
        p.took = Some(Took::Dry { few: true });
        assert!(!p.turn_done(false, t0 + Duration::from_millis(120)));
        // More ready than a turn takes: behind at once.
        p.took = Some(Took::Full);
        assert!(p.turn_done(false, t0 + Duration::from_millis(130)));
        assert!(p.stream_behind);
    }

    /// A turn without a take (a timer, a client) tells nothing of the stream: work left
    /// before it still counts from when it was first left.
    #[test]
    fn a_turn_without_events_keeps_the_pressure() {
        let t0 = Instant::now();
        let mut p = Pressure::default();
        p.took = Some(Took::OutOfTime);
        assert!(!p.turn_done(false, t0));
        assert!(!p.turn_done(false, t0 + Duration::from_millis(50)));
        p.took = Some(Took::OutOfTime);
        assert!(p.turn_done(false, t0 + Duration::from_millis(100)));
    }
}
