//! `[alarms] severity = "kind"`: an active alarm's severity from its kind, as an EPICS
//! analog or binary record would show it.
//!
//! | System Platform reports | severity |
//! |---|---|
//! | `HiHi`, `LoLo` | MAJOR |
//! | `Hi`, `Lo` | MINOR |
//! | `ROC` (`ROCHi`, `ROCLo`), rate of change | MINOR |
//! | `MinorDev`, `MajorDev`, `DEV`, deviation | MINOR |
//! | `Discrete`, `DSC`, `State` | MAJOR |
//! | anything else (`SPC`, `VALUE`, unknown, empty) | by priority band |
//!
//! The kind is the feed's alarm type; when that says nothing known, the alarm's own name
//! (the last part of its reference, without a leading `PV` and a trailing `Alarm`:
//! `PVHiHiAlarm` is HiHi) is tried.

use crate::config::Severity;

/// The severity `kind` gives an alarm of type `alarm_type` named `name`, if it knows it.
pub(super) fn kind_severity(alarm_type: &str, name: &str) -> Option<Severity> {
    classify(&word(alarm_type)).or_else(|| {
        let w = word(name);
        let w = w.strip_suffix("alarm").unwrap_or(&w);
        classify(w).or_else(|| classify(w.strip_prefix("pv")?))
    })
}

/// Lower-case ASCII letters and digits only: `Minor Dev`, `ROC.Hi`, `hi_hi` compare.
fn word(s: &str) -> String {
    // Bounded: alarm types and names are short, and the text is only copied once.
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn classify(w: &str) -> Option<Severity> {
    Some(match w {
        "hihi" | "lolo" => Severity::Major,
        "hi" | "lo" => Severity::Minor,
        "roc" | "rochi" | "roclo" | "rateofchange" => Severity::Minor,
        "dev" | "minordev" | "majordev" | "devminor" | "devmajor" | "deviation"
        | "minordeviation" | "majordeviation" => Severity::Minor,
        "discrete" | "dsc" | "state" => Severity::Major,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_alarms_map_as_an_epics_record_shows_them() {
        let of = |t: &str| kind_severity(t, "");
        assert_eq!(of("HiHi"), Some(Severity::Major));
        assert_eq!(of("LoLo"), Some(Severity::Major));
        assert_eq!(of("Hi"), Some(Severity::Minor));
        assert_eq!(of("Lo"), Some(Severity::Minor));
        assert_eq!(of("ROC"), Some(Severity::Minor));
        assert_eq!(of("MajorDev"), Some(Severity::Minor));
        assert_eq!(of("Minor Dev"), Some(Severity::Minor));
        assert_eq!(of("Discrete"), Some(Severity::Major));
        assert_eq!(of("DSC"), Some(Severity::Major));
    }

    #[test]
    fn unknown_kinds_fall_back_to_the_name_then_to_the_priority() {
        assert_eq!(kind_severity("", "PVHiHiAlarm"), Some(Severity::Major));
        assert_eq!(kind_severity("VALUE", "PVLoAlarm"), Some(Severity::Minor));
        assert_eq!(kind_severity("SPC", "Drift"), None);
        assert_eq!(kind_severity("", ""), None);
        assert_eq!(kind_severity(&"x".repeat(100_000), "PumpFault"), None);
    }
}
