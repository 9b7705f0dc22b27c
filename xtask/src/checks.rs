//! Repository rules as commands: formatting, lints, docs and the purity of beaker-core.

use std::process::Command;

use crate::{cargo, run, Result, BUILD_FLAGS};

/// Crates beaker-core must never depend on (DESIGN.md, Invariants).
const FORBIDDEN_IN_CORE: &[&str] = &["tokio", "hyper", "http", "axum", "warp", "redis", "sqlx"];
const FORBIDDEN_PREFIXES: &[&str] = &["actix", "rocket", "sqlx-", "hyper-", "tokio-"];

pub(crate) fn lint() -> Result {
    core_purity()?;
    crate::tidy::run()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().arg("clippy").args(BUILD_FLAGS).args(["--", "-D", "warnings"]))?;
    run(cargo()
        .args(["doc", "--workspace", "--no-deps", "--all-features", "--locked"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    crate::publish::run_check(&crate::publish::Args { verify: false })
}

/// `cargo tree -p beaker-core -e normal` must name no framework, http crate or runtime.
pub(crate) fn core_purity() -> Result {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["tree", "-p", "beaker-core", "-e", "normal", "--prefix", "none", "--all-features"])
        .output()
        .map_err(|e| format!("cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo tree failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    let bad: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| FORBIDDEN_IN_CORE.contains(name) || FORBIDDEN_PREFIXES.iter().any(|p| name.starts_with(p)))
        .collect();
    if bad.is_empty() {
        eprintln!("core purity: beaker-core depends on no framework, http crate or runtime");
        Ok(())
    } else {
        Err(format!("beaker-core must not depend on {bad:?} (DESIGN.md §2)"))
    }
}
