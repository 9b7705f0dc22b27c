//! [`SessionService`], [`SessionLayer`] and [`ResponseFuture`]: `beaker-http`'s tower
//! plumbing with axum's body and [`SessionError`]'s responses.

use axum::response::{IntoResponse as _, Response};
use beaker_http::{FinishError, Framework};

use crate::SessionError;

/// axum's side of `beaker-http`'s tower plumbing: its response type, and
/// [`SessionError`]'s response when a session cannot be finished.
#[derive(Debug, Clone, Copy)]
pub struct Axum;

impl Framework for Axum {
    type Response = Response;

    fn headers_mut(response: &mut Response) -> &mut http::HeaderMap {
        response.headers_mut()
    }

    fn error_response(error: FinishError) -> Response {
        SessionError::from(error).into_response()
    }
}

/// Makes each request's session available (started by the first extractor that asks, no
/// I/O), runs the inner service, then finishes the session if it was used and appends its
/// `Set-Cookie` and caching headers, or answers with [`SessionError`]'s response (503 for
/// a store outage) when finishing fails. Built by [`SessionLayer`], or directly with
/// `SessionService::new(router, manager)`.
///
/// The [`Session`](crate::Session) extractor finds the session while this service runs
/// the inner one (in its `call` and in every poll of its future), and, by default, also
/// in the request extensions (as a [`beaker_core::Session`]): so a service in between
/// that runs the rest of the request on a task of its own (`tokio::spawn` of the inner
/// future) does not hide it. `current_task_only()` skips the extension (one allocation
/// and a table insert per request) for apps where nothing between this service and the
/// handler moves the request to another task; there the extractor would answer 500
/// ([`SessionError::MissingLayer`]).
pub type SessionService<S> = beaker_http::SessionService<S, Axum>;

/// A tower layer giving every request a session from `manager` and finishing it after
/// the inner service answered: wraps services in a [`SessionService`].
pub type SessionLayer = beaker_http::SessionLayer<Axum>;

/// The future of a [`SessionService`] call.
pub type ResponseFuture<F, E> = beaker_http::ResponseFuture<F, E, Axum>;
