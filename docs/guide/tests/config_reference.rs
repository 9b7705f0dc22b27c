//! The configuration reference (`docs/guide/configuration.md`) against the parser: every
//! option it lists is accepted (with the environment variable it names), and every option
//! the parser accepts is listed. The parser's candidates are the string literals of its
//! source files, each confirmed by the parser itself, so that a new option cannot be
//! added without documenting it.

use std::collections::BTreeSet;

use beaker_rs::config::CacheConfig;
use beaker_rs::{ConfigError, SessionConfig};

const REFERENCE: &str = include_str!("../configuration.md");
const SESSION_SRC: &str = include_str!("../../../crates/beaker-core/src/config/session.rs");
const CACHE_SRC: &str = include_str!("../../../crates/beaker-core/src/config/cache.rs");

/// A value no option's parser refuses as a *name*; a refused value is fine, an unknown
/// name is not.
const SAMPLE: &str = "1";

fn is_unknown<T>(result: Result<T, ConfigError>) -> bool {
    matches!(result, Err(ConfigError::Unknown { .. }))
}

fn session_accepts(name: &str) -> bool {
    !is_unknown(SessionConfig::from_map([(format!("session.{name}"), SAMPLE)]))
}

fn cache_accepts(name: &str) -> bool {
    let per_region = CacheConfig::from_map([("cache.regions".to_owned(), "r"), (format!("cache.r.{name}"), SAMPLE)]);
    let default = CacheConfig::from_map([("cache.regions".to_owned(), "r"), (format!("cache.{name}"), SAMPLE)]);
    !is_unknown(per_region) && !is_unknown(default)
}

/// The rows of the reference's tables: (option names of the first cell, the whole row).
fn rows(prefix: &str) -> Vec<(Vec<String>, String)> {
    REFERENCE
        .lines()
        .filter(|l| l.starts_with(&format!("| `{prefix}")))
        .map(|l| {
            let first = l.split('|').nth(1).unwrap_or_default();
            let names = first.split('`').skip(1).step_by(2).map(str::to_owned).collect();
            (names, l.to_owned())
        })
        .collect()
}

fn documented_session() -> BTreeSet<String> {
    rows("session.").into_iter().flat_map(|(names, _)| names).map(|n| n["session.".len()..].to_owned()).collect()
}

fn documented_cache() -> BTreeSet<String> {
    rows("cache.")
        .into_iter()
        .flat_map(|(names, _)| names)
        .map(|n| n.trim_start_matches("cache.").trim_start_matches("<region>.").to_owned())
        .collect()
}

fn literals(src: &str) -> BTreeSet<String> {
    src.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_documented_session_option_is_accepted_under_the_variable_it_names() {
    let rows = rows("session.");
    assert!(rows.len() >= 20, "the session table was not found");
    for (names, row) in rows {
        for name in &names {
            let option = &name["session.".len()..];
            assert!(session_accepts(option), "the reference lists {name}, which the parser refuses as unknown");
        }
        let canonical = &names[0]["session.".len()..];
        let var = format!("BEAKER_SESSION_{}", canonical.to_ascii_uppercase());
        assert!(row.contains(&format!("`{var}`")), "the row of {} should name {var}", names[0]);
        let from_env = SessionConfig::from_env_vars([(var.clone(), SAMPLE.to_owned())]);
        assert!(!is_unknown(from_env), "{var} is refused as unknown");
    }
}

#[test]
fn every_documented_cache_option_is_accepted() {
    let documented = documented_cache();
    assert!(documented.len() >= 10, "the cache table was not found");
    for name in documented.iter().filter(|n| *n != "regions") {
        assert!(cache_accepts(name), "the reference lists cache option {name}, which the parser refuses");
    }
}

#[test]
fn every_option_the_parser_accepts_is_documented() {
    let session: Vec<String> = literals(SESSION_SRC).into_iter().filter(|n| session_accepts(n)).collect();
    assert!(session.len() >= 30, "too few session options found in the parser's source: {session:?}");
    let documented = documented_session();
    let missing: Vec<&String> = session.iter().filter(|n| !documented.contains(*n)).collect();
    assert!(missing.is_empty(), "session options missing from docs/guide/configuration.md: {missing:?}");

    let cache: Vec<String> = literals(CACHE_SRC).into_iter().filter(|n| cache_accepts(n)).collect();
    assert!(cache.len() >= 12, "too few cache options found in the parser's source: {cache:?}");
    let documented = documented_cache();
    let missing: Vec<&String> = cache.iter().filter(|n| !documented.contains(*n)).collect();
    assert!(missing.is_empty(), "cache options missing from docs/guide/configuration.md: {missing:?}");
}

#[test]
fn a_name_the_parser_does_not_know_is_refused() {
    // Guards the two tests above: they would pass vacuously if nothing were ever unknown.
    assert!(!session_accepts("no_such_option"));
    assert!(!cache_accepts("no_such_option"));
}
