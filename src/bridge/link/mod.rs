//! The link to the gateway: connect, open a session, Register, authenticate the
//! `[users]`, attach the event stream ([`connect`], run by the adapter); a session up
//! (its tags advised, `subscriptions.rs`); a lost link (every PV INVALID, pending writes
//! failed) and the sessions of lost links, closed by the next connect.

mod advise;
pub(super) mod demand;
pub(super) mod strays;
pub(super) mod subscriptions;

use std::collections::HashMap;

use tracing::{info, warn};

use super::{Bridge, BridgeError};
use crate::config;
use crate::gateway::{
    ClientOptions, EventStream, GatewayClient, GatewayError, ServerHandle, Session, UserId,
};
use crate::lock::Mutex;

/// How the bridge reaches the gateway, resolved from `[gateway]`, and the caps on what
/// it decodes, from `[limits]`.
pub(crate) fn client_options(
    gw: &config::Gateway,
    limits: &config::Limits,
) -> Result<ClientOptions, BridgeError> {
    config::client_options(gw, limits).map_err(|e| BridgeError::ApiKey(e.0))
}

/// The live session, as the bridge's decisions see it (the adapter holds the session
/// itself, `serve.rs`).
pub(super) struct Link {
    pub session: String,
    /// User ids for the secured write modes, by `[users]` key.
    pub users: HashMap<String, UserId>,
}

/// A session opened by [`connect`], for the adapter.
pub(super) struct Connected {
    pub session: Session,
    pub server: ServerHandle,
    pub users: HashMap<String, UserId>,
    pub events: EventStream,
}

/// Closes the sessions of lost links. One the gateway no longer knows counts as closed;
/// one it cannot answer for now stays for the next connect.
pub(super) async fn close_stale_sessions(client: &GatewayClient, stale: &Mutex<Vec<String>>) {
    let ids = stale.lock().clone();
    for id in ids {
        match client.close_session(&id).await {
            Err(e) if e.is_transient() => {
                warn!(session = %id, error = %e, "cannot close the session of the lost link yet");
                continue;
            }
            Ok(state) => info!(session = %id, ?state, "closed the session of the lost link"),
            Err(e) => info!(session = %id, error = %e, "the session of the lost link is gone"),
        }
        stale.lock().retain(|s| *s != id);
    }
}

/// Connects, closes the sessions of lost links, opens a session, registers,
/// authenticates the `[users]` and attaches the event stream. Nothing is subscribed
/// here: the bridge advises its tags once the session is up (`subscriptions.rs`), while
/// the adapter reads the event stream.
pub(super) async fn connect(
    opts: ClientOptions,
    gw: config::Gateway,
    users: Vec<(String, config::User)>,
    stale: std::sync::Arc<Mutex<Vec<String>>>,
) -> Result<Connected, String> {
    let fail = |what: &str, e: GatewayError| format!("{what}: {e}");
    let client = GatewayClient::connect(&opts)
        .await
        .map_err(|e| fail("cannot connect", e))?;
    close_stale_sessions(&client, &stale).await;
    let session = client
        .open_session(&gw.client_name)
        .await
        .map_err(|e| fail("cannot open a session", e))?;
    // Counted stale until the adapter takes the link: if this task fails, or is aborted
    // by a reload, the next connect closes the session.
    stale.lock().push(session.id().to_string());
    let server = session
        .register(&gw.client_name)
        .await
        .map_err(|e| fail("Register failed", e))?;
    let mut user_ids = HashMap::new();
    for (key, user) in users {
        let id = match &user.identity {
            config::Identity::Id(id) => UserId(*id),
            config::Identity::Credentials { name, password } => {
                let password = password.load().map_err(|e| format!("user {key}: {e}"))?;
                session
                    .authenticate_user(server, name, password.expose())
                    .await
                    .map_err(|e| fail(&format!("cannot authenticate user {key}"), e))?
            }
        };
        user_ids.insert(key, id);
    }
    // Attached before anything is advised: the first values queue at the gateway at once.
    let events = session
        .events(None)
        .await
        .map_err(|e| fail("cannot attach the event stream", e))?;
    Ok(Connected {
        session,
        server,
        users: user_ids,
        events,
    })
}

/// The subscriptions of a new session, until they are all answered.
#[derive(Default)]
pub(super) struct SessionStart {
    pub failed: usize,
}

impl Bridge {
    /// A session is up: every PV whose tag is wanted is advised in it (on-demand PVs only
    /// while watched or lingering), chunk by chunk (`subscriptions.rs`).
    pub(super) fn on_connected(&mut self, link: Link) {
        self.pvs.clear_items();
        self.strays.reset();
        self.lost_reason = None;
        self.subs.session_up();
        self.link = Some(link);
        self.starting = Some(SessionStart::default());
        // In the order the PVs were added.
        let ids = self.pvs.ids();
        self.advise(ids);
    }

    /// The end of a turn: once the subscriptions of a new session (or of a reload) are
    /// all answered, that is said (the log, the status PVs, systemd).
    pub(super) fn subscriptions_done(&mut self) {
        if !self.subs.is_idle() {
            return;
        }
        if let (Some(start), Some(link)) = (self.starting.take(), &self.link) {
            info!(
                session = %link.session,
                subscribed = self.pvs.subscribed(),
                failed = start.failed,
                first_values_to_come = self.subs.holding(),
                "gateway session up"
            );
            self.ops.status.gateway_up(&link.session);
            crate::systemd::status(&format!(
                "serving {} PVs, gateway session {}",
                self.pvs.len(),
                link.session
            ));
            self.ops.first_connect_over(&self.pvs, true);
            self.reload_subscribing = false;
        }
        if std::mem::take(&mut self.reload_subscribing) {
            info!(
                subscribed = self.pvs.subscribed(),
                first_values_to_come = self.subs.holding(),
                "subscriptions of the reload done"
            );
        }
    }

    /// The link is gone: every PV goes INVALID, pending writes fail. (Its session, which
    /// may live on at the gateway, is closed by the adapter's next connect.)
    pub(super) fn close_link(&mut self, reason: &str) {
        self.on_lost(reason);
    }

    pub(super) fn on_lost(&mut self, reason: &str) {
        self.link = None;
        self.writes.link_lost();
        self.pvs.clear_items();
        // Calls in flight, room held and data changes held name the lost session.
        self.subs.session_lost();
        self.starting = None;
        self.reload_subscribing = false;
        self.on_demand_link_lost(reason);
        self.ops.status.gateway_lost(reason);
        // Retries that fail the same way change nothing a client can see.
        if self.lost_reason.as_deref() == Some(reason) {
            tracing::debug!(%reason, "gateway still unavailable");
            return;
        }
        warn!(%reason, "gateway connection lost");
        crate::systemd::status(&format!("gateway connection lost: {reason}"));
        self.lost_reason = Some(reason.to_string());
        let message = format!("gateway connection lost: {reason}");
        for (_, pv) in self.pvs.iter_mut() {
            pv.connection_lost(&message);
        }
    }
}
