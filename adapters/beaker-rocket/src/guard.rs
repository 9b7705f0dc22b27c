//! [`Session`]: the request guard handlers take.

use std::ops::Deref;

use rocket::request::{FromRequest, Outcome};
use rocket::Request;

use crate::error::SessionError;
use crate::Slot;

/// The request's session (a [`beaker_core::Session`], which it dereferences to).
///
/// Fails with [`SessionError::MissingFairing`] (500) when the
/// [`SessionFairing`](crate::SessionFairing) is not attached. The guard does no I/O: the
/// session loads on first use, once per request, whichever guards ask for it.
#[derive(Debug, Clone)]
pub struct Session(pub beaker_core::Session);

impl Deref for Session {
    type Target = beaker_core::Session;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Session {
    type Error = SessionError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        match req.local_cache(|| Slot(None)) {
            Slot(Some(slot)) => {
                let slot = Slot::lock(slot);
                let session = slot.get_or_start(|| req.headers().get("Cookie").map(str::as_bytes));
                Outcome::Success(Session(session.clone()))
            }
            Slot(None) => Outcome::Error((SessionError::MissingFairing.status(), SessionError::MissingFairing)),
        }
    }
}
