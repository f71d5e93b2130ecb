//! The safe face of EPICS access security (libCom's asLib, cpp/access.h).
//!
//! asLib holds one set of rules for the whole process. The shim makes every asLib call
//! under one lock, so these functions may be called from any thread; the policy that
//! decides which file is in force lives in one owner (`crate::access::Access`).

use super::ffi::bridge;

/// One access security group (ASG) of a loaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcfGroup {
    pub name: String,
    /// Its INP links, as `INPA(pv)`; they need an IOC's Channel Access links.
    pub inputs: Vec<String>,
}

/// What asLib made of a file it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcfSummary {
    /// Every group, `DEFAULT` included (asLib always defines it).
    pub groups: Vec<AcfGroup>,
    /// What asLib reported without refusing the file (a HAG host it could not resolve).
    pub warnings: Vec<String>,
}

/// The access one client has to one group at one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permission {
    pub read: bool,
    pub write: bool,
    /// The rule that grants the write says TRAPWRITE.
    pub trap_write: bool,
}

/// Parses `text` as an ACF and installs it. On a file asLib refuses, the error holds
/// asLib's own messages (`syntax error at line 3`) and the rules before stay in force.
pub fn acf_load(text: &str) -> Result<AcfSummary, String> {
    let summary = bridge::acf_load(text).map_err(|e| e.what().to_string())?;
    Ok(AcfSummary {
        groups: summary
            .groups
            .into_iter()
            .map(|g| AcfGroup {
                name: g.name,
                inputs: g.inputs,
            })
            .collect(),
        warnings: summary.warnings,
    })
}

/// The access of `user` (and of `role/<r>` for each of `roles`) from the IPv4 address
/// `host` to a PV of `group` at level `level`: the best of them, as QSRV2 gives it.
/// Fails when no file was loaded.
pub fn acf_check(
    group: &str,
    level: u8,
    user: &str,
    host: &str,
    roles: &[String],
) -> Result<Permission, String> {
    let access = bridge::acf_check(group, i32::from(level), user, host, roles)
        .map_err(|e| e.what().to_string())?;
    Ok(Permission {
        read: access.read,
        write: access.write,
        trap_write: access.trap,
    })
}

/// The address asLib makes of the HAG host `host` (its `aToIPAddr`: a dotted address as it
/// is, a name resolved), as `a.b.c.d`; `None` when it does not resolve. Blocks for as long
/// as the resolver takes: call it off pvxs's threads and off the bridge's task.
pub fn acf_resolve_host(host: &str) -> Option<String> {
    Some(bridge::acf_resolve_host(host)).filter(|a| !a.is_empty())
}

/// Decides every open channel again with the rules in force, on a thread of its own (role
/// lookups and pvxs's event loop may take a while): a channel whose READ access changed is
/// closed, and its client connects again, to be refused or served.
pub fn acf_recheck_channels_soon() {
    use std::sync::atomic::{AtomicBool, Ordering};
    // Asked for again before the last one started (the rules and the PVs' groups change
    // in one turn): one re-check covers both.
    static SCHEDULED: AtomicBool = AtomicBool::new(false);
    if SCHEDULED.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("mxpva-acf-recheck".into())
        .spawn(|| {
            SCHEDULED.store(false, Ordering::Release);
            let closed = bridge::acf_recheck_channels();
            if closed > 0 {
                tracing::info!(
                    closed,
                    "access security: channels whose READ access the new rules changed were closed (their clients reconnect)"
                );
            }
        });
    if let Err(e) = spawned {
        SCHEDULED.store(false, Ordering::Release);
        tracing::error!(error = %e, "access security: cannot re-check the open channels");
    }
}

/// Whether puts carry the client's roles ([`super::Credentials::roles`]): a lookup per
/// connection, only worth it while rules are in force.
pub fn acf_want_roles(on: bool) {
    bridge::acf_want_roles(on);
}

/// One PV for the read gate: its name, access security group and level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRule {
    pub pv: String,
    pub group: String,
    pub level: u8,
}

/// What the read gate checks: each PV's group and level, and `other` for any other name.
/// A client the rules give no READ access to a PV gets its GETs, puts and monitors refused
/// (`get denied by access security: ...`). `None` lets every channel through. Channels
/// already open are decided again by [`acf_recheck_channels_soon`].
pub fn acf_set_read_rules(rules: Option<(&[ReadRule], &ReadRule)>) {
    match rules {
        None => bridge::acf_set_read_rules(false, &[], "", 0),
        Some((pvs, other)) => {
            let pvs: Vec<bridge::WireAcfPv> = pvs
                .iter()
                .map(|r| bridge::WireAcfPv {
                    name: r.pv.clone(),
                    group: r.group.clone(),
                    level: i32::from(r.level),
                })
                .collect();
            bridge::acf_set_read_rules(true, &pvs, &other.group, i32::from(other.level));
        }
    }
}

/// The account of a client as the rules see it (asLib's user), formed as QSRV2 forms it:
/// with method `ca` the claimed account after its last `/` (so no claim reads as
/// `role/<group>`, which only [`acf_check`]'s roles give), with any other method
/// `<method>/<account>` (`anonymous/anonymous` for an anonymous client).
pub fn acf_user(method: &str, account: &str) -> String {
    match method {
        "ca" => account.rsplit('/').next().unwrap_or_default().to_string(),
        "" => format!(
            "anonymous/{}",
            if account.is_empty() {
                "anonymous"
            } else {
                account
            }
        ),
        _ => format!("{method}/{account}"),
    }
}

/// Logs what the read gate refused (called on a pvxs worker; never blocks).
pub(crate) fn on_read_denied(pv: String, group: String, account: String, host: String, op: &str) {
    tracing::warn!(%pv, %group, %account, %host, op, "{op} denied by access security (no READ access)");
}

/// A put the read gate refused: its client had no READ access to the PV when it opened the
/// channel. The put's value never reached mxpva.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadDeniedPut {
    pub pv: String,
    pub group: String,
    /// As the rules saw it (`anonymous` for none).
    pub account: String,
    /// The client's IP address.
    pub host: String,
    pub method: String,
}

/// Called on pvxs's worker thread: must not block.
pub type ReadDeniedPutFn = Box<dyn Fn(ReadDeniedPut) + Send + Sync>;

static READ_DENIED_PUTS: std::sync::RwLock<Option<ReadDeniedPutFn>> = std::sync::RwLock::new(None);

/// Who hears of the puts the read gate refuses (the audit trail); `None`: nobody. The read
/// gate serves the whole process, so there is one.
pub fn on_read_denied_puts(hook: Option<ReadDeniedPutFn>) {
    let mut slot = READ_DENIED_PUTS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *slot = hook;
}

/// Called on a pvxs worker (never blocks but for the hook's own lock).
pub(crate) fn on_read_denied_put(
    pv: String,
    group: String,
    account: String,
    host: String,
    method: String,
) {
    let slot = READ_DENIED_PUTS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(hook) = slot.as_ref() {
        hook(ReadDeniedPut {
            pv,
            group,
            account,
            host,
            method,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::acf_user;

    #[test]
    fn a_claimed_account_never_reads_as_a_role() {
        assert_eq!(acf_user("ca", "alice"), "alice");
        assert_eq!(acf_user("ca", "role/ops"), "ops");
        assert_eq!(acf_user("ca", "a/b/role/ops"), "ops");
        assert_eq!(acf_user("ca", "role/"), "");
        assert_eq!(acf_user("anonymous", "anonymous"), "anonymous/anonymous");
        assert_eq!(acf_user("", ""), "anonymous/anonymous");
        assert_eq!(acf_user("x509", "role/ops"), "x509/role/ops");
    }
}
