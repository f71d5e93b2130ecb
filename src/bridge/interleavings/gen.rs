//! The inputs of generated histories: mappings a reload installs, and the steps.

use std::path::Path;

use proptest::prelude::*;

use super::who::{any_who, Who};

/// PV names of a history (`<prefix>P0` ...), and the tags they may map to.
pub const NAMES: usize = 5;
pub const TAGS: [&str; 5] = [
    "Pump001.Speed",
    "Pump001.SpeedSP",
    "Pump001.MaxSpeed",
    "Tank001.Level",
    "Tank001.Temp",
];

/// One `[[pv]]` of a generated mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct PvSpec {
    pub tag: usize,
    pub int: bool,
    pub writable: bool,
    pub on_demand: bool,
    pub units: bool,
    /// Its `access_group`, of [`GROUPS`] (`None`: not set, `DEFAULT`).
    pub group: Option<usize>,
    /// Its `access_level`.
    pub level: u8,
    /// `buffered = true`: advised as a buffered item.
    pub buffered: bool,
}

/// A `[[discover]]` rule: it makes `<prefix>Tank001:Level` and `<prefix>Tank001:Temp`
/// of the Galaxy's `Tank001`, with these keys.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub group: usize,
    pub level: u8,
    pub writable: bool,
}

pub const GROUPS: [&str; 2] = ["OPS", "ENG"];
/// The attributes the rule picks, by their index in [`TAGS`].
pub const RULE_TAGS: [usize; 2] = [3, 4];
/// The names of the PVs the rule makes, after the history's prefix.
pub const RULE_NAMES: [&str; 2] = ["Tank001:Level", "Tank001:Temp"];

/// A mapping: which of the names are PVs, and how; and the rule, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub pvs: Vec<Option<PvSpec>>,
    pub rule: Option<RuleSpec>,
}

impl PvSpec {
    /// A plain writable PV of tag `tag`, in the default access group.
    pub fn writable(tag: usize) -> Self {
        PvSpec {
            tag,
            int: false,
            writable: true,
            on_demand: false,
            units: false,
            group: None,
            level: 0,
            buffered: false,
        }
    }
}

pub fn any_pv() -> impl Strategy<Value = PvSpec> {
    (any_pv_plain(), prop::bool::weighted(0.3)).prop_map(|(p, buffered)| PvSpec { buffered, ..p })
}

fn any_pv_plain() -> impl Strategy<Value = PvSpec> {
    (
        0..TAGS.len(),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.7),
        prop::bool::weighted(0.35),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.6, 0..GROUPS.len()),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(tag, int, writable, on_demand, units, group, level)| PvSpec {
                tag,
                int,
                writable,
                on_demand,
                units,
                group,
                level: u8::from(level),
                buffered: false,
            },
        )
}

fn any_rule() -> impl Strategy<Value = RuleSpec> {
    (0..GROUPS.len(), 0..2u8, any::<bool>()).prop_map(|(group, level, writable)| RuleSpec {
        group,
        level,
        writable,
    })
}

pub fn any_mapping() -> impl Strategy<Value = Mapping> {
    (
        prop::collection::vec(prop::option::weighted(0.8, any_pv()), NAMES),
        prop::option::weighted(0.5, any_rule()),
    )
        .prop_map(|(pvs, rule)| Mapping { pvs, rule })
}

/// A mapping close to `base`: most PVs as they were, some changed, added or removed
/// (so that unchanged PVs are common and re-tags of PVs in service happen).
pub fn any_reload() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(any_edit(), 1..3)
}

/// One change a reload makes to the mapping in force.
#[derive(Debug, Clone)]
pub enum Edit {
    Retag(usize, usize),
    Retype(usize),
    Writable(usize),
    Mode(usize),
    Units(usize),
    /// `buffered` switched (in place).
    Buffered(usize),
    Remove(usize),
    Add(usize, PvSpec),
    /// The PV's `access_group` goes to the next of none, `OPS`, `ENG`; its
    /// `access_level` flips.
    Group(usize),
    Level(usize),
    /// The rule's `access_group`, `access_level` or `writable` changes; the rule comes or goes.
    RuleGroup,
    RuleLevel,
    RuleWritable,
    Rule(Option<RuleSpec>),
}

fn any_edit() -> impl Strategy<Value = Edit> {
    let n = 0..NAMES;
    prop_oneof![
        3 => (n.clone(), 0..TAGS.len()).prop_map(|(i, t)| Edit::Retag(i, t)),
        1 => n.clone().prop_map(Edit::Retype),
        2 => n.clone().prop_map(Edit::Writable),
        2 => n.clone().prop_map(Edit::Mode),
        1 => n.clone().prop_map(Edit::Units),
        2 => n.clone().prop_map(Edit::Buffered),
        1 => n.clone().prop_map(Edit::Remove),
        2 => (n.clone(), any_pv()).prop_map(|(i, p)| Edit::Add(i, p)),
        2 => n.clone().prop_map(Edit::Group),
        1 => n.prop_map(Edit::Level),
        2 => Just(Edit::RuleGroup),
        1 => Just(Edit::RuleLevel),
        1 => Just(Edit::RuleWritable),
        1 => prop::option::weighted(0.7, any_rule()).prop_map(Edit::Rule),
    ]
}

/// `base` with `edits` made.
pub fn edited(base: &Mapping, edits: &[Edit]) -> Mapping {
    let mut m = base.clone();
    for e in edits {
        match e {
            Edit::Retag(i, t) => {
                if let Some(Some(p)) = m.pvs.get_mut(*i) {
                    p.tag = *t;
                }
            }
            Edit::Retype(i) => {
                if let Some(Some(p)) = m.pvs.get_mut(*i) {
                    p.int = !p.int;
                }
            }
            Edit::Writable(i) => {
                if let Some(Some(p)) = m.pvs.get_mut(*i) {
                    p.writable = !p.writable;
                }
            }
            Edit::Mode(i) => {
                if let Some(Some(p)) = m.pvs.get_mut(*i) {
                    p.on_demand = !p.on_demand;
                }
            }
            Edit::Units(i) => {
                if let Some(Some(p)) = m.pvs.get_mut(*i) {
                    p.units = !p.units;
                }
            }
            Edit::Group(i) => {
                if let Some(Some(p)) = m.pvs.get_mut(*i) {
                    p.group = match p.group {
                        None => Some(0),
                        Some(g) if g + 1 < GROUPS.len() => Some(g + 1),
                        Some(_) => None,
                    };
                }
            }
            Edit::Level(i) => {
                if let Some(Some(p)) = m.pvs.get_mut(*i) {
                    p.level = 1 - p.level.min(1);
                }
            }
            Edit::Buffered(i) => {
                if let Some(Some(p)) = m.pvs.get_mut(*i) {
                    p.buffered = !p.buffered;
                }
            }
            Edit::Remove(i) => {
                if let Some(slot) = m.pvs.get_mut(*i) {
                    *slot = None;
                }
            }
            Edit::Add(i, p) => {
                if let Some(slot @ None) = m.pvs.get_mut(*i) {
                    *slot = Some(p.clone());
                }
            }
            Edit::RuleGroup => {
                if let Some(r) = m.rule.as_mut() {
                    r.group = (r.group + 1) % GROUPS.len();
                }
            }
            Edit::RuleLevel => {
                if let Some(r) = m.rule.as_mut() {
                    r.level = 1 - r.level.min(1);
                }
            }
            Edit::RuleWritable => {
                if let Some(r) = m.rule.as_mut() {
                    r.writable = !r.writable;
                }
            }
            Edit::Rule(r) => m.rule = r.clone(),
        }
    }
    m
}

/// The config text of `mapping`, PV names under `prefix`, its ACF at `acf` (no
/// `[access]` without).
pub fn render(prefix: &str, mapping: &Mapping, acf: Option<&Path>) -> String {
    let mut text = acf
        .map(|f| format!("[access]\nfile = \"{}\"\n", f.display()))
        .unwrap_or_default();
    text.push_str(
        r#"[gateway]
endpoint = "http://127.0.0.1:1"
subscribe_chunk = 2
request_timeout = "2s"
write_timeout = "3s"
[alarms]
enabled = true
table = ""
[status]
prefix = ""
"#,
    );
    for (i, p) in mapping.pvs.iter().enumerate() {
        let Some(p) = p else { continue };
        text.push_str(&format!(
            "[[pv]]\nname = \"{prefix}P{i}\"\ntag = \"{}\"\ntype = \"{}\"\nwritable = {}\n",
            TAGS[p.tag],
            if p.int { "int32" } else { "float64" },
            p.writable,
        ));
        if p.on_demand {
            text.push_str("subscribe = \"on_demand\"\nlinger = \"1s\"\n");
        }
        if p.units {
            text.push_str("units = \"rpm\"\n");
        }
        if let Some(g) = p.group {
            text.push_str(&format!("access_group = \"{}\"\n", GROUPS[g]));
        }
        if p.level != 0 {
            text.push_str(&format!("access_level = {}\n", p.level));
        }
        if p.buffered {
            text.push_str("buffered = true\n");
        }
    }
    if let Some(r) = &mapping.rule {
        text.push_str(&format!(
            "[[discover]]\nroot = \"Tank001\"\nattributes = [\"Level\", \"Temp\"]\nname = \"{prefix}{{object}}:{{attribute}}\"\naccess_group = \"{}\"\naccess_level = {}\nwritable = {}\n",
            GROUPS[r.group], r.level, r.writable
        ));
    }
    text
}

/// One input of a history.
#[derive(Debug, Clone)]
pub enum Step {
    /// SIGHUP with the mapping in force changed by these edits.
    Reload(Vec<Edit>),
    /// A client connects to a PV (its first) or leaves it (its last).
    Watch(usize, bool),
    /// A client's put to a PV: one of the [`NAMES`], or past them one of the rule's
    /// [`RULE_NAMES`].
    Put(usize, Who),
    /// The gateway answers the `k`-th call in flight (modulo how many): as asked, with
    /// the call failing in transport, or twice.
    Answer(usize, Answering),
    /// The gateway's event stream delivers its next `n` events.
    Events(usize),
    /// An attribute changes at the gateway, its source clock `jump_ms` from the last time.
    Change(usize, i64),
    /// The session is lost.
    Lose,
    /// A new session is up (when none is).
    Reconnect,
    /// Time passes.
    Wait(u64),
    /// A discovery ends: of the rules in force, or of the rules before the last reload
    /// (`stale`), or failing (the Galaxy unreachable); the Galaxy holds the rule's
    /// attributes in `attrs` (a bit each).
    Deploy { attrs: u8, stale: bool, fail: bool },
    /// The alarm feed: an alarm of an attribute moves to `state` (0 to 3: UnackAlm,
    /// AckAlm, UnackRtn, AckRtn), at its source clock `jump_ms` from its last time.
    Alarm { tag: usize, state: u8, jump_ms: i64 },
    /// The ACF is rewritten with rule set `set` of [`super::acf::SETS`] (or `[access]` leaves the
    /// config) and the config reloaded (SIGHUP), with these changes to the access
    /// groups of the mapping besides.
    Acf(Option<usize>, Vec<Edit>),
    /// The buffered update interval passes: each buffered item holding samples gets its
    /// OnBufferedDataChange (queued in the event stream).
    Flush,
}

#[derive(Debug, Clone, Copy)]
pub enum Answering {
    Asked,
    Failed,
    Twice,
    /// Answered as asked, after the stream brought the events the call caused.
    EventsFirst,
}

pub fn any_step() -> impl Strategy<Value = Step> {
    let n = 0..NAMES;
    prop_oneof![
        6 => any_reload().prop_map(Step::Reload),
        6 => (n.clone(), any::<bool>()).prop_map(|(i, w)| Step::Watch(i, w)),
        12 => (prop_oneof![3 => 0..NAMES, 1 => NAMES..NAMES + RULE_NAMES.len()], any_who())
            .prop_map(|(i, who)| Step::Put(i, who)),
        15 => (0..8usize, prop_oneof![6 => Just(Answering::Asked), 1 => Just(Answering::Failed), 1 => Just(Answering::Twice), 2 => Just(Answering::EventsFirst)])
            .prop_map(|(k, a)| Step::Answer(k, a)),
        12 => (1..6usize).prop_map(Step::Events),
        8 => (0..TAGS.len(), prop_oneof![8 => 1..500i64, 1 => -30_000..0i64, 1 => 10_000..40_000i64])
            .prop_map(|(t, j)| Step::Change(t, j)),
        5 => Just(Step::Lose),
        5 => Just(Step::Reconnect),
        6 => prop_oneof![5..300u64, 900..3_500u64].prop_map(Step::Wait),
        5 => (0..4u8, prop::bool::weighted(0.2), prop::bool::weighted(0.2))
            .prop_map(|(attrs, stale, fail)| Step::Deploy { attrs, stale, fail }),
        5 => (0..TAGS.len(), 0..4u8, prop_oneof![8 => 1..500i64, 1 => -30_000..0i64, 1 => 10_000..40_000i64])
            .prop_map(|(tag, state, jump_ms)| Step::Alarm { tag, state, jump_ms }),
        5 => (any_acf(), prop::collection::vec(any_group_edit(), 0..2))
            .prop_map(|(set, edits)| Step::Acf(set, edits)),
        5 => Just(Step::Flush),
    ]
}

/// Which kind a step is, for the counts printed.
pub fn kind(step: &Step) -> usize {
    match step {
        Step::Reload(_) => 0,
        Step::Watch(..) => 1,
        Step::Put(..) => 2,
        Step::Answer(..) => 3,
        Step::Events(_) => 4,
        Step::Change(..) => 5,
        Step::Lose => 6,
        Step::Reconnect => 7,
        Step::Wait(_) => 8,
        Step::Deploy { .. } => 9,
        Step::Alarm { .. } => 10,
        Step::Acf(..) => 11,
        Step::Flush => 12,
    }
}

pub const KINDS: [&str; 13] = [
    "reload",
    "watch",
    "put",
    "answer",
    "events",
    "change",
    "lose",
    "reconnect",
    "wait",
    "deploy",
    "alarm",
    "acf",
    "flush",
];

/// A change of an access group or level, made with an ACF reload.
fn any_group_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => (0..NAMES).prop_map(Edit::Group),
        1 => (0..NAMES).prop_map(Edit::Level),
        1 => Just(Edit::RuleGroup),
        1 => Just(Edit::RuleLevel),
    ]
}

/// An ACF of [`super::acf::SETS`], or none. Each config reload with an ACF has asLib
/// load it again, and each load waits four times for EPICS's errlog thread (the shim's
/// `errlogFlush` and `eltc` calls: ~16 context switches, 0.6 ms on a quiet machine and
/// several on a busy one): the histories spend most of their steps without an ACF (about
/// 3 loads a history) to stay within their time; the ACF's puts are still thousands.
pub fn any_acf() -> impl Strategy<Value = Option<usize>> {
    prop::option::weighted(0.35, any_set())
}

/// One of [`super::acf::SETS`], `open` the most often (so that writes still reach the gateway).
fn any_set() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0), 1 => Just(1), 2 => Just(2), 2 => Just(3), 1 => Just(4)]
}

/// A history: the mapping and the ACF at start, then the steps.
pub fn any_history(
    steps: std::ops::Range<usize>,
) -> impl Strategy<Value = (Mapping, Option<usize>, usize, Vec<Step>)> {
    (
        any_mapping(),
        prop::option::weighted(0.25, any_set()),
        // The bridge's `follow_batch`: a history has a few puts queued at most, so a
        // small one (0: any, up to MAX_CALLS) lets several write calls be in flight.
        0usize..=2,
        prop::collection::vec(any_step(), steps),
    )
}
