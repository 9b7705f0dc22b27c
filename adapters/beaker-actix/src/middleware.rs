//! [`SessionMiddleware`]: the per-request session lifecycle around the app's services.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, HeaderValue, CACHE_CONTROL, SET_COOKIE, VARY};
use actix_web::{HttpMessage as _, ResponseError as _};
use beaker_core::adapter::{LazySession, WithCurrent};
use beaker_core::{Finished, SessionManager};
use futures_util::future::LocalBoxFuture;
use pin_project_lite::pin_project;

use crate::error::SessionError;

/// Middleware giving every request a session from its manager: `App::new().wrap(SessionMiddleware::new(manager))`.
///
/// A handler's error is a response in actix-web, so the session is finished after it like
/// after any other. A middleware wrapped *inside* this one that fails with `Err` ends the
/// request before the session can be finished (the request is gone by then): nothing the
/// request changed in the session is saved. Answer with an error *response* instead.
///
/// Handlers, guards and middleware wrapped inside find the session while this middleware
/// runs the inner service: in its `call` and in every poll of its future (the request's
/// slot is the worker thread's current one, see [`LazySession::enter`]; no request
/// extension, no allocation for a request that never asks). Code on a task the handler
/// spawns (`actix_web::rt::spawn`) runs outside those polls: it finds the session through
/// the request only with [`with_request_extension`](Self::with_request_extension), or if
/// it receives a [`Session`](crate::Session) handle from the handler.
#[derive(Debug, Clone)]
pub struct SessionMiddleware {
    manager: SessionManager,
    extension: bool,
}

impl SessionMiddleware {
    /// Middleware serving sessions from `manager`.
    pub fn new(manager: SessionManager) -> Self {
        SessionMiddleware { manager, extension: false }
    }

    /// Also keeps each request's session slot in the request extensions, where
    /// [`SessionExt::session`](crate::SessionExt::session) looks when no middleware's
    /// future is being polled: for tasks a handler spawns that ask the request for the
    /// session first. Costs an extension entry (an allocation and a table insert) per
    /// request.
    pub fn with_request_extension(mut self) -> Self {
        self.extension = true;
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = SessionMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionMiddlewareService {
            service: Rc::new(service),
            manager: self.manager.clone(),
            extension: self.extension,
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around the app: makes the session available
/// (started on first use, no I/O), runs the inner service, finishes the session if it
/// was used and appends its `Set-Cookie` headers.
#[derive(Debug)]
pub struct SessionMiddlewareService<S> {
    service: Rc<S>,
    manager: SessionManager,
    extension: bool,
}

impl<S, B> Service<ServiceRequest> for SessionMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = SessionFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // The session itself starts when first asked for: a request that never uses it
        // builds none.
        let slot = LazySession::new(self.manager.clone());
        let current = if self.extension {
            req.extensions_mut().insert(slot);
            // Entered empty all the same: an outer middleware's slot is not this request's.
            None
        } else {
            Some(slot)
        };
        // Current during `call` too: routing runs guards, and a service may extract eagerly.
        let inner = LazySession::run_current(current, || self.service.call(req));
        SessionFuture { state: State::Inner { inner } }
    }
}

type Finishing<B> = LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>;

pin_project! {
    /// The future of a [`SessionMiddlewareService`] call: runs the inner service, then
    /// finishes the session. A request that never used its session is answered as soon as
    /// the inner service is (no allocation, no store call); otherwise finishing runs as a
    /// boxed future (the manager's `finish` is an `async fn`).
    pub struct SessionFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // The inner future, polled with the request current (extractors find it); its
        // slot is `None` when it lives in the request extensions.
        Inner { #[pin] inner: WithCurrent<F> },
        Finishing { finish: Finishing<B> },
        Done,
    }
}

impl<F, B> std::fmt::Debug for SessionFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionFuture").finish_non_exhaustive()
    }
}

/// Runs `finishing` (the session's end) and puts its cookies and caching headers on
/// `res`, or replaces `res` by the error's response.
async fn finish<B: MessageBody + 'static>(
    finishing: impl Future<Output = Result<Finished, beaker_core::Error>>,
    mut res: ServiceResponse<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let failure = match finishing.await {
        Ok(finished) => match apply(finished, res.headers_mut()) {
            Ok(()) => return Ok(res.map_into_left_body()),
            Err(e) => e,
        },
        Err(e) => SessionError::from(e),
    };
    let (req, _) = res.into_parts();
    Ok(ServiceResponse::new(req, failure.error_response()).map_into_right_body())
}

/// Appends the `Set-Cookie` values and merges the caching directives into the handler's
/// `Vary` and `Cache-Control` (core decides the values; this only stores them).
fn apply(finished: Finished, headers: &mut HeaderMap) -> Result<(), SessionError> {
    let cache = finished.cache_directives();
    // Core only emits visible ASCII and keeps the handler's bytes; losing a cookie or a
    // caching header silently would leak or lose the session, so fail loudly instead.
    let value = |bytes: &[u8]| HeaderValue::from_bytes(bytes).map_err(|_| SessionError::InvalidHeader);
    if let Some(vary) = cache.merge_vary(headers.get_all(VARY).map(HeaderValue::as_bytes)) {
        headers.insert(VARY, value(&vary)?);
    }
    if let Some(cc) = cache.merge_cache_control(headers.get_all(CACHE_CONTROL).map(HeaderValue::as_bytes)) {
        headers.insert(CACHE_CONTROL, value(&cc)?);
    }
    for cookie in finished {
        headers.append(SET_COOKIE, value(cookie.as_str().as_bytes())?);
    }
    Ok(())
}

impl<F, B> Future for SessionFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody + 'static,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Inner { inner } => {
                    let (res, current) = ready!(inner.poll(cx));
                    state.set(State::Done);
                    // An inner error ends the request: nothing of it can be saved.
                    let res = match res {
                        Ok(res) => res,
                        Err(e) => return Poll::Ready(Err(e)),
                    };
                    // The request's slot: kept here, or (extension mode) taken out of the
                    // request, so that an outer middleware does not finish it again.
                    let slot = current.or_else(|| res.request().extensions_mut().remove::<LazySession>());
                    let Some(slot) = slot.filter(|slot| slot.used().is_some()) else {
                        return Poll::Ready(Ok(res.map_into_left_body()));
                    };
                    state.set(State::Finishing { finish: Box::pin(finish(slot.finish(), res)) });
                }
                StateProj::Finishing { finish } => {
                    let res = ready!(finish.as_mut().poll(cx));
                    state.set(State::Done);
                    return Poll::Ready(res);
                }
                StateProj::Done => panic!("beaker_actix::SessionFuture polled after completion"),
            }
        }
    }
}
