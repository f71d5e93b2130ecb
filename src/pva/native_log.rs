//! pvxs's own log lines (EPICS errlog) through tracing, once
//! [`route_native_log`](super::route_native_log) is called (at start, in either log
//! format, so that they are escaped as mxpva's own lines are: `crate::logging`).
//!
//! A line looks like `2026-11-29T18:09:29.012033981 ERR pvxs.tcp.io connection ...`:
//! its level word picks the tracing level, its logger name becomes the `logger` field.
//! A line that does not start so continues the one before it (a channel name a client
//! chose may hold a newline): it joins that event, so that no client can start a line of
//! its own.

/// Called by the shim on errlog's thread, once per message; must not panic.
pub(crate) fn on_native_log(message: &[u8]) {
    for (level, logger, message) in records(&String::from_utf8_lossy(message)) {
        match level {
            "CRIT" | "ERR" => tracing::error!(target: "pvxs", logger, "{message}"),
            "WARN" => tracing::warn!(target: "pvxs", logger, "{message}"),
            "DEBUG" => tracing::debug!(target: "pvxs", logger, "{message}"),
            _ => tracing::info!(target: "pvxs", logger, "{message}"),
        }
    }
}

/// The records of an errlog message: (level, logger, text), a record's continuation
/// lines joined to it with `\n`.
fn records(text: &str) -> Vec<(&str, &str, String)> {
    let mut out: Vec<(&str, &str, String)> = Vec::new();
    for line in text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
    {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            // time, level, logger
            (Some(_), Some(level), Some(logger)) if logger.starts_with("pvxs") => {
                let message = line
                    .split_once(logger)
                    .map_or(line, |(_, rest)| rest.trim());
                out.push((level, logger, message.to_string()));
            }
            _ => match out.last_mut() {
                Some((_, _, message)) => {
                    message.push('\n');
                    message.push_str(line);
                }
                None => out.push(("", "", line.trim().to_string())),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::records;

    #[test]
    fn a_line_that_is_not_a_record_continues_the_one_before() {
        let text = "2026-11-29T18:09:29.012 ERR pvxs.tcp.io Client 1.2.3.4 onOp() error \"a\n\
                    2026-11-29T18:09:30.000 INFO mxpva::bridge: forged\"\n\
                    2026-11-29T18:09:31.000 WARN pvxs.udp.io next\n";
        let r = records(text);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].0, "ERR");
        assert_eq!(r[0].1, "pvxs.tcp.io");
        assert!(r[0]
            .2
            .contains("\"a\n2026-11-29T18:09:30.000 INFO mxpva::bridge: forged\""));
        assert_eq!(
            (r[1].0, r[1].1, r[1].2.as_str()),
            ("WARN", "pvxs.udp.io", "next")
        );
    }

    #[test]
    fn text_without_a_header_is_one_record() {
        let r = records("asLib: something\nmore\n");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].2, "asLib: something\nmore");
    }
}
