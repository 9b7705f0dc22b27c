//! [`SessionLayer`]: wraps services in a [`SessionService`].

use beaker_core::SessionManager;
use tower_layer::Layer;

use crate::service::SessionService;

/// A tower layer giving every request a session from `manager` and finishing it after
/// the inner service answered.
#[derive(Debug, Clone)]
pub struct SessionLayer {
    manager: SessionManager,
    extension: bool,
}

impl SessionLayer {
    /// A layer serving sessions from `manager`.
    pub fn new(manager: SessionManager) -> Self {
        SessionLayer { manager, extension: true }
    }

    /// Puts each request's session into its extensions (the default); see
    /// [`SessionService::with_request_extension`].
    pub fn with_request_extension(mut self) -> Self {
        self.extension = true;
        self
    }

    /// The session only for the thread's current request, not in the extensions; see
    /// [`SessionService::current_task_only`].
    pub fn current_task_only(mut self) -> Self {
        self.extension = false;
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let service = SessionService::new(inner, self.manager.clone());
        if self.extension {
            service
        } else {
            service.current_task_only()
        }
    }
}
