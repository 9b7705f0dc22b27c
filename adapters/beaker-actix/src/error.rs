//! [`SessionError`]: every session failure as an actix-web response, mapped in one place.

use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

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
    /// The [`Session`](crate::Session) extractor ran without the
    /// [`SessionMiddleware`](crate::SessionMiddleware), or on a task of its own under
    /// [`SessionMiddleware::current_task_only`](crate::SessionMiddleware::current_task_only).
    #[error(
        "no session in the request: wrap the app in beaker_actix::SessionMiddleware \
         (without current_task_only() to reach it from a spawned task)"
    )]
    MissingMiddleware,
    /// A `Set-Cookie` value could not be made a header value.
    #[error("a Set-Cookie value is not a valid header value")]
    InvalidHeader,
}

impl SessionError {
    fn public_message(&self) -> &'static str {
        match self {
            SessionError::Session(e) => e.public_message(),
            SessionError::MissingMiddleware => "session middleware missing",
            SessionError::InvalidHeader => "session error",
        }
    }
}

impl ResponseError for SessionError {
    fn status_code(&self) -> StatusCode {
        match self {
            SessionError::Session(e) => {
                StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            SessionError::MissingMiddleware | SessionError::InvalidHeader => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).content_type(ContentType::plaintext()).body(self.public_message())
    }
}
