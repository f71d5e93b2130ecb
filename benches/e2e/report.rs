//! The tables of the end-to-end benchmark: one run, and the spread over runs.

use serde_json::Value;

use crate::stream::PACED_RATE;
use crate::{Opts, LAT_N};

/// The value of `key` (a JSON pointer) for a system at N.
fn pick(run: &[Value], sys: &str, n: usize, key: &str) -> Option<f64> {
    run.iter()
        .find(|r| r["system"] == sys && r["n"] == n)
        .and_then(|r| r.pointer(key))
        .and_then(Value::as_f64)
}

/// The table's rows: (label, JSON pointer, N, unit scale).
pub(crate) fn rows(opts: &Opts) -> Vec<(String, String, usize, f64)> {
    let mut v = Vec::new();
    let rate = PACED_RATE as u64;
    for &n in &opts.sizes {
        let mut row = |label: String, key: &str, scale: f64| v.push((label, key.into(), n, scale));
        // The goals' rows (issue 23): the paced streams, at N > 1.
        if n > 1 {
            row(
                format!("stream N={n}, sustained (events/s)"),
                "/sustained/per_s",
                1.0,
            );
            row(
                format!("CPU per update N={n} at {rate}/s (us)"),
                "/paced/cpu_us_per_update",
                1.0,
            );
            row(
                format!("simulator CPU per update N={n} at {rate}/s (us)"),
                "/paced/sim_cpu_us_per_update",
                1.0,
            );
        }
        // The flood: what a client receives while the source outruns the server.
        row(
            format!("flood N={n}, delivered (updates/s)"),
            "/flood/delivered_per_s",
            1.0,
        );
        row(
            format!("flood N={n}, coalesced by mxpva (%)"),
            "/flood/coalesced",
            100.0,
        );
        row(
            format!("flood N={n}, squashed by pvxs (%)"),
            "/flood/squashed",
            100.0,
        );
        row(
            format!("flood N={n}, events / time to last value (events/s)"),
            "/flood/events_per_s",
            1.0,
        );
        row(
            format!("flood N={n}, CPU per event (us)"),
            "/flood/cpu_us_per_event",
            1.0,
        );
    }
    if opts.sizes.contains(&LAT_N) {
        for rate in ["1000", "10000"] {
            for p in ["p50", "p99", "max"] {
                v.push((
                    format!("latency {rate}/s {p} (us)"),
                    format!("/latency_{rate}/{p}"),
                    LAT_N,
                    1.0,
                ));
            }
        }
        for w in ["1", "100"] {
            for p in ["p50", "p99"] {
                v.push((
                    format!("put {w} writer(s) {p} (us)"),
                    format!("/put_{w}/{p}"),
                    LAT_N,
                    1.0,
                ));
            }
            v.push((
                format!("put {w} writer(s) (puts/s)"),
                format!("/put_{w}/per_s"),
                LAT_N,
                1.0,
            ));
            v.push((
                format!("put {w} writer(s) CPU per put (us)"),
                format!("/put_{w}/cpu_us_per_put"),
                LAT_N,
                1.0,
            ));
            v.push((
                format!("put {w} writer(s) simulator CPU per put (us)"),
                format!("/put_{w}/sim_cpu_us_per_put"),
                LAT_N,
                1.0,
            ));
        }
        v.push((
            "buffered samples/s to a queued monitor".into(),
            "/buffered/samples_per_s".into(),
            LAT_N,
            1.0,
        ));
        v.push((
            "buffered samples/s, first to last sample".into(),
            "/buffered/delivery_per_s".into(),
            LAT_N,
            1.0,
        ));
        v.push((
            "buffered first sample after (ms)".into(),
            "/buffered/first_ms".into(),
            LAT_N,
            1.0,
        ));
        v.push((
            "buffered CPU per sample (us)".into(),
            "/buffered/cpu_us_per_sample".into(),
            LAT_N,
            1.0,
        ));
        v.push((
            "buffered simulator CPU per sample (us)".into(),
            "/buffered/sim_cpu_us_per_sample".into(),
            LAT_N,
            1.0,
        ));
        v.push((
            "buffered client CPU per sample (us)".into(),
            "/buffered/client_cpu_us_per_sample".into(),
            LAT_N,
            1.0,
        ));
        v.push((
            "buffered samples lost (%)".into(),
            "/buffered/lost_percent".into(),
            LAT_N,
            1.0,
        ));
    }
    let big = *opts.sizes.last().unwrap();
    v.push((
        format!("served N={big}, client (s)"),
        "/served_s".into(),
        big,
        1.0,
    ));
    v.push((
        format!("subscribed N={big}, server (s)"),
        "/subscribed_s".into(),
        big,
        1.0,
    ));
    v.push((
        format!("RSS N={big} (MB)"),
        "/rss_kb".into(),
        big,
        1.0 / 1024.0,
    ));
    v
}

fn cell(x: Option<f64>) -> String {
    match x {
        Some(x) if !x.is_finite() => "-".into(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 1.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.3}"),
        None => "-".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

/// RSS per PV in bytes: (RSS at the largest N - RSS at N = 1) / (N - 1), RSS read at
/// `key` (`/rss_kb`: with the monitor on every PV; `/rss_alone_kb`: no client).
fn rss_per_pv(run: &[Value], sys: &str, sizes: &[usize], key: &str) -> Option<f64> {
    let big = *sizes.last()?;
    if big <= 1 || !sizes.contains(&1) {
        return None;
    }
    let hi = pick(run, sys, big, key)?;
    let lo = pick(run, sys, 1, key)?;
    Some((hi - lo) * 1024.0 / (big - 1) as f64)
}

/// The markdown table of one run.
pub(crate) fn table(opts: &Opts, run: &[Value]) -> String {
    let mut t = String::from(
        "| scenario | limit (pvxs) | mxpva | Python peer | mxpva/limit | mxpva/peer |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let mut line = |label: &str, l: Option<f64>, m: Option<f64>, p: Option<f64>| {
        t += &format!(
            "| {label} | {} | {} | {} | {} | {} |\n",
            cell(l),
            cell(m),
            cell(p),
            cell(ratio(m, l)),
            cell(ratio(m, p))
        );
    };
    for (label, key, n, scale) in rows(opts) {
        let get = |s: &str| pick(run, s, n, &key).map(|x| x * scale);
        line(&label, get("limit"), get("mxpva"), get("peer"));
    }
    for (label, key) in [
        ("RSS per PV, monitored (bytes)", "/rss_kb"),
        ("RSS per PV, no client (bytes)", "/rss_alone_kb"),
    ] {
        let per_pv = |s: &str| rss_per_pv(run, s, &opts.sizes, key);
        line(label, per_pv("limit"), per_pv("mxpva"), per_pv("peer"));
    }
    t
}

/// With `--rss-only`: the RSS per PV of each round (round k at the largest N less round
/// k at N = 1), per system, with min..max and the median (the table above gives the
/// ratio of the median RSS).
pub(crate) fn rss_rounds(opts: &Opts, run: &[Value]) -> String {
    let Some(&big) = opts.sizes.last() else {
        return String::new();
    };
    if big <= 1 || !opts.sizes.contains(&1) {
        return String::new();
    }
    let rounds = |sys: &str, n: usize, which: &str| -> Vec<f64> {
        run.iter()
            .find(|r| r["system"] == sys && r["n"] == n)
            .and_then(|r| r.pointer(&format!("/rss_rounds/{which}")))
            .and_then(Value::as_array)
            .map(|v| v.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
            .unwrap_or_default()
    };
    let mut t = format!(
        "RSS per PV (bytes) of each round, N = {big}: round k at N = {big} less round k at N = 1\n\n\
         | RSS per PV | system | rounds | min..max | median |\n|---|---|---|---:|---:|\n"
    );
    for which in ["monitored", "alone"] {
        for sys in ["limit", "mxpva"] {
            let (hi, lo) = (rounds(sys, big, which), rounds(sys, 1, which));
            let per: Vec<f64> = hi
                .iter()
                .zip(&lo)
                .map(|(h, l)| (h - l) * 1024.0 / (big - 1) as f64)
                .filter(|x| x.is_finite())
                .collect();
            if per.is_empty() {
                continue;
            }
            let lo_ = per.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi_ = per.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let list: Vec<String> = per.iter().map(|x| format!("{x:.0}")).collect();
            t += &format!(
                "| {} | {sys} | {} | {lo_:.0}..{hi_:.0} | {:.0} |\n",
                if which == "alone" { "no client" } else { which },
                list.join(", "),
                crate::median(per.clone()),
            );
        }
    }
    t
}

/// min..max of mxpva and of mxpva/limit over the runs, per row.
pub(crate) fn spread(opts: &Opts, runs: &[Vec<Value>]) -> String {
    let mut t = String::from(
        "| scenario | mxpva min..max | mxpva/limit min..max | mxpva/peer min..max |\n\
         |---|---:|---:|---:|\n",
    );
    let range = |v: Vec<Option<f64>>| {
        let v: Vec<f64> = v.into_iter().flatten().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return "-".to_string();
        }
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        format!("{}..{}", cell(Some(lo)), cell(Some(hi)))
    };
    for (label, key, n, scale) in rows(opts) {
        let get = |run: &Vec<Value>, s: &str| pick(run, s, n, &key).map(|x| x * scale);
        t += &format!(
            "| {label} | {} | {} | {} |\n",
            range(runs.iter().map(|r| get(r, "mxpva")).collect()),
            range(
                runs.iter()
                    .map(|r| ratio(get(r, "mxpva"), get(r, "limit")))
                    .collect()
            ),
            range(
                runs.iter()
                    .map(|r| ratio(get(r, "mxpva"), get(r, "peer")))
                    .collect()
            ),
        );
    }
    t
}
