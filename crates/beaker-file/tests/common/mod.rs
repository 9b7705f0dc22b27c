//! What the file store's tests share: looking at the directory it writes.

use std::path::Path;

/// Every file under `dir`, recursively, as sorted paths relative to it.
pub(crate) fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The temporary and trash files under `dir`: what a finished operation must not leave.
pub(crate) fn leftovers(dir: &Path) -> Vec<String> {
    files(dir).into_iter().filter(|f| f.contains(".tmp.") || f.contains(".trash.")).collect()
}
