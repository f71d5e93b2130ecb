//! The put path under concurrency (issue 15): puts that arrive together go to the
//! gateway in bulk write calls, and each put still completes on its own: confirmed and
//! read back, refused with System Platform's reason, or timed out. Real clients (p4p,
//! pvput) against `mxpva run` and `mxpva sim` on loopback.

mod clients;

use std::time::{Duration, Instant};

use clients::clients;
use clients::plant::Plant;
use mxpva::sim::Faults;
use serde_json::Value;

/// Writable Double attributes per object; objects `Good` and `Bad`.
const PER_OBJECT: usize = 25;

/// The API key of the bridge in [`Plant::start_with_key`]: it may write `Good.` only.
const WRITER_KEY: &str = "mxgw_gooddesk_5e1d2c3b4a69";
const ADMIN_KEY: &str = "mxgw_admin_0a5f7c3e9b12";

fn galaxy_text(keys: bool) -> String {
    let mut t = String::from(
        "[galaxy]\nname = \"Puts\"\ntick_ms = 1000\nfirst_update_delay_ms = 10\n\
         security_enabled = false\n",
    );
    if keys {
        t += &format!(
            "\n[auth]\nmode = \"api_key\"\n\n[[auth.keys]]\nkey = \"{WRITER_KEY}\"\n\
             scopes = [\"session:open\", \"session:close\", \"invoke:read\", \"invoke:write\", \
             \"events:read\", \"metadata:read\"]\nwrite_prefixes = [\"Good.\"]\n\n\
             [[auth.keys]]\nkey = \"{ADMIN_KEY}\"\nscopes = [\"admin\"]\n"
        );
    }
    t += "\n[[areas]]\nname = \"Area\"\n";
    for object in ["Good", "Bad"] {
        t += &format!("\n[[objects]]\ntag = \"{object}\"\narea = \"Area\"\n");
        for i in 0..PER_OBJECT {
            t += &format!(
                "[[objects.attributes]]\nname = \"A{i}\"\ntype = \"Double\"\ninitial = 0.0\n"
            );
        }
    }
    t
}

fn config(keys: bool) -> String {
    let key = if keys {
        "api_key_env = \"MXPVA_PUTS_KEY\"\n"
    } else {
        ""
    };
    let mut t = format!(
        "[gateway]\nendpoint = \"http://{{gateway}}\"\nclient_name = \"mxpva-puts\"\n\
         write_timeout = \"1500ms\"\n{key}\n[defaults]\nprefix = \"P:\"\nwritable = true\n\n\
         [audit]\nfile = \"audit.jsonl\"\n"
    );
    for object in ["Good", "Bad"] {
        for i in 0..PER_OBJECT {
            t += &format!("\n[[pv]]\nname = \"{object}{i}\"\ntag = \"{object}.A{i}\"\n");
        }
    }
    t
}

fn pvs(object: &str) -> Vec<String> {
    (0..PER_OBJECT).map(|i| format!("P:{object}{i}")).collect()
}

impl Plant {
    async fn start(name: &str) -> Plant {
        Plant::start_with(name, false).await
    }

    /// The simulator wants API keys; the bridge's may write `Good.` attributes only.
    async fn start_with_key(name: &str) -> Plant {
        Plant::start_with(name, true).await
    }

    async fn start_with(name: &str, keys: bool) -> Plant {
        let mut builder = Plant::new(&format!("puts-{name}"))
            .galaxy_text(galaxy_text(keys))
            .config(&config(keys))
            // The write calls are logged at debug level: the test counts them.
            .bridge_env(
                "RUST_LOG",
                "info,mxpva::bridge::writes::calls=debug,mxpva::bridge::writes::pending=debug",
            );
        if keys {
            builder = builder
                .admin_key(ADMIN_KEY)
                .bridge_env("MXPVA_PUTS_KEY", WRITER_KEY);
        }
        let plant = builder.start().await;
        let all: Vec<String> = pvs("Good").into_iter().chain(pvs("Bad")).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = plant.get_names(&all).await;
            if all.iter().all(|pv| got[pv].get("error").is_none()) {
                break plant;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge serves not every PV: {got}"
            );
        }
    }

    async fn get_names(&self, pvs: &[String]) -> Value {
        let names: Vec<&str> = pvs.iter().map(String::as_str).collect();
        clients().p4p_get(&self.env, &names).await
    }

    /// Puts `value(i, round)` to every PV at once (p4p puts them in parallel), `rounds`
    /// times; per round, per PV: "ok" or the error p4p raised.
    async fn put_all(&self, pvs: &[String], rounds: usize, base: f64) -> Vec<Vec<String>> {
        let script = format!(
            "import json, sys\n\
             from p4p.client.thread import Context\n\
             ctx = Context('pva')\n\
             names = sys.argv[1:]\n\
             out = []\n\
             for r in range({rounds}):\n\
             \x20   values = [{base} + 1000 * r + i for i in range(len(names))]\n\
             \x20   res = ctx.put(names, values, timeout=10, throw=False)\n\
             \x20   out.append(['ok' if x is None else '%s: %s' % (type(x).__name__, x) for x in res])\n\
             print(json.dumps(out))"
        );
        let names: Vec<&str> = pvs.iter().map(String::as_str).collect();
        let run = clients().python(&self.env, &script, &names).await;
        serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("p4p printed no JSON ({e}): {}", run.text()))
    }

    /// pvput `value` to `pv`: no error, and its read-back ("New :") shows the value.
    async fn pvput_reads_back(&self, pv: &str, value: &str) {
        let out = clients().run("pvput", &self.env, &[pv, value]).await.text();
        assert!(!out.contains("Error"), "{out}");
        let new = out
            .lines()
            .find(|l| l.starts_with("New"))
            .unwrap_or_default();
        assert!(new.trim_end().ends_with(&format!(" {value}")), "{out}");
    }

    /// Two rounds of puts to every PV (values from `base`): each `Bad` PV's put fails
    /// with an error holding every text of `error(pv, attribute index)`, each `Good` one
    /// is confirmed and reads back its last value, and some went in bulk calls.
    async fn bad_ones_fail_alone(&self, base: f64, error: impl Fn(&str, usize) -> Vec<String>) {
        let all: Vec<String> = pvs("Good").into_iter().chain(pvs("Bad")).collect();
        for round in self.put_all(&all, 2, base).await {
            for (i, (pv, r)) in all.iter().zip(&round).enumerate() {
                match i.checked_sub(PER_OBJECT) {
                    Some(a) => {
                        let texts = error(pv, a);
                        assert!(texts.iter().all(|t| r.contains(t.as_str())), "{pv}: {r}");
                    }
                    None => assert_eq!(r, "ok", "{pv}"),
                }
            }
        }
        let got = self.get_names(&all).await;
        for (i, pv) in all.iter().enumerate() {
            let want = if i >= PER_OBJECT {
                0.0
            } else {
                base + 1000.0 + i as f64
            };
            assert_eq!(got[pv]["value"].as_f64(), Some(want), "{pv}: {}", got[pv]);
        }
        let calls = write_calls(&self.log_text());
        assert!(
            calls.iter().any(|(call, n)| call == "WriteBulk" && *n > 1),
            "{calls:?}"
        );
    }
}

/// The write calls the bridge logged: (call, puts in it).
fn write_calls(log: &str) -> Vec<(String, usize)> {
    log.lines()
        .filter(|l| l.contains("write call"))
        .filter_map(|l| {
            let call = l.split("call=").nth(1)?.split_whitespace().next()?;
            let puts = l.split("puts=").nth(1)?.split_whitespace().next()?;
            Some((call.trim_matches('"').to_string(), puts.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_are_sent_in_bulk_and_each_is_confirmed_and_read_back() {
    let plant = Plant::start("bulk").await;
    let all: Vec<String> = pvs("Good").into_iter().chain(pvs("Bad")).collect();
    const ROUNDS: usize = 3;
    let results = plant.put_all(&all, ROUNDS, 100.0).await;
    assert_eq!(results.len(), ROUNDS);
    for round in &results {
        assert_eq!(round.len(), all.len());
        assert!(round.iter().all(|r| r == "ok"), "{round:?}");
    }
    // Each PV reads back its last value, and System Platform received every write.
    let got = plant.get_names(&all).await;
    let last = 100.0 + 1000.0 * (ROUNDS - 1) as f64;
    for (i, pv) in all.iter().enumerate() {
        assert_eq!(
            got[pv]["value"].as_f64(),
            Some(last + i as f64),
            "{pv}: {}",
            got[pv]
        );
    }
    let writes = plant.control().writes().await.unwrap();
    for r in 0..ROUNDS {
        for (i, object) in ["Good", "Bad"].iter().enumerate() {
            for a in 0..PER_OBJECT {
                let value = format!(
                    "Double({:?})",
                    100.0 + 1000.0 * r as f64 + (i * PER_OBJECT + a) as f64
                );
                let reference = format!("{object}.A{a}");
                assert!(
                    writes
                        .iter()
                        .any(|w| w.reference == reference && w.value == value),
                    "{reference} = {value} not among the simulator's writes: {writes:?}"
                );
            }
        }
    }
    assert_eq!(writes.len(), ROUNDS * all.len(), "{writes:?}");
    // They went in fewer calls than puts, some of them bulk calls of several puts.
    let calls = write_calls(&plant.log_text());
    let puts: usize = calls.iter().map(|(_, n)| n).sum();
    assert_eq!(puts, ROUNDS * all.len(), "{calls:?}");
    assert!(calls.len() < puts, "{calls:?}");
    assert!(
        calls.iter().any(|(call, n)| call == "WriteBulk" && *n > 1),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .all(|(call, n)| (call == "WriteBulk") == (*n > 1)),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_in_a_bulk_fails_only_its_own_put() {
    let plant = Plant::start("refused").await;
    let all: Vec<String> = pvs("Good").into_iter().chain(pvs("Bad")).collect();
    plant
        .control()
        .set_faults(&Faults {
            fail_writes_detail: Some(1012),
            write_fault_prefix: "Bad.".into(),
            ..Faults::default()
        })
        .await
        .unwrap();
    plant
        .bad_ones_fail_alone(7.0, |pv, _| {
            vec![format!("{pv}: System Platform refused the write: ")]
        })
        .await;

    // No OnWriteComplete within write_timeout for some: those time out, with the
    // same text as a lone put's, and the others are confirmed.
    plant
        .control()
        .set_faults(&Faults {
            write_delay: Duration::from_secs(4),
            write_fault_prefix: "Bad.".into(),
            ..Faults::default()
        })
        .await
        .unwrap();
    let results = plant.put_all(&all, 1, 50.0).await;
    for (pv, r) in all.iter().zip(&results[0]) {
        if pv.starts_with("P:Bad") {
            assert!(
                r.contains(&format!(
                    "{pv}: no write confirmation from System Platform within 1s 500ms"
                )),
                "{pv}: {r}"
            );
        } else {
            assert_eq!(r, "ok", "{pv}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_of_the_value_shown_completes_without_waiting_for_a_data_change() {
    let plant = Plant::start("same").await;
    // A new value: its data change comes after OnWriteComplete and completes it.
    plant.pvput_reads_back("P:Good3", "42").await;
    // (A put completed by the settle bound logs "write settled" before it completes.)
    let settled = plant.log_text().matches("write settled").count();
    // The same value again: MXAccess fires no data change. The put completes as soon as
    // OnWriteComplete confirms it, and reads back the value; it does not wait for the
    // settle bound (before issue 15 it always did).
    plant.pvput_reads_back("P:Good3", "42").await;
    let log = clients::logged(&plant.log, "write complete", 2).await;
    assert_eq!(log.matches("write settled").count(), settled, "{log}");
    assert_eq!(
        write_calls(&log),
        vec![("Write".to_string(), 1), ("Write".to_string(), 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_entry_the_gateway_refuses_fails_only_its_own_put() {
    // The gateway's key may not write Bad.*: those entries come back refused in place,
    // the others in the same bulk calls are written and confirmed.
    let plant = Plant::start_with_key("denied").await;
    plant
        .bad_ones_fail_alone(3.0, |pv, a| {
            vec![
                format!("{pv}: the gateway refused the write: "),
                format!("may not write Bad.A{a}"),
            ]
        })
        .await;
}

/// The gateway's own status refuses a write (the bridge's key may not write `Bad.`): a
/// lone put's Write (gRPC PERMISSION_DENIED) and bulk entries denied in place say that
/// the gateway refused it, and the audit trail records `refused_by_gateway` with the
/// gateway's words as `status`, not a refusal by System Platform.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_gateway_refuses_is_audited_as_refused_by_gateway() {
    let plant = Plant::start_with_key("gateway-refuses").await;
    let out = clients()
        .run("pvput", &plant.env, &["P:Bad0", "5"])
        .await
        .text();
    assert!(
        out.contains(
            "Error: P:Bad0: the gateway refused the write: Write: gRPC PermissionDenied: API key "
        ) && out.contains("may not write Bad.A0"),
        "{out}"
    );
    let records = plant.audit(1).await;
    let lone = &records[0];
    assert_eq!(lone["pv"], "P:Bad0", "{lone}");
    assert_eq!(lone["outcome"], "refused_by_gateway", "{lone}");
    let status = lone["status"].as_str().unwrap_or_default();
    assert!(
        status.starts_with("the gateway refused the write: Write: gRPC PermissionDenied"),
        "{lone}"
    );

    // Puts together: the Bad entries of the bulk calls are denied in place.
    let all: Vec<String> = pvs("Good").into_iter().chain(pvs("Bad")).collect();
    let results = plant.put_all(&all, 1, 20.0).await;
    for (pv, r) in all.iter().zip(&results[0]) {
        if pv.starts_with("P:Good") {
            assert_eq!(r, "ok", "{pv}");
        } else {
            assert!(r.contains("the gateway refused the write: "), "{pv}: {r}");
        }
    }
    let records = plant.audit(1 + all.len()).await;
    for r in &records[1..] {
        let pv = r["pv"].as_str().unwrap();
        if pv.starts_with("P:Good") {
            assert_eq!(r["outcome"], "confirmed", "{r}");
            continue;
        }
        assert_eq!(r["outcome"], "refused_by_gateway", "{r}");
        let status = r["status"].as_str().unwrap_or_default();
        assert!(
            status.starts_with("the gateway refused the write: ")
                && status.contains(&format!("may not write {}", pv.replace("P:Bad", "Bad.A"))),
            "{r}"
        );
    }
    assert!(
        records[1..].iter().any(|r| r["status"]
            .as_str()
            .is_some_and(|s| s.contains("WriteBulk: PERMISSION_DENIED"))),
        "no bulk entry refused in place: {records:?}"
    );
}
