//! Beaker's coercion rules for string-valued options ("true", "300", "a, b").

use std::time::{Duration, SystemTime};

use crate::error::ConfigError;

/// A value as it came from a map, the environment or a TOML/JSON document.
pub(crate) fn non_blank<'a>(key: &str, value: &'a str) -> Result<&'a str, ConfigError> {
    let v = value.trim();
    if v.is_empty() {
        Err(ConfigError::Blank { key: key.to_owned() })
    } else {
        Ok(v)
    }
}

/// Beaker's `asbool`: true/yes/on/y/t/1 and false/no/off/n/f/0, any case.
pub(crate) fn as_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match non_blank(key, value)?.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" | "t" | "1" => Ok(true),
        "false" | "no" | "off" | "n" | "f" | "0" => Ok(false),
        _ => Err(ConfigError::invalid(key, value, "a boolean: true/yes/on/y/t/1 or false/no/off/n/f/0")),
    }
}

/// A non-negative integer.
pub(crate) fn as_u64(key: &str, value: &str) -> Result<u64, ConfigError> {
    non_blank(key, value)?.parse::<u64>().map_err(|_| ConfigError::invalid(key, value, "a whole non-negative number"))
}

/// A number of seconds (Beaker's integer timeouts); fractional seconds are accepted.
pub(crate) fn as_seconds(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let v = non_blank(key, value)?;
    let secs: f64 = v.parse().map_err(|_| ConfigError::invalid(key, value, "a number of seconds"))?;
    if !secs.is_finite() || !(0.0..=1e12).contains(&secs) {
        return Err(ConfigError::invalid(key, value, "a number of seconds between 0 and 10^12"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Like [`as_seconds`], with "none" or "null" meaning unset.
pub(crate) fn as_opt_seconds(key: &str, value: &str) -> Result<Option<Duration>, ConfigError> {
    match non_blank(key, value)?.to_ascii_lowercase().as_str() {
        "none" | "null" => Ok(None),
        _ => as_seconds(key, value).map(Some),
    }
}

/// Beaker's `aslist`: comma- (or whitespace-) separated, blanks dropped.
pub(crate) fn as_list(key: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let items: Vec<String> = value
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if items.is_empty() {
        return Err(ConfigError::Blank { key: key.to_owned() });
    }
    Ok(items)
}

/// An RFC 3339 date-time such as `2030-01-01T00:00:00Z`.
pub(crate) fn as_datetime(key: &str, value: &str) -> Result<SystemTime, ConfigError> {
    let v = non_blank(key, value)?;
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| ConfigError::invalid(key, value, "an RFC 3339 date-time like 2030-01-01T00:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beaker_bool_table() {
        for t in ["true", "TRUE", "yes", "on", "y", "t", "1", " True "] {
            assert!(as_bool("k", t).unwrap(), "{t}");
        }
        for f in ["false", "no", "off", "n", "f", "0", "FALSE"] {
            assert!(!as_bool("k", f).unwrap(), "{f}");
        }
        let e = as_bool("session.secure", "maybe").unwrap_err().to_string();
        assert!(e.contains("session.secure") && e.contains("maybe"), "{e}");
        assert_eq!(as_bool("session.secure", "  "), Err(ConfigError::Blank { key: "session.secure".into() }));
    }

    #[test]
    fn numbers_and_lists() {
        assert_eq!(as_seconds("t", "300").unwrap(), Duration::from_secs(300));
        assert_eq!(as_seconds("t", "1.5").unwrap(), Duration::from_millis(1500));
        assert!(as_seconds("t", "-1").is_err());
        assert!(as_seconds("t", "NaN").is_err());
        assert!(as_seconds("t", "5 minutes").is_err());
        assert_eq!(as_opt_seconds("t", "None").unwrap(), None);
        assert_eq!(as_u64("n", "42").unwrap(), 42);
        assert!(as_u64("n", "4.2").is_err());
        assert_eq!(as_list("l", "short_term, long_term").unwrap(), vec!["short_term", "long_term"]);
        assert_eq!(as_list("l", "a b,,c").unwrap(), vec!["a", "b", "c"]);
        assert!(as_list("l", " , ").is_err());
        assert!(as_datetime("d", "2030-01-01T00:00:00Z").is_ok());
        assert!(as_datetime("d", "tomorrow").is_err());
    }
}
