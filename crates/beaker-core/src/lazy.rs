//! [`LazySession`]: a request's session, started only when something first asks for it.

use std::cell::OnceCell;
use std::fmt;
use std::future::Future;

use crate::error::Error;
use crate::manager::SessionManager;
use crate::session::Session;
use crate::SetCookie;

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
/// use beaker_core::{LazySession, MemoryStore, SessionConfig, SessionManager};
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
    pub fn finish_used(&self) -> Option<impl Future<Output = Result<Vec<SetCookie>, Error>> + Send + 'static> {
        let session = self.used()?.clone();
        let manager = self.manager.clone();
        Some(async move { manager.finish(&session).await })
    }

    /// Ends the request: [`SessionManager::finish`] for a used session, nothing (and no
    /// cookie) otherwise. The future is `Send`.
    ///
    /// # Errors
    /// Those of [`SessionManager::finish`].
    pub async fn finish(self) -> Result<Vec<SetCookie>, Error> {
        match self.session.into_inner() {
            Some(session) if session.is_touched() => self.manager.finish(&session).await,
            _ => Ok(Vec::new()),
        }
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
