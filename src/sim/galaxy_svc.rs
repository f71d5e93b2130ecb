//! The simulated `galaxy_repository.v1.GalaxyRepository` service.
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tonic::{Request, Response, Status};

use super::gateway_svc::authorize;
use super::Core;
use crate::gateway::convert::{galaxy_object_to_pb, time_from_pb, time_to_pb};
use crate::gateway::pb::galaxy as gpb;
use crate::gateway::{GalaxyAttribute, GalaxyObject, MxDataType, SecurityClassification};

const CATEGORY_AREA: i32 = 13;
const CATEGORY_APPLICATION_OBJECT: i32 = 10;

pub(crate) struct GalaxySvc {
    core: Arc<Core>,
    /// The hierarchy of the Galaxy deployed now, rebuilt after a deploy.
    index: crate::lock::Mutex<(Arc<crate::sim::Galaxy>, Arc<Hierarchy>)>,
}

/// The Galaxy as the repository serves it.
pub(crate) struct Hierarchy {
    /// Every object (areas included), in hierarchy order (depth-first,
    /// children areas first then by name).
    objects: Vec<GalaxyObject>,
    /// Depth of each object in `objects` (roots 0).
    depth: Vec<usize>,
}

fn sort_key(o: &GalaxyObject) -> (bool, String) {
    (!o.is_area, o.contained_name.to_ascii_lowercase())
}

impl GalaxySvc {
    pub fn new(core: Arc<Core>) -> Self {
        let g = core.galaxy();
        let h = Arc::new(Hierarchy::new(&g));
        GalaxySvc {
            core,
            index: crate::lock::Mutex::new((g, h)),
        }
    }

    /// The hierarchy of the Galaxy deployed now.
    fn hierarchy(&self) -> Arc<Hierarchy> {
        let g = self.core.galaxy();
        let mut index = self.index.lock();
        if !Arc::ptr_eq(&index.0, &g) {
            let h = Arc::new(Hierarchy::new(&g));
            *index = (g, h);
        }
        index.1.clone()
    }

    /// UNAVAILABLE while the Galaxy Repository database is out of reach (a fault).
    fn reachable(&self) -> Result<(), Status> {
        if self.core.faults().galaxy_unavailable {
            return Err(Status::unavailable(
                "the Galaxy Repository database cannot be reached",
            ));
        }
        Ok(())
    }

    fn deploy_sequence(&self) -> u64 {
        self.core.deploy.lock().sequence
    }
}

impl Hierarchy {
    fn new(g: &crate::sim::Galaxy) -> Self {
        let id_of = |i: Option<usize>| i.and_then(|i| g.objects.get(i)).map_or(0, |o| o.gobject_id);
        let all: Vec<GalaxyObject> = g
            .objects
            .iter()
            .map(|o| {
                let mut attributes: Vec<GalaxyAttribute> = o
                    .attributes
                    .iter()
                    .filter_map(|&a| g.attributes.get(a))
                    .map(|d| GalaxyAttribute {
                        name: d.name.clone(),
                        full_tag_reference: d.reference.clone(),
                        data_type: d.data_type,
                        is_array: d.array_length.is_some(),
                        array_dimension: d.array_length.map(|n| n as i32).unwrap_or(0),
                        security: d.security,
                        is_historized: d.historized,
                        is_alarm: false,
                        eng_units: d.eng_units.clone(),
                        description: d.description.clone(),
                    })
                    .collect();
                attributes.extend(o.alarms.iter().filter_map(|&al| g.alarms.get(al)).map(|d| {
                    GalaxyAttribute {
                        name: d.name.clone(),
                        full_tag_reference: d.short_reference.clone(),
                        data_type: MxDataType::Boolean,
                        is_array: false,
                        array_dimension: 0,
                        security: SecurityClassification::ViewOnly,
                        is_historized: false,
                        is_alarm: true,
                        eng_units: String::new(),
                        description: d.description.clone(),
                    }
                }));
                GalaxyObject {
                    gobject_id: o.gobject_id,
                    tag_name: o.tag_name.clone(),
                    contained_name: o.contained_name.clone(),
                    hierarchical_name: o.hierarchical_name.clone(),
                    parent_gobject_id: id_of(o.parent),
                    area_gobject_id: id_of(o.area),
                    category_id: if o.is_area {
                        CATEGORY_AREA
                    } else {
                        CATEGORY_APPLICATION_OBJECT
                    },
                    is_area: o.is_area,
                    template_chain: o.template_chain.clone(),
                    attributes,
                }
            })
            .collect();
        let mut objects = Vec::with_capacity(all.len());
        let mut depth = Vec::with_capacity(all.len());
        // Depth first, children sorted; with an explicit stack, so that a deeply nested
        // Galaxy file cannot overflow the thread's stack.
        let children = |parent: i32| {
            let mut kids: Vec<&GalaxyObject> = all
                .iter()
                .filter(|o| o.parent_gobject_id == parent)
                .collect();
            kids.sort_by_key(|o| sort_key(o));
            kids
        };
        let mut stack: Vec<(&GalaxyObject, usize)> =
            children(0).into_iter().rev().map(|k| (k, 0)).collect();
        while let Some((o, d)) = stack.pop() {
            objects.push(o.clone());
            depth.push(d);
            stack.extend(children(o.gobject_id).into_iter().rev().map(|k| (k, d + 1)));
        }
        Hierarchy { objects, depth }
    }

    fn has_children(&self, id: i32) -> bool {
        self.objects.iter().any(|o| o.parent_gobject_id == id)
    }

    /// The first object (in hierarchy order) that `pred` picks, with its index.
    fn find(
        &self,
        pred: impl Fn(&GalaxyObject) -> bool,
        what: String,
    ) -> Result<(usize, &GalaxyObject), Status> {
        self.objects
            .iter()
            .enumerate()
            .find(|(_, o)| pred(o))
            .ok_or_else(|| Status::not_found(format!("{what} is not in the Galaxy")))
    }

    fn resolve_path(&self, path: &str) -> Result<(usize, &GalaxyObject), Status> {
        // A contained path: area names and contained names joined by '.' or '/'.
        let mut parent = 0;
        let mut found = None;
        for part in path.split(['.', '/']).filter(|p| !p.is_empty()) {
            let (i, o) = self.find(
                |o| o.parent_gobject_id == parent && o.contained_name.eq_ignore_ascii_case(part),
                format!("contained path {path}"),
            )?;
            parent = o.gobject_id;
            found = Some((i, o));
        }
        found.ok_or_else(|| Status::invalid_argument("empty contained path"))
    }
}

/// Anchored, case-insensitive glob with `*` and `?`.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while let Some(&tc) = t.get(ti) {
        match p.get(pi) {
            Some(&pc) if pc == '?' || pc == tc => {
                pi += 1;
                ti += 1;
            }
            Some('*') => {
                star = Some(pi);
                mark = ti;
                pi += 1;
            }
            _ => {
                let Some(s) = star else {
                    return false;
                };
                pi = s + 1;
                mark += 1;
                ti = mark;
            }
        }
    }
    while p.get(pi) == Some(&'*') {
        pi += 1;
    }
    pi == p.len()
}

/// The filters DiscoverHierarchy and BrowseChildren share (same field names).
macro_rules! filters {
    ($r:expr) => {
        Filters {
            category_ids: &$r.category_ids,
            template_chain_contains: &$r.template_chain_contains,
            tag_name_glob: &$r.tag_name_glob,
            alarm_bearing_only: $r.alarm_bearing_only,
            historized_only: $r.historized_only,
        }
    };
}

struct Filters<'a> {
    category_ids: &'a [i32],
    template_chain_contains: &'a [String],
    tag_name_glob: &'a str,
    alarm_bearing_only: bool,
    historized_only: bool,
}

impl Filters<'_> {
    fn keep(&self, o: &GalaxyObject) -> bool {
        (self.category_ids.is_empty() || self.category_ids.contains(&o.category_id))
            && (self.template_chain_contains.is_empty()
                || self
                    .template_chain_contains
                    .iter()
                    .any(|t| o.template_chain.iter().any(|c| c.eq_ignore_ascii_case(t))))
            && (self.tag_name_glob.is_empty() || glob_match(self.tag_name_glob, &o.tag_name))
            && (!self.alarm_bearing_only || o.attributes.iter().any(|a| a.is_alarm))
            && (!self.historized_only || o.attributes.iter().any(|a| a.is_historized))
    }

    fn fingerprint(&self, extra: &str) -> u64 {
        // FNV-1a over the filters, so a token cannot be replayed with other filters.
        let text = format!(
            "{:?}|{:?}|{}|{}|{}|{extra}",
            self.category_ids,
            self.template_chain_contains,
            self.tag_name_glob,
            self.alarm_bearing_only,
            self.historized_only
        );
        text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    }
}

/// Page through `items` with a token bound to the deploy, the request and the filters.
fn page<T: Clone>(
    items: &[T],
    page_size: i32,
    default: i32,
    token: &str,
    kind: &str,
    seq: u64,
    fp: u64,
) -> Result<(Vec<T>, String), Status> {
    if page_size < 0 {
        return Err(Status::invalid_argument("page_size must not be negative"));
    }
    let size = if page_size == 0 {
        default
    } else {
        page_size.min(5000)
    } as usize;
    let offset = if token.is_empty() {
        0
    } else {
        let parts: Vec<&str> = token.split(':').collect();
        match parts.as_slice() {
            [k, s, f, o]
                if *k == kind && s.parse() == Ok(seq) && u64::from_str_radix(f, 16) == Ok(fp) =>
            {
                o.parse::<usize>()
                    .map_err(|_| Status::invalid_argument("malformed page_token"))?
            }
            _ => return Err(Status::invalid_argument(
                "page_token does not belong to this request, these filters or the current deploy",
            )),
        }
    };
    let end = offset.saturating_add(size).min(items.len());
    let page = items
        .get(offset..end)
        .ok_or_else(|| Status::invalid_argument("page_token is past the end"))?;
    let next = if end < items.len() {
        format!("{kind}:{seq}:{fp:x}:{end}")
    } else {
        String::new()
    };
    Ok((page.to_vec(), next))
}

#[tonic::async_trait]
impl gpb::galaxy_repository_server::GalaxyRepository for GalaxySvc {
    async fn test_connection(
        &self,
        request: Request<gpb::TestConnectionRequest>,
    ) -> Result<Response<gpb::TestConnectionReply>, Status> {
        authorize(&self.core, request.metadata(), "metadata:read")?;
        Ok(Response::new(gpb::TestConnectionReply {
            ok: !self.core.faults().galaxy_unavailable,
        }))
    }

    async fn get_last_deploy_time(
        &self,
        request: Request<gpb::GetLastDeployTimeRequest>,
    ) -> Result<Response<gpb::GetLastDeployTimeReply>, Status> {
        authorize(&self.core, request.metadata(), "metadata:read")?;
        let t = self.core.deploy.lock().time;
        Ok(Response::new(gpb::GetLastDeployTimeReply {
            time_of_last_deploy: Some(time_to_pb(t)),
        }))
    }

    async fn discover_hierarchy(
        &self,
        request: Request<gpb::DiscoverHierarchyRequest>,
    ) -> Result<Response<gpb::DiscoverHierarchyReply>, Status> {
        use gpb::discover_hierarchy_request::Root;
        authorize(&self.core, request.metadata(), "metadata:read")?;
        self.reachable()?;
        let r = request.into_inner();
        let h = self.hierarchy();
        let (start, end, base_depth) = match &r.root {
            None => (0, h.objects.len(), 0),
            Some(root) => {
                let (i, _) = match root {
                    Root::RootGobjectId(id) => {
                        h.find(|o| o.gobject_id == *id, format!("gobject {id}"))?
                    }
                    Root::RootTagName(t) => h.find(
                        |o| o.tag_name.eq_ignore_ascii_case(t),
                        format!("object {t}"),
                    )?,
                    Root::RootContainedPath(p) => h.resolve_path(p)?,
                };
                let d = h.depth.get(i).copied().unwrap_or_default();
                // The subtree ends at the next object no deeper than the root.
                let end = h
                    .depth
                    .iter()
                    .enumerate()
                    .skip(i + 1)
                    .find(|&(_, &dj)| dj <= d)
                    .map_or(h.objects.len(), |(j, _)| j);
                (i, end, d)
            }
        };
        let max_depth = r.max_depth.map(|d| d.max(0) as usize);
        let f = filters!(r);
        let selected: Vec<gpb::GalaxyObject> = h
            .objects
            .iter()
            .zip(&h.depth)
            .take(end)
            .skip(start)
            .filter(|(_, &d)| max_depth.is_none_or(|m| d.saturating_sub(base_depth) <= m))
            .map(|(o, _)| o)
            .filter(|o| f.keep(o))
            .map(|o| galaxy_object_to_pb(o, r.include_attributes))
            .collect();
        let fp = f.fingerprint(&format!(
            "{:?}{:?}{}",
            r.root, r.max_depth, r.include_attributes
        ));
        let (objects, next) = page(
            &selected,
            r.page_size,
            1000,
            &r.page_token,
            "dh",
            self.deploy_sequence(),
            fp,
        )?;
        Ok(Response::new(gpb::DiscoverHierarchyReply {
            objects,
            next_page_token: next,
            total_object_count: selected.len() as i32,
        }))
    }

    type WatchDeployEventsStream =
        Pin<Box<dyn Stream<Item = Result<gpb::DeployEvent, Status>> + Send + 'static>>;

    async fn watch_deploy_events(
        &self,
        request: Request<gpb::WatchDeployEventsRequest>,
    ) -> Result<Response<Self::WatchDeployEventsStream>, Status> {
        authorize(&self.core, request.metadata(), "metadata:read")?;
        let last_seen = request
            .into_inner()
            .last_seen_deploy_time
            .as_ref()
            .map(time_from_pb)
            .transpose()
            .map_err(|e| Status::invalid_argument(format!("last_seen_deploy_time: {e}")))?;
        let (current, rx) = {
            let d = self.core.deploy.lock();
            (
                self.deploy_event(d.sequence, d.time),
                self.core.deploy_tx.subscribe(),
            )
        };
        let mut epoch = self.core.epoch.subscribe();
        let _ = epoch.borrow_and_update();
        let first = if last_seen
            .is_some_and(|t| current.time_of_last_deploy.as_ref().map(time_from_pb) == Some(Ok(t)))
        {
            None
        } else {
            Some(current)
        };
        let stream = futures_util::stream::unfold(
            (first, rx, false),
            move |(first, mut rx, done)| {
                let mut epoch = epoch.clone();
                async move {
                    if let Some(e) = first {
                        return Some((Ok(e), (None, rx, done)));
                    }
                    if done {
                        return None;
                    }
                    loop {
                        tokio::select! {
                            r = rx.recv() => match r {
                                Ok(e) => return Some((Ok(e), (None, rx, false))),
                                // Dropped events show as a gap in `sequence`.
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                                Err(_) => return None,
                            },
                            _ = epoch.changed() => {
                                return Some((Err(Status::unavailable("the gateway is restarting")), (None, rx, true)));
                            }
                        }
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn browse_children(
        &self,
        request: Request<gpb::BrowseChildrenRequest>,
    ) -> Result<Response<gpb::BrowseChildrenReply>, Status> {
        use gpb::browse_children_request::Parent;
        authorize(&self.core, request.metadata(), "metadata:read")?;
        self.reachable()?;
        let r = request.into_inner();
        let h = self.hierarchy();
        let parent_id = match &r.parent {
            None | Some(Parent::ParentGobjectId(0)) => 0,
            Some(Parent::ParentGobjectId(id)) => {
                h.find(|o| o.gobject_id == *id, format!("gobject {id}"))?
                    .1
                    .gobject_id
            }
            Some(Parent::ParentTagName(t)) => {
                h.find(
                    |o| o.tag_name.eq_ignore_ascii_case(t),
                    format!("object {t}"),
                )?
                .1
                .gobject_id
            }
            Some(Parent::ParentContainedPath(p)) => h.resolve_path(p)?.1.gobject_id,
        };
        let f = filters!(r);
        let include = r.include_attributes.unwrap_or(true);
        // h.objects is already areas-first, then by name, within each parent.
        let children: Vec<(gpb::GalaxyObject, bool)> = h
            .objects
            .iter()
            .filter(|o| o.parent_gobject_id == parent_id && f.keep(o))
            .map(|o| {
                (
                    galaxy_object_to_pb(o, include),
                    h.has_children(o.gobject_id),
                )
            })
            .collect();
        let fp = f.fingerprint(&format!("{parent_id}{include}"));
        let (page_items, next) = page(
            &children,
            r.page_size,
            500,
            &r.page_token,
            "bc",
            self.deploy_sequence(),
            fp,
        )?;
        let (children, flags) = page_items.into_iter().unzip();
        Ok(Response::new(gpb::BrowseChildrenReply {
            children,
            next_page_token: next,
            child_has_children: flags,
        }))
    }
}

impl GalaxySvc {
    fn deploy_event(&self, sequence: u64, time: std::time::SystemTime) -> gpb::DeployEvent {
        deploy_event(&self.core, sequence, time)
    }
}

pub(crate) fn deploy_event(
    core: &Core,
    sequence: u64,
    time: std::time::SystemTime,
) -> gpb::DeployEvent {
    let g = core.galaxy();
    gpb::DeployEvent {
        sequence,
        time_of_last_deploy: Some(time_to_pb(time)),
        time_of_last_deploy_present: true,
        object_count: g.objects.len() as i32,
        attribute_count: (g.attributes.len() + g.alarms.len()) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::{glob_match, page};

    #[test]
    fn globs() {
        assert!(glob_match("pump*", "Pump001"));
        assert!(glob_match("P?mp00?", "Pump001"));
        assert!(!glob_match("Pump", "Pump001"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*01", "Tank001"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b", "aXc"));
        assert!(glob_match("**?", "\u{e9}"));
        assert!(!glob_match("?", ""));
    }

    #[test]
    fn a_page_token_past_the_end_is_invalid_argument() {
        let items = [1, 2, 3];
        let (first, next) = page(&items, 2, 100, "", "k", 1, 0xab).unwrap();
        assert_eq!((first, next.as_str()), (vec![1, 2], "k:1:ab:2"));
        let (rest, next) = page(&items, 2, 100, "k:1:ab:2", "k", 1, 0xab).unwrap();
        assert_eq!((rest, next.as_str()), (vec![3], ""));
        for token in ["k:1:ab:4", &format!("k:1:ab:{}", usize::MAX)] {
            let e = page(&items, 5000, 100, token, "k", 1, 0xab).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{token}");
            assert_eq!(e.message(), "page_token is past the end");
        }
        let e = page(&items, 2, 100, "k:1:ab:-1", "k", 1, 0xab).unwrap_err();
        assert_eq!(e.message(), "malformed page_token");
    }
}
