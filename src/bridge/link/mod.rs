//! The link to the gateway: connect, open a session, Register, authenticate the
//! `[users]`, attach the event stream ([`connect`], run by the adapter); a session up
//! (its tags advised, `subscriptions.rs`); a lost link (every PV INVALID, pending writes
//! failed) and the sessions of lost links, closed by the next connect.

pub(super) mod buffered;
pub(super) mod demand;
pub(super) mod strays;
pub(super) mod subscriptions;

use std::collections::HashMap;

use tracing::{info, warn};

use super::error::BridgeError;
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

/// The link as the bridge's decisions see it: the live session, if any, its
/// subscriptions, and why it was lost.
pub(super) struct LinkState {
    /// The live session, if any.
    pub session: Option<Link>,
    /// Which tags are advised in the live session, and when (`subscriptions.rs`).
    pub subs: subscriptions::Subscriptions,
    /// The subscriptions of a new session are under way ("gateway session up" when done).
    pub starting: Option<SessionStart>,
    /// The subscriptions of a reload are under way (logged when done).
    pub reload_subscribing: bool,
    /// Why the link is down, as last posted to the PVs.
    pub lost_reason: Option<String>,
    /// Events ignored, so each kind is logged once per session.
    pub strays: strays::Strays,
    /// Buffered samples dropped past `[limits] max_buffered_samples` (`buffered.rs`).
    pub dropped: buffered::Dropped,
}

impl LinkState {
    /// No session yet, with the window of `[gateway]`.
    pub fn new(gw: &config::Gateway) -> Self {
        let mut subs =
            subscriptions::Subscriptions::new(gw.subscribe_chunk.get(), gw.request_timeout);
        subs.set_buffered_interval(gw.buffered_interval);
        LinkState {
            session: None,
            subs,
            starting: None,
            reload_subscribing: false,
            lost_reason: None,
            strays: strays::Strays::default(),
            dropped: buffered::Dropped::default(),
        }
    }
}

/// The subscriptions of a new session, until they are all answered.
#[derive(Default)]
pub(super) struct SessionStart {
    pub failed: usize,
}
