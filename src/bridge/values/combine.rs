//! How the parts of a PV's alarm join into the one `alarm` it posts: shared by the value
//! PVs (`mapping/pv.rs`) and the alarm side (`alarms/`), which is why it lives in neither.

use crate::pva::Alarm;

/// Joins the parts of a PV's alarm: the highest severity wins (the earlier part on a
/// tie, `base` last), and the message keeps every part's message, the winner's first.
/// A plain-Good `base` ("Good") adds nothing when another part speaks.
pub(in crate::bridge) fn combine<'a>(
    parts: impl IntoIterator<Item = Option<&'a Alarm>>,
    base: &'a Alarm,
    base_plain: bool,
) -> Alarm {
    let mut all: Vec<&Alarm> = parts.into_iter().flatten().collect();
    if !base_plain || all.is_empty() {
        all.push(base);
    }
    let Some(top) = all.iter().copied().max_by_key(|a| a.severity) else {
        return base.clone();
    };
    // max_by_key keeps the last maximum; take the first one instead.
    let top = all
        .iter()
        .copied()
        .find(|a| a.severity == top.severity)
        .unwrap_or(top);
    let mut message = top.message.clone();
    for a in all.iter().filter(|a| !std::ptr::eq(**a, top)) {
        if !a.message.is_empty() {
            if !message.is_empty() {
                message.push_str("; ");
            }
            message.push_str(&a.message);
        }
    }
    Alarm::new(top.severity, top.status, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pva::{AlarmStatus, Severity};

    #[test]
    fn higher_severity_wins_and_messages_are_kept() {
        let hihi = Alarm::new(
            Severity::Major,
            AlarmStatus::Record,
            "HiHi alarm, unacknowledged (priority 100)",
        );
        let uncertain = Alarm::new(Severity::Minor, AlarmStatus::None, "Uncertain");
        let bad = Alarm::new(
            Severity::Invalid,
            AlarmStatus::Driver,
            "Bad: communication failure",
        );
        let good = Alarm::new(Severity::NoAlarm, AlarmStatus::None, "Good");
        let a = combine([Some(&hihi)], &uncertain, false);
        assert_eq!(
            (a.severity, a.status, a.message.as_str()),
            (
                Severity::Major,
                AlarmStatus::Record,
                "HiHi alarm, unacknowledged (priority 100); Uncertain"
            )
        );
        let a = combine([Some(&hihi)], &bad, false);
        assert_eq!(
            (a.severity, a.status, a.message.as_str()),
            (
                Severity::Invalid,
                AlarmStatus::Driver,
                "Bad: communication failure; HiHi alarm, unacknowledged (priority 100)"
            )
        );
        assert_eq!(combine([Some(&hihi)], &good, true).message, hihi.message);
        assert_eq!(combine([None], &good, true), good);
    }
}
