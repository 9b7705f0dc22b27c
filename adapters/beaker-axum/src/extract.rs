//! [`Session`]: the extractor handlers take.

use std::ops::Deref;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::error::SessionError;
use crate::scope;

/// The request's session (a [`beaker_core::Session`], which it dereferences to).
///
/// Rejects with [`SessionError::MissingLayer`] (500) when the route has no
/// [`SessionLayer`](crate::SessionLayer), or when it runs on another task than the
/// layer's future under [`SessionLayer::current_task_only`](crate::SessionLayer::current_task_only).
/// Extracting does no I/O: the session loads on first use.
#[derive(Debug, Clone)]
pub struct Session(pub beaker_core::Session);

impl Deref for Session {
    type Target = beaker_core::Session;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        scope::session(&parts.headers)
            .or_else(|| parts.extensions.get::<beaker_core::Session>().cloned())
            .map(Session)
            .ok_or(SessionError::MissingLayer)
    }
}
