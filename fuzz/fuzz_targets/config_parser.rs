//! The Beaker-style config readers: `key = value` lines through the prefixed-map readers,
//! the whole input through the TOML readers. Bad input is an error, never a panic.
#![no_main]

use beaker_core::config::{CacheConfig, SessionConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let _ = SessionConfig::from_map(pairs.clone());
    let _ = CacheConfig::from_map(pairs.clone());
    let env: Vec<(String, String)> =
        pairs.iter().map(|(k, v)| (k.to_ascii_uppercase().replace('.', "_"), v.clone())).collect();
    let _ = SessionConfig::from_env_vars(env.clone());
    let _ = CacheConfig::from_env_vars(env);
    let _ = SessionConfig::from_toml_str(&text);
    let _ = CacheConfig::from_toml_str(&text);
});
