//! Putting a finished session's headers on a axum response: the translation of core's
//! [`ResponseHeaders`] to `http`'s header map (core decides the values and the order).

use std::borrow::Cow;

use beaker_core::adapter::{ResponseHeader, ResponseHeaders};
use beaker_core::Finished;
use http::header::{HeaderName, CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue};

use crate::error::SessionError;

/// Appends the `Set-Cookie` values and merges the caching directives into the handler's
/// `Vary` and `Cache-Control`.
pub(crate) fn apply(finished: Finished, headers: &mut HeaderMap) -> Result<(), SessionError> {
    finished.apply_to(&mut Headers(headers))
}

struct Headers<'a>(&'a mut HeaderMap);

fn name(header: ResponseHeader) -> HeaderName {
    match header {
        ResponseHeader::Vary => VARY,
        ResponseHeader::CacheControl => CACHE_CONTROL,
    }
}

impl ResponseHeaders for Headers<'_> {
    type Error = SessionError;

    fn merge<T>(&self, header: ResponseHeader, merge: impl FnOnce(&mut dyn Iterator<Item = &[u8]>) -> T) -> T {
        merge(&mut self.0.get_all(name(header)).iter().map(HeaderValue::as_bytes))
    }

    fn set(&mut self, header: ResponseHeader, value: Cow<'static, [u8]>) -> Result<(), SessionError> {
        self.0.insert(name(header), header_value(value)?);
        Ok(())
    }

    fn append_set_cookie(&mut self, value: String) -> Result<(), SessionError> {
        self.0.append(SET_COOKIE, header_value(Cow::Owned(value.into_bytes()))?);
        Ok(())
    }
}

/// A header value taking `bytes` as they are (a constant or a buffer core built: no
/// copy), or [`SessionError::InvalidHeader`].
fn header_value(bytes: Cow<'static, [u8]>) -> Result<HeaderValue, SessionError> {
    let bytes = match bytes {
        Cow::Borrowed(b) => bytes::Bytes::from_static(b),
        Cow::Owned(v) => bytes::Bytes::from(v),
    };
    HeaderValue::from_maybe_shared(bytes).map_err(|_| SessionError::InvalidHeader)
}
