//! The process signals of the long-running commands (`run`, `sim`, `demo`).
//!
//! SIGINT and SIGTERM stop the process gracefully. SIGHUP, which systemd's `reload` and a
//! closed terminal send, never stops it: `mxpva run` reloads its config file
//! ([`Signals::shutdown_reloading`]); the commands without a config file log it and go on.
//! The handlers are installed by [`Signals::install`], before the command starts serving,
//! so a signal that arrives early finds them in place (and tokio keeps them installed for
//! the life of the process).

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The installed handlers; [`Signals::shutdown`] waits on them.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    /// Installs the handlers. Needs a tokio runtime with I/O enabled.
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Resolves on SIGINT or SIGTERM; logs every SIGHUP meanwhile.
    pub async fn shutdown(mut self) {
        loop {
            tokio::select! {
                _ = self.interrupt.recv() => break,
                _ = self.terminate.recv() => break,
                _ = self.hangup.recv() => tracing::warn!(
                    "SIGHUP received: this command has no config file to reload; still serving"
                ),
            }
        }
        tracing::info!("shutting down");
    }

    /// Resolves on SIGINT or SIGTERM; each SIGHUP meanwhile is a reload request on
    /// `reloads` (logged; if nobody takes requests any more it is only logged).
    pub async fn shutdown_reloading(mut self, reloads: tokio::sync::mpsc::UnboundedSender<()>) {
        loop {
            tokio::select! {
                _ = self.interrupt.recv() => break,
                _ = self.terminate.recv() => break,
                _ = self.hangup.recv() => {
                    tracing::info!("SIGHUP received: reloading the config");
                    let _ = reloads.send(());
                }
            }
        }
        tracing::info!("shutting down");
    }
}
