//! [`ResponseFuture`]: the future of a [`SessionService`](crate::SessionService) call.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use beaker_core::adapter::{FinishFuture, Finisher, LazySession, WithCurrent};
use beaker_core::Finished;
use pin_project_lite::pin_project;
use warp::reply::{Reply as _, Response};

use crate::error::SessionError;

pin_project! {
    /// Runs the inner service's future, then finishes the session (core's
    /// [`FinishFuture`]). A request that never used its session is answered as soon as
    /// the inner future is (no allocation, no store call); an inner error passes through.
    pub struct ResponseFuture<F, E> {
        #[pin]
        inner: FinishFuture<F, Warp<E>>,
    }
}

impl<F, E> ResponseFuture<F, E> {
    pub(crate) fn new(inner: WithCurrent<F>) -> Self {
        ResponseFuture { inner: FinishFuture::new(inner, Warp(PhantomData)) }
    }
}

/// The warp half of the finishing: `Set-Cookie` and caching headers on the response, or
/// the error's response.
struct Warp<E>(PhantomData<fn() -> E>);

impl<E> Finisher for Warp<E> {
    type Inner = Result<Response, E>;
    type Output = Result<Response, E>;
    type Response = Response;

    fn split(
        &self,
        inner: Self::Inner,
        current: Option<LazySession>,
    ) -> Result<(Response, Option<LazySession>), Self::Output> {
        match inner {
            Ok(res) => Ok((res, current)),
            Err(e) => Err(Err(e)),
        }
    }

    fn complete(&self, mut res: Response, finished: Result<Finished, beaker_core::Error>) -> Self::Output {
        let applied = finished
            .map_err(SessionError::from)
            .and_then(|f| beaker_http::apply(f, res.headers_mut()).map_err(SessionError::from));
        match applied {
            Ok(()) => Ok(res),
            Err(e) => Ok(e.into_response()),
        }
    }
}

impl<F, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
