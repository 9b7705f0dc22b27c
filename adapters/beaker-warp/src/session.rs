//! [`Session`]: the session handle, and who finishes it.

use std::ops::Deref;

use beaker_core::SessionManager;
use warp::reply::{Reply, Response};

use crate::error::SessionError;

/// The request's session (a [`beaker_core::Session`], which it dereferences to), yielded
/// by [`with_session`](crate::with_session).
///
/// Under a [`SessionService`](crate::SessionService) (or its [`SessionLayer`](crate::SessionLayer)) the layer
/// finishes the session after the reply, whatever path the request took; without one,
/// [`Session::finish`] is how the handler finishes it.
#[derive(Debug, Clone)]
pub struct Session {
    session: beaker_core::Session,
    finisher: Finisher,
}

/// Who ends the request's session.
#[derive(Debug, Clone)]
enum Finisher {
    /// A [`SessionService`](crate::SessionService) around the routes: it finishes the session
    /// once the reply is made, so [`Session::finish`] only turns the reply into a response.
    Layer,
    /// No layer: [`Session::finish`] must, with this manager.
    Handler(SessionManager),
}

impl Deref for Session {
    type Target = beaker_core::Session;

    fn deref(&self) -> &Self::Target {
        &self.session
    }
}

impl Session {
    /// A session a layer finishes.
    pub(crate) fn layered(session: beaker_core::Session) -> Self {
        Session { session, finisher: Finisher::Layer }
    }

    /// A session the handler finishes with [`Session::finish`].
    pub(crate) fn unlayered(session: beaker_core::Session, manager: SessionManager) -> Self {
        Session { session, finisher: Finisher::Handler(manager) }
    }

    /// The core session handle.
    pub fn into_inner(self) -> beaker_core::Session {
        self.session
    }

    /// Whether a [`SessionService`](crate::SessionService) finishes this session (then
    /// [`finish`](Self::finish) is optional and never finishes twice).
    pub fn is_layered(&self) -> bool {
        matches!(self.finisher, Finisher::Layer)
    }

    /// Turns `reply` into the response, finishing the session if no layer does.
    ///
    /// Without a [`SessionService`](crate::SessionService) this ends the request: it persists
    /// the session, appends its `Set-Cookie` headers to `reply` and merges the caching
    /// headers the session needs into the reply's `Vary` and `Cache-Control` (see
    /// [`beaker_core::CacheDirectives`]), or answers with the [`SessionError`] when that
    /// fails; a handler that does not call it loses the request's session changes. Under
    /// a layer the layer does all that once the response is made, so this only converts
    /// the reply: routes written for either setup work in both.
    ///
    /// `reply` may be a `Result<impl Reply, SessionError>`, so handlers can use `?`.
    pub async fn finish(&self, reply: impl Reply) -> Response {
        let mut res = reply.into_response();
        let manager = match &self.finisher {
            Finisher::Layer => return res,
            Finisher::Handler(manager) => manager,
        };
        let applied = match manager.finish(&self.session).await {
            Ok(finished) => beaker_http::apply(finished, res.headers_mut()).map_err(SessionError::from),
            Err(e) => Err(SessionError::from(e)),
        };
        match applied {
            Ok(()) => res,
            Err(e) => e.into_response(),
        }
    }
}
