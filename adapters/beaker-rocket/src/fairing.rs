//! [`SessionFairing`]: the per-request session lifecycle.

use std::borrow::Cow;
use std::sync::Mutex;

use beaker_core::adapter::{LazySession, ResponseHeader, ResponseHeaders};
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
/// `Vary` and `Cache-Control` (core decides the values and the order; [`Headers`] only
/// translates).
fn apply(finished: Finished, res: &mut Response<'_>) {
    let Ok(()) = finished.apply_to(&mut Headers(res));
}

struct Headers<'r, 'a>(&'a mut Response<'r>);

impl ResponseHeaders for Headers<'_, '_> {
    /// Rocket takes any string as a header value.
    type Error = std::convert::Infallible;

    fn merge<T>(&self, header: ResponseHeader, merge: impl FnOnce(&mut dyn Iterator<Item = &[u8]>) -> T) -> T {
        merge(&mut self.0.headers().get(header.name()).map(str::as_bytes))
    }

    fn set(&mut self, header: ResponseHeader, value: Cow<'static, [u8]>) -> Result<(), Self::Error> {
        // Rocket's header values are strings, and core keeps them byte for byte, adding
        // only ASCII: the merged value is UTF-8 again.
        self.0.set_raw_header(header.name(), String::from_utf8_lossy(&value).into_owned());
        Ok(())
    }

    fn append_set_cookie(&mut self, value: String) -> Result<(), Self::Error> {
        self.0.adjoin_raw_header("Set-Cookie", value);
        Ok(())
    }
}
