//! [`ResponseFuture`]: the future of a [`SessionService`](crate::SessionService) call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::response::{IntoResponse as _, Response};
use beaker_core::adapter::{LazySession, WithCurrent};
use pin_project_lite::pin_project;

use crate::error::SessionError;

type Finishing = Pin<Box<dyn Future<Output = Response> + Send>>;

pin_project! {
    /// Runs the inner service's future, then finishes the session. A request that never
    /// used its session is answered as soon as the inner future is (no allocation, no
    /// store call); otherwise finishing runs as a boxed future (the manager's `finish` is
    /// an `async fn`, whose type cannot be named).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // The inner future, polled with the request current (extractors find it).
        Inner { #[pin] inner: WithCurrent<F> },
        Finishing { finish: Finishing },
        Done,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: WithCurrent<F>) -> Self {
        ResponseFuture { state: State::Inner { inner } }
    }
}

/// Finishes `slot`'s session and puts its cookies and caching headers on `res`, or
/// replaces `res` by the error's response.
async fn finish(slot: LazySession, mut res: Response) -> Response {
    match slot.finish().await {
        Ok(finished) => match crate::headers::apply(finished, res.headers_mut()) {
            Ok(()) => res,
            Err(e) => e.into_response(),
        },
        Err(e) => SessionError::from(e).into_response(),
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Inner { inner } => {
                    let (res, current) = ready!(inner.poll(cx));
                    state.set(State::Done);
                    // An inner error ends the request: nothing of it can be saved.
                    // Nothing to finish: no extractor asked for the session, or no one used it.
                    let (res, slot) = match (res, current) {
                        (Ok(res), Some(slot)) if slot.used().is_some() => (res, slot),
                        (other, _) => return Poll::Ready(other),
                    };
                    state.set(State::Finishing { finish: Box::pin(finish(slot, res)) });
                }
                StateProj::Finishing { finish } => {
                    let res = ready!(finish.as_mut().poll(cx));
                    state.set(State::Done);
                    return Poll::Ready(Ok(res));
                }
                StateProj::Done => panic!("beaker_axum::ResponseFuture polled after completion"),
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
