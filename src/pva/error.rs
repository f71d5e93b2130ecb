//! Errors of the PVAccess layer.

use super::value::PvType;

#[derive(Debug, thiserror::Error)]
pub enum PvaError {
    /// pvxs threw; `op` says what we asked of it.
    #[error("pvxs: {op} failed: {message}")]
    Native { op: String, message: String },
    #[error("{pv}: value of type {} posted to a PV of type {}", .got.pv_name(), .expected.pv_name())]
    TypeMismatch {
        pv: String,
        expected: PvType,
        got: PvType,
    },
    #[error("{pv}: PV is not open")]
    NotOpen { pv: String },
    #[error("{pv}: PV is already open; close it before opening it again")]
    AlreadyOpen { pv: String },
    #[error("{pv}: the update carries `{field}`, which this PV's structure does not have")]
    FieldNotInStructure { pv: String, field: &'static str },
    #[error("{pv}: invalid PV: {reason}")]
    Invalid { pv: String, reason: String },
}

impl PvaError {
    pub(crate) fn native(op: impl Into<String>, e: cxx::Exception) -> Self {
        PvaError::Native {
            op: op.into(),
            message: e.what().to_string(),
        }
    }
}
