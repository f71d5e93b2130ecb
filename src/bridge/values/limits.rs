//! Local `value_alarm` limits applied to `alarm`, as an EPICS analog record applies them.
//!
//! In order HIHI, LOLO, HIGH, LOW: a limit whose severity is not `none` is in alarm when
//! the value reaches it (`>=` for the high limits, `<=` for the low ones). An alarm stays
//! while the value is within `hysteresis` of the limit that raised it, the boundary
//! included (`>= limit - hysteresis`, `<= limit + hysteresis`), as the record's LALM. The part this yields has status RECORD and a message like
//! "HIHI limit alarm (>= 95)".

use crate::config::{self, ValueAlarm};
use crate::pva::{Alarm, AlarmStatus, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    HiHi,
    LoLo,
    High,
    Low,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::HiHi => "HIHI",
            Level::LoLo => "LOLO",
            Level::High => "HIGH",
            Level::Low => "LOW",
        }
    }

    fn is_high(self) -> bool {
        matches!(self, Level::HiHi | Level::High)
    }
}

pub(in crate::bridge) fn severity(s: config::Severity) -> Severity {
    match s {
        config::Severity::None => Severity::NoAlarm,
        config::Severity::Minor => Severity::Minor,
        config::Severity::Major => Severity::Major,
        config::Severity::Invalid => Severity::Invalid,
    }
}

/// The limit state of one PV.
#[derive(Debug, Clone)]
pub(in crate::bridge) struct Limits {
    cfg: Option<ValueAlarm>,
    /// The limit last in alarm (the record's LALM).
    last: Option<Level>,
}

impl Limits {
    /// Limits that apply when `cfg` is present and active.
    pub fn new(cfg: Option<ValueAlarm>) -> Self {
        Limits {
            cfg: cfg.filter(|c| c.active),
            last: None,
        }
    }

    /// Whether any limit applies (configured and active).
    pub fn applies(&self) -> bool {
        self.cfg.is_some()
    }

    /// Evaluates a new value; `None` when no limit is in alarm (or none applies).
    pub fn evaluate(&mut self, x: f64) -> Option<Alarm> {
        let cfg = self.cfg?;
        if x.is_nan() {
            self.last = None;
            return None;
        }
        let candidates = [
            (Level::HiHi, cfg.hihi, cfg.hihi_severity),
            (Level::LoLo, cfg.lolo, cfg.lolo_severity),
            (Level::High, cfg.high, cfg.high_severity),
            (Level::Low, cfg.low, cfg.low_severity),
        ];
        let hit = candidates.into_iter().find_map(|(level, limit, sev)| {
            let limit = limit?;
            if sev == config::Severity::None {
                return None;
            }
            let held = self.last == Some(level);
            let inside = if level.is_high() {
                x >= limit || (held && x >= limit - cfg.hysteresis)
            } else {
                x <= limit || (held && x <= limit + cfg.hysteresis)
            };
            inside.then_some((level, limit, sev))
        });
        self.last = hit.map(|(level, _, _)| level);
        hit.map(|(level, limit, sev)| {
            let op = if level.is_high() { ">=" } else { "<=" };
            Alarm::new(
                severity(sev),
                AlarmStatus::Record,
                format!("{} limit alarm ({op} {limit})", level.name()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::new(Some(ValueAlarm {
            active: true,
            lolo: Some(5.0),
            low: Some(10.0),
            high: Some(90.0),
            hihi: Some(95.0),
            hysteresis: 1.0,
            lolo_severity: config::Severity::Major,
            low_severity: config::Severity::Minor,
            high_severity: config::Severity::Minor,
            hihi_severity: config::Severity::Major,
        }))
    }

    fn sev(l: &mut Limits, x: f64) -> (Severity, String) {
        l.evaluate(x)
            .map_or((Severity::NoAlarm, String::new()), |a| {
                (a.severity, a.message)
            })
    }

    #[test]
    fn levels_and_hysteresis_as_a_record() {
        let mut l = limits();
        assert_eq!(sev(&mut l, 50.0).0, Severity::NoAlarm);
        assert_eq!(
            sev(&mut l, 90.0),
            (Severity::Minor, "HIGH limit alarm (>= 90)".into())
        );
        assert_eq!(
            sev(&mut l, 95.5),
            (Severity::Major, "HIHI limit alarm (>= 95)".into())
        );
        // Within the hysteresis below HIHI: still HIHI.
        assert_eq!(sev(&mut l, 94.5).0, Severity::Major);
        // Past it: HIGH (not held any more), then within HIGH's hysteresis, then clear.
        assert_eq!(sev(&mut l, 93.9).0, Severity::Minor);
        assert_eq!(sev(&mut l, 89.5).0, Severity::Minor);
        assert_eq!(sev(&mut l, 88.9).0, Severity::NoAlarm);
        // Rising again from below only alarms at the limit itself.
        assert_eq!(sev(&mut l, 89.9).0, Severity::NoAlarm);
        assert_eq!(
            sev(&mut l, 4.0),
            (Severity::Major, "LOLO limit alarm (<= 5)".into())
        );
        assert_eq!(sev(&mut l, 5.5).0, Severity::Major);
        assert_eq!(sev(&mut l, 6.5).0, Severity::Minor);
        assert_eq!(sev(&mut l, f64::NAN).0, Severity::NoAlarm);
    }

    #[test]
    fn an_alarm_holds_at_exactly_the_hysteresis_boundary() {
        let mut l = limits();
        assert_eq!(sev(&mut l, 95.0).0, Severity::Major);
        // 95 - 1 = 94: still HIHI, as an ai record (val >= limit - HYST keeps it).
        assert_eq!(
            sev(&mut l, 94.0),
            (Severity::Major, "HIHI limit alarm (>= 95)".into())
        );
        assert_eq!(sev(&mut l, 93.99).0, Severity::Minor);
        assert_eq!(sev(&mut l, 89.0).0, Severity::Minor);
        assert_eq!(sev(&mut l, 88.99).0, Severity::NoAlarm);
        // LOLO: 5 + 1 = 6 keeps it; just above falls back to LOW.
        assert_eq!(sev(&mut l, 5.0).0, Severity::Major);
        assert_eq!(
            sev(&mut l, 6.0),
            (Severity::Major, "LOLO limit alarm (<= 5)".into())
        );
        assert_eq!(
            sev(&mut l, 6.01),
            (Severity::Minor, "LOW limit alarm (<= 10)".into())
        );
        assert_eq!(sev(&mut l, 11.0).0, Severity::Minor);
        assert_eq!(sev(&mut l, 11.01).0, Severity::NoAlarm);
    }

    #[test]
    fn inactive_or_none_severity_limits_do_nothing() {
        let mut cfg = limits().cfg.unwrap();
        cfg.active = false;
        assert!(Limits::new(Some(cfg)).evaluate(1000.0).is_none());
        cfg.active = true;
        cfg.hihi_severity = config::Severity::None;
        assert_eq!(
            Limits::new(Some(cfg)).evaluate(1000.0).unwrap().message,
            "HIGH limit alarm (>= 90)"
        );
    }
}
