//! The slot through which the [`Session`](crate::Session) extractor finds its request's
//! session: a thread-local that holds the request's [`LazySession`] only while the layer runs
//! the inner service (its `call`, and each poll of its future).
//!
//! Why not the request extensions: axum and hyper already put three entries there, so a
//! fourth outgrows the extension table's first allocation and rehashes it, on every
//! request. And with the slot the session starts only when first extracted: a request
//! whose handler never asks for it costs two thread-local swaps per poll, no allocation.
//! A future polls on one thread at a time and the slot is restored when a poll returns
//! (or unwinds), so an extractor sees the request whose future is being polled, never
//! another's; nested layers stack.

use std::cell::Cell;

use beaker_core::{LazySession, Session};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

/// Starts `slot`'s session from `headers` if no one asked for it yet.
pub(crate) fn session_of<'a>(slot: &'a LazySession, headers: &HeaderMap) -> &'a Session {
    // Bytes, unchecked: core reads them (lossily) only if the session is used.
    slot.get_or_start(|| headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes))
}

thread_local! {
    static CURRENT: Cell<Option<LazySession>> = const { Cell::new(None) };
}

/// The request's [`LazySession`] made current for the guard's lifetime; on drop, it goes
/// back to its owner and the previous one (an outer layer's, or none) is current again.
pub(crate) struct Scope<'a> {
    owner: &'a mut Option<LazySession>,
    previous: Option<LazySession>,
    entered: bool,
}

/// Makes `owner`'s request current until the returned guard is dropped.
pub(crate) fn enter(owner: &mut Option<LazySession>) -> Scope<'_> {
    // `try_with`: during thread teardown the slot may be gone; the request then stays
    // with its owner and extractors report the layer as missing instead of panicking.
    match CURRENT.try_with(|c| c.replace(owner.take())) {
        Ok(previous) => Scope { owner, previous, entered: true },
        Err(_) => Scope { owner, previous: None, entered: false },
    }
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        if self.entered {
            let previous = self.previous.take();
            if let Ok(mine) = CURRENT.try_with(|c| c.replace(previous)) {
                *self.owner = mine;
            }
        }
    }
}

/// A handle on the current request's session (started now from `headers` if this is
/// the first ask), if a layer made a request current on this thread.
pub(crate) fn session(headers: &HeaderMap) -> Option<Session> {
    CURRENT
        .try_with(|c| {
            let current = c.take();
            let handle = current.as_ref().map(|slot| session_of(slot, headers).clone());
            c.set(current);
            handle
        })
        .ok()
        .flatten()
}
