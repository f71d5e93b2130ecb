//! Generated interleavings: the bridge driven without sockets by histories of reloads,
//! clients, puts, gateway answers (delayed, reordered, failed, duplicated), data changes
//! with jumping source clocks, session losses and time, with the invariants of
//! `docs/architecture.md` checked after every step.
//!
//! The gateway is a model (`gateway.rs`); the PVs are real pvxs SharedPVs on a server
//! that is never started; time is tokio's paused clock. The histories are generated in
//! `gen.rs`, applied step by step in `steps.rs` and checked in `checks.rs` (buffered PVs
//! in `buffered.rs`); this file holds the world they act on and the test. What is checked:
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
mod fixed;
mod gateway;
mod gen;
mod steps;
mod who;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use proptest::test_runner::{
    Config as RunnerConfig, FileFailurePersistence, RngAlgorithm, TestCaseError, TestRunner,
};

use super::core::Bridge;
use super::mapping::deploys::Follower;
use crate::config::{Config, DEFAULT_ACCESS_GROUP};
use crate::gateway::MxValue;
use crate::pva::{self, PutOutcome, Server, ServerConfig, TimeStamp};
use gateway::Gateway;
use gen::{Mapping, Step};

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

/// The answers a put got: its outcome and message, each time the bridge answered.
type Answers = Arc<Mutex<Vec<(PutOutcome, Option<String>)>>>;

/// A put made by the history.
struct Put {
    pv: String,
    /// The tag its PV mapped to when the bridge took it.
    tag: Option<String>,
    answers: Answers,
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
    /// `follow_batch`: the bridge's [`WriteCalls::follow_batch`](crate::bridge::writes::calls::WriteCalls::follow_batch).
    fn new(mut mapping: Mapping, acf_set: Option<usize>, follow_batch: usize) -> Self {
        // A config that maps nothing is refused: a history starts with one PV at least.
        if mapping.pvs.iter().all(Option::is_none) {
            if let Some(first) = mapping.pvs.first_mut() {
                *first = Some(gen::PvSpec::writable(0));
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
        bridge.writes.follow_batch = follow_batch;
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
    follow_batch: usize,
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
        let mut w = World::new(mapping, acf_set, follow_batch);
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
    let result = runner.run(
        &gen::any_history(50..80),
        |(mapping, acf, follow, steps)| run_history(mapping, acf, follow, steps, &counts),
    );
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
