//! axum integration for beaker-rs sessions and caches. (work in progress)
