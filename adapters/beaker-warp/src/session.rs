//! [`Session`]: the session handle plus the manager that finishes it.

use std::ops::Deref;

use beaker_core::SessionManager;
use warp::http::header::SET_COOKIE;
use warp::http::HeaderValue;
use warp::reply::{Reply, Response};

use crate::error::SessionError;

/// The request's session (a [`beaker_core::Session`], which it dereferences to), yielded
/// by [`with_session`](crate::with_session).
#[derive(Debug, Clone)]
pub struct Session {
    session: beaker_core::Session,
    manager: SessionManager,
}

impl Deref for Session {
    type Target = beaker_core::Session;

    fn deref(&self) -> &Self::Target {
        &self.session
    }
}

impl Session {
    pub(crate) fn new(session: beaker_core::Session, manager: SessionManager) -> Self {
        Session { session, manager }
    }

    /// The core session handle.
    pub fn into_inner(self) -> beaker_core::Session {
        self.session
    }

    /// Ends the request: persists the session and appends its `Set-Cookie` headers to
    /// `reply`, or answers with the [`SessionError`] when that fails.
    ///
    /// `reply` may be a `Result<impl Reply, SessionError>`, so handlers can use `?`.
    pub async fn finish(&self, reply: impl Reply) -> Response {
        let mut res = reply.into_response();
        match self.manager.finish(&self.session).await {
            Ok(set_cookies) => {
                for cookie in set_cookies {
                    match HeaderValue::try_from(cookie.into_string()) {
                        Ok(value) => {
                            res.headers_mut().append(SET_COOKIE, value);
                        }
                        // Core only emits visible ASCII; losing a cookie silently would
                        // lose the session, so fail loudly instead.
                        Err(_) => return SessionError::InvalidHeader.into_response(),
                    }
                }
                res
            }
            Err(e) => SessionError::from(e).into_response(),
        }
    }
}
