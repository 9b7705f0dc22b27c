//! [`SessionMiddleware`]: the per-request session lifecycle around the app's services.

use std::borrow::Cow;
use std::future::{ready, Future, Ready};
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, SET_COOKIE, VARY};
use actix_web::{HttpMessage as _, ResponseError as _};
use beaker_core::adapter::{FinishFuture, Finisher, LazySession, ResponseHeader, ResponseHeaders};
use beaker_core::{Finished, SessionManager};
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
/// runs the inner service, and code on a task the handler spawns (`actix_web::rt::spawn`)
/// finds it through the request: by default the request's session slot lives in the
/// request extensions. [`current_task_only`](Self::current_task_only) makes the slot the
/// worker thread's current one instead, only while this middleware's future is being
/// polled (see [`LazySession::enter`]; no extension entry per request): then a spawned
/// task finds no session through the request and needs a [`Session`](crate::Session)
/// handle from the handler.
#[derive(Debug, Clone)]
pub struct SessionMiddleware {
    manager: SessionManager,
    extension: bool,
}

impl SessionMiddleware {
    /// Middleware serving sessions from `manager`.
    pub fn new(manager: SessionManager) -> Self {
        SessionMiddleware { manager, extension: true }
    }

    /// Keeps each request's session slot in the request extensions, where
    /// [`SessionExt::session`](crate::SessionExt::session) looks when no middleware's
    /// future is being polled: for tasks a handler spawns that ask the request for the
    /// session. The default; undoes [`current_task_only`](Self::current_task_only).
    pub fn with_request_extension(mut self) -> Self {
        self.extension = true;
        self
    }

    /// Makes the slot the worker thread's current request while this middleware's future
    /// is being polled, instead of an extension entry (an allocation and a table insert
    /// per request): for apps whose handlers never hand the request to another task.
    pub fn current_task_only(mut self) -> Self {
        self.extension = false;
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
        SessionFuture { inner: FinishFuture::new(inner, Actix(PhantomData)) }
    }
}

pin_project! {
    /// The future of a [`SessionMiddlewareService`] call: runs the inner service with the
    /// request current, then finishes the session (core's [`FinishFuture`]).
    pub struct SessionFuture<F, B> {
        #[pin]
        inner: FinishFuture<F, Actix<B>>,
    }
}

impl<F, B> std::fmt::Debug for SessionFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionFuture").finish_non_exhaustive()
    }
}

/// The actix-web half of the finishing: `Set-Cookie` headers on the response, or the
/// error's response.
struct Actix<B>(PhantomData<fn() -> B>);

impl<B> Finisher for Actix<B> {
    type Inner = Result<ServiceResponse<B>, actix_web::Error>;
    type Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;
    type Response = ServiceResponse<B>;

    fn split(
        &self,
        inner: Self::Inner,
        current: Option<LazySession>,
    ) -> Result<(ServiceResponse<B>, Option<LazySession>), Self::Output> {
        // An inner error ends the request: nothing of it can be saved.
        let res = inner.map_err(Err)?;
        // The request's slot: kept here, or (extension mode) taken out of the request, so
        // that an outer middleware does not finish it again.
        let slot = current.or_else(|| res.request().extensions_mut().remove::<LazySession>());
        Ok((res, slot))
    }

    fn complete(&self, mut res: ServiceResponse<B>, finished: Result<Finished, beaker_core::Error>) -> Self::Output {
        let failure = match finished.map_err(SessionError::from).and_then(|f| apply(f, res.headers_mut())) {
            Ok(()) => return Ok(res.map_into_left_body()),
            Err(e) => e,
        };
        let (req, _) = res.into_parts();
        Ok(ServiceResponse::new(req, failure.error_response()).map_into_right_body())
    }
}

/// Appends the `Set-Cookie` values and merges the caching directives into the handler's
/// `Vary` and `Cache-Control` (core decides the values and the order; [`Headers`] only
/// translates).
fn apply(finished: Finished, headers: &mut HeaderMap) -> Result<(), SessionError> {
    finished.apply_to(&mut Headers(headers))
}

struct Headers<'a>(&'a mut HeaderMap);

fn header_name(header: ResponseHeader) -> HeaderName {
    match header {
        ResponseHeader::Vary => VARY,
        ResponseHeader::CacheControl => CACHE_CONTROL,
    }
}

impl ResponseHeaders for Headers<'_> {
    type Error = SessionError;

    fn merge<T>(&self, header: ResponseHeader, merge: impl FnOnce(&mut dyn Iterator<Item = &[u8]>) -> T) -> T {
        merge(&mut self.0.get_all(header_name(header)).map(HeaderValue::as_bytes))
    }

    fn set(&mut self, header: ResponseHeader, value: Cow<'static, [u8]>) -> Result<(), SessionError> {
        self.0.insert(header_name(header), header_value(value)?);
        Ok(())
    }

    fn append_set_cookie(&mut self, value: String) -> Result<(), SessionError> {
        self.0.append(SET_COOKIE, header_value(Cow::Owned(value.into_bytes()))?);
        Ok(())
    }
}

/// A header value taking `bytes` as they are (a constant or a buffer core built: no
/// copy), or [`SessionError::InvalidHeader`].
fn header_value(bytes: Cow<'static, [u8]>) -> Result<HeaderValue, SessionError> {
    let bytes = match bytes {
        Cow::Borrowed(b) => bytes::Bytes::from_static(b),
        Cow::Owned(v) => bytes::Bytes::from(v),
    };
    HeaderValue::from_maybe_shared(bytes).map_err(|_| SessionError::InvalidHeader)
}

impl<F, B> Future for SessionFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody + 'static,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
