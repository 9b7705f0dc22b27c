//! [`FinishFuture`]: the end of a request as every middleware-style adapter runs it, once,
//! for all of them. An adapter says how its framework's output splits into a response and
//! how cookies (or a failure) go onto it ([`Finisher`]); the order of the steps, which is
//! where the rules live, is here.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::error::Error;
use crate::lazy::{LazySession, WithCurrent};
use crate::Finished;
#[cfg(test)]
use crate::SetCookie;

/// The framework-specific half of [`FinishFuture`], implemented by each adapter (usually
/// on a zero-sized type).
pub trait Finisher {
    /// What the inner service's future yields (for example `Result<Response, E>`).
    type Inner;
    /// What the middleware's future yields.
    type Output;
    /// A response that can take `Set-Cookie` headers.
    type Response;

    /// Splits the inner service's output: the response to finish, with the request's
    /// slot (`current` is the slot that was current while the inner future ran; an
    /// adapter that keeps the slot elsewhere, such as in the request's extensions, takes
    /// it from there), or the middleware's final output when nothing can be saved (the
    /// inner service failed).
    fn split(
        &self,
        inner: Self::Inner,
        current: Option<LazySession>,
    ) -> Result<(Self::Response, Option<LazySession>), Self::Output>;

    /// The final output: `response` with the session's `Set-Cookie` values appended and
    /// its caching directives merged ([`Finished::cache_directives`]; none for a session
    /// that was never used), or the error response for a failed finish.
    fn complete(&self, response: Self::Response, finished: Result<Finished, Error>) -> Self::Output;
}

type Finishing = Pin<Box<dyn Future<Output = Result<Finished, Error>> + Send>>;

pin_project_lite::pin_project! {
    /// A middleware's response future: polls the inner service's future with the
    /// request's slot current ([`LazySession::run_current`]), then finishes the session if
    /// the handler used it and hands the response to the [`Finisher`] with its cookies.
    /// A request that never used its session allocates nothing here and does no I/O.
    pub struct FinishFuture<F, A: Finisher> {
        #[pin]
        state: State<F, A::Response>,
        finisher: A,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Inner { #[pin] inner: WithCurrent<F> },
        Finishing { finish: Finishing, response: Option<R> },
        Done,
    }
}

impl<F, A: Finisher> FinishFuture<F, A> {
    /// Finishes the request whose inner future is `inner` (from
    /// [`LazySession::run_current`]) with `finisher`.
    pub fn new(inner: WithCurrent<F>, finisher: A) -> Self {
        FinishFuture { state: State::Inner { inner }, finisher }
    }
}

impl<F, A> Future for FinishFuture<F, A>
where
    F: Future<Output = A::Inner>,
    A: Finisher,
{
    type Output = A::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut state = this.state;
        loop {
            match state.as_mut().project() {
                StateProj::Inner { inner } => {
                    let (output, current) = ready!(inner.poll(cx));
                    state.set(State::Done);
                    let (response, slot) = match this.finisher.split(output, current) {
                        Ok(split) => split,
                        Err(done) => return Poll::Ready(done),
                    };
                    match slot.as_ref().and_then(LazySession::finish_used) {
                        Some(finish) => {
                            state.set(State::Finishing { finish: Box::pin(finish), response: Some(response) })
                        }
                        None => return Poll::Ready(this.finisher.complete(response, Ok(Finished::default()))),
                    }
                }
                StateProj::Finishing { finish, response } => {
                    let cookies = ready!(finish.as_mut().poll(cx));
                    let response = response.take();
                    state.set(State::Done);
                    match response {
                        Some(response) => return Poll::Ready(this.finisher.complete(response, cookies)),
                        None => panic!("beaker: FinishFuture lost its response"),
                    }
                }
                StateProj::Done => panic!("beaker: FinishFuture polled after completion"),
            }
        }
    }
}

impl<F, A: Finisher> fmt::Debug for FinishFuture<F, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match &self.state {
            State::Inner { .. } => "inner",
            State::Finishing { .. } => "finishing",
            State::Done => "done",
        };
        f.debug_struct("FinishFuture").field("phase", &phase).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, SessionConfig, SessionManager};

    /// A finisher over `Result<Vec<String>, &str>` "responses": cookies become strings.
    struct Strings;

    impl Finisher for Strings {
        type Inner = Result<Vec<String>, &'static str>;
        type Output = Result<Vec<String>, String>;
        type Response = Vec<String>;

        fn split(
            &self,
            inner: Self::Inner,
            current: Option<LazySession>,
        ) -> Result<(Vec<String>, Option<LazySession>), Self::Output> {
            inner.map(|r| (r, current)).map_err(|e| Err(e.to_owned()))
        }

        fn complete(&self, mut response: Vec<String>, cookies: Result<Finished, Error>) -> Self::Output {
            match cookies {
                Ok(cookies) => {
                    response.extend(cookies.into_iter().map(SetCookie::into_string));
                    Ok(response)
                }
                Err(e) => Err(e.to_string()),
            }
        }
    }

    fn manager() -> SessionManager {
        let config = SessionConfig::new().with_secret("a test secret of enough bytes").expect("secret");
        SessionManager::builder(config).store(MemoryStore::new()).build().expect("manager")
    }

    fn run(
        slot: Option<LazySession>,
        body: impl Future<Output = Result<Vec<String>, &'static str>>,
    ) -> FinishFuture<impl Future<Output = Result<Vec<String>, &'static str>>, Strings> {
        FinishFuture::new(LazySession::run_current(slot, || body), Strings)
    }

    #[tokio::test]
    async fn a_used_session_is_finished_and_its_cookie_appended() {
        let future = run(Some(LazySession::new(manager())), async {
            let session = LazySession::current_session(|| [b"".as_slice()]).expect("current while polled");
            session.insert("n", &1).await.expect("insert");
            Ok(vec!["body".to_owned()])
        });
        assert!(format!("{future:?}").contains("inner"));
        let out = future.await.expect("finished");
        assert_eq!(out.len(), 2, "the response and one Set-Cookie: {out:?}");
        assert!(out[1].starts_with("beaker.session.id="), "{out:?}");
    }

    #[tokio::test]
    async fn an_unused_session_adds_nothing_and_a_failed_inner_passes_through() {
        let out = run(Some(LazySession::new(manager())), async { Ok(vec!["body".to_owned()]) }).await;
        assert_eq!(out.expect("ok"), ["body"]);
        let out = run(None, async { Ok(vec!["no slot".to_owned()]) }).await;
        assert_eq!(out.expect("ok"), ["no slot"]);
        let failed = run(Some(LazySession::new(manager())), async {
            let session = LazySession::current_session(|| [b"".as_slice()]).expect("current");
            session.insert("n", &1).await.expect("insert");
            Err("inner failed")
        })
        .await;
        assert_eq!(failed, Err("inner failed".to_owned()), "nothing is saved for a failed inner service");
    }
}
