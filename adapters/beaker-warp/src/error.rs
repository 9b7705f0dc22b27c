//! [`SessionError`]: every session failure as a warp reply, mapped in one place.

use warp::http::header::CONTENT_TYPE;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

/// A session failure, answerable as a reply: a store outage is 503, a session too large
/// for its store or cookie 413, anything else 500, always with a one-line `text/plain`
/// body that gives nothing away.
///
/// Handlers return it with `?` on any [`beaker_core::Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session engine failed.
    #[error(transparent)]
    Session(#[from] beaker_core::Error),
    /// A `Set-Cookie` value could not be made a header value.
    #[error("a Set-Cookie value is not a valid header value")]
    InvalidHeader,
}

impl SessionError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            SessionError::Session(e) => {
                StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            SessionError::InvalidHeader => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn public_message(&self) -> &'static str {
        match self {
            SessionError::Session(e) => e.public_message(),
            SessionError::InvalidHeader => "session error",
        }
    }
}

impl Reply for SessionError {
    fn into_response(self) -> Response {
        let mut res = warp::reply::with_status(self.public_message(), self.status()).into_response();
        res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        res
    }
}

impl From<beaker_http::InvalidHeader> for SessionError {
    fn from(_: beaker_http::InvalidHeader) -> Self {
        SessionError::InvalidHeader
    }
}

impl From<beaker_http::FinishError> for SessionError {
    fn from(e: beaker_http::FinishError) -> Self {
        match e {
            beaker_http::FinishError::Session(e) => SessionError::Session(e),
            beaker_http::FinishError::InvalidHeader(_) => SessionError::InvalidHeader,
        }
    }
}
