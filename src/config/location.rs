//! From byte offsets to `line:column` and to the dotted key at that place.

use std::fmt;
use std::sync::Arc;

/// Where a table is in a config file, shown `file:line:column`. The file's name is one
/// string shared by every table of the file: each PV's config holds a `Location`, so a
/// copy of the path each would be most of a PV's config (issue 23: memory per PV). A thin
/// pointer (`Arc<String>`, not `Arc<str>`): 16 bytes a location, not 24.
#[derive(Clone, PartialEq, Eq)]
pub struct Location {
    file: Arc<String>,
    line: u32,
    column: u32,
}

impl Location {
    /// `line` and `column` 1-based (a column counts characters).
    pub fn new(file: Arc<String>, line: usize, column: usize) -> Self {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Location {
            file,
            line: clamp(line),
            column: clamp(column),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

impl PartialEq<str> for Location {
    /// Whether `other` is this location as shown (`file:line:column`).
    fn eq(&self, other: &str) -> bool {
        let number = |s: &str, n: u32| !s.starts_with(['0', '+']) && s.parse() == Ok(n);
        other
            .strip_prefix(self.file.as_str())
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(l, c)| number(l, self.line) && number(c, self.column))
    }
}

impl PartialEq<&str> for Location {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

/// A config file's text, indexed by line.
pub(crate) struct SourceMap<'a> {
    src: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap { src, line_starts }
    }

    /// The whole text.
    pub(crate) fn text(&self) -> &'a str {
        self.src
    }

    fn line_index(&self, offset: usize) -> usize {
        // line_starts[0] is 0, so an offset that starts no line falls after line 0 at least.
        self.line_starts
            .binary_search(&offset)
            .unwrap_or_else(|i| i.saturating_sub(1))
    }

    /// 1-based line and column; the column counts characters, not bytes.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = self.line_index(offset);
        let start = self.line_start(line);
        let col = self.src.get(start..offset).map_or(0, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// Byte offset where `line` (0-based) starts; the end of the text past the last line.
    fn line_start(&self, line: usize) -> usize {
        self.line_starts
            .get(line)
            .copied()
            .unwrap_or(self.src.len())
    }

    fn line_text(&self, line: usize) -> &'a str {
        let (start, end) = (self.line_start(line), self.line_start(line + 1));
        self.src
            .get(start..end)
            .unwrap_or_default()
            .trim_end_matches(['\n', '\r'])
    }

    /// The dotted key path of the value or key at `offset`, such as `gateway.endpoint` or
    /// `pv[3].display.low` (`pv[N]` is the N-th `[[pv]]` table, counting from 1).
    ///
    /// This reads the text, not the parse tree, so it is best effort: it is used only to
    /// name the key in messages that come from the TOML parser.
    pub(crate) fn key_path(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.src.len());
        let target = self.line_index(offset);
        let mut arrays: Vec<(String, usize)> = Vec::new();
        let mut table: Vec<String> = Vec::new();
        for line in 0..=target {
            let text = self.line_text(line).trim_start();
            if let Some(rest) = text.strip_prefix("[[") {
                let name = header_name(rest);
                match arrays.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, count)) => *count += 1,
                    None => arrays.push((name.clone(), 1)),
                }
                table = header_path(&name, &arrays);
            } else if let Some(rest) = text.strip_prefix('[') {
                let name = header_name(rest);
                table = header_path(&name, &arrays);
            }
        }
        let text = self.line_text(target);
        let is_header = text.trim_start().starts_with('[');
        let mut keys = if is_header {
            Vec::new()
        } else {
            let col = offset.saturating_sub(self.line_start(target));
            let mut keys = line_keys(text, col);
            let mut back = target;
            while keys.is_empty() && back > 0 {
                // A continuation line of a multi-line array: the key is on an earlier line.
                back -= 1;
                let t = self.line_text(back);
                if t.trim_start().starts_with('[') {
                    break;
                }
                keys = line_keys(t, 0).into_iter().take(1).collect();
            }
            keys
        };
        let mut path = table;
        path.append(&mut keys);
        if path.is_empty() {
            None
        } else {
            Some(path.join("."))
        }
    }
}

fn header_name(rest: &str) -> String {
    // Up to the first `]`, so that an unclosed `[[pv]` still names `pv`.
    let inner = rest.split(']').next().unwrap_or("");
    inner
        .split('.')
        .map(|s| s.trim().trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(".")
}

fn header_path(name: &str, arrays: &[(String, usize)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut prefix = String::new();
    for seg in name.split('.') {
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(seg);
        match arrays.iter().find(|(n, _)| *n == prefix) {
            Some((_, count)) => out.push(format!("{seg}[{count}]")),
            None => out.push(seg.to_string()),
        }
    }
    out
}

/// The keys that enclose byte `col` of one line: outer inline-table keys first.
fn line_keys(line: &str, col: usize) -> Vec<String> {
    let bytes = line.as_bytes();
    let mut stack: Vec<Option<String>> = Vec::new();
    let mut current: Option<String> = None;
    let mut i = 0;
    while let Some(&b) = bytes.get(i).filter(|_| i <= col) {
        let (token, end) = match b {
            b'#' => break,
            b'"' | b'\'' => {
                let mut j = i + 1;
                while let Some(&c) = bytes.get(j).filter(|&&c| c != b) {
                    if b == b'"' && c == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                (
                    Some(line.get(i + 1..j.min(bytes.len())).unwrap_or("")),
                    j + 1,
                )
            }
            b'{' => {
                stack.push(current.take());
                (None, i + 1)
            }
            b'}' => {
                current = stack.pop().flatten();
                (None, i + 1)
            }
            b',' => {
                if !stack.is_empty() {
                    current = None;
                }
                (None, i + 1)
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                let mut j = i;
                while bytes
                    .get(j)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || b"_-.".contains(c))
                {
                    j += 1;
                }
                (Some(line.get(i..j).unwrap_or_default()), j)
            }
            _ => (None, i + 1),
        };
        if let Some(tok) = token {
            let rest = line.get(end.min(line.len())..).unwrap_or("");
            if rest.trim_start().starts_with('=') {
                current = Some(tok.to_string());
            }
        }
        i = end.max(i + 1);
    }
    let mut keys: Vec<String> = stack.into_iter().flatten().collect();
    keys.extend(current);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let m = SourceMap::new("a = 1\nbé = 2\n");
        assert_eq!(m.line_col(0), (1, 1));
        assert_eq!(m.line_col(6), (2, 1));
        assert_eq!(m.line_col(11), (2, 5));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Any text (quotes left open, multi-byte characters, CR/LF) and any offset,
        /// even past the end, give a position and a key path without panicking.
        #[test]
        fn any_text_and_offset_maps_without_panic(
            src in "[\\[\\]{}=,#\"'\\\\a-z\\.é \r\n]{0,80}",
            offset in 0usize..100,
        ) {
            let m = SourceMap::new(&src);
            let (line, col) = m.line_col(offset);
            proptest::prop_assert!(line >= 1 && col >= 1);
            proptest::prop_assert!(line <= src.lines().count().max(1) + 1);
            let _ = m.key_path(offset);
        }
    }

    #[test]
    fn key_paths() {
        let src = "[gateway]\nendpoint = \"x\"\n[[pv]]\nname = \"A\"\n[[pv]]\ntype = \"f\"\ndisplay = { low = 0, high = \"x\" }\n[pv.control]\nlow = 1\nchoices = [\n  \"a\",\n]\n";
        let m = SourceMap::new(src);
        let at = |needle: &str| m.key_path(src.find(needle).unwrap());
        assert_eq!(at("\"x\"\n[[").as_deref(), Some("gateway.endpoint"));
        assert_eq!(at("\"A\"").as_deref(), Some("pv[1].name"));
        assert_eq!(at("\"f\"").as_deref(), Some("pv[2].type"));
        assert_eq!(at("type").as_deref(), Some("pv[2].type"));
        assert_eq!(at("\"x\" }").as_deref(), Some("pv[2].display.high"));
        assert_eq!(at("0,").as_deref(), Some("pv[2].display.low"));
        assert_eq!(at("1\n").as_deref(), Some("pv[2].control.low"));
        assert_eq!(at("\"a\"").as_deref(), Some("pv[2].control.choices"));
        assert_eq!(at("[pv.control]").as_deref(), Some("pv[2].control"));
        let broken = SourceMap::new("[[pv]\nname = 1\n");
        assert_eq!(broken.key_path(5).as_deref(), Some("pv[1]"));
    }
}
