//! The audit trail: one JSON line per put outcome, to `[audit] file` and to the tracing
//! target `mxpva::audit`.
//!
//! A write never waits for the file, nor for the log. Records are encoded where they are
//! made and go, as JSON lines, through a bounded queue to a thread of their own, which
//! logs them and appends them to the file (a batch of lines, such as one turn of the
//! bridge's, in one write each); when the queue is full or the file fails, the record is
//! counted (dropped or failed), the failure is logged once per fault, and serving goes
//! on. [`AuditHealth`] shows the fault: the status PVs read it (a hook: `fault()`,
//! `message()`, `written()`, `dropped()`, `failed()`). SIGHUP reopens the file (for
//! logrotate), at the path the reloaded config names.
//!
//! The queue is bounded in records ([`AUDIT_QUEUE`]) and in bytes ([`AUDIT_QUEUE_BYTES`]):
//! past the byte bound a record keeps everything but the tail of its arrays
//! (`shrink.rs`); only a full queue drops a record. Records of refused puts are limited per
//! client (`limit.rs`). A record reaches the file whole or not at all, and
//! [`AuditTrail::close`] (at shutdown) waits for the queue to reach the file.

mod limit;
mod shrink;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::lock::Mutex;
use crate::pva::NtValue;

pub use limit::{is_refusal, REFUSALS_BURST, REFUSALS_PER_SECOND};

/// Records that may wait for the log and the file; past this they are dropped (and
/// counted).
pub const AUDIT_QUEUE: usize = 8192;

/// Bytes of records that may wait for the file; past this a record's arrays are cut to
/// what fits (at least the record without its arrays is kept).
pub const AUDIT_QUEUE_BYTES: usize = 16 << 20;

/// A deferral's list of records keeps its room for the next one up to this many records
/// (a turn's puts; a larger list is freed).
const KEPT_DEFERRED: usize = 1024;

/// How a shutdown waits for the queue to reach the file at most.
pub const AUDIT_CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How the audit file fares. Shared with whoever shows it (the status PVs).
#[derive(Debug, Default)]
pub struct AuditHealth {
    fault: AtomicBool,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    suppressed: AtomicU64,
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
    /// Refused puts not recorded because their client was past its limit (each counted on
    /// the client's next record, `refusals_suppressed`).
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }

    /// What the `Audit` status PV shows: `None` when all is well (`OK`), else the fault
    /// (MAJOR); and, once records were dropped, how many since start.
    pub fn shown(&self) -> (Option<String>, Option<String>) {
        let dropped = self.dropped();
        let count = (dropped > 0).then(|| format!("{dropped} audit records dropped since start"));
        match (self.fault(), count) {
            (true, Some(c)) if !self.message().contains("dropped") => {
                (Some(format!("{}; {c}", self.message())), None)
            }
            (true, _) => (Some(self.message()), None),
            (false, c) => (None, c.map(|c| format!("OK; {c}"))),
        }
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
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditRecord {
    /// When the outcome was known, RFC 3339 UTC.
    pub time: String,
    pub pv: String,
    /// The MXAccess reference written (none for an `:ACK` PV, nor for a put refused
    /// before the bridge saw it).
    pub tag: Option<String>,
    /// The ACF group of the PV.
    pub group: String,
    /// The client's account as the access rules saw it (`crate::access::acf_user`).
    pub account: String,
    /// The account the client claimed, when the rules saw another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_account: Option<String>,
    pub host: String,
    pub method: String,
    /// The PV's value when the put arrived.
    pub previous: Option<Value>,
    /// The value the client put.
    pub requested: Option<Value>,
    /// Elements of `previous` left out (the queue was past its byte bound).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_omitted: Option<usize>,
    /// Elements of `requested` left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_omitted: Option<usize>,
    /// `denied` (access security), `denied_no_read` (the read gate: no READ access, put
    /// refused when the channel was opened), `queue_full` (`[limits] max_puts_queued`
    /// puts waited already), `refused` (mxpva's own checks), `refused_by_gateway`
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
    /// Refused puts of the same client (`host`) not recorded since its record before,
    /// because it was past its limit; absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub refusals_suppressed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

enum Msg {
    /// Records, each one JSON line, in order: logged, and appended to the file when
    /// `to_file` (a file was set when they were made).
    Lines {
        lines: Vec<String>,
        to_file: bool,
    },
    Reopen(Option<PathBuf>),
    /// Everything before is in the file: say so and end.
    Close(SyncSender<()>),
}

/// Records encoded for one message to the writer.
#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    /// Their bytes.
    bytes: usize,
    /// A file was set when the first was made.
    to_file: bool,
}

/// Where records go. Cheap to clone; any thread may record.
#[derive(Clone)]
pub struct AuditTrail {
    tx: SyncSender<Msg>,
    health: Arc<AuditHealth>,
    /// A file is set: without one a record is only logged.
    to_file: Arc<AtomicBool>,
    /// Bytes of the records in the queue.
    queued_bytes: Arc<AtomicUsize>,
    /// Records in the queue (a message may hold several).
    queued: Arc<AtomicUsize>,
    limiter: Arc<Mutex<limit::Limiter>>,
    /// The writer thread, until [`AuditTrail::close`] joins it.
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
    closed: Arc<AtomicBool>,
    /// Records made while a [`Deferral`] lives, in order (`None`: none lives).
    deferred: Arc<Mutex<Option<Vec<AuditRecord>>>>,
    /// The list of the last deferral, emptied, for the next one (up to
    /// [`KEPT_DEFERRED`] records of room).
    spare: Arc<Mutex<Vec<AuditRecord>>>,
}

/// While it lives, the trail's records ([`AuditTrail::record`]) wait, and are recorded in
/// order when it is dropped. The bridge defers each turn's records to the turn's end, so
/// that the turn's replies and posts reach pvxs back to back and the records' log lines
/// are written together. A record keeps its time and outcome; a clean shutdown ends the
/// turn before the trail is closed.
pub struct Deferral {
    trail: Option<AuditTrail>,
}

impl Drop for Deferral {
    fn drop(&mut self) {
        let Some(trail) = self.trail.take() else {
            return;
        };
        let Some(mut records) = trail.deferred.lock().take() else {
            return;
        };
        trail.record_all(&mut records);
        if records.capacity() <= KEPT_DEFERRED {
            *trail.spare.lock() = records;
        }
    }
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
        let mut trail = AuditTrail::with_queue(tx, health.clone(), file.is_some());
        let writer = Writer {
            path: file.map(Path::to_path_buf),
            file: None,
            retry_at: None,
            health,
            queued_bytes: trail.queued_bytes.clone(),
            queued: trail.queued.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("mxpva-audit".into())
            .spawn(move || writer.run(rx))?;
        trail.writer = Arc::new(Mutex::new(Some(handle)));
        Ok(trail)
    }

    fn with_queue(tx: SyncSender<Msg>, health: Arc<AuditHealth>, to_file: bool) -> Self {
        AuditTrail {
            tx,
            health,
            to_file: Arc::new(AtomicBool::new(to_file)),
            queued_bytes: Arc::default(),
            queued: Arc::default(),
            limiter: Arc::default(),
            writer: Arc::default(),
            closed: Arc::default(),
            deferred: Arc::default(),
            spare: Arc::default(),
        }
    }

    /// Defers the trail's records until the [`Deferral`] returned is dropped (one that
    /// comes while another lives defers nothing of its own: the first one records them).
    pub fn defer(&self) -> Deferral {
        let mut deferred = self.deferred.lock();
        let trail = deferred.is_none().then(|| {
            *deferred = Some(std::mem::take(&mut *self.spare.lock()));
            self.clone()
        });
        Deferral { trail }
    }

    /// The audit file's health, for the status PVs.
    pub fn health(&self) -> Arc<AuditHealth> {
        self.health.clone()
    }

    /// Queues the record for the log (`mxpva::audit`) and the file (when a [`Deferral`]
    /// lives, at its end); never blocks. A refusal ([`is_refusal`]) of a client past its
    /// limit is only counted.
    pub fn record(&self, record: AuditRecord) {
        if let Some(records) = self.deferred.lock().as_mut() {
            records.push(record);
            return;
        }
        self.record_all(&mut vec![record]);
    }

    /// [`AuditTrail::record`] of each of `records` (taken, the list left empty), queued
    /// together (one message, one wakeup of the writer).
    fn record_all(&self, records: &mut Vec<AuditRecord>) {
        let mut lines = Lines {
            lines: Vec::with_capacity(records.len()),
            ..Lines::default()
        };
        for mut record in records.drain(..) {
            let refusal = is_refusal(&record.outcome);
            let Some(suppressed) = self.admit(&record.host, refusal) else {
                continue;
            };
            record.refusals_suppressed = suppressed;
            self.encode(&mut lines, record);
        }
        self.send(lines);
    }

    /// A refused put of client `host`: `make` builds its record, unless the client is past
    /// its limit (then the refusal is only counted, and nothing is built).
    pub fn record_refusal(&self, host: &str, make: impl FnOnce() -> AuditRecord) {
        let Some(suppressed) = self.admit(host, true) else {
            return;
        };
        let mut record = make();
        record.refusals_suppressed = suppressed;
        let mut lines = Lines::default();
        self.encode(&mut lines, record);
        self.send(lines);
    }

    fn admit(&self, host: &str, refusal: bool) -> Option<u64> {
        let admitted = self.limiter.lock().admit(host, refusal, Instant::now());
        if admitted.is_none() {
            self.health.suppressed.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// Encodes `record` into `lines`, counted in the queue's bytes and records; when the
    /// line is past the queue's byte bound, with its arrays cut to fit (for the file and
    /// the log alike: the queue holds it in memory either way). Past [`AUDIT_QUEUE`]
    /// records the record is dropped (counted).
    fn encode(&self, lines: &mut Lines, mut record: AuditRecord) {
        let encode = |r: &AuditRecord| match serde_json::to_string(r) {
            Ok(line) => Some(line),
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode an audit record");
                None
            }
        };
        if lines.lines.is_empty() {
            lines.to_file = self.to_file.load(Ordering::Acquire);
        }
        // Neither a file nor a log that shows it (`RUST_LOG` leaves `mxpva::audit` out):
        // the record goes nowhere, as its log line would.
        if !lines.to_file && !tracing::enabled!(target: "mxpva::audit", tracing::Level::INFO) {
            return;
        }
        if self.queued.load(Ordering::Acquire) + lines.lines.len() >= AUDIT_QUEUE {
            self.dropped(1, lines.to_file);
            return;
        }
        let Some(mut line) = encode(&record) else {
            return;
        };
        let queued = self.queued_bytes.load(Ordering::Acquire) + lines.bytes;
        let room = AUDIT_QUEUE_BYTES.saturating_sub(queued);
        if line.len() > room {
            shrink::shrink(&mut record, room);
            let Some(shrunk) = encode(&record) else {
                return;
            };
            line = shrunk;
        }
        lines.bytes += line.len();
        lines.lines.push(line);
    }

    /// Queues `lines` for the writer thread (one message).
    fn send(&self, lines: Lines) {
        let Lines {
            lines,
            bytes,
            to_file,
        } = lines;
        let count = lines.len();
        if count == 0 {
            return;
        }
        // After `close` (or with the writer gone) the lines are logged here, and records
        // for the file counted as failed.
        let unqueued = |lines: &[String]| {
            log_lines(lines);
            if to_file {
                self.health
                    .failed
                    .fetch_add(count as u64, Ordering::Relaxed);
            }
        };
        if self.closed.load(Ordering::Acquire) {
            unqueued(&lines);
            return;
        }
        self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        self.queued.fetch_add(count, Ordering::AcqRel);
        let undo = || {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            self.queued.fetch_sub(count, Ordering::AcqRel);
        };
        match self.tx.try_send(Msg::Lines { lines, to_file }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                undo();
                self.dropped(count, to_file);
            }
            Err(TrySendError::Disconnected(Msg::Lines { lines, .. })) => {
                undo();
                unqueued(&lines);
            }
            Err(TrySendError::Disconnected(_)) => undo(),
        }
    }

    /// `count` records dropped: the queue is full.
    fn dropped(&self, count: usize, to_file: bool) {
        let dropped = self
            .health
            .dropped
            .fetch_add(count as u64, Ordering::Relaxed)
            + count as u64;
        let what = if to_file { "file" } else { "log" };
        if self.health.set_fault(format!(
            "the audit {what} falls behind: {dropped} audit records dropped since start"
        )) {
            tracing::error!(
                "the audit {what} falls behind: audit records are dropped (counted); writes go on"
            );
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

    /// Bytes of records waiting for the file.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// At shutdown: waits, `within` at most, until every record queued before is in the
    /// file, and joins the writer thread. True when it finished in time. Records made
    /// after this are counted as failed.
    pub fn close(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let Some(handle) = self.writer.lock().take() else {
            return true;
        };
        self.closed.store(true, Ordering::Release);
        let (done_tx, done_rx) = sync_channel(1);
        let mut msg = Msg::Close(done_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return handle.join().is_ok(),
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            return false;
        }
        handle.join().is_ok()
    }
}

/// Logs `lines` on `mxpva::audit`, each whole and in order, in one write.
fn log_lines(lines: &[String]) {
    crate::logging::held(|| {
        for line in lines {
            tracing::info!(target: "mxpva::audit", "{line}");
        }
    });
}

struct Writer {
    path: Option<PathBuf>,
    file: Option<File>,
    /// After a failed open, not before this.
    retry_at: Option<Instant>,
    health: Arc<AuditHealth>,
    queued_bytes: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
}

const RETRY: Duration = Duration::from_secs(1);

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                Msg::Lines { lines, to_file } => {
                    log_lines(&lines);
                    if to_file {
                        self.write(&lines);
                    } else if self.health.clear_fault() {
                        // Without a file, a fault is the log falling behind: caught up.
                        tracing::info!("the audit log takes records again");
                    }
                    let bytes = lines.iter().map(String::len).sum();
                    self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                    self.queued.fetch_sub(lines.len(), Ordering::AcqRel);
                }
                Msg::Reopen(path) => {
                    self.file = None;
                    self.retry_at = None;
                    self.path = path;
                    if let Some(path) = &self.path {
                        tracing::info!(file = %path.display(), "audit file reopened");
                    }
                }
                Msg::Close(done) => {
                    if let Some(f) = self.file.take() {
                        let _ = f.sync_data();
                    }
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    /// Appends `lines`, in one write: all of them or none.
    fn write(&mut self, lines: &[String]) {
        let count = lines.len() as u64;
        let Some(path) = self.path.clone() else {
            return;
        };
        if self.file.is_none() {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                self.health.failed.fetch_add(count, Ordering::Relaxed);
                return;
            }
            match open_whole(&path) {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    self.retry_at = Some(Instant::now() + RETRY);
                    self.fail(&path, count, format!("cannot open the audit file: {e}"));
                    return;
                }
            }
        }
        let size = lines.iter().map(|l| l.len() + 1).sum();
        let mut buf = Vec::with_capacity(size);
        for line in lines {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        let result = match self.file.as_mut() {
            Some(f) => write_whole(f, &buf),
            None => return,
        };
        match result {
            Ok(()) => {
                self.health.written.fetch_add(count, Ordering::Relaxed);
                if self.health.clear_fault() {
                    tracing::info!(file = %path.display(), "the audit file takes records again");
                }
            }
            Err(e) => {
                self.file = None;
                self.fail(&path, count, format!("cannot write the audit file: {e}"));
            }
        }
    }

    fn fail(&self, path: &Path, count: u64, message: String) {
        self.health.failed.fetch_add(count, Ordering::Relaxed);
        let shown = format!("{}: {message}", path.display());
        if self.health.set_fault(shown.clone()) {
            tracing::error!("{shown}; audit records are counted as failed, writes go on");
        }
    }
}

/// Opens `path` for appending; a file whose last line is not ended (a record cut by a
/// crash, or by another writer) gets its end of line first, so the next record starts on
/// a line of its own.
fn open_whole(path: &Path) -> std::io::Result<File> {
    use std::io::{Read, Seek, SeekFrom};
    // Looked at through a reader of its own, and only for a regular file (a FIFO is not
    // opened for reading).
    let unended = match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() > 0 => {
            let mut r = File::open(path)?;
            let mut last = [0u8; 1];
            r.seek(SeekFrom::Start(m.len() - 1))?;
            r.read_exact(&mut last)?;
            last != *b"\n"
        }
        _ => false,
    };
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    if unended {
        write_whole(&mut f, b"\n")?;
    }
    Ok(f)
}

/// Appends `buf` whole or not at all: a write that stops short (a full disk, a file size
/// limit) is cut back to where it began.
fn write_whole(f: &mut File, buf: &[u8]) -> std::io::Result<()> {
    let start = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
    match f.write_all(buf) {
        Ok(()) => Ok(()),
        Err(e) => {
            if let Some(start) = start {
                if let Err(cut) = f.set_len(start) {
                    tracing::error!(error = %cut, "cannot cut a part-written audit record back");
                }
            }
            Err(e)
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
mod tests;
