//! The HTTP side of the adapter suite: requests with hand-made `Cookie` headers, answers
//! with their raw `Set-Cookie` values, and the failure messages naming the scenario.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE, VARY};
use reqwest::Method;

/// The scenario a check belongs to: every failure names it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cx(pub(crate) &'static str);

impl Cx {
    #[track_caller]
    pub(crate) fn fail(self, msg: impl fmt::Display) -> ! {
        panic!("adapter contract scenario `{}` failed: {msg}", self.0)
    }

    #[track_caller]
    pub(crate) fn ensure(self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.fail(msg())
        }
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// `application/x-www-form-urlencoded`.
    Form(String),
    /// Raw bytes (`text/plain`).
    Text(Vec<u8>),
}

/// A plain HTTP client for the server under test: no cookie jar, no proxy.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    pub(crate) fn new(base_url: String) -> Http {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("a plain HTTP client builds");
        Http { client, base: base_url.trim_end_matches('/').to_owned() }
    }

    /// Sends one request with one `Cookie` header line per item of `cookies`.
    pub(crate) async fn send(
        &self,
        cx: Cx,
        method: Method,
        path: &str,
        cookies: &[&[u8]],
        body: Option<Body>,
    ) -> Answer {
        let what = match cookies.len() {
            0 => format!("{method} {path}"),
            1 => format!("{method} {path} (with a Cookie header)"),
            n => format!("{method} {path} (with {n} Cookie header lines)"),
        };
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for cookie in cookies {
            let value =
                HeaderValue::from_bytes(cookie).unwrap_or_else(|e| cx.fail(format!("{what}: bad test cookie: {e}")));
            // Appends: several lines stay several lines.
            req = req.header(COOKIE, value);
        }
        req = match body {
            Some(Body::Form(form)) => req.header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(form),
            Some(Body::Text(bytes)) => req.header(CONTENT_TYPE, "text/plain; charset=utf-8").body(bytes),
            None => req,
        };
        let res = req.send().await.unwrap_or_else(|e| cx.fail(format!("{what}: request failed: {e}")));
        let status = res.status().as_u16();
        let headers = res.headers();
        let lines = |name: HeaderName| -> Vec<String> {
            headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
        };
        let set_cookies = lines(SET_COOKIE);
        let (vary, cache_control) = (lines(VARY), lines(CACHE_CONTROL));
        let content_type = headers.get(CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = res.bytes().await.unwrap_or_else(|e| cx.fail(format!("{what}: reading the body failed: {e}")));
        let body = String::from_utf8_lossy(&body).into_owned();
        Answer { what, status, content_type, body, set_cookies, vary, cache_control }
    }
}

/// One response, as the suite checks it.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    what: String,
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) body: String,
    pub(crate) set_cookies: Vec<String>,
    /// The `Vary` lines, as sent.
    pub(crate) vary: Vec<String>,
    /// The `Cache-Control` lines, as sent.
    pub(crate) cache_control: Vec<String>,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} answered {} {:?}", self.what, self.status, shorten(&self.body))?;
        for c in &self.set_cookies {
            write!(f, " [Set-Cookie: {}]", shorten(c))?;
        }
        for v in &self.vary {
            write!(f, " [Vary: {v}]")?;
        }
        for c in &self.cache_control {
            write!(f, " [Cache-Control: {c}]")?;
        }
        Ok(())
    }
}

fn shorten(s: &str) -> String {
    if s.len() <= 300 {
        return s.to_owned();
    }
    let mut end = 300;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

impl Answer {
    /// Asserts the status and the exact body.
    #[track_caller]
    pub(crate) fn expect(&self, cx: Cx, status: u16, body: &str) -> &Answer {
        cx.ensure(self.status == status && self.body == body, || format!("expected {status} {body:?}; {self}"));
        self
    }

    /// Asserts the status.
    #[track_caller]
    pub(crate) fn expect_status(&self, cx: Cx, status: u16) -> &Answer {
        cx.ensure(self.status == status, || format!("expected status {status}; {self}"));
        self
    }

    /// Asserts the `Content-Type` header.
    #[track_caller]
    pub(crate) fn expect_content_type(&self, cx: Cx, content_type: &str) -> &Answer {
        cx.ensure(self.content_type.as_deref() == Some(content_type), || {
            format!("expected Content-Type {content_type:?}, got {:?}; {self}", self.content_type)
        });
        self
    }

    /// Asserts that no `Set-Cookie` header came back.
    #[track_caller]
    pub(crate) fn expect_no_cookie(&self, cx: Cx) -> &Answer {
        cx.ensure(self.set_cookies.is_empty(), || format!("expected no Set-Cookie; {self}"));
        self
    }

    /// Whether any `Set-Cookie` is for cookie `name`.
    pub(crate) fn has_cookie(&self, name: &str) -> bool {
        self.set_cookies.iter().any(|raw| SetCookie::parse(raw).name == name)
    }

    /// The one `Set-Cookie` for cookie `name`; fails unless there is exactly one.
    #[track_caller]
    pub(crate) fn cookie(&self, cx: Cx, name: &str) -> SetCookie {
        let mut ours: Vec<SetCookie> =
            self.set_cookies.iter().map(|raw| SetCookie::parse(raw)).filter(|c| c.name == name).collect();
        cx.ensure(ours.len() == 1, || format!("expected exactly one Set-Cookie for {name}; {self}"));
        ours.remove(0)
    }
}

/// A parsed `Set-Cookie` value.
#[derive(Debug, Clone)]
pub(crate) struct SetCookie {
    pub(crate) raw: String,
    pub(crate) name: String,
    pub(crate) value: String,
    /// Attribute names lower-cased, values as sent.
    attrs: Vec<(String, Option<String>)>,
}

impl SetCookie {
    pub(crate) fn parse(raw: &str) -> SetCookie {
        let mut parts = raw.split(';');
        let (name, value) = parts.next().unwrap_or("").split_once('=').unwrap_or((raw, ""));
        let attrs = parts
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().to_owned())),
                None => (a.trim().to_ascii_lowercase(), None),
            })
            .filter(|(k, _)| !k.is_empty())
            .collect();
        SetCookie { raw: raw.to_owned(), name: name.trim().to_owned(), value: value.trim().to_owned(), attrs }
    }

    /// The attribute's value (`Some("")` for a flag such as `HttpOnly`).
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.attrs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// The `name=value` pair to send back in a `Cookie` header.
    pub(crate) fn pair(&self) -> String {
        format!("{}={}", self.name, self.value)
    }

    /// Whether this cookie tells the browser to drop the cookie: `Max-Age` ≤ 0 or an
    /// `Expires` in a past year.
    pub(crate) fn is_removal(&self) -> bool {
        let max_age_gone = self.attr("max-age").is_some_and(|v| v.trim().parse::<i64>().is_ok_and(|n| n <= 0));
        let expired = self.attr("expires").and_then(year_of).is_some_and(|y| y < current_year());
        max_age_gone || expired
    }

    /// Checks the attributes every session cookie and removal cookie carries: `Path=/`,
    /// `HttpOnly`, `SameSite=Lax`, and `Secure` when `secure` says so.
    #[track_caller]
    pub(crate) fn expect_attributes(&self, cx: Cx, secure: Option<bool>) {
        cx.ensure(self.attr("path") == Some("/"), || format!("expected Path=/ in {}", self.raw));
        cx.ensure(self.attr("httponly").is_some(), || format!("expected HttpOnly in {}", self.raw));
        cx.ensure(self.attr("samesite").is_some_and(|v| v.eq_ignore_ascii_case("lax")), || {
            format!("expected SameSite=Lax in {}", self.raw)
        });
        if let Some(secure) = secure {
            cx.ensure(self.attr("secure").is_some() == secure, || {
                format!("expected {}Secure in {}", if secure { "" } else { "no " }, self.raw)
            });
        }
    }
}

/// The four-digit year in an HTTP date (`Thu, 01 Jan 1970 00:00:00 GMT`).
fn year_of(date: &str) -> Option<i64> {
    date.split([' ', '-']).find(|w| w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()))?.parse().ok()
}

fn current_year() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Good to a day or so, which is all a "past year" check needs.
    1970 + (secs / 31_556_952) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_set_cookie() {
        let c = SetCookie::parse("beaker.session.id=abc.def; HttpOnly; SameSite=Lax; Path=/");
        assert_eq!((c.name.as_str(), c.value.as_str()), ("beaker.session.id", "abc.def"));
        assert_eq!(c.attr("httponly"), Some(""));
        assert_eq!(c.attr("SameSite"), Some("Lax"));
        assert_eq!(c.attr("max-age"), None);
        assert!(!c.is_removal());
        assert_eq!(c.pair(), "beaker.session.id=abc.def");
        let r = SetCookie::parse("k=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        assert!(r.is_removal());
        assert!(SetCookie::parse("k=; Max-Age=0").is_removal());
        assert!(!SetCookie::parse("k=v; Max-Age=60").is_removal());
    }
}
