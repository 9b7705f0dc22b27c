//! The adapters through the facade: with its framework feature on, an application names
//! `beaker_rs::axum::SessionLayer` (and so on) with `beaker-rs` as its only beaker-rs
//! dependency, and the re-exported layer works on a real router.
#![cfg(all(feature = "axum", feature = "actix", feature = "rocket", feature = "warp"))]

use axum::routing::get;
use tower::ServiceExt as _;

async fn count(session: beaker_rs::axum::Session) -> Result<String, beaker_rs::axum::SessionError> {
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.insert("n", &n).await?;
    Ok(n.to_string())
}

#[tokio::test]
async fn the_axum_adapter_is_usable_through_the_facade() {
    let config = beaker_rs::SessionConfig::new().with_secret("a secret of sixteen+ bytes").unwrap().with_url("memory:");
    let sessions = beaker_rs::session_manager(config).await.unwrap();
    let app = axum::Router::new().route("/", get(count)).layer(beaker_rs::axum::SessionLayer::new(sessions));
    let res = app.oneshot(axum::http::Request::new(axum::body::Body::empty())).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("set-cookie"), "the layer saved the session");
}

#[test]
fn every_adapter_is_re_exported() {
    // Naming the types is the test: this file does not compile without the re-exports.
    let names = [
        std::any::type_name::<beaker_rs::actix::SessionMiddleware>(),
        std::any::type_name::<beaker_rs::rocket::SessionFairing>(),
        std::any::type_name::<beaker_rs::warp::Session>(),
    ];
    assert!(
        names[0].contains("beaker_actix") && names[1].contains("beaker_rocket") && names[2].contains("beaker_warp")
    );
}
