//! The tower plumbing of the adapters for frameworks built on `http` 1.x and tower (axum,
//! warp): [`SessionLayer`], [`SessionService`] and its [`ResponseFuture`], generic over a
//! [`Framework`] that supplies the framework's response body and its answer to a session
//! that could not be finished. Each adapter names them for its framework
//! (`beaker_axum::SessionService<S>` is `SessionService<S, beaker_axum::Axum>`).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use beaker_core::adapter::{FinishFuture, Finisher, LazySession, WithCurrent};
use beaker_core::{Finished, SessionManager};
use http::{HeaderMap, Request};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{apply, cookie_headers, InvalidHeader};

/// Why a used session could not be finished.
#[derive(Debug)]
pub enum FinishError {
    /// The session engine failed (a store outage, a session too large for its store).
    Session(beaker_core::Error),
    /// A header value `http` refused ([`apply`]).
    InvalidHeader(InvalidHeader),
}

/// What a framework adds to the shared plumbing: its response type (an
/// `http::Response`), and the response to a session that could not be finished (its
/// adapter's error response: 503 for an outage, 413 for a session too large, 500
/// otherwise).
pub trait Framework {
    /// The framework's response type.
    type Response;

    /// The response's headers, where the session's are added.
    fn headers_mut(response: &mut Self::Response) -> &mut HeaderMap;

    /// The response sent instead of the handler's when its session could not be finished.
    fn error_response(error: FinishError) -> Self::Response;
}

/// A tower layer giving every request a session from `manager` and finishing it after
/// the inner service answered: wraps services in a [`SessionService`].
pub struct SessionLayer<W> {
    /// The service every `layer` call makes, without its inner service.
    template: SessionService<(), W>,
}

impl<W> SessionLayer<W> {
    /// A layer serving sessions from `manager`.
    pub fn new(manager: SessionManager) -> Self {
        SessionLayer { template: SessionService::new((), manager) }
    }

    /// Puts each request's session into its extensions (the default); see
    /// [`SessionService::with_request_extension`].
    pub fn with_request_extension(self) -> Self {
        SessionLayer { template: self.template.with_request_extension() }
    }

    /// The session only for the thread's current request, not in the extensions; see
    /// [`SessionService::current_task_only`].
    pub fn current_task_only(self) -> Self {
        SessionLayer { template: self.template.current_task_only() }
    }
}

impl<S, W> Layer<S> for SessionLayer<W> {
    type Service = SessionService<S, W>;

    fn layer(&self, inner: S) -> Self::Service {
        let t = &self.template;
        SessionService { inner, manager: t.manager.clone(), extension: t.extension, framework: PhantomData }
    }
}

/// Makes each request's session available (started by the first extractor or filter that
/// asks, no I/O), runs the inner service, then finishes the session if it was used: its
/// `Set-Cookie` and caching headers on the response, or the framework's error response
/// when finishing fails. A request that never used its session is answered as soon as
/// the inner service answers (no allocation, no store call); an inner error passes
/// through.
///
/// The session is the thread's current one while this service runs the inner one (in
/// its `call` and in every poll of its future), and, by default, also in the request
/// extensions (as a [`beaker_core::Session`]): so a service in between that runs the rest
/// of the request on a task of its own (`tokio::spawn` of the inner future) does not hide
/// it. [`current_task_only`](Self::current_task_only) skips the extension (one allocation
/// and a table insert per request) for apps where nothing between this service and the
/// handler moves the request to another task.
pub struct SessionService<S, W> {
    inner: S,
    manager: SessionManager,
    extension: bool,
    framework: PhantomData<fn() -> W>,
}

impl<S, W> SessionService<S, W> {
    /// Wraps `inner`, serving sessions from `manager`.
    pub fn new(inner: S, manager: SessionManager) -> Self {
        SessionService { inner, manager, extension: true, framework: PhantomData }
    }

    /// Puts each request's session into its extensions (as a [`beaker_core::Session`]),
    /// where handlers look when no service's future is being polled: for services between
    /// this one and the handler that move the request to another task, and for code that
    /// reads `extensions().get::<beaker_core::Session>()`. The default; undoes
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

impl<S, W, B> Service<Request<B>> for SessionService<S, W>
where
    S: Service<Request<B>, Response = W::Response>,
    W: Framework,
{
    type Response = W::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error, W>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Started here only when it must also go into the extensions; otherwise by the
        // first extractor that asks, so an untouched request never builds one.
        let slot = LazySession::new(self.manager.clone());
        if self.extension {
            let session = slot.get_or_start(|| cookie_headers(req.headers())).clone();
            req.extensions_mut().insert(session);
        }
        // The service `poll_ready` readied is the one called, here and now; only its
        // future moves on. Current during `call` too: a service may extract eagerly (warp
        // runs its first synchronous filters there).
        ResponseFuture::new(LazySession::run_current(Some(slot), || self.inner.call(req)))
    }
}

pin_project! {
    /// Runs the inner service's future, then finishes the session (core's
    /// [`FinishFuture`]).
    pub struct ResponseFuture<F, E, W: Framework> {
        #[pin]
        inner: FinishFuture<F, Finish<E, W>>,
    }
}

impl<F, E, W: Framework> ResponseFuture<F, E, W> {
    fn new(inner: WithCurrent<F>) -> Self {
        ResponseFuture { inner: FinishFuture::new(inner, Finish(PhantomData)) }
    }
}

/// The `http` half of the finishing: the session's headers on the response, or the
/// framework's error response.
struct Finish<E, W>(PhantomData<fn() -> (E, W)>);

impl<E, W: Framework> Finisher for Finish<E, W> {
    type Inner = Result<W::Response, E>;
    type Output = Result<W::Response, E>;
    type Response = W::Response;

    fn split(
        &self,
        inner: Self::Inner,
        current: Option<LazySession>,
    ) -> Result<(Self::Response, Option<LazySession>), Self::Output> {
        match inner {
            Ok(res) => Ok((res, current)),
            Err(e) => Err(Err(e)),
        }
    }

    fn complete(&self, mut res: Self::Response, finished: Result<Finished, beaker_core::Error>) -> Self::Output {
        let applied = finished
            .map_err(FinishError::Session)
            .and_then(|f| apply(f, W::headers_mut(&mut res)).map_err(FinishError::InvalidHeader));
        match applied {
            Ok(()) => Ok(res),
            Err(e) => Ok(W::error_response(e)),
        }
    }
}

impl<F, E, W> Future for ResponseFuture<F, E, W>
where
    F: Future<Output = Result<W::Response, E>>,
    W: Framework,
{
    type Output = Result<W::Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

// By hand: derived impls would ask the framework marker for `Clone` and `Debug`.
impl<W> Clone for SessionLayer<W> {
    fn clone(&self) -> Self {
        SessionLayer { template: self.template.clone() }
    }
}

impl<S: Clone, W> Clone for SessionService<S, W> {
    fn clone(&self) -> Self {
        SessionService {
            inner: self.inner.clone(),
            manager: self.manager.clone(),
            extension: self.extension,
            framework: PhantomData,
        }
    }
}

impl<W> fmt::Debug for SessionLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("manager", &self.template.manager)
            .field("extension", &self.template.extension)
            .finish()
    }
}

impl<S: fmt::Debug, W> fmt::Debug for SessionService<S, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .field("manager", &self.manager)
            .field("extension", &self.extension)
            .finish()
    }
}

impl<F, E, W: Framework> fmt::Debug for ResponseFuture<F, E, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
