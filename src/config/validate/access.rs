//! `[access]`, `[audit]`, and the `access_group` / `access_level` keys.
//!
//! Whether a group exists is a question for the ACF itself, which asLib reads
//! (`crate::access`); here only the shape of each key is checked.

use std::sync::Arc;

use toml::Spanned;

use super::Validator;
use crate::config::raw::{RawAccess, RawAudit};
use crate::config::{AccessFile, AuditFile};

/// The characters asLib takes in an unquoted name.
fn acf_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-+:.[]<>;".contains(c)
}

/// An `access_group` (or `fallback` when absent). Shared: every PV of a group holds the
/// same string (most hold the default's), not a copy each.
pub(super) fn group(
    v: &mut Validator<'_>,
    key: &str,
    raw: Option<&Spanned<String>>,
    fallback: &Arc<str>,
) -> Arc<str> {
    let Some(raw) = raw else {
        return Arc::clone(fallback);
    };
    let name = raw.get_ref();
    if name.is_empty() || !name.chars().all(acf_name_char) {
        v.err(
            raw.span(),
            key,
            format!(
                "`{name}` is not an access security group name (letters, digits and _-+:.[]<>; only)"
            ),
        );
        return Arc::clone(fallback);
    }
    if **fallback == **name {
        return Arc::clone(fallback);
    }
    Arc::from(name.as_str())
}

/// An `access_level` (or `fallback` when absent): 0 or 1.
pub(super) fn level(
    v: &mut Validator<'_>,
    key: &str,
    raw: Option<&Spanned<i64>>,
    fallback: u8,
) -> u8 {
    let Some(raw) = raw else {
        return fallback;
    };
    match *raw.get_ref() {
        0 => 0,
        1 => 1,
        other => {
            v.err(
                raw.span(),
                key,
                format!("access_level must be 0 or 1, found {other}"),
            );
            fallback
        }
    }
}

pub(super) fn access(v: &mut Validator<'_>, raw: Option<Spanned<RawAccess>>) -> Option<AccessFile> {
    let raw = raw?.into_inner();
    let location = v.at(&raw.file.span());
    let file = raw.file.get_ref();
    if file.as_os_str().is_empty() {
        v.err(
            raw.file.span(),
            "access.file",
            "file is empty: name the ACF",
        );
        return None;
    }
    Some(AccessFile {
        file: v.resolve(file),
        location,
    })
}

pub(super) fn audit(v: &mut Validator<'_>, raw: Option<Spanned<RawAudit>>) -> Option<AuditFile> {
    let raw = raw?.into_inner();
    let file = raw.file.get_ref();
    if file.as_os_str().is_empty() {
        v.err(
            raw.file.span(),
            "audit.file",
            "file is empty: name the audit file",
        );
        return None;
    }
    Some(AuditFile {
        file: v.resolve(file),
    })
}
