//! Putting a finished session's headers on an axum response.

use std::borrow::Cow;

use beaker_core::Finished;
use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue};

use crate::error::SessionError;

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
