//! What a p4p monitor of several PVs prints, one JSON value per line ([`P4P_LINES`]),
//! kept and searched: the watchers of the reload and deploy tests.

use std::time::Duration;

use serde_json::Value;

/// Prints one JSON line per update of every PV named (value, severity, message) or per
/// disconnect and error.
pub const P4P_LINES: &str = r#"
import json, sys, threading, time
from p4p.client.thread import Context
ctx = Context('pva', nt=False)
lock = threading.Lock()
def cb(name):
    def f(v):
        if isinstance(v, Exception):
            line = {'pv': name, 'error': type(v).__name__ + ': ' + str(v)}
        else:
            val = v['value']
            line = {'pv': name, 'sev': v['alarm.severity'], 'msg': v['alarm.message'],
                    'value': val if isinstance(val, (int, float, str)) else None}
        with lock:
            sys.stdout.write(json.dumps(line) + '\n')
            sys.stdout.flush()
    return f
subs = [ctx.monitor(n, cb(n), notify_disconnect=True) for n in sys.argv[1:]]
time.sleep(300)
"#;

/// What the p4p watcher printed, one JSON value per line.
pub struct Lines(
    pub tokio::sync::mpsc::UnboundedReceiver<String>,
    pub Vec<Value>,
);

impl Lines {
    /// Waits (at most 20 s) for a line satisfying `pred`, those already seen included;
    /// every line is kept.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) {
        if self.1.iter().any(&pred) {
            return;
        }
        self.next(what, pred).await;
    }

    /// Waits (at most 20 s) for a new line satisfying `pred`; every line is kept.
    pub async fn next(&mut self, what: &str, pred: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let line = match tokio::time::timeout_at(deadline, self.0.recv()).await {
                Ok(Some(line)) => line,
                other => panic!("no p4p update where {what} ({other:?}); seen {:#?}", self.1),
            };
            let v: Value = serde_json::from_str(&line).unwrap();
            let hit = pred(&v);
            self.1.push(v);
            if hit {
                return;
            }
        }
    }

    /// Updates of `pv` seen since line `from`.
    pub fn of(&self, pv: &str, from: usize) -> Vec<&Value> {
        self.1.iter().skip(from).filter(|v| v["pv"] == pv).collect()
    }
}
