//! The history's steps, applied to the bridge: reloads (and the ACF with them), clients
//! watching, puts, the gateway's answers and events, discoveries, alarm transitions,
//! session losses and time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::test_runner::TestCaseError;

use super::gateway::Pending;
use super::gen::{self, Answering, Step};
use super::{acf, fail, value_of, who, Answers, Put, World};
use crate::bridge::alarms::FeedMsg;
use crate::bridge::link::Link;
use crate::bridge::mapping::deploys::{Follower, Found};
use crate::bridge::writes::calls::CallDone;
use crate::bridge::writes::failure::{classify, Failure};
use crate::config::{Candidate, Config, GalaxyAccess};
use crate::discover::Discovery;
use crate::gateway::{
    AlarmFeedItem, AlarmState, AlarmTransition, AlarmTransitionKind, GatewayError, ProtocolCode,
};
use crate::pva::{Credentials, NtValue, PutCompletion, PutOutcome, PutReply, PutRequest, PvEvent};

impl World {
    pub(super) async fn apply(&mut self, step: &Step) -> Result<(), TestCaseError> {
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
            Step::Events(n) => self.events(*n),
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

    pub(super) fn reconnect(&mut self) {
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
        let answers: Answers = Arc::default();
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

    /// The next `n` events of the gateway's stream reach the bridge.
    fn events(&mut self, n: usize) {
        for _ in 0..n {
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
                if matches!(how, Answering::EventsFirst) {
                    // The stream brings the writes' OnWriteCompletes (and all before
                    // them) ahead of the call's reply.
                    self.events(self.gw.events.len());
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
}
