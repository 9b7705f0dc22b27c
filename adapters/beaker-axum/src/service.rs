//! [`SessionService`]: the per-request session lifecycle around an inner service.

use std::task::{Context, Poll};

use axum::response::Response;
use beaker_core::SessionManager;
use http::header::COOKIE;
use http::{HeaderValue, Request};
use tower_service::Service;

use crate::future::ResponseFuture;

/// Starts a session per request (no I/O), runs the inner service, then finishes the
/// session and appends its `Set-Cookie` headers. Built by [`SessionLayer`](crate::SessionLayer).
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    manager: SessionManager,
}

impl<S> SessionService<S> {
    /// Wraps `inner`, serving sessions from `manager`.
    pub fn new(inner: S, manager: SessionManager) -> Self {
        SessionService { inner, manager }
    }
}

impl<S, B> Service<Request<B>> for SessionService<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Bytes, unchecked: core reads them (lossily) only if the session is used.
        let session = self.manager.start_bytes(req.headers().get_all(COOKIE).iter().map(HeaderValue::as_bytes));
        req.extensions_mut().insert(session.clone());
        // The service `poll_ready` readied is the one called, here and now; only its
        // future moves on.
        ResponseFuture::new(self.inner.call(req), session, self.manager.clone())
    }
}
