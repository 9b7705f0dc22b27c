//! [`SessionService`]: the per-request session lifecycle around an inner service.

use std::task::{Context, Poll};

use axum::response::{IntoResponse as _, Response};
use beaker_core::SessionManager;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request};
use tower_service::Service;

use crate::error::SessionError;
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
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let cookies = req.headers().get_all(COOKIE).iter().filter_map(|v| v.to_str().ok());
        let session = self.manager.start(cookies);
        req.extensions_mut().insert(session.clone());
        let manager = self.manager.clone();
        // The clone that was driven to readiness serves this request (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            inner: Box::pin(async move {
                let mut res = inner.call(req).await?;
                match manager.finish(&session).await {
                    Ok(set_cookies) => {
                        for cookie in set_cookies {
                            match HeaderValue::try_from(cookie.into_string()) {
                                Ok(value) => {
                                    res.headers_mut().append(SET_COOKIE, value);
                                }
                                // Core only emits visible ASCII; losing a cookie silently
                                // would lose the session, so fail loudly instead.
                                Err(_) => return Ok(SessionError::InvalidHeader.into_response()),
                            }
                        }
                    }
                    Err(e) => res = SessionError::from(e).into_response(),
                }
                Ok(res)
            }),
        }
    }
}
