//! The active-alarm NTTable: its columns, its rows (the most urgent first, at most
//! `[limits] max_table_rows`) and its own alarm.

use std::collections::BTreeMap;
use std::time::SystemTime;

use tracing::warn;

use super::state::{Alarms, Entry, Owner, FEED_LOST};
use crate::bridge::mapping::registry::Registry;
use crate::bridge::values::combine::combine;
use crate::bridge::values::convert::iso8601;
use crate::pva::{Alarm, AlarmStatus, Column, NtValue, ScalarType, Severity, TableUpdate};

/// The alarm columns of the active-alarm table.
pub(super) fn table_columns() -> Vec<Column> {
    let s = |n: &str, l: &str| Column::new(n, l, ScalarType::String);
    vec![
        s("reference", "Reference"),
        s("pv", "PV"),
        s("type", "Type"),
        Column::new("priority", "Priority", ScalarType::Int32),
        s("state", "State"),
        s("raised", "Raised"),
        s("acked", "Acknowledged"),
        s("operator", "Operator"),
        s("comment", "Comment"),
        s("value", "Value"),
        s("limit", "Limit"),
    ]
}

impl Alarms {
    /// Every column of the table for the `max` most urgent alarms of `active` (by
    /// priority, 1 the most urgent, then by raise time), and how many were left out.
    pub(super) fn rows(
        active: &BTreeMap<String, Entry>,
        pvs: &Registry,
        own: &[&str],
        max: usize,
    ) -> (Vec<NtValue>, usize) {
        let mut rows: Vec<&Entry> = active.values().collect();
        let urgent_first = |a: &&Entry, b: &&Entry| {
            (a.priority, a.raised_at, &a.reference).cmp(&(b.priority, b.raised_at, &b.reference))
        };
        let left_out = rows.len().saturating_sub(max);
        if left_out > 0 {
            // Only the rows kept need sorting.
            rows.select_nth_unstable_by(max, urgent_first);
            rows.truncate(max);
        }
        rows.sort_by(urgent_first);
        let col = |f: &dyn Fn(&Entry) -> String| {
            NtValue::StringArray(rows.iter().map(|e| f(e)).collect())
        };
        let time = |t: Option<SystemTime>| t.map(iso8601).unwrap_or_default();
        let columns = vec![
            col(&|e| e.reference.clone()),
            col(&|e| match e.owner {
                Some(Owner::Value(i)) => pvs
                    .get(i)
                    .map_or_else(String::new, |p| p.cfg.name.to_string()),
                Some(Owner::Own(i)) => own.get(i).copied().unwrap_or_default().to_string(),
                None => String::new(),
            }),
            col(&|e| e.alarm_type.clone()),
            NtValue::Int32Array(rows.iter().map(|e| e.priority).collect()),
            col(&|e| e.state_word().to_string()),
            col(&|e| time(e.raised_at)),
            col(&|e| time(e.acked_at)),
            col(&|e| e.operator.clone()),
            col(&|e| e.comment.clone()),
            col(&|e| e.value.clone()),
            col(&|e| e.limit.clone()),
        ];
        (columns, left_out)
    }

    /// The table's own alarm: INVALID while the feed is down; MINOR while raises are
    /// not held (`max_alarms`); the message says how many rows `max_table_rows` left out.
    pub(super) fn table_alarm(&self, left_out: usize) -> Alarm {
        let (base, plain) = match self.lost {
            // The reason (which may name hosts) is logged, not shown.
            Some(_) => (
                Alarm::new(Severity::Invalid, AlarmStatus::Driver, FEED_LOST),
                false,
            ),
            None => (Alarm::none(), true),
        };
        let not_held = (self.dropped > 0).then(|| {
            Alarm::new(
                Severity::Minor,
                AlarmStatus::Conf,
                format!(
                    "{} alarm raises not held: more than {} active alarms ([limits] max_alarms)",
                    self.dropped, self.max_alarms
                ),
            )
        });
        let cut = (left_out > 0).then(|| {
            Alarm::new(
                Severity::NoAlarm,
                AlarmStatus::None,
                format!(
                    "{left_out} more alarms not shown: the table shows the {} most urgent \
                     ([limits] max_table_rows)",
                    self.max_table_rows
                ),
            )
        });
        combine([not_held.as_ref(), cut.as_ref()], &base, plain)
    }

    pub(super) fn post_table(&mut self, pvs: &Registry) {
        let Some(table) = &self.table else { return };
        let own: Vec<&str> = self.own.iter().map(|o| o.cfg.name.as_str()).collect();
        let (columns, left_out) = Self::rows(&self.active, pvs, &own, self.max_table_rows);
        let update = TableUpdate {
            columns: Some(columns),
            alarm: Some(self.table_alarm(left_out)),
            time: Some(self.table_stamps.now(table.name())),
        };
        if let Err(e) = table.post(&update) {
            warn!(pv = %table.name(), error = %e, "post failed");
        }
    }
}
