//! The bridge: serves mapped System Platform attributes as PVAccess PVs.
//!
//! One task owns all state. It keeps a link to the gateway (connect, open a session,
//! Register, SubscribeBulk in chunks, one event stream demultiplexed by item handle),
//! posts each data change to its PV with the quality as `alarm` and the source time as
//! `timeStamp`, and turns puts into gateway writes that complete on OnWriteComplete.
//!
//! When the gateway is lost every PV goes INVALID ("gateway connection lost"), keeping
//! its last value; puts then fail at once. The link comes back with capped exponential
//! backoff, a new session and one new subscription of every tag.
//!
//! The PV set changes while serving (issue 11). Three parts, one code path:
//! - the **registry** (`mapping/registry.rs`): mapped PVs by a stable `PvId` (never
//!   reused), by name, and by item handle of the current session. Everything that names
//!   a PV outside the registry (write messages, alarm owners, the dirty list, strays)
//!   holds an id, so a late message about a removed PV finds nothing;
//! - the **desired mapping and its diff** (`mapping/diff.rs`, pure): the config's PVs
//!   compared by name with the registry give added, removed and changed PVs, a change
//!   named by its kinds (tag, type, metadata, writability, write mode, alarms, limits,
//!   timestamp). Start is the first diff, against an empty registry (see
//!   [`run_reloading`]);
//! - **applying a diff while serving** (`core/mapping.rs`): removed PVs are retired
//!   (puts fail, clients disconnected, `:ACK` gone) and unsubscribed; tag/type/writability
//!   changes re-open the PV under the same id and re-subscribe its tag; other changes are
//!   taken in place; added PVs are served and subscribed. Gateway work goes in bulk
//!   (UnsubscribeBulk, SubscribeBulk) in the live session, in a task whose item handles
//!   come back as `Internal::Subscribed`; data changes of items not known yet are held
//!   meanwhile. `core/reload.rs` re-reads the file on SIGHUP (validate, then diff;
//!   `[gateway]` and `[users]` changes reconnect; settings that need a restart are named).
//!
//! Files, by concern. The parts (`values/`, `mapping/`, `link/`, `writes/`, `alarms/`,
//! `operate.rs`) each own their state and know nothing of `Bridge`; `core/` joins them.
//! No module imports one that imports it back.
//! - `mod.rs` (this file): the start ([`run`], [`run_reloading`]); `error.rs`: why the
//!   bridge could not start; `pv_id.rs`: the id every part names a PV by (a leaf).
//! - `core/`: the bridge's state, one part per concern, and its decisions (no I/O but
//!   the pvxs posts): `mod.rs` (the state, a turn, the session's events demultiplexed),
//!   `session.rs` (a session up and lost, the advise calls and their results),
//!   `buffered.rs` (the samples of buffered PVs), `on_demand.rs`, `puts.rs` (access
//!   security, then the write path), `mapping.rs` (a diff applied while serving,
//!   discovered mappings), `reload.rs` (SIGHUP: every part's settings, then the mapping).
//! - `serve.rs`: the tokio adapter (the loop, the gateway calls made as tasks).
//! - `values/`: how an MXAccess value, quality and source time become a PV's `value`,
//!   `alarm` and `timeStamp`: `convert.rs` (MXAccess values <-> PV values, exact or
//!   refused; `isotime.rs`: Time text; `convert_props.rs`: generated inputs, tests only),
//!   `quality.rs` (quality -> `alarm`), `limits.rs` (local `value_alarm` limits),
//!   `combine.rs` (how the parts of a PV's alarm join, shared by `mapping/pv.rs` and
//!   `alarms/`, so neither imports the other's file), `stamp.rs` (the rule that keeps
//!   each PV's posted `timeStamp` from going back). It imports nothing else of the bridge.
//! - `mapping/`: the PVs served and how a change of them is found: `registry.rs`,
//!   `diff.rs` (tests in `diff/tests.rs`), `deploys.rs` (above), and `pv.rs`: one
//!   mapped PV (its structure, metadata and pending writes).
//! - `link/`: the gateway link: `mod.rs` (connect, session, lost links and their stale
//!   sessions), `subscriptions.rs` (which tags are advised, paced in chunks; no I/O),
//!   `demand.rs` (on-demand PVs, `subscribe = "on_demand"`: advised while watched, pvxs
//!   first connect / last disconnect, un-advised `linger` after the last client left),
//!   `strays.rs` (events the bridge ignores: unknown items, undecodable; logged once).
//! - `writes/`: the write path: `calls.rs` (the write calls, in bulk, and the write
//!   timers), `pending.rs` (the puts of one PV: sent, settling, timed out), `failure.rs` (which layer
//!   failed a write, for the client's message and the audit), `guard.rs` (access
//!   security, the ACF, and the audit trail, before the write path).
//! - `alarms/`: System Platform alarms: `state.rs` (the types), `active.rs` (the feed
//!   followed), `:ACK` (`ack.rs`), the table (`table.rs`), the `kind` severity scheme (`severity.rs`), following a changed
//!   mapping (`remap.rs`) and reloaded alarm settings (`reload.rs`).
//! - `operate.rs`: the status PVs (`crate::status`) and systemd notifications: state
//!   changes as they happen, one relaxed atomic add per data change, and a tick (at
//!   least once a second) that counts INVALID PVs and feeds systemd's watchdog.
//! - `interleavings/` (tests only): generated interleavings of inputs, with the
//!   bridge's invariants checked after every step.
//!
//! A diff applied while a connect is under way is caught up after it: PVs added or
//! re-tagged meanwhile are subscribed then, items of PVs removed meanwhile unsubscribed.
//! The figure: `benches/reload.rs` (docs/performance.md).
//!
//! `[alarms]` and `[[alarm_pv]]` changes apply too (`alarms/reload.rs`: alarm PVs, the
//! table, `:ACK` names, the feed restarted on a new filter).
//!
//! Buffered PVs (`buffered = true`, issue 24) are advised as buffered items
//! (`link/subscriptions.rs`, `Role`), each sample of their OnBufferedDataChange posted as
//! its own update (`core/buffered.rs`); their puts go through a plain item of the same
//! attribute.
//!
//! `[[discover]]` rules are a source of diffs too (`mapping/deploys.rs`, issue 12): a task
//! follows WatchDeployEvents, re-discovers on each deploy, and the rule-made PVs join the
//! config's (`Config::merge_rule_pvs`) in the diff applied here.
//!
//! Still to do: the `[limits]` sizes need a restart.

mod alarms;
mod core;
mod error;
#[cfg(test)]
mod interleavings;
mod link;
mod mapping;
mod operate;
mod pv_id;
mod serve;
mod values;
mod writes;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::info;

use crate::config::{self, Config};
use crate::pva::{self, Server, ServerConfig};

pub use error::BridgeError;
pub use values::convert::{default_pv_type, iso8601, to_mx, to_nt};
pub use values::quality::quality_alarm;

use self::core::Bridge;

/// The PVAccess server settings: `[server]`, falling back to `EPICS_PVAS_*`.
pub fn server_config(s: &config::Server) -> ServerConfig {
    let mut c = ServerConfig::from_env();
    if let Some(ifs) = &s.interfaces {
        c = c.interfaces(ifs.iter().map(|a| a.to_string()));
    }
    if let Some(p) = s.tcp_port {
        c = c.tcp_port(p);
    }
    if let Some(p) = s.udp_port {
        c = c.udp_port(p);
    }
    if let Some(b) = &s.beacon_destinations {
        c = c.beacon_destinations(b.iter().cloned());
    }
    if let Some(a) = s.auto_beacon {
        c = c.auto_beacon(a);
    }
    c
}

/// Reloads of the config: one message per request (SIGHUP), and the file to read.
pub struct Reload {
    pub path: PathBuf,
    pub requests: mpsc::UnboundedReceiver<()>,
}

/// Runs the bridge until `shutdown` resolves, serving the mapping of `config` as it is.
pub async fn run(
    config: Config,
    pva_config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BridgeError> {
    run_reloading(config, pva_config, shutdown, None).await
}

/// [`run`], reloading the config from [`Reload::path`] on each of its requests.
pub async fn run_reloading(
    config: Config,
    pva_config: ServerConfig,
    shutdown: impl Future<Output = ()>,
    reload: Option<Reload>,
) -> Result<(), BridgeError> {
    let server = Arc::new(Server::new(&pva_config)?);
    let (events_tx, mut pv_events) = pva::event_channel_with(pva::PutLimits {
        max_queued: config.limits.max_puts_queued,
        max_array_length: config.limits.max_array_length,
        max_string_length: config.limits.max_string_length,
    });
    // Puts refused in pvxs's callback meet access security and the audit trail too.
    events_tx.forward_refused_puts();
    let mut bridge = Bridge::new(config, server.clone(), events_tx)?;
    bridge.guard.audit_early_refusals(&bridge.events);
    let close_audit = bridge.guard.audit_closer();
    server.start()?;
    let info = server.info()?;
    info!(
        pvs = bridge.pvs.len(),
        tcp_port = info.tcp_port,
        udp_port = info.udp_port,
        interfaces = ?info.interfaces,
        "serving PVs"
    );
    bridge.follow_rules();
    serve::serve(&mut bridge, &mut pv_events, shutdown, reload).await;
    // Puts still waiting are answered (and audited) as the bridge goes.
    drop(bridge);
    drop(server);
    let _ = tokio::task::spawn_blocking(close_audit).await;
    Ok(())
}
