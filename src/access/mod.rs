//! Access security for puts: the site's EPICS ACF, evaluated by libCom's asLib (through
//! the shim, `crate::pva::access`), and the audit trail of puts (`audit`).
//!
//! asLib keeps one set of rules for the whole process, so the rules have one owner: the
//! [`Access`] the bridge holds (and, for `mxpva check`, the one [`Access::start`] there
//! makes). The shim serialises every asLib call under one lock besides.
//!
//! - A PV's group is its `access_group` (`DEFAULT` unless set), its level its
//!   `access_level` (0 unless set); every `:ACK` PV is in `[alarms] access_group`.
//! - A client is its account as the rules see it ([`acf_user`]: as QSRV2 forms it, a `ca`
//!   account after its last `/`, `<method>/<account>` otherwise) and, for a `ca` account
//!   this host knows, `role/<group>` for each of its OS groups; the best access any of
//!   them has counts. An account the host does not know has no roles (pvxs's own lookup
//!   would give it one of its own name). Its host is the IP address it connects from:
//!   HAG host names are resolved once per load, before asLib sees the file, off pvxs's
//!   threads and off the bridge's task (`resolve`), and a name that does not resolve
//!   matches no client (as asLib makes it).
//! - A file with INP links (INPA..INPL) is refused: they need an IOC's Channel Access
//!   client, which mxpva is not.

pub mod audit;
pub mod resolve;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::Config;
pub use crate::pva::access::acf_user;
use crate::pva::access::{
    acf_check, acf_load, acf_recheck_channels_soon, acf_resolve_host, acf_set_read_rules,
    acf_want_roles, Permission, ReadRule,
};
use crate::pva::Credentials;

/// Why an ACF cannot be used. The text is what `mxpva check` prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error(
        "{file}: cannot read the access security file ([access] file at {location}): {reason}"
    )]
    Read {
        file: String,
        location: String,
        reason: String,
    },
    #[error("{file}: asLib refused the access security file: {reason}")]
    Syntax { file: String, reason: String },
    #[error("{file}: access security file not given to asLib: {reason}")]
    Unsafe { file: String, reason: String },
    #[error(
        "{file}: group `{group}` uses INP links ({links}): they need an IOC's Channel Access \
         client, which mxpva does not have; remove the INP lines and the CALC rules that use them"
    )]
    Inp {
        file: String,
        group: String,
        links: String,
    },
    #[error("{location}: {key} `{group}` ({what}) is not a group of {file}")]
    UnknownGroup {
        location: String,
        key: String,
        what: String,
        group: String,
        /// The file, with the groups it has.
        file: String,
    },
}

/// An ACF in force.
#[derive(Debug, Clone)]
struct Rules {
    file: PathBuf,
    /// As asLib took it: HAG hosts resolved.
    text: String,
    groups: BTreeSet<String>,
}

/// An ACF read and its HAG hosts resolved ([`Access::prepare`]), for [`Access::install`].
#[derive(Debug, Clone)]
pub struct PreparedAcf {
    file: PathBuf,
    /// The text with its HAG hosts resolved (`resolve`).
    text: String,
}

/// The one owner of the access rules in force.
#[derive(Debug, Default)]
pub struct Access {
    rules: Option<Rules>,
    /// Each PV's group, for records made off the bridge task ([`Access::groups`]).
    groups: std::sync::Arc<crate::lock::Mutex<PvGroups>>,
}

/// Each PV in service (`:ACK` PVs included) and its access security group, with the group
/// of any other name: what the audit trail names for a put refused before the bridge saw
/// it. Kept with or without an ACF.
#[derive(Debug, Default)]
pub struct PvGroups {
    /// The PVs whose group is not `other`: most PVs are in the default group, and a map of
    /// every PV's name cost each PV about 190 bytes (issue 23).
    by_pv: std::collections::HashMap<String, String>,
    other: String,
}

impl PvGroups {
    /// The group of `pv`.
    pub fn of(&self, pv: &str) -> &str {
        self.by_pv.get(pv).unwrap_or(&self.other)
    }
}

/// What the rules say about one put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The put goes to the audit trail: always when denied; when allowed, if a
    /// TRAPWRITE rule granted it, or when there is no ACF at all.
    pub audited: bool,
    /// The client's host as the rules saw it (its IP address).
    pub host: String,
    /// The client's account as the rules saw it ([`acf_user`]).
    pub account: String,
    /// The account the client claimed, when the rules saw another (a `ca` account with
    /// a `/`).
    pub claimed_account: Option<String>,
}

impl Access {
    /// Loads `[access] file` of `config` (nothing without `[access]`), checking that it
    /// has no INP links and that every group the config names is in it.
    pub fn start(config: &Config) -> Result<Self, AccessError> {
        let mut access = Access::default();
        access.reload(config)?;
        Ok(access)
    }

    /// Takes the rules of `config`: [`Access::prepare`] then [`Access::install`]. Blocks
    /// while the HAG hosts are resolved. On an error the rules before stay in force.
    pub fn reload(&mut self, config: &Config) -> Result<(), AccessError> {
        let acf = Self::prepare(config)?;
        self.install(config, acf)
    }

    /// Reads `[access] file` of `config` (`None` without `[access]`) and resolves its HAG
    /// hosts. Blocks for as long as the resolver takes (its timeout for a name no server
    /// answers): called off the bridge's task. A host that does not resolve is logged, and
    /// matches no client, as asLib makes it.
    pub fn prepare(config: &Config) -> Result<Option<PreparedAcf>, AccessError> {
        let Some(cfg) = &config.access else {
            return Ok(None);
        };
        let file = cfg.file.display().to_string();
        let text = std::fs::read_to_string(&cfg.file).map_err(|e| AccessError::Read {
            file: file.clone(),
            location: cfg.location.clone(),
            reason: e.to_string(),
        })?;
        if let Some(reason) = unsafe_for_aslib(&text) {
            return Err(AccessError::Unsafe { file, reason });
        }
        let started = std::time::Instant::now();
        let resolved = resolve::resolve_hags(&text, acf_resolve_host);
        for h in &resolved.unresolved {
            tracing::warn!(
                file = %file,
                hag = %h.hag,
                host = %h.host,
                line = h.line,
                "access security: HAG host `{}` (HAG {}, line {}) does not resolve: it matches \
                 no client until a reload resolves it",
                h.host,
                h.hag,
                h.line
            );
        }
        // Said when the resolver was slow (or failed some): that is when a reload waits.
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let slow = ms >= 100.0 || !resolved.unresolved.is_empty();
        if resolved.hosts > 0 && slow {
            tracing::info!(
                file = %file,
                hosts = resolved.hosts,
                unresolved = resolved.unresolved.len(),
                ms,
                "access security: HAG hosts resolved"
            );
        } else if resolved.hosts > 0 {
            tracing::debug!(file = %file, hosts = resolved.hosts, ms, "access security: HAG hosts resolved");
        }
        Ok(Some(PreparedAcf {
            file: cfg.file.clone(),
            text: resolved.text,
        }))
    }

    /// Installs `acf` (made by [`Access::prepare`] from the same `config`), checking that
    /// it has no INP links and that every group the config names is in it. Waits on no
    /// resolver. On an error the rules before stay in force.
    pub fn install(
        &mut self,
        config: &Config,
        acf: Option<PreparedAcf>,
    ) -> Result<(), AccessError> {
        let (Some(_), Some(PreparedAcf { file: path, text })) = (&config.access, acf) else {
            self.rules = None;
            acf_want_roles(false);
            acf_set_read_rules(None);
            self.set_read_pvs(config, &config.pvs);
            acf_recheck_channels_soon();
            return Ok(());
        };
        let file = path.display().to_string();
        let summary = acf_load(&text).map_err(|reason| AccessError::Syntax {
            file: file.clone(),
            reason,
        })?;
        for warning in &summary.warnings {
            tracing::warn!(file = %file, "access security: {warning}");
        }
        let groups: BTreeSet<String> = summary.groups.iter().map(|g| g.name.clone()).collect();
        let checked = summary
            .groups
            .iter()
            .find(|g| !g.inputs.is_empty())
            .map(|g| {
                Err(AccessError::Inp {
                    file: file.clone(),
                    group: g.name.clone(),
                    links: g.inputs.join(", "),
                })
            })
            .unwrap_or_else(|| check_groups(config, &file, &groups));
        if let Err(e) = checked {
            // asLib took the file already: the rules before come back.
            if let Some(old) = &self.rules {
                if let Err(again) = acf_load(&old.text) {
                    tracing::error!(file = %old.file.display(), error = %again, "cannot restore the access rules before");
                }
            }
            return Err(e);
        }
        self.rules = Some(Rules {
            file: path,
            text,
            groups,
        });
        acf_want_roles(true);
        self.set_read_pvs(config, &config.pvs);
        Ok(())
    }

    /// Gives the read gate the PVs in service, `pvs` (the config's `[[pv]]` tables and the
    /// PVs its `[[discover]]` rules made), with the config's alarm PVs; PVs not named fall
    /// in `[defaults] access_group`. Nothing while no ACF is in force.
    pub fn set_read_pvs(&self, config: &Config, pvs: &[std::sync::Arc<crate::config::Pv>]) {
        let rules = read_rules(config, pvs);
        let other = &config.defaults.access_group;
        *self.groups.lock() = PvGroups {
            by_pv: rules
                .iter()
                .filter(|r| *r.group != **other)
                .map(|r| (r.pv.clone(), r.group.clone()))
                .collect(),
            other: other.to_string(),
        };
        if self.rules.is_none() {
            return;
        }
        let other = ReadRule {
            pv: String::new(),
            group: config.defaults.access_group.to_string(),
            level: config.defaults.access_level,
        };
        acf_set_read_rules(Some((&rules, &other)));
        acf_recheck_channels_soon();
    }

    /// Each PV's group as the PVs in service have it, shared with callbacks off the bridge
    /// task.
    pub(crate) fn groups(&self) -> std::sync::Arc<crate::lock::Mutex<PvGroups>> {
        self.groups.clone()
    }

    /// True while an ACF is in force.
    pub fn active(&self) -> bool {
        self.rules.is_some()
    }

    /// The file in force and its groups.
    pub fn file(&self) -> Option<(&Path, &BTreeSet<String>)> {
        self.rules.as_ref().map(|r| (r.file.as_path(), &r.groups))
    }

    /// Whether `who` may write a PV of `group` at `level`.
    pub fn decide(&self, group: &str, level: u8, who: &Credentials) -> Decision {
        let host = peer_host(&who.peer).to_string();
        let account = acf_user(&who.method, &who.account);
        let claimed_account =
            (who.method == "ca" && account != who.account).then(|| who.account.clone());
        if self.rules.is_none() {
            return Decision {
                allowed: true,
                audited: true,
                host,
                account,
                claimed_account,
            };
        }
        let permission = match acf_check(group, level, &account, &host, &who.roles) {
            Ok(p) => p,
            Err(e) => {
                // Fails closed, as asLib does for a client it cannot add.
                tracing::error!(%group, error = %e, "access security check failed: put denied");
                Permission::default()
            }
        };
        Decision {
            allowed: permission.write,
            audited: !permission.write || permission.trap_write,
            host,
            account,
            claimed_account,
        }
    }
}

/// Each of `pvs` and of the config's alarm PVs with its group and level, `:ACK` PVs
/// included, for the read gate.
fn read_rules(config: &Config, pvs: &[std::sync::Arc<crate::config::Pv>]) -> Vec<ReadRule> {
    let a = &config.alarms;
    let acks = a.enabled && a.acknowledge;
    let pvs = pvs
        .iter()
        .map(|p| (&p.name, &p.access_group, p.access_level, p.acknowledge));
    let alarm_pvs = config
        .alarm_pvs
        .iter()
        .map(|p| (&p.name, &p.access_group, p.access_level, p.acknowledge));
    let mut out = Vec::new();
    for (name, group, level, acknowledge) in pvs.chain(alarm_pvs) {
        out.push(ReadRule {
            pv: name.to_string(),
            group: group.to_string(),
            level,
        });
        if acks && acknowledge {
            out.push(ReadRule {
                pv: format!("{name}{}", a.ack_suffix),
                group: a.access_group.to_string(),
                level: 0,
            });
        }
    }
    out
}

/// The longest ACF line mxpva hands to asLib. asLib's scanner ends the process (exit 1) on
/// a token longer than its 16 KiB buffer, and no token spans lines.
pub const MAX_ACF_LINE: usize = 4096;

/// The longest CALC expression mxpva hands to asLib. libCom's calc compiler keeps pending
/// operators on a fixed stack of 80 and overruns it (the process crashes) on a deeper
/// expression; without INP links a CALC can only be a constant anyway.
pub const MAX_ACF_CALC: usize = 64;

/// What asLib would not survive or would read wrongly: a line past [`MAX_ACF_LINE`], a
/// NUL byte (asLib would stop reading there and take only the rules before it), or a CALC
/// expression past [`MAX_ACF_CALC`].
fn unsafe_for_aslib(text: &str) -> Option<String> {
    for (i, line) in text.split('\n').enumerate() {
        let n = i + 1;
        if line.len() > MAX_ACF_LINE {
            return Some(format!(
                "line {n} is {} bytes long; an ACF line may be at most {MAX_ACF_LINE} bytes",
                line.len()
            ));
        }
        if line.contains('\0') {
            return Some(format!("line {n} holds a NUL byte"));
        }
        let code = line.split('#').next().unwrap_or("");
        for (at, _) in code.match_indices("CALC") {
            let arg = calc_argument(code.get(at + 4..).unwrap_or(""));
            if arg.len() > MAX_ACF_CALC {
                return Some(format!(
                    "line {n}: a CALC expression of {} characters; mxpva takes at most \
                     {MAX_ACF_CALC} (libCom's calc compiler overruns its stack on long ones)",
                    arg.len()
                ));
            }
        }
    }
    None
}

/// The expression of `CALC(...)`, from just after the keyword: a quoted string's content,
/// or the bare word up to `)` or a space.
fn calc_argument(rest: &str) -> &str {
    let Some(rest) = rest.trim_start().strip_prefix('(') else {
        return "";
    };
    let rest = rest.trim_start();
    match rest.strip_prefix('"') {
        // Up to the closing quote; `\"` does not close it (asLib's scanner takes escapes).
        Some(quoted) => {
            let mut escaped = false;
            let end = quoted
                .char_indices()
                .find(|&(_, c)| {
                    let close = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    close
                })
                .map_or(quoted.len(), |(i, _)| i);
            quoted.get(..end).unwrap_or(quoted)
        }
        None => rest
            .split(|c: char| c == ')' || c.is_whitespace())
            .next()
            .unwrap_or(""),
    }
}

/// The message of a denied put.
pub fn denied_message(pv: &str, group: &str, account: &str, host: &str) -> String {
    format!("put denied by access security: {pv} (group {group}, {account}@{host})")
}

/// The address part of a pvxs peer (`127.0.0.1:5075`, `[::1]:5075`).
pub fn peer_host(peer: &str) -> &str {
    if let Some(rest) = peer.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match peer.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => peer,
    }
}

/// asLib holds one set of rules for the whole process, and lib tests run in threads of
/// one process: a test that loads an ACF and relies on its rules holds this lock from the
/// load to its last check, so that no other test's file comes in between.
#[cfg(test)]
pub(crate) fn test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed holding it leaves it poisoned; the rules are loaded anew anyway.
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every group the config names is one of the file's.
fn check_groups(config: &Config, file: &str, groups: &BTreeSet<String>) -> Result<(), AccessError> {
    let listed = groups.iter().cloned().collect::<Vec<_>>().join(", ");
    let unknown = |location: &dyn std::fmt::Display, key: String, what: String, group: &str| {
        AccessError::UnknownGroup {
            location: location.to_string(),
            key,
            what,
            group: group.to_string(),
            file: format!("{file} (its groups: {listed})"),
        }
    };
    if !groups.contains(&*config.defaults.access_group) {
        return Err(unknown(
            &config.path.display(),
            "defaults.access_group".into(),
            "[defaults]".into(),
            &config.defaults.access_group,
        ));
    }
    for pv in &config.pvs {
        if !groups.contains(&*pv.access_group) {
            return Err(unknown(
                &pv.location,
                "access_group".into(),
                format!("PV {}", pv.name),
                &pv.access_group,
            ));
        }
    }
    for rule in &config.discover {
        if let Some(group) = rule.access_group().filter(|g| !groups.contains(*g)) {
            return Err(unknown(
                &rule.location,
                "access_group".into(),
                format!("the PVs of {}", rule.key),
                group,
            ));
        }
    }
    for pv in &config.alarm_pvs {
        if !groups.contains(&*pv.access_group) {
            return Err(unknown(
                &pv.location,
                "access_group".into(),
                format!("alarm PV {}", pv.name),
                &pv.access_group,
            ));
        }
    }
    if !groups.contains(&*config.alarms.access_group) {
        return Err(unknown(
            &config.path.display().to_string(),
            "alarms.access_group".into(),
            "the :ACK PVs".into(),
            &config.alarms.access_group,
        ));
    }
    Ok(())
}

/// The access part of `mxpva check`: the file and each PV's group and level.
pub fn report(access: &Access, config: &Config) -> String {
    use fmt::Write;
    let mut out = String::new();
    let Some((file, groups)) = access.file() else {
        out.push_str("\naccess security: none ([access] not set): every put is allowed\n");
        return out;
    };
    let _ = writeln!(
        out,
        "\naccess security: {} (groups: {})",
        file.display(),
        groups.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    let width = config
        .pvs
        .iter()
        .map(|p| p.name.as_str().len())
        .chain(config.alarm_pvs.iter().map(|p| p.name.as_str().len()))
        .chain([2, config.alarms.ack_suffix.len() + 1])
        .max()
        .unwrap_or(2);
    let mut rows: Vec<(String, &str, u8)> = Vec::new();
    for p in &config.pvs {
        rows.push((p.name.as_str().to_string(), &p.access_group, p.access_level));
    }
    for p in &config.alarm_pvs {
        rows.push((p.name.as_str().to_string(), &p.access_group, p.access_level));
    }
    if config.alarms.enabled && config.alarms.acknowledge {
        rows.push((
            format!("*{}", config.alarms.ack_suffix),
            &config.alarms.access_group,
            0,
        ));
    }
    let gw = rows.iter().map(|r| r.1.len()).chain([5]).max().unwrap_or(5);
    let _ = writeln!(out, "{:width$}  {:gw$}  LEVEL", "PV", "GROUP");
    for (pv, group, level) in rows {
        let _ = writeln!(out, "{pv:width$}  {group:gw$}  {level}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_host_drops_the_port() {
        assert_eq!(peer_host("127.0.0.1:5075"), "127.0.0.1");
        assert_eq!(peer_host("[::1]:5075"), "::1");
        assert_eq!(peer_host("10.0.0.2"), "10.0.0.2");
        assert_eq!(peer_host(""), "");
        assert_eq!(peer_host("[::1"), "::1");
    }

    #[test]
    fn lines_asl_cannot_take_are_refused_before_it_sees_them() {
        assert_eq!(unsafe_for_aslib("ASG(A) {\n RULE(1, READ)\n}\n"), None);
        let long = format!("ASG(A) {{}}\nUAG({}) {{ x }}\n", "a".repeat(MAX_ACF_LINE));
        assert_eq!(
            unsafe_for_aslib(&long).as_deref(),
            Some("line 2 is 4107 bytes long; an ACF line may be at most 4096 bytes")
        );
        assert_eq!(
            unsafe_for_aslib("ASG(A) {}\n\nASG(B\0) {}").as_deref(),
            Some("line 3 holds a NUL byte")
        );
        let deep = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        let calc = format!("ASG(A) {{\n RULE(1, WRITE) {{ CALC(\"{deep}\") }}\n}}");
        assert_eq!(
            unsafe_for_aslib(&calc).as_deref(),
            Some(
                "line 2: a CALC expression of 81 characters; mxpva takes at most 64 \
                 (libCom's calc compiler overruns its stack on long ones)"
            )
        );
        let bare = format!("RULE(1, WRITE) {{ CALC ( {}1 ) }}", "-".repeat(70));
        assert!(unsafe_for_aslib(&bare).is_some_and(|m| m.contains("71 characters")));
        assert_eq!(unsafe_for_aslib("RULE(1, WRITE) { CALC(\"A=1\") }"), None);
        // An escaped quote does not end the expression.
        let escaped = format!("RULE(1, WRITE) {{ CALC(\"\\\"{}\") }}", "(".repeat(70));
        assert!(unsafe_for_aslib(&escaped).is_some_and(|m| m.contains("72 characters")));
        // A comment is not looked into.
        assert_eq!(unsafe_for_aslib(&format!("# CALC(\"{deep}\")")), None);
    }

    #[test]
    fn denied_message_is_the_documented_one() {
        assert_eq!(
            denied_message("P:X", "OPS", "bob", "127.0.0.1"),
            "put denied by access security: P:X (group OPS, bob@127.0.0.1)"
        );
    }
}
