//! `mxpva discover --areas`: the Galaxy's areas with their object and attribute counts, so
//! that a site can split its Galaxy into shards of similar size (docs/scale-out.md).
//!
//! The counts of an area include its sub-areas: they are what a `[[discover]]` rule with
//! `root = "<area>"` reads. `own` counts what the area holds itself. Alarm attributes are
//! counted apart (a rule attaches them to the attribute they belong to, so they do not
//! make PVs of their own).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::gateway::GalaxyObject;

/// The counts of one area.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AreaCount {
    /// The area's tag name (`(no area)` for objects outside every area).
    pub name: String,
    /// How deep it is under other areas (0: a top-level area).
    pub depth: usize,
    /// Objects (not areas), with its sub-areas.
    pub objects: usize,
    /// Attributes that are not alarms, with its sub-areas.
    pub attributes: usize,
    /// Alarm attributes, with its sub-areas.
    pub alarms: usize,
    /// Attributes that are not alarms, of its own objects only.
    pub own_attributes: usize,
}

/// The name of the row for objects whose area is not in the hierarchy.
pub const NO_AREA: &str = "(no area)";

/// One row per area, in hierarchy order (an area, then its sub-areas), from the whole
/// hierarchy read with attributes; objects whose area is unknown make a last
/// [`NO_AREA`] row.
pub fn count(objects: &[GalaxyObject]) -> Vec<AreaCount> {
    let areas: HashMap<i32, &GalaxyObject> = objects
        .iter()
        .filter(|o| o.is_area)
        .map(|o| (o.gobject_id, o))
        .collect();
    // An area's parent area: its containing object when that is an area, else its own
    // area id (the Galaxy Repository fills either).
    let parent_of = |a: &GalaxyObject| -> Option<i32> {
        [a.parent_gobject_id, a.area_gobject_id]
            .into_iter()
            .find(|id| *id != a.gobject_id && areas.contains_key(id))
    };
    // The areas from `id` up, bounded and cycle-safe (a peer may send anything).
    let chain = |id: i32| -> Vec<i32> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut next = Some(id);
        while let Some(id) = next {
            let Some(area) = areas.get(&id) else { break };
            if !seen.insert(id) {
                break;
            }
            out.push(id);
            next = parent_of(area);
        }
        out
    };
    let mut rows: HashMap<i32, AreaCount> = HashMap::new();
    let mut outside = AreaCount {
        name: NO_AREA.to_string(),
        ..AreaCount::default()
    };
    for o in objects.iter().filter(|o| !o.is_area) {
        let alarms = o.attributes.iter().filter(|a| a.is_alarm).count();
        let attributes = o.attributes.len() - alarms;
        let up = chain(o.area_gobject_id);
        if up.is_empty() {
            outside.objects += 1;
            outside.attributes += attributes;
            outside.alarms += alarms;
            outside.own_attributes += attributes;
            continue;
        }
        for (i, id) in up.iter().enumerate() {
            let row = rows.entry(*id).or_default();
            row.objects += 1;
            row.attributes += attributes;
            row.alarms += alarms;
            if i == 0 {
                row.own_attributes += attributes;
            }
        }
    }
    // Hierarchy order: areas sorted by their chain of names from the top.
    let mut ordered: Vec<(Vec<String>, AreaCount)> = areas
        .values()
        .map(|a| {
            let mut names: Vec<String> = chain(a.gobject_id)
                .iter()
                .filter_map(|id| areas.get(id))
                .map(|a| a.tag_name.to_ascii_lowercase())
                .collect();
            names.reverse();
            let row = AreaCount {
                name: a.tag_name.clone(),
                depth: names.len().saturating_sub(1),
                ..rows.remove(&a.gobject_id).unwrap_or_default()
            };
            (names, row)
        })
        .collect();
    ordered.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<AreaCount> = ordered.into_iter().map(|(_, row)| row).collect();
    if outside.objects > 0 {
        out.push(outside);
    }
    out
}

/// The table `mxpva discover --areas` prints.
pub fn render(rows: &[AreaCount], source: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Areas of {source}.");
    out.push_str(
        "# OBJECTS, ATTRIBUTES and ALARMS include the sub-areas: what a [[discover]] rule\n\
         # with root = \"<area>\" reads. OWN: the attributes of the area's own objects.\n\
         # ALARMS: alarm attributes (they go to the PV of the attribute they belong to).\n",
    );
    let width = rows
        .iter()
        .map(|r| 2 * r.depth + r.name.chars().count())
        .chain([4])
        .max()
        .unwrap_or(4);
    let _ = writeln!(
        out,
        "{:<width$}  {:>8}  {:>10}  {:>6}  {:>6}",
        "AREA", "OBJECTS", "ATTRIBUTES", "ALARMS", "OWN"
    );
    for r in rows {
        let name = format!("{}{}", "  ".repeat(r.depth), r.name);
        let _ = writeln!(
            out,
            "{name:<width$}  {:>8}  {:>10}  {:>6}  {:>6}",
            r.objects, r.attributes, r.alarms, r.own_attributes
        );
    }
    let tops = rows.iter().filter(|r| r.depth == 0);
    let (objects, attributes, alarms) = tops.fold((0, 0, 0), |(o, a, l), r| {
        (o + r.objects, a + r.attributes, l + r.alarms)
    });
    let _ = writeln!(
        out,
        "{:<width$}  {objects:>8}  {attributes:>10}  {alarms:>6}",
        "(all)"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{GalaxyAttribute, MxDataType, SecurityClassification};

    fn attr(name: &str, is_alarm: bool) -> GalaxyAttribute {
        GalaxyAttribute {
            name: name.into(),
            full_tag_reference: String::new(),
            data_type: MxDataType::Double,
            is_array: false,
            array_dimension: 0,
            security: SecurityClassification::Operate,
            is_historized: false,
            is_alarm,
            eng_units: String::new(),
            description: String::new(),
        }
    }

    fn obj(id: i32, tag: &str, parent: i32, area: i32, is_area: bool, n: usize) -> GalaxyObject {
        let mut attributes: Vec<GalaxyAttribute> =
            (0..n).map(|i| attr(&format!("A{i}"), false)).collect();
        if n > 0 {
            attributes.push(attr("A0.HiHi", true));
        }
        GalaxyObject {
            gobject_id: id,
            tag_name: tag.into(),
            contained_name: tag.into(),
            hierarchical_name: String::new(),
            parent_gobject_id: parent,
            area_gobject_id: area,
            category_id: if is_area { 13 } else { 10 },
            is_area,
            template_chain: Vec::new(),
            attributes,
        }
    }

    #[test]
    fn areas_count_their_sub_areas_and_objects_outside_every_area_are_named() {
        let objects = vec![
            obj(1, "South", 0, 0, true, 0),
            obj(2, "North", 0, 0, true, 0),
            // a sub-area whose parent is given only as its area
            obj(3, "NorthWest", 0, 2, true, 0),
            obj(10, "Pump1", 2, 2, false, 3),
            obj(11, "Pump2", 3, 3, false, 2),
            // contained by Pump2, in NorthWest
            obj(12, "Pump2_Motor", 11, 3, false, 1),
            obj(13, "Tank1", 1, 1, false, 4),
            obj(14, "Stray", 0, 99, false, 5),
        ];
        let rows = count(&objects);
        let view: Vec<(&str, usize, usize, usize, usize, usize)> = rows
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.depth,
                    r.objects,
                    r.attributes,
                    r.alarms,
                    r.own_attributes,
                )
            })
            .collect();
        assert_eq!(
            view,
            vec![
                ("North", 0, 3, 6, 3, 3),
                ("NorthWest", 1, 2, 3, 2, 3),
                ("South", 0, 1, 4, 1, 4),
                (NO_AREA, 0, 1, 5, 1, 5),
            ]
        );
        let text = render(&rows, "the test Galaxy");
        assert!(text.contains("\n  NorthWest "), "{text}");
        let all = text.lines().last().unwrap();
        let numbers: Vec<&str> = all.split_whitespace().collect();
        assert_eq!(numbers, ["(all)", "5", "15", "5"], "{text}");
    }

    #[test]
    fn an_area_cycle_from_a_peer_ends() {
        let objects = vec![
            obj(1, "A", 2, 2, true, 0),
            obj(2, "B", 1, 1, true, 0),
            obj(10, "P", 1, 1, false, 1),
        ];
        let rows = count(&objects);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().any(|r| r.objects == 1 && r.attributes == 1));
    }
}
