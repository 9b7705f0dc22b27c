//! `cargo xtask publish-check`: every publishable crate (every workspace member without
//! `publish = false`) has the metadata crates.io and docs.rs need, ships its README and
//! both licence files, and packages with `cargo package`.
//!
//! The crates are packaged in one `cargo package -p … -p …` call: cargo orders them by
//! dependency and resolves each one's unpublished siblings from the crates packaged before
//! it, so no crate needs to be on crates.io yet. `--verify` also builds every packaged
//! crate from its `.crate` file (slow: a separate build per crate).

use serde_json::Value;

use crate::host::root;
use crate::{cargo, run, Result};

/// `cargo xtask publish-check` arguments.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Build each packaged crate from its `.crate` file, as `cargo publish` would.
    #[arg(long)]
    pub(crate) verify: bool,
}

/// Fields every published crate must set.
const REQUIRED: &[&str] =
    &["description", "license", "repository", "homepage", "documentation", "readme", "rust_version"];
/// Files every `.crate` must contain.
const SHIPPED: &[&str] = &["README.md", "LICENSE-MIT", "LICENSE-APACHE"];

pub(crate) fn run_check(args: &Args) -> Result {
    let crates = publishable()?;
    let mut problems = Vec::new();
    for p in &crates {
        problems.extend(manifest_problems(p));
    }
    let versions: std::collections::BTreeSet<&str> = crates.iter().filter_map(|p| p["rust_version"].as_str()).collect();
    if versions.len() > 1 {
        problems.push(format!("the publishable crates state different rust-versions: {versions:?}; keep one"));
    }
    let names: Vec<&str> = crates.iter().filter_map(|p| p["name"].as_str()).collect();
    for name in &names {
        let listed = cargo_output(&["package", "--list", "--allow-dirty", "--locked", "-p", name])?;
        for file in SHIPPED {
            if !listed.lines().any(|l| l == *file) {
                problems.push(format!("{name}: the package does not contain {file}"));
            }
        }
    }
    if !problems.is_empty() {
        return Err(format!("publish-check:\n  {}", problems.join("\n  ")));
    }
    let mut cmd = cargo();
    cmd.current_dir(root()).args(["package", "--locked", "--allow-dirty"]);
    if !args.verify {
        cmd.arg("--no-verify");
    }
    for name in &names {
        cmd.args(["-p", name]);
    }
    run(&mut cmd)?;
    eprintln!("publish-check: {} crates package cleanly: {}", names.len(), names.join(", "));
    Ok(())
}

/// The workspace members that may be published, as `cargo metadata` describes them.
fn publishable() -> Result<Vec<Value>> {
    let text = cargo_output(&["metadata", "--no-deps", "--format-version", "1", "--locked"])?;
    let meta: Value = serde_json::from_str(&text).map_err(|e| format!("cargo metadata: {e}"))?;
    let packages = meta["packages"].as_array().ok_or("cargo metadata: no packages")?;
    // `publish` is null when unrestricted and `[]` for `publish = false`.
    Ok(packages.iter().filter(|p| !p["publish"].as_array().is_some_and(Vec::is_empty)).cloned().collect())
}

fn manifest_problems(p: &Value) -> Vec<String> {
    let name = p["name"].as_str().unwrap_or("?");
    let mut problems: Vec<String> = REQUIRED
        .iter()
        .filter(|f| p[**f].as_str().is_none_or(str::is_empty))
        .map(|f| format!("{name}: Cargo.toml sets no `{}`", f.replace('_', "-")))
        .collect();
    for list in ["keywords", "categories"] {
        if p[list].as_array().is_none_or(Vec::is_empty) {
            problems.push(format!("{name}: Cargo.toml sets no `{list}`"));
        }
    }
    if p["repository"].as_str().is_some_and(|r| r.contains("example.invalid")) {
        problems.push(format!("{name}: `repository` is a placeholder"));
    }
    let docs_rs = &p["metadata"]["docs"]["rs"];
    if docs_rs["all-features"] != Value::Bool(true) {
        problems.push(format!("{name}: [package.metadata.docs.rs] must set all-features = true"));
    }
    if !docs_rs["rustdoc-args"].as_array().is_some_and(|a| a.iter().any(|v| v == "docsrs")) {
        problems.push(format!("{name}: [package.metadata.docs.rs] must pass rustdoc-args = [\"--cfg\", \"docsrs\"]"));
    }
    problems
}

fn cargo_output(args: &[&str]) -> Result<String> {
    let out = cargo().current_dir(root()).args(args).output().map_err(|e| format!("cargo {}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!("cargo {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
