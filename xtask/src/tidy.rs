//! `cargo xtask tidy`: every relative link in the Markdown files and every repository path
//! named in the docs or in code comments exists, so that a rename cannot leave a dangling
//! reference behind.
//!
//! A "repository path" is a word that starts with one of the top-level directories
//! ([`TOP_DIRS`]) followed by `/`, e.g. `crates/beaker-core/src/config/`. Words with a
//! placeholder (`*`, `<`, `{`, `…`, `NAME`-style
//! capitals after the last `/`) are patterns, not paths, and are skipped.

use std::path::{Path, PathBuf};

use crate::host::root;
use crate::Result;

/// Top-level directories whose paths are checked wherever they are named.
const TOP_DIRS: &[&str] = &["crates", "adapters", "examples", "docs", "xtask", "bench", "fuzz", ".ci", "shared"];
/// Directories never scanned (generated, vendored or data).
const SKIP_DIRS: &[&str] = &["target", ".git", "corpus", "artifacts", "node_modules"];

pub(crate) fn run() -> Result {
    let root = root();
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        let rel = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        let markdown = file.extension().is_some_and(|e| e == "md");
        for (n, line) in text.lines().enumerate() {
            let at = |what: String| format!("{rel}:{}: {what}", n + 1);
            let scanned = if markdown { line } else { comment_of(line) };
            if scanned.is_empty() {
                continue;
            }
            if markdown {
                for target in link_targets(line) {
                    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
                    let resolved =
                        if path.is_empty() { file.clone() } else { file.parent().unwrap_or(&root).join(path) };
                    if !resolved.exists() {
                        problems.push(at(format!("link to {target} points nowhere")));
                    } else if !anchor.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
                        let headings = std::fs::read_to_string(&resolved).unwrap_or_default();
                        if !anchors(&headings).iter().any(|a| a == anchor) {
                            problems.push(at(format!("link to {target}: no heading has the anchor #{anchor}")));
                        }
                    }
                }
            }
            for path in repo_paths(scanned) {
                if !root.join(path.trim_end_matches('/')).exists() {
                    problems.push(at(format!("names {path}, which does not exist")));
                }
            }
        }
    }
    problems.extend(quick_starts_match_examples(&root));
    if problems.is_empty() {
        eprintln!("tidy: {} files, every relative link and repository path exists", files.len());
        Ok(())
    } else {
        Err(format!("tidy: {} dangling references:\n  {}", problems.len(), problems.join("\n  ")))
    }
}

/// The README's quick starts are the `examples/*-basic` programs, verbatim below their
/// `//!` header, so that what a reader copies is what CI compiles and tests.
fn quick_starts_match_examples(root: &Path) -> Vec<String> {
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(root.join("examples")) else { return vec!["examples/ is missing".into()] };
    let mut problems = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with("-basic") {
            continue;
        }
        let main = e.path().join("src/main.rs");
        let code = std::fs::read_to_string(&main).unwrap_or_default();
        let body: Vec<&str> = code.lines().skip_while(|l| l.starts_with("//!")).skip_while(|l| l.is_empty()).collect();
        if body.is_empty() || !readme.contains(&body.join("\n")) {
            problems.push(format!("README.md: the quick start of examples/{name} differs from its src/main.rs"));
        }
    }
    problems
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) && !path.join("CACHEDIR.TAG").exists() {
                walk(&path, out);
            }
        } else if name.ends_with(".md") || name.ends_with(".rs") || name == "run" {
            out.push(path);
        }
    }
}

/// The comment part of a line of code (`//`, `//!`, `///`, or `#` in shell scripts).
fn comment_of(line: &str) -> &str {
    if let Some(i) = line.find("//") {
        // `https://` and the like are not comments.
        if !line[..i].ends_with(':') {
            return &line[i..];
        }
    }
    let t = line.trim_start();
    if t.starts_with('#') && !t.starts_with("#[") && !t.starts_with("#!") {
        return t;
    }
    ""
}

/// The anchors GitHub gives the headings of a Markdown text: lower case, punctuation
/// dropped, spaces as hyphens.
fn anchors(markdown: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let Some(title) = line.strip_prefix('#').filter(|_| !in_code) else { continue };
        let title = title.trim_start_matches('#').trim();
        out.push(
            title
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect(),
        );
    }
    out
}

/// The targets of Markdown links `[text](target)` that are relative paths or anchors.
fn link_targets(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split_whitespace().next().unwrap_or_default();
        let external = target.contains("://") || target.starts_with("mailto:");
        if !external && !target.is_empty() {
            out.push(target);
        }
        rest = &rest[end..];
    }
    out
}

/// Words of `text` that name a path inside the repository.
fn repo_paths(text: &str) -> Vec<&str> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "._-/".contains(c);
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        match (start, is_path_char(c)) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                let before = text[..s].chars().next_back();
                let after = text[i..].chars().next();
                if let Some(word) = candidate(&text[s..i], before, after) {
                    out.push(word);
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

fn candidate(word: &str, before: Option<char>, after: Option<char>) -> Option<&str> {
    let word = word.trim_end_matches(['.', ',']);
    let (top, rest) = word.split_once('/')?;
    // Part of a longer path (`/work/shared/…`, `~/.cargo/…`), a URL, or a pattern.
    if matches!(before, Some('/' | '~' | '$' | ':' | '@' | '=')) || matches!(after, Some('*' | '<' | '{' | '…' | '$'))
    {
        return None;
    }
    if !TOP_DIRS.contains(&top) || rest.contains("..") {
        return None;
    }
    let last = rest.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    if last.len() > 1 && last.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c == '-') {
        return None; // `fuzz/corpus/TARGET`
    }
    Some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_paths_links_and_comments() {
        assert_eq!(
            repo_paths("see `crates/beaker-core/src/config/`, and docs/security.md."),
            ["crates/beaker-core/src/config/", "docs/security.md"]
        );
        assert!(repo_paths("~/.cargo/registry/src and /work/shared/x.md and fuzz/corpus/TARGET").is_empty());
        assert!(repo_paths("https://github.com/beaker-rs/beaker-rs/tree/main/docs/guide").is_empty());
        assert_eq!(link_targets("[a](docs/x.md#y) [b](https://e.org) [c](#z)"), ["docs/x.md#y", "#z"]);
        assert_eq!(
            anchors("# Title\n## The `#[cached]` macro, and more\n```\n# not a heading\n```"),
            ["title", "the-cached-macro-and-more"]
        );
        assert_eq!(comment_of("let x = 1; // see docs/security.md"), "// see docs/security.md");
        assert_eq!(comment_of("let url = \"http://x\";"), "");
    }
}
