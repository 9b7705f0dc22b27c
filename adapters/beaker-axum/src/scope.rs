//! The slot through which the [`Session`](crate::Session) extractor finds its request's
//! session: a thread-local that holds the session only while the layer runs the inner
//! service (its `call`, and each poll of its future).
//!
//! Why not the request extensions alone: axum and hyper already put three entries there,
//! so a fourth outgrows the extension table's first allocation and rehashes it, on every
//! request, used session or not. The slot costs two thread-local swaps per poll and no
//! allocation. A future polls on one thread at a time and the slot is restored when a poll
//! returns (or unwinds), so an extractor sees the session of the request whose future is
//! being polled, never another's; nested layers stack.

use std::cell::Cell;

use beaker_core::Session;

thread_local! {
    static CURRENT: Cell<Option<Session>> = const { Cell::new(None) };
}

/// The request's session made current for the guard's lifetime; on drop, the session
/// goes back to its owner and the previous one (an outer layer's, or none) is current
/// again.
pub(crate) struct Scope<'a> {
    owner: &'a mut Option<Session>,
    previous: Option<Session>,
    entered: bool,
}

/// Makes `owner`'s session current until the returned guard is dropped.
pub(crate) fn enter(owner: &mut Option<Session>) -> Scope<'_> {
    // `try_with`: during thread teardown the slot may be gone; the session then stays
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

/// A handle on the current session, if a layer made one current on this thread.
pub(crate) fn current() -> Option<Session> {
    CURRENT
        .try_with(|c| {
            let session = c.take();
            let handle = session.clone();
            c.set(session);
            handle
        })
        .ok()
        .flatten()
}
