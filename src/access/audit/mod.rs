//! The audit trail: one JSON line per put outcome, to `[audit] file` and to the tracing
//! target `mxpva::audit`.
//!
//! A write never waits for the file. Records go through a bounded queue to a thread of
//! their own, which appends them; when the queue is full or the file fails, the record is
//! counted (dropped or failed), the failure is logged once per fault, and serving goes
//! on. [`AuditHealth`] shows the fault: the status PVs read it (a hook: `fault()`,
//! `message()`, `written()`, `dropped()`, `failed()`). SIGHUP reopens the file (for
//! logrotate), at the path the reloaded config names.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::lock::Mutex;
use crate::pva::NtValue;

/// Records that may wait for the file; past this they are dropped (and counted).
pub const AUDIT_QUEUE: usize = 8192;

/// How the audit file fares. Shared with whoever shows it (the status PVs).
#[derive(Debug, Default)]
pub struct AuditHealth {
    fault: AtomicBool,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    message: Mutex<String>,
}

impl AuditHealth {
    /// True while the file cannot be written (or records were dropped since the last
    /// record written).
    pub fn fault(&self) -> bool {
        self.fault.load(Ordering::Acquire)
    }
    /// What went wrong last (empty when nothing did).
    pub fn message(&self) -> String {
        self.message.lock().clone()
    }
    /// Records appended to the file.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
    /// Records dropped because the queue to the file was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    /// Records the file could not take (open or write failed).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    fn set_fault(&self, message: String) -> bool {
        *self.message.lock() = message;
        !self.fault.swap(true, Ordering::AcqRel)
    }

    fn clear_fault(&self) -> bool {
        if self.fault.swap(false, Ordering::AcqRel) {
            self.message.lock().clear();
            true
        } else {
            false
        }
    }
}

/// One record of the trail.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// When the outcome was known, RFC 3339 UTC.
    pub time: String,
    pub pv: String,
    /// The MXAccess reference written (none for an `:ACK` PV).
    pub tag: Option<String>,
    /// The ACF group of the PV.
    pub group: String,
    pub account: String,
    pub host: String,
    pub method: String,
    /// The PV's value when the put arrived.
    pub previous: Option<Value>,
    /// The value the client put.
    pub requested: Option<Value>,
    /// `denied` (access security), `refused` (mxpva's own checks), `refused_by_gateway`
    /// (the gateway's own status), `gateway_error` (the call failed in transport or
    /// protocol: whether System Platform applied it is unknown),
    /// `refused_by_system_platform` (an MXAccess status), `timed_out`, `lost`,
    /// `confirmed`.
    pub outcome: String,
    /// The refusing layer's status text: System Platform's, or the gateway's.
    pub status: Option<String>,
    /// The error the client got, when the put failed.
    pub message: Option<String>,
    /// From the put's arrival to its outcome.
    pub duration_ms: f64,
    /// An `:ACK` put: its comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// An `:ACK` put: the alarm references it acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarms: Option<Vec<String>>,
}

enum Msg {
    Record(String),
    Reopen(Option<PathBuf>),
}

/// Where records go. Cheap to clone; any thread may record.
#[derive(Clone)]
pub struct AuditTrail {
    tx: SyncSender<Msg>,
    health: Arc<AuditHealth>,
    /// A file is set: without one a record is only logged, and the writer thread is
    /// not woken for each put.
    to_file: Arc<AtomicBool>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail").finish_non_exhaustive()
    }
}

impl AuditTrail {
    /// Starts the writer thread, appending to `file` (or to the log only, without one).
    pub fn start(file: Option<&Path>) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(AUDIT_QUEUE);
        let health = Arc::new(AuditHealth::default());
        let writer = Writer {
            path: file.map(Path::to_path_buf),
            file: None,
            retry_at: None,
            health: health.clone(),
        };
        std::thread::Builder::new()
            .name("mxpva-audit".into())
            .spawn(move || writer.run(rx))?;
        Ok(AuditTrail {
            tx,
            health,
            to_file: Arc::new(AtomicBool::new(file.is_some())),
        })
    }

    /// The audit file's health, for the status PVs.
    pub fn health(&self) -> Arc<AuditHealth> {
        self.health.clone()
    }

    /// Logs the record on `mxpva::audit` and queues it for the file; never blocks.
    pub fn record(&self, record: &AuditRecord) {
        let line = match serde_json::to_string(record) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode an audit record");
                return;
            }
        };
        tracing::info!(target: "mxpva::audit", "{line}");
        if !self.to_file.load(Ordering::Acquire) {
            return;
        }
        match self.tx.try_send(Msg::Record(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.health.dropped.fetch_add(1, Ordering::Relaxed);
                if self
                    .health
                    .set_fault("the audit file falls behind: records dropped".into())
                {
                    tracing::error!("the audit file falls behind: audit records are dropped (counted); writes go on");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.health.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Closes and reopens the file (SIGHUP), at `file` from now on.
    pub fn reopen(&self, file: Option<&Path>) {
        // Set first: a record made after this call follows the reopen to the new file.
        self.to_file.store(file.is_some(), Ordering::Release);
        // Behind a full queue the reopen waits its turn on a thread of its own.
        let msg = Msg::Reopen(file.map(Path::to_path_buf));
        if let Err(TrySendError::Full(msg)) = self.tx.try_send(msg) {
            let tx = self.tx.clone();
            let _ = std::thread::Builder::new()
                .name("mxpva-audit-reopen".into())
                .spawn(move || {
                    let _ = tx.send(msg);
                });
        }
    }
}

struct Writer {
    path: Option<PathBuf>,
    file: Option<File>,
    /// After a failed open, not before this.
    retry_at: Option<Instant>,
    health: Arc<AuditHealth>,
}

const RETRY: Duration = Duration::from_secs(1);

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                Msg::Record(line) => self.write(&line),
                Msg::Reopen(path) => {
                    self.file = None;
                    self.retry_at = None;
                    self.path = path;
                    if let Some(path) = &self.path {
                        tracing::info!(file = %path.display(), "audit file reopened");
                    }
                }
            }
        }
    }

    fn write(&mut self, line: &str) {
        let Some(path) = self.path.clone() else {
            return;
        };
        if self.file.is_none() {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                self.health.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    self.retry_at = Some(Instant::now() + RETRY);
                    self.fail(&path, format!("cannot open the audit file: {e}"));
                    return;
                }
            }
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let result = match self.file.as_mut() {
            Some(f) => f.write_all(&buf),
            None => return,
        };
        match result {
            Ok(()) => {
                self.health.written.fetch_add(1, Ordering::Relaxed);
                if self.health.clear_fault() {
                    tracing::info!(file = %path.display(), "the audit file takes records again");
                }
            }
            Err(e) => {
                self.file = None;
                self.fail(&path, format!("cannot write the audit file: {e}"));
            }
        }
    }

    fn fail(&self, path: &Path, message: String) {
        self.health.failed.fetch_add(1, Ordering::Relaxed);
        let shown = format!("{}: {message}", path.display());
        if self.health.set_fault(shown.clone()) {
            tracing::error!("{shown}; audit records are counted as failed, writes go on");
        }
    }
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A PV value as JSON: numbers, strings, Booleans, arrays of them; an enum as its index.
pub fn value_json(v: &NtValue) -> Value {
    fn arr<T: Clone + Into<Value>>(v: &[T]) -> Value {
        Value::Array(v.iter().cloned().map(Into::into).collect())
    }
    match v {
        NtValue::Bool(x) => (*x).into(),
        NtValue::Int8(x) => (*x).into(),
        NtValue::Int16(x) => (*x).into(),
        NtValue::Int32(x) => (*x).into(),
        NtValue::Int64(x) => (*x).into(),
        NtValue::UInt8(x) => (*x).into(),
        NtValue::UInt16(x) => (*x).into(),
        NtValue::UInt32(x) => (*x).into(),
        NtValue::UInt64(x) => (*x).into(),
        NtValue::Float32(x) => f64::from(*x).into(),
        NtValue::Float64(x) => (*x).into(),
        NtValue::String(x) => x.clone().into(),
        NtValue::BoolArray(x) => arr(x),
        NtValue::Int8Array(x) => arr(x),
        NtValue::Int16Array(x) => arr(x),
        NtValue::Int32Array(x) => arr(x),
        NtValue::Int64Array(x) => arr(x),
        NtValue::UInt8Array(x) => arr(x),
        NtValue::UInt16Array(x) => arr(x),
        NtValue::UInt32Array(x) => arr(x),
        NtValue::UInt64Array(x) => arr(x),
        NtValue::Float32Array(x) => Value::Array(x.iter().map(|f| f64::from(*f).into()).collect()),
        NtValue::Float64Array(x) => arr(x),
        NtValue::StringArray(x) => arr(x),
        NtValue::Enum(i) => (*i).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pv: &str) -> AuditRecord {
        AuditRecord {
            time: rfc3339(SystemTime::UNIX_EPOCH),
            pv: pv.into(),
            tag: Some("T.X".into()),
            group: "DEFAULT".into(),
            account: "a".into(),
            host: "127.0.0.1".into(),
            method: "ca".into(),
            previous: Some(1.5.into()),
            requested: Some(2.into()),
            outcome: "confirmed".into(),
            status: None,
            message: None,
            duration_ms: 1.0,
            comment: None,
            alarms: None,
        }
    }

    fn wait_for(what: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !what() {
            assert!(Instant::now() < until, "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn records_are_json_lines_and_a_reopen_follows_a_rename() {
        let dir = std::env::temp_dir().join(format!("mxpva-audit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("audit.jsonl");
        let _ = std::fs::remove_file(&path);
        let trail = AuditTrail::start(Some(&path)).unwrap();
        trail.record(&record("P:1"));
        wait_for(|| trail.health().written() == 1);
        let rotated = dir.join("audit.jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        trail.reopen(Some(&path));
        trail.record(&record("P:2"));
        wait_for(|| trail.health().written() == 2);
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(old.trim()).unwrap();
        assert_eq!(v["pv"], "P:1");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
        let v: Value = serde_json::from_str(new.trim()).unwrap();
        assert_eq!(v["pv"], "P:2");
        assert!(!trail.health().fault());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_file_is_a_fault_not_a_stop() {
        let path = Path::new("/nonexistent-mxpva-dir/audit.jsonl");
        let trail = AuditTrail::start(Some(path)).unwrap();
        trail.record(&record("P:1"));
        wait_for(|| trail.health().failed() >= 1);
        assert!(trail.health().fault());
        assert!(trail
            .health()
            .message()
            .contains("cannot open the audit file"));
        // Still takes records (counted as failed), never blocks.
        for _ in 0..100 {
            trail.record(&record("P:2"));
        }
        wait_for(|| trail.health().failed() + trail.health().dropped() >= 101);
    }

    #[test]
    fn without_a_file_a_record_is_only_logged_and_never_queued() {
        let (tx, rx) = sync_channel(1);
        let trail = AuditTrail {
            tx,
            health: Arc::default(),
            to_file: Arc::new(AtomicBool::new(false)),
        };
        for _ in 0..3 {
            trail.record(&record("P:1"));
        }
        assert!(rx.try_recv().is_err());
        assert_eq!(trail.health.dropped.load(Ordering::Relaxed), 0);
        // A reopen onto a file queues the records from then on.
        trail.reopen(Some(Path::new("/nonexistent/audit.jsonl")));
        assert!(matches!(rx.try_recv(), Ok(Msg::Reopen(Some(_)))));
        trail.record(&record("P:1"));
        assert!(matches!(rx.try_recv(), Ok(Msg::Record(_))));
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        // No writer: the queue of 2 fills and stays full.
        let (tx, _rx) = sync_channel(2);
        let trail = AuditTrail {
            tx,
            health: Arc::default(),
            to_file: Arc::new(AtomicBool::new(true)),
        };
        for _ in 0..10 {
            trail.record(&record("P:1"));
        }
        assert_eq!(trail.health().dropped(), 8);
        assert!(trail.health().fault());
        assert!(trail.health().message().contains("records dropped"));
    }
}
