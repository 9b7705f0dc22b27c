//! [`SessionFairing`]: the per-request session lifecycle.

use beaker_core::SessionManager;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Request, Response};

use crate::error::SessionError;
use crate::Slot;

/// Owns the session manager: starts a session for every request (no I/O) and, on the
/// response, finishes it and appends its `Set-Cookie` headers.
#[derive(Debug, Clone)]
pub struct SessionFairing {
    manager: SessionManager,
}

impl SessionFairing {
    /// A fairing serving sessions from `manager`.
    pub fn new(manager: SessionManager) -> Self {
        SessionFairing { manager }
    }
}

#[rocket::async_trait]
impl Fairing for SessionFairing {
    fn info(&self) -> Info {
        Info { name: "beaker sessions", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, req: &mut Request<'_>, _data: &mut Data<'_>) {
        let session = self.manager.start(req.headers().get("Cookie"));
        req.local_cache(|| Slot(Some(session)));
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let Slot(Some(session)) = req.local_cache(|| Slot(None)) else {
            return;
        };
        match self.manager.finish(session).await {
            Ok(set_cookies) => {
                for cookie in set_cookies {
                    res.adjoin_raw_header("Set-Cookie", cookie.into_string());
                }
            }
            Err(e) => *res = SessionError::from(e).response(),
        }
    }
}
