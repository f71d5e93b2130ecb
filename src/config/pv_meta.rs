//! The parts of a PV's config that most PVs leave unset, boxed and absent when none is
//! set: every PV's config is held for as long as it is served (issue 23: memory per PV).

use super::{Control, Range, SeverityScheme, ValueAlarm};

/// The parts of a PV's config that most PVs leave unset ([`super::Pv::meta`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PvMetaFields {
    // Boxed strings and slice (16 bytes each, not 24).
    pub units: Option<Box<str>>,
    pub precision: Option<u8>,
    pub description: Option<Box<str>>,
    pub display: Option<Box<Range>>,
    pub control: Option<Box<Control>>,
    pub value_alarm: Option<Box<ValueAlarm>>,
    /// Alarm references named in the config (besides those found by the tag's name).
    pub alarms: Box<[String]>,
    /// Overrides `[alarms] severity` for its System Platform alarms.
    pub alarm_severity: Option<SeverityScheme>,
}

/// [`PvMetaFields`], boxed when one is set; reads as the fields (all unset when absent).
#[derive(Debug, Clone, Default)]
pub struct PvMeta(Option<Box<PvMetaFields>>);

impl PvMeta {
    pub fn new(fields: PvMetaFields) -> Self {
        if fields == PvMetaFields::default() {
            PvMeta(None)
        } else {
            PvMeta(Some(Box::new(fields)))
        }
    }

    /// Changes the fields with `f` (boxed again, or not, as [`PvMeta::new`] does).
    pub fn update(&mut self, f: impl FnOnce(&mut PvMetaFields)) {
        let mut fields = self.0.take().map(|b| *b).unwrap_or_default();
        f(&mut fields);
        *self = PvMeta::new(fields);
    }
}

impl std::ops::Deref for PvMeta {
    type Target = PvMetaFields;
    fn deref(&self) -> &PvMetaFields {
        static UNSET: std::sync::LazyLock<PvMetaFields> =
            std::sync::LazyLock::new(PvMetaFields::default);
        self.0.as_deref().unwrap_or(&UNSET)
    }
}
