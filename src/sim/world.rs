//! The live state of the simulated Galaxy: attribute values, qualities and
//! alarm states, moved on by [`World::tick`].
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::config::{AlarmKind, AttrDef, Dynamics, Galaxy};
use super::values::status;
use crate::gateway::{
    detail, ActiveAlarm, AlarmState, AlarmTransition, AlarmTransitionKind, MxArray, MxDataType,
    MxStatus, MxStatusCategory, MxValue, Quality,
};

/// Live state of one attribute.
#[derive(Debug, Clone)]
pub(crate) struct AttrRt {
    pub value: MxValue,
    pub quality: Quality,
    pub time: SystemTime,
    /// Bumped on every change of value or quality.
    pub version: u64,
    /// Set by the control API: dynamics do not move the value.
    pub held_value: bool,
    /// Set by the control API: overrides the quality cycle.
    pub held_quality: Option<Quality>,
    prev_enable: bool,
    walk: f64,
}

/// Live state of one alarm.
#[derive(Debug, Clone)]
pub(crate) struct AlarmRt {
    pub state: AlarmState,
    pub raised_at: Option<SystemTime>,
    pub last_transition_at: Option<SystemTime>,
    pub operator: String,
    pub comment: String,
    /// Set by the control API: Some(true) raised, Some(false) held clear.
    pub forced: Option<bool>,
    pub version: u64,
    pub time: SystemTime,
}

/// What changed in the world: the attributes whose value or quality changed, the alarms
/// whose state changed, and those alarm transitions (for StreamAlarms).
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub attrs: Vec<usize>,
    pub alarms: Vec<usize>,
    pub transitions: Vec<AlarmTransition>,
}

impl Changes {
    /// One attribute changed (or none).
    pub fn attr(i: usize, changed: bool) -> Self {
        Changes {
            attrs: if changed { vec![i] } else { Vec::new() },
            ..Changes::default()
        }
    }
}

pub(crate) struct World {
    pub attrs: Vec<AttrRt>,
    pub alarms: Vec<AlarmRt>,
    /// The attributes that a tick can change: a dynamics other than Constant, or a
    /// quality cycle. Ascending, so a Follow sees its source's value of the same tick
    /// as before.
    moving: Vec<usize>,
    start: Instant,
    last_tick: Instant,
    rng: u64,
}

impl World {
    /// The world of `new` after a deploy from `old`: attributes and alarms that stay (same
    /// reference, type and array length) keep their live state; the others start afresh,
    /// a retyped attribute's version past its old one.
    pub fn redeploy(&mut self, old: &Galaxy, new: &Galaxy) {
        use std::collections::HashMap;
        let fresh = World::new(new);
        let mut attrs = fresh.attrs;
        let mut alarms = fresh.alarms;
        let by_ref: HashMap<String, usize> = old
            .attributes
            .iter()
            .enumerate()
            .map(|(i, a)| (a.reference.to_ascii_lowercase(), i))
            .collect();
        for (def, slot) in new.attributes.iter().zip(attrs.iter_mut()) {
            let Some(&i) = by_ref.get(&def.reference.to_ascii_lowercase()) else {
                continue;
            };
            let (Some(o), Some(rt)) = (old.attributes.get(i), self.attrs.get(i)) else {
                continue;
            };
            if o.data_type == def.data_type && o.array_length == def.array_length {
                *slot = rt.clone();
            } else {
                slot.version = rt.version.saturating_add(1);
            }
        }
        let alarm_by_ref: HashMap<String, usize> = old
            .alarms
            .iter()
            .enumerate()
            .map(|(i, a)| (a.reference.to_ascii_lowercase(), i))
            .collect();
        for (def, slot) in new.alarms.iter().zip(alarms.iter_mut()) {
            if let Some(rt) = alarm_by_ref
                .get(&def.reference.to_ascii_lowercase())
                .and_then(|&i| self.alarms.get(i))
            {
                *slot = rt.clone();
            }
        }
        self.attrs = attrs;
        self.alarms = alarms;
        self.moving = fresh.moving;
    }

    pub fn new(g: &Galaxy) -> Self {
        let now = g.now();
        let attrs = g
            .attributes
            .iter()
            .map(|a| AttrRt {
                value: a.initial.clone(),
                quality: Quality::GOOD,
                time: now,
                version: 1,
                held_value: false,
                held_quality: None,
                prev_enable: false,
                walk: a.initial.as_f64().unwrap_or(0.0),
            })
            .collect();
        let alarms = g
            .alarms
            .iter()
            .map(|_| AlarmRt {
                state: AlarmState::AckRtn,
                raised_at: None,
                last_transition_at: None,
                operator: String::new(),
                comment: String::new(),
                forced: None,
                version: 1,
                time: now,
            })
            .collect();
        let moving = g
            .attributes
            .iter()
            .enumerate()
            .filter(|(_, a)| a.dynamics != Dynamics::Constant || a.quality.is_some())
            .map(|(i, _)| i)
            .collect();
        let mut w = World {
            attrs,
            alarms,
            moving,
            start: Instant::now(),
            last_tick: Instant::now(),
            rng: 0x9E37_79B9_7F4A_7C15,
        };
        // Settle dynamics and alarms once so the first reads are meaningful.
        let _ = w.tick(g);
        w
    }

    fn random(&mut self) -> f64 {
        // xorshift64*: deterministic, good enough for a random walk.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether an enable attribute is on; no enable attribute means always on.
    fn bool_of(&self, i: Option<usize>) -> bool {
        let Some(i) = i else {
            return true;
        };
        match self.attrs.get(i).map(|a| &a.value) {
            Some(MxValue::Bool(b)) => *b,
            Some(v) => v.as_f64().unwrap_or(0.0) != 0.0,
            None => false,
        }
    }

    /// Advance the dynamics of the attributes that have any (held values stay, held
    /// qualities stay); returns what changed.
    pub fn tick(&mut self, g: &Galaxy) -> Changes {
        let now = Instant::now();
        let sys = g.now();
        let dt = now.duration_since(self.last_tick).as_secs_f64();
        self.last_tick = now;
        let t = now.duration_since(self.start).as_secs_f64();
        let mut changes = Changes::default();
        let moving = std::mem::take(&mut self.moving);
        for &i in &moving {
            let (Some(def), Some(rt)) = (g.attributes.get(i), self.attrs.get(i)) else {
                continue;
            };
            let (held_value, held_quality) = (rt.held_value, rt.held_quality);
            if held_value && (held_quality.is_some() || def.quality.is_none()) {
                continue;
            }
            let (old_value, old_quality) = (rt.value.clone(), rt.quality);
            if !held_value {
                if let Some(v) = self.next_value(g, i, t, dt, sys) {
                    if let Some(rt) = self.attrs.get_mut(i) {
                        rt.value = v;
                    }
                }
                if let Some(e) = def.enable {
                    let on = self.bool_of(Some(e));
                    if let Some(rt) = self.attrs.get_mut(i) {
                        rt.prev_enable = on;
                    }
                }
            }
            let q = held_quality.unwrap_or_else(|| configured_quality(def, t));
            let Some(rt) = self.attrs.get_mut(i) else {
                continue;
            };
            rt.quality = q;
            if rt.value != old_value || q != old_quality {
                rt.version += 1;
                rt.time = sys;
                changes.attrs.push(i);
            }
        }
        self.moving = moving;
        self.evaluate_alarms(g, sys, &mut changes);
        changes
    }

    fn next_value(
        &mut self,
        g: &Galaxy,
        i: usize,
        t: f64,
        dt: f64,
        sys: SystemTime,
    ) -> Option<MxValue> {
        let def = g.attributes.get(i)?;
        let rt = self.attrs.get(i)?;
        let cur = rt.value.as_f64().unwrap_or(0.0);
        let (walk, prev_enable) = (rt.walk, rt.prev_enable);
        let x = match &def.dynamics {
            Dynamics::Constant => return None,
            Dynamics::Ramp { min, max, rate } => {
                let v = cur + rate * dt;
                if v > *max || v < *min {
                    *min
                } else {
                    v
                }
            }
            Dynamics::Sine {
                center,
                amplitude,
                period_s,
            } => center + amplitude * (std::f64::consts::TAU * t / period_s).sin(),
            Dynamics::RandomWalk { min, max, step } => {
                let r = self.random();
                let w = (walk + (r * 2.0 - 1.0) * step).clamp(*min, *max);
                if let Some(rt) = self.attrs.get_mut(i) {
                    rt.walk = w;
                }
                w
            }
            Dynamics::Toggle { period_s } => ((t / period_s).floor() as i64 % 2) as f64,
            Dynamics::Follow { tau_s, noise, .. } => {
                let target = if self.bool_of(def.enable) {
                    def.source
                        .and_then(|s| self.attrs.get(s))
                        .and_then(|a| a.value.as_f64())
                        .unwrap_or(0.0)
                } else {
                    0.0
                };
                let n = if *noise > 0.0 && target != 0.0 {
                    (self.random() * 2.0 - 1.0) * noise
                } else {
                    0.0
                };
                cur + (target - cur) * (1.0 - (-dt / tau_s).exp()) + n
            }
            Dynamics::Clock => {
                let secs = sys
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                return Some(MxValue::Time(UNIX_EPOCH + Duration::from_secs(secs)));
            }
            Dynamics::Elapsed { .. } => {
                let MxValue::Elapsed(e) = self.attrs.get(i)?.value else {
                    return None;
                };
                if !self.bool_of(def.enable) {
                    return None;
                }
                let total = e.as_secs_f64() + dt;
                // Whole tenths of a second, so it changes at a steady pace.
                return Some(MxValue::Elapsed(Duration::from_millis(
                    (total * 1000.0) as u64,
                )));
            }
            Dynamics::Counter { .. } => {
                let now_on = self.bool_of(def.enable);
                if now_on && !prev_enable {
                    cur + 1.0
                } else {
                    return None;
                }
            }
            Dynamics::Wave {
                center,
                amplitude,
                period_s,
            } => {
                let n = def.array_length.unwrap_or(1);
                let vals: Vec<f64> = (0..n)
                    .map(|k| {
                        center
                            + amplitude
                                * (std::f64::consts::TAU * (t / period_s + k as f64 / n as f64))
                                    .sin()
                    })
                    .collect();
                return Some(MxValue::Array(match def.data_type {
                    MxDataType::Float => MxArray::Float(vals.iter().map(|v| *v as f32).collect()),
                    _ => MxArray::Double(vals),
                }));
            }
        };
        Some(match def.data_type {
            MxDataType::Boolean => MxValue::Bool(x != 0.0),
            MxDataType::Integer => {
                MxValue::Int32(x.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32)
            }
            MxDataType::LongInteger => MxValue::Int64(x.round() as i64),
            MxDataType::Float => MxValue::Float(x as f32),
            _ => MxValue::Double(x),
        })
    }

    fn alarm_condition(&self, g: &Galaxy, i: usize) -> bool {
        let (Some(def), Some(rt)) = (g.alarms.get(i), self.alarms.get(i)) else {
            return false;
        };
        if let Some(f) = rt.forced {
            return f;
        }
        let Some(attr) = self.attrs.get(def.attribute) else {
            return rt.state.is_active();
        };
        if attr.quality.is_bad() {
            // A bad value keeps the alarm where it is.
            return rt.state.is_active();
        }
        let active = rt.state.is_active();
        let v = attr.value.as_f64().unwrap_or(0.0);
        let limit = def.limit.unwrap_or(0.0);
        let db = if active { def.deadband } else { 0.0 };
        match def.kind {
            AlarmKind::HiHi | AlarmKind::Hi => v >= limit - db,
            AlarmKind::Lo | AlarmKind::LoLo => v <= limit + db,
            AlarmKind::Discrete => matches!(attr.value, MxValue::Bool(true)),
        }
    }

    fn evaluate_alarms(&mut self, g: &Galaxy, sys: SystemTime, out: &mut Changes) {
        for i in 0..g.alarms.len() {
            let cond = self.alarm_condition(g, i);
            let Some(state) = self.alarms.get(i).map(|rt| rt.state) else {
                continue;
            };
            let (next, kind) = match (cond, state) {
                (true, AlarmState::AckRtn) => (AlarmState::UnackAlm, AlarmTransitionKind::Raise),
                (true, AlarmState::UnackRtn) => {
                    (AlarmState::UnackAlm, AlarmTransitionKind::Retrigger)
                }
                (false, AlarmState::UnackAlm) => (AlarmState::UnackRtn, AlarmTransitionKind::Clear),
                (false, AlarmState::AckAlm) => (AlarmState::AckRtn, AlarmTransitionKind::Clear),
                _ => continue,
            };
            let Some(rt) = self.alarms.get_mut(i) else {
                continue;
            };
            rt.state = next;
            if matches!(
                kind,
                AlarmTransitionKind::Raise | AlarmTransitionKind::Retrigger
            ) {
                rt.raised_at = Some(sys);
                rt.operator.clear();
                rt.comment.clear();
            }
            if let Some(t) = self.transition(g, i, kind, sys) {
                out.alarms.push(i);
                out.transitions.push(t);
            }
        }
    }

    fn transition(
        &mut self,
        g: &Galaxy,
        i: usize,
        kind: AlarmTransitionKind,
        sys: SystemTime,
    ) -> Option<AlarmTransition> {
        let def = g.alarms.get(i)?;
        let rt = self.alarms.get_mut(i)?;
        rt.last_transition_at = Some(sys);
        rt.version += 1;
        rt.time = sys;
        Some(AlarmTransition {
            reference: def.reference.clone(),
            source_object: object_tag(g, def.object),
            alarm_type: alarm_type_name(def.kind).into(),
            kind,
            state: rt.state,
            priority: def.priority,
            raised_at: rt.raised_at,
            at: Some(sys),
            operator: rt.operator.clone(),
            comment: rt.comment.clone(),
            category: def.area.clone(),
            description: def.description.clone(),
            current_value: self.attrs.get(def.attribute).map(|a| a.value.clone()),
            limit_value: def.limit.map(MxValue::Double),
        })
    }

    /// Acknowledge an alarm.
    pub fn acknowledge(
        &mut self,
        g: &Galaxy,
        i: usize,
        comment: &str,
        operator: &str,
    ) -> Result<AlarmTransition, MxStatus> {
        let no_alarm = || {
            status(
                MxStatusCategory::OperationalError,
                detail::INDEX_OUT_OF_RANGE,
                format!("alarm {i} is not defined"),
            )
        };
        let next = match self.alarms.get(i).ok_or_else(no_alarm)?.state {
            AlarmState::UnackAlm => AlarmState::AckAlm,
            AlarmState::UnackRtn => AlarmState::AckRtn,
            AlarmState::AckAlm | AlarmState::AckRtn => {
                return Err(status(
                    MxStatusCategory::OperationalError,
                    detail::ALARM_ACKED_ALREADY,
                    "the alarm is already acknowledged",
                ))
            }
        };
        let rt = self.alarms.get_mut(i).ok_or_else(no_alarm)?;
        rt.state = next;
        rt.operator = operator.to_string();
        rt.comment = comment.to_string();
        self.transition(g, i, AlarmTransitionKind::Acknowledge, g.now())
            .ok_or_else(no_alarm)
    }

    /// What a change of attribute `i` made outside the tick (a write, the control API)
    /// comes to: the attribute, if `changed`, and the transitions of the alarms that
    /// follow it, evaluated now as System Platform does when a value changes, not at the
    /// next tick (a value that crosses a limit and back within one tick still alarms).
    pub fn changed(&mut self, g: &Galaxy, i: usize, changed: bool) -> Changes {
        let mut changes = Changes::attr(i, changed);
        if changed {
            self.evaluate_alarms(g, g.now(), &mut changes);
        }
        changes
    }

    /// Force an alarm (control API); returns the transition it caused, if any.
    pub fn force_alarm(&mut self, g: &Galaxy, i: usize, forced: Option<bool>) -> Changes {
        if let Some(rt) = self.alarms.get_mut(i) {
            rt.forced = forced;
        }
        let mut changes = Changes::default();
        self.evaluate_alarms(g, g.now(), &mut changes);
        changes
    }

    /// The alarms that are not in ACK_RTN.
    pub fn active_alarms(&self, g: &Galaxy) -> Vec<ActiveAlarm> {
        g.alarms
            .iter()
            .zip(&self.alarms)
            .filter(|(_, rt)| rt.state != AlarmState::AckRtn)
            .map(|(def, rt)| ActiveAlarm {
                reference: def.reference.clone(),
                source_object: object_tag(g, def.object),
                alarm_type: alarm_type_name(def.kind).into(),
                state: rt.state,
                priority: def.priority,
                raised_at: rt.raised_at,
                last_transition_at: rt.last_transition_at,
                operator: rt.operator.clone(),
                comment: rt.comment.clone(),
                category: def.area.clone(),
                description: def.description.clone(),
                current_value: self.attrs.get(def.attribute).map(|a| a.value.clone()),
                limit_value: def.limit.map(MxValue::Double),
            })
            .collect()
    }

    /// Store a value (writes and the control API). The caller has checked it. Returns
    /// whether the value changed (storing the value the attribute has changes nothing).
    pub fn store(&mut self, i: usize, value: MxValue, time: SystemTime) -> bool {
        let Some(a) = self.attrs.get_mut(i) else {
            return false;
        };
        if a.value == value {
            return false;
        }
        a.walk = value.as_f64().unwrap_or(a.walk);
        a.value = value;
        a.version += 1;
        a.time = time;
        true
    }

    /// Hold an attribute's value (the dynamics do not move it) or let it go.
    pub fn hold_value(&mut self, i: usize, held: bool) {
        if let Some(a) = self.attrs.get_mut(i) {
            a.held_value = held;
        }
    }

    /// Hold an attribute's quality at `q`, or (None) return it at once to its configured
    /// behaviour (Good, or its quality cycle). Returns whether the quality changed.
    pub fn set_quality(&mut self, g: &Galaxy, i: usize, q: Option<Quality>) -> bool {
        let t = self.start.elapsed().as_secs_f64();
        let (Some(a), Some(def)) = (self.attrs.get_mut(i), g.attributes.get(i)) else {
            return false;
        };
        a.held_quality = q;
        let q = q.unwrap_or_else(|| configured_quality(def, t));
        if a.quality == q {
            return false;
        }
        a.quality = q;
        a.version += 1;
        a.time = g.now();
        true
    }
}

/// The quality of `def` at `t` seconds of simulation when nothing holds it: its quality
/// cycle's, or Good.
fn configured_quality(def: &AttrDef, t: f64) -> Quality {
    let Some(c) = &def.quality else {
        return Quality::GOOD;
    };
    let phase = t % c.period_s;
    if phase >= c.period_s - c.bad_s {
        c.bad
    } else if phase >= c.period_s - c.bad_s - c.uncertain_s {
        c.uncertain
    } else {
        Quality::GOOD
    }
}

/// The tag name of object `i`; empty when there is no such object.
fn object_tag(g: &Galaxy, i: usize) -> String {
    g.objects
        .get(i)
        .map(|o| o.tag_name.clone())
        .unwrap_or_default()
}

pub(crate) fn alarm_type_name(k: AlarmKind) -> &'static str {
    match k {
        AlarmKind::HiHi => "HiHi",
        AlarmKind::Hi => "Hi",
        AlarmKind::Lo => "Lo",
        AlarmKind::LoLo => "LoLo",
        AlarmKind::Discrete => "Discrete",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_past_the_galaxy_is_an_error_not_a_panic() {
        let g = Galaxy::demo();
        let mut w = World::new(&g);
        let past = g.alarms.len();
        let e = w.acknowledge(&g, past, "c", "op").unwrap_err();
        assert_eq!(e.detail, detail::INDEX_OUT_OF_RANGE);
        assert!(e.diagnostic_text.contains("is not defined"), "{e:?}");
        assert!(w.force_alarm(&g, past, Some(true)).transitions.is_empty());
        let before = w.attrs.clone();
        assert!(!w.store(g.attributes.len(), MxValue::Int32(1), SystemTime::now()));
        assert!(!w.set_quality(&g, g.attributes.len(), Some(Quality::GOOD)));
        assert_eq!(
            before.iter().map(|a| a.version).collect::<Vec<_>>(),
            w.attrs.iter().map(|a| a.version).collect::<Vec<_>>()
        );
    }
}
