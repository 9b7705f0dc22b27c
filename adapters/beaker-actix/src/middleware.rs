//! [`SessionMiddleware`]: the per-request session lifecycle around the app's services.

use std::future::{ready, Ready};
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderValue, COOKIE, SET_COOKIE};
use actix_web::{HttpMessage as _, ResponseError as _};
use beaker_core::SessionManager;
use futures_util::future::LocalBoxFuture;

use crate::error::SessionError;

/// Middleware giving every request a session from its manager: `App::new().wrap(SessionMiddleware::new(manager))`.
///
/// A handler's error is a response in actix-web, so the session is finished after it like
/// after any other. A middleware wrapped *inside* this one that fails with `Err` ends the
/// request before the session can be finished (the request is gone by then): nothing the
/// request changed in the session is saved. Answer with an error *response* instead.
#[derive(Debug, Clone)]
pub struct SessionMiddleware {
    manager: SessionManager,
}

impl SessionMiddleware {
    /// Middleware serving sessions from `manager`.
    pub fn new(manager: SessionManager) -> Self {
        SessionMiddleware { manager }
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = SessionMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionMiddlewareService { service: Rc::new(service), manager: self.manager.clone() }))
    }
}

/// The service [`SessionMiddleware`] wraps around the app: starts the session (no I/O),
/// runs the inner service, finishes the session and appends its `Set-Cookie` headers.
#[derive(Debug)]
pub struct SessionMiddlewareService<S> {
    service: Rc<S>,
    manager: SessionManager,
}

impl<S, B> Service<ServiceRequest> for SessionMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let cookies = req.headers().get_all(COOKIE).filter_map(|v| v.to_str().ok());
        let session = self.manager.start(cookies);
        req.extensions_mut().insert(session.clone());
        let manager = self.manager.clone();
        let service = Rc::clone(&self.service);
        Box::pin(async move {
            let res = service.call(req).await?;
            let failure = match manager.finish(&session).await {
                Ok(set_cookies) => {
                    let values: Result<Vec<HeaderValue>, _> =
                        set_cookies.into_iter().map(|c| HeaderValue::try_from(c.into_string())).collect();
                    match values {
                        Ok(values) => {
                            let mut res = res.map_into_left_body();
                            for value in values {
                                res.headers_mut().append(SET_COOKIE, value);
                            }
                            return Ok(res);
                        }
                        // Core only emits visible ASCII; losing a cookie silently would
                        // lose the session, so fail loudly instead.
                        Err(_) => SessionError::InvalidHeader,
                    }
                }
                Err(e) => SessionError::from(e),
            };
            let (req, _) = res.into_parts();
            Ok(ServiceResponse::new(req, failure.error_response()).map_into_right_body())
        })
    }
}
