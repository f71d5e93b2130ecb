//! MXAccess quality to the NTScalar `alarm` field.
//!
//! | quality (low byte, limit bits masked)     | severity  | status    |
//! |-------------------------------------------|-----------|-----------|
//! | 0xC0 Good                                 | NO_ALARM  | NONE      |
//! | 0xD8 Good: local override                 | NO_ALARM  | NONE      |
//! | 0x40..0x7F Uncertain (any substatus)      | MINOR     | NONE      |
//! | 0x50 Uncertain: sensor not accurate       | MINOR     | DEVICE    |
//! | 0x00 Bad (non-specific)                   | INVALID   | NONE      |
//! | 0x04 Bad: configuration error             | INVALID   | CONF      |
//! | 0x08 Bad: not connected                   | INVALID   | DRIVER    |
//! | 0x0C Bad: device failure                  | INVALID   | DEVICE    |
//! | 0x10 Bad: sensor failure                  | INVALID   | DEVICE    |
//! | 0x14 Bad: last known value                | INVALID   | DRIVER    |
//! | 0x18 Bad: communication failure           | INVALID   | DRIVER    |
//! | 0x1C Bad: out of service                  | INVALID   | DB        |
//! | 0x20 Bad: waiting for initial data        | INVALID   | UNDEFINED |
//!
//! The message always names the quality in words, as MXAccess documents it
//! ("Bad: communication failure"), plus the limit bits when set ("low limited").

use crate::gateway::{Quality, QualityLimit, QualityMajor};
use crate::pva::{Alarm, AlarmStatus, Severity};

/// The alarm a value of quality `q` carries.
pub fn quality_alarm(q: Quality) -> Alarm {
    let (severity, status) = severity_status(q);
    let mut message = q.description().to_string();
    message.push_str(limit_text(q));
    Alarm {
        severity,
        status,
        message,
    }
}

/// `alarm` is what [`quality_alarm`] gives for `q` (compared without building it).
pub(in crate::bridge) fn is_quality_alarm(alarm: &Alarm, q: Quality) -> bool {
    let (severity, status) = severity_status(q);
    let desc = q.description();
    let limit = limit_text(q);
    alarm.severity == severity
        && alarm.status == status
        && alarm.message.len() == desc.len() + limit.len()
        && alarm.message.starts_with(desc)
        && alarm.message.ends_with(limit)
}

fn severity_status(q: Quality) -> (Severity, AlarmStatus) {
    let severity = match q.major() {
        QualityMajor::Good => Severity::NoAlarm,
        QualityMajor::Uncertain => Severity::Minor,
        QualityMajor::Bad => Severity::Invalid,
    };
    let status = match q.0 & 0xFC {
        0x50 => AlarmStatus::Device,
        0x04 => AlarmStatus::Conf,
        0x08 | 0x14 | 0x18 => AlarmStatus::Driver,
        0x0C | 0x10 => AlarmStatus::Device,
        0x1C => AlarmStatus::Db,
        0x20 => AlarmStatus::Undefined,
        _ => AlarmStatus::None,
    };
    (severity, status)
}

fn limit_text(q: Quality) -> &'static str {
    match q.limit() {
        QualityLimit::None => "",
        QualityLimit::Low => ", low limited",
        QualityLimit::High => ", high limited",
        QualityLimit::Constant => ", constant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_table_holds() {
        let table = [
            (0xC0, Severity::NoAlarm, AlarmStatus::None, "Good"),
            (
                0xD8,
                Severity::NoAlarm,
                AlarmStatus::None,
                "Good: local override",
            ),
            (0x40, Severity::Minor, AlarmStatus::None, "Uncertain"),
            (
                0x44,
                Severity::Minor,
                AlarmStatus::None,
                "Uncertain: last usable value",
            ),
            (
                0x50,
                Severity::Minor,
                AlarmStatus::Device,
                "Uncertain: sensor not accurate",
            ),
            (0x00, Severity::Invalid, AlarmStatus::None, "Bad"),
            (
                0x04,
                Severity::Invalid,
                AlarmStatus::Conf,
                "Bad: configuration error",
            ),
            (
                0x08,
                Severity::Invalid,
                AlarmStatus::Driver,
                "Bad: not connected",
            ),
            (
                0x0C,
                Severity::Invalid,
                AlarmStatus::Device,
                "Bad: device failure",
            ),
            (
                0x10,
                Severity::Invalid,
                AlarmStatus::Device,
                "Bad: sensor failure",
            ),
            (
                0x18,
                Severity::Invalid,
                AlarmStatus::Driver,
                "Bad: communication failure",
            ),
            (
                0x1C,
                Severity::Invalid,
                AlarmStatus::Db,
                "Bad: out of service",
            ),
            (
                0x20,
                Severity::Invalid,
                AlarmStatus::Undefined,
                "Bad: waiting for initial data",
            ),
        ];
        for (code, severity, status, message) in table {
            let a = quality_alarm(Quality(code));
            assert_eq!(
                (a.severity, a.status, a.message.as_str()),
                (severity, status, message)
            );
        }
        assert_eq!(
            quality_alarm(Quality(0x55)).message,
            "Uncertain: engineering units exceeded, low limited"
        );
    }

    #[test]
    fn is_quality_alarm_matches_exactly_what_quality_alarm_gives() {
        let qualities: Vec<u16> = (0..=0xFF).collect();
        for &a in &qualities {
            let alarm = quality_alarm(Quality(a));
            for &b in &qualities {
                assert_eq!(
                    is_quality_alarm(&alarm, Quality(b)),
                    alarm == quality_alarm(Quality(b)),
                    "{a:#x} against {b:#x}"
                );
            }
        }
        // A message with a status or a conversion failure joined to it is not kept.
        let mut joined = quality_alarm(Quality(0xC0));
        joined.message.push_str(": MXAccess status 5");
        assert!(!is_quality_alarm(&joined, Quality(0xC0)));
        let mut other = quality_alarm(Quality(0xC1));
        other.message = "Good, low limite_".to_string();
        assert!(!is_quality_alarm(&other, Quality(0xC1)));
    }
}
