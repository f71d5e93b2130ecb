//! Client of the Galaxy Repository service (read-only discovery).
use std::fmt;
use std::time::{Duration, SystemTime};

use tonic::transport::Channel;

use super::client::{Auth, AuthChannel, MAX_MESSAGE_BYTES};
use super::convert::{galaxy_object_from_pb, time_from_pb, time_to_pb};
use super::error::GatewayError;
use super::pb::galaxy as gpb;
use super::pb::galaxy::galaxy_repository_client::GalaxyRepositoryClient;
use super::types::*;

/// The Galaxy Repository client; obtained from [`super::GatewayClient::galaxy`].
#[derive(Clone)]
pub struct GalaxyClient {
    inner: GalaxyRepositoryClient<AuthChannel>,
    request_timeout: Duration,
}

impl fmt::Debug for GalaxyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GalaxyClient")
    }
}

fn req<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(timeout);
    r
}

impl GalaxyClient {
    pub(crate) fn new(channel: Channel, auth: Auth, request_timeout: Duration) -> Self {
        let inner = GalaxyRepositoryClient::with_interceptor(channel, auth)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        GalaxyClient {
            inner,
            request_timeout,
        }
    }

    /// Can the gateway reach the Galaxy Repository database?
    pub async fn test_connection(&self) -> Result<bool, GatewayError> {
        let r = self
            .inner
            .clone()
            .test_connection(req(gpb::TestConnectionRequest {}, self.request_timeout))
            .await
            .map_err(|s| GatewayError::from_status("TestConnection", s))?;
        Ok(r.into_inner().ok)
    }

    /// Time of the last deploy; None if never deployed.
    pub async fn last_deploy_time(&self) -> Result<Option<SystemTime>, GatewayError> {
        let r = self
            .inner
            .clone()
            .get_last_deploy_time(req(gpb::GetLastDeployTimeRequest {}, self.request_timeout))
            .await
            .map_err(|s| GatewayError::from_status("GetLastDeployTime", s))?;
        r.into_inner()
            .time_of_last_deploy
            .as_ref()
            .map(time_from_pb)
            .transpose()
            .map_err(|message| GatewayError::Protocol {
                call: "GetLastDeployTime",
                message,
            })
    }

    /// One page of DiscoverHierarchy.
    pub async fn discover_hierarchy(
        &self,
        q: &HierarchyQuery,
    ) -> Result<HierarchyPage, GatewayError> {
        let request = gpb::DiscoverHierarchyRequest {
            page_size: q.page_size,
            page_token: q.page_token.clone(),
            root: q
                .root_tag_name
                .clone()
                .map(gpb::discover_hierarchy_request::Root::RootTagName),
            max_depth: None,
            category_ids: Vec::new(),
            template_chain_contains: Vec::new(),
            tag_name_glob: q.tag_name_glob.clone(),
            include_attributes: q.include_attributes,
            alarm_bearing_only: q.alarm_bearing_only,
            historized_only: q.historized_only,
        };
        let r = self
            .inner
            .clone()
            .discover_hierarchy(req(request, self.request_timeout))
            .await
            .map_err(|s| GatewayError::from_status("DiscoverHierarchy", s))?
            .into_inner();
        Ok(HierarchyPage {
            objects: r.objects.into_iter().map(galaxy_object_from_pb).collect(),
            next_page_token: r.next_page_token,
            total_object_count: r.total_object_count,
        })
    }

    /// Every page of DiscoverHierarchy, concatenated.
    pub async fn discover_all(
        &self,
        q: &HierarchyQuery,
    ) -> Result<Vec<GalaxyObject>, GatewayError> {
        let mut q = q.clone();
        let mut out = Vec::new();
        loop {
            let page = self.discover_hierarchy(&q).await?;
            out.extend(page.objects);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            q.page_token = page.next_page_token;
        }
    }

    /// One page of the children of `parent` (a tag name; None = the roots).
    pub async fn browse_children(
        &self,
        parent: Option<&str>,
        page_size: i32,
        page_token: &str,
        include_attributes: bool,
    ) -> Result<ChildrenPage, GatewayError> {
        let request = gpb::BrowseChildrenRequest {
            parent: parent
                .map(|p| gpb::browse_children_request::Parent::ParentTagName(p.to_string())),
            page_size,
            page_token: page_token.to_string(),
            include_attributes: Some(include_attributes),
            ..Default::default()
        };
        let r = self
            .inner
            .clone()
            .browse_children(req(request, self.request_timeout))
            .await
            .map_err(|s| GatewayError::from_status("BrowseChildren", s))?
            .into_inner();
        if r.child_has_children.len() != r.children.len() {
            return Err(GatewayError::Protocol {
                call: "BrowseChildren",
                message: "child_has_children does not match children".into(),
            });
        }
        Ok(ChildrenPage {
            children: r
                .children
                .into_iter()
                .map(galaxy_object_from_pb)
                .zip(r.child_has_children)
                .collect(),
            next_page_token: r.next_page_token,
        })
    }

    /// Deploy events: the current state first (unless `last_seen` matches it),
    /// then one per deploy.
    pub async fn watch_deploy_events(
        &self,
        last_seen: Option<SystemTime>,
    ) -> Result<DeployEvents, GatewayError> {
        let s = self
            .inner
            .clone()
            .watch_deploy_events(gpb::WatchDeployEventsRequest {
                last_seen_deploy_time: last_seen.map(time_to_pb),
            })
            .await
            .map_err(|s| GatewayError::from_status("WatchDeployEvents", s))?
            .into_inner();
        Ok(DeployEvents { inner: s })
    }
}

/// Stream of deploy events.
pub struct DeployEvents {
    inner: tonic::Streaming<gpb::DeployEvent>,
}

impl fmt::Debug for DeployEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeployEvents")
    }
}

impl DeployEvents {
    pub async fn next(&mut self) -> Option<Result<DeployEvent, GatewayError>> {
        match self.inner.message().await {
            Ok(Some(e)) => {
                let time = match (e.time_of_last_deploy_present, &e.time_of_last_deploy) {
                    (true, Some(t)) => match time_from_pb(t) {
                        Ok(t) => Some(t),
                        Err(message) => {
                            return Some(Err(GatewayError::Protocol {
                                call: "WatchDeployEvents",
                                message,
                            }))
                        }
                    },
                    _ => None,
                };
                Some(Ok(DeployEvent {
                    sequence: e.sequence,
                    time_of_last_deploy: time,
                    object_count: e.object_count,
                    attribute_count: e.attribute_count,
                }))
            }
            Ok(None) => None,
            Err(s) => Some(Err(GatewayError::from_status("WatchDeployEvents", s))),
        }
    }
}
