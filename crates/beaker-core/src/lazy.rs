//! [`LazySession`]: a request's session, started only when something first asks for it.

use std::cell::{Cell, OnceCell};
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::Error;
use crate::manager::SessionManager;
use crate::session::Session;
use crate::Finished;

/// One request's session slot for framework adapters: the manager, and the session once
/// the first asker started it from the request's `Cookie` headers.
///
/// An adapter's middleware puts a `LazySession` where its extractors can reach it, the
/// extractors call [`get_or_start`](Self::get_or_start), and the middleware ends the
/// request with [`finish`](Self::finish). A request whose handler never asks for its
/// session builds no handle and copies no header; its `finish` does nothing.
///
/// The slot is `Send` but not `Sync` (a plain once-cell: the first ask costs no atomic
/// handshake, and the slot is as small as two pointers). It belongs to one request, which
/// only one thread polls at a time; a framework that wants request-local data `Sync`
/// (Rocket) keeps it behind a mutex.
///
/// ```
/// use beaker_core::adapter::LazySession;
/// use beaker_core::{MemoryStore, SessionConfig, SessionManager};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = SessionConfig::new().with_secret("change me: at least 16 bytes")?;
/// let manager = SessionManager::builder(config).store(MemoryStore::new()).build()?;
///
/// let untouched = LazySession::new(manager.clone());
/// assert!(untouched.finish().await?.is_empty());
///
/// let slot = LazySession::new(manager);
/// let session = slot.get_or_start(|| [b"theme=dark".as_slice()]);
/// session.insert("n", &1).await?;
/// assert_eq!(slot.finish().await?.len(), 1);
/// # Ok(()) }
/// ```
pub struct LazySession {
    manager: SessionManager,
    session: OnceCell<Session>,
}

impl LazySession {
    /// An empty slot serving sessions from `manager`.
    pub fn new(manager: SessionManager) -> Self {
        LazySession { manager, session: OnceCell::new() }
    }

    /// The manager this slot starts sessions from.
    pub fn manager(&self) -> &SessionManager {
        &self.manager
    }

    /// The session, started now from the `Cookie` header values `cookie_headers` gives
    /// (as raw bytes, see [`SessionManager::start_bytes`]) if no one asked before. The
    /// closure runs at most once per slot, so a later asker does not look the headers up.
    pub fn get_or_start<'a, I>(&self, cookie_headers: impl FnOnce() -> I) -> &Session
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        self.session.get_or_init(|| self.manager.start_bytes(cookie_headers()))
    }

    /// The session, if someone started it.
    pub fn started(&self) -> Option<&Session> {
        self.session.get()
    }

    /// The session, if it was started and then used (read, changed or ended): the one
    /// [`finish`](Self::finish) has work for. Adapters that box the finishing future can
    /// test this first and skip the allocation on every other request.
    pub fn used(&self) -> Option<&Session> {
        self.started().filter(|s| s.is_touched())
    }

    /// For a slot the adapter can only borrow (a request extension, a request-local
    /// cache): the finishing of its session if it was used, as an owned `Send` future
    /// that needs the slot no more; `None` when there is nothing to finish.
    pub fn finish_used(&self) -> Option<impl Future<Output = Result<Finished, Error>> + Send + 'static> {
        let session = self.used()?.clone();
        let manager = self.manager.clone();
        Some(async move { manager.finish(&session).await })
    }

    /// Ends the request: [`SessionManager::finish`] for a used session, nothing (and no
    /// cookie) otherwise. The future is `Send`.
    ///
    /// # Errors
    /// Those of [`SessionManager::finish`].
    pub async fn finish(self) -> Result<Finished, Error> {
        match self.session.into_inner() {
            Some(session) if session.is_touched() => self.manager.finish(&session).await,
            _ => Ok(Finished::default()),
        }
    }
}

thread_local! {
    /// The slot of the request whose adapter future is being polled on this thread.
    /// `ManuallyDrop`: a thread-local without drop glue is a plain slot, with no destructor
    /// registration to check on every access (the guards always take their slot back, so
    /// nothing is left in it to drop).
    static CURRENT: Cell<ManuallyDrop<Option<LazySession>>> = const { Cell::new(ManuallyDrop::new(None)) };
}

/// Puts `slot` in this thread's current slot; returns what was there.
#[inline]
fn swap_current(slot: Option<LazySession>) -> Result<Option<LazySession>, std::thread::AccessError> {
    CURRENT.try_with(|c| ManuallyDrop::into_inner(c.replace(ManuallyDrop::new(slot))))
}

/// The current request on this thread: how an adapter's extractor finds its request's
/// slot without a request extension (no allocation, no table insert per request).
///
/// The adapter's middleware owns the slot (`Option<LazySession>`) in its future and makes
/// it current with [`LazySession::enter`] for the duration of its `call` and of each poll
/// of its future; an extractor running inside asks [`LazySession::current_session`]. A
/// future polls on one thread at a time and the guard restores the previous slot when the
/// poll returns or unwinds, so an extractor sees the request whose future is being polled,
/// never another's, and nested middlewares stack (the innermost is current). Code that
/// runs on another task (spawned by a handler) sees no current request: adapters offer a
/// request-extension mode for it.
impl LazySession {
    /// Makes `owner`'s slot current on this thread until the returned guard drops; the
    /// slot then goes back to `owner` (or stays taken, if someone took it) and the previous
    /// current slot (an outer middleware's, or none) is current again. Entering `None`
    /// hides an outer middleware's slot.
    #[inline]
    pub fn enter(owner: &mut Option<LazySession>) -> CurrentGuard<'_> {
        // `try_with`: during thread teardown the slot may be gone; the request then stays
        // with its owner and extractors find no session instead of panicking.
        match swap_current(owner.take()) {
            Ok(previous) => CurrentGuard { owner, previous, entered: true },
            Err(_) => CurrentGuard { owner, previous: None, entered: false },
        }
    }

    /// A handle on the current request's session, started now from the `Cookie` header
    /// values `cookie_headers` gives if this is the request's first ask; `None` when no
    /// middleware made a request current on this thread.
    pub fn current_session<'a, I>(cookie_headers: impl FnOnce() -> I) -> Option<Session>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let current = swap_current(None).ok()?;
        let handle = current.as_ref().map(|slot| slot.get_or_start(cookie_headers).clone());
        // Back in place before anything else can ask (a panic above leaves the slot empty:
        // the request's session is then dropped with it, never another request's shown).
        let _ = swap_current(current);
        handle
    }

    /// Runs `call` (a service's `call`, which may route and extract eagerly) with `slot` as
    /// the thread's current one, and returns the future it built wrapped so that every
    /// poll runs with the slot current too. The wrapper resolves to the inner output and
    /// the slot (`None` if the slot was `None`), for the middleware to finish.
    #[inline]
    pub fn run_current<F: Future>(mut slot: Option<LazySession>, call: impl FnOnce() -> F) -> WithCurrent<F> {
        let inner = {
            let _current = LazySession::enter(&mut slot);
            call()
        };
        WithCurrent { inner, slot }
    }
}

pin_project_lite::pin_project! {
    /// A future polled with its request's slot as the thread's current one, from
    /// [`LazySession::run_current`]; resolves to `(output, slot)`.
    pub struct WithCurrent<F> {
        #[pin]
        inner: F,
        slot: Option<LazySession>,
    }
}

impl<F: Future> Future for WithCurrent<F> {
    type Output = (F::Output, Option<LazySession>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = {
            let _current = LazySession::enter(this.slot);
            std::task::ready!(this.inner.poll(cx))
        };
        Poll::Ready((output, this.slot.take()))
    }
}

impl<F> fmt::Debug for WithCurrent<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithCurrent").field("slot", &self.slot).finish_non_exhaustive()
    }
}

/// The guard of [`LazySession::enter`]: while it lives, its slot is the thread's current one.
#[must_use = "the slot is current only while the guard lives"]
pub struct CurrentGuard<'a> {
    owner: &'a mut Option<LazySession>,
    previous: Option<LazySession>,
    entered: bool,
}

impl Drop for CurrentGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.entered {
            let previous = self.previous.take();
            if let Ok(mine) = swap_current(previous) {
                *self.owner = mine;
            }
        }
    }
}

impl fmt::Debug for CurrentGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentGuard").field("entered", &self.entered).finish_non_exhaustive()
    }
}

impl fmt::Debug for LazySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the id or the data.
        f.debug_struct("LazySession").field("started", &self.started().is_some()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, SessionConfig};

    fn manager() -> SessionManager {
        let config = SessionConfig::new().with_secret("a test secret of enough bytes").expect("secret");
        SessionManager::builder(config).store(MemoryStore::new()).build().expect("manager")
    }

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn the_slot_and_its_finish_are_send() {
        let slot = LazySession::new(manager());
        assert_send(&slot);
        assert_send(&slot.finish());
    }

    #[tokio::test]
    async fn nothing_starts_until_asked_and_headers_are_read_once() {
        let slot = LazySession::new(manager());
        assert!(slot.started().is_none());
        assert!(slot.used().is_none());
        let mut looked = 0;
        let first = slot
            .get_or_start(|| {
                looked += 1;
                [b"other=1".as_slice()]
            })
            .clone();
        let second = slot.get_or_start(|| -> [&[u8]; 0] { panic!("the headers are read once") }).clone();
        assert_eq!(looked, 1);
        // One state behind both handles.
        first.insert("k", &7).await.expect("insert");
        assert_eq!(second.get::<i32>("k").await.expect("get"), Some(7));
        assert!(slot.used().is_some());
    }

    #[tokio::test]
    async fn started_but_unused_finishes_with_nothing() {
        let slot = LazySession::new(manager());
        slot.get_or_start(|| [b"x=1".as_slice()]);
        assert!(slot.started().is_some());
        assert!(slot.used().is_none());
        assert!(slot.finish_used().is_none());
        assert!(slot.finish().await.expect("finish").is_empty());
    }

    #[tokio::test]
    async fn a_borrowed_slot_finishes_a_used_session() {
        let slot = LazySession::new(manager());
        assert!(slot.finish_used().is_none(), "nothing started");
        slot.get_or_start(|| [b"".as_slice()]).insert("n", &1).await.expect("insert");
        let finishing = slot.finish_used().expect("a used session");
        assert_send(&finishing);
        assert_eq!(finishing.await.expect("finish").len(), 1);
    }

    #[tokio::test]
    async fn the_current_slot_is_the_innermost_entered_and_is_restored_on_exit() {
        assert!(LazySession::current_session(|| [b"".as_slice()]).is_none(), "nothing entered");
        let mut outer = Some(LazySession::new(manager()));
        let mut inner = Some(LazySession::new(manager()));
        {
            let _outer = LazySession::enter(&mut outer);
            let a = LazySession::current_session(|| [b"".as_slice()]).expect("outer is current");
            a.insert("who", "outer").await.expect("insert");
            {
                let _inner = LazySession::enter(&mut inner);
                let b = LazySession::current_session(|| [b"".as_slice()]).expect("inner is current");
                assert_eq!(b.get::<String>("who").await.expect("get"), None, "another request's session");
                b.insert("who", "inner").await.expect("insert");
                let mut hidden = None;
                let _none = LazySession::enter(&mut hidden);
                assert!(LazySession::current_session(|| [b"".as_slice()]).is_none(), "entering None hides the rest");
            }
            let again = LazySession::current_session(|| -> [&[u8]; 0] { panic!("started already") });
            assert_eq!(again.expect("outer again").get::<String>("who").await.expect("get").as_deref(), Some("outer"));
        }
        assert!(LazySession::current_session(|| [b"".as_slice()]).is_none(), "all exited");
        // Each slot went back to its owner, with what was done through it.
        for (slot, who) in [(outer, "outer"), (inner, "inner")] {
            let session = slot.expect("returned to its owner");
            let started = session.started().expect("started through the current slot");
            assert_eq!(started.get::<String>("who").await.expect("get").as_deref(), Some(who));
        }
    }

    #[tokio::test]
    async fn run_current_makes_the_slot_current_in_call_and_every_poll_and_hands_it_back() {
        let m = manager();
        let future = LazySession::run_current(Some(LazySession::new(m.clone())), || {
            // In `call`: current, started here.
            let session = LazySession::current_session(|| [b"".as_slice()]).expect("current in call");
            async move {
                tokio::task::yield_now().await;
                // In a later poll: the same session, current again.
                let again = LazySession::current_session(|| -> [&[u8]; 0] { panic!("started in call") });
                again.expect("current in a later poll").insert("n", &1).await.expect("insert");
                session
            }
        });
        assert!(LazySession::current_session(|| [b"".as_slice()]).is_none(), "not current between polls");
        let (session, slot) = future.await;
        assert!(LazySession::current_session(|| [b"".as_slice()]).is_none());
        let slot = slot.expect("the slot comes back");
        assert_eq!(session.get::<i32>("n").await.expect("get"), Some(1));
        assert_eq!(slot.finish().await.expect("finish").len(), 1, "the used session is finished from the slot");
    }

    #[test]
    fn a_panic_inside_restores_the_previous_slot() {
        let mut outer = Some(LazySession::new(manager()));
        let _outer = LazySession::enter(&mut outer);
        let caught = std::panic::catch_unwind(|| {
            let mut inner = Some(LazySession::new(manager()));
            let _inner = LazySession::enter(&mut inner);
            panic!("a handler panics");
        });
        assert!(caught.is_err());
        let session = LazySession::current_session(|| [b"".as_slice()]).expect("the outer slot is current again");
        drop(session);
    }

    #[tokio::test]
    async fn a_session_written_through_the_slot_comes_back_from_its_cookie() {
        let m = manager();
        let slot = LazySession::new(m.clone());
        slot.get_or_start(|| [b"".as_slice()]).insert("n", &41).await.expect("insert");
        let cookies = slot.finish().await.expect("finish");
        let pair = cookies[0].as_str().split(';').next().expect("pair").to_owned();

        let next = LazySession::new(m);
        let session = next.get_or_start(|| [pair.as_bytes()]);
        assert_eq!(session.get::<i32>("n").await.expect("get"), Some(41));
        assert!(format!("{next:?}").contains("started: true"));
    }
}
