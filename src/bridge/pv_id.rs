//! A mapped PV's id: what everything outside the registry names a PV by (write
//! messages, alarm owners, the dirty list, subscriptions, strays), so that a late message
//! about a removed PV finds nothing. A leaf: every part of the bridge may use it.

/// A mapped PV's id: stable while the PV is mapped, not reused before the registry's
/// 32-bit counter comes round (after 2^32 PVs added), and never one still in use (the
/// registry gives them in increasing order, skipping those). 32 bits: the registry's and
/// the alarms' tables hold one per PV (issue 23: memory per PV).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(in crate::bridge) struct PvId(u32);

impl PvId {
    /// The id numbered `n` (the registry's counter).
    pub(in crate::bridge) fn numbered(n: u32) -> Self {
        PvId(n)
    }

    /// An id for tests of code that only compares ids.
    #[cfg(test)]
    pub fn for_test(n: u64) -> Self {
        PvId(u32::try_from(n).unwrap())
    }
}
