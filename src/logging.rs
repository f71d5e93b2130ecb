//! Log lines on stderr (tracing): `text` for people (the default), or `json`, one
//! object per line with every structured field a key (`pv`, `tag`, `session`,
//! `account`, ...) for a log collector (`[log] format`, `mxpva run --log-format`).
//!
//! `RUST_LOG` sets the levels (default `info`); `PVXS_LOG` sets pvxs's own loggers.
//!
//! Clients supply some fields (an account, a channel name, a string put): no line they
//! give can be taken for a line of mxpva's. Every line is written through
//! [`escape_controls`], which escapes each control character in it but the final newline,
//! in either format.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Write;

use crate::config::LogFormat;

/// stderr, each formatted event written with its control characters escaped. tracing's
/// formatter hands a writer one whole event (its line and newline) in one `write_all`.
struct EscapingStderr {
    /// ANSI colours are on: their SGR sequences (`ESC [ ... m`) stay.
    ansi: bool,
}

impl Write for EscapingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let line = escape_controls(buf, self.ansi);
        let held = HELD.with(|held| -> std::io::Result<bool> {
            match held.try_borrow_mut() {
                Ok(mut held) if held.on => {
                    held.buf.extend_from_slice(&line);
                    if held.buf.len() >= HELD_MAX {
                        held.write()?;
                    }
                    Ok(true)
                }
                _ => Ok(false),
            }
        })?;
        if held {
            return Ok(());
        }
        std::io::stderr().write_all(&line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

thread_local! {
    /// The lines this thread logs while [`held`] runs, not written yet.
    static HELD: RefCell<Held> = const {
        RefCell::new(Held {
            on: false,
            buf: Vec::new(),
        })
    };
}

/// See [`held`].
struct Held {
    on: bool,
    buf: Vec<u8>,
}

impl Held {
    /// Writes the lines held, in one write.
    fn write(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = std::io::stderr().write_all(&self.buf);
        self.buf.clear();
        written
    }
}

/// Lines held past this many bytes are written at once, without waiting for the end of
/// [`held`].
const HELD_MAX: usize = 64 << 10;

/// Runs `f` with the log lines this thread writes meanwhile held, and writes them when it
/// returns (or unwinds), each whole and in order, with one write instead of one per line:
/// the bridge logs a turn's audit records this way. Lines of other threads are not held;
/// a nested call holds with the outer one.
pub fn held<R>(f: impl FnOnce() -> R) -> R {
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            HELD.with(|held| {
                if let Ok(mut held) = held.try_borrow_mut() {
                    held.on = false;
                    // A line that cannot be written is lost, as any other (see `init`).
                    let _ = held.write();
                }
            });
        }
    }
    let outer = HELD.with(|held| match held.try_borrow_mut() {
        Ok(mut held) if !held.on => {
            held.on = true;
            true
        }
        _ => false,
    });
    let _release = outer.then_some(Release);
    f()
}

/// `line` with each control character (C0, DEL, C1, U+2028, U+2029) but a final `\n`
/// written as an escape that JSON reads too (`\n`, `\r`, `\t`, `\u001b`), so that one
/// event stays one line; with `ansi`, colour sequences (`ESC [ digits ; m`) stay as they
/// are. Invalid UTF-8 becomes U+FFFD.
pub fn escape_controls(line: &[u8], ansi: bool) -> Cow<'_, [u8]> {
    let (body, newline) = match line.strip_suffix(b"\n") {
        Some(body) => (body, true),
        None => (line, false),
    };
    // Most lines are printable ASCII: nothing to escape, and valid UTF-8.
    if body.iter().all(|b| (b' '..=b'~').contains(b)) {
        return Cow::Borrowed(line);
    }
    let text = String::from_utf8_lossy(body);
    let escaped = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if matches!(text, Cow::Borrowed(_)) && !text.chars().any(escaped) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text.as_ref();
    while let Some(c) = rest.chars().next() {
        if ansi && c == '\u{1b}' {
            if let Some(len) = sgr_len(rest) {
                out.push_str(rest.get(..len).unwrap_or_default());
                rest = rest.get(len..).unwrap_or_default();
                continue;
            }
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if escaped(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
        rest = rest.get(c.len_utf8()..).unwrap_or_default();
    }
    if newline {
        out.push('\n');
    }
    Cow::Owned(out.into_bytes())
}

/// The length of the ANSI colour sequence `ESC [ (digits | ;)* m` at the start of `s`.
fn sgr_len(s: &str) -> Option<usize> {
    let params = s.strip_prefix("\u{1b}[")?;
    let n = params
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';')
        .count();
    (params.as_bytes().get(n) == Some(&b'm')).then_some(2 + n + 1)
}

/// Installs the global subscriber; call once, first thing.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for text on a terminal: a daemon's log goes to journald or a file.
    let ansi = format == LogFormat::Text
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    // A line that cannot be written (a closed pipe, a full disk) is lost, not reported:
    // tracing-subscriber would report it with `eprintln!`, which panics when stderr is
    // what failed, and would stop the bridge (tests/signals.rs).
    // tracing-subscriber escapes a message's terminal controls itself, char by char: a
    // measurable part of the bridge thread's time, on each put's audit line. Without colour,
    // `EscapingStderr` escapes every control character of the whole line, a superset;
    // with colour it lets colour sequences through, so tracing's own escaping stays on.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_ansi_sanitization(ansi)
        .with_writer(move || EscapingStderr { ansi });
    match format {
        LogFormat::Text => {
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
        }
    }
    // pvxs's own lines too: else they would be plain text among the JSON objects, and
    // in either format a channel name a client chose would reach stderr unescaped.
    if let Err(e) = crate::pva::route_native_log() {
        tracing::warn!(error = %e, "pvxs log lines stay plain text");
    }
    if let Err(e) = crate::pva::configure_logging_from_env() {
        tracing::warn!(error = %e, "PVXS_LOG not applied");
    }
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    fn esc(s: &str, ansi: bool) -> String {
        String::from_utf8(escape_controls(s.as_bytes(), ansi).into_owned()).unwrap()
    }

    #[test]
    fn one_event_stays_one_line() {
        assert_eq!(esc("plain line\n", false), "plain line\n");
        assert_eq!(
            esc("account=bob\n2026-01-01T00:00:00Z INFO fake\r\n", false),
            "account=bob\\n2026-01-01T00:00:00Z INFO fake\\r\n"
        );
        assert_eq!(
            esc("a\tb\u{7f}c\u{85}d\u{2028}e", false),
            "a\\tb\\u007fc\\u0085d\\u2028e"
        );
        assert_eq!(
            esc("\u{1b}[31mred\u{1b}[0m x\u{1b}]0;t\n", true),
            "\u{1b}[31mred\u{1b}[0m x\\u001b]0;t\n"
        );
        assert_eq!(esc("\u{1b}[31mred\n", false), "\\u001b[31mred\n");
        // What JSON escapes read back as the same string.
        let line = esc("{\"a\":\"x\u{7f}\u{2028}y\"}\n", false);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["a"], "x\u{7f}\u{2028}y");
        assert_eq!(esc("bad \u{fffd}", false), "bad \u{fffd}");
        assert_eq!(
            String::from_utf8_lossy(&escape_controls(b"x\xff\n\n", false)),
            "x\u{fffd}\\n\n"
        );
    }
}
