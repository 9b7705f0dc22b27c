//! The framework-independent half of the beaker-rs demo apps (`docs/demo-contract.md`).
//!
//! Every route's behaviour lives here, once: a demo app only translates its framework's
//! request into these calls and the returned [`Reply`] into its framework's response, so
//! that the four demos answer byte for byte the same.
//!
//! Session errors are returned as [`beaker_core::Error`] so that each demo maps them with
//! its adapter's own error type (503 for a store outage, 413 for an oversized session).

mod app;
mod app_page;
mod metrics;
mod page;
mod routes;
mod startup;

pub use metrics::{install_metrics, PROMETHEUS};
pub use page::index as index_page;
pub use routes::{Demo, Reply, CACHED_PAGE_HEADERS, DEMO_REGION, HTML};
pub use startup::{
    announce, default_cache_config, exit_with, shutdown_signal, startup_or_exit, Startup, StartupError,
    DEFAULT_SESSION_URL,
};
