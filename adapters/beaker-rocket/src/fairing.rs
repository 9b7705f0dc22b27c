//! [`SessionFairing`]: the per-request session lifecycle.

use std::sync::Mutex;

use beaker_core::adapter::LazySession;
use beaker_core::{Finished, SessionManager};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Request, Response};

use crate::error::SessionError;
use crate::Slot;

/// Owns the session manager: gives every request a slot from which the [`Session`](crate::Session)
/// guard starts its session (no I/O) and, on the response, finishes the session if it was
/// used and appends its `Set-Cookie` headers. A request whose handlers never take the
/// guard builds no session.
#[derive(Debug, Clone)]
pub struct SessionFairing {
    manager: SessionManager,
}

impl SessionFairing {
    /// A fairing serving sessions from `manager`.
    pub fn new(manager: SessionManager) -> Self {
        SessionFairing { manager }
    }
}

#[rocket::async_trait]
impl Fairing for SessionFairing {
    fn info(&self) -> Info {
        Info { name: "beaker sessions", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, req: &mut Request<'_>, _data: &mut Data<'_>) {
        req.local_cache(|| Slot(Some(Mutex::new(LazySession::new(self.manager.clone())))));
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let Slot(Some(slot)) = req.local_cache(|| Slot(None)) else {
            return;
        };
        // The lock is released at the end of this statement, before the store is called.
        let Some(finishing) = Slot::lock(slot).finish_used() else {
            return;
        };
        match finishing.await {
            Ok(finished) => apply(finished, res),
            Err(e) => *res = SessionError::from(e).response(),
        }
    }
}

/// Appends the `Set-Cookie` values and merges the caching directives into the handler's
/// `Vary` and `Cache-Control` (core decides the values; this only stores them).
fn apply(finished: Finished, res: &mut Response<'_>) {
    if finished.adds_nothing() {
        return;
    }
    let cache = finished.cache_directives();
    // Rocket's header values are strings, and core keeps them byte for byte, adding only
    // ASCII: the merged value is UTF-8 again.
    let merged = |bytes: std::borrow::Cow<'static, [u8]>| String::from_utf8_lossy(&bytes).into_owned();
    if let Some(vary) = cache.merge_vary(res.headers().get("Vary").map(str::as_bytes)) {
        res.set_raw_header("Vary", merged(vary));
    }
    if let Some(cc) = cache.merge_cache_control(res.headers().get("Cache-Control").map(str::as_bytes)) {
        res.set_raw_header("Cache-Control", merged(cc));
    }
    for cookie in finished {
        res.adjoin_raw_header("Set-Cookie", cookie.into_string());
    }
}
