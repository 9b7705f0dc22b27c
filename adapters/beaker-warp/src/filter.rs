//! The filters: [`with_session`] and [`with_state`].

use std::convert::Infallible;

use beaker_core::SessionManager;
use warp::http::header::COOKIE;
use warp::http::HeaderMap;
use warp::Filter;

use crate::session::Session;

/// Yields the request's session from `manager`. Never rejects and does no I/O: the
/// session loads on first use. Complete it with [`Session::finish`].
pub fn with_session(manager: SessionManager) -> impl Filter<Extract = (Session,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(move |headers: HeaderMap| {
        let cookies = headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok());
        Session::new(manager.start(cookies), manager.clone())
    })
}

/// Yields a clone of `value` for every request: how handlers get application state such
/// as a cache manager.
pub fn with_state<T: Clone + Send + Sync + 'static>(
    value: T,
) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}
