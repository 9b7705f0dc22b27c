//! [`ResponseFuture`]: the future of a [`SessionService`](crate::SessionService) call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::response::{IntoResponse as _, Response};
use beaker_core::LazySession;
use http::header::SET_COOKIE;
use http::HeaderValue;
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
    #[project_replace = StateReplace]
    enum State<F> {
        // `None` only while a poll of `inner` lends the request to the current-session slot.
        Inner { #[pin] inner: F, current: Option<LazySession> },
        Finishing { finish: Finishing },
        Done,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, current: Option<LazySession>) -> Self {
        ResponseFuture { state: State::Inner { inner, current } }
    }
}

/// Finishes `slot`'s session and puts its cookies on `res`, or replaces `res` by the
/// error's response.
async fn finish(slot: LazySession, mut res: Response) -> Response {
    match slot.finish().await {
        Ok(set_cookies) => {
            for cookie in set_cookies {
                match HeaderValue::try_from(cookie.into_string()) {
                    Ok(value) => {
                        res.headers_mut().append(SET_COOKIE, value);
                    }
                    // Core only emits visible ASCII; losing a cookie silently would lose
                    // the session, so fail loudly instead.
                    Err(_) => return SessionError::InvalidHeader.into_response(),
                }
            }
            res
        }
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
                StateProj::Inner { inner, current } => {
                    // The request is current while the inner future runs (extractors).
                    let res = {
                        let _current = LazySession::enter(current);
                        ready!(inner.poll(cx))
                    };
                    // An inner error ends the request: nothing of it can be saved.
                    let StateReplace::Inner { current, .. } = state.as_mut().project_replace(State::Done) else {
                        unreachable!("the state was Inner")
                    };
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
