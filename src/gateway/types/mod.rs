//! Domain types of the gateway client: what the rest of mxpva sees.
//!
//! - `value.rs`: MXAccess data types and values.
//! - `quality.rs`: quality, statuses, security classifications.
//! - `events.rs`: sessions, events, alarms, bulk results, the Galaxy's hierarchy.

mod events;
mod quality;
mod value;

pub use events::*;
pub use quality::*;
pub use value::*;

/// An MXAccess server handle, returned by `Register`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerHandle(pub i32);

/// An MXAccess item handle, returned by `AddItem`. Unique within a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemHandle(pub i32);

/// An MXAccess user id, from `AuthenticateUser`. 0 means "no user".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct UserId(pub i32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_in_words() {
        assert!(Quality::GOOD.is_good() && Quality(0xD8).is_good());
        assert!(Quality(0x54).is_uncertain());
        assert!(Quality(0x18).is_bad() && Quality(0x80).is_bad());
        assert_eq!(Quality(0x19).description(), "Bad: communication failure");
        assert_eq!(Quality(0x19).limit(), QualityLimit::Low);
        assert_eq!(
            Quality(0x57).to_string(),
            "Uncertain: engineering units exceeded (0x57), limit Constant"
        );
        assert_eq!(Quality(0x48).description(), "Uncertain: other");
    }

    #[test]
    fn status_detail_names() {
        assert_eq!(detail::name(1008), Some("WriteAccessDenied"));
        assert_eq!(detail::name(13), Some("WrongDataType"));
        assert_eq!(detail::name(999), None);
        for code in (0..=26).chain(1000..=1017).chain([8000]) {
            assert_eq!(detail::from_name(detail::name(code).unwrap()), Some(code));
        }
        let s = MxStatus::failure(MxStatusCategory::SecurityError, 1008, "ViewOnly");
        assert!(!s.is_ok());
        assert_eq!(s.to_string(), "WriteAccessDenied (1008), SecurityError detected by RespondingAutomationObject: ViewOnly");
        assert!(MxStatus {
            category: MxStatusCategory::Warning,
            ..MxStatus::ok()
        }
        .is_ok());
    }

    #[test]
    fn native_codes_round_trip() {
        for c in -1..=16 {
            assert_eq!(MxDataType::from_native_code(c).native_code(), c);
        }
        for c in -1..=8 {
            assert_eq!(MxStatusCategory::from_native_code(c).native_code(), c);
        }
        for c in -1..=5 {
            assert_eq!(MxStatusSource::from_native_code(c).native_code(), c);
        }
        for c in -1..=6 {
            assert_eq!(SecurityClassification::from_native_code(c).native_code(), c);
        }
        assert_eq!(
            MxDataType::from_name("elapsedtime"),
            Some(MxDataType::ElapsedTime)
        );
        assert_eq!(
            SecurityClassification::from_name("ViewOnly"),
            Some(SecurityClassification::ViewOnly)
        );
    }

    #[test]
    fn non_finite_values_are_not_sendable() {
        assert!(MxValue::Double(f64::NAN).check_sendable().is_err());
        assert!(MxValue::Float(f32::INFINITY).check_sendable().is_err());
        assert!(
            MxValue::Array(MxArray::Double(vec![1.0, f64::NEG_INFINITY]))
                .check_sendable()
                .is_err()
        );
        assert!(MxValue::Double(1.0).check_sendable().is_ok());
    }
}
