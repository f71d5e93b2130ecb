//! Unit tests of the diff: every kind of change, an empty diff, a rename.

use super::*;
use std::path::Path;

const BASE: &str = r#"
[gateway]
endpoint = "http://127.0.0.1:1"
[users.op]
id = 5
[users.sup]
id = 6
"#;

/// The config of `[[pv]]` tables given as text.
fn pvs(tables: &str) -> Vec<Arc<config::Pv>> {
    let text = format!("{BASE}{tables}");
    Config::from_str_at(&text, Path::new("diff.toml"))
        .unwrap()
        .pvs
}

fn level(extra: &str) -> String {
    format!("[[pv]]\nname = \"Level\"\ntag = \"Tank001.Level\"\n{extra}\n")
}

/// Registry-like ids for a list: id n for the n-th PV.
fn ids(list: &[Arc<config::Pv>]) -> Vec<(PvId, &config::Pv)> {
    list.iter()
        .enumerate()
        .map(|(i, p)| (PvId::for_test(i as u64), &**p))
        .collect()
}

/// The kinds a one-PV change from `old` to `new` (extra lines of `Level`) yields.
fn kinds(old: &str, new: &str) -> Vec<Change> {
    let old = pvs(&level(old));
    let new = pvs(&level(new));
    let d = diff(ids(&old), &new);
    assert!(d.added.is_empty() && d.removed.is_empty(), "{d:?}");
    d.changed.into_iter().flat_map(|c| c.changes).collect()
}

#[test]
fn the_same_config_is_an_empty_diff() {
    let list = pvs(&format!(
        "{}[[pv]]\nname = \"Temp\"\ntag = \"Tank001.Temp\"\nunits = \"C\"\n",
        level("")
    ));
    let d = diff(ids(&list), &list);
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn a_pv_moved_in_the_file_is_not_a_change() {
    let old = pvs(&format!(
        "{}[[pv]]\nname = \"Temp\"\ntag = \"Tank001.Temp\"\n",
        level("")
    ));
    // Same tables, other order and other lines: their locations differ.
    let new = pvs(&format!(
        "\n\n[[pv]]\nname = \"Temp\"\ntag = \"Tank001.Temp\"\n{}",
        level("")
    ));
    assert_ne!(old[0].location, new[1].location);
    assert!(diff(ids(&old), &new).is_empty());
}

#[test]
fn start_is_a_diff_from_nothing_that_adds_everything_in_order() {
    let list = pvs(&format!(
        "{}[[pv]]\nname = \"Temp\"\ntag = \"Tank001.Temp\"\n",
        level("")
    ));
    let d = diff(Vec::new(), &list);
    let added: Vec<&str> = d.added.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(added, ["Level", "Temp"]);
    assert!(d.removed.is_empty() && d.changed.is_empty());
}

#[test]
fn added_and_removed_pvs() {
    let old = pvs(&format!(
        "{}[[pv]]\nname = \"Temp\"\ntag = \"Tank001.Temp\"\n",
        level("")
    ));
    let new = pvs(&format!(
        "{}[[pv]]\nname = \"Flow\"\ntag = \"Tank001.Flow\"\n",
        level("")
    ));
    let d = diff(ids(&old), &new);
    assert_eq!(d.added.len(), 1);
    assert_eq!(d.added[0].name.as_str(), "Flow");
    assert_eq!(d.removed, [PvId::for_test(1)]);
    assert!(d.changed.is_empty());
}

#[test]
fn a_rename_is_a_removal_and_an_addition() {
    let old = pvs(&level(""));
    let new = pvs("[[pv]]\nname = \"TankLevel\"\ntag = \"Tank001.Level\"\n");
    let d = diff(ids(&old), &new);
    assert_eq!(d.removed, [PvId::for_test(0)]);
    assert_eq!(d.added.len(), 1);
    assert_eq!(d.added[0].name.as_str(), "TankLevel");
    assert!(d.changed.is_empty());
}

#[test]
fn every_kind_of_change() {
    assert_eq!(kinds("", ""), []);
    // Tag.
    let old = pvs(&level(""));
    let new = pvs("[[pv]]\nname = \"Level\"\ntag = \"Tank002.Level\"\n");
    let d = diff(ids(&old), &new);
    assert_eq!(d.changed.len(), 1);
    assert_eq!(d.changed[0].changes, [Change::Tag]);
    assert_eq!(d.changed[0].id, PvId::for_test(0));
    assert_eq!(d.changed[0].cfg.tag.as_str(), "Tank002.Level");
    // Type.
    assert_eq!(
        kinds("type = \"float64\"", "type = \"int32\""),
        [Change::Type]
    );
    assert_eq!(kinds("", "type = \"float64\""), [Change::Type]);
    assert_eq!(kinds("type = \"bool\"", "type = \"enum\""), [Change::Type]);
    assert_eq!(
        kinds(
            "type = \"enum\"",
            "type = \"enum\"\nchoices = [\"Off\", \"On\"]"
        ),
        [Change::Metadata]
    );
    // Metadata.
    assert_eq!(kinds("units = \"m\"", "units = \"mm\""), [Change::Metadata]);
    assert_eq!(kinds("", "description = \"level\""), [Change::Metadata]);
    assert_eq!(kinds("precision = 1", "precision = 3"), [Change::Metadata]);
    assert_eq!(
        kinds(
            "display = { low = 0.0, high = 10.0 }",
            "display = { low = 0.0, high = 20.0 }"
        ),
        [Change::Metadata]
    );
    // Writability and write mode.
    assert_eq!(kinds("", "writable = true"), [Change::Writability]);
    assert_eq!(kinds("writable = true", ""), [Change::Writability]);
    assert_eq!(
        kinds(
            "writable = true",
            "writable = true\nwrite_mode = \"write2\""
        ),
        [Change::WriteMode]
    );
    assert_eq!(
        kinds(
            "writable = true\nwrite_mode = \"secured\"\nuser = \"op\"",
            "writable = true\nwrite_mode = \"secured\"\nuser = \"sup\""
        ),
        [Change::WriteMode]
    );
    // Alarms.
    assert_eq!(
        kinds("", "alarms = [\"Tank001.Level.HiHi\"]"),
        [Change::Alarms]
    );
    assert_eq!(kinds("", "acknowledge = false"), [Change::Alarms]);
    assert_eq!(kinds("", "alarm_severity = \"priority\""), [Change::Alarms]);
    // Access security: taken in place by the next put.
    assert_eq!(kinds("", "access_group = \"OPS\""), [Change::Access]);
    assert_eq!(kinds("", "access_level = 1"), [Change::Access]);
    // Buffered <-> plain: in place.
    assert_eq!(kinds("", "buffered = true"), [Change::Buffered]);
    assert_eq!(
        kinds("buffered = true", "buffered = false"),
        [Change::Buffered]
    );
    // Limits.
    assert_eq!(
        kinds(
            "type = \"float64\"\nvalue_alarm = { high = 90.0 }",
            "type = \"float64\"\nvalue_alarm = { high = 95.0 }"
        ),
        [Change::Limits]
    );
    assert_eq!(
        kinds(
            "type = \"float64\"",
            "type = \"float64\"\ncontrol = { low = 0.0, high = 10.0 }"
        ),
        [Change::Limits]
    );
    // Timestamp.
    assert_eq!(kinds("", "timestamp = \"receive\""), [Change::Timestamp]);
    // Subscribe: the mode, and the linger of an on-demand PV.
    assert_eq!(kinds("", "subscribe = \"on_demand\""), [Change::Subscribe]);
    assert_eq!(
        kinds(
            "subscribe = \"on_demand\"",
            "subscribe = \"on_demand\"\nlinger = \"5s\""
        ),
        [Change::Subscribe]
    );
    assert_eq!(kinds("", "subscribe = \"always\""), []);
    // Several at once, in order.
    assert_eq!(
        kinds(
            "units = \"m\"",
            "units = \"mm\"\ntype = \"int32\"\nwritable = true"
        ),
        [Change::Type, Change::Metadata, Change::Writability]
    );
}
