//! Deploys of a changed Galaxy: `mxpva sim --galaxy FILE` re-reads FILE on SIGHUP and
//! applies it as a deploy ([`SimHandle::deploy_galaxy`]).
//!
//! As the real gateway: the deploy time advances and a DeployEvent goes out; the Galaxy
//! Repository serves the new hierarchy. Objects and attributes added, removed and
//! retyped take effect for MXAccess items at once:
//! - an attribute that stays with its type keeps its live state (value, quality, time,
//!   version), and the items advised on it see nothing;
//! - an item whose reference resolves to something else now (a retyped attribute, one
//!   added under a reference that did not resolve) is resolved again and reports its new
//!   state as a first OnDataChange (after the first-update delay, as after an Advise);
//! - an item whose attribute disappeared reports what an item of an undeployed object
//!   reports. No public source settles the exact status; the simulator chooses the one it
//!   already gives a reference that does not resolve: quality Bad: configuration error
//!   (0x04) with an MXAccess status ConfigurationError / InvalidReference ("object X does
//!   not exist" or "X.Y: no such attribute"). The item stays; if the attribute comes back
//!   with a later deploy, the item reports it again.
//!
//! The tick and first-update delay of the Galaxy at start stay; everything else (users,
//! API keys, auth mode, alarms) is the new file's.

use std::sync::Arc;
use std::time::Instant;

use super::config::Galaxy;
use super::gateway_svc::resolve;
use super::session::{State, Target};
use super::SimHandle;
use crate::gateway::detail;

/// Whether two targets (of the old and the new Galaxy) are the same thing.
fn same(old: &Galaxy, new: &Galaxy, a: &Target, b: &Target) -> bool {
    let attr = |x: usize, y: usize| match (old.attributes.get(x), new.attributes.get(y)) {
        (Some(p), Some(q)) => {
            p.reference.eq_ignore_ascii_case(&q.reference)
                && p.data_type == q.data_type
                && p.array_length == q.array_length
        }
        _ => false,
    };
    match (a, b) {
        (Target::Scalar(x), Target::Scalar(y)) | (Target::Whole(x), Target::Whole(y)) => {
            attr(*x, *y)
        }
        (Target::Element(x, i), Target::Element(y, j)) => i == j && attr(*x, *y),
        (Target::Alarm(x), Target::Alarm(y)) => match (old.alarms.get(*x), new.alarms.get(*y)) {
            (Some(p), Some(q)) => p.reference.eq_ignore_ascii_case(&q.reference),
            _ => false,
        },
        (Target::Unresolved(d, _), Target::Unresolved(e, _)) => d == e,
        _ => false,
    }
}

impl SimHandle {
    /// Deploys `galaxy` in place of the Galaxy served (see the module notes). Returns the
    /// deploy's sequence.
    pub fn deploy_galaxy(&self, galaxy: Galaxy) -> u64 {
        let core = &self.core;
        let new = Arc::new(galaxy);
        let due = Instant::now() + core.first_update_delay;
        let mut changed = 0usize;
        {
            // The world and the Galaxy change together, under the world lock.
            let mut w = core.world.lock();
            let old = core.galaxy();
            w.redeploy(&old, &new);
            core.set_galaxy(new.clone());
            let sessions: Vec<_> = core.sessions.lock().values().cloned().collect();
            // Attribute indices move with a deploy: the index is built again.
            let mut subs = core.subs.lock();
            subs.clear_index();
            for s in sessions {
                let mut h = s.handles.lock();
                let ready = h.state == State::Ready;
                let mut refreshed = Vec::new();
                for (&ih, item) in h.items.iter_mut() {
                    let target = resolve(core, &item.reference)
                        .unwrap_or_else(|e| Target::Unresolved(detail::INVALID_REFERENCE, e));
                    if !same(&old, &new, &item.target, &target) {
                        changed += 1;
                        item.last_version = 0;
                        item.cached = None;
                        if item.advised && ready {
                            item.first_due = Some(due);
                            refreshed.push(ih);
                        }
                    }
                    item.target = target;
                    if item.advised && ready {
                        subs.add(&item.target, &s, ih);
                    }
                }
                // Their first values go out in handle order, as after a SubscribeBulk.
                refreshed.sort_unstable();
                for ih in refreshed {
                    subs.first_due(due, &s, ih);
                }
            }
        }
        core.due_wake.notify_one();
        let seq = self.deploy();
        tracing::info!(
            sequence = seq,
            objects = new.objects.len(),
            attributes = new.attributes.len(),
            items_changed = changed,
            "Galaxy deployed"
        );
        seq
    }
}
