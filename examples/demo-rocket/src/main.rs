//! The beaker-rs demo app on rocket (see shared/DEMO-CONTRACT.md).
fn main() {}
