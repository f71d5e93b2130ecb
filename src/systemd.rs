//! systemd's service notifications (`sd_notify`, through the `sd-notify` crate), for
//! `packaging/mxpva.service` (`Type=notify`, `WatchdogSec`).
//!
//! - `READY=1` once the PVs are served and the first gateway session is up or its first
//!   attempt is over (the bridge sends it; see `bridge/operate.rs`);
//! - `WATCHDOG=1` from the bridge task itself, every half `WATCHDOG_USEC` (at most every
//!   second): a bridge that stops turning is killed and restarted by systemd;
//! - `RELOADING=1` while a SIGHUP reload runs, `READY=1` after it; `STOPPING=1` when a
//!   graceful stop begins; `STATUS=` says what the bridge does (`systemctl status`).
//!
//! Without `NOTIFY_SOCKET` (not under systemd) each call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// `READY=1` and a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1` (with the monotonic time systemd 253 and later want).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// `STOPPING=1`: a graceful stop has begun (the gateway session is being closed).
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// `STATUS=...`.
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// `WATCHDOG=1`.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, and at least once a second;
/// `None` when systemd asked for no watchdog.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|d| (d / 2).clamp(Duration::from_millis(10), Duration::from_secs(1)))
}
