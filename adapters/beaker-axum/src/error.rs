//! [`SessionError`]: every session failure as an axum response, mapped in one place.

use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};

/// A session failure, answerable as a response: a store outage is 503, a session too
/// large for its store or cookie 413, anything else 500, always with a one-line
/// `text/plain` body that gives nothing away.
///
/// Handlers return it with `?` on any [`beaker_core::Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session engine failed.
    #[error(transparent)]
    Session(#[from] beaker_core::Error),
    /// The [`Session`](crate::Session) extractor ran on a route without the
    /// [`SessionLayer`](crate::SessionLayer).
    #[error("no session in the request: add beaker_axum::SessionLayer to the router")]
    MissingLayer,
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
            SessionError::MissingLayer | SessionError::InvalidHeader => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn public_message(&self) -> &'static str {
        match self {
            SessionError::Session(e) => e.public_message(),
            SessionError::MissingLayer => "session layer missing",
            SessionError::InvalidHeader => "session error",
        }
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let mut res = (self.status(), self.public_message()).into_response();
        res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        res
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
