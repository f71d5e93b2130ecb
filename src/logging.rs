//! Log lines on stderr (tracing): `text` for people (the default), or `json`, one
//! object per line with every structured field a key (`pv`, `tag`, `session`,
//! `account`, ...) for a log collector (`[log] format`, `mxpva run --log-format`).
//!
//! `RUST_LOG` sets the levels (default `info`); `PVXS_LOG` sets pvxs's own loggers.

use crate::config::LogFormat;

/// Installs the global subscriber; call once, first thing.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            // Colour only on a terminal: a daemon's log goes to journald or a file.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(ansi).init();
        }
        LogFormat::Json => {
            // Fields at the top level of each object (`"pv": "..."`), the span's fields
            // under `span`.
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .init();
            // pvxs's own lines too, or they would be plain text among the objects.
            if let Err(e) = crate::pva::route_native_log() {
                tracing::warn!(error = %e, "pvxs log lines stay plain text");
            }
        }
    }
    if let Err(e) = crate::pva::configure_logging_from_env() {
        tracing::warn!(error = %e, "PVXS_LOG not applied");
    }
}
