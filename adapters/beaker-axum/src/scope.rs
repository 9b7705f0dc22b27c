//! How the [`Session`](crate::Session) extractor finds its request's session: the
//! request's [`LazySession`] is the thread's current slot ([`LazySession::enter`]) only
//! while the layer runs the inner service (its `call`, and each poll of its future).
//!
//! Why not the request extensions: axum and hyper already put three entries there, so a
//! fourth outgrows the extension table's first allocation and rehashes it, on every
//! request. And with the slot the session starts only when first extracted: a request
//! whose handler never asks for it costs two thread-local swaps per poll, no allocation.

use beaker_core::adapter::LazySession;
use beaker_core::Session;
use beaker_http::cookie_headers;
use http::HeaderMap;

/// A handle on the current request's session (started now from `headers` if this is
/// the first ask), if a layer made a request current on this thread.
pub(crate) fn session(headers: &HeaderMap) -> Option<Session> {
    LazySession::current_session(|| cookie_headers(headers))
}
