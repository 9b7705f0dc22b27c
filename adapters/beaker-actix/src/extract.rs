//! [`Session`]: the extractor handlers take, and [`SessionExt`] for everything else.

use std::cell::Ref;
use std::future::{ready, Ready};
use std::ops::Deref;

use actix_web::dev::{Extensions, Payload, ServiceRequest};
use actix_web::guard::GuardContext;
use actix_web::http::header::{HeaderMap, HeaderValue, COOKIE};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use beaker_core::adapter::LazySession;

use crate::error::SessionError;

/// The request's session (a [`beaker_core::Session`], which it dereferences to).
///
/// Fails with [`SessionError::MissingMiddleware`] (500) when the app is not wrapped in
/// [`SessionMiddleware`](crate::SessionMiddleware). Extracting does no I/O: the session
/// loads on first use.
#[derive(Debug, Clone)]
pub struct Session(pub beaker_core::Session);

impl Deref for Session {
    type Target = beaker_core::Session;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequest for Session {
    type Error = SessionError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(req.session().map(Session).ok_or(SessionError::MissingMiddleware))
    }
}

/// Reaches the request's session from anything that sees the request: an
/// [`HttpRequest`], a [`ServiceRequest`] (in your own middleware), or a guard's
/// [`GuardContext`]. `None` without [`SessionMiddleware`](crate::SessionMiddleware).
///
/// Guards are synchronous while session data loads asynchronously, so a guard can hand
/// the session on but not read it:
///
/// ```
/// use actix_web::guard;
/// use beaker_actix::SessionExt as _;
///
/// let has_session_layer = guard::fn_guard(|ctx| ctx.session().is_some());
/// # let _ = has_session_layer;
/// ```
pub trait SessionExt {
    /// The request's session handle.
    fn session(&self) -> Option<beaker_core::Session>;
}

impl SessionExt for HttpRequest {
    fn session(&self) -> Option<beaker_core::Session> {
        session_in(self.headers(), || self.extensions())
    }
}

impl SessionExt for ServiceRequest {
    fn session(&self) -> Option<beaker_core::Session> {
        session_in(self.headers(), || self.extensions())
    }
}

impl SessionExt for GuardContext<'_> {
    fn session(&self) -> Option<beaker_core::Session> {
        session_in(&self.head().headers, || self.req_data())
    }
}

/// The session of the request whose `Cookie` headers are in `headers`, started on the
/// first ask: the current request's (a middleware is polling its future on this thread),
/// else the one a middleware in extension mode put into the request's `extensions`.
fn session_in<'r>(
    headers: &HeaderMap,
    extensions: impl FnOnce() -> Ref<'r, Extensions>,
) -> Option<beaker_core::Session> {
    // Bytes, unchecked: core reads them (lossily) only if the session is used.
    let cookie_headers = || headers.get_all(COOKIE).map(HeaderValue::as_bytes);
    LazySession::current_session(cookie_headers)
        .or_else(|| extensions().get::<LazySession>().map(|slot| slot.get_or_start(cookie_headers).clone()))
}
