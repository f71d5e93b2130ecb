//! From a parsed Galaxy file to a [`Galaxy`]: every check, and names resolved to indices.
use std::collections::{HashMap, HashSet};

use super::*;
use crate::sim::clock::MAX_CLOCK_OFFSET_MS;
use crate::sim::values::default_value;

/// The largest `[galaxy] event_queue_capacity`.
pub const MAX_EVENT_QUEUE_CAPACITY: u64 = 1_000_000;

/// How deep objects may contain one another.
pub const MAX_CONTAINMENT_DEPTH: usize = 100;

/// Check a parsed Galaxy file and resolve its names to indices; every problem found goes
/// to `problems`.
pub(super) fn build(file: GalaxyFile, problems: &mut Vec<String>) -> Galaxy {
    let mut p = |s: String| problems.push(s);
    if file.galaxy.tick_ms == 0 || file.galaxy.tick_ms > 60_000 {
        p(format!(
            "galaxy.tick_ms must be 1..=60000, not {}",
            file.galaxy.tick_ms
        ));
    }
    let event_queue_capacity = match file.galaxy.event_queue_capacity {
        None => None,
        Some(c) if (1..=MAX_EVENT_QUEUE_CAPACITY).contains(&c) => usize::try_from(c).ok(),
        Some(c) => {
            p(format!(
                "galaxy.event_queue_capacity must be 1..={MAX_EVENT_QUEUE_CAPACITY}, not {c}"
            ));
            None
        }
    };
    let clock_offset_ms = file.galaxy.clock_offset_ms;
    if clock_offset_ms.unsigned_abs() > MAX_CLOCK_OFFSET_MS.unsigned_abs() {
        p(format!(
            "galaxy.clock_offset_ms must be -{MAX_CLOCK_OFFSET_MS}..={MAX_CLOCK_OFFSET_MS} (a year either way), not {clock_offset_ms}"
        ));
    }
    if file.galaxy.name.is_empty() || file.galaxy.name.contains(['!', '.']) {
        p(format!(
            "galaxy.name {:?} must be non-empty without '!' or '.'",
            file.galaxy.name
        ));
    }
    let mut keys = Vec::new();
    let mut seen_keys = HashSet::new();
    for (i, k) in file.auth.keys.iter().enumerate() {
        if k.key.is_empty() || !k.key.bytes().all(|b| b.is_ascii_graphic()) {
            p(format!(
                "auth.keys[{i}].key must be printable ASCII without spaces"
            ));
        }
        if !seen_keys.insert(k.key.clone()) {
            p(format!("auth.keys[{i}] repeats a key"));
        }
        for s in &k.scopes {
            if !SCOPES.contains(&s.as_str()) {
                p(format!(
                    "auth.keys[{i}]: unknown scope {s:?}, expected one of {}",
                    SCOPES.join(", ")
                ));
            }
        }
        let max = k.max_write_classification.as_deref().and_then(|c| {
            let r = SecurityClassification::from_name(c);
            if r.is_none() {
                p(format!(
                    "auth.keys[{i}]: unknown security classification {c:?}"
                ));
            }
            r
        });
        keys.push(KeyDef {
            key: k.key.clone(),
            scopes: k.scopes.iter().cloned().collect(),
            read_prefixes: k.read_prefixes.clone(),
            write_prefixes: k.write_prefixes.clone(),
            max_write_classification: max,
        });
    }
    if file.auth.mode == AuthMode::ApiKey && keys.is_empty() {
        p("auth.mode = \"api_key\" needs at least one [[auth.keys]]".into());
    }
    let mut users = Vec::new();
    let mut user_ids = HashSet::new();
    for u in &file.users {
        if u.id <= 0 {
            p(format!("user {}: id must be > 0 (0 means no user)", u.name));
        }
        if !user_ids.insert(u.id) {
            p(format!("user {}: id {} is used twice", u.name, u.id));
        }
        for perm in &u.permissions {
            if !["Operate", "Tune", "Configure", "Verify", "AckAlarms"].contains(&perm.as_str()) {
                p(format!("user {}: unknown permission {perm:?}", u.name));
            }
        }
        users.push(UserDef {
            name: u.name.clone(),
            password: u.password.clone(),
            id: u.id,
            permissions: u.permissions.iter().cloned().collect(),
        });
    }

    // Objects: areas first (in file order), then application objects.
    let mut objects: Vec<ObjectDef> = Vec::new();
    let mut by_tag: HashMap<String, usize> = HashMap::new();
    for a in &file.areas {
        if by_tag.contains_key(&a.name.to_ascii_lowercase()) {
            p(format!("area {} is defined twice", a.name));
            continue;
        }
        by_tag.insert(a.name.to_ascii_lowercase(), objects.len());
        objects.push(ObjectDef {
            gobject_id: objects.len() as i32 + 1,
            tag_name: a.name.clone(),
            contained_name: a.name.clone(),
            hierarchical_name: a.name.clone(),
            parent: None,
            area: None,
            is_area: true,
            template_chain: vec!["$Area".into()],
            description: a.description.clone(),
            attributes: Vec::new(),
            alarms: Vec::new(),
        });
    }
    for a in &file.areas {
        let Some(&me) = by_tag.get(&a.name.to_ascii_lowercase()) else {
            continue;
        };
        if let Some(parent) = &a.parent {
            match by_tag.get(&parent.to_ascii_lowercase()) {
                Some(&pi) if pi != me => {
                    if let Some(area) = objects.get_mut(me) {
                        area.parent = Some(pi);
                        area.area = Some(pi);
                    }
                }
                _ => p(format!(
                    "area {}: parent area {parent} is not defined",
                    a.name
                )),
            }
        }
    }
    let first_object = objects.len();
    for o in &file.objects {
        if !valid_name(&o.tag) {
            p(format!(
                "object tag {:?} must be letters, digits, '_' or '$' (up to 329 characters)",
                o.tag
            ));
        }
        if by_tag.contains_key(&o.tag.to_ascii_lowercase()) {
            p(format!(
                "object {} is defined twice (or clashes with an area)",
                o.tag
            ));
            continue;
        }
        by_tag.insert(o.tag.to_ascii_lowercase(), objects.len());
        objects.push(ObjectDef {
            gobject_id: objects.len() as i32 + 1,
            tag_name: o.tag.clone(),
            contained_name: o.contained_name.clone().unwrap_or_else(|| o.tag.clone()),
            hierarchical_name: String::new(),
            parent: None,
            area: None,
            is_area: false,
            template_chain: vec![o.template.clone(), "$UserDefined".into()]
                .into_iter()
                .fold(Vec::new(), |mut v, t| {
                    if !v.contains(&t) {
                        v.push(t);
                    }
                    v
                }),
            description: o.description.clone(),
            attributes: Vec::new(),
            alarms: Vec::new(),
        });
    }
    for o in &file.objects {
        let Some(&me) = by_tag.get(&o.tag.to_ascii_lowercase()) else {
            continue;
        };
        let is_area = |i: usize| objects.get(i).map(|x| x.is_area);
        let area = match by_tag.get(&o.area.to_ascii_lowercase()) {
            Some(&ai) if is_area(ai) == Some(true) => Some(ai),
            _ => {
                p(format!("object {}: area {} is not defined", o.tag, o.area));
                None
            }
        };
        let parent = match &o.parent {
            Some(pt) => match by_tag.get(&pt.to_ascii_lowercase()) {
                Some(&pi) if pi != me && is_area(pi) == Some(false) => Some(pi),
                _ => {
                    p(format!(
                        "object {}: parent object {pt} is not defined",
                        o.tag
                    ));
                    None
                }
            },
            None => area.or_else(|| objects.get(me).and_then(|x| x.area)),
        };
        if let Some(object) = objects.get_mut(me) {
            if area.is_some() {
                object.area = area;
            }
            object.parent = parent;
        }
    }
    // Hierarchical names, with a guard against cycles and against chains so deep that
    // the names alone (each as long as its chain) would fill the memory.
    let hierarchical_names: Vec<String> = objects
        .iter()
        .map(|o| {
            let mut names = vec![o.contained_name.clone()];
            let mut cur = o.parent;
            let mut seen = HashSet::new();
            while let Some((ci, c)) = cur.and_then(|ci| Some((ci, objects.get(ci)?))) {
                if c.is_area {
                    break;
                }
                if !seen.insert(ci) {
                    p(format!("{}: containment cycle", o.tag_name));
                    break;
                }
                if seen.len() > MAX_CONTAINMENT_DEPTH {
                    p(format!(
                        "{}: contained more than {MAX_CONTAINMENT_DEPTH} objects deep",
                        o.tag_name
                    ));
                    break;
                }
                names.push(c.contained_name.clone());
                cur = c.parent;
            }
            names.reverse();
            names.join(".")
        })
        .collect();
    for (o, name) in objects.iter_mut().zip(hierarchical_names) {
        o.hierarchical_name = name;
    }

    // Attributes and alarms.
    let mut attributes: Vec<AttrDef> = Vec::new();
    let mut alarms: Vec<AlarmDef> = Vec::new();
    let mut pending_refs: Vec<(usize, Option<String>, Option<String>)> = Vec::new();
    for o in &file.objects {
        let Some(&oi) = by_tag.get(&o.tag.to_ascii_lowercase()) else {
            continue;
        };
        let mut names = HashSet::new();
        for a in &o.attributes {
            let ctx = format!("{}.{}", o.tag, a.name);
            if !valid_name(&a.name) {
                p(format!(
                    "{ctx}: attribute names are letters, digits and '_'"
                ));
            }
            if !names.insert(a.name.to_ascii_lowercase()) {
                p(format!("{ctx}: attribute defined twice"));
            }
            let Some(t) =
                MxDataType::from_name(&a.data_type).filter(|t| SIMULATED_TYPES.contains(t))
            else {
                p(format!(
                    "{ctx}: type {:?} is not simulated; use one of {}",
                    a.data_type,
                    SIMULATED_TYPES
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            };
            match a.array_length {
                Some(0) => p(format!("{ctx}: array_length must be > 0")),
                Some(n) if n > MAX_ARRAY_LENGTH => {
                    p(format!(
                        "{ctx}: array_length {n} is above the simulator's {MAX_ARRAY_LENGTH}"
                    ));
                    continue;
                }
                _ => {}
            }
            let Some(security) = SecurityClassification::from_name(&a.security) else {
                p(format!(
                    "{ctx}: unknown security classification {:?}",
                    a.security
                ));
                continue;
            };
            let initial = match &a.initial {
                Some(v) => parse_initial(v, t, a.array_length).unwrap_or_else(|e| {
                    p(format!("{ctx}: {e}"));
                    MxValue::Null
                }),
                None => default_value(t, a.array_length),
            };
            let dynamics = a.dynamics.clone().unwrap_or(Dynamics::Constant);
            check_dynamics(&ctx, &dynamics, t, a.array_length.is_some(), &mut p);
            let quality = a.quality.as_ref().map(|q| {
                if q.period_s <= 0.0
                    || q.uncertain_s < 0.0
                    || q.bad_s < 0.0
                    || q.uncertain_s + q.bad_s >= q.period_s
                {
                    p(format!(
                        "{ctx}: quality needs period_s > uncertain_s + bad_s >= 0"
                    ));
                }
                let (u, b) = (Quality(q.uncertain), Quality(q.bad));
                if !u.is_uncertain() {
                    p(format!(
                        "{ctx}: quality.uncertain 0x{:02X} is not an uncertain quality",
                        q.uncertain
                    ));
                }
                if !b.is_bad() {
                    p(format!(
                        "{ctx}: quality.bad 0x{:02X} is not a bad quality",
                        q.bad
                    ));
                }
                QualityCycle {
                    period_s: q.period_s,
                    uncertain_s: q.uncertain_s,
                    bad_s: q.bad_s,
                    uncertain: u,
                    bad: b,
                }
            });
            if let (Some(lo), Some(hi)) = (a.min, a.max) {
                if lo > hi {
                    p(format!("{ctx}: min {lo} is above max {hi}"));
                }
            }
            let (src, en) = match &dynamics {
                Dynamics::Follow { source, enable, .. } => (Some(source.clone()), enable.clone()),
                Dynamics::Elapsed { while_true } => (None, while_true.clone()),
                Dynamics::Counter { rising } => (None, Some(rising.clone())),
                _ => (None, None),
            };
            let ai = attributes.len();
            pending_refs.push((ai, src, en));
            attributes.push(AttrDef {
                object: oi,
                name: a.name.clone(),
                reference: ctx.clone(),
                data_type: t,
                array_length: a.array_length,
                security,
                eng_units: a.eng_units.clone(),
                description: a.description.clone(),
                historized: a.historized,
                writable: a.writable,
                min: a.min,
                max: a.max,
                initial,
                dynamics,
                quality,
                source: None,
                enable: None,
            });
            if let Some(object) = objects.get_mut(oi) {
                object.attributes.push(ai);
            }
            for al in &a.alarms {
                let kind = match al.kind.as_str() {
                    "HiHi" => AlarmKind::HiHi,
                    "Hi" => AlarmKind::Hi,
                    "Lo" => AlarmKind::Lo,
                    "LoLo" => AlarmKind::LoLo,
                    "Discrete" => AlarmKind::Discrete,
                    other => {
                        p(format!(
                            "{ctx}: alarm kind {other:?} is not one of HiHi, Hi, Lo, LoLo, Discrete"
                        ));
                        continue;
                    }
                };
                if kind == AlarmKind::Discrete {
                    if t != MxDataType::Boolean || a.array_length.is_some() {
                        p(format!("{ctx}: a Discrete alarm needs a Boolean attribute"));
                    }
                } else if al.limit.is_none()
                    || !matches!(
                        t,
                        MxDataType::Integer | MxDataType::Float | MxDataType::Double
                    )
                {
                    p(format!(
                        "{ctx}: alarm {} needs a limit and a numeric attribute",
                        al.name
                    ));
                }
                if !(1..=999).contains(&al.priority) {
                    p(format!(
                        "{ctx}: alarm priority {} is not in 1..=999",
                        al.priority
                    ));
                }
                if al.name.is_empty() || al.name.contains(['!', ' ']) {
                    p(format!("{ctx}: alarm name {:?} is not usable", al.name));
                }
                let area = objects
                    .get(oi)
                    .and_then(|x| x.area)
                    .and_then(|a| objects.get(a))
                    .map(|a| a.tag_name.clone())
                    .unwrap_or_default();
                let short = format!("{}.{}", o.tag, al.name);
                alarms.push(AlarmDef {
                    reference: format!("{}!{}.{}", file.galaxy.name, area, short),
                    short_reference: short,
                    name: al.name.clone(),
                    object: oi,
                    attribute: ai,
                    kind,
                    limit: al.limit,
                    deadband: al.deadband.max(0.0),
                    priority: al.priority,
                    area,
                    description: al.description.clone(),
                });
                let alarm = alarms.len() - 1;
                if let Some(object) = objects.get_mut(oi) {
                    object.alarms.push(alarm);
                }
            }
        }
    }
    for (ai, src, en) in pending_refs {
        let Some(attr) = attributes.get(ai) else {
            continue;
        };
        let obj = objects
            .get(attr.object)
            .map(|o| o.tag_name.as_str())
            .unwrap_or_default();
        let find = |name: &str| {
            let r = format!("{obj}.{name}");
            attributes
                .iter()
                .enumerate()
                .find(|(_, x)| x.reference.eq_ignore_ascii_case(&r))
        };
        let mut source = None;
        if let Some(s) = &src {
            match find(s) {
                Some((i, x)) if x.array_length.is_none() => source = Some(i),
                _ => p(format!(
                    "{}: dynamics source {s} is not a scalar attribute of {obj}",
                    attr.reference
                )),
            }
        }
        let mut enable = None;
        if let Some(e) = &en {
            match find(e) {
                Some((i, x)) if x.data_type == MxDataType::Boolean && x.array_length.is_none() => {
                    enable = Some(i)
                }
                _ => p(format!(
                    "{}: {e} is not a Boolean attribute of {obj}",
                    attr.reference
                )),
            }
        }
        if let Some(attr) = attributes.get_mut(ai) {
            attr.source = source.or(attr.source);
            attr.enable = enable.or(attr.enable);
        }
    }
    let _ = first_object;
    // The first of equal references wins, as a scan in order would find it.
    let mut by_reference = HashMap::with_capacity(attributes.len());
    for (i, a) in attributes.iter().enumerate() {
        by_reference
            .entry(a.reference.to_ascii_lowercase())
            .or_insert(i);
    }
    Galaxy {
        name: file.galaxy.name,
        tick_ms: file.galaxy.tick_ms,
        first_update_delay_ms: file.galaxy.first_update_delay_ms,
        security_enabled: file.galaxy.security_enabled,
        event_queue_capacity,
        clock_offset_ms,
        auth_mode: file.auth.mode,
        keys,
        users,
        objects,
        attributes,
        alarms,
        by_reference,
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 329
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn check_dynamics(
    ctx: &str,
    d: &Dynamics,
    t: MxDataType,
    is_array: bool,
    p: &mut impl FnMut(String),
) {
    let numeric = matches!(
        t,
        MxDataType::Integer | MxDataType::LongInteger | MxDataType::Float | MxDataType::Double
    );
    let ok = match d {
        Dynamics::Constant => true,
        Dynamics::Ramp { min, max, rate } => numeric && !is_array && min < max && *rate > 0.0,
        Dynamics::Sine { period_s, .. } => numeric && !is_array && *period_s > 0.0,
        Dynamics::RandomWalk { min, max, step } => numeric && !is_array && min < max && *step > 0.0,
        Dynamics::Toggle { period_s } => {
            (t == MxDataType::Boolean || numeric) && !is_array && *period_s > 0.0
        }
        Dynamics::Follow { tau_s, noise, .. } => {
            numeric && !is_array && *tau_s > 0.0 && *noise >= 0.0
        }
        Dynamics::Clock => t == MxDataType::Time && !is_array,
        Dynamics::Elapsed { .. } => t == MxDataType::ElapsedTime && !is_array,
        Dynamics::Counter { .. } => {
            matches!(t, MxDataType::Integer | MxDataType::LongInteger) && !is_array
        }
        Dynamics::Wave { period_s, .. } => {
            is_array && matches!(t, MxDataType::Float | MxDataType::Double) && *period_s > 0.0
        }
    };
    if !ok {
        p(format!(
            "{ctx}: dynamics {d:?} do not suit a {}{t} attribute (or their parameters are out of range)",
            if is_array { "array of " } else { "" }
        ));
    }
}
