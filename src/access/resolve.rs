//! HAG hosts resolved before asLib sees the file.
//!
//! asLib resolves each HAG host as it parses (`asCheckClientIP = 1`), under the lock that
//! the read gate takes on pvxs's event loop: a slow resolver would stop serving. So mxpva
//! finds the HAG hosts itself (asLib's own tokens: `HAG(name) { host, "host" }`), resolves
//! them off pvxs's threads and off the bridge's task, and hands asLib the text with each
//! host written as the address asLib would have made of it; asLib then loads it without
//! resolving (`cpp/access.cpp`). A host that does not resolve is written
//! `"unresolved:<host>"`, what asLib itself keeps for one: it matches no client.

use std::collections::HashMap;
use std::ops::Range;

/// One host of a `HAG(name) { ... }` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HagHost {
    /// The HAG it is in.
    pub hag: String,
    /// The host as asLib takes it (a quoted one without its quotes, escapes as written).
    pub host: String,
    /// Its line in the file (from 1).
    pub line: usize,
    /// Where its token is in the text.
    range: Range<usize>,
}

/// A file with its HAG hosts resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The text for asLib: each HAG host replaced by its address.
    pub text: String,
    /// Hosts that did not resolve (each one once, in the order of the file).
    pub unresolved: Vec<HagHost>,
    /// How many HAG hosts the file has.
    pub hosts: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// `HAG`, as asLib's scanner takes it (a whole word).
    Hag,
    /// A bare word or a quoted string (its content).
    Str(String),
    /// Digits only: asLib's INTEGER, never a host.
    Int,
    Punct(u8),
    Other,
}

fn is_name(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_-+:.[]<>;".contains(&b)
}

/// asLib's tokens (asLib_lex.l), with where each is and its line.
fn tokens(text: &str) -> Vec<(Tok, Range<usize>, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while let Some(&c) = b.get(i) {
        let start = i;
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' => {
                while b.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                loop {
                    match b.get(i) {
                        None | Some(b'\n') => {
                            // A string with no closing quote: asLib refuses the file.
                            out.push((Tok::Other, start..i, line));
                            break;
                        }
                        Some(b'\\') => {
                            if matches!(b.get(i + 1), None | Some(b'\n')) {
                                i += 1;
                                out.push((Tok::Other, start..i, line));
                                break;
                            }
                            i += 2;
                        }
                        Some(b'"') => {
                            let content = text.get(start + 1..i).unwrap_or("").to_string();
                            i += 1;
                            out.push((Tok::Str(content), start..i, line));
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            c if is_name(c) => {
                while b.get(i).copied().is_some_and(is_name) {
                    i += 1;
                }
                let word = text.get(start..i).unwrap_or("");
                let tok = if word == "HAG" {
                    Tok::Hag
                } else if word.bytes().all(|b| b.is_ascii_digit()) {
                    Tok::Int
                } else {
                    Tok::Str(word.to_string())
                };
                out.push((tok, start..i, line));
            }
            b'(' | b')' | b'{' | b'}' | b',' => {
                i += 1;
                out.push((Tok::Punct(c), start..i, line));
            }
            _ => {
                i += 1;
                out.push((Tok::Other, start..i, line));
            }
        }
    }
    out
}

/// The hosts of every `HAG(name) { host, ... }` of `text`. (`HAG(a, b)` inside a RULE
/// names groups, not hosts, and is never followed by `{`.)
pub fn hag_hosts(text: &str) -> Vec<HagHost> {
    let toks = tokens(text);
    let mut out = Vec::new();
    let mut k = 0;
    while k < toks.len() {
        let head = (
            toks.get(k).map(|t| &t.0),
            toks.get(k + 1).map(|t| &t.0),
            toks.get(k + 2).map(|t| &t.0),
            toks.get(k + 3).map(|t| &t.0),
            toks.get(k + 4).map(|t| &t.0),
        );
        let (
            Some(Tok::Hag),
            Some(Tok::Punct(b'(')),
            Some(Tok::Str(hag)),
            Some(Tok::Punct(b')')),
            Some(Tok::Punct(b'{')),
        ) = head
        else {
            k += 1;
            continue;
        };
        k += 5;
        // host (',' host)* '}'
        while let Some((Tok::Str(host), range, line)) = toks.get(k) {
            out.push(HagHost {
                hag: hag.clone(),
                host: host.clone(),
                line: *line,
                range: range.clone(),
            });
            k += 1;
            if !matches!(toks.get(k), Some((Tok::Punct(b','), _, _))) {
                break;
            }
            k += 1;
        }
    }
    out
}

/// `text` with every HAG host replaced by what `resolve` makes of it (an address, or
/// `None` when it does not resolve). Each distinct host is resolved once; up to 16 at a
/// time, each on a thread of its own, so a slow resolver costs its timeout once, not once
/// per host.
pub fn resolve_hags(text: &str, resolve: fn(&str) -> Option<String>) -> Resolved {
    let hosts = hag_hosts(text);
    let mut names: Vec<&str> = Vec::new();
    for h in &hosts {
        if !names.contains(&h.host.as_str()) {
            names.push(&h.host);
        }
    }
    let mut found: HashMap<&str, Option<String>> = HashMap::new();
    for chunk in names.chunks(16) {
        std::thread::scope(|s| {
            let running: Vec<_> = chunk
                .iter()
                .map(|name| (*name, s.spawn(move || resolve(name))))
                .collect();
            for (name, thread) in running {
                found.insert(name, thread.join().unwrap_or(None));
            }
        });
    }
    let mut out = String::with_capacity(text.len() + 16 * hosts.len());
    let mut at = 0;
    let mut unresolved: Vec<HagHost> = Vec::new();
    for h in &hosts {
        out.push_str(text.get(at..h.range.start).unwrap_or(""));
        match found.get(h.host.as_str()).cloned().flatten() {
            Some(addr) => {
                out.push('"');
                out.push_str(&addr);
                out.push('"');
            }
            None => {
                out.push_str("\"unresolved:");
                out.push_str(&h.host);
                out.push('"');
                if !unresolved.iter().any(|u| u.host == h.host) {
                    unresolved.push(h.clone());
                }
            }
        }
        at = h.range.end;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    Resolved {
        text: out,
        unresolved,
        hosts: hosts.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(host: &str) -> Option<String> {
        match host {
            "a.example" => Some("10.0.0.1".into()),
            "b.example" => Some("10.0.0.2".into()),
            "127.0.0.1" => Some("127.0.0.1".into()),
            "Weird\\\"Name" => Some("10.0.0.3".into()),
            _ => None,
        }
    }

    #[test]
    fn hag_hosts_are_found_as_asl_reads_them() {
        let text = "# HAG(c) { commented.example }\n\
                    HAG(one) { a.example, \"b.example\" }\n\
                    HAGX(no) { x.example }\n\
                    HAG (two)\n{\n  127.0.0.1 ,\n  nowhere.example # end\n}\n\
                    ASG(G) { RULE(1, READ) { HAG(one, two) } }\n\
                    HAG(bad) { 1234 }\n";
        let hosts: Vec<(String, String, usize)> = hag_hosts(text)
            .into_iter()
            .map(|h| (h.hag, h.host, h.line))
            .collect();
        assert_eq!(
            hosts,
            vec![
                ("one".into(), "a.example".into(), 2),
                ("one".into(), "b.example".into(), 2),
                ("two".into(), "127.0.0.1".into(), 6),
                ("two".into(), "nowhere.example".into(), 7),
            ]
        );
    }

    #[test]
    fn hosts_become_addresses_and_the_rest_of_the_text_stays() {
        let text = "HAG(one) { a.example, \"b.example\" } # a.example\n\
                    HAG(two) { nowhere.example, a.example, \"Weird\\\"Name\" }\n\
                    ASG(G) { RULE(1, READ) { HAG(one) } }\n";
        let r = resolve_hags(text, fake);
        assert_eq!(
            r.text,
            "HAG(one) { \"10.0.0.1\", \"10.0.0.2\" } # a.example\n\
             HAG(two) { \"unresolved:nowhere.example\", \"10.0.0.1\", \"10.0.0.3\" }\n\
             ASG(G) { RULE(1, READ) { HAG(one) } }\n"
        );
        assert_eq!(r.hosts, 5);
        assert_eq!(r.unresolved.len(), 1);
        assert_eq!(r.unresolved[0].host, "nowhere.example");
        assert_eq!(r.unresolved[0].hag, "two");
        assert_eq!(r.unresolved[0].line, 2);
    }

    #[test]
    fn a_file_with_no_hag_or_a_broken_string_is_left_as_it_is() {
        let text = "ASG(G) { RULE(1, READ) }\nHAG(x) { \"open\n}\n";
        let r = resolve_hags(text, fake);
        assert_eq!(r.text, text);
        assert_eq!(r.hosts, 0);
        // Non-ASCII text passes through whole.
        let text = "# é\nHAG(é) { a.example }\n";
        assert_eq!(resolve_hags(text, fake).text, text);
    }
}
