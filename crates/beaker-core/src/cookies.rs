//! The cookie codec: reading our cookie out of raw `Cookie` header values and writing
//! `Set-Cookie` header values. The `cookie` crate does the parsing and formatting, but none
//! of its types leave this module (actix-web and rocket pin different majors of it).

use std::fmt;
use std::time::{Duration, SystemTime};

use cookie::{Cookie, Expiration};
use memchr::memmem::Finder;

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

    #[cfg(test)]
    pub(crate) fn for_tests(value: &str) -> Self {
        SetCookie(value.to_owned())
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

/// The values of every cookie named `name` in a `Cookie` header value (several header
/// values joined with `"; "`, as HTTP/2 prescribes), in order. Malformed pairs and other
/// cookies are skipped; nothing here can fail.
///
/// A pair is ours when, past leading whitespace, it is `name`, optional whitespace and
/// `=`; its value is the rest, trimmed, quotes kept: what `cookie::Cookie::parse` gives as
/// `name()` and `value_raw()` for such a pair (a test holds the two together). Isolating
/// the pair already does all of that parser's work, so it is not run a second time.
pub(crate) fn values_named<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    // Split with `memchr` (SIMD); `str::split` searches a byte at a time.
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let text = rest?;
        let (pair, next) = match memchr::memchr(b';', text.as_bytes()) {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        rest = next;
        Some(pair)
    })
    // No whole-header search first: `raw_header` kept only headers that mention `name`.
    .filter_map(move |pair| pair.trim_start().strip_prefix(name)?.trim_start().strip_prefix('='))
    .map(str::trim)
}

/// Joins the `Cookie` header values that may hold a cookie named `name` into one buffer
/// (`"; "` between values), unparsed and unchecked: parsing (and reading the bytes as
/// UTF-8) waits until the session is used. `name` is the cookie name's searcher, built
/// once per manager (`str::contains` sets one up per call, which costs more than the
/// search on a typical header).
pub(crate) fn raw_header<'a>(headers: impl IntoIterator<Item = &'a [u8]>, name: &Finder<'_>) -> Vec<u8> {
    let mut raw = Vec::new();
    for header in headers {
        // Cheap pre-check: most requests without a session carry other cookies only.
        if name.find(header).is_some() {
            if !raw.is_empty() {
                raw.extend_from_slice(b"; ");
            }
            raw.extend_from_slice(header);
        }
    }
    raw
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
            // Saturated: a date past year 9999 has no `OffsetDateTime` (nor cookie date).
            let t = t.min(crate::clock::far_future());
            b = b.expires(Expiration::DateTime(time::OffsetDateTime::from(t)));
            if t <= now {
                b = b.max_age(time::Duration::ZERO);
            }
        }
    }
    SetCookie(b.build().to_string())
}

/// The session cookie's `Set-Cookie` values for one configuration, rendered by the
/// `cookie` crate once: unless the cookie expires at a fixed date (`cookie_expires = At`),
/// every session cookie is `name=`, the value, and the same attributes, and the removal
/// cookie never changes. Building and formatting a `cookie::Cookie` per response cost more
/// than the rest of writing a cookie-only session's header.
#[derive(Debug)]
pub(crate) struct CookieFormat {
    /// `name=` and the attributes after the value, when they do not depend on the time.
    fixed: Option<(String, String)>,
    removal: SetCookie,
}

impl CookieFormat {
    pub(crate) fn new(config: &SessionConfig) -> CookieFormat {
        let fixed = match config.cookie_expires {
            CookieExpires::At(_) => None,
            CookieExpires::BrowserSession | CookieExpires::Never | CookieExpires::After(_) => {
                let prefix = format!("{}=", config.key);
                let empty = session_cookie(config, String::new(), SystemTime::UNIX_EPOCH).into_string();
                empty.strip_prefix(&prefix).map(|suffix| (prefix.clone(), suffix.to_owned()))
            }
        };
        CookieFormat { fixed, removal: removal_cookie(config) }
    }

    /// The session cookie carrying `value`: what [`session_cookie`] gives, without a
    /// `cookie::Cookie` when the attributes are fixed.
    pub(crate) fn session(&self, config: &SessionConfig, value: String, now: SystemTime) -> SetCookie {
        match &self.fixed {
            Some((prefix, suffix)) => {
                let mut s = String::with_capacity(prefix.len() + value.len() + suffix.len());
                s.push_str(prefix);
                s.push_str(&value);
                s.push_str(suffix);
                SetCookie(s)
            }
            None => session_cookie(config, value, now),
        }
    }

    /// The cookie that removes the session cookie ([`removal_cookie`]).
    pub(crate) fn removal(&self) -> SetCookie {
        self.removal.clone()
    }
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
        let name = "beaker.session.id";
        let headers = ["a=1; beaker.session.id=abc.def; b", "=; ;;; beaker.session.id =second", "other=x"];
        let finder = Finder::new(name);
        let raw = raw_header(headers.map(str::as_bytes), &finder);
        assert_eq!(raw, b"a=1; beaker.session.id=abc.def; b; =; ;;; beaker.session.id =second");
        let raw = String::from_utf8(raw).unwrap();
        assert_eq!(values_named(&raw, name).collect::<Vec<_>>(), vec!["abc.def", "second"]);
        assert_eq!(
            values_named("x=\"beaker.session.id=forged\"; beaker.session.id=real", name).collect::<Vec<_>>(),
            ["real"]
        );
        assert_eq!(values_named("beaker.session.id=\"quoted\"", name).collect::<Vec<_>>(), ["\"quoted\""]);
        assert_eq!(values_named("\u{0}\u{ff}garbage", name).count(), 0);
        assert_eq!(values_named("beaker.session.idx=1; xbeaker.session.id=2", name).count(), 0);
        assert!(raw_header([&b"other=1"[..], b"more=2"], &finder).is_empty());
    }

    #[test]
    fn a_pair_of_ours_reads_as_the_cookie_crate_parses_it() {
        let name = "beaker.session.id";
        let pairs = [
            "beaker.session.id=abc",
            "  beaker.session.id  =  abc  ",
            "\tbeaker.session.id\t=\tabc\t",
            "beaker.session.id=",
            "beaker.session.id=  ",
            "beaker.session.id=a=b",
            "beaker.session.id=\"q\"",
            "beaker.session.id= \" spaced \" ",
            "beaker.session.id=caf\u{e9}\u{3000}",
            "beaker.session.id=\u{a0}x\u{a0}",
        ];
        for pair in pairs {
            let parsed = cookie::Cookie::parse(pair).unwrap();
            assert_eq!(parsed.name(), name, "{pair:?}");
            let ours: Vec<_> = values_named(pair, name).collect();
            assert_eq!(ours, [parsed.value_raw().unwrap()], "{pair:?}");
        }
    }

    #[test]
    fn the_format_rendered_once_matches_the_cookie_crate() {
        let now = SystemTime::now();
        let configs = [
            SessionConfig::default(),
            SessionConfig::default().with_domain("example.com").with_secure(true).with_samesite(SameSite::Strict),
            SessionConfig::default().with_samesite(SameSite::None).with_cookie_expires(CookieExpires::Never),
            SessionConfig::default().with_cookie_expires(CookieExpires::After(Duration::from_secs(1800))),
            SessionConfig::default().with_cookie_expires(CookieExpires::At(now + Duration::from_secs(60))),
            SessionConfig::default().with_cookie_expires(CookieExpires::At(now - Duration::from_secs(60))),
        ];
        for c in &configs {
            let format = CookieFormat::new(c);
            assert_eq!(format.fixed.is_none(), matches!(c.cookie_expires, CookieExpires::At(_)));
            for value in ["", "v", "abc.DEF-_0123456789"] {
                assert_eq!(format.session(c, value.into(), now), session_cookie(c, value.into(), now), "{c:?}");
            }
            assert_eq!(format.removal(), removal_cookie(c));
        }
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
