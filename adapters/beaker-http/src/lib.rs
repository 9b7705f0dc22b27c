//! The `http` crate (1.x) and tower glue of the beaker-rs adapters for axum and warp: a
//! request's `Cookie` header values for [`SessionManager::start_bytes`](beaker_core::SessionManager::start_bytes),
//! a finished session's headers on a response ([`apply`]), and the [`SessionService`]
//! (with its [`SessionLayer`]) that runs the session lifecycle around a tower service,
//! generic over the [`Framework`] whose response type and error response it uses. Core
//! decides every value and their order ([`Finished::apply_to`]); this crate only
//! translates to `http`'s types.
//!
//! ```
//! use beaker_core::{MemoryStore, SessionConfig, SessionManager};
//! use http::header::{COOKIE, SET_COOKIE, VARY};
//! use http::HeaderMap;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SessionConfig::new().with_secret("change me: at least 16 bytes")?;
//! let manager = SessionManager::builder(config).store(MemoryStore::new()).build()?;
//!
//! let mut request = HeaderMap::new();
//! request.insert(COOKIE, "theme=dark".parse()?);
//! let session = manager.start_bytes(beaker_http::cookie_headers(&request));
//! session.insert("n", &1).await?;
//!
//! let mut response = HeaderMap::new();
//! beaker_http::apply(manager.finish(&session).await?, &mut response)?;
//! assert_eq!(response.get_all(SET_COOKIE).iter().count(), 1);
//! assert_eq!(response[VARY], "Cookie");
//! # Ok(()) }
//! ```

mod service;

use std::borrow::Cow;

use beaker_core::adapter::{ResponseHeader, ResponseHeaders};
use beaker_core::Finished;
use http::header::{HeaderName, CACHE_CONTROL, COOKIE, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue};

pub use service::{FinishError, Framework, ResponseFuture, SessionLayer, SessionService};

/// The `Cookie` header values of a request, as bytes, unchecked: core reads them (lossily)
/// only if the session is used.
pub fn cookie_headers(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes)
}

/// A value core produced that `http` refused as a header value. Core only emits visible
/// ASCII and keeps the handler's own bytes, so this means a handler's header was already
/// invalid; the adapter answers with an error rather than lose a cookie or a caching
/// header silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidHeader;

impl std::fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a session header value is not a valid HTTP header value")
    }
}

impl std::error::Error for InvalidHeader {}

/// Appends the `Set-Cookie` values and merges the caching directives into the handler's
/// `Vary` and `Cache-Control` ([`Finished::apply_to`]); a response the session adds
/// nothing to is left as it is.
///
/// # Errors
/// [`InvalidHeader`] for a value `http` refuses; the values before it are set.
pub fn apply(finished: Finished, headers: &mut HeaderMap) -> Result<(), InvalidHeader> {
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
    type Error = InvalidHeader;

    fn merge<T>(&self, header: ResponseHeader, merge: impl FnOnce(&mut dyn Iterator<Item = &[u8]>) -> T) -> T {
        merge(&mut self.0.get_all(name(header)).iter().map(HeaderValue::as_bytes))
    }

    fn set(&mut self, header: ResponseHeader, value: Cow<'static, [u8]>) -> Result<(), InvalidHeader> {
        self.0.insert(name(header), header_value(value)?);
        Ok(())
    }

    fn append_set_cookie(&mut self, value: String) -> Result<(), InvalidHeader> {
        self.0.append(SET_COOKIE, header_value(Cow::Owned(value.into_bytes()))?);
        Ok(())
    }
}

/// A header value taking `bytes` as they are (a constant or a buffer core built: no copy).
fn header_value(bytes: Cow<'static, [u8]>) -> Result<HeaderValue, InvalidHeader> {
    let bytes = match bytes {
        Cow::Borrowed(b) => bytes::Bytes::from_static(b),
        Cow::Owned(v) => bytes::Bytes::from(v),
    };
    HeaderValue::from_maybe_shared(bytes).map_err(|_| InvalidHeader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_value_is_an_error_not_a_dropped_header() {
        assert_eq!(header_value(Cow::Borrowed(b"a\nb")), Err(InvalidHeader));
        assert!(header_value(Cow::Borrowed(b"Cookie")).is_ok());
        assert!(header_value(Cow::Owned(b"s=1; Path=/".to_vec())).is_ok());
    }

    #[test]
    fn cookie_headers_are_every_cookie_line() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1"));
        h.append(COOKIE, HeaderValue::from_static("b=2"));
        h.append(VARY, HeaderValue::from_static("x"));
        assert_eq!(cookie_headers(&h).collect::<Vec<_>>(), [b"a=1".as_slice(), b"b=2".as_slice()]);
    }
}
