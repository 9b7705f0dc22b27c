//! The filters: [`with_session`] and [`with_state`].

use std::convert::Infallible;

use beaker_core::SessionManager;
use warp::http::header::COOKIE;
use warp::http::{HeaderMap, HeaderValue};
use warp::Filter;

use crate::session::Session;

/// Yields the request's session from `manager`. Never rejects and does no I/O: the
/// session loads on first use. Complete it with [`Session::finish`].
pub fn with_session(manager: SessionManager) -> impl Filter<Extract = (Session,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(move |headers: HeaderMap| {
        // Bytes, unchecked: core reads them (lossily) only if the session is used.
        Session::new(manager.start_bytes(headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes)), manager.clone())
    })
}

/// Yields a clone of `value` for every request: how handlers get application state such
/// as a cache manager.
pub fn with_state<T: Clone + Send + Sync + 'static>(
    value: T,
) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}
