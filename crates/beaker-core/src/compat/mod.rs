//! Compatibility with Python Beaker 1.14, for applications that share one user's session
//! with a running Beaker app while they move over route by route.
//!
//! With [`Compat::Beaker`] (`compat = beaker`, `BEAKER_SESSION_COMPAT=beaker`):
//! - id cookies are signed the way Beaker's `SignedCookie` signs them: the hex HMAC-SHA1
//!   of the id under the raw `secret`, followed by the id;
//! - store keys are the ids themselves (Beaker looks records up by id), so
//!   [`SessionConfig::hash_ids`](crate::SessionConfig::hash_ids) must be false;
//! - stores that support it write Beaker's record layout ([`payload`]): the session dict
//!   with its reserved `_creation_time` / `_accessed_time` keys, serialized by Beaker's
//!   `json` serializer (zlib-compressed JSON) and base64, inside a pickled `str`
//!   as Beaker's containers keep it, read and changed by one compare-and-set loop
//!   ([`layout`]) whatever the back end;
//! - with `type = cookie`, sessions live in Beaker's encrypted `CookieSession` cookie
//!   ([`cookie_session`]), keyed by Beaker's `validate_key` and `encrypt_key`.
//!
//! Ids beaker-rs generates (32 characters of `[A-Za-z0-9_-]`) are accepted by Beaker,
//! which takes any cookie value as an id, and Beaker's ids (32 hex digits, a `uuid4().hex`)
//! have the shape beaker-rs accepts, so neither side needs to change its id generator.

pub mod cookie_session;
pub mod layout;
pub mod payload;
pub mod pickle;
mod pickle_shape;
pub(crate) mod signed_cookie;

use std::fmt;
use std::str::FromStr;

use crate::error::{ConfigError, StoreError};
use crate::store::Owner;

/// Which on-the-wire formats sessions use (the `compat` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compat {
    /// beaker-rs's own formats (the default): HMAC-SHA256 id cookies, hashed store keys.
    #[default]
    Off,
    /// Python Beaker 1.14's formats, to share sessions with a Beaker application.
    Beaker,
}

impl Compat {
    /// The names accepted in configuration.
    pub const ACCEPTED: &'static str = "beaker or none";
}

impl FromStr for Compat {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "beaker" => Ok(Compat::Beaker),
            "none" | "off" | "" => Ok(Compat::Off),
            _ => Err(ConfigError::invalid("session.compat", s, Self::ACCEPTED)),
        }
    }
}

impl fmt::Display for Compat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compat::Off => "none",
            Compat::Beaker => "beaker",
        })
    }
}

/// How Beaker serializes the session dict (its `data_serializer`), in compat mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BeakerSerializer {
    /// `json`: zlib-compressed JSON.
    #[default]
    Json,
    /// `pickle` (Beaker's default): decoded without executing anything, and only for
    /// Beaker's plain data subset; see [`pickle`].
    Pickle,
}

/// The checks [`SessionConfig::validate`](crate::SessionConfig::validate) makes for the
/// compatibility mode.
pub(crate) fn validate(config: &crate::SessionConfig) -> Result<(), ConfigError> {
    if config.compat != Compat::Beaker {
        if config.compat_serializer == BeakerSerializer::Pickle {
            return Err(ConfigError::Conflict {
                key: "session.data_serializer".into(),
                message: "pickle is only available with compat = beaker, to share sessions with a Python Beaker app"
                    .into(),
            });
        }
        return Ok(());
    }
    if config.hash_ids {
        return Err(ConfigError::Conflict {
            key: "session.hash_ids".into(),
            message: "compat = beaker needs hash_ids = false: Beaker looks records up by the id itself".into(),
        });
    }
    match config.resolved_store_type()? {
        crate::StoreType::Cookie => return cookie_codec(config).map(drop),
        // Sharing Beaker's files would mean taking Python's lock files as well as reading
        // its container pickle, so it is refused rather than half-supported.
        crate::StoreType::File => {
            return Err(ConfigError::Conflict {
                key: "session.type".into(),
                message: "compat = beaker cannot share Beaker's file sessions: Beaker's file container pickles \
                          each record into a file guarded by Python's lock files; move both apps to ext:redis"
                    .into(),
            })
        }
        _ => {}
    }
    Ok(())
}

/// The codec of Beaker's cookie-only sessions for `config`: both of Beaker's keys are
/// required, as Beaker requires them for an encrypted `CookieSession`.
pub(crate) fn cookie_codec(config: &crate::SessionConfig) -> Result<cookie_session::BeakerCookieCodec, ConfigError> {
    let why = || {
        "compat = beaker with type = cookie reads and writes Beaker's encrypted CookieSession, which needs \
         both validate_key and encrypt_key (the Python app's values)"
            .to_owned()
    };
    if config.beaker_validate_keys.is_empty() {
        return Err(ConfigError::Missing { key: "session.validate_key".into(), why: why() });
    }
    if config.beaker_encrypt_keys.is_empty() {
        return Err(ConfigError::Missing { key: "session.encrypt_key".into(), why: why() });
    }
    let validate: Vec<&[u8]> = config.beaker_validate_keys.iter().map(crate::Secret::expose).collect();
    let encrypt: Vec<&[u8]> = config.beaker_encrypt_keys.iter().map(crate::Secret::expose).collect();
    cookie_session::BeakerCookieCodec::new(&validate, &encrypt, config.compat_serializer)
        .ok_or_else(|| ConfigError::Missing { key: "session.validate_key".into(), why: why() })
}

/// What a store on one of Beaker's layouts answers when asked for a principal index.
pub const NO_OWNER: &str = "a principal index (Beaker's layouts have no place for a session's owner)";

/// Beaker's layouts have no place for a session's owner (and Beaker would drop one kept in
/// the session dict), so a store on them refuses a record or change that carries one
/// rather than losing it silently.
pub fn refuse_owner(store: &'static str, owner: Option<&Owner>) -> Result<(), StoreError> {
    match owner {
        Some(_) => Err(StoreError::unsupported(store, NO_OWNER)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionConfig;

    #[test]
    fn the_switch_from_the_environment_and_the_builder() {
        let vars = [("BEAKER_SESSION_COMPAT", "Beaker"), ("BEAKER_SESSION_DATA_SERIALIZER", "pickle")];
        let c = SessionConfig::from_env_vars(vars.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap();
        assert_eq!((c.compat, c.compat_serializer, c.hash_ids), (Compat::Beaker, BeakerSerializer::Pickle, false));
        let c = SessionConfig::new().with_compat(Compat::Beaker);
        assert!(!c.hash_ids && c.validate().is_ok());
        let e = c.with_hash_ids(true).validate().unwrap_err().to_string();
        assert!(e.contains("session.hash_ids"), "{e}");
        let e = SessionConfig::new().with_compat_serializer(BeakerSerializer::Pickle).validate().unwrap_err();
        assert!(e.to_string().contains("session.data_serializer"), "{e}");
        assert_eq!("none".parse::<Compat>().unwrap(), Compat::Off);
        for file in [
            [("session.compat", "beaker"), ("session.type", "file")],
            [("session.compat", "beaker"), ("session.url", "file:/tmp/s")],
        ] {
            let e = SessionConfig::from_map(file).unwrap_err().to_string();
            assert!(e.contains("session.type") && e.contains("file container pickles"), "{e}");
        }
    }

    #[test]
    fn a_beaker_manager_signs_and_reads_beakers_cookie() {
        let secret = "a secret of sixteen+ bytes";
        let keys = crate::secret::Keys::with_compat(&[crate::Secret::new(secret).unwrap()], Compat::Beaker).unwrap();
        let signed = keys.sign("beaker.session.id", "0123456789abcdef0123456789abcdef");
        // The signature Python's hmac gives (see signed_cookie.rs), whatever the cookie name.
        assert!(signed.starts_with("ddba9d24790755b72b1b19aa3fc39b64449563cf"), "{signed}");
        assert_eq!(keys.verify("other", &signed), Some(("0123456789abcdef0123456789abcdef", false)));
        let native = crate::secret::Keys::new(&[crate::Secret::new(secret).unwrap()]).unwrap();
        assert_eq!(native.verify("beaker.session.id", &signed), None, "the two formats never mix");
    }
}
