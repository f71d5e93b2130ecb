//! Events the bridge has no use for: for item handles it did not subscribe, write
//! completions no put waits for, events that could not be decoded. They are ignored;
//! each kind is logged at warn once per session (per PV for undecodable values), then
//! at debug, so that a flood of them does not flood the log.

use std::collections::HashSet;

use tracing::{debug, warn};

use crate::bridge::pv_id::PvId;
use crate::gateway::Undecodable;

/// What has been logged at warn in the current session.
#[derive(Default)]
pub(in crate::bridge) struct Strays {
    /// An event for an item handle not subscribed.
    unknown_item: bool,
    /// An OnWriteComplete with no write pending on its item.
    unexpected_write: bool,
    /// An undecodable event that is not a data change of a subscribed item.
    undecodable: bool,
    /// PVs (by index) whose undecodable data changes were logged.
    undecodable_pvs: HashSet<PvId>,
}

impl Strays {
    /// A new session: every kind is worth one warning again.
    pub fn reset(&mut self) {
        *self = Strays::default();
    }

    pub fn unknown_item(&mut self, what: &str, item: i32) {
        if std::mem::replace(&mut self.unknown_item, true) {
            debug!(item, what, "event for an item not subscribed ignored");
        } else {
            warn!(
                item,
                what, "event for an item not subscribed ignored (further ones are logged at debug)"
            );
        }
    }

    pub fn unexpected_write(&mut self, pv: &str) {
        if std::mem::replace(&mut self.unexpected_write, true) {
            debug!(pv, "write completion with no write pending ignored");
        } else {
            warn!(
                pv,
                "write completion with no write pending ignored (further ones are logged at debug)"
            );
        }
    }

    /// An undecodable event; `pv` is the PV whose value it was, if any.
    pub fn undecodable(&mut self, event: &Undecodable, pv: Option<(PvId, &str)>) {
        let first = match pv {
            Some((i, _)) => self.undecodable_pvs.insert(i),
            None => !std::mem::replace(&mut self.undecodable, true),
        };
        let pv = pv.map(|(_, name)| name);
        let (item, reason) = (event.item_handle.0, event.reason.as_str());
        if first {
            warn!(
                pv,
                item,
                reason,
                "gateway event not decoded (further ones like it are logged at debug)"
            );
        } else {
            debug!(pv, item, reason, "gateway event not decoded");
        }
    }
}
