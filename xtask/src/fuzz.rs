//! `cargo xtask fuzz TARGET|all [--seconds N]`: bounded cargo-fuzz runs over the seed corpus
//! kept in `fuzz/corpus/TARGET` (new inputs go to a scratch directory, so the repository's
//! corpus stays small and reviewed).

use std::path::Path;
use std::process::Command;

use crate::Result;

/// Every fuzz target in `fuzz/fuzz_targets`.
pub(crate) const TARGETS: &[&str] =
    &["cookie_header", "cookie_store", "record_decode", "config_parser", "beaker_payload", "beaker_cookie"];

/// `cargo xtask fuzz` arguments.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// A target in `fuzz/fuzz_targets`, or `all`.
    target: String,
    /// Seconds per target.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

pub(crate) fn run(args: &Args) -> Result {
    let (target, seconds) = (&args.target, args.seconds);
    ensure_cargo_fuzz()?;
    let targets: Vec<&str> = if target == "all" {
        TARGETS.to_vec()
    } else if TARGETS.contains(&target.as_str()) {
        vec![target.as_str()]
    } else {
        return Err(format!("unknown fuzz target {target}; targets: {}", TARGETS.join(", ")));
    };
    for t in targets {
        let scratch = std::env::temp_dir().join(format!("beaker-fuzz-{t}"));
        std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
        let seeds = Path::new("fuzz/corpus").join(t);
        crate::run(
            Command::new("cargo")
                // cargo-fuzz needs -Z flags; the stable toolchain accepts them with this switch.
                .env("RUSTC_BOOTSTRAP", "1")
                .args(["fuzz", "run", "--fuzz-dir", "fuzz", t])
                .arg(&scratch)
                .arg(&seeds)
                .args(["--", &format!("-max_total_time={seconds}"), "-rss_limit_mb=2048", "-max_len=65536"])
                // No input of at most 64 KiB may ask for one allocation over 128 MiB.
                .arg("-malloc_limit_mb=128")
                .arg("-print_final_stats=1"),
        )?;
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> Result {
    let ok = Command::new("cargo").args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if ok {
        return Ok(());
    }
    eprintln!("cargo-fuzz is not installed; installing it from crates.io");
    crate::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}
