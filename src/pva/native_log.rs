//! pvxs's own log lines (EPICS errlog) through tracing, once
//! [`route_native_log`](super::route_native_log) is called.
//!
//! A line looks like `2026-11-29T18:09:29.012033981 ERR pvxs.tcp.io connection ...`:
//! its level word picks the tracing level, its logger name becomes the `logger` field.

/// Called by the shim on errlog's thread, once per message; must not panic.
pub(crate) fn on_native_log(message: &[u8]) {
    let text = String::from_utf8_lossy(message);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut words = line.split_whitespace();
        let (level, logger) = match (words.next(), words.next(), words.next()) {
            // time, level, logger
            (Some(_), Some(level), Some(logger)) if logger.starts_with("pvxs") => (level, logger),
            _ => ("", ""),
        };
        let message = if logger.is_empty() {
            line
        } else {
            line.split_once(logger)
                .map_or(line, |(_, rest)| rest.trim())
        };
        match level {
            "CRIT" | "ERR" => tracing::error!(target: "pvxs", logger, "{message}"),
            "WARN" => tracing::warn!(target: "pvxs", logger, "{message}"),
            "DEBUG" => tracing::debug!(target: "pvxs", logger, "{message}"),
            _ => tracing::info!(target: "pvxs", logger, "{message}"),
        }
    }
}
