//! `#[cached]` memoisation for beaker-rs cache regions (work in progress).
