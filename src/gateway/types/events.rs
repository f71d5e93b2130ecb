//! Sessions, their events, alarms, bulk results and the Galaxy's hierarchy.
use std::fmt;
use std::time::SystemTime;

use super::{
    ItemHandle, MxDataType, MxStatus, MxValue, Quality, SecurityClassification, ServerHandle,
    UserId,
};

/// Session state as the gateway reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    Unspecified,
    Creating,
    StartingWorker,
    WaitingForPipe,
    InitializingWorker,
    Ready,
    Closing,
    Closed,
    Faulted,
}

/// What `OpenSession` returned besides the session id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub session_id: String,
    pub backend_name: String,
    pub gateway_protocol_version: i32,
    pub worker_protocol_version: i32,
}

/// An OnDataChange event.
#[derive(Clone, Debug, PartialEq)]
pub struct DataChange {
    pub worker_sequence: u64,
    pub server_handle: ServerHandle,
    pub item_handle: ItemHandle,
    pub value: MxValue,
    pub quality: Quality,
    /// Timestamp from the source (the owning engine), UTC.
    pub source_time: Option<SystemTime>,
    pub statuses: Vec<MxStatus>,
}

/// An OnWriteComplete event: whether System Platform applied a write.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteComplete {
    pub worker_sequence: u64,
    pub server_handle: ServerHandle,
    pub item_handle: ItemHandle,
    pub statuses: Vec<MxStatus>,
}

impl WriteComplete {
    /// The first failing status, if the write failed.
    pub fn failure(&self) -> Option<&MxStatus> {
        self.statuses.iter().find(|s| !s.is_ok())
    }
}

/// An OperationComplete event.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationComplete {
    pub worker_sequence: u64,
    pub server_handle: ServerHandle,
    pub item_handle: ItemHandle,
    pub statuses: Vec<MxStatus>,
}

/// An OnBufferedDataChange event: several samples of one item.
#[derive(Clone, Debug, PartialEq)]
pub struct BufferedDataChange {
    pub worker_sequence: u64,
    pub server_handle: ServerHandle,
    pub item_handle: ItemHandle,
    pub samples: Vec<(MxValue, Quality, Option<SystemTime>)>,
    pub statuses: Vec<MxStatus>,
}

/// The replay sentinel: the events after `requested_after` are no longer
/// retained. The client must re-read current values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayGap {
    pub requested_after: u64,
    pub oldest_available: u64,
}

/// An event that could not be decoded: a value past a cap, of an unknown type, a time
/// out of range, a quality that is not 16 bits, an unknown family. It concerns its item
/// alone; the stream goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecodable {
    pub worker_sequence: u64,
    pub server_handle: ServerHandle,
    pub item_handle: ItemHandle,
    /// The event was a data change (plain or buffered): the item's new value is lost.
    pub data_change: bool,
    /// Why, e.g. "array of 4294967295 elements exceeds [limits] max_array_length 100000".
    pub reason: String,
}

/// One event of a session's event stream.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    DataChange(DataChange),
    WriteComplete(WriteComplete),
    OperationComplete(OperationComplete),
    BufferedDataChange(BufferedDataChange),
    AlarmTransition {
        worker_sequence: u64,
        transition: AlarmTransition,
    },
    ReplayGap(ReplayGap),
    Undecodable(Undecodable),
}

impl SessionEvent {
    /// The event's worker sequence (0 for a replay gap sentinel).
    pub fn worker_sequence(&self) -> u64 {
        match self {
            SessionEvent::DataChange(e) => e.worker_sequence,
            SessionEvent::WriteComplete(e) => e.worker_sequence,
            SessionEvent::OperationComplete(e) => e.worker_sequence,
            SessionEvent::BufferedDataChange(e) => e.worker_sequence,
            SessionEvent::AlarmTransition {
                worker_sequence, ..
            } => *worker_sequence,
            SessionEvent::ReplayGap(_) => 0,
            SessionEvent::Undecodable(e) => e.worker_sequence,
        }
    }
}

/// The four alarm states (ACK/UNACK x ALM/RTN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmState {
    UnackAlm,
    AckAlm,
    UnackRtn,
    AckRtn,
}

impl AlarmState {
    pub fn is_active(self) -> bool {
        matches!(self, AlarmState::UnackAlm | AlarmState::AckAlm)
    }

    pub fn is_acked(self) -> bool {
        matches!(self, AlarmState::AckAlm | AlarmState::AckRtn)
    }
}

/// Kind of an alarm transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmTransitionKind {
    Raise,
    Acknowledge,
    Clear,
    Retrigger,
}

/// What an alarm looks like now (from the snapshot part of the feed, or QueryActiveAlarms).
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveAlarm {
    /// `Galaxy!Area.Object.Alarm`
    pub reference: String,
    pub source_object: String,
    pub alarm_type: String,
    pub state: AlarmState,
    /// Native priority (1 most urgent .. 999).
    pub priority: i32,
    pub raised_at: Option<SystemTime>,
    pub last_transition_at: Option<SystemTime>,
    pub operator: String,
    pub comment: String,
    /// The area.
    pub category: String,
    pub description: String,
    pub current_value: Option<MxValue>,
    pub limit_value: Option<MxValue>,
}

/// One alarm transition.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmTransition {
    pub reference: String,
    pub source_object: String,
    pub alarm_type: String,
    pub kind: AlarmTransitionKind,
    /// The state after the transition.
    pub state: AlarmState,
    pub priority: i32,
    pub raised_at: Option<SystemTime>,
    pub at: Option<SystemTime>,
    pub operator: String,
    pub comment: String,
    pub category: String,
    pub description: String,
    pub current_value: Option<MxValue>,
    pub limit_value: Option<MxValue>,
}

/// One message of the StreamAlarms feed.
#[derive(Clone, Debug, PartialEq)]
pub enum AlarmFeedItem {
    Active(ActiveAlarm),
    SnapshotComplete { active_alarm_count: u32 },
    Transition(AlarmTransition),
}

/// Outcome of one bulk entry that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkEntryError {
    pub message: String,
    pub hresult: i32,
    pub statuses: Vec<MxStatus>,
}

impl fmt::Display for BulkEntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(s) = self.statuses.iter().find(|s| !s.is_ok()) {
            write!(f, " [{s}]")?;
        }
        Ok(())
    }
}

/// Result of one entry of AddItemBulk / AdviseItemBulk / SubscribeBulk / ...
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeResult {
    pub tag: String,
    pub item_handle: ItemHandle,
    pub outcome: Result<(), BulkEntryError>,
}

/// Result of one entry of a bulk write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkWriteResult {
    pub item_handle: ItemHandle,
    pub outcome: Result<(), BulkEntryError>,
}

/// A value read by ReadBulk.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadValue {
    pub value: MxValue,
    pub quality: Quality,
    pub source_time: Option<SystemTime>,
    /// True when served from the session's existing subscription.
    pub was_cached: bool,
}

/// Result of one entry of ReadBulk.
#[derive(Clone, Debug, PartialEq)]
pub struct BulkReadResult {
    pub tag: String,
    pub outcome: Result<ReadValue, BulkEntryError>,
}

/// One entry of a bulk write. `timestamp` is used by the *2 variants,
/// `verifier` by the secured variants; `user` is the user id (current user for
/// secured writes).
#[derive(Clone, Debug, PartialEq)]
pub struct WriteEntry {
    pub item_handle: ItemHandle,
    pub value: MxValue,
    pub user: UserId,
    pub verifier: UserId,
    pub timestamp: Option<SystemTime>,
}

impl WriteEntry {
    pub fn new(item_handle: ItemHandle, value: MxValue) -> Self {
        WriteEntry {
            item_handle,
            value,
            user: UserId(0),
            verifier: UserId(0),
            timestamp: None,
        }
    }
}

/// Which write command to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    Write,
    Write2,
    WriteSecured,
    WriteSecured2,
}

/// A Galaxy object from the Galaxy Repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GalaxyObject {
    pub gobject_id: i32,
    pub tag_name: String,
    pub contained_name: String,
    pub hierarchical_name: String,
    pub parent_gobject_id: i32,
    pub area_gobject_id: i32,
    pub category_id: i32,
    pub is_area: bool,
    pub template_chain: Vec<String>,
    pub attributes: Vec<GalaxyAttribute>,
}

/// An attribute of a Galaxy object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GalaxyAttribute {
    pub name: String,
    /// `tag_name.AttributeName`
    pub full_tag_reference: String,
    pub data_type: MxDataType,
    pub is_array: bool,
    pub array_dimension: i32,
    pub security: SecurityClassification,
    pub is_historized: bool,
    pub is_alarm: bool,
    pub eng_units: String,
    pub description: String,
}

/// One page of DiscoverHierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HierarchyPage {
    pub objects: Vec<GalaxyObject>,
    /// Empty on the last page.
    pub next_page_token: String,
    pub total_object_count: i32,
}

/// One page of BrowseChildren.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildrenPage {
    /// Each child with whether it has children itself.
    pub children: Vec<(GalaxyObject, bool)>,
    pub next_page_token: String,
}

/// Filters of DiscoverHierarchy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HierarchyQuery {
    /// 0 = gateway default (1000).
    pub page_size: i32,
    pub page_token: String,
    pub root_tag_name: Option<String>,
    pub tag_name_glob: String,
    pub include_attributes: bool,
    pub alarm_bearing_only: bool,
    pub historized_only: bool,
}

/// One deploy event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployEvent {
    pub sequence: u64,
    pub time_of_last_deploy: Option<SystemTime>,
    pub object_count: i32,
    pub attribute_count: i32,
}
