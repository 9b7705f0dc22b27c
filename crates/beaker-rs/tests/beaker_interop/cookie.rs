//! `compat = beaker` with `type = cookie`, against the real Python Beaker 1.14's
//! `CookieSession` (`encrypt_key`, `validate_key`, the `cryptography` backend): the whole
//! session travels in the cookie; each side reads and updates what the other wrote, both
//! ways, with the JSON and the pickle serializer, and each honours the other's
//! `_accessed_time` for the idle timeout.

use std::time::Duration;

use beaker_rs::{SessionConfig, SessionManager};
use serde_json::Value;

use super::{environment, rust_request, PythonApp};

const VALIDATE_KEY: &str = "interop validate key shared by both apps";
const ENCRYPT_KEY: &str = "interop encrypt key shared by both apps";

fn python(python: &str, redis: &str, timeout: Option<u64>, serializer: &str) -> PythonApp {
    PythonApp::start_with(
        python,
        redis,
        timeout,
        serializer,
        &[("BEAKER_TEST_VALIDATE_KEY", VALIDATE_KEY), ("BEAKER_TEST_ENCRYPT_KEY", ENCRYPT_KEY)],
    )
}

async fn manager(timeout: Option<u64>, serializer: &str) -> SessionManager {
    let timeout = timeout.map_or_else(|| "none".to_owned(), |t| t.to_string());
    let options = [
        ("session.compat", "beaker"),
        ("session.type", "cookie"),
        ("session.validate_key", VALIDATE_KEY),
        ("session.encrypt_key", ENCRYPT_KEY),
        ("session.data_serializer", serializer),
        ("session.timeout", &timeout),
    ];
    beaker_rs::session_manager(SessionConfig::from_map(options).expect("valid options")).await.expect("manager")
}

async fn both_ways(serializer: &str) {
    let Some((python_bin, redis)) = environment("cookie sessions both ways") else {
        return;
    };
    let py = python(&python_bin, &redis, None, serializer);
    let m = manager(None, serializer).await;

    // Python -> Rust -> Python.
    let (_, cookie) = py.get("/login?user=alice", None).await;
    let cookie = cookie.expect("Python sets the session cookie");
    // Beaker stamps `_creation_time` when it writes the cookie, after the app ran.
    let (seen, _) = py.get("/get", Some(&cookie)).await;
    let (py_id, created) = (seen["_id"].clone(), seen["_creation_time"].clone());
    assert!(py_id.as_str().is_some_and(|id| id.len() == 32), "{seen:?}");
    let ((user, id), updated) = rust_request(&m, Some(&cookie), |s| async move {
        let user: Option<String> = s.get("user").await.unwrap();
        s.insert("cart", &[1, 2, 3]).await.unwrap();
        s.insert("note", "from rust é").await.unwrap();
        (user, s.id().await.unwrap())
    })
    .await;
    assert_eq!(user.as_deref(), Some("alice"), "Rust reads Python's cookie session");
    assert_eq!(Some(id.expect("an id").expose()), py_id.as_str(), "Beaker's _id is the session id");
    let updated = updated.expect("Rust sends the updated session");
    let (seen, _) = py.get("/get", Some(&updated)).await;
    assert_eq!(seen["user"], "alice", "{seen:?}");
    assert_eq!(seen["cart"], serde_json::json!([1, 2, 3]));
    assert_eq!(seen["note"], "from rust é");
    assert_eq!((&seen["_id"], &seen["_creation_time"]), (&py_id, &created), "the same session");
    assert_eq!((&seen["_path"], &seen["_domain"]), (&Value::from("/"), &Value::Null));
    assert_eq!(seen["_types_of"]["_accessed_time"], "float");

    // Rust -> Python -> Rust.
    let (_, from_rust) = rust_request(&m, None, |s| async move { s.insert("user", "bob").await.unwrap() }).await;
    let from_rust = from_rust.expect("Rust sets the session cookie");
    let ((rust_id, _), _) = rust_request(&m, Some(&from_rust), |s| async move {
        (s.id().await.unwrap().map(|i| i.expose().to_owned()), s.get::<String>("user").await.unwrap())
    })
    .await;
    let (seen, from_python) = py.get("/set?k=theme&v=%22dark%22", Some(&from_rust)).await;
    assert_eq!((&seen["user"], &seen["theme"]), (&Value::from("bob"), &Value::from("dark")), "{seen:?}");
    assert_eq!(seen["_id"].as_str(), rust_id.as_deref(), "Python sees Rust's id");
    let from_python = from_python.expect("Python sends the updated session");
    let ((user, theme, id), _) = rust_request(&m, Some(&from_python), |s| async move {
        (s.get::<String>("user").await.unwrap(), s.get::<String>("theme").await.unwrap(), s.id().await.unwrap())
    })
    .await;
    assert_eq!((user.as_deref(), theme.as_deref()), (Some("bob"), Some("dark")), "Rust reads Python's update");
    assert_eq!(id.map(|i| i.expose().to_owned()), rust_id, "and keeps the id");

    // A tampered cookie is refused by both sides.
    let mut forged = from_rust.clone().into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let (seen, _) = py.get("/get", Some(&forged)).await;
    assert!(seen.get("user").is_none(), "Python accepted a forged cookie");
    let (user, _) = rust_request(&m, Some(&forged), |s| async move { s.get::<String>("user").await.unwrap() }).await;
    assert_eq!(user, None, "Rust accepted a forged cookie");
}

#[tokio::test]
async fn json_cookie_sessions_are_shared_both_ways() {
    both_ways("json").await;
}

#[tokio::test]
async fn pickled_cookie_sessions_are_shared_both_ways() {
    both_ways("pickle").await;
    let Some((python_bin, redis)) = environment("pickled_cookie_sessions_are_shared_both_ways") else {
        return;
    };
    // Python's tuple of bytes and None reaches Rust as such, and goes back as a list.
    let py = python(&python_bin, &redis, None, "pickle");
    let m = manager(None, "pickle").await;
    let (_, cookie) = py.get("/types", None).await;
    let ((types, _), back) = rust_request(&m, cookie.as_deref(), |s| async move {
        let types = s.get::<(i64, Vec<u8>, Option<i64>)>("types").await.unwrap();
        (types, s.insert("seen", &true).await.unwrap())
    })
    .await;
    assert_eq!(types, Some((1, vec![0, 255], None)));
    let (seen, _) = py.get("/get", back.as_deref()).await;
    assert_eq!(seen["types"], serde_json::json!([1, [0, 255], null]), "{seen:?}");
    assert_eq!(seen["seen"], true);
}

#[tokio::test]
async fn a_pickled_cookie_reads_as_no_session_in_json_mode() {
    let Some((python_bin, redis)) = environment("a_pickled_cookie_reads_as_no_session_in_json_mode") else {
        return;
    };
    let py = python(&python_bin, &redis, None, "pickle");
    let m = manager(None, "json").await;
    let (_, cookie) = py.get("/login?user=mallory", None).await;
    let ((user, new), _) = rust_request(&m, cookie.as_deref(), |s| async move {
        (s.get::<String>("user").await.unwrap(), s.is_new().await.unwrap())
    })
    .await;
    assert_eq!(user, None);
    assert!(new, "a cookie Rust cannot decode starts a fresh session");
}

/// See `IDLE_TIMEOUT` in the parent: steps 2 s under the timeout, waits 2 s over it.
const IDLE_TIMEOUT: u64 = 6;
const STEP: Duration = Duration::from_secs(4);

#[tokio::test]
async fn the_idle_timeout_of_cookie_sessions_is_honoured_by_both_sides() {
    let Some((python_bin, redis)) = environment("the_idle_timeout_of_cookie_sessions_is_honoured_by_both_sides") else {
        return;
    };
    let py = python(&python_bin, &redis, Some(IDLE_TIMEOUT), "json");
    let m = manager(Some(IDLE_TIMEOUT), "json").await;
    let (_, from_python) = py.get("/login?user=carol", None).await;
    let from_python = from_python.expect("a cookie");
    let (_, from_rust) = rust_request(&m, None, |s| async move { s.insert("user", "dave").await.unwrap() }).await;
    let from_rust = from_rust.expect("a cookie");

    // Each side's access moves `_accessed_time` in the cookie it sends back.
    tokio::time::sleep(STEP).await;
    let (user, python_touched) =
        rust_request(&m, Some(&from_python), |s| async move { s.get::<String>("user").await.unwrap() }).await;
    assert_eq!(user.as_deref(), Some("carol"));
    let python_touched = python_touched.expect("Rust touches the session (touch interval: a tenth of the timeout)");
    let (seen, rust_touched) = py.get("/get", Some(&from_rust)).await;
    assert_eq!(seen["user"], "dave");
    let rust_touched = rust_touched.expect("Python rewrites the cookie on access");

    tokio::time::sleep(STEP).await;
    // The cookies last accessed 4 s ago are alive on the other side...
    let (seen, _) = py.get("/get", Some(&python_touched)).await;
    assert_eq!(seen["user"], "carol", "Python honours Rust's _accessed_time");
    let (user, _) =
        rust_request(&m, Some(&rust_touched), |s| async move { s.get::<String>("user").await.unwrap() }).await;
    assert_eq!(user.as_deref(), Some("dave"), "Rust honours Python's _accessed_time");
    // ...and the ones last accessed 8 s ago are not.
    let (user, _) =
        rust_request(&m, Some(&from_python), |s| async move { s.get::<String>("user").await.unwrap() }).await;
    assert_eq!(user, None, "Rust expires a session Python wrote");
    let (seen, _) = py.get("/get", Some(&from_rust)).await;
    assert!(seen.get("user").is_none(), "Python expires a session Rust wrote: {seen:?}");
}
