//! The configuration readers against Beaker's coercion table.

use std::time::Duration;

use super::*;
use crate::error::ConfigError;
use crate::serializer::DataSerializer;

fn map(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn beaker_prefixed_map_with_coercion() {
    let c = SessionConfig::from_map(map(&[
        ("beaker.session.type", "ext:redis"),
        ("beaker.session.url", "redis://127.0.0.1:6379/0"),
        ("beaker.session.key", "myapp"),
        ("beaker.session.secret", "first secret of 16+ bytes, second secret of 16+ bytes,third secret of 16+ bytes"),
        ("session.timeout", "300"),
        ("beaker.session.cookie_expires", "true"),
        ("beaker.session.save_accessed_time", "no"),
        ("beaker.session.secure", "on"),
        ("beaker.session.httponly", "0"),
        ("beaker.session.samesite", "Strict"),
        ("beaker.session.cookie_domain", "example.org"),
        ("beaker.session.cookie_path", "/app"),
        ("beaker.session.data_serializer", "msgpack"),
        ("beaker.session.invalidate_corrupt", "false"),
        ("beaker.session.data_dir", "/var/lib/sessions"),
        ("beaker.cache.regions", "ignored here"),
        ("my_app.unrelated", "x"),
    ]))
    .unwrap();
    assert_eq!(c.store_type, Some(StoreType::Redis));
    assert_eq!(c.url.as_deref(), Some("redis://127.0.0.1:6379/0"));
    assert_eq!(c.key, "myapp");
    assert_eq!(c.secrets.len(), 3);
    assert_eq!(c.timeout, Some(Duration::from_secs(300)));
    assert_eq!(c.cookie_expires, CookieExpires::BrowserSession);
    assert!(!c.save_accessed_time);
    assert!(c.secure);
    assert!(!c.httponly);
    assert_eq!(c.samesite, SameSite::Strict);
    assert_eq!(c.domain.as_deref(), Some("example.org"));
    assert_eq!(c.path, "/app");
    assert_eq!(c.data_serializer, DataSerializer::MessagePack);
    assert!(!c.invalidate_corrupt);
    assert_eq!(c.backend_options.get("data_dir").map(String::as_str), Some("/var/lib/sessions"));
}

#[test]
fn cookie_expires_table() {
    let parse = |v: &str| SessionConfig::from_map(map(&[("session.cookie_expires", v)])).map(|c| c.cookie_expires);
    assert_eq!(parse("true").unwrap(), CookieExpires::BrowserSession);
    assert_eq!(parse("false").unwrap(), CookieExpires::Never);
    assert_eq!(parse("3600").unwrap(), CookieExpires::After(Duration::from_secs(3600)));
    assert!(matches!(parse("2030-01-01T00:00:00Z").unwrap(), CookieExpires::At(_)));
    let e = parse("soon").unwrap_err().to_string();
    assert!(e.contains("session.cookie_expires") && e.contains("soon"), "{e}");
}

#[test]
fn errors_name_the_key_and_the_accepted_values() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("beaker.session.type", "mongodb", &["beaker.session.type", "mongodb", "redis"]),
        ("beaker.session.timeout", "five", &["beaker.session.timeout", "five", "seconds"]),
        ("beaker.session.secure", "perhaps", &["beaker.session.secure", "true"]),
        ("beaker.session.samesite", "sometimes", &["beaker.session.samesite", "Lax, Strict or None"]),
        ("beaker.session.data_serializer", "pickle", &["beaker.session.data_serializer", "json"]),
        ("beaker.session.timeout", "   ", &["beaker.session.timeout", "blank"]),
        ("beaker.session.secret", "short", &["beaker.session.secret", "16 bytes"]),
        ("beaker.session.on_store_error", "explode", &["beaker.session.on_store_error", "fail or continue"]),
        ("beaker.session.cache_headers", "sometimes", &["beaker.session.cache_headers", "auto or off"]),
        ("beaker.session.frobnicate", "1", &["unknown option beaker.session.frobnicate"]),
    ];
    for (key, value, needles) in cases {
        let e = SessionConfig::from_map(map(&[(key, value)])).unwrap_err().to_string();
        for n in *needles {
            assert!(e.contains(n), "{key}={value:?}: {e:?} lacks {n:?}");
        }
    }
}

#[test]
fn samesite_none_requires_secure() {
    let e = SessionConfig::from_map(map(&[("session.samesite", "None")])).unwrap_err();
    assert!(matches!(e, ConfigError::Conflict { .. }));
    assert!(SessionConfig::from_map(map(&[("session.samesite", "None"), ("session.secure", "true")])).is_ok());
}

#[test]
fn environment_variables() {
    let vars = map(&[
        ("BEAKER_SESSION_TYPE", "cookie"),
        ("BEAKER_SESSION_SECRET", "an environment secret of length"),
        ("BEAKER_SESSION_TIMEOUT", "60"),
        ("BEAKER_SESSION_COOKIE_EXPIRES", "120"),
        ("BEAKER_SESSION_HTTPONLY", "false"),
        ("PATH", "/usr/bin"),
    ]);
    let c = SessionConfig::from_env_vars(vars).unwrap();
    assert_eq!(c.store_type, Some(StoreType::Cookie));
    assert_eq!(c.timeout, Some(Duration::from_secs(60)));
    assert_eq!(c.cookie_expires, CookieExpires::After(Duration::from_secs(120)));
    assert!(!c.httponly);
    let e = SessionConfig::from_env_vars(map(&[("BEAKER_SESSION_TIMEOUT", "abc")])).unwrap_err().to_string();
    assert!(e.contains("BEAKER_SESSION_TIMEOUT"), "errors name the variable: {e}");
}

#[test]
fn url_scheme_alone_chooses_the_store() {
    let c = SessionConfig::from_env_vars(map(&[("BEAKER_SESSION_URL", "postgres://root@localhost/test")])).unwrap();
    assert_eq!(c.resolved_store_type().unwrap(), StoreType::Postgres);
    assert_eq!(SessionConfig::default().resolved_store_type().unwrap(), StoreType::Memory);
    let c = SessionConfig::from_env_vars(map(&[("BEAKER_SESSION_URL", "gopher://x")])).unwrap();
    assert!(c.resolved_store_type().unwrap_err().to_string().contains("session.url"));
}

#[test]
fn toml_and_serde() {
    let c = SessionConfig::from_toml_str(
        r#"
        type = "memory"
        secret = ["one secret of 16 bytes", "two secret of 16 bytes"]
        timeout = 300
        secure = true
        cookie_expires = false
        "#,
    )
    .unwrap();
    assert_eq!(c.secrets.len(), 2);
    assert_eq!(c.timeout, Some(Duration::from_secs(300)));
    assert!(c.secure);
    assert_eq!(c.cookie_expires, CookieExpires::Never);

    #[derive(serde::Deserialize)]
    struct App {
        session: SessionConfig,
        cache: CacheConfig,
    }
    let app: App = toml::from_str(
        r#"
        [session]
        timeout = 10
        [cache]
        regions = ["short_term", "long_term"]
        expire = 30
        [cache.long_term]
        expire = 3600
        key_length = 64
        "#,
    )
    .unwrap();
    assert_eq!(app.session.timeout, Some(Duration::from_secs(10)));
    assert_eq!(app.cache.regions["short_term"].expire, Some(Duration::from_secs(30)));
    assert_eq!(app.cache.regions["long_term"].expire, Some(Duration::from_secs(3600)));
    assert_eq!(app.cache.regions["long_term"].key_length, 64);
    let bad: Result<App, _> = toml::from_str("[session]\ntimeout = \"x\"\n[cache]\n");
    assert!(bad.err().unwrap().to_string().contains("session.timeout"));
}

#[test]
fn cache_regions_from_map_and_env() {
    let c = CacheConfig::from_map(map(&[
        ("beaker.cache.regions", "short_term, long_term"),
        ("beaker.cache.type", "memory"),
        ("beaker.cache.short_term.expire", "60"),
        ("beaker.cache.long_term.expire", "3600"),
        ("beaker.cache.long_term.enabled", "false"),
        ("beaker.cache.long_term.url", "redis://127.0.0.1:6379"),
    ]))
    .unwrap();
    assert_eq!(c.regions.len(), 2);
    assert_eq!(c.regions["short_term"].expire, Some(Duration::from_secs(60)));
    assert_eq!(c.regions["short_term"].store_type, StoreType::Memory);
    assert_eq!(c.regions["long_term"].store_type, StoreType::Redis);
    assert!(!c.regions["long_term"].enabled);

    let e = CacheConfig::from_map(map(&[("beaker.cache.regions", "a"), ("beaker.cache.b.expire", "1")])).unwrap_err();
    let e = e.to_string();
    assert!(e.contains("beaker.cache.b.expire") && e.contains("`b` is not listed in cache.regions"), "{e}");

    let c = CacheConfig::from_env_vars(map(&[
        ("BEAKER_CACHE_REGIONS", "demo,short_term"),
        ("BEAKER_CACHE_EXPIRE", "5"),
        ("BEAKER_CACHE_SHORT_TERM_EXPIRE", "60"),
        ("BEAKER_CACHE_DEMO_TYPE", "memory"),
    ]))
    .unwrap();
    assert_eq!(c.regions["demo"].expire, Some(Duration::from_secs(5)));
    assert_eq!(c.regions["short_term"].expire, Some(Duration::from_secs(60)));
    let e = CacheConfig::from_env_vars(map(&[("BEAKER_CACHE_REGIONS", "demo"), ("BEAKER_CACHE_DEMO_EXPIRE", "x")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("BEAKER_CACHE_DEMO_EXPIRE"), "{e}");
}

#[test]
fn cache_headers_option() {
    assert_eq!(SessionConfig::new().cache_headers, CacheHeaders::Auto);
    let parse = |v: &str| SessionConfig::from_map(map(&[("session.cache_headers", v)])).map(|c| c.cache_headers);
    assert_eq!(parse("auto").unwrap(), CacheHeaders::Auto);
    assert_eq!(parse("OFF").unwrap(), CacheHeaders::Off);
    let env = SessionConfig::from_env_vars(map(&[("BEAKER_SESSION_CACHE_HEADERS", "off")])).unwrap();
    assert_eq!(env.cache_headers, CacheHeaders::Off);
    let e = SessionConfig::from_env_vars(map(&[("BEAKER_SESSION_CACHE_HEADERS", "on")])).unwrap_err().to_string();
    assert!(e.contains("BEAKER_SESSION_CACHE_HEADERS") || e.contains("cache_headers"), "{e}");
    assert!(e.contains("auto or off"), "{e}");
    assert_eq!(SessionConfig::new().with_cache_headers(CacheHeaders::Off).cache_headers, CacheHeaders::Off);
}

#[test]
fn a_server_side_lifetime_applies_by_default() {
    let c = SessionConfig::new();
    assert_eq!(c.timeout, Some(SessionConfig::DEFAULT_TIMEOUT));
    assert_eq!(c.absolute_timeout, Some(SessionConfig::DEFAULT_ABSOLUTE_TIMEOUT));
    assert_eq!(c.effective_touch_interval(), Some(SessionConfig::DEFAULT_TIMEOUT / 10));
    // The same from every reader.
    let from_env = SessionConfig::from_env_vars(map(&[("PATH", "/usr/bin")])).unwrap();
    assert_eq!((from_env.timeout, from_env.absolute_timeout), (c.timeout, c.absolute_timeout));
    // An application may still turn either off, explicitly.
    let off = SessionConfig::from_map(map(&[("session.timeout", "none"), ("session.absolute_timeout", "none")]));
    let off = off.unwrap();
    assert_eq!((off.timeout, off.absolute_timeout), (None, None));
}

#[test]
fn memory_capacity_options_are_read_and_checked() {
    let c = SessionConfig::from_map(map(&[("session.max_sessions", "500"), ("session.max_bytes", "1048576")])).unwrap();
    assert_eq!((c.max_sessions, c.max_bytes), (500, 1_048_576));
    for (key, value) in [("session.max_sessions", "0"), ("session.max_bytes", "0"), ("session.max_sessions", "many")] {
        let e = SessionConfig::from_map(map(&[(key, value)])).unwrap_err().to_string();
        assert!(e.contains(key), "{key}={value}: {e}");
    }
    assert!(SessionConfig::new().with_memory_capacity(0, 1).validate().is_err());
}

#[test]
fn beaker_options_without_meaning_here_are_refused_by_name() {
    for opt in ["lock_dir", "namespace", "crypto_type", "encrypt_nonce_bits", "memcache_module", "sentinel_master"] {
        let key = format!("beaker.session.{opt}");
        let e = SessionConfig::from_map(map(&[(&key, "x")])).unwrap_err();
        assert!(matches!(e, ConfigError::Conflict { .. }), "{opt}: {e:?}");
        let e = e.to_string();
        assert!(e.contains(&key) && (e.contains("not supported") || e.contains("in the URL")), "{e}");
        let var = format!("BEAKER_SESSION_{}", opt.to_ascii_uppercase());
        let e = SessionConfig::from_env_vars(map(&[(&var, "x")])).unwrap_err().to_string();
        assert!(e.contains(&var), "{e}");
    }
}

#[test]
fn environment_options_of_a_default_region_need_no_list() {
    let base = CacheConfig::new().with_region("demo", RegionConfig::memory(Some(Duration::from_secs(5))));
    let c = CacheConfig::from_env_vars_over(
        base.clone(),
        map(&[("BEAKER_CACHE_DEMO_URL", "redis://127.0.0.1:6379"), ("BEAKER_CACHE_KEY_LENGTH", "100")]),
    )
    .unwrap();
    assert_eq!(c.regions.len(), 1);
    assert_eq!(c.regions["demo"].store_type, StoreType::Redis);
    assert_eq!(c.regions["demo"].url.as_deref(), Some("redis://127.0.0.1:6379"));
    assert_eq!(c.regions["demo"].expire, Some(Duration::from_secs(5)), "the base's options stay");
    assert_eq!(c.regions["demo"].key_length, 100, "region defaults from the environment apply");
    // Nothing set: the base as it is.
    assert_eq!(CacheConfig::from_env_vars_over(base.clone(), map(&[])).unwrap(), base);
    // A list in the environment decides alone.
    let c = CacheConfig::from_env_vars_over(base.clone(), map(&[("BEAKER_CACHE_REGIONS", "other")])).unwrap();
    assert_eq!(c.regions.keys().collect::<Vec<_>>(), ["other"]);
    // An option of a region nobody declared names the list it is missing from.
    for vars in [
        vec![("BEAKER_CACHE_OTHER_URL", "memory:")],
        vec![("BEAKER_CACHE_REGIONS", "a"), ("BEAKER_CACHE_OTHER_EXPIRE", "1")],
    ] {
        let e = CacheConfig::from_env_vars_over(base.clone(), map(&vars)).unwrap_err().to_string();
        assert!(
            e.contains("BEAKER_CACHE_OTHER_") && e.contains("`other` is not listed in BEAKER_CACHE_REGIONS"),
            "{e}"
        );
    }
    let e = CacheConfig::from_env_vars(map(&[("BEAKER_CACHE_DEMO_URL", "memory:")])).unwrap_err().to_string();
    assert!(e.contains("BEAKER_CACHE_DEMO_URL") && e.contains("BEAKER_CACHE_REGIONS"), "{e}");
}

#[test]
fn cache_options_without_meaning_here_are_refused_by_name() {
    for opt in ["lock_dir", "namespace", "memcache_module"] {
        let key = format!("beaker.cache.r.{opt}");
        let e = CacheConfig::from_map(map(&[("beaker.cache.regions", "r"), (&key, "x")])).unwrap_err().to_string();
        assert!(e.contains(&key) && e.contains("not supported"), "{e}");
    }
}

#[test]
fn retired_window_is_read_in_seconds_and_zero_turns_it_off() {
    assert_eq!(SessionConfig::default().retired_window, Duration::from_secs(60));
    let c = SessionConfig::from_map(map(&[("session.retired_window", "5")])).unwrap();
    assert_eq!(c.retired_window, Duration::from_secs(5));
    let c = SessionConfig::from_env_vars(map(&[("BEAKER_SESSION_RETIRED_WINDOW", "0")])).unwrap();
    assert_eq!(c.retired_window, Duration::ZERO);
    match SessionConfig::from_map(map(&[("beaker.session.retired_window", "soon")])) {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "beaker.session.retired_window"),
        other => panic!("expected an error naming the option, got {other:?}"),
    }
}
