//! `beaker config check`: the configuration resolved, secrets masked, stores opened.

use std::io::Write as _;

use beaker_rs::config::{CacheConfig, RegionConfig};
use beaker_rs::{CookieExpires, SessionConfig, StoreType};
use serde_json::{json, Value};

use crate::error::CliError;
use crate::output::{self, io};
use crate::settings::Source;
use crate::Global;

/// What replaces a secret or a password.
const MASK: &str = "********";

/// Query parameters whose values are credentials.
const SECRET_PARAMS: &[&str] =
    &["password", "pass", "secret", "token", "key", "access_key", "secret_key", "sslpassword"];

pub(crate) async fn run(global: &Global, source: &Source, offline: bool) -> Result<(), CliError> {
    let session = source.session_config()?;
    let cache = source.cache_config()?;
    if session.secrets.is_empty() {
        // The application would refuse to start: so does the check.
        return Err(CliError::Config(beaker_rs::ConfigError::Missing {
            key: source.name_of("session.secret"),
            why: "signed and encrypted cookies need at least one secret".into(),
        }));
    }
    let store_type = session.resolved_store_type()?;
    let mut opened = Vec::new();
    if !offline {
        if !matches!(store_type, StoreType::Memory | StoreType::Cookie) {
            let (_, store) = source.session_store().await?;
            opened.push(format!("session store: {}", store.name()));
        }
        let caches = source.cache_manager().await?;
        opened.extend(caches.region_names().map(|r| format!("cache region {r}")));
    }
    if global.json {
        let regions: serde_json::Map<String, Value> =
            cache.regions.iter().map(|(name, r)| (name.clone(), region_json(r))).collect();
        return output::print_json(&json!({
            "source": describe(source),
            "session": session_json(&session, store_type),
            "cache": { "regions": regions },
            "opened": opened,
        }));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "# {}", describe(source)).map_err(io)?;
    writeln!(out, "[session]").map_err(io)?;
    write_table(&mut out, &session_json(&session, store_type))?;
    write_cache(&mut out, &cache)?;
    if offline {
        writeln!(out, "\n# ok (stores not opened: --offline)").map_err(io)?;
    } else {
        writeln!(
            out,
            "\n# ok; opened: {}",
            if opened.is_empty() { "nothing to open".into() } else { opened.join(", ") }
        )
        .map_err(io)?;
    }
    Ok(())
}

fn describe(source: &Source) -> String {
    match source {
        Source::Environment => "from the environment (BEAKER_SESSION_*, BEAKER_CACHE_*)".to_owned(),
        Source::File { path, section: Some(s) } => format!("from {} [{s}]", path.display()),
        Source::File { path, section: None } => format!("from {}", path.display()),
    }
}

fn write_cache(out: &mut impl std::io::Write, cache: &CacheConfig) -> Result<(), CliError> {
    writeln!(out, "\n[cache]\nregions = {:?}", cache.regions.keys().collect::<Vec<_>>()).map_err(io)?;
    for (name, region) in &cache.regions {
        writeln!(out, "\n[cache.{name}]").map_err(io)?;
        write_table(out, &region_json(region))?;
    }
    Ok(())
}

fn write_table(out: &mut impl std::io::Write, table: &Value) -> Result<(), CliError> {
    if let Value::Object(map) = table {
        for (k, v) in map {
            writeln!(out, "{k} = {v}").map_err(io)?;
        }
    }
    Ok(())
}

/// Whole seconds as an integer, fractions as a float, no duration as `"none"`.
fn seconds(d: Option<std::time::Duration>) -> Value {
    match d {
        None => Value::String("none".into()),
        Some(d) if d.subsec_nanos() == 0 => json!(d.as_secs()),
        Some(d) => json!(d.as_secs_f64()),
    }
}

fn session_json(c: &SessionConfig, store_type: StoreType) -> Value {
    json!({
        "type": store_type.as_str(),
        "url": c.url.as_deref().map(mask_url),
        "secret": c.secrets.iter().map(|_| MASK).collect::<Vec<_>>(),
        "key": c.key,
        "timeout": seconds(c.timeout),
        "absolute_timeout": seconds(c.absolute_timeout),
        "touch_interval": seconds(c.effective_touch_interval()),
        "cookie_expires": match &c.cookie_expires {
            CookieExpires::BrowserSession => json!(true),
            CookieExpires::Never => json!(false),
            CookieExpires::After(d) => json!(d.as_secs()),
            CookieExpires::At(t) => json!(output::rfc3339(*t)),
            other => json!(format!("{other:?}")),
        },
        "save_accessed_time": c.save_accessed_time,
        "secure": c.secure,
        "httponly": c.httponly,
        "samesite": format!("{:?}", c.samesite),
        "domain": c.domain,
        "path": c.path,
        "data_serializer": c.data_serializer.to_string(),
        "invalidate_corrupt": c.invalidate_corrupt,
        "hash_ids": c.hash_ids,
        "on_store_error": format!("{:?}", c.on_store_error).to_ascii_lowercase(),
        "store_timeout": seconds(Some(c.store_timeout)),
        "cookie_limit": c.cookie_limit,
        "compat": c.compat.to_string(),
        "cleanup_interval": seconds(c.cleanup_interval),
        "max_sessions": c.max_sessions,
        "max_bytes": c.max_bytes,
        "retired_window": seconds(Some(c.retired_window)),
        "cache_headers": format!("{:?}", c.cache_headers).to_ascii_lowercase(),
        "backend_options": c.backend_options,
    })
}

/// One region's options, its URL's password masked.
pub(crate) fn region_json(r: &RegionConfig) -> Value {
    json!({
        "type": r.store_type.as_str(),
        "url": r.url.as_deref().map(mask_url),
        "expire": seconds(r.expire),
        "key_length": r.key_length,
        "enabled": r.enabled,
        "max_entries": r.max_entries,
        "max_bytes": r.max_bytes,
        "backend_options": r.backend_options,
    })
}

/// `url` with the password of its user part and credential-like query parameters
/// masked: `postgres://app:********@db/app`.
pub(crate) fn mask_url(url: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
            let authority = match authority.rsplit_once('@') {
                Some((user, host)) => match user.split_once(':') {
                    Some((name, _password)) => format!("{name}:{MASK}@{host}"),
                    None => format!("{user}@{host}"),
                },
                None => authority.to_owned(),
            };
            match path {
                Some(p) => format!("{scheme}://{authority}/{p}"),
                None => format!("{scheme}://{authority}"),
            }
        }
        None => base.to_owned(),
    };
    if let Some(q) = query {
        let masked: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => format!("{k}={MASK}"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&masked.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::mask_url;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(mask_url("postgres://app:hunter2@db:5432/app"), "postgres://app:********@db:5432/app");
        assert_eq!(mask_url("redis://:pw@r:6379/0"), "redis://:********@r:6379/0");
        assert_eq!(mask_url("redis://r:6379"), "redis://r:6379");
        assert_eq!(
            mask_url("mysql://u@h/db?password=x&ssl-mode=required"),
            "mysql://u@h/db?password=********&ssl-mode=required"
        );
        assert_eq!(mask_url("sqlite:/tmp/s.db"), "sqlite:/tmp/s.db");
        assert_eq!(mask_url("postgres://u:p@w@h/db"), "postgres://u:********@h/db");
    }
}
