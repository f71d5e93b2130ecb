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
    let mut message = q.description().to_string();
    match q.limit() {
        QualityLimit::None => {}
        QualityLimit::Low => message.push_str(", low limited"),
        QualityLimit::High => message.push_str(", high limited"),
        QualityLimit::Constant => message.push_str(", constant"),
    }
    Alarm {
        severity,
        status,
        message,
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
}
