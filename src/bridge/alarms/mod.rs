//! System Platform alarms: the gateway's alarm feed, mapped onto PVs.
//!
//! A feed task of its own keeps one StreamAlarms call open (reconnecting with backoff)
//! and hands every message to the bridge task. The state is rebuilt from each snapshot
//! (every active alarm, then `snapshot_complete`): the new set replaces the old one
//! whole, so nothing stale survives a reconnect and nothing is lost. Transitions (RAISE,
//! ACKNOWLEDGE, CLEAR, RETRIGGER) then move single alarms; an alarm that reaches ACK_RTN
//! leaves the set.
//!
//! An alarm belongs to a PV:
//! 1. named in the config (`alarms = [...]` of a `[[pv]]` or an `[[alarm_pv]]`), else
//! 2. by its reference: `Object.Attr.Alarm` belongs to the PV of tag `Object.Attr`; a
//!    feature-named `Object.AttrFeatureAlarm` (`Tank001.PVHiAlarm`) to the PV of the
//!    longest `Object.Attr` it starts with, else
//! 3. to no PV: it is still listed in the active-alarm table.
//!
//! Each PV that carries alarms gets a companion `:ACK` PV (made when its first alarm
//! arrives, or at start for alarms named in the config): a put of a string acknowledges
//! the PV's unacknowledged alarms with that comment, as the client's account.

mod ack;
mod active;
mod by_tag;
mod feed;
mod reload;
mod remap;
mod severity;
mod state;
mod table;

#[cfg(test)]
pub(super) use self::feed::FeedMsg;
pub(super) use self::reload::FeedLink;
pub(super) use self::state::Alarms;

#[cfg(test)]
mod tests;
