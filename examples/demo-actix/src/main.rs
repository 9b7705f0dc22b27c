//! The beaker-rs demo app on actix (see shared/DEMO-CONTRACT.md).
fn main() {}
