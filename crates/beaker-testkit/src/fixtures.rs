//! Small fixtures the tests of stores, adapters and demos share: a session manager with a
//! test secret, and the cookie a browser sends back for a `Set-Cookie` value.
//!
//! ```
//! use beaker_testkit::fixtures::{cookie_pair, manager};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let manager = manager();
//! let session = manager.start([""]);
//! session.insert("n", &1u64).await.unwrap();
//! let set_cookies = manager.finish(&session).await.unwrap();
//! let cookie = cookie_pair(set_cookies[0].as_str());
//! let again = manager.start([cookie.as_str()]);
//! assert_eq!(again.get::<u64>("n").await.unwrap(), Some(1));
//! # });
//! ```

use std::sync::Arc;

use beaker_core::store::SessionStore;
use beaker_core::{SessionConfig, SessionManager};

/// The signing secret of [`config`]: long enough for the configuration's checks, and
/// never a secret to use anywhere else.
pub const SECRET: &str = "a test secret, long enough";

/// A default configuration with [`SECRET`] as its secret.
pub fn config() -> SessionConfig {
    SessionConfig::new().with_secret(SECRET).expect("the test secret is long enough")
}

/// A session manager on [`config`] and the default (in-memory) store.
pub fn manager() -> SessionManager {
    SessionManager::builder(config()).build().expect("a manager on the test configuration")
}

/// A session manager on [`config`] and `store`, for running whole requests against a
/// store under test.
pub fn manager_on(store: Arc<dyn SessionStore>) -> SessionManager {
    SessionManager::builder(config()).shared_store(store).build().expect("a manager on the test configuration")
}

/// The `name=value` pair a browser sends back in its `Cookie` header for the `Set-Cookie`
/// value `set_cookie` (everything before the first `;`, without surrounding spaces).
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().trim().to_owned()
}
