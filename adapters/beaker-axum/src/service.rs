//! [`SessionService`]: the per-request session lifecycle around an inner service.

use std::task::{Context, Poll};

use axum::response::Response;
use beaker_core::adapter::LazySession;
use beaker_core::SessionManager;
use http::Request;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::scope;

/// Makes each request's session available (started by the first extractor that asks, no
/// I/O), runs the inner service, then finishes the session if it was used and appends its
/// `Set-Cookie` headers. Built by [`SessionLayer`](crate::SessionLayer).
///
/// The [`Session`](crate::Session) extractor finds the session while this service runs
/// the inner one (in its `call` and in every poll of its future), and, by default, also
/// in the request extensions (as a [`beaker_core::Session`]): so a service in between
/// that runs the rest of the request on a task of its own (`tokio::spawn` of the inner
/// future) does not hide it. [`current_task_only`](Self::current_task_only) skips the
/// extension (one allocation and a table insert per request) for apps where nothing
/// between this service and the handler moves the request to another task; there the
/// extractor would answer 500 ([`SessionError::MissingLayer`](crate::SessionError::MissingLayer)).
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    manager: SessionManager,
    extension: bool,
}

impl<S> SessionService<S> {
    /// Wraps `inner`, serving sessions from `manager`.
    pub fn new(inner: S, manager: SessionManager) -> Self {
        SessionService { inner, manager, extension: true }
    }

    /// Puts each request's session into its extensions (as a [`beaker_core::Session`]),
    /// where the extractor looks when no layer's future is being polled: for services
    /// between this one and the handler that move the request to another task, and for
    /// code that reads `extensions().get::<beaker_core::Session>()`. The default; undoes
    /// [`current_task_only`](Self::current_task_only).
    pub fn with_request_extension(mut self) -> Self {
        self.extension = true;
        self
    }

    /// Makes the session reachable only while this service's future is being polled (the
    /// thread's current request), not through the request extensions: no allocation and
    /// no extension entry for a request that never asks for its session. Only for apps in
    /// which no service between this one and the handler runs the request on another task.
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
        // Started here only when it must also go into the extensions; otherwise by the
        // first extractor that asks, so an untouched request never builds one.
        let slot = LazySession::new(self.manager.clone());
        if self.extension {
            let session = scope::session_of(&slot, req.headers()).clone();
            req.extensions_mut().insert(session);
        }
        // The service `poll_ready` readied is the one called, here and now; only its
        // future moves on. Current during `call` too: a service may extract eagerly.
        ResponseFuture::new(LazySession::run_current(Some(slot), || self.inner.call(req)))
    }
}
