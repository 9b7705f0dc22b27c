//! The filters: [`with_session`] and [`with_state`].

use std::convert::Infallible;

use beaker_core::adapter::LazySession;
use beaker_core::SessionManager;
use beaker_http::cookie_headers;
use warp::http::HeaderMap;
use warp::Filter;

use crate::session::Session;

/// Yields the request's session. Never rejects and does no I/O: the session loads on
/// first use.
///
/// Under a [`SessionService`](crate::SessionService) (or its [`SessionLayer`](crate::SessionLayer)) this is the
/// layer's session for the request, which the layer finishes after the reply (`manager`
/// is not used then). Without a layer, the session starts from `manager` and the handler
/// completes it with [`Session::finish`].
pub fn with_session(manager: SessionManager) -> impl Filter<Extract = (Session,), Error = Infallible> + Clone {
    warp::ext::optional::<beaker_core::Session>().and(warp::header::headers_cloned()).map(
        move |extension: Option<beaker_core::Session>, headers: HeaderMap| {
            // The layer's slot while its future is polled; its extension when a service
            // in between moved the request to another task; otherwise no layer at all.
            match LazySession::current_session(|| cookie_headers(&headers)).or(extension) {
                Some(session) => Session::layered(session),
                None => Session::unlayered(manager.start_bytes(cookie_headers(&headers)), manager.clone()),
            }
        },
    )
}

/// Yields a clone of `value` for every request: how handlers get application state such
/// as a cache manager.
pub fn with_state<T: Clone + Send + Sync + 'static>(
    value: T,
) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}
