//! A data change of a PV: [`MappedPv::sample`], the path every gateway data change and
//! buffered sample takes (split from `pv.rs` to keep it readable).

use super::*;

impl MappedPv {
    /// A data change of the attribute. A failed MXAccess status (an unresolved reference, a
    /// wrong index) is added to the quality's message, so the PV says why it has no value.
    ///
    /// The update is staged for [`MappedPv::flush`] at the end of the bridge's turn, so that
    /// alarm transitions taken in the same turn join it; true when the PV is newly marked
    /// for that. A second data change in one turn posts the first: each is a sample
    /// (buffered samples are never coalesced: [`MappedPv::buffered_sample`]).
    ///
    /// With `coalesce` (the bridge is behind the gateway's events), a data change staged
    /// and not posted yet is replaced by this one instead of posted first, when both show
    /// the same alarm severity and status: the PV lags, but an alarm is never hidden.
    pub fn sample(
        &mut self,
        value: &MxValue,
        quality: Quality,
        source: Option<SystemTime>,
        statuses: &[MxStatus],
        coalesce: bool,
    ) -> Taken {
        self.sample_in(value, quality, source, statuses, coalesce, None)
    }

    /// [`MappedPv::sample`]; with `batch`, a staged sample goes there instead of being
    /// posted ([`MappedPv::buffered_sample`]).
    pub(super) fn sample_in(
        &mut self,
        value: &MxValue,
        quality: Quality,
        source: Option<SystemTime>,
        statuses: &[MxStatus],
        coalesce: bool,
        mut batch: Option<&mut Vec<Update>>,
    ) -> Taken {
        // The staged sample's alarm, while it may still be replaced.
        let mut staged_alarm = None;
        if self.data_staged() {
            if coalesce && self.pv.is_open() {
                staged_alarm = Some(self.combined());
            } else if let (Some(batch), true) = (batch.as_deref_mut(), self.pv.is_open()) {
                let staged = self.staged.take().map(|s| *s).unwrap_or_default();
                batch.extend(self.update_of(staged.value, staged.time, None));
            } else {
                self.flush();
            }
        }
        if !matches!(value, MxValue::Null) {
            self.attr_type = Some(match value {
                MxValue::Array(a) => (a.element_type(), true),
                v => (v.data_type(), false),
            });
        }
        let time = match (self.cfg.timestamp, source) {
            (config::TimestampSource::Source, Some(t)) => TimeStamp::from(t),
            _ => TimeStamp::now(),
        };
        let failed = statuses.iter().find(|s| !s.is_ok());
        // The alarm of the last data change again (the common case) is kept as it is,
        // without building its message anew.
        let last = self.base_alarm.take();
        let mut alarm = if failed.is_none() && is_quality_alarm(&last, quality) {
            last
        } else {
            Cow::Owned(quality_alarm(quality))
        };
        if let Some(status) = failed {
            let reason = status.detail_name().map_or_else(
                || format!("MXAccess status {}", status.detail),
                str::to_string,
            );
            alarm.to_mut().message = match status.diagnostic_text.as_str() {
                "" => format!("{}: {reason}", alarm.message),
                text => format!("{}: {reason}: {text}", alarm.message),
            };
        }
        let mut plain = quality.0 & 0xFC == 0xC0;
        let ty = configured_type(&self.cfg).or_else(|| pv_type_of(value, self.bool_as_enum));
        let nt = match (ty, value) {
            (_, MxValue::Null) => None,
            (Some(ty), v) => match to_nt(v, ty) {
                Ok(nt) => Some(nt),
                Err(e) => {
                    alarm = Cow::Owned(Alarm::new(
                        Severity::Invalid,
                        AlarmStatus::Conf,
                        format!(
                            "{} cannot be served as {}: {e}",
                            brief(value, 80),
                            ty.pv_name()
                        ),
                    ));
                    None
                }
            },
            (None, v) => {
                alarm = Cow::Owned(Alarm::new(
                    Severity::Invalid,
                    AlarmStatus::Conf,
                    format!("values of type {} cannot be served", v.data_type()),
                ));
                None
            }
        };
        if let Some(nt) = &nt {
            let limits = self.rare.as_mut().and_then(|r| r.limits.as_mut());
            let part = match (numeric(nt), limits) {
                (Some(x), Some(limits)) => limits.evaluate(x),
                _ => None,
            };
            self.set_part(|p| &mut p.limit_alarm, part);
        }
        if alarm.severity == Severity::Invalid {
            plain = false;
        }
        self.base_alarm.set(alarm, plain);
        self.writes.data_changed(value);
        if self.cfg.write.is_some() {
            remember_shown(&mut self.shown, value, nt.is_some());
        }
        match (ty, self.pv.shape()) {
            (Some(ty), Some(shape)) if shape.pv_type == ty && self.pv.is_open() => {
                let mut coalesced = false;
                if let Some(before) = staged_alarm.take() {
                    let now = self.combined();
                    if (before.severity, before.status) == (now.severity, now.status) {
                        coalesced = true;
                    } else {
                        self.flush_as(Some(before));
                    }
                }
                let staged = self.staged_mut();
                staged.data = true;
                staged.value = nt;
                return Taken {
                    marked: staged.mark(time),
                    coalesced,
                };
            }
            _ => {
                // What this sample posts comes after the samples batched before it.
                if let Some(batch) = batch {
                    self.post_batch(batch);
                }
                if let Some(before) = staged_alarm.take() {
                    self.flush_as(Some(before));
                }
            }
        }
        match (ty, self.pv.shape()) {
            (Some(_), Some(shape)) if Some(shape.pv_type) == ty && self.pv.is_open() => {}
            (Some(ty), old) => {
                if let Some(old) = old.filter(|o| o.pv_type != ty) {
                    warn!(pv = %self.name(), tag = %self.cfg.tag.as_str(), from = %old.pv_type.pv_name(), to = %ty.pv_name(), "attribute changed type; PV re-opened");
                }
                self.flush();
                let alarm = self.combined();
                self.open(ty, nt, alarm, time);
            }
            (None, _) => self.post_alarm(self.base_alarm.alarm().clone()),
        }
        self.writes.shown();
        Taken::default()
    }
}
