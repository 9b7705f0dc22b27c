//! [`Session`]: the session handle, and who finishes it.

use std::borrow::Cow;
use std::ops::Deref;

use beaker_core::{Finished, SessionManager};
use warp::http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use warp::http::{HeaderMap, HeaderValue};
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
            Ok(finished) => apply(finished, res.headers_mut()),
            Err(e) => Err(SessionError::from(e)),
        };
        match applied {
            Ok(()) => res,
            Err(e) => e.into_response(),
        }
    }
}

/// Appends the `Set-Cookie` values and merges the caching directives into the handler's
/// `Vary` and `Cache-Control` (core decides the values; this only stores them).
pub(crate) fn apply(finished: Finished, headers: &mut HeaderMap) -> Result<(), SessionError> {
    if finished.adds_nothing() {
        return Ok(());
    }
    let cache = finished.cache_directives();
    // Each `get_all` is a header lookup: skipped when core asks for nothing there.
    if cache.vary_cookie() {
        if let Some(vary) = cache.merge_vary(headers.get_all(VARY).iter().map(HeaderValue::as_bytes)) {
            headers.insert(VARY, header_value(vary)?);
        }
    }
    if cache.keep_out_of_shared_caches() {
        if let Some(cc) = cache.merge_cache_control(headers.get_all(CACHE_CONTROL).iter().map(HeaderValue::as_bytes)) {
            headers.insert(CACHE_CONTROL, header_value(cc)?);
        }
    }
    for cookie in finished {
        headers.append(SET_COOKIE, header_value(Cow::Owned(cookie.into_string().into_bytes()))?);
    }
    Ok(())
}

/// A header value taking `bytes` as they are (a constant or a buffer core built: no
/// copy). Core only emits visible ASCII and keeps the handler's bytes; losing a cookie or
/// a caching header silently would leak or lose the session, so a value that is not valid
/// fails loudly instead.
fn header_value(bytes: Cow<'static, [u8]>) -> Result<HeaderValue, SessionError> {
    let bytes = match bytes {
        Cow::Borrowed(b) => bytes::Bytes::from_static(b),
        Cow::Owned(v) => bytes::Bytes::from(v),
    };
    HeaderValue::from_maybe_shared(bytes).map_err(|_| SessionError::InvalidHeader)
}
