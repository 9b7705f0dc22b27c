//! Opt-in platform conventions: the session store from `REDIS_URL` or `DATABASE_URL`, the
//! variables Heroku-style platforms set when a database is attached.

use beaker_core::{ConfigError, SessionConfig};

/// The switch: `true` makes the `*_from_env` functions take the session store from
/// `REDIS_URL`, else `DATABASE_URL`, when neither `BEAKER_SESSION_URL` nor
/// `BEAKER_SESSION_TYPE` is set.
pub const URL_FROM_PLATFORM: &str = "BEAKER_SESSION_URL_FROM_PLATFORM";

/// The platform's variables, in the order they are tried: Redis first, because an app
/// that has both keeps its sessions where expiry is native and reads are cheapest.
const PLATFORM_URLS: [&str; 2] = ["REDIS_URL", "DATABASE_URL"];

/// A session configuration read from `vars`, with the platform switch applied. Returns the
/// configuration and, when the URL came from the platform, the variable it came from (for
/// error messages).
pub(crate) fn session_config_from_vars(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(SessionConfig, Option<&'static str>), ConfigError> {
    let mut switch = None;
    let mut platform: [Option<String>; 2] = [None, None];
    let mut rest = Vec::new();
    for (k, v) in vars {
        if k == URL_FROM_PLATFORM {
            switch = Some(v);
        } else {
            if let Some(i) = PLATFORM_URLS.iter().position(|p| *p == k) {
                platform[i] = Some(v.clone());
            }
            rest.push((k, v));
        }
    }
    let config = SessionConfig::from_env_vars(rest)?;
    let Some(switch) = switch else { return Ok((config, None)) };
    if !as_bool(&switch)? || config.store_type.is_some() || config.url.is_some() {
        return Ok((config, None));
    }
    let found = PLATFORM_URLS
        .iter()
        .zip(platform)
        .find_map(|(name, url)| url.filter(|u| !u.trim().is_empty()).map(|u| (*name, u)));
    match found {
        Some((name, url)) => Ok((config.with_url(url.trim()), Some(name))),
        None => Err(ConfigError::Missing {
            key: URL_FROM_PLATFORM.to_owned(),
            why: "it is true, but neither REDIS_URL nor DATABASE_URL is set (set one, or BEAKER_SESSION_URL)".into(),
        }),
    }
}

fn as_bool(value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(ConfigError::Invalid {
            key: URL_FROM_PLATFORM.to_owned(),
            value: value.to_owned(),
            expected: "true or false".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<(SessionConfig, Option<&'static str>), ConfigError> {
        session_config_from_vars(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn off_by_default_platform_variables_are_ignored() {
        let (c, from) = read(&[("DATABASE_URL", "postgres://h/db"), ("REDIS_URL", "redis://h")]).unwrap();
        assert_eq!((c.url, from), (None, None));
        let (c, from) = read(&[(URL_FROM_PLATFORM, "false"), ("REDIS_URL", "redis://h")]).unwrap();
        assert_eq!((c.url, from), (None, None));
    }

    #[test]
    fn switched_on_redis_wins_then_database() {
        let both = [(URL_FROM_PLATFORM, "true"), ("DATABASE_URL", "postgres://h/db"), ("REDIS_URL", "redis://r:6379")];
        let (c, from) = read(&both).unwrap();
        assert_eq!((c.url.as_deref(), from), (Some("redis://r:6379"), Some("REDIS_URL")));
        let (c, from) = read(&[(URL_FROM_PLATFORM, "yes"), ("DATABASE_URL", "postgres://h/db")]).unwrap();
        assert_eq!((c.url.as_deref(), from), (Some("postgres://h/db"), Some("DATABASE_URL")));
        // A blank platform variable counts as unset.
        let (c, _) = read(&[(URL_FROM_PLATFORM, "1"), ("REDIS_URL", " "), ("DATABASE_URL", "mysql://h/db")]).unwrap();
        assert_eq!(c.url.as_deref(), Some("mysql://h/db"));
    }

    #[test]
    fn explicit_beaker_variables_win() {
        let vars = [(URL_FROM_PLATFORM, "true"), ("REDIS_URL", "redis://r"), ("BEAKER_SESSION_URL", "memory:")];
        let (c, from) = read(&vars).unwrap();
        assert_eq!((c.url.as_deref(), from), (Some("memory:"), None));
        let vars = [(URL_FROM_PLATFORM, "true"), ("REDIS_URL", "redis://r"), ("BEAKER_SESSION_TYPE", "memory")];
        assert_eq!(read(&vars).unwrap().0.url, None);
    }

    #[test]
    fn errors_name_the_switch() {
        let e = read(&[(URL_FROM_PLATFORM, "true")]).unwrap_err().to_string();
        assert!(e.contains(URL_FROM_PLATFORM) && e.contains("REDIS_URL") && e.contains("DATABASE_URL"), "{e}");
        let e = read(&[(URL_FROM_PLATFORM, "sometimes")]).unwrap_err().to_string();
        assert!(e.contains(URL_FROM_PLATFORM) && e.contains("sometimes"), "{e}");
    }
}
