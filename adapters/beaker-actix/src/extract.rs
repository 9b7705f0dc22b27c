//! [`Session`]: the extractor handlers take, and [`SessionExt`] for everything else.

use std::cell::OnceCell;
use std::future::{ready, Ready};
use std::ops::Deref;

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::guard::GuardContext;
use actix_web::http::header::{HeaderMap, HeaderValue, COOKIE};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use beaker_core::SessionManager;

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
        self.extensions().get::<RequestSession>().map(|r| r.session(self.headers()))
    }
}

impl SessionExt for ServiceRequest {
    fn session(&self) -> Option<beaker_core::Session> {
        self.extensions().get::<RequestSession>().map(|r| r.session(self.headers()))
    }
}

impl SessionExt for GuardContext<'_> {
    fn session(&self) -> Option<beaker_core::Session> {
        self.req_data().get::<RequestSession>().map(|r| r.session(&self.head().headers))
    }
}

/// What [`SessionMiddleware`](crate::SessionMiddleware) puts into the request extensions:
/// the manager, and the session once someone asks for it. Started lazily, a session costs
/// nothing (no handle, no copy of the `Cookie` header) on a request that never uses it.
pub(crate) struct RequestSession {
    manager: SessionManager,
    session: OnceCell<beaker_core::Session>,
}

impl RequestSession {
    pub(crate) fn new(manager: SessionManager) -> Self {
        RequestSession { manager, session: OnceCell::new() }
    }

    /// The session, started from the request's `headers` on the first ask.
    fn session(&self, headers: &HeaderMap) -> beaker_core::Session {
        self.session
            // Bytes, unchecked: core reads them (lossily) only if the session is used.
            .get_or_init(|| self.manager.start_bytes(headers.get_all(COOKIE).map(HeaderValue::as_bytes)))
            .clone()
    }

    /// The session, if anyone asked for it.
    pub(crate) fn started(&self) -> Option<beaker_core::Session> {
        self.session.get().cloned()
    }
}
