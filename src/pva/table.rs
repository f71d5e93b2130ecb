//! A read-only NTTable PV: named, labelled columns, posted as whole tables.
//!
//! ```no_run
//! # fn demo(server: &mxpva::pva::Server, events: &mxpva::pva::EventSender) -> Result<(), mxpva::pva::PvaError> {
//! use mxpva::pva::*;
//! let columns = vec![
//!     Column::new("reference", "Reference", ScalarType::String),
//!     Column::new("priority", "Priority", ScalarType::Int32),
//! ];
//! let mut table = TablePv::new("PLANT:ALARMS", columns, events)?;
//! table.open(&TableUpdate::rows(vec![
//!     NtValue::StringArray(vec!["Tank001.Level.HiHi".into()]),
//!     NtValue::Int32Array(vec![200]),
//! ]))?;
//! server.add_table(&table)?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use cxx::UniquePtr;

use super::error::PvaError;
use super::ffi::bridge::{self, FieldBit, PvHandle, WireColumn, WireUpdate};
use super::shared_pv::{Access, EventSender, PvContext};
use super::value::{Alarm, NtValue, PvType, ScalarType, TimeStamp};

/// One column: the field name under `value`, the label clients show, the element type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub label: String,
    pub ty: ScalarType,
}

impl Column {
    pub fn new(name: impl Into<String>, label: impl Into<String>, ty: ScalarType) -> Self {
        Column {
            name: name.into(),
            label: label.into(),
            ty,
        }
    }
}

/// One post to a table: all rows (one array per column, in column order), and/or the
/// alarm and timeStamp. `columns: None` keeps the rows as they are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableUpdate {
    pub columns: Option<Vec<NtValue>>,
    pub alarm: Option<Alarm>,
    pub time: Option<TimeStamp>,
}

impl TableUpdate {
    /// The whole table, stamped now, NO_ALARM.
    pub fn rows(columns: Vec<NtValue>) -> Self {
        TableUpdate {
            columns: Some(columns),
            alarm: Some(Alarm::none()),
            time: Some(TimeStamp::now()),
        }
    }

    pub fn with_alarm(mut self, alarm: Alarm) -> Self {
        self.alarm = Some(alarm);
        self
    }

    pub fn with_time(mut self, time: TimeStamp) -> Self {
        self.time = Some(time);
        self
    }

    fn to_wire(&self) -> WireUpdate {
        let mut w = WireUpdate::default();
        if let Some(columns) = &self.columns {
            w.fields |= FieldBit::Table.repr;
            w.columns = columns.iter().map(NtValue::to_wire).collect();
        }
        if let Some(a) = &self.alarm {
            w.fields |= FieldBit::Alarm.repr;
            w.alarm = a.to_wire();
        }
        if let Some(t) = self.time {
            w.fields |= FieldBit::TimeStamp.repr;
            w.time = t.to_wire();
        }
        w
    }
}

/// A read-only NTTable served by a [`Server`](super::Server) (see [`Server::add_table`]).
///
/// [`Server::add_table`]: super::Server::add_table
pub struct TablePv {
    name: Arc<str>,
    handle: UniquePtr<PvHandle>,
    columns: Vec<Column>,
}

impl std::fmt::Debug for TablePv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TablePv")
            .field("name", &self.name)
            .field("columns", &self.columns)
            .finish()
    }
}

impl TablePv {
    /// A table PV with these columns; puts to it are refused ("read-only").
    pub fn new(name: &str, columns: Vec<Column>, events: &EventSender) -> Result<Self, PvaError> {
        let invalid = |reason: String| PvaError::Invalid {
            pv: name.to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("empty name".into()));
        }
        if columns.is_empty() {
            return Err(invalid("a table needs at least one column".into()));
        }
        for (i, c) in columns.iter().enumerate() {
            let ok = !c.name.is_empty()
                && !c.name.starts_with(|ch: char| ch.is_ascii_digit())
                && c.name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
            if !ok {
                return Err(invalid(format!(
                    "column name `{}` is not a field name (ASCII letters, digits, `_`)",
                    c.name
                )));
            }
            if columns.iter().take(i).any(|o| o.name == c.name) {
                return Err(invalid(format!("duplicate column `{}`", c.name)));
            }
        }
        let name: Arc<str> = Arc::from(name);
        let ctx = Box::new(PvContext::new(name.clone(), Access::ReadOnly, events));
        let handle =
            bridge::pv_new(ctx).map_err(|e| PvaError::native(format!("create PV {name}"), e))?;
        Ok(TablePv {
            name,
            handle,
            columns,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub(crate) fn handle(&self) -> &PvHandle {
        &self.handle
    }

    /// Opens the table with `initial` (which must carry the rows).
    pub fn open(&mut self, initial: &TableUpdate) -> Result<(), PvaError> {
        if self.is_open() {
            return Err(PvaError::AlreadyOpen {
                pv: self.name.to_string(),
            });
        }
        if initial.columns.is_none() {
            return Err(PvaError::Invalid {
                pv: self.name.to_string(),
                reason: "a table opens with its rows".into(),
            });
        }
        self.check(initial)?;
        let wire: Vec<WireColumn> = self
            .columns
            .iter()
            .map(|c| WireColumn {
                name: c.name.clone(),
                label: c.label.clone(),
                kind: c.ty.kind(),
            })
            .collect();
        let handle = self.handle.as_mut().ok_or_else(|| PvaError::NotOpen {
            pv: self.name.to_string(),
        })?;
        handle
            .open_table(&wire, &initial.to_wire())
            .map_err(|e| PvaError::native(format!("open {}", self.name), e))
    }

    /// Posts the rows and/or alarm and timeStamp that `update` carries.
    pub fn post(&self, update: &TableUpdate) -> Result<(), PvaError> {
        self.check(update)?;
        self.handle.post(&update.to_wire()).map_err(|e| {
            if self.is_open() {
                PvaError::native(format!("post to {}", self.name), e)
            } else {
                PvaError::NotOpen {
                    pv: self.name.to_string(),
                }
            }
        })
    }

    pub fn close(&mut self) -> Result<(), PvaError> {
        self.handle
            .close()
            .map_err(|e| PvaError::native(format!("close {}", self.name), e))
    }

    pub fn is_open(&self) -> bool {
        self.handle.is_open()
    }

    /// The whole table as pvxs holds it: the rows, the alarm and the timeStamp.
    pub fn current(&self) -> Result<TableUpdate, PvaError> {
        let not_open = || PvaError::NotOpen {
            pv: self.name.to_string(),
        };
        if !self.is_open() {
            return Err(not_open());
        }
        let w = self.handle.current().map_err(|_| not_open())?;
        let columns = self
            .columns
            .iter()
            .zip(w.columns)
            .map(|(c, d)| NtValue::from_wire(PvType::Array(c.ty), d))
            .collect();
        Ok(TableUpdate {
            columns: Some(columns),
            alarm: Some(Alarm::from_wire(&w.alarm)),
            time: Some(TimeStamp::from_wire(&w.time)),
        })
    }

    /// Every column an array of its type, all of one length.
    fn check(&self, update: &TableUpdate) -> Result<(), PvaError> {
        let Some(columns) = &update.columns else {
            return Ok(());
        };
        let invalid = |reason: String| PvaError::Invalid {
            pv: self.name.to_string(),
            reason,
        };
        if columns.len() != self.columns.len() {
            return Err(invalid(format!(
                "the update has {} columns, the table {}",
                columns.len(),
                self.columns.len()
            )));
        }
        let mut rows = None;
        for (c, v) in self.columns.iter().zip(columns) {
            if v.pv_type() != PvType::Array(c.ty) {
                return Err(PvaError::TypeMismatch {
                    pv: format!("{}.value.{}", self.name, c.name),
                    expected: PvType::Array(c.ty),
                    got: v.pv_type(),
                });
            }
            let n = v.len();
            match rows {
                None => rows = Some(n),
                Some(r) if r != n => {
                    return Err(invalid(format!(
                        "column `{}` has {n} rows, the first column {r}",
                        c.name
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
