//! Authentication and scopes: who is calling and what their API key allows.
use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::gateway::pb::gw as pb;
use crate::gateway::SecurityClassification;
use crate::sim::config::KeyDef;
use crate::sim::{AuthMode, Core};

/// Who is calling: None = authentication disabled (everything allowed).
pub(crate) struct Principal {
    key: Option<KeyDef>,
}

fn key_id(key: &str) -> String {
    key.strip_prefix("mxgw_")
        .and_then(|r| r.split_once('_'))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| "<unnamed>".into())
}

fn prefix_allows(prefixes: &Option<Vec<String>>, reference: &str) -> bool {
    match prefixes {
        None => true,
        Some(list) => {
            let r = reference.to_ascii_lowercase();
            list.iter().any(|p| r.starts_with(&p.to_ascii_lowercase()))
        }
    }
}

impl Principal {
    fn name(&self) -> String {
        self.key
            .as_ref()
            .map(|k| key_id(&k.key))
            .unwrap_or_else(|| "anonymous".into())
    }

    /// May this key read (add/advise/read) `reference`?
    pub(super) fn check_read(&self, reference: &str) -> Result<(), String> {
        match &self.key {
            Some(k) if !prefix_allows(&k.read_prefixes, reference) => {
                Err(format!("API key {} may not read {reference}", self.name()))
            }
            _ => Ok(()),
        }
    }

    /// May this key write `reference` (of classification `sec`, if known)?
    pub(super) fn check_write(
        &self,
        reference: &str,
        sec: Option<SecurityClassification>,
    ) -> Result<(), String> {
        let Some(k) = &self.key else { return Ok(()) };
        if !prefix_allows(&k.write_prefixes, reference) {
            return Err(format!("API key {} may not write {reference}", self.name()));
        }
        if let (Some(max), Some(sec)) = (k.max_write_classification, sec) {
            if sec.native_code() > max.native_code() {
                return Err(format!(
                    "API key {} may write up to {} but {reference} is {}",
                    self.name(),
                    max.name(),
                    sec.name()
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn authorize(core: &Core, md: &MetadataMap, scope: &str) -> Result<Principal, Status> {
    let g = core.galaxy();
    if g.auth_mode == AuthMode::Open {
        return Ok(Principal { key: None });
    }
    let header = md.get("authorization").ok_or_else(|| {
        Status::unauthenticated("missing authorization metadata (expected \"Bearer <api-key>\")")
    })?;
    let text = header
        .to_str()
        .map_err(|_| Status::unauthenticated("malformed authorization metadata"))?;
    let (scheme, key) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
        return Err(Status::unauthenticated(
            "authorization metadata must be \"Bearer <api-key>\"",
        ));
    }
    let key = key.trim();
    // Compare every key fully so the time taken does not depend on where they differ.
    let found = g.keys.iter().find(|k| {
        let (a, b) = (k.key.as_bytes(), key.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    let Some(def) = found else {
        return Err(Status::unauthenticated("invalid API key"));
    };
    if !def.scopes.contains(scope) && !def.scopes.contains("admin") {
        return Err(Status::permission_denied(format!(
            "API key {} lacks scope {scope}",
            key_id(&def.key)
        )));
    }
    Ok(Principal {
        key: Some(def.clone()),
    })
}

pub(super) fn scope_for(kind: pb::MxCommandKind) -> &'static str {
    use pb::MxCommandKind as K;
    match kind {
        K::Write | K::Write2 | K::WriteBulk | K::Write2Bulk => "invoke:write",
        K::WriteSecured | K::WriteSecured2 | K::WriteSecuredBulk | K::WriteSecured2Bulk => {
            "invoke:secure"
        }
        K::DrainEvents => "events:read",
        K::Unspecified => "admin",
        _ => "invoke:read",
    }
}
