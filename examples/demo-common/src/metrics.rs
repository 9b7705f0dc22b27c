//! `GET /metrics`: the library's `beaker_*` counters in Prometheus text format, rendered by
//! the demo's own route (the exporter runs no listener of its own).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::routes::Reply;

/// The Prometheus text exposition format's content type.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder, once. Call it
/// before building the session and cache managers: they register their counters when
/// built, with whatever recorder is installed then.
pub fn install_metrics() {
    HANDLE.get_or_init(|| match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => Some(handle),
        Err(e) => {
            eprintln!("warning: no metrics at /metrics: {e}");
            None
        }
    });
}

/// The reply of `GET /metrics`.
pub(crate) fn render() -> Reply {
    match HANDLE.get().and_then(Option::as_ref) {
        Some(handle) => {
            Reply { status: 200, content_type: PROMETHEUS, body: handle.render().into(), location: None, headers: &[] }
        }
        None => Reply::status(503, "metrics recorder not installed"),
    }
}
