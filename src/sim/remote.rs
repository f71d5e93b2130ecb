//! A client of the simulator's control service, for tests and tools that
//! drive a standalone `mxpva sim` (another process). Same operations as
//! [`super::SimHandle`].
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::{Faults, SessionStats};
use crate::gateway::pb::control as cpb;
use crate::gateway::pb::control::sim_control_client::SimControlClient;
use crate::gateway::{ApiKey, Quality};

/// Errors of [`RemoteSim`]: the control call failed (with the gRPC message).
#[derive(Debug, thiserror::Error)]
#[error("simulator control {call}: {message}")]
pub struct RemoteSimError {
    pub call: &'static str,
    pub message: String,
}

/// Connection to a simulator's `mxpva_sim.v1.SimControl` service.
#[derive(Clone)]
pub struct RemoteSim {
    inner: SimControlClient<Channel>,
    /// `Bearer <key>` for simulators in api_key mode (control needs `admin`).
    auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl std::fmt::Debug for RemoteSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteSim")
    }
}

fn err(call: &'static str) -> impl FnOnce(tonic::Status) -> RemoteSimError {
    move |s| RemoteSimError {
        call,
        message: format!("{:?}: {}", s.code(), s.message()),
    }
}

impl RemoteSim {
    /// Connect to `host:port` (plaintext).
    pub async fn connect(
        endpoint: &str,
        admin_key: Option<&ApiKey>,
    ) -> Result<Self, RemoteSimError> {
        let e = |m: String| RemoteSimError {
            call: "connect",
            message: m,
        };
        let uri = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let channel = Endpoint::from_shared(uri)
            .map_err(|x| e(x.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|x| e(x.to_string()))?;
        let auth = match admin_key {
            Some(k) => {
                let mut v: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
                    format!("Bearer {}", k.expose())
                        .parse()
                        .map_err(|_| e("unusable key".into()))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(RemoteSim {
            inner: SimControlClient::new(channel),
            auth,
        })
    }

    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(a) = &self.auth {
            r.metadata_mut().insert("authorization", a.clone());
        }
        r
    }

    /// Set (and hold) a value given as text; `quality` too when given.
    pub async fn set_value(
        &self,
        reference: &str,
        value: &str,
        quality: Option<Quality>,
    ) -> Result<(), RemoteSimError> {
        let m = cpb::SetValueRequest {
            reference: reference.into(),
            value: value.into(),
            quality: quality.map(|q| u32::from(q.0)).unwrap_or(0),
            release: false,
        };
        self.inner
            .clone()
            .set_value(self.req(m))
            .await
            .map_err(err("SetValue"))?;
        Ok(())
    }

    /// Hold a quality (None: release it).
    pub async fn set_quality(
        &self,
        reference: &str,
        quality: Option<Quality>,
    ) -> Result<(), RemoteSimError> {
        let m = cpb::SetQualityRequest {
            reference: reference.into(),
            quality: quality.map(|q| u32::from(q.0)).unwrap_or(0),
            release: quality.is_none(),
        };
        self.inner
            .clone()
            .set_quality(self.req(m))
            .await
            .map_err(err("SetQuality"))?;
        Ok(())
    }

    pub async fn raise_alarm(&self, reference: &str) -> Result<(), RemoteSimError> {
        let m = cpb::AlarmRequest {
            reference: reference.into(),
            release: false,
        };
        self.inner
            .clone()
            .raise_alarm(self.req(m))
            .await
            .map_err(err("RaiseAlarm"))?;
        Ok(())
    }

    /// Hold an alarm clear, or (`release`) return it to its limits.
    pub async fn clear_alarm(&self, reference: &str, release: bool) -> Result<(), RemoteSimError> {
        let m = cpb::AlarmRequest {
            reference: reference.into(),
            release,
        };
        self.inner
            .clone()
            .clear_alarm(self.req(m))
            .await
            .map_err(err("ClearAlarm"))?;
        Ok(())
    }

    pub async fn deploy(&self) -> Result<(), RemoteSimError> {
        self.inner
            .clone()
            .deploy(self.req(cpb::DeployRequest {}))
            .await
            .map_err(err("Deploy"))?;
        Ok(())
    }

    pub async fn set_faults(&self, f: &Faults) -> Result<(), RemoteSimError> {
        let m = cpb::FaultSettings {
            refuse_sessions: f.refuse_sessions,
            stall_events: f.stall_events,
            write_delay_ms: u32::try_from(f.write_delay.as_millis()).unwrap_or(u32::MAX),
            fail_writes_detail: f.fail_writes_detail.unwrap_or(0),
            write_fault_prefix: f.write_fault_prefix.clone(),
            galaxy_unavailable: f.galaxy_unavailable,
            ack_delay_ms: u32::try_from(f.ack_delay.as_millis()).unwrap_or(u32::MAX),
        };
        self.inner
            .clone()
            .set_faults(self.req(m))
            .await
            .map_err(err("SetFaults"))?;
        Ok(())
    }

    /// End the event streams of one session (or all when None).
    pub async fn drop_event_streams(&self, session_id: Option<&str>) -> Result<(), RemoteSimError> {
        let m = cpb::SessionSelector {
            session_id: session_id.unwrap_or_default().into(),
        };
        self.inner
            .clone()
            .drop_event_streams(self.req(m))
            .await
            .map_err(err("DropEventStreams"))?;
        Ok(())
    }

    pub async fn fault_session(
        &self,
        session_id: &str,
        reason: &str,
    ) -> Result<(), RemoteSimError> {
        let m = cpb::FaultSessionRequest {
            session_id: session_id.into(),
            reason: reason.into(),
        };
        self.inner
            .clone()
            .fault_session(self.req(m))
            .await
            .map_err(err("FaultSession"))?;
        Ok(())
    }

    pub async fn restart(&self) -> Result<(), RemoteSimError> {
        self.inner
            .clone()
            .restart(self.req(cpb::Empty {}))
            .await
            .map_err(err("Restart"))?;
        Ok(())
    }

    /// Queue `count` synthetic OnDataChange events on a session.
    pub async fn burst(
        &self,
        session_id: &str,
        count: u64,
        paced: bool,
    ) -> Result<(), RemoteSimError> {
        self.send_burst(session_id, count, paced, 0.0).await
    }

    /// Queue `count` synthetic OnDataChange events at `rate_per_s` events per
    /// second, each stamped with the moment it was queued.
    pub async fn burst_at_rate(
        &self,
        session_id: &str,
        count: u64,
        rate_per_s: f64,
    ) -> Result<(), RemoteSimError> {
        self.send_burst(session_id, count, false, rate_per_s).await
    }

    async fn send_burst(
        &self,
        session_id: &str,
        count: u64,
        paced: bool,
        rate_per_s: f64,
    ) -> Result<(), RemoteSimError> {
        let m = cpb::BurstRequest {
            session_id: session_id.into(),
            count,
            paced,
            rate_per_s,
        };
        self.inner
            .clone()
            .burst(self.req(m))
            .await
            .map_err(err("Burst"))?;
        Ok(())
    }

    /// Every advised buffered item of a session takes `count` synthetic samples,
    /// `first_value`, `first_value + 1`, ... (see [`super::SimHandle::buffered_burst`]).
    pub async fn buffered_burst(
        &self,
        session_id: &str,
        count: u32,
        first_value: f64,
    ) -> Result<(), RemoteSimError> {
        let m = cpb::BufferedBurstRequest {
            session_id: session_id.into(),
            count,
            first_value,
        };
        self.inner
            .clone()
            .buffered_burst(self.req(m))
            .await
            .map_err(err("BufferedBurst"))?;
        Ok(())
    }

    /// The write calls the simulator received, oldest first.
    pub async fn writes(&self) -> Result<Vec<super::WriteSeen>, RemoteSimError> {
        let r = self
            .inner
            .clone()
            .list_writes(self.req(cpb::Empty {}))
            .await
            .map_err(err("ListWrites"))?;
        Ok(r.into_inner()
            .writes
            .into_iter()
            .map(|w| super::WriteSeen {
                reference: w.reference,
                value: w.value,
            })
            .collect())
    }

    pub async fn sessions(&self) -> Result<Vec<SessionStats>, RemoteSimError> {
        let r = self
            .inner
            .clone()
            .list_sessions(self.req(cpb::Empty {}))
            .await
            .map_err(err("ListSessions"))?;
        Ok(r.into_inner()
            .sessions
            .into_iter()
            .map(|s| SessionStats {
                session_id: s.session_id,
                client_session_name: s.client_session_name,
                state: s.state,
                queued_events: s.queued_events as usize,
                last_worker_sequence: s.last_worker_sequence,
                subscriber_attached: s.subscriber_attached,
                item_count: s.item_count as usize,
                advised_count: s.advised_count as usize,
            })
            .collect())
    }
}
