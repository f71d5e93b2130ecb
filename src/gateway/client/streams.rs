//! The two long-lived streams, a session's events and the alarm feed, and the
//! [`Backoff`] for reattaching them.
use std::fmt;
use std::time::Duration;

use super::{req, GatewayClient, Session};
use crate::gateway::convert::*;
use crate::gateway::error::*;
use crate::gateway::limits::{peer_text, ValueLimits};
use crate::gateway::pb::gw as pb;
use crate::gateway::types::*;

impl GatewayClient {
    /// The alarm feed: every active alarm, one `SnapshotComplete`, then transitions.
    pub async fn stream_alarms(&self, filter_prefix: &str) -> Result<AlarmFeed, GatewayError> {
        const CALL: &str = "StreamAlarms";
        let stream = self
            .gw
            .clone()
            .stream_alarms(req(
                pb::StreamAlarmsRequest {
                    client_correlation_id: String::new(),
                    alarm_filter_prefix: filter_prefix.to_string(),
                },
                None,
            ))
            .await
            .map_err(|s| GatewayError::from_status(CALL, s))?
            .into_inner();
        Ok(AlarmFeed {
            inner: stream,
            decoder: FeedDecoder::new(self.settings.limits),
        })
    }
}

impl Session {
    /// Attach the session's event stream. `after` = Some(n) resumes after
    /// worker sequence n (from the gateway's replay buffer); if those events
    /// are no longer retained, the first event is a [`SessionEvent::ReplayGap`].
    pub async fn events(&self, after: Option<u64>) -> Result<EventStream, GatewayError> {
        const CALL: &str = "StreamEvents";
        let stream = self
            .client
            .gw
            .clone()
            .stream_events(req(
                pb::StreamEventsRequest {
                    session_id: self.info.session_id.clone(),
                    after_worker_sequence: after,
                },
                None,
            ))
            .await
            .map_err(|s| GatewayError::from_status(CALL, s))?
            .into_inner();
        Ok(EventStream {
            inner: stream,
            last_sequence: after.unwrap_or(0),
            limits: self.client.settings.limits,
        })
    }
}

/// A session's event stream, in worker_sequence order.
pub struct EventStream {
    inner: tonic::Streaming<pb::MxEvent>,
    last_sequence: u64,
    /// Caps on each decoded value.
    limits: ValueLimits,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("last_sequence", &self.last_sequence)
            .finish()
    }
}

impl EventStream {
    /// The next event; `None` when the gateway ended the stream cleanly.
    /// An `Err` ends the stream (resume with [`Session::events`] and
    /// `Some(self.last_sequence())`). An event that cannot be decoded is not an
    /// error: it arrives as [`SessionEvent::Undecodable`].
    pub async fn next(&mut self) -> Option<Result<SessionEvent, GatewayError>> {
        const CALL: &str = "StreamEvents";
        match self.inner.message().await {
            Ok(Some(e)) => {
                let seq = e.worker_sequence;
                if e.replay_gap.is_none() {
                    if seq <= self.last_sequence && self.last_sequence != 0 {
                        return Some(Err(GatewayError::Protocol {
                            call: CALL,
                            message: format!(
                                "worker_sequence went from {} to {seq}",
                                self.last_sequence
                            ),
                        }));
                    }
                    self.last_sequence = seq;
                }
                Some(Ok(event_from_pb(e, &self.limits)))
            }
            Ok(None) => None,
            Err(s) => Some(Err(GatewayError::from_status(CALL, s))),
        }
    }

    /// The worker sequence of the last event received (or the resume point).
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }
}

/// The StreamAlarms feed.
pub struct AlarmFeed {
    inner: tonic::Streaming<pb::AlarmFeedMessage>,
    decoder: FeedDecoder,
}

impl fmt::Debug for AlarmFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AlarmFeed")
    }
}

impl AlarmFeed {
    /// The next feed message; `None` when the gateway ended the stream. A message that
    /// cannot be decoded (an unknown condition state, an unconvertible value) is skipped
    /// with a warning, once per alarm reference: one odd alarm does not end the feed.
    pub async fn next(&mut self) -> Option<Result<AlarmFeedItem, GatewayError>> {
        loop {
            match self.inner.message().await {
                Ok(Some(m)) => {
                    if let Some(item) = self.decoder.decode(m) {
                        return Some(Ok(item));
                    }
                }
                Ok(None) => return None,
                Err(s) => return Some(Err(GatewayError::from_status("StreamAlarms", s))),
            }
        }
    }
}

/// Decodes feed messages, skipping (and reporting once per reference) those it cannot.
struct FeedDecoder {
    /// Caps on each decoded value and string.
    limits: ValueLimits,
    /// References whose undecodable messages were reported already (at most
    /// [`FeedDecoder::MAX_REPORTED`]; past that, one more warning says so).
    reported: std::collections::HashSet<String>,
    /// The warning that no more references are reported was given.
    reported_full: bool,
}

impl FeedDecoder {
    const MAX_REPORTED: usize = 1024;

    fn new(limits: ValueLimits) -> Self {
        FeedDecoder {
            limits,
            reported: std::collections::HashSet::new(),
            reported_full: false,
        }
    }

    fn decode(&mut self, m: pb::AlarmFeedMessage) -> Option<AlarmFeedItem> {
        use pb::alarm_feed_message::Kind;
        let (reference, decoded) = match m.kind {
            Some(Kind::ActiveAlarm(a)) => (
                a.alarm_full_reference.clone(),
                active_alarm_from_pb(&a, &self.limits).map(AlarmFeedItem::Active),
            ),
            Some(Kind::SnapshotComplete(c)) => {
                return Some(AlarmFeedItem::SnapshotComplete {
                    active_alarm_count: c.active_alarm_count,
                })
            }
            Some(Kind::Transition(t)) => (
                t.alarm_full_reference.clone(),
                transition_from_pb(&t, &self.limits).map(AlarmFeedItem::Transition),
            ),
            None => (String::new(), Err("empty alarm feed message".to_string())),
        };
        match decoded {
            Ok(item) => Some(item),
            Err(message) => {
                let reference = peer_text(&reference);
                if self.reported.len() < Self::MAX_REPORTED {
                    if self.reported.insert(reference.clone()) {
                        tracing::warn!(%reference, %message, "undecodable alarm feed message skipped (reported once per reference)");
                    }
                } else if !std::mem::replace(&mut self.reported_full, true) {
                    tracing::warn!(
                        "more undecodable alarm feed messages are skipped without a warning"
                    );
                }
                None
            }
        }
    }
}

/// Exponential backoff for reconnecting: `initial`, doubled after each failure up to
/// `max`, back to `initial` after a success.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// The first delay is `initial` (`[gateway] reconnect_initial`); each one taken
    /// with [`Backoff::next_delay`] doubles the next, up to `max` (`reconnect_max`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            next: initial,
            max,
        }
    }

    /// The delay before the next attempt; the one after is twice as long (at most `max`).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        d
    }

    /// The delay [`Backoff::next_delay`] would return, without doubling it.
    pub fn current(&self) -> Duration {
        self.next
    }

    /// Call after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::Backoff;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_up_to_max_and_reset_to_initial() {
        let mut b = Backoff::new(100 * MS, 700 * MS);
        let taken: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(taken, [100 * MS, 200 * MS, 400 * MS, 700 * MS, 700 * MS]);
        b.reset();
        assert_eq!(b.next_delay(), 100 * MS);
        assert_eq!(b.next_delay(), 200 * MS);
    }

    #[test]
    fn current_does_not_double() {
        let mut b = Backoff::new(100 * MS, 700 * MS);
        assert_eq!(b.current(), 100 * MS);
        assert_eq!(b.current(), 100 * MS);
        b.next_delay();
        assert_eq!(b.current(), 200 * MS);
    }

    #[test]
    fn a_delay_past_half_of_duration_max_does_not_overflow() {
        let mut b = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(b.next_delay(), Duration::MAX);
        assert_eq!(b.next_delay(), Duration::MAX);
    }
}

#[cfg(test)]
mod feed_tests {
    use super::*;
    use pb::alarm_feed_message::Kind;

    fn transition(reference: &str, state: i32) -> pb::AlarmFeedMessage {
        pb::AlarmFeedMessage {
            kind: Some(Kind::Transition(pb::OnAlarmTransitionEvent {
                alarm_full_reference: reference.into(),
                transition_kind: pb::AlarmTransitionKind::Raise as i32,
                condition_state: state,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn an_undecodable_alarm_is_skipped_and_reported_once() {
        let mut d = FeedDecoder::new(ValueLimits::DEFAULT);
        let ok = pb::AlarmConditionState::UnackAlm as i32;
        assert!(d.decode(transition("G!A.T.Odd", 99)).is_none());
        assert!(d.decode(transition("G!A.T.Odd", 99)).is_none());
        assert_eq!(d.reported.len(), 1);
        match d.decode(transition("G!A.T.HiHi", ok)) {
            Some(AlarmFeedItem::Transition(t)) => assert_eq!(t.reference, "G!A.T.HiHi"),
            other => panic!("{other:?}"),
        }
    }
}
