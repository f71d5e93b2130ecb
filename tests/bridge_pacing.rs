//! Flow control of subscriptions: the bridge keeps the items advised whose first data
//! change it has not taken yet within a window, so that the gateway's bounded event queue
//! (here the simulator's, set small by `[galaxy] event_queue_capacity`) never overflows.
//! `mxpva sim` and `mxpva run` as processes on loopback, PVs read by p4p and pvget, the
//! simulator's sessions read through its control service.
//!
//! - At connect: 3,000 tags mapped, an event queue of 300 and `subscribe_chunk = 25` (a
//!   window of 200): the bridge's one session stays Ready with every tag advised, its
//!   log never says "gateway connection lost", and a sample of PVs (the last one
//!   included) reads its value, not INVALID.
//! - While serving: the same 3,000 PVs added by a reload (SIGHUP) to a mapping of one.

mod clients;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use clients::clients;
use clients::plant::Plant;

const OBJECTS: usize = 30;
const ATTRIBUTES: usize = 100;
const CLIENT: &str = "mxpva-pacing";

/// A Galaxy of `OBJECTS * ATTRIBUTES` constant Doubles (each its own index as value), an
/// event queue of 300, values that never tick (only first values reach the queue). The
/// first value comes 200 ms after the advise (real systems take seconds), so that the
/// first values of every tag advised within 200 ms reach the queue together: an unpaced
/// bridge advises them all within that time and overflows the queue.
fn galaxy() -> String {
    let mut g = String::from(
        "[galaxy]\nname = \"Galaxy\"\ntick_ms = 60000\nfirst_update_delay_ms = 200\nevent_queue_capacity = 300\n\n[[areas]]\nname = \"Plant\"\n",
    );
    for o in 0..OBJECTS {
        let _ = write!(g, "\n[[objects]]\ntag = \"Obj{o:02}\"\narea = \"Plant\"\n");
        for a in 0..ATTRIBUTES {
            let _ = write!(
                g,
                "\n[[objects.attributes]]\nname = \"A{a:03}\"\ntype = \"Double\"\ninitial = {}.0\n",
                o * ATTRIBUTES + a
            );
        }
    }
    g
}

fn pv_name(n: usize) -> String {
    format!("P:O{:02}_A{:03}", n / ATTRIBUTES, n % ATTRIBUTES)
}

/// The bridge's config mapping the first `count` attributes.
fn config(count: usize) -> String {
    let mut c = format!(
        "[gateway]\nendpoint = \"http://{{gateway}}\"\nclient_name = \"{CLIENT}\"\nsubscribe_chunk = 25\nreconnect_initial = \"100ms\"\nreconnect_max = \"400ms\"\n\n[defaults]\nprefix = \"P:\"\n"
    );
    for n in 0..count {
        let _ = write!(
            c,
            "\n[[pv]]\nname = \"O{:02}_A{:03}\"\ntag = \"Obj{:02}.A{:03}\"\ntype = \"float64\"\n",
            n / ATTRIBUTES,
            n % ATTRIBUTES,
            n / ATTRIBUTES,
            n % ATTRIBUTES
        );
    }
    c
}

impl Plant {
    async fn start(name: &str, mapped: usize) -> Plant {
        Plant::new(&format!("pacing-{name}"))
            .galaxy_text(galaxy())
            .config(&config(mapped))
            .start()
            .await
    }

    /// Waits (at most 60 s) until p4p reads each PV of `sample` with its value and no
    /// alarm; panics with what it read otherwise.
    async fn values_served(&self, sample: &[usize]) {
        let names: Vec<String> = sample.iter().map(|&n| pv_name(n)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = clients().p4p_get(&self.env, &names).await;
            let good = sample.iter().zip(&names).all(|(&n, name)| {
                got[*name]["value"].as_f64() == Some(n as f64)
                    && got[*name]["alarm"]["severity"].as_i64() == Some(0)
            });
            if good {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the PVs never all read their values: {got}\nbridge log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The bridge's one session at the simulator is Ready with `advised` items, and no
    /// link was ever lost.
    async fn never_faulted(&self, advised: usize) {
        let sessions: Vec<_> = self
            .control()
            .sessions()
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.client_session_name == CLIENT)
            .collect();
        assert_eq!(
            sessions.len(),
            1,
            "one session of the bridge at the simulator: {sessions:?}"
        );
        assert_eq!(sessions[0].state, "Ready", "{sessions:?}");
        assert_eq!(sessions[0].advised_count, advised, "{sessions:?}");
        let log = self.log_text();
        assert!(
            !log.contains("gateway connection lost"),
            "the bridge lost its session:\n{log}"
        );
    }

    /// pvget reads the last PV's value.
    async fn pvget_last(&self, last: usize) {
        let name = pv_name(last);
        let text = clients()
            .pvget_until(&self.env, &[name.as_str()], &format!("{last}"))
            .await;
        assert!(
            text.contains(&name) && text.contains(&format!("{last}")),
            "pvget {name}: {text}"
        );
    }
}

const N: usize = OBJECTS * ATTRIBUTES;

fn sample() -> Vec<usize> {
    vec![0, 1, 499, 1234, N / 2, N - 2, N - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_tags_at_connect_never_overflow_a_queue_of_300() {
    let plant = Plant::start("connect", N).await;
    plant.logged("gateway session up", 1).await;
    plant.values_served(&sample()).await;
    plant.pvget_last(N - 1).await;
    plant.never_faulted(N).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_pvs_added_by_a_reload_never_overflow_a_queue_of_300() {
    let plant = Plant::start("reload", 1).await;
    plant.values_served(&[0]).await;
    plant.write_config(&config(N));
    plant.hangup();
    plant.logged("subscriptions of the reload done", 1).await;
    plant.values_served(&sample()).await;
    plant.pvget_last(N - 1).await;
    plant.never_faulted(N).await;
}
