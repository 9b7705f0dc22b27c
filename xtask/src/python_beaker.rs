//! The Python side of the Beaker interop tests: a venv under `target/beaker-compat/` with
//! Beaker 1.14.x and the packages its back ends need, made once and reused.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What the venv must hold (pip requirement specifiers).
const PACKAGES: &[&str] = &["Beaker>=1.14,<1.15", "redis", "cryptography"];
/// Checks an interpreter has them, and that the Beaker is a 1.14.
const CHECK: &str =
    "import beaker, redis, cryptography; assert beaker.__version__.startswith('1.14'), beaker.__version__";

fn ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The venv's interpreter, made (with pip, from PyPI) when missing or incomplete.
pub(crate) fn interpreter() -> Result<PathBuf, String> {
    let venv = crate::host::target_dir().join("beaker-compat/venv");
    let python = venv.join("bin/python");
    if python.exists() && ok(Command::new(&python).args(["-c", CHECK])) {
        return Ok(python);
    }
    eprintln!("== making the Python Beaker venv in {} ==", venv.display());
    let system = ["python3", "python"]
        .into_iter()
        .find(|p| ok(Command::new(p).arg("--version")))
        .ok_or("no python3 on PATH (apt-get install -y python3 python3-venv)")?;
    if !ok(Command::new(system).args(["-m", "venv", "--clear"]).arg(&venv)) {
        return Err(format!("`{system} -m venv` failed (apt-get install -y python3-venv)"));
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PACKAGES)
        .status()
        .map_err(|e| format!("pip: {e}"))?;
    if !pip.success() || !ok(Command::new(&python).args(["-c", CHECK])) {
        return Err(format!("pip could not install {}", PACKAGES.join(", ")));
    }
    Ok(python)
}
