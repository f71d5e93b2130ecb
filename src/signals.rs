//! The process signals of the long-running commands (`run`, `sim`, `demo`).
//!
//! SIGINT and SIGTERM stop the process gracefully. SIGHUP, which systemd's `reload` and a
//! closed terminal send, never stops it: `mxpva run` reloads its config file
//! ([`Signals::shutdown_reloading`]); the commands without a config file log it and go on.
//! The handlers are installed by [`Signals::install`], before the command starts serving,
//! so a signal that arrives early finds them in place (and tokio keeps them installed for
//! the life of the process).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Set by a SIGHUP that came before [`Signals::install`] (see [`catch_early_hangups`]).
static EARLY_HANGUP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Catches SIGHUP from the first line of `main`: until [`Signals::install`] it only sets
/// a flag, so a SIGHUP during start-up (reading the config, starting the server) does
/// not end the process with the default action. `Signals::install` takes the flag: a
/// start-up SIGHUP becomes one reload request once the command serves. (A SIGHUP before
/// `main` runs at all, while the dynamic loader maps the libraries, still has the
/// default action; a service manager sends none that early.)
pub fn catch_early_hangups() -> std::io::Result<()> {
    let flag = EARLY_HANGUP.get_or_init(|| Arc::new(AtomicBool::new(false)));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(flag))?;
    Ok(())
}

/// The installed handlers; [`Signals::shutdown`] waits on them.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
    /// A SIGHUP came during start-up, before these handlers.
    early_hangup: bool,
}

impl Signals {
    /// Installs the handlers. Needs a tokio runtime with I/O enabled.
    pub fn install() -> std::io::Result<Self> {
        let hangup = signal(SignalKind::hangup())?;
        // Taken after tokio's handler is in place, so no SIGHUP falls between the two.
        let early_hangup = EARLY_HANGUP
            .get()
            .is_some_and(|flag| flag.swap(false, Ordering::SeqCst));
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup,
            early_hangup,
        })
    }

    /// Resolves on SIGINT or SIGTERM; logs every SIGHUP meanwhile.
    pub async fn shutdown(mut self) {
        if self.early_hangup {
            tracing::warn!(
                "SIGHUP received during start-up: this command has no config file to reload; \
                 still serving"
            );
        }
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
        if self.early_hangup {
            // The file may have changed after it was read at start-up.
            tracing::info!("SIGHUP received during start-up: reloading the config");
            let _ = reloads.send(());
        }
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
