//! [`SessionLayer`]: wraps services in a [`SessionService`].

use beaker_core::SessionManager;
use tower_layer::Layer;

use crate::service::SessionService;

/// A tower layer giving every request a session from `manager` and finishing it after
/// the inner service answered.
#[derive(Debug, Clone)]
pub struct SessionLayer {
    manager: SessionManager,
}

impl SessionLayer {
    /// A layer serving sessions from `manager`.
    pub fn new(manager: SessionManager) -> Self {
        SessionLayer { manager }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, self.manager.clone())
    }
}
