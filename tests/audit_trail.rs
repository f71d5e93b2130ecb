//! The audit trail, complete (issue 22): `mxpva sim` and `mxpva run` as processes on
//! loopback ports of the test's own, real clients (`pvput`, p4p) putting.
//!
//! - Puts refused before the bridge sees them (the read gate, a full put queue) are
//!   audited, each with its outcome, and refusals are limited per client, each record
//!   saying how many were suppressed before it.
//! - `:ACK` puts count in `Puts:InFlight` and are capped by `max_puts_per_pv`.
//! - Past its byte bound the queue keeps records and cuts their arrays.
//! - A record is written whole or not at all (a file size limit cuts a write short).
//! - SIGTERM waits for the queue: every record is in the file.

mod clients;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clients::clients;
use clients::plant::Plant;
use mxpva::sim::Faults;
use serde_json::Value;

/// Elements of the array attribute.
const WAVE: usize = 50_000;

fn galaxy() -> String {
    let initial = vec!["0.5"; WAVE].join(", ");
    format!(
        r#"
[galaxy]
name = "Galaxy"
tick_ms = 20
first_update_delay_ms = 10
security_enabled = false

[[areas]]
name = "Plant"

[[objects]]
tag = "Pump001"
area = "Plant"

[[objects.attributes]]
name = "SpeedSP"
type = "Double"
initial = 100.0

[[objects.attributes]]
name = "Limit"
type = "Double"
initial = 10.0

[[objects.attributes]]
name = "Wave"
type = "Double"
array_length = {WAVE}
initial = [{initial}]

[[objects.attributes]]
name = "Fault"
type = "Boolean"
initial = false

[[objects.attributes.alarms]]
name = "PumpFault"
kind = "Discrete"
priority = 300
"#
    )
}

const FAULT: &str = "Galaxy!Plant.Pump001.PumpFault";

/// The bridge's config; `ENDPOINT`, `AUDIT` and `EXTRA` are filled in.
const CONFIG: &str = r#"
[gateway]
endpoint = "http://{gateway}"
client_name = "mxpva-audit"
reconnect_initial = "100ms"
reconnect_max = "300ms"
write_timeout = "5s"

[defaults]
prefix = "T:"
writable = true

[audit]
file = "AUDIT"

EXTRA

[[pv]]
name = "Speed"
tag = "Pump001.SpeedSP"
type = "float64"

[[pv]]
name = "Speed2"
tag = "Pump001.SpeedSP"
type = "float64"

[[pv]]
name = "Limit"
tag = "Pump001.Limit"
type = "float64"

[[pv]]
name = "Wave"
tag = "Pump001.Wave[]"

[[pv]]
name = "Fault"
tag = "Pump001.Fault"
writable = false
alarms = ["Pump001.PumpFault"]

[[pv]]
name = "Secret"
tag = "Pump001.Limit"
type = "float64"
access_group = "HIDDEN"
"#;

impl Plant {
    /// The simulator and the bridge; `extra` goes in the config (`[access]`, `[limits]`),
    /// `acf` (if any) is `mxpva.acf`, `audit` is `[audit] file`; `wrap` runs the bridge
    /// under `sh -c wrap` (with the bridge's command line as `$0 $@`); `before` runs on
    /// the test's directory before the bridge starts.
    async fn start(name: &str, extra: &str, acf: Option<&str>, audit: &str) -> Plant {
        Plant::start_wrapped(name, extra, acf, audit, None, |_| {}).await
    }

    async fn start_wrapped(
        name: &str,
        extra: &str,
        acf: Option<&str>,
        audit: &str,
        wrap: Option<&str>,
        before: impl FnOnce(&Path),
    ) -> Plant {
        let mut builder = Plant::new(&format!("audit-{name}")).galaxy_text(galaxy());
        if let Some(acf) = acf {
            builder = builder.file("mxpva.acf", acf);
        }
        if let Some(wrap) = wrap {
            builder = builder.bridge_wrapper(&["sh", "-c", wrap]);
        }
        let mut plant = builder.start().await;
        before(&plant.dir);
        plant.write_config(&CONFIG.replace("AUDIT", audit).replace("EXTRA", extra));
        plant.start_bridge();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = clients().p4p_get(&plant.env, &["T:Speed"]).await;
            if got["T:Speed"]["value"].as_f64() == Some(100.0) {
                break plant;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge serves nothing: {got}"
            );
        }
    }

    fn log(&self) -> String {
        self.log_text()
    }

    /// The audit file's records (each line must be JSON).
    fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.join("audit.jsonl")).unwrap_or_default();
        parse(&text)
    }

    /// Runs a p4p script; its stdout.
    async fn p4p(&self, script: &str, args: &[&str]) -> String {
        clients().python(&self.env, script, args).await.stdout
    }

    /// `T:mxpva:<name>`'s value.
    async fn status(&self, name: &str) -> Value {
        let pv = format!("T:mxpva:{name}");
        clients().p4p_get(&self.env, &[&pv]).await[&pv].clone()
    }
}

fn parse(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?} is not JSON: {e}"))
        })
        .collect()
}

fn whoami() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// p4p script: argv[2] puts at once over the PVs of argv[1] (JSON); prints each result.
const P4P_BURST: &str = r#"
import json, sys
from p4p.client.thread import Context
ctx = Context('pva')
pvs = json.loads(sys.argv[1])
n = int(sys.argv[2])
names = [pvs[i % len(pvs)] for i in range(n)]
values = [float(1 + i % 1000) for i in range(n)]
res = ctx.put(names, values, timeout=60, throw=False)
print(json.dumps(['ok' if r is None else '%s: %s' % (type(r).__name__, r) for r in res]))
"#;

/// p4p script: argv[2] puts to argv[1], one after the other; prints how many were ok.
const P4P_SEQUENCE: &str = r#"
import sys
from p4p.client.thread import Context
ctx = Context('pva')
ok = 0
for i in range(int(sys.argv[2])):
    try:
        ctx.put(sys.argv[1], float(200 + i), timeout=10)
        ok += 1
    except Exception as e:
        print('failed:', e)
print(ok)
"#;

/// p4p script: argv[2] puts of arrays of argv[3] elements to argv[1], one after the other.
const P4P_ARRAYS: &str = r#"
import sys
from p4p.client.thread import Context
ctx = Context('pva')
n = int(sys.argv[3])
ok = 0
for i in range(int(sys.argv[2])):
    try:
        ctx.put(sys.argv[1], [1000.25 + i + j for j in range(n)], timeout=30)
        ok += 1
    except Exception as e:
        print('failed:', e)
print(ok)
"#;

/// Outcomes of refusals (limited per client).
fn is_refusal(r: &Value) -> bool {
    ["denied", "denied_no_read", "queue_full", "refused"].contains(&r["outcome"].as_str().unwrap())
}

/// Items 1 and 4: a put the read gate refuses and puts refused because `max_puts_queued`
/// wait already are in the trail with their own outcomes; a client's refusals are limited,
/// and every one of them is either recorded or counted in `refusals_suppressed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refusals_are_audited_each_with_its_outcome_and_limited_per_client() {
    let me = whoami();
    let acf = "HAG(nowhere) { 192.0.2.1 }\n\
               ASG(DEFAULT) {\n  RULE(1, READ)\n  RULE(1, WRITE, TRAPWRITE)\n}\n\
               ASG(HIDDEN) { RULE(1, READ) { HAG(nowhere) } }\n";
    let plant = Plant::start(
        "early",
        "[access]\nfile = \"mxpva.acf\"\n\n[alarms]\nenabled = false\n\n\
         [limits]\nmax_puts_queued = 1\n",
        Some(acf),
        "audit.jsonl",
    )
    .await;
    let c = clients();
    let started = Instant::now();

    // The read gate: no READ access, so the put is refused before the bridge sees it.
    // (pvput reads the PV first, and stops at the refused GET: p4p puts at once.)
    let out = c.p4p_put(&plant.env, "T:Secret", "5.0").await;
    let denied = format!("put denied by access security: T:Secret (group HIDDEN, {me}@127.0.0.1)");
    assert_eq!(out.trim(), format!("RemoteError: {denied}"), "{out}");

    // Bursts of puts at once find the queue of one full.
    let pvs = serde_json::to_string(&["T:Speed", "T:Speed2", "T:Limit"]).unwrap();
    let (mut ok, mut refused, mut queue_full) = (0, 0, 0);
    for _ in 0..5 {
        let out = plant.p4p(P4P_BURST, &[&pvs, "300"]).await;
        let results: Vec<String> = serde_json::from_str(out.trim()).unwrap();
        for r in &results {
            if r == "ok" {
                ok += 1;
            } else {
                assert!(r.starts_with("RemoteError: "), "{r}");
                refused += 1;
                if r.contains("([limits] max_puts_queued 1): put refused") {
                    queue_full += 1;
                }
            }
        }
        if queue_full > 0 {
            break;
        }
    }
    assert!(
        queue_full > 0,
        "no put found the queue full ({ok} ok, {refused} refused)"
    );
    // One more, allowed and audited (TRAPWRITE): it carries what was suppressed last.
    let out = c.run("pvput", &plant.env, &["T:Limit", "7"]).await.text();
    assert!(!out.contains("Error"), "{out}");

    // Every refusal is recorded or counted, and every confirmed put is recorded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let records = loop {
        let records = plant.records();
        let recorded = records.iter().filter(|r| is_refusal(r)).count() as u64;
        let suppressed: u64 = records
            .iter()
            .map(|r| r["refusals_suppressed"].as_u64().unwrap_or(0))
            .sum();
        let confirmed = records
            .iter()
            .filter(|r| r["outcome"] == "confirmed")
            .count();
        if recorded + suppressed == refused + 1 && confirmed == ok as usize + 1 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "{recorded} refusals recorded + {suppressed} suppressed, not {}; {confirmed} \
             confirmed, not {}",
            refused + 1,
            ok + 1
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let elapsed = started.elapsed().as_secs();
    let recorded = records.iter().filter(|r| is_refusal(r)).count() as u64;
    assert!(
        recorded <= 20 + elapsed + 1,
        "{recorded} refusals recorded in {elapsed} s: not limited"
    );
    assert!(
        recorded < refused + 1,
        "nothing was suppressed: {recorded} recorded"
    );

    let no_read: Vec<&Value> = records
        .iter()
        .filter(|r| r["outcome"] == "denied_no_read")
        .collect();
    assert_eq!(no_read.len(), 1, "{no_read:#?}");
    let r = no_read[0];
    assert_eq!(r["pv"], "T:Secret");
    assert_eq!(r["group"], "HIDDEN");
    assert_eq!(r["account"], me.as_str());
    assert_eq!(r["host"], "127.0.0.1");
    assert_eq!(r["method"], "ca");
    assert_eq!(r["message"], denied.as_str());
    assert_eq!(r["requested"], Value::Null);

    let full: Vec<&Value> = records
        .iter()
        .filter(|r| r["outcome"] == "queue_full")
        .collect();
    assert!(
        !full.is_empty(),
        "no queue_full record (the first refusals are recorded)"
    );
    for r in full {
        assert!(
            r["message"]
                .as_str()
                .is_some_and(|m| m.ends_with("([limits] max_puts_queued 1): put refused")),
            "{r}"
        );
        assert_eq!(r["group"], "DEFAULT", "{r}");
        assert_eq!(r["host"], "127.0.0.1", "{r}");
        assert!(r["requested"].as_f64().is_some(), "{r}");
    }
    let last = records.last().unwrap();
    assert_eq!(last["pv"], "T:Limit", "{last}");
    assert_eq!(last["requested"], 7.0, "{last}");
}

/// Item 2: an acknowledgement under way counts in `Puts:InFlight`, and a second one on
/// the same `:ACK` PV meets `max_puts_per_pv`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_puts_are_capped_and_counted_like_puts() {
    let plant = Plant::start(
        "ack",
        "[limits]\nmax_puts_per_pv = 1\n",
        None,
        "audit.jsonl",
    )
    .await;
    let c = clients();
    plant.control().raise_alarm(FAULT).await.unwrap();
    let mut watch = c.p4p_watch(&plant.env, &["T:Fault"]);
    watch
        .until("T:Fault", "in alarm", Duration::from_secs(15), |s| {
            s.severity().is_some_and(|v| v > 0)
        })
        .await;
    drop(watch);
    plant
        .control()
        .set_faults(&Faults {
            ack_delay: Duration::from_secs(6),
            ..Faults::default()
        })
        .await
        .unwrap();
    let env = plant.env.clone();
    let first =
        tokio::spawn(async move { clients().p4p_put(&env, "T:Fault:ACK", "'first'").await });
    // Under way: counted.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = plant.status("Puts:InFlight").await;
        if v["value"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "Puts:InFlight: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A second one on the same PV is refused by the per-PV cap.
    let out = c
        .run("pvput", &plant.env, &["T:Fault:ACK", "second"])
        .await
        .text();
    assert!(
        out.contains(
            "Error: T:Fault:ACK: 1 puts already wait for System Platform on this PV \
             ([limits] max_puts_per_pv 1): put refused"
        ),
        "{out}"
    );
    let out = first.await.unwrap();
    assert_eq!(out.trim(), "ok", "{out}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = plant.status("Puts:InFlight").await;
        if v["value"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "Puts:InFlight: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Reads the FIFO at `path`: holds it unread until `go` fires (or is dropped), then reads
/// it to its end, or until `lines` lines. The returned file keeps the FIFO open for
/// writing (so that neither end waits for the other to open, and a failed test never
/// leaves the reader waiting): drop it to let the reader see the end once mxpva is gone.
fn fifo_reader(
    path: PathBuf,
    lines: Option<usize>,
) -> (
    std::fs::File,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<String>,
) {
    // Read and write: Linux opens a FIFO so without waiting for the other end.
    let keep = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, Read};
        let f = std::fs::File::open(&path).unwrap();
        let _ = wait.blocking_recv();
        let mut r = std::io::BufReader::new(f);
        let mut text = String::new();
        match lines {
            None => {
                r.read_to_string(&mut text).unwrap();
            }
            Some(n) => {
                for _ in 0..n {
                    if r.read_line(&mut text).unwrap() == 0 {
                        break;
                    }
                }
            }
        }
        text
    });
    (keep, go, reader)
}

/// Item 3: the file stalls (a FIFO nobody reads yet) while puts of large arrays come;
/// past the queue's byte bound the records are kept, their arrays cut, and
/// `previous_omitted` / `requested_omitted` say how many elements were left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_byte_bound_the_queue_keeps_records_and_cuts_their_arrays() {
    const PUTS: usize = 40;
    let mut fifo = PathBuf::new();
    let plant = Plant::start_wrapped("bytes", "", None, "audit.jsonl", None, |dir| {
        fifo = dir.join("audit.jsonl");
        mkfifo(&fifo);
    })
    .await;
    let (_keep, go, reader) = fifo_reader(fifo, Some(PUTS));
    let out = plant
        .p4p(
            P4P_ARRAYS,
            &["T:Wave", &PUTS.to_string(), &WAVE.to_string()],
        )
        .await;
    assert_eq!(out.trim(), PUTS.to_string(), "{out}");
    go.send(()).unwrap();
    let text = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the records came")
        .unwrap();
    let records = parse(&text);
    assert_eq!(records.len(), PUTS, "records dropped");
    let mut cut = 0;
    for r in &records {
        assert_eq!(r["pv"], "T:Wave");
        let kept = r["requested"].as_array().unwrap().len();
        let omitted = r["requested_omitted"].as_u64().unwrap_or(0) as usize;
        assert_eq!(kept + omitted, WAVE, "{}", r["requested_omitted"]);
        let kept = r["previous"].as_array().unwrap().len();
        let omitted = r["previous_omitted"].as_u64().unwrap_or(0) as usize;
        assert_eq!(kept + omitted, WAVE, "{}", r["previous_omitted"]);
        if omitted > 0 {
            cut += 1;
        }
    }
    assert!(cut > 0, "no record was cut");
    // The first ones were whole; what waited stayed within the bound (16 MiB, and what
    // the FIFO and the writer held).
    assert_eq!(records[0]["requested_omitted"], Value::Null);
    assert!(
        text.len() < (16 << 20) + (4 << 20),
        "{} bytes of records",
        text.len()
    );
    assert!(plant.log().contains("T:Wave"));
}

/// Item 5: a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) cuts an append short: the
/// record is taken back, so every line in the file is a whole record, and the `Audit`
/// status PV says why records no longer reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_written_whole_or_not_at_all() {
    let plant = Plant::start_wrapped(
        "whole",
        "",
        None,
        "audit.jsonl",
        Some("trap '' XFSZ; exec prlimit --fsize=20000 -- \"$0\" \"$@\""),
        |_| {},
    )
    .await;
    let out = plant.p4p(P4P_SEQUENCE, &["T:Speed", "80"]).await;
    assert!(out.trim().ends_with("80"), "{out}");
    // The file could not take them all.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = plant.status("Audit").await;
        if v["value"]
            .as_str()
            .is_some_and(|s| s.contains("cannot write the audit file"))
        {
            assert_eq!(v["alarm"]["severity"], 2, "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "Audit: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = std::fs::read_to_string(plant.dir.join("audit.jsonl")).unwrap();
    assert!(
        text.ends_with('\n'),
        "a torn last line: {:?}",
        &text[text.len() - 80..]
    );
    let records = parse(&text);
    assert!(
        records.len() >= 20 && records.len() < 80,
        "{} records",
        records.len()
    );
    for r in &records {
        assert_eq!(r["outcome"], "confirmed", "{r}");
    }
}

/// Item 6: records queued behind a slow file (a FIFO read only after SIGTERM) are all in
/// it when mxpva exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_every_queued_record_reaches_the_file() {
    const PUTS: usize = 400;
    let mut fifo = PathBuf::new();
    let mut plant = Plant::start_wrapped("sigterm", "", None, "audit.jsonl", None, |dir| {
        fifo = dir.join("audit.jsonl");
        mkfifo(&fifo);
    })
    .await;
    let (keep, go, reader) = fifo_reader(fifo, None);
    let out = plant
        .p4p(P4P_SEQUENCE, &["T:Speed", &PUTS.to_string()])
        .await;
    assert_eq!(out.trim(), PUTS.to_string(), "{out}");
    plant.signal("-TERM");
    // The file is read once mxpva has either exited or says it waits for the file.
    let deadline = Instant::now() + Duration::from_secs(15);
    while plant.bridge().try_wait().unwrap().is_none()
        && !plant.log().contains("waiting for the audit file")
    {
        assert!(Instant::now() < deadline, "mxpva neither exits nor waits");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(keep);
    go.send(()).unwrap();
    let text = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the FIFO reached its end")
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), plant.bridge().wait())
        .await
        .expect("mxpva exited")
        .unwrap();
    assert!(status.success(), "{status:?}\n{}", plant.log());
    let records = parse(&text);
    assert_eq!(records.len(), PUTS, "records lost at exit");
    assert!(records.iter().all(|r| r["outcome"] == "confirmed"));
}
