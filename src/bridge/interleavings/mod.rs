//! Generated interleavings: the bridge driven without sockets by histories of reloads,
//! clients, puts, gateway answers (delayed, reordered, failed, duplicated), data changes
//! with jumping source clocks, session losses and time, with the invariants of
//! `docs/architecture.md` checked after every step.
//!
//! The gateway is a model (`gateway.rs`); the PVs are real pvxs SharedPVs on a server
//! that is never started; time is tokio's paused clock. What is checked:
//! 1. a write reaches the gateway only for the tag its PV maps to when the write call
//!    goes, and only if that is the tag it mapped to when the put was accepted; never twice;
//!    the write calls in flight (several at once, answered in any order) hold at most one
//!    write per PV and per item, and are as many as the bridge counts, at most
//!    [`MAX_CALLS`](super::writes::calls::MAX_CALLS); a put is confirmed, or refused by
//!    System Platform, only once its own OnWriteComplete reached the bridge;
//! 2. every put gets exactly one answer (at most one at every step; one once settled),
//!    and never "abandoned";
//! 3. the timeStamps posted under a PV name never decrease, through re-opens too;
//! 4. an item a PV holds is advised at the gateway for that PV's tag; once settled, the
//!    items advised are exactly those the PVs hold, and after a new session exactly the
//!    PVs that should be advised hold one;
//! 5. a put is denied by access security exactly when a model of the ACF in force
//!    (`acf.rs`, without asLib) says so, for the group and level its PV has in the
//!    mapping in force, explicit or rule-made; and every PV carries those keys;
//! 6. a reload that leaves a PV as it was posts nothing on it;
//! 7. (buffered PVs) a PV's data item is of the kind its `buffered` says, a buffered
//!    PV's puts go through a plain item of its tag, never the buffered one; each sample
//!    of an OnBufferedDataChange is posted, in order (3 holds for them too).
//!
//! asLib holds one rule set for the process: a history holds
//! [`crate::access::test_lock`] while it runs.

mod acf;
mod buffered;
mod checks;
mod gateway;
mod gen;
mod who;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use proptest::test_runner::{
    Config as RunnerConfig, FileFailurePersistence, RngAlgorithm, TestCaseError, TestRunner,
};

use super::alarms::FeedMsg;
use super::link::Link;
use super::mapping::deploys::{Follower, Found};

use super::core::Bridge;
use super::writes::calls::CallDone;
use super::writes::failure::{classify, Failure};
use crate::config::{Candidate, Config, GalaxyAccess, DEFAULT_ACCESS_GROUP};
use crate::discover::Discovery;
use crate::gateway::{
    AlarmFeedItem, AlarmState, AlarmTransition, AlarmTransitionKind, GatewayError, MxValue,
    ProtocolCode,
};
use crate::pva::{
    self, Credentials, NtValue, PutCompletion, PutOutcome, PutReply, PutRequest, PvEvent, Server,
    ServerConfig, TimeStamp,
};
use gateway::{Gateway, Pending};
use gen::{Answering, Mapping, Step};

thread_local! {
    /// Every timeStamp posted on this thread, by PV name, in order.
    static POSTED: RefCell<Vec<(String, (i64, i32))>> = const { RefCell::new(Vec::new()) };
}

/// Called by `pv.rs` for each open and post (tests only).
pub(super) fn posted(name: &str, time: Option<&TimeStamp>) {
    if let Some(t) = time {
        POSTED.with(|p| {
            p.borrow_mut()
                .push((name.to_string(), (t.seconds, t.nanos)))
        });
    }
}

pub(in crate::bridge) fn take_posted() -> Vec<(String, (i64, i32))> {
    POSTED.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// One server for every history (never started: no sockets); PV names are unique per
/// history.
fn server() -> Arc<Server> {
    static SERVER: OnceLock<Arc<Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| Arc::new(Server::new(&ServerConfig::isolated()).unwrap()))
        .clone()
}

fn next_prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("H{}:", N.fetch_add(1, Ordering::Relaxed))
}

/// A put made by the history.
struct Put {
    pv: String,
    /// The tag its PV mapped to when the bridge took it.
    tag: Option<String>,
    answers: Arc<Mutex<Vec<(PutOutcome, Option<String>)>>>,
    /// Sent to the gateway in a write call.
    sent: bool,
    /// Its write call failed in transport: the answer is `gateway_error`.
    transport_failed: bool,
    /// System Platform refused its write (OnWriteComplete with a failed status).
    sp_refused: bool,
    /// The OnWriteComplete of its write reached the bridge.
    completed: bool,
}

struct World {
    /// The config each generation of the rules was discovered with.
    configs: HashMap<u64, Config>,
    /// The history's ACF, the rule set (of [`acf::SETS`]) the config file names (`None`:
    /// no `[access]`), and the one in force (they differ after a reload the bridge
    /// refused).
    acf: PathBuf,
    acf_written: Option<usize>,
    acf_in_force: Option<usize>,
    /// Puts made under an ACF, and those it denied; reloads refused for a group the
    /// ACF lacks.
    ruled: usize,
    denied: usize,
    refused: usize,
    prefix: String,
    bridge: Bridge,
    _events: pva::EventReceiver,
    gw: Gateway,
    mapping: Mapping,
    watched: HashSet<usize>,
    puts: Vec<Put>,
    /// The most write calls in flight at once, and the most puts of them.
    most_calls: (usize, usize),
    /// PVs that got the OnWriteComplete of a put answered already (timed out more than
    /// the write timeout before): OnWriteComplete names only the item, so the bridge
    /// takes it for the PV's next write (the contract cannot tell them apart).
    late_completed: HashSet<String>,
    /// The last timeStamp posted by PV name.
    last_posted: HashMap<String, (i64, i32)>,
    step: usize,
}

fn fail(step: usize, what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("step {step}: {what}"))
}

/// Where the histories' ACFs are written.
fn acf_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mxpva-histories-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

impl World {
    fn new(mut mapping: Mapping, acf_set: Option<usize>) -> Self {
        // A config that maps nothing is refused: a history starts with one PV at least.
        if mapping.pvs.iter().all(Option::is_none) {
            if let Some(first) = mapping.pvs.first_mut() {
                *first = Some(gen::PvSpec {
                    tag: 0,
                    int: false,
                    writable: true,
                    on_demand: false,
                    units: false,
                    group: None,
                    level: 0,
                    buffered: false,
                });
            }
        }
        let prefix = next_prefix();
        // A file without a group the config names would stop the start.
        let acf_set = acf_set.map(|i| {
            if acf::accepts(Some(i), &mapping) {
                i
            } else {
                0
            }
        });
        let acf = acf_dir().join(format!("{}acf", prefix.trim_end_matches(':')));
        if let Some(i) = acf_set {
            std::fs::write(&acf, acf::text(i)).unwrap();
        }
        let config = Config::from_str_at(
            &gen::render(&prefix, &mapping, acf_set.map(|_| acf.as_path())),
            Path::new("history.toml"),
        )
        .unwrap();
        let (events, rx) = pva::event_channel();
        let mut configs = HashMap::new();
        configs.insert(1, config.clone());
        let mut bridge = Bridge::new(config, server(), events).unwrap();
        // The alarm feed is the history's steps (`Step::Alarm`), not a task's.
        bridge.alarms.fed_by_test(&mut bridge.pvs);
        // Discoveries are the history's steps (`Step::Deploy`), not a task's.
        if mapping.rule.is_some() {
            bridge.rules.follower = Some(Follower::idle());
        }
        World {
            configs,
            acf,
            acf_written: acf_set,
            acf_in_force: acf_set,
            ruled: 0,
            denied: 0,
            refused: 0,
            prefix,
            bridge,
            _events: rx,
            gw: Gateway::new(),
            mapping,
            watched: HashSet::new(),
            puts: Vec::new(),
            most_calls: (0, 0),
            late_completed: HashSet::new(),
            last_posted: HashMap::new(),
            step: 0,
        }
    }

    fn name(&self, i: usize) -> String {
        format!("{}P{i}", self.prefix)
    }

    /// The end of the adapter's turn: the bridge posts, and its calls reach the gateway.
    fn turn(&mut self) -> Result<(), TestCaseError> {
        self.bridge.end_turn();
        let (advise, writes) = self.bridge.turn_done();
        for w in &writes {
            self.check_write_call(w)?;
        }
        if self.gw.up {
            self.gw.take(advise, writes);
            self.check_calls_in_flight()?;
        }
        Ok(())
    }

    /// Invariant 1 on the write calls in flight: at most one write per PV and per item
    /// across them, as many calls as the bridge counts, and no more than its bound.
    fn check_calls_in_flight(&mut self) -> Result<(), TestCaseError> {
        let mut pvs = HashSet::new();
        let mut items = HashSet::new();
        let mut calls = 0;
        for p in &self.gw.pending {
            let Pending::Write(w) = p else { continue };
            calls += 1;
            for ((pv, id), e) in w.puts.iter().zip(&w.entries) {
                if !pvs.insert(*pv) || !items.insert(e.item_handle.0) {
                    return Err(fail(
                        self.step,
                        format!(
                            "write {id} to item {} goes while another write of its PV ({pv:?}) or item is in a call in flight",
                            e.item_handle.0
                        ),
                    ));
                }
            }
        }
        self.most_calls = self.most_calls.max((calls, pvs.len()));
        let counted = self.bridge.writes.calls_in_flight();
        if calls != counted || calls > super::writes::calls::MAX_CALLS {
            return Err(fail(
                self.step,
                format!(
                    "{calls} write calls in flight at the gateway, {counted} counted by the bridge (at most {})",
                    super::writes::calls::MAX_CALLS
                ),
            ));
        }
        Ok(())
    }

    /// Invariant 1, as a write call leaves the bridge.
    fn check_write_call(
        &mut self,
        call: &super::writes::calls::WriteCall,
    ) -> Result<(), TestCaseError> {
        for (entry, (id, _)) in call.entries.iter().zip(&call.puts) {
            let Some(n) = value_of(&entry.value) else {
                return Err(fail(self.step, format!("a write of {:?}", entry.value)));
            };
            let item_tag = self.gw.items.get(&entry.item_handle.0).cloned();
            if self.gw.buffered.contains_key(&entry.item_handle.0) {
                return Err(fail(
                    self.step,
                    format!("a write through buffered item {}", entry.item_handle.0),
                ));
            }
            let current = self
                .bridge
                .pvs
                .get(*id)
                .map(|pv| pv.cfg.tag.as_str().to_string());
            let Some(put) = self.puts.get_mut(n) else {
                return Err(fail(self.step, format!("a write of value {n} no put made")));
            };
            put.sp_refused = item_tag.as_deref() == Some(gateway::REFUSED_TAG);
            if std::mem::replace(&mut put.sent, true) {
                return Err(fail(self.step, format!("put {n} to {} sent twice", put.pv)));
            }
            if item_tag.is_none() || item_tag != put.tag || item_tag != current {
                return Err(fail(
                    self.step,
                    format!(
                        "put {n} to {} accepted for {:?} goes to item {} of {item_tag:?}; the PV maps {current:?} now",
                        put.pv, put.tag, entry.item_handle.0
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn apply(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let before = self.mapping.clone();
        let before_ids = self.ids_by_name();
        match step {
            Step::Reload(edits) => self.reload(edits),
            Step::Acf(set, edits) => {
                if let Some(i) = set {
                    std::fs::write(&self.acf, acf::text(*i)).unwrap();
                }
                self.acf_written = *set;
                self.reload(edits);
            }
            Step::Watch(i, on) => {
                let name = self.name(*i);
                let mapped = self.bridge.pvs.id_of_name(&name).is_some();
                if *on && mapped && self.watched.insert(*i) {
                    self.bridge
                        .on_pv_event(PvEvent::Connected { pv: name.into() });
                } else if !*on && self.watched.remove(i) {
                    self.bridge
                        .on_pv_event(PvEvent::Disconnected { pv: name.into() });
                }
            }
            Step::Put(i, who) => self.put(*i, who)?,
            Step::Answer(k, how) => self.answer(*k, *how)?,
            Step::Events(n) => {
                for _ in 0..*n {
                    let Some(ev) = self.gw.events.pop_front() else {
                        break;
                    };
                    if let crate::gateway::SessionEvent::WriteComplete(wc) = &ev {
                        let n = self.gw.completes.remove(&wc.worker_sequence);
                        if let Some(p) = n.and_then(|n| self.puts.get_mut(n)) {
                            p.completed = true;
                            if !p.answers.lock().unwrap().is_empty() {
                                self.late_completed.insert(p.pv.clone());
                            }
                        }
                    }
                    self.bridge.on_session_event(ev);
                }
            }
            Step::Change(t, jump) => {
                if self.gw.up {
                    self.gw.change(*t, *jump);
                }
            }
            Step::Lose => {
                if self.gw.up {
                    self.gw.lose();
                    self.bridge.close_link("the history lost the session");
                }
            }
            Step::Reconnect => self.reconnect(),
            Step::Wait(ms) => {
                tokio::time::advance(Duration::from_millis(*ms)).await;
                self.bridge.on_timers();
            }
            Step::Deploy { attrs, stale, fail } => self.deploy(*attrs, *stale, *fail),
            Step::Flush => self.gw.flush(),
            Step::Alarm {
                tag,
                state,
                jump_ms,
            } => self.alarm(*tag, *state, *jump_ms),
        }
        self.turn()?;
        self.check_step(step, &before, &before_ids)?;
        self.check_access()?;
        self.check_buffered()
    }

    /// SIGHUP, the config file changed by `edits`, the ACF as written.
    fn reload(&mut self, edits: &[gen::Edit]) {
        let mapping = gen::edited(&self.mapping, edits);
        let acf = self.acf_written.map(|_| self.acf.as_path());
        let text = gen::render(&self.prefix, &mapping, acf);
        // A file that does not validate (it maps nothing) is refused as a whole; so is
        // one that names a group the ACF does not have, and the ACF with it.
        if let Ok(config) = Config::from_str_at(&text, Path::new("history.toml")) {
            let taken = acf::accepts(self.acf_written, &mapping);
            self.refused += usize::from(!taken);
            if taken {
                self.mapping = mapping;
                self.acf_in_force = self.acf_written;
                if !config.discover.is_empty() && self.bridge.rules.follower.is_none() {
                    // follow_rules counts it on to the first generation.
                    let mut idle = Follower::idle();
                    idle.generation = 0;
                    self.bridge.rules.follower = Some(idle);
                }
            }
            let copy = config.clone();
            self.bridge
                .reload_config(config, Path::new("history.toml"), std::time::Instant::now());
            if let (true, Some(f)) = (taken, &self.bridge.rules.follower) {
                self.configs.insert(f.generation, copy);
            }
        }
        for (i, p) in self.mapping.pvs.iter().enumerate() {
            if p.is_none() {
                self.watched.remove(&i);
                // A client of a PV removed is gone; one that comes back later to the
                // same name opens a new channel.
                self.last_posted.remove(&self.name(i));
            }
        }
    }

    /// The access group and level of PV `i` (of the names, then the rule's) in the
    /// mapping in force.
    pub(super) fn access_keys(&self, i: usize) -> Option<(&'static str, u8)> {
        match self.mapping.pvs.get(i) {
            Some(spec) => spec.as_ref().map(|p| {
                let group = p.group.and_then(|g| gen::GROUPS.get(g).copied());
                (group.unwrap_or(DEFAULT_ACCESS_GROUP), p.level)
            }),
            None => self
                .mapping
                .rule
                .as_ref()
                .map(|r| (gen::GROUPS[r.group], r.level)),
        }
    }

    /// A discovery ends, made with the rules of the generation in force (or the one
    /// before: a result the bridge must ignore).
    fn deploy(&mut self, attrs: u8, stale: bool, fail: bool) {
        let Some(current) = self.bridge.rules.follower.as_ref().map(|f| f.generation) else {
            return;
        };
        let generation = if stale {
            current.saturating_sub(1)
        } else {
            current
        };
        let Some(config) = self.configs.get(&generation) else {
            return;
        };
        let result = if fail {
            Err("the Galaxy Repository database cannot be reached".to_string())
        } else {
            let candidates: Vec<Candidate> = gen::RULE_TAGS
                .iter()
                .enumerate()
                .filter(|(bit, _)| attrs & (1 << bit) != 0)
                .filter_map(|(_, &t)| {
                    let tag = gen::TAGS.get(t)?;
                    let (object, attribute) = tag.split_once('.')?;
                    Some(Candidate {
                        rule: 0,
                        name: format!("{}{object}:{attribute}", self.prefix),
                        tag: tag.to_string(),
                        pv_type: crate::config::PvType::Scalar(crate::config::ScalarType::Float64),
                        units: None,
                        description: None,
                        access: GalaxyAccess::Write,
                        alarms: Vec::new(),
                        note: "Double, Operate".into(),
                    })
                })
                .collect();
            let made = config.rule_pvs(&candidates);
            Ok((
                Discovery {
                    candidates,
                    skipped: Vec::new(),
                    objects: 1,
                },
                made,
            ))
        };
        self.bridge.on_discovered(Found {
            generation,
            result,
            why: "deploy".into(),
            started: std::time::Instant::now(),
        });
    }

    /// A transition of the HiHi alarm of attribute `tag` from the alarm feed.
    fn alarm(&mut self, tag: usize, state: u8, jump_ms: i64) {
        let Some(t) = gen::TAGS.get(tag) else { return };
        let at = self.gw.alarm_clock(jump_ms);
        let state = match state {
            0 => AlarmState::UnackAlm,
            1 => AlarmState::AckAlm,
            2 => AlarmState::UnackRtn,
            _ => AlarmState::AckRtn,
        };
        let kind = match state {
            AlarmState::UnackAlm => AlarmTransitionKind::Raise,
            AlarmState::AckAlm | AlarmState::AckRtn => AlarmTransitionKind::Acknowledge,
            AlarmState::UnackRtn => AlarmTransitionKind::Clear,
        };
        let transition = AlarmTransition {
            reference: format!("Galaxy!Area001.{t}.HiHi"),
            source_object: String::new(),
            alarm_type: "HiHi".into(),
            kind,
            state,
            priority: 100,
            raised_at: Some(at),
            at: Some(at),
            operator: String::new(),
            comment: String::new(),
            category: String::new(),
            description: String::new(),
            current_value: None,
            limit_value: None,
        };
        let msg = FeedMsg::Item(AlarmFeedItem::Transition(transition));
        let b = &mut self.bridge;
        b.alarms.on_feed(msg, &mut b.pvs, &mut b.dirty);
    }

    fn reconnect(&mut self) {
        if !self.gw.up {
            self.gw.connect();
            self.bridge.on_connected(Link {
                session: format!("S{}", self.gw.session),
                users: HashMap::new(),
            });
        }
    }

    /// A put by `who` to PV `i` (of the names, then the rule's), if it is open; then
    /// invariant 5 on its answer.
    fn put(&mut self, i: usize, who: &who::Who) -> Result<(), TestCaseError> {
        let name = match i.checked_sub(gen::NAMES) {
            None => self.name(i),
            Some(r) => format!("{}{}", self.prefix, gen::RULE_NAMES[r]),
        };
        let Some(pv) = self
            .bridge
            .pvs
            .id_of_name(&name)
            .and_then(|id| self.bridge.pvs.get(id))
        else {
            return Ok(());
        };
        // pvxs holds a client's operations until the PV is open.
        if !pv.pv.is_open() {
            return Ok(());
        }
        let Some((group, level)) = self.access_keys(i) else {
            return Err(fail(
                self.step,
                format!("{name} is served, but the mapping in force has no such PV"),
            ));
        };
        let n = self.puts.len();
        let spec = self.mapping.pvs.get(i).cloned().flatten();
        let value = match spec.as_ref().map(|p| p.int) {
            Some(true) => NtValue::Int32(n as i32),
            _ => NtValue::Float64(n as f64),
        };
        let answers: Arc<Mutex<Vec<(PutOutcome, Option<String>)>>> = Arc::default();
        let mut completion = PutCompletion::new(cxx::UniquePtr::null());
        let record = answers.clone();
        completion.observe(Box::new(move |r: &PutReply<'_>| {
            record
                .lock()
                .unwrap()
                .push((r.outcome, r.message.map(str::to_string)));
        }));
        let writable = match &spec {
            Some(p) => p.writable,
            None => pv.cfg.write.is_some(),
        };
        self.puts.push(Put {
            pv: name.clone(),
            tag: Some(pv.cfg.tag.as_str().to_string()),
            answers,
            sent: false,
            transport_failed: false,
            sp_refused: false,
            completed: false,
        });
        self.bridge.on_pv_event(PvEvent::Put(PutRequest {
            pv: name.as_str().into(),
            value: Some(value),
            marked: vec!["value".into()],
            credentials: Credentials {
                peer: format!("{}:40{n:03}", who.host()),
                iface: "127.0.0.1:5075".into(),
                method: who.method().into(),
                account: who.account().into(),
                roles: who.roles(),
            },
            completion,
            refused: (!writable).then(|| format!("{name} is read-only: put refused")),
        }));
        self.check_decision(n, &name, (group, level), who)
    }

    fn answer(&mut self, k: usize, how: Answering) -> Result<(), TestCaseError> {
        if self.gw.pending.is_empty() {
            return Ok(());
        }
        let call = self.gw.pending.remove(k % self.gw.pending.len());
        match call {
            Pending::SubscribeBuffered { call, tags } => self.answer_buffered(call, &tags, how),
            Pending::Subscribe { call, tags } => {
                let results = match how {
                    Answering::Failed => Err("SubscribeBulk failed: transport error".to_string()),
                    _ => Ok(self.gw.subscribe(&tags)),
                };
                if let (Answering::Twice, Ok(r)) = (how, &results) {
                    self.bridge.on_subscribed(call, Ok(r.clone()));
                }
                self.bridge.on_subscribed(call, results);
            }
            Pending::Write(w) => {
                let result = match how {
                    Answering::Failed => Err(classify(Failure::Call(&GatewayError::Connect {
                        endpoint: "history".into(),
                        message: "transport error".into(),
                    }))),
                    _ => Ok(self
                        .gw
                        .write(&w)
                        .into_iter()
                        .map(|r| {
                            r.map_err(|message| {
                                classify(Failure::Call(&GatewayError::Refused {
                                    call: "WriteBulk",
                                    code: ProtocolCode::InvalidRequest,
                                    message,
                                }))
                            })
                        })
                        .collect::<Vec<_>>()),
                };
                let done = |result| CallDone {
                    call: w.call,
                    puts: w.puts.clone(),
                    result,
                };
                if let (Answering::Twice, Ok(r)) = (how, &result) {
                    self.bridge.on_call_done(done(Ok(r.clone())));
                }
                let failed = matches!(how, Answering::Failed);
                // The puts of the call not answered yet (a reload may have answered some).
                let puts: Vec<usize> = w
                    .entries
                    .iter()
                    .filter_map(|e| value_of(&e.value))
                    .filter(|&n| {
                        self.puts
                            .get(n)
                            .is_some_and(|p| p.answers.lock().unwrap().is_empty())
                    })
                    .collect();
                self.bridge.on_call_done(done(result));
                for n in puts.into_iter().filter(|_| failed) {
                    let Some(p) = self.puts.get_mut(n) else {
                        continue;
                    };
                    p.transport_failed = true;
                    let a = p.answers.lock().unwrap();
                    if !matches!(a.as_slice(), [(PutOutcome::GatewayError, Some(_))]) {
                        return Err(fail(self.step, format!("put {n} to {} whose write call failed in transport was answered {a:?}", p.pv)));
                    }
                }
            }
        }
        Ok(())
    }

    /// The history's steps, then the checks once settled.
    async fn run(&mut self, steps: &[Step]) -> Result<(), TestCaseError> {
        self.reconnect();
        self.turn()?;
        let ids = self.ids_by_name();
        self.check_step(&Step::Wait(0), &self.mapping.clone(), &ids)?;
        for (n, step) in steps.iter().enumerate() {
            self.step = n;
            self.apply(step).await?;
        }
        self.step = steps.len();
        self.check_settled().await
    }

    /// The PVs leave the shared server; the ACF goes.
    fn close(self) {
        let _ = std::fs::remove_file(&self.acf);
        for id in self.bridge.pvs.ids() {
            if let Some(pv) = self.bridge.pvs.get(id) {
                let _ = self.bridge.server.remove_pv(pv.cfg.name.as_str());
            }
        }
    }
}

/// The put a written value is of (each put writes its own number).
fn value_of(v: &MxValue) -> Option<usize> {
    match v {
        MxValue::Double(v) => Some(*v as usize),
        MxValue::Int32(v) => Some(*v as usize),
        _ => None,
    }
}

/// Counts of what the histories did, printed at the end.
#[derive(Default, Debug)]
struct Counts {
    histories: usize,
    steps: usize,
    kinds: [usize; gen::KINDS.len()],
    puts: usize,
    ruled: usize,
    denied: usize,
    refused: usize,
    writes: usize,
    /// Histories that had 2, 3, 4 write calls in flight at once (at most).
    calls_in_flight: [usize; 3],
    /// The history that failed first (counting from 1), before shrinking.
    first_failure: Option<usize>,
}

fn run_history(
    mapping: Mapping,
    acf_set: Option<usize>,
    steps: Vec<Step>,
    counts: &Mutex<Counts>,
) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    // No other test's ACF may come into asLib while the history runs.
    let _acf = crate::access::test_lock();
    rt.block_on(async {
        take_posted();
        let mut w = World::new(mapping, acf_set);
        let result = w.run(&steps).await;
        {
            let mut c = counts.lock().unwrap();
            c.histories += 1;
            c.steps += steps.len();
            for s in &steps {
                if let Some(k) = c.kinds.get_mut(gen::kind(s)) {
                    *k += 1;
                }
            }
            c.puts += w.puts.len();
            c.denied += w.denied;
            c.ruled += w.ruled;
            c.refused += w.refused;
            c.writes += w.gw.applied;
            if let Some(h) = w
                .most_calls
                .0
                .checked_sub(2)
                .and_then(|k| c.calls_in_flight.get_mut(k))
            {
                *h += 1;
            }
            if result.is_err() && c.first_failure.is_none() {
                c.first_failure = Some(c.histories);
            }
        }
        w.close();
        result
    })
}

/// How many histories a run makes (`MXPVA_HISTORIES` overrides).
fn histories() -> u32 {
    std::env::var("MXPVA_HISTORIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000)
}

#[test]
fn generated_histories_keep_every_invariant() {
    let cases = histories();
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        max_shrink_iters: 2_000,
        // ChaCha, unoptimised in a test build, took a quarter of the run's CPU.
        rng_algorithm: RngAlgorithm::XorShift,
        ..RunnerConfig::default()
    });
    let counts = Mutex::new(Counts::default());
    let started = std::time::Instant::now();
    let result = runner.run(&gen::any_history(50..80), |(mapping, acf, steps)| {
        run_history(mapping, acf, steps, &counts)
    });
    let _ = std::fs::remove_dir_all(acf_dir());
    let c = counts.lock().unwrap();
    let kinds: Vec<String> = gen::KINDS
        .iter()
        .zip(c.kinds)
        .map(|(k, n)| format!("{k} {:.1}%", 100.0 * n as f64 / c.steps.max(1) as f64))
        .collect();
    println!(
        "interleavings: {} histories, {} steps ({}), {} puts ({} under an ACF, {} of them denied), {} reloads refused for a group the ACF lacks, {} writes applied; {:?} histories had at most 2, 3, 4 write calls in flight at once; in {:.1} s",
        c.histories,
        c.steps,
        kinds.join(", "),
        c.puts,
        c.ruled,
        c.denied,
        c.refused,
        c.writes,
        c.calls_in_flight,
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!(
            "history {} failed first (the seed is saved in proptest-regressions/); shrunk: {e}",
            c.first_failure.unwrap_or(0)
        );
    }
}
