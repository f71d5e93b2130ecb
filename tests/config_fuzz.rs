//! Generated hostile config files: mutated copies of the shipped configs (the bridge's
//! `demo.toml` and `example.toml`, and the simulator's Galaxy `sim-galaxy.toml`).
//!
//! What must hold for every input: loading returns a config or a list of problems and
//! never panics; every problem names a position and says something; a config that
//! loads prints its mapping table; and the `mxpva check` binary exits 0 or 78 (never
//! 101, a panic, nor a signal).
//!
//! Case counts (bounded so CI stays fast, about 15 s): 1,500 mutated files per shipped
//! bridge config and 1,000 Galaxy files in process, then 60 runs of the binary. Each
//! file gets one to five edits: deletions, insertions of any characters (TOML's own
//! punctuation weighted), duplicated, swapped and cut lines, and hostile values after
//! an `=` (empty, extreme integers and floats, NaN, huge strings and arrays, odd
//! durations, out-of-range array indexes, control and bidi characters).

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const DEMO: &str = include_str!("../config/demo.toml");
const EXAMPLE: &str = include_str!("../config/example.toml");
const GALAXY: &str = include_str!("../config/sim-galaxy.toml");

/// One edit of a config's text. Offsets and lines are taken modulo the text's size.
#[derive(Debug, Clone)]
enum Edit {
    /// Delete `len` characters at `at`.
    Delete { at: usize, len: usize },
    /// Insert `text` at `at`.
    Insert { at: usize, text: String },
    /// Repeat line `line` right after itself.
    DuplicateLine { line: usize },
    /// Swap two lines.
    SwapLines { a: usize, b: usize },
    /// Replace the value after the `nth` `=` with `value`.
    ReplaceValue { nth: usize, value: String },
    /// Cut the text at `at`.
    Truncate { at: usize },
}

/// Values a hostile or careless hand writes after `=`.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("".to_string()),
        Just("\"\"".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("1e308".to_string()),
        Just("-1e308".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[[1, 2], [3]]".to_string()),
        Just("\"0s\"".to_string()),
        Just("\"18446744073709551615s\"".to_string()),
        Just("\"1e30s\"".to_string()),
        Just("\"-5s\"".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just(format!("\"{}\"", "A".repeat(100_000))),
        Just(format!("[{}]", vec!["1"; 10_000].join(","))),
        Just("\"Obj.Attr[4294967296]\"".to_string()),
        Just("\"Obj.Attr[0]\"".to_string()),
        Just("\"Obj.Attr[-1]\"".to_string()),
        Just("\"\\u0000\"".to_string()),
        Just("\"é☃\u{202e}\"".to_string()),
        "[a-zA-Z0-9_.:\\[\\]{}\" =,-]{0,24}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| format!("{x:?}")),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), "(\\PC|[\n\t\r\"'\\[\\]{}=#\\\\]){1,12}")
            .prop_map(|(at, text)| Edit::Insert { at, text }),
        any::<usize>().prop_map(|line| Edit::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines { a, b }),
        (any::<usize>(), hostile_value())
            .prop_map(|(nth, value)| Edit::ReplaceValue { nth, value }),
        any::<usize>().prop_map(|at| Edit::Truncate { at }),
    ]
}

/// The largest char boundary at or below `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut i = at % (text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, edit: &Edit) -> String {
    let lines = || text.split_inclusive('\n').collect::<Vec<_>>();
    match edit {
        Edit::Delete { at, len } => {
            let start = boundary(text, *at);
            let end = boundary(text, start.saturating_add(*len).min(text.len()));
            format!("{}{}", &text[..start], &text[end.max(start)..])
        }
        Edit::Insert { at, text: new } => {
            let i = boundary(text, *at);
            format!("{}{new}{}", &text[..i], &text[i..])
        }
        Edit::DuplicateLine { line } => {
            let mut l = lines();
            if l.is_empty() {
                return text.to_string();
            }
            let i = line % l.len();
            l.insert(i, l[i]);
            l.concat()
        }
        Edit::SwapLines { a, b } => {
            let mut l = lines();
            if l.is_empty() {
                return text.to_string();
            }
            let n = l.len();
            l.swap(a % n, b % n);
            l.concat()
        }
        Edit::ReplaceValue { nth, value } => {
            let eqs: Vec<usize> = text.match_indices('=').map(|(i, _)| i).collect();
            if eqs.is_empty() {
                return text.to_string();
            }
            let at = eqs[nth % eqs.len()] + 1;
            let end = text[at..].find('\n').map_or(text.len(), |e| at + e);
            format!("{} {value}{}", &text[..at], &text[end..])
        }
        Edit::Truncate { at } => text[..boundary(text, *at)].to_string(),
    }
}

fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec(edit(), 1..6).prop_map(move |edits| {
        edits
            .iter()
            .fold(base.to_string(), |text, e| apply(&text, e))
    })
}

/// Loading a mutated bridge config never panics; problems name a position; a config
/// that loads prints its table.
fn loads_or_explains(text: &str, name: &str) -> Result<(), TestCaseError> {
    match mxpva::config::Config::from_str_at(text, &Path::new("config").join(name)) {
        Ok(config) => {
            let table = config.mapping_table();
            prop_assert!(table.contains("config:"), "{table}");
        }
        Err(e) => {
            prop_assert!(!e.diagnostics.is_empty());
            for d in &e.diagnostics {
                prop_assert!(!d.message.trim().is_empty(), "{e}");
            }
            let shown = e.to_string();
            prop_assert!(shown.contains(name), "{shown}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn mutated_demo_configs_load_or_explain(text in mutated(DEMO)) {
        loads_or_explains(&text, "demo.toml")?;
    }

    #[test]
    fn mutated_example_configs_load_or_explain(text in mutated(EXAMPLE)) {
        loads_or_explains(&text, "example.toml")?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn mutated_galaxies_load_or_explain(text in mutated(GALAXY)) {
        if let Err(e) = mxpva::sim::Galaxy::from_toml(&text, "sim-galaxy.toml (mutated)") {
            prop_assert!(!e.to_string().trim().is_empty());
        }
    }
}

/// Found by the suite above: a cell wider than 65,535 characters made `mxpva check`
/// panic while padding its table.
#[test]
fn a_very_long_cell_prints_in_the_mapping_table() {
    let units = "u".repeat(70_000);
    let text = format!("[[pv]]\nname = \"A\"\ntag = \"Obj.A\"\nunits = \"{units}\"\n");
    let config = mxpva::config::Config::from_str_at(&text, Path::new("long.toml")).unwrap();
    assert!(config.mapping_table().contains(&units));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

    /// `mxpva check` on mutated files: exit 0 with a table, or 78 with the problems.
    #[test]
    fn mxpva_check_exits_0_or_78_on_mutated_configs(
        text in prop_oneof![mutated(DEMO), mutated(EXAMPLE)]
    ) {
        let dir = std::env::temp_dir().join(format!("mxpva-config-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let file = dir.join("mutated.toml");
        std::fs::write(&file, &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxpva"))
            .args(["check", "--config"])
            .arg(&file)
            .output()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => prop_assert!(!out.stdout.is_empty()),
            Some(78) => prop_assert!(stderr.contains("mutated.toml"), "{stderr}"),
            other => prop_assert!(false, "exit {other:?}: {stderr}"),
        }
    }
}
