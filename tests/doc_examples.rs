//! Examples that cannot rot (issue 26): every example in README.md and docs/*.md is
//! checked against the code of today.
//!
//! - A ```` ```toml ```` block is a whole config: `mxpva check` must take it. The files it
//!   names come from `config/` (copied beside it) and the test's own directory.
//! - A ```` ```toml fragment ```` block is part of one: it must parse as TOML.
//! - A ```` ```text check-output ```` block shows `mxpva check` on the toml block before it:
//!   every line it shows (but `...`, which stands for lines left out) is in the real output.
//! - A block whose info string has `file=PATH` is that file of the repository, whole.
//! - Every `pvget`, `pvput`, `pvmonitor` or `pvinfo` of a `DEMO:` PV names a PV that
//!   `mxpva demo` serves (`mxpva check --pv-names` of config/demo.toml).
//! - Every relative link names a file that exists, and a `#section` of it that exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and docs/*.md, with their text.
fn pages() -> Vec<(PathBuf, String)> {
    let mut paths = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

struct Block {
    page: String,
    line: usize,
    info: String,
    text: String,
}

/// Fenced blocks (```` ``` ```` at the start of a line), with their info strings.
fn blocks(page: &Path, text: &str) -> Vec<Block> {
    let name = page.strip_prefix(root()).unwrap().display().to_string();
    let mut out = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match open.take() {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    open = Some((i + 1, info.trim().to_string(), String::new()));
                }
            }
            Some((start, info, mut body)) => {
                if line.starts_with("```") {
                    out.push(Block {
                        page: name.clone(),
                        line: start,
                        info,
                        text: body,
                    });
                } else {
                    body.push_str(line);
                    body.push('\n');
                    open = Some((start, info, body));
                }
            }
        }
    }
    assert!(open.is_none(), "{name}: a fenced block is not closed");
    out
}

fn check(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mxpva"))
        .arg("check")
        .args(args)
        .current_dir(dir)
        .env_remove("MXPVA_GATEWAY_API_KEY")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A fresh directory holding config/'s files, where a toml block is written as plant.toml.
fn config_dir(n: usize) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("doc_examples-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(root().join("config")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    dir
}

#[test]
fn every_toml_example_is_a_config_mxpva_check_takes_or_a_fragment_that_parses() {
    let mut whole = 0;
    let mut fragments = 0;
    let mut outputs = 0;
    let mut copies = 0;
    let mut failures = Vec::new();
    for (page, text) in pages() {
        let mut last_check: Option<String> = None;
        for b in blocks(&page, &text) {
            let at = format!("{}:{}", b.page, b.line);
            match b.info.as_str() {
                "toml" => {
                    whole += 1;
                    let dir = config_dir(whole);
                    std::fs::write(dir.join("plant.toml"), &b.text).unwrap();
                    let (ok, out) = check(&dir, &["--config", "plant.toml"]);
                    if !ok {
                        failures.push(format!("{at}: mxpva check refuses the example:\n{out}"));
                    }
                    last_check = Some(out);
                }
                "toml fragment" => {
                    fragments += 1;
                    if let Err(e) = b.text.parse::<toml::Table>() {
                        failures.push(format!("{at}: the fragment is not TOML: {e}"));
                    }
                }
                "text check-output" => {
                    outputs += 1;
                    let Some(real) = &last_check else {
                        failures.push(format!("{at}: check output with no toml block before it"));
                        continue;
                    };
                    let real: Vec<&str> = real.lines().map(str::trim_end).collect();
                    for shown in b.text.lines().map(str::trim_end) {
                        if shown == "..." || shown.starts_with("$ mxpva check") || shown.is_empty()
                        {
                            continue;
                        }
                        if !real.contains(&shown) {
                            failures.push(format!(
                                "{at}: the shown line {shown:?} is not in mxpva check's output:\n{}",
                                real.join("\n")
                            ));
                        }
                    }
                }
                other if other.split_whitespace().any(|w| w.starts_with("file=")) => {
                    // A copy of a file in the repository: it must be that file, whole.
                    copies += 1;
                    let file = other
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("file="))
                        .unwrap();
                    let real = std::fs::read_to_string(root().join(file)).unwrap_or_default();
                    if real != b.text {
                        failures.push(format!("{at}: the block is not {file} as it is"));
                    }
                }
                other if other.starts_with("toml") => {
                    failures.push(format!(
                        "{at}: unknown info string {other:?} (toml, toml fragment)"
                    ));
                }
                _ => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        whole >= 1 && outputs >= 1,
        "the README's first configuration and its check output"
    );
    eprintln!("{whole} whole configs checked, {fragments} fragments parsed, {outputs} outputs compared, {copies} copies of files compared");
}

/// `DEMO:` names after pvget, pvput, pvmonitor or pvinfo on one line.
fn demo_names_used(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut seen_cmd = false;
        for word in line.split(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == ',') {
            let w = word.trim_matches(|c| c == '"' || c == '\'');
            if ["pvget", "pvput", "pvmonitor", "pvinfo"].contains(&w) {
                seen_cmd = true;
            } else if seen_cmd && w.starts_with("DEMO:") {
                out.push(w.trim_end_matches(['.', ';', ':', ')']).to_string());
            }
        }
    }
    out
}

#[test]
fn every_demo_pv_an_example_reads_or_writes_is_served_by_the_demo() {
    let (ok, out) = check(&root(), &["--pv-names", "--config", "config/demo.toml"]);
    assert!(ok, "{out}");
    let served: BTreeSet<&str> = out.lines().map(str::trim).collect();
    assert!(served.contains("DEMO:Tank001:Level"), "{out}");
    let mut used = 0;
    let mut missing = Vec::new();
    for (page, text) in pages() {
        for name in demo_names_used(&text) {
            used += 1;
            if !served.contains(name.as_str()) {
                missing.push(format!(
                    "{}: {name}",
                    page.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not served by mxpva demo:\n{}",
        missing.join("\n")
    );
    assert!(used >= 5, "the README's demo commands were found ({used})");
}

/// GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.insert(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn every_relative_link_names_a_file_and_section_that_exist() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for (page, text) in pages() {
        let dir = page.parent().unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            checked += 1;
            let (file, section) = match target.split_once('#') {
                Some((f, s)) => (f, Some(s)),
                None => (target, None),
            };
            let linked = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            let name = page.strip_prefix(root()).unwrap().display().to_string();
            if !linked.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if let Some(s) = section {
                let text = std::fs::read_to_string(&linked).unwrap_or_default();
                if !anchors(&text).contains(s) {
                    broken.push(format!("{name}: {target}: no such section"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    assert!(checked >= 10, "links were found ({checked})");
}
