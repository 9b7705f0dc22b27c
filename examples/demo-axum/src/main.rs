//! The beaker-rs demo app on axum (see shared/DEMO-CONTRACT.md).
fn main() {}
