//! [`SessionError`]: every session failure as a Rocket response, mapped in one place.

use std::io::Cursor;

use rocket::http::{ContentType, Status};
use rocket::response::{self, Responder};
use rocket::{Request, Response};

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
    /// The [`Session`](crate::Session) guard ran without the
    /// [`SessionFairing`](crate::SessionFairing) attached.
    #[error("no session in the request: attach beaker_rocket::SessionFairing")]
    MissingFairing,
}

impl SessionError {
    /// The status this error answers with.
    pub fn status(&self) -> Status {
        match self {
            SessionError::Session(e) => Status::from_code(e.status_code()).unwrap_or(Status::InternalServerError),
            SessionError::MissingFairing => Status::InternalServerError,
        }
    }

    fn public_message(&self) -> &'static str {
        match self {
            SessionError::Session(e) => e.public_message(),
            SessionError::MissingFairing => "session fairing missing",
        }
    }

    pub(crate) fn response<'r>(&self) -> Response<'r> {
        let body = self.public_message();
        Response::build()
            .status(self.status())
            .header(ContentType::Plain)
            .sized_body(body.len(), Cursor::new(body))
            .finalize()
    }
}

impl<'r> Responder<'r, 'static> for SessionError {
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'static> {
        Ok(self.response())
    }
}
