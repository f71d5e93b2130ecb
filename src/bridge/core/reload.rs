//! Reload on SIGHUP: the config file is read and validated again. An invalid file changes
//! nothing (the mapping in service stays, the log says what is wrong and where). A valid
//! one is applied as a diff; `[gateway]` and `[users]` changes reconnect; `[alarms]` and
//! `[[alarm_pv]]` changes apply (`alarms/reload.rs`); settings that need a restart
//! (`[server]`, the `[limits]` sizes) are named in a warning.
//!
//! What blocks (reading the files, resolving the ACF's HAG hosts: seconds with a slow
//! resolver) is done first, off the bridge's task ([`prepare`], on tokio's blocking pool,
//! `serve.rs`); the bridge then takes the result in one turn ([`Bridge::apply_reload`]):
//! the new access rules and the new mapping take effect together, and serving never
//! waits on a resolver.

use std::path::Path;
use std::time::Instant;

use tracing::{info, warn};

use super::Bridge;
use crate::access::{Access, AccessError, PreparedAcf};
use crate::bridge::alarms::FeedLink;
use crate::bridge::link::client_options;
use crate::config::Config;
use crate::config::ConfigError;

/// A reload read and resolved, ready for [`Bridge::apply_reload`].
pub(in crate::bridge) struct Prepared {
    config: Result<(Config, Result<Option<PreparedAcf>, AccessError>), ConfigError>,
    started: Instant,
}

/// Reads the config at `path` and its ACF, and resolves the ACF's HAG hosts. Blocks: run
/// it off the bridge's task. `started` is when the reload was asked for.
pub(in crate::bridge) fn prepare(path: &Path, started: Instant) -> Prepared {
    let config = Config::load(path).map(|new| {
        let acf = Access::prepare(&new);
        (new, acf)
    });
    Prepared { config, started }
}

impl Bridge {
    /// A reload was asked for (SIGHUP): said to systemd, and the audit file is reopened
    /// (for logrotate) whatever the new config says.
    pub(in crate::bridge) fn reload_asked(&mut self) {
        crate::systemd::reloading();
        self.guard
            .audit
            .reopen(self.config.audit.as_ref().map(|a| a.file.as_path()));
    }

    /// Takes a reload [`prepare`]d from `path`. True when the gateway link is to be re-made
    /// with new settings.
    pub(in crate::bridge) fn apply_reload(&mut self, prepared: Prepared, path: &Path) -> bool {
        let started = prepared.started;
        match prepared.config {
            Ok((new, acf)) => self.reload_prepared(new, acf, path, started),
            Err(e) => {
                warn!(
                    file = %path.display(),
                    "config reload refused, still serving the mapping in service:\n{e}"
                );
                self.ops.status.config_failed(&e.to_string());
                crate::systemd::ready("config reload refused: serving the config in service");
                false
            }
        }
    }

    /// Takes `new`, read and validated from `path` (its ACF read and resolved on this
    /// thread). True when the gateway link is to be re-made with new settings.
    #[cfg(test)]
    pub(in crate::bridge) fn reload_config(
        &mut self,
        new: Config,
        path: &Path,
        started: Instant,
    ) -> bool {
        let acf = Access::prepare(&new);
        self.reload_prepared(new, acf, path, started)
    }

    /// Takes `new`, read and validated from `path`, with its ACF read and resolved (`acf`).
    /// True when the gateway link is to be re-made with new settings.
    fn reload_prepared(
        &mut self,
        new: Config,
        acf: Result<Option<PreparedAcf>, AccessError>,
        path: &Path,
        started: Instant,
    ) -> bool {
        if let Err(e) = acf.and_then(|acf| self.guard.access.install(&new, acf)) {
            warn!(
                file = %path.display(),
                "config reload refused, still serving the mapping and the access rules in service:\n{e}"
            );
            self.ops.status.config_failed(&e.to_string());
            crate::systemd::ready("config reload refused: serving the config in service");
            return false;
        }
        if new.audit != self.config.audit {
            self.guard
                .audit
                .reopen(new.audit.as_ref().map(|a| a.file.as_path()));
            self.config.audit = new.audit.clone();
        }
        self.config.access = new.access.clone();
        let mut restart: Vec<&'static str> = Vec::new();
        if new.server != self.config.server {
            restart.push("[server]");
        }
        if new.status != self.config.status {
            restart.push("[status]");
        }
        if new.log != self.config.log {
            restart.push("[log]");
        }
        let (old_l, new_l) = (&self.config.limits, &new.limits);
        if old_l.max_puts_queued != new_l.max_puts_queued {
            restart.push("[limits] max_puts_queued");
        }
        if old_l.max_array_length != new_l.max_array_length
            || old_l.max_string_length != new_l.max_string_length
        {
            restart.push("[limits] max_array_length, max_string_length");
        }
        if old_l.max_alarms != new_l.max_alarms || old_l.max_table_rows != new_l.max_table_rows {
            restart.push("[limits] max_alarms, max_table_rows");
        }
        let mut relink = false;
        if new.gateway != self.config.gateway || new.users != self.config.users {
            match client_options(&new.gateway, &self.config.limits) {
                Ok(opts) => {
                    self.opts = opts;
                    // The next session's window follows the new settings.
                    self.link.subs.configure(
                        new.gateway.subscribe_chunk.get(),
                        new.gateway.request_timeout,
                    );
                    self.link
                        .subs
                        .set_buffered_interval(new.gateway.buffered_interval);
                    self.config.gateway = new.gateway.clone();
                    self.config.users = new.users.clone();
                    relink = true;
                }
                Err(e) => warn!(
                    error = %e,
                    "the reloaded [gateway] settings cannot be used: the link keeps the old ones"
                ),
            }
        }
        let link = FeedLink {
            opts: &self.opts,
            gateway: &self.config.gateway,
            changed: relink,
        };
        self.alarms.reload_settings(&new, &link, &self.pvs);
        // Caps on puts apply to the next put.
        self.config.limits.max_puts_per_pv = new_l.max_puts_per_pv;
        self.config.limits.max_puts_in_flight = new_l.max_puts_in_flight;
        // The cap on samples applies to the next OnBufferedDataChange.
        self.config.limits.max_buffered_samples = new_l.max_buffered_samples;
        self.config.defaults = new.defaults.clone();
        // The explicit PVs and the rule-made ones in service, made again under the new
        // rules at once (`Config::merge_rule_pvs`): their access groups are the new rules'
        // even if the discovery of the new rules (deploys.rs), applied when it ends, fails.
        self.config.pvs = new.pvs;
        self.config.discover = new.discover;
        self.config.rule_ctx = new.rule_ctx;
        if self.config.discover.is_empty() {
            self.rules.pvs.clear();
        }
        let (applied, empty) = self.apply_mapping();
        if empty {
            info!("the reloaded mapping is the one in service");
        }
        self.follow_rules();
        if !restart.is_empty() {
            warn!(
                settings = %restart.join(", "),
                "changed settings need a restart of mxpva: not applied"
            );
        }
        self.ops.status.config_loaded(path);
        crate::systemd::ready(&format!("config reloaded: serving {} PVs", self.pvs.len()));
        info!(
            file = %path.display(),
            added = applied.added,
            removed = applied.removed,
            reopened = applied.reopened,
            changed_in_place = applied.changed_in_place,
            reconnect = relink,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "config reloaded"
        );
        relink
    }
}
