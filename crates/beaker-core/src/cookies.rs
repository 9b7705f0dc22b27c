//! The cookie codec: reading our cookie out of raw `Cookie` header values and writing
//! `Set-Cookie` header values. The `cookie` crate does the parsing and formatting, but none
//! of its types leave this module (actix-web and rocket pin different majors of it).

use std::fmt;
use std::time::{Duration, SystemTime};

use cookie::{Cookie, Expiration};

use crate::config::{CookieExpires, SameSite, SessionConfig};

/// Longest lifetime browsers grant a cookie (Chrome caps Max-Age at 400 days).
const LONGEST_COOKIE: Duration = Duration::from_secs(400 * 24 * 3600);

/// One `Set-Cookie` header value, ready to append to a response.
#[derive(Clone, PartialEq, Eq)]
pub struct SetCookie(String);

impl SetCookie {
    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The header value, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// Whether this cookie removes the session cookie (empty value, `Max-Age=0`).
    pub fn is_removal(&self) -> bool {
        self.0.contains("Max-Age=0")
    }
}

impl fmt::Display for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value is a bearer token: show the attributes only.
        let attrs = self.0.split_once(';').map_or("", |(_, a)| a);
        write!(f, "SetCookie(<value hidden>;{attrs})")
    }
}

/// The values of every cookie named `name` in the given `Cookie` header values, in order.
/// Malformed pairs and other cookies are skipped; nothing here can fail.
pub(crate) fn values_named<'a>(headers: impl IntoIterator<Item = &'a str>, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    for header in headers {
        // Cheap pre-check: most requests carry other cookies only.
        if !header.contains(name) {
            continue;
        }
        for c in Cookie::split_parse(header).flatten() {
            // Parsed from a borrowed &str, so the raw value is always there.
            if let (true, Some(v)) = (c.name() == name, c.value_raw()) {
                out.push(v);
            }
        }
    }
    out
}

fn base<'c>(config: &SessionConfig, value: String) -> cookie::CookieBuilder<'c> {
    let mut b = Cookie::build((config.key.clone(), value))
        .path(config.path.clone())
        .http_only(config.httponly)
        .secure(config.secure)
        .same_site(match config.samesite {
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::None => cookie::SameSite::None,
        });
    if let Some(d) = &config.domain {
        b = b.domain(d.clone());
    }
    b
}

/// The session cookie carrying `value`, with the configured attributes and browser expiry.
pub(crate) fn session_cookie(config: &SessionConfig, value: String, now: SystemTime) -> SetCookie {
    let mut b = base(config, value);
    match config.cookie_expires {
        CookieExpires::BrowserSession => {}
        CookieExpires::Never => b = b.max_age(to_time(LONGEST_COOKIE)),
        CookieExpires::After(d) => b = b.max_age(to_time(d.min(LONGEST_COOKIE))),
        CookieExpires::At(t) => {
            b = b.expires(Expiration::DateTime(time::OffsetDateTime::from(t)));
            if t <= now {
                b = b.max_age(time::Duration::ZERO);
            }
        }
    }
    SetCookie(b.build().to_string())
}

/// A cookie that removes the session cookie, repeating Path, Domain, Secure, HttpOnly and
/// SameSite of the original so that the browser matches and drops it.
pub(crate) fn removal_cookie(config: &SessionConfig) -> SetCookie {
    let b = base(config, String::new())
        .max_age(time::Duration::ZERO)
        .expires(Expiration::DateTime(time::OffsetDateTime::UNIX_EPOCH));
    SetCookie(b.build().to_string())
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::seconds(d.as_secs().min(i64::MAX as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_cookie_among_others_and_garbage() {
        let headers = ["a=1; beaker.session.id=abc.def; b", "=; ;;; beaker.session.id=second", "other=x"];
        assert_eq!(values_named(headers, "beaker.session.id"), vec!["abc.def", "second"]);
        assert!(values_named(["\u{0}\u{ff}garbage"], "beaker.session.id").is_empty());
        assert!(values_named(["beaker.session.idx=1"], "beaker.session.id").is_empty());
    }

    #[test]
    fn cookie_attributes() {
        let mut c = SessionConfig::default().with_domain("example.com").with_secure(true);
        c.cookie_expires = CookieExpires::After(Duration::from_secs(60));
        let s = session_cookie(&c, "v".into(), SystemTime::now()).into_string();
        for part in
            ["beaker.session.id=v", "HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Domain=example.com", "Max-Age=60"]
        {
            assert!(s.contains(part), "{s} lacks {part}");
        }
        let r = removal_cookie(&c).into_string();
        for part in [
            "beaker.session.id=",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Domain=example.com",
            "Max-Age=0",
            "Expires=Thu, 01 Jan 1970",
        ] {
            assert!(r.contains(part), "{r} lacks {part}");
        }
        let browser = session_cookie(&SessionConfig::default(), "v".into(), SystemTime::now()).into_string();
        assert!(
            !browser.contains("Max-Age") && !browser.contains("Expires") && !browser.contains("Secure"),
            "{browser}"
        );
    }
}
