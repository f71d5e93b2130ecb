use std::collections::HashMap;

use super::*;
use crate::config::{Config, ScalarType};
use crate::gateway::MxDataType;

fn attr(name: &str, t: MxDataType) -> GalaxyAttribute {
    GalaxyAttribute {
        name: name.into(),
        full_tag_reference: String::new(),
        data_type: t,
        is_array: false,
        array_dimension: 0,
        security: SecurityClassification::Operate,
        is_historized: false,
        is_alarm: false,
        eng_units: "m".into(),
        description: String::new(),
    }
}

fn alarm(name: &str) -> GalaxyAttribute {
    GalaxyAttribute {
        is_alarm: true,
        ..attr(name, MxDataType::Boolean)
    }
}

fn object(tag: &str, area: i32, attributes: Vec<GalaxyAttribute>) -> GalaxyObject {
    GalaxyObject {
        gobject_id: 100,
        tag_name: tag.into(),
        contained_name: tag.into(),
        hierarchical_name: String::new(),
        parent_gobject_id: area,
        area_gobject_id: area,
        category_id: 10,
        is_area: false,
        template_chain: Vec::new(),
        attributes,
    }
}

fn rules(text: &str) -> Config {
    Config::from_str_at(text, std::path::Path::new("t.toml")).unwrap()
}

fn run(config: &Config, objects: &[GalaxyObject]) -> Discovery {
    let areas: HashMap<i32, String> = [(1, "Area1".to_string())].into();
    let mut out = Discovery::default();
    for (i, r) in config.discover.iter().enumerate() {
        candidates(r, i, objects, &areas, BooleanRepr::Enum, &mut out);
    }
    out
}

#[test]
fn alarms_go_to_the_attribute_they_are_named_under() {
    let level = attr("Level", MxDataType::Double);
    let pv = attr("PV", MxDataType::Double);
    let attrs = [&level, &pv];
    assert_eq!(
        alarm_owner("Level.HiHi", &attrs).map(|a| a.name.as_str()),
        Some("Level")
    );
    assert_eq!(
        alarm_owner("PVHiAlarm", &attrs).map(|a| a.name.as_str()),
        Some("PV")
    );
    assert_eq!(alarm_owner("PumpFault", &attrs), None);
    assert_eq!(alarm_owner("Level", &attrs), None);
}

#[test]
fn filters_templates_types_and_alarms() {
    let c = rules(
        "[[discover]]\nobjects = \"t*\"\nattributes = [\"L*\", \"Count\", \"Fault\"]\nname = \"{area}:{object}:{attribute}\"\ntypes = { int64 = \"float64\" }\n",
    );
    let objects = [
        object(
            "Tank1",
            1,
            vec![
                attr("Level", MxDataType::Double),
                alarm("Level.HiHi"),
                attr("Temp", MxDataType::Double),
                attr("Count", MxDataType::LongInteger),
                attr("Blob", MxDataType::QualifiedStruct),
                alarm("Fault"),
            ],
        ),
        object("Pump1", 1, vec![attr("Level", MxDataType::Double)]),
    ];
    let d = run(&c, &objects);
    let tags: Vec<&str> = d.candidates.iter().map(|c| c.tag.as_str()).collect();
    assert_eq!(tags, ["Tank1.Level", "Tank1.Count", "Tank1.Fault"]);
    let level = &d.candidates[0];
    assert_eq!(level.name, "Area1:Tank1:Level");
    assert_eq!(level.alarms, ["Tank1.Level.HiHi"]);
    assert_eq!(level.units.as_deref(), Some("m"));
    assert_eq!(level.access, GalaxyAccess::Write);
    assert_eq!(d.candidates[1].pv_type, PvType::Scalar(ScalarType::Float64));
    let fault = &d.candidates[2];
    assert_eq!(fault.alarms, ["Tank1.Fault"]);
    assert_eq!(fault.access, GalaxyAccess::ReadOnly);
    assert_eq!(fault.units, None, "no units on an enum");
    assert!(
        d.skipped.is_empty(),
        "Blob is filtered out first: {:?}",
        d.skipped
    );
}

#[test]
fn only_alarm_bearing_or_historized() {
    let c = rules("[[discover]]\nalarm_bearing_only = true\n\n[[discover]]\nhistorized_only = true\nname = \"H:{attribute}\"\n");
    let mut temp = attr("Temp", MxDataType::Double);
    temp.is_historized = true;
    let objects = [object(
        "Tank1",
        1,
        vec![
            attr("Level", MxDataType::Double),
            alarm("Level.Hi"),
            temp,
            attr("Blob", MxDataType::QualifiedStruct),
        ],
    )];
    let d = run(&c, &objects);
    let names: Vec<&str> = d.candidates.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Tank1:Level", "H:Temp"]);
}

#[test]
fn unservable_types_and_bad_names_are_named() {
    let c = rules("[[discover]]\n");
    let objects = [
        object(
            "Tank1",
            1,
            vec![
                attr("Blob", MxDataType::QualifiedStruct),
                attr("", MxDataType::Double),
            ],
        ),
        object(
            &"x".repeat(MAX_NAME + 1),
            1,
            vec![attr("A", MxDataType::Double)],
        ),
    ];
    let d = run(&c, &objects);
    assert!(d.candidates.is_empty());
    assert_eq!(d.skipped.len(), 3, "{:?}", d.skipped);
    for why in [
        "Tank1.Blob: type QualifiedStruct is not served",
        "Tank1.``: empty name",
        "name longer than 329 characters",
    ] {
        assert!(
            d.skipped.iter().any(|s| s.contains(why)),
            "{why}: {:?}",
            d.skipped
        );
    }
}
