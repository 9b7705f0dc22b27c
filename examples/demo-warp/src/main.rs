//! The beaker-rs demo app on warp (see shared/DEMO-CONTRACT.md).
fn main() {}
