//! [`SessionLayer`] and [`SessionService`]: the session lifecycle around
//! `warp::service(routes)`, so that every reply finishes its request's session.

use std::task::{Context, Poll};

use beaker_core::adapter::LazySession;
use beaker_core::SessionManager;
use tower_layer::Layer;
use tower_service::Service;
use warp::http::Request;
use warp::reply::Response;

use crate::future::ResponseFuture;
use beaker_http::cookie_headers;

/// A tower layer giving every request a session from `manager` and finishing it after
/// the inner service answered: the layer to put around `warp::service(routes)` in a
/// tower stack. See [`SessionService`].
#[derive(Debug, Clone)]
pub struct SessionLayer {
    manager: SessionManager,
    extension: bool,
}

impl SessionLayer {
    /// A layer serving sessions from `manager`.
    pub fn new(manager: SessionManager) -> Self {
        SessionLayer { manager, extension: true }
    }

    /// The session only for the thread's current request, not in the extensions; see
    /// [`SessionService::current_task_only`].
    pub fn current_task_only(mut self) -> Self {
        self.extension = false;
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService { inner, manager: self.manager.clone(), extension: self.extension }
    }
}

/// Makes each request's session available to [`with_session`](crate::with_session)
/// (started by the first filter that asks, no I/O), runs the inner service, then finishes
/// the session if it was used: `Set-Cookie` and caching headers on the response, or the
/// [`SessionError`](crate::SessionError)'s response (503 for a store outage) when
/// finishing fails. Every response the inner service makes is finished: a handler's
/// reply, and a rejection (404, 405, a custom one) that warp turned into one.
///
/// The filter finds the session while this service runs the inner one (in its `call` and
/// in every poll of its future), and, by default, in the request extensions too (as a
/// [`beaker_core::Session`]): so a service in between that runs the rest of the request
/// on a task of its own does not hide it.
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    manager: SessionManager,
    extension: bool,
}

impl<S> SessionService<S> {
    /// Wraps `inner` (usually `warp::service(routes)`), serving sessions from `manager`.
    pub fn new(inner: S, manager: SessionManager) -> Self {
        SessionService { inner, manager, extension: true }
    }

    /// Makes the session reachable only while this service's future is being polled (the
    /// thread's current request), not through the request extensions: no extension entry
    /// and no session started for a request that never asks for one. Only for apps in
    /// which no service between this one and the routes runs the request on another task;
    /// there [`with_session`](crate::with_session) would find no layer and start a session
    /// only [`Session::finish`](crate::Session::finish) saves.
    pub fn current_task_only(mut self) -> Self {
        self.extension = false;
        self
    }
}

impl<S, B> Service<Request<B>> for SessionService<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let slot = LazySession::new(self.manager.clone());
        if self.extension {
            let session = slot.get_or_start(|| cookie_headers(req.headers())).clone();
            req.extensions_mut().insert(session);
        }
        // Current during `call` too: warp builds the filter's future (and runs its first
        // synchronous filters) there.
        ResponseFuture::new(LazySession::run_current(Some(slot), || self.inner.call(req)))
    }
}
