//! A PV's base alarm (the alarm of its value itself) and whether it is plain Good, in two
//! words: the two values nearly every PV holds (none yet, and Good) are shared statics, and
//! any other is boxed. Inline it was 40 bytes, and a Good PV's "Good" message its own
//! heap chunk (issue 23: memory per PV).

use std::borrow::Cow;
use std::sync::LazyLock;

use crate::bridge::values::quality::quality_alarm;
use crate::gateway::Quality;
use crate::pva::Alarm;

/// No alarm yet (before the first data change): `Alarm::none()`, plain.
static NONE: LazyLock<Alarm> = LazyLock::new(Alarm::none);
/// A Good data change's alarm (quality 0xC0), plain.
static GOOD: LazyLock<Alarm> = LazyLock::new(|| quality_alarm(Quality(0xC0)));

/// Whether `alarm` is a Good data change's, as posted.
pub(super) fn is_good(alarm: &Alarm) -> bool {
    *alarm == *GOOD
}

/// `(alarm, plain)`, as the record held it inline before.
#[derive(Default)]
pub(super) enum BaseAlarm {
    /// `(Alarm::none(), true)`.
    #[default]
    None,
    /// `(quality_alarm(Good), true)`.
    Good,
    /// Any other.
    Other(Box<(Alarm, bool)>),
}

impl BaseAlarm {
    /// The alarm and whether it is plain Good.
    pub fn get(&self) -> (&Alarm, bool) {
        match self {
            BaseAlarm::None => (&*NONE, true),
            BaseAlarm::Good => (&*GOOD, true),
            BaseAlarm::Other(b) => (&b.0, b.1),
        }
    }

    pub fn alarm(&self) -> &Alarm {
        self.get().0
    }

    /// Sets it; a shared value is not boxed.
    pub fn set(&mut self, alarm: Cow<'static, Alarm>, plain: bool) {
        if plain && *alarm == *GOOD {
            *self = BaseAlarm::Good;
        } else if plain && *alarm == *NONE {
            *self = BaseAlarm::None;
        } else if let BaseAlarm::Other(b) = self {
            **b = (alarm.into_owned(), plain);
        } else {
            *self = BaseAlarm::Other(Box::new((alarm.into_owned(), plain)));
        }
    }

    /// The alarm, leaving `Alarm::none()` in its place with `plain` as it was (a shared
    /// alarm is borrowed, a boxed one's box kept for [`BaseAlarm::set`]).
    pub fn take(&mut self) -> Cow<'static, Alarm> {
        match self {
            BaseAlarm::None => Cow::Borrowed(&*NONE),
            BaseAlarm::Good => {
                *self = BaseAlarm::None;
                Cow::Borrowed(&*GOOD)
            }
            BaseAlarm::Other(b) => Cow::Owned(std::mem::take(&mut b.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pva::{AlarmStatus, Severity};

    #[test]
    fn one_word_and_the_same_pairs_back() {
        // A tag and a pointer: 40 bytes inline before.
        assert_eq!(std::mem::size_of::<BaseAlarm>(), 16);
        let minor = Alarm::new(Severity::Minor, AlarmStatus::Device, "Uncertain");
        let pairs = [
            (Alarm::none(), true),
            (Alarm::none(), false),
            (quality_alarm(Quality(0xC0)), true),
            (quality_alarm(Quality(0xC0)), false),
            (minor.clone(), true),
            (minor, false),
        ];
        let mut base = BaseAlarm::default();
        for (alarm, plain) in pairs {
            base.set(Cow::Owned(alarm.clone()), plain);
            assert_eq!(base.get(), (&alarm, plain));
            // Taken, it leaves no alarm with `plain` as it was, as the inline pair did.
            assert_eq!(*base.take(), alarm);
            assert_eq!(base.get(), (&Alarm::none(), plain));
        }
        base.set(Cow::Owned(quality_alarm(Quality(0xC0))), true);
        assert!(matches!(base, BaseAlarm::Good));
    }
}
