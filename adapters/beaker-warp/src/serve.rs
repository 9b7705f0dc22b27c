//! [`serve`]: `warp::serve` for routes wrapped in a [`SessionService`](crate::SessionService),
//! which `warp::serve` cannot run (it takes filters only).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_service::Service;
use warp::http::Request;
use warp::reply::Response;

/// Serves `app` on `listener`, HTTP/1 and HTTP/2 (with upgrades) on hyper as
/// `warp::serve` does, until `shutdown` resolves; then it stops accepting and returns once
/// the open connections have answered their requests in flight. Pass
/// `std::future::pending()` to serve forever.
///
/// `app` is usually `SessionService::new(warp::service(routes), manager)`. Unlike `warp::serve`, the
/// request extensions carry no remote address (`warp::addr::remote()` yields `None`).
///
/// A failed accept is skipped; one that is not about a single connection (such as the
/// process running out of file descriptors) pauses accepting for a second first, so that
/// the loop does not spin while connections close.
pub async fn serve<S>(listener: TcpListener, app: S, shutdown: impl Future<Output = ()>)
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let connections = GracefulShutdown::new();
    let http = auto::Builder::new(TokioExecutor::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if !is_one_connection(&e) {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = http.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            // A connection error (a client gone mid-request) concerns that client only.
            let _ = connection.await;
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// Errors of one incoming connection (reset before it was accepted): the next accept is
/// unaffected.
fn is_one_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}
