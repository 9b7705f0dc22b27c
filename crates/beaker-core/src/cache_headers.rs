//! What a finished request adds to its response: the `Set-Cookie` values and the caching
//! directives that keep one visitor's session out of another's response in shared caches
//! (reverse proxies, CDNs). Header values go in and out as bytes: no `http` types here.

use std::borrow::Cow;
use std::ops::Deref;

use crate::config::CacheHeaders;
use crate::cookies::SetCookie;

/// The `no-cache` directive OWASP's Session Management Cheat Sheet asks for on responses
/// that set a session id: a shared cache must not hand the cookie to anyone without
/// asking the origin first.
const NO_CACHE_SET_COOKIE: &str = "no-cache=\"Set-Cookie, Set-Cookie2\"";

/// The `Cache-Control` value when the handler set none.
const PRIVATE_NO_CACHE_SET_COOKIE: &str = "private, no-cache=\"Set-Cookie, Set-Cookie2\"";

/// The field names [`NO_CACHE_SET_COOKIE`] lists.
const SET_COOKIE_FIELDS: [&str; 2] = ["Set-Cookie", "Set-Cookie2"];

/// The end of a request, from [`SessionManager::finish`](crate::SessionManager::finish):
/// the `Set-Cookie` values to append (it dereferences to them) and the
/// [`CacheDirectives`] to merge into the response's `Vary` and `Cache-Control`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    set_cookies: Vec<SetCookie>,
    cache: CacheDirectives,
}

impl Finished {
    /// What finishing a request gives under `policy`: `used` says whether the request
    /// used its session at all.
    pub(crate) fn new(set_cookies: Vec<SetCookie>, policy: CacheHeaders, used: bool) -> Self {
        let cache = match policy {
            CacheHeaders::Off => CacheDirectives::default(),
            CacheHeaders::Auto => {
                CacheDirectives { vary_cookie: used || !set_cookies.is_empty(), private: !set_cookies.is_empty() }
            }
        };
        Finished { set_cookies, cache }
    }

    /// The `Set-Cookie` values, in order.
    pub fn set_cookies(&self) -> &[SetCookie] {
        &self.set_cookies
    }

    /// The `Set-Cookie` values, owned.
    pub fn into_set_cookies(self) -> Vec<SetCookie> {
        self.set_cookies
    }

    /// The caching directives the response needs.
    pub fn cache_directives(&self) -> CacheDirectives {
        self.cache
    }

    /// Whether the response needs nothing from the session: no `Set-Cookie` and no
    /// caching header (a request that never used its session). Adapters return the
    /// response untouched then.
    pub fn adds_nothing(&self) -> bool {
        self.set_cookies.is_empty() && self.cache.is_empty()
    }

    /// Puts everything on a response's headers, in the one order every adapter uses:
    /// nothing at all when [`adds_nothing`](Self::adds_nothing); the merged `Vary` and
    /// `Cache-Control` values (each header read only when core has something to add to
    /// it); then the `Set-Cookie` values, appended. The adapter only translates
    /// ([`ResponseHeaders`]); the first value it refuses stops the rest and is returned,
    /// since losing a cookie or a caching header silently would leak or lose the session.
    ///
    /// # Errors
    /// The adapter's error for a value its header type refuses.
    pub fn apply_to<H: ResponseHeaders>(self, headers: &mut H) -> Result<(), H::Error> {
        if self.adds_nothing() {
            return Ok(());
        }
        let cache = self.cache;
        if cache.vary_cookie() {
            if let Some(vary) = headers.merge(ResponseHeader::Vary, |lines| cache.merge_vary(lines)) {
                headers.set(ResponseHeader::Vary, vary)?;
            }
        }
        if cache.keep_out_of_shared_caches() {
            if let Some(cc) = headers.merge(ResponseHeader::CacheControl, |lines| cache.merge_cache_control(lines)) {
                headers.set(ResponseHeader::CacheControl, cc)?;
            }
        }
        for cookie in self.set_cookies {
            headers.append_set_cookie(cookie.into_string())?;
        }
        Ok(())
    }
}

/// The response headers [`Finished::apply_to`] reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseHeader {
    /// `Vary`.
    Vary,
    /// `Cache-Control`.
    CacheControl,
}

impl ResponseHeader {
    /// The header's name, as HTTP spells it.
    pub fn name(self) -> &'static str {
        match self {
            ResponseHeader::Vary => "Vary",
            ResponseHeader::CacheControl => "Cache-Control",
        }
    }
}

/// A framework's response headers, as [`Finished::apply_to`] sees them: implemented by
/// each adapter for its header type, as a translation only.
pub trait ResponseHeaders {
    /// What a refused header value becomes.
    type Error;

    /// Runs `merge` over the values of `header` the handler set (as bytes) and returns
    /// its result.
    fn merge<T>(&self, header: ResponseHeader, merge: impl FnOnce(&mut dyn Iterator<Item = &[u8]>) -> T) -> T;

    /// Replaces every value of `header` by `value` (visible ASCII, or the handler's own
    /// bytes; a constant when borrowed, so that it can be stored without a copy).
    ///
    /// # Errors
    /// When the header type refuses the value.
    fn set(&mut self, header: ResponseHeader, value: Cow<'static, [u8]>) -> Result<(), Self::Error>;

    /// Appends one `Set-Cookie` value.
    ///
    /// # Errors
    /// When the header type refuses the value.
    fn append_set_cookie(&mut self, value: String) -> Result<(), Self::Error>;
}

impl Deref for Finished {
    type Target = [SetCookie];

    fn deref(&self) -> &[SetCookie] {
        &self.set_cookies
    }
}

impl IntoIterator for Finished {
    type Item = SetCookie;
    type IntoIter = std::vec::IntoIter<SetCookie>;

    fn into_iter(self) -> Self::IntoIter {
        self.set_cookies.into_iter()
    }
}

/// The caching headers a response needs because of its session (under `cache_headers =
/// auto`, the default), and how to merge them into what the handler set.
///
/// - A request that used its session (read or write) varies on `Cookie`: a cache that
///   keys on `Vary` never answers one visitor with another's page.
/// - A response that sets or removes the session cookie must not be stored by shared
///   caches: `Cache-Control: private, no-cache="Set-Cookie, Set-Cookie2"` when the handler
///   set no `Cache-Control`; when it did, OWASP's `no-cache="Set-Cookie, Set-Cookie2"` is
///   added to the handler's directives (so a page the handler made `public` may still be
///   cached, but never with the cookie); a handler's `no-store` or `private` is strict
///   enough and stays alone; a handler's `no-cache` with field names gets the two
///   `Set-Cookie` names added to its list.
/// - A request that never touched its session gets neither header: public pages stay
///   cacheable.
///
/// The merges return the one value that replaces all of the handler's lines of that
/// header (every value of the handler is kept, none is repeated), or `None` when the
/// handler's lines already say enough and stay as they are.
///
/// ```
/// use beaker_core::{MemoryStore, SessionConfig, SessionManager};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = SessionConfig::new().with_secret("change me: at least 16 bytes")?;
/// let manager = SessionManager::builder(config).store(MemoryStore::new()).build()?;
/// let session = manager.start(None::<&str>);
/// session.insert("n", &1).await?;
/// let cache = manager.finish(&session).await?.cache_directives();
/// assert_eq!(cache.merge_vary([b"Accept-Encoding".as_slice()]).as_deref(), Some(b"Accept-Encoding, Cookie".as_slice()));
/// assert_eq!(cache.merge_cache_control(None).as_deref(), Some(b"private, no-cache=\"Set-Cookie, Set-Cookie2\"".as_slice()));
/// assert_eq!(cache.merge_cache_control([b"no-store".as_slice()]), None);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheDirectives {
    vary_cookie: bool,
    private: bool,
}

impl CacheDirectives {
    /// Whether the response must vary on `Cookie`.
    pub fn vary_cookie(&self) -> bool {
        self.vary_cookie
    }

    /// Whether the response sets or removes the session cookie and must be kept out of
    /// shared caches.
    pub fn keep_out_of_shared_caches(&self) -> bool {
        self.private
    }

    /// Whether the response needs no caching header at all.
    pub fn is_empty(&self) -> bool {
        !self.vary_cookie && !self.private
    }

    /// The `Vary` value to set, given the handler's `Vary` lines (as bytes), or `None` to
    /// leave them: `Cookie` is added unless a line already names it or says `*`. Borrowed
    /// (a constant) when the handler set no `Vary`, so that adapters can store it without
    /// a copy.
    pub fn merge_vary<'a>(&self, handler: impl IntoIterator<Item = &'a [u8]>) -> Option<Cow<'static, [u8]>> {
        if !self.vary_cookie {
            return None;
        }
        let lines: Vec<&[u8]> = handler.into_iter().filter(|l| !l.trim_ascii().is_empty()).collect();
        if lines.is_empty() {
            return Some(Cow::Borrowed(b"Cookie"));
        }
        let covered = lines
            .iter()
            .flat_map(|line| line.split(|&b| b == b','))
            .map(|field| field.trim_ascii())
            .any(|field| field == b"*" || field.eq_ignore_ascii_case(b"cookie"));
        if covered {
            return None;
        }
        Some(Cow::Owned(join(&lines, b"Cookie")))
    }

    /// The `Cache-Control` value to set, given the handler's `Cache-Control` lines (as
    /// bytes), or `None` to leave them (see the rules on [`CacheDirectives`]). Borrowed
    /// (a constant) when the handler set no `Cache-Control`.
    pub fn merge_cache_control<'a>(&self, handler: impl IntoIterator<Item = &'a [u8]>) -> Option<Cow<'static, [u8]>> {
        if !self.private {
            return None;
        }
        let lines: Vec<&[u8]> = handler.into_iter().filter(|l| !l.trim_ascii().is_empty()).collect();
        if lines.is_empty() {
            return Some(Cow::Borrowed(PRIVATE_NO_CACHE_SET_COOKIE.as_bytes()));
        }
        let directives: Vec<Directive<'_>> = lines.iter().flat_map(|line| split_directives(line)).collect();
        if directives.iter().any(|d| d.is("no-store") || (d.is("private") && d.value.is_none())) {
            return None;
        }
        let Some(no_cache) = directives.iter().find(|d| d.is("no-cache")) else {
            return Some(Cow::Owned(join(&lines, NO_CACHE_SET_COOKIE.as_bytes())));
        };
        // A bare `no-cache` already sends every reuse to the origin first.
        let listed = no_cache.value?;
        let names = unquote(listed);
        let missing: Vec<&str> = SET_COOKIE_FIELDS
            .into_iter()
            .filter(|want| !names.split(|&b| b == b',').any(|n| n.trim_ascii().eq_ignore_ascii_case(want.as_bytes())))
            .collect();
        if missing.is_empty() {
            return None;
        }
        // Rewrite that one directive with the missing names; the rest stays byte for byte.
        let mut widened = b"no-cache=\"".to_vec();
        let kept = names.trim_ascii();
        widened.extend_from_slice(kept);
        for (i, name) in missing.into_iter().enumerate() {
            if i > 0 || !kept.is_empty() {
                widened.extend_from_slice(b", ");
            }
            widened.extend_from_slice(name.as_bytes());
        }
        widened.push(b'"');
        let parts: Vec<&[u8]> =
            directives.iter().map(|d| if std::ptr::eq(d, no_cache) { widened.as_slice() } else { d.raw }).collect();
        Some(Cow::Owned(parts.join(b", ".as_slice())))
    }
}

/// The handler's lines joined into one value, with `extra` appended.
fn join(lines: &[&[u8]], extra: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    for part in lines.iter().map(|l| l.trim_ascii()).filter(|l| !l.is_empty()).chain([extra]) {
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(part);
    }
    out
}

/// One `Cache-Control` directive: its text and, if any, its argument.
#[derive(Debug)]
struct Directive<'a> {
    raw: &'a [u8],
    name: &'a [u8],
    value: Option<&'a [u8]>,
}

impl Directive<'_> {
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// Splits one `Cache-Control` line at the commas outside quoted strings.
fn split_directives<'a>(line: &'a [u8]) -> Vec<Directive<'a>> {
    let mut out = Vec::new();
    let mut push = |raw: &'a [u8]| {
        let raw = raw.trim_ascii();
        if !raw.is_empty() {
            let (name, value) = match raw.iter().position(|&b| b == b'=') {
                Some(eq) => (raw[..eq].trim_ascii(), Some(raw[eq + 1..].trim_ascii())),
                None => (raw, None),
            };
            out.push(Directive { raw, name, value });
        }
    };
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in line.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&line[start..]);
    out
}

/// A directive's argument without its surrounding quotes.
fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both() -> CacheDirectives {
        CacheDirectives { vary_cookie: true, private: true }
    }

    fn vary(lines: &[&str]) -> Option<String> {
        both().merge_vary(lines.iter().map(|l| l.as_bytes())).map(|v| String::from_utf8(v.into_owned()).expect("ascii"))
    }

    fn cache_control(lines: &[&str]) -> Option<String> {
        both()
            .merge_cache_control(lines.iter().map(|l| l.as_bytes()))
            .map(|v| String::from_utf8(v.into_owned()).expect("ascii"))
    }

    #[test]
    fn vary_gets_cookie_once_and_keeps_the_handlers_fields() {
        assert_eq!(vary(&[]).as_deref(), Some("Cookie"));
        assert_eq!(vary(&["Accept-Encoding"]).as_deref(), Some("Accept-Encoding, Cookie"));
        assert_eq!(vary(&["Accept-Encoding", " Origin "]).as_deref(), Some("Accept-Encoding, Origin, Cookie"));
        assert_eq!(vary(&["Accept-Encoding, cookie"]), None);
        assert_eq!(vary(&["Origin", "COOKIE"]), None);
        assert_eq!(vary(&["*"]), None);
        assert_eq!(vary(&["Origin, *"]), None);
        assert_eq!(vary(&["Cookies"]).as_deref(), Some("Cookies, Cookie"), "a different field name");
        assert_eq!(vary(&[""]).as_deref(), Some("Cookie"));
    }

    #[test]
    fn cache_control_when_the_handler_set_none() {
        let want = "private, no-cache=\"Set-Cookie, Set-Cookie2\"";
        assert_eq!(cache_control(&[]).as_deref(), Some(want));
        assert_eq!(cache_control(&["  "]).as_deref(), Some(want));
    }

    #[test]
    fn a_stricter_handler_directive_stays_alone() {
        assert_eq!(cache_control(&["no-store"]), None);
        assert_eq!(cache_control(&["max-age=0, NO-STORE"]), None);
        assert_eq!(cache_control(&["private, max-age=60"]), None);
        assert_eq!(cache_control(&["max-age=60", "private"]), None);
        assert_eq!(cache_control(&["no-cache"]), None, "a bare no-cache revalidates everything");
        assert_eq!(cache_control(&["no-cache=\"Set-Cookie2, set-cookie\""]), None);
    }

    /// Headers as a list of (name, value), for `apply_to`.
    #[derive(Default)]
    struct List(Vec<(&'static str, Vec<u8>)>, Vec<ResponseHeader>);

    impl ResponseHeaders for List {
        type Error = String;

        fn merge<T>(&self, header: ResponseHeader, merge: impl FnOnce(&mut dyn Iterator<Item = &[u8]>) -> T) -> T {
            merge(&mut self.0.iter().filter(|(n, _)| *n == header.name()).map(|(_, v)| v.as_slice()))
        }

        fn set(&mut self, header: ResponseHeader, value: Cow<'static, [u8]>) -> Result<(), String> {
            if value.contains(&b'\n') {
                return Err(format!("refused {}", header.name()));
            }
            self.1.push(header);
            self.0.retain(|(n, _)| *n != header.name());
            self.0.push((header.name(), value.into_owned()));
            Ok(())
        }

        fn append_set_cookie(&mut self, value: String) -> Result<(), String> {
            self.0.push(("Set-Cookie", value.into_bytes()));
            Ok(())
        }
    }

    #[test]
    fn apply_to_merges_in_order_and_leaves_an_unused_session_alone() {
        let mut untouched = List(vec![("Vary", b"Accept".to_vec())], Vec::new());
        Finished::default().apply_to(&mut untouched).unwrap();
        assert_eq!(untouched.0, [("Vary", b"Accept".to_vec())]);
        assert!(untouched.1.is_empty(), "nothing was even read");

        let read_only =
            Finished { set_cookies: Vec::new(), cache: CacheDirectives { vary_cookie: true, private: false } };
        let mut h = List(vec![("Cache-Control", b"public".to_vec()), ("Vary", b"Accept".to_vec())], Vec::new());
        read_only.apply_to(&mut h).unwrap();
        assert_eq!(h.1, [ResponseHeader::Vary], "Cache-Control is left alone");
        assert_eq!(h.0, [("Cache-Control", b"public".to_vec()), ("Vary", b"Accept, Cookie".to_vec())]);

        let cookie = SetCookie::for_tests("s=1; Path=/");
        let written = Finished { set_cookies: vec![cookie.clone()], cache: both() };
        let mut h = List::default();
        written.apply_to(&mut h).unwrap();
        assert_eq!(h.1, [ResponseHeader::Vary, ResponseHeader::CacheControl]);
        assert_eq!(h.0[2], ("Set-Cookie", b"s=1; Path=/".to_vec()));

        // The first value the headers refuse stops the rest.
        let mut h = List(vec![("Vary", b"a\nb".to_vec())], Vec::new());
        let refused = Finished { set_cookies: vec![cookie], cache: both() }.apply_to(&mut h);
        assert_eq!(refused, Err("refused Vary".to_owned()));
        assert!(!h.0.iter().any(|(n, _)| *n == "Set-Cookie"));
    }

    #[test]
    fn constants_are_borrowed_and_match_the_directives() {
        assert_eq!(PRIVATE_NO_CACHE_SET_COOKIE, format!("private, {NO_CACHE_SET_COOKIE}"));
        assert!(matches!(both().merge_vary(None), Some(Cow::Borrowed(b"Cookie"))));
        assert!(matches!(both().merge_cache_control([b"  ".as_slice()]), Some(Cow::Borrowed(_))));
        assert!(matches!(both().merge_vary([b"Accept".as_slice()]), Some(Cow::Owned(_))));
    }

    #[test]
    fn a_public_handler_directive_gets_the_owasp_directive() {
        assert_eq!(
            cache_control(&["public, max-age=600"]).as_deref(),
            Some("public, max-age=600, no-cache=\"Set-Cookie, Set-Cookie2\"")
        );
        assert_eq!(
            cache_control(&["public", "s-maxage=60"]).as_deref(),
            Some("public, s-maxage=60, no-cache=\"Set-Cookie, Set-Cookie2\"")
        );
        // `private` naming a field is not private as a whole.
        assert_eq!(
            cache_control(&["private=\"X-Secret\", max-age=5"]).as_deref(),
            Some("private=\"X-Secret\", max-age=5, no-cache=\"Set-Cookie, Set-Cookie2\"")
        );
    }

    #[test]
    fn a_no_cache_field_list_is_widened_not_repeated() {
        assert_eq!(
            cache_control(&["max-age=60, no-cache=\"X-Token\", must-revalidate"]).as_deref(),
            Some("max-age=60, no-cache=\"X-Token, Set-Cookie, Set-Cookie2\", must-revalidate")
        );
        assert_eq!(
            cache_control(&["no-cache=\"set-cookie\""]).as_deref(),
            Some("no-cache=\"set-cookie, Set-Cookie2\"")
        );
        assert_eq!(cache_control(&["no-cache=\"\""]).as_deref(), Some("no-cache=\"Set-Cookie, Set-Cookie2\""));
    }

    #[test]
    fn commas_inside_quotes_do_not_split_directives() {
        let d = split_directives(b"no-cache=\"a, no-store\", max-age=1");
        let names: Vec<&[u8]> = d.iter().map(|d| d.name).collect();
        assert_eq!(names, [b"no-cache".as_slice(), b"max-age".as_slice()]);
        assert_eq!(
            cache_control(&["no-cache=\"a, no-store\""]).as_deref(),
            Some("no-cache=\"a, no-store, Set-Cookie, Set-Cookie2\"")
        );
        // An unterminated quote swallows the rest of the line, and never panics.
        assert_eq!(split_directives(b"x=\"abc, no-store").len(), 1);
    }

    #[test]
    fn nothing_is_asked_without_a_reason() {
        let none = CacheDirectives::default();
        assert!(none.is_empty());
        assert_eq!(none.merge_vary(None), None);
        assert_eq!(none.merge_cache_control(None), None);
        let read = CacheDirectives { vary_cookie: true, private: false };
        assert_eq!(read.merge_cache_control(None), None, "a read sets no cookie");
    }

    #[test]
    fn the_policy_decides() {
        let cookie = || vec![crate::cookies::removal_cookie(&crate::SessionConfig::default())];
        assert!(Finished::new(Vec::new(), CacheHeaders::Auto, false).cache_directives().is_empty());
        let read = Finished::new(Vec::new(), CacheHeaders::Auto, true).cache_directives();
        assert!(read.vary_cookie() && !read.keep_out_of_shared_caches());
        let write = Finished::new(cookie(), CacheHeaders::Auto, true).cache_directives();
        assert!(write.vary_cookie() && write.keep_out_of_shared_caches());
        assert!(Finished::new(cookie(), CacheHeaders::Off, true).cache_directives().is_empty());
    }
}
