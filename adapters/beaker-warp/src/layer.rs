//! [`SessionLayer`], [`SessionService`] and [`ResponseFuture`]: `beaker-http`'s tower
//! plumbing with warp's body and [`SessionError`]'s replies, for the service around
//! `warp::service(routes)`, so that every reply finishes its request's session.

use beaker_http::{FinishError, Framework};
use warp::reply::{Reply as _, Response};

use crate::SessionError;

/// warp's side of `beaker-http`'s tower plumbing: its response type, and
/// [`SessionError`]'s reply when a session cannot be finished.
#[derive(Debug, Clone, Copy)]
pub struct Warp;

impl Framework for Warp {
    type Response = Response;

    fn headers_mut(response: &mut Response) -> &mut warp::http::HeaderMap {
        response.headers_mut()
    }

    fn error_response(error: FinishError) -> Response {
        SessionError::from(error).into_response()
    }
}

/// A tower layer giving every request a session from `manager` and finishing it after
/// the inner service answered: the layer to put around `warp::service(routes)` in a
/// tower stack. See [`SessionService`].
pub type SessionLayer = beaker_http::SessionLayer<Warp>;

/// Makes each request's session available to [`with_session`](crate::with_session)
/// (started by the first filter that asks, no I/O), runs the inner service (usually
/// `warp::service(routes)`), then finishes the session if it was used: `Set-Cookie` and
/// caching headers on the response, or the [`SessionError`]'s response (503 for a store
/// outage) when finishing fails. Every response the inner service makes is finished: a
/// handler's reply, and a rejection (404, 405, a custom one) that warp turned into one.
///
/// The filter finds the session while this service runs the inner one (in its `call` and
/// in every poll of its future), and, by default, in the request extensions too (as a
/// [`beaker_core::Session`]): so a service in between that runs the rest of the request
/// on a task of its own does not hide it. Under `current_task_only()` it is only the
/// thread's current request's: no extension entry and no session started for a request
/// that never asks for one, for apps in which no service between this one and the routes
/// runs the request on another task (there [`with_session`](crate::with_session) would
/// find no layer and start a session only [`Session::finish`](crate::Session::finish)
/// saves).
pub type SessionService<S> = beaker_http::SessionService<S, Warp>;

/// The future of a [`SessionService`] call.
pub type ResponseFuture<F, E> = beaker_http::ResponseFuture<F, E, Warp>;
