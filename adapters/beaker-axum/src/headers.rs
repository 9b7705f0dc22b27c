//! Putting a finished session's headers on an axum response.

use beaker_core::Finished;
use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue};

use crate::error::SessionError;

/// Appends the `Set-Cookie` values and merges the caching directives into the handler's
/// `Vary` and `Cache-Control` (core decides the values; this only stores them).
pub(crate) fn apply(finished: Finished, headers: &mut HeaderMap) -> Result<(), SessionError> {
    let cache = finished.cache_directives();
    // Core only emits visible ASCII and keeps the handler's bytes; losing a cookie or a
    // caching header silently would leak or lose the session, so fail loudly instead.
    let value = |bytes: Vec<u8>| HeaderValue::from_bytes(&bytes).map_err(|_| SessionError::InvalidHeader);
    if let Some(vary) = cache.merge_vary(headers.get_all(VARY).iter().map(HeaderValue::as_bytes)) {
        headers.insert(VARY, value(vary)?);
    }
    if let Some(cc) = cache.merge_cache_control(headers.get_all(CACHE_CONTROL).iter().map(HeaderValue::as_bytes)) {
        headers.insert(CACHE_CONTROL, value(cc)?);
    }
    for cookie in finished {
        headers
            .append(SET_COOKIE, HeaderValue::try_from(cookie.into_string()).map_err(|_| SessionError::InvalidHeader)?);
    }
    Ok(())
}
