//! The caching-header scenarios of [`ContractSuite`]: what keeps one visitor's session
//! out of another's response in a shared cache (`Vary: Cookie`, and `Cache-Control` on
//! responses that set or remove the session cookie), and its absence on public pages.

use super::http::{Answer, Cx};
use super::ContractSuite;

/// `Cache-Control` on a response that sets or removes the session cookie when the
/// handler set none.
pub(super) const PRIVATE: &str = "private, no-cache=\"Set-Cookie, Set-Cookie2\"";
/// `GET /cached-page`'s own `Vary` with `Cookie` merged in.
const PAGE_VARY: &str = "Accept-Encoding, Cookie";
/// `GET /cached-page`'s own `Cache-Control`.
const PAGE_CACHE_CONTROL: &str = "public, max-age=60";

impl Answer {
    /// Asserts the `Vary` and `Cache-Control` headers, each line joined by `, ` (`None`:
    /// no such header at all).
    #[track_caller]
    pub(super) fn expect_caching(&self, cx: Cx, vary: Option<&str>, cache_control: Option<&str>) -> &Answer {
        let joined = |lines: &[String]| (!lines.is_empty()).then(|| lines.join(", "));
        cx.ensure(joined(&self.vary).as_deref() == vary, || format!("expected Vary {vary:?}; {self}"));
        cx.ensure(joined(&self.cache_control).as_deref() == cache_control, || {
            format!("expected Cache-Control {cache_control:?}; {self}")
        });
        self
    }
}

impl ContractSuite {
    /// Caching headers (`cache_headers = auto`, the default): a request that used its
    /// session gets `Vary: Cookie`; one that sets or removes the session cookie (first
    /// write, logout) also gets `Cache-Control: private, no-cache="Set-Cookie,
    /// Set-Cookie2"`; a read with the cookie varies but stays free of `Cache-Control`;
    /// routes that never touch the session get neither, with or without a cookie.
    pub async fn cache_headers(&self) {
        let cx = Cx("cache_headers");
        self.get(cx, "/healthz", None).await.expect(cx, 200, "ok").expect_caching(cx, None, None);
        self.get(cx, "/", None).await.expect_status(cx, 200).expect_caching(cx, None, None);
        // A read without a cookie used the session: the answer depends on the cookie.
        self.get(cx, "/read", None).await.expect(cx, 200, "none").expect_no_cookie(cx).expect_caching(
            cx,
            Some("Cookie"),
            None,
        );

        let mut a = self.agent(cx);
        let first = a.get("/counter").await;
        first.expect(cx, 200, "1").expect_caching(cx, Some("Cookie"), Some(PRIVATE));
        first.cookie(cx, &self.cookie_name);
        a.get("/read").await.expect(cx, 200, "1").expect_no_cookie(cx).expect_caching(cx, Some("Cookie"), None);
        let second = a.get("/counter").await;
        second.expect(cx, 200, "2");
        // Cookie-only sessions send their cookie on every write.
        let want = if self.cookie_only { Some(PRIVATE) } else { None };
        second.expect_caching(cx, Some("Cookie"), want);
        for path in ["/", "/healthz", "/cached/stats"] {
            a.get(path).await.expect_status(cx, 200).expect_no_cookie(cx).expect_caching(cx, None, None);
        }

        let bye = a.post_form("/logout", "").await;
        bye.expect(cx, 200, "bye").expect_caching(cx, Some("Cookie"), Some(PRIVATE));
        cx.ensure(bye.cookie(cx, &self.cookie_name).is_removal(), || format!("expected a removal cookie; {bye}"));
    }

    /// `GET /cached-page` sets its own `Vary: Accept-Encoding` and `Cache-Control: public,
    /// max-age=60`: the session's headers are merged into them, in one line each, never
    /// repeated (`Accept-Encoding, Cookie`; the handler's directives plus
    /// `no-cache="Set-Cookie, Set-Cookie2"` when the cookie is set), and a later visit
    /// that sets no cookie keeps the handler's `Cache-Control` as it was.
    pub async fn cache_headers_merge(&self) {
        let cx = Cx("cache_headers_merge");
        let with_cookie = format!("{PAGE_CACHE_CONTROL}, no-cache=\"Set-Cookie, Set-Cookie2\"");
        let mut a = self.agent(cx);
        let first = a.get("/cached-page").await;
        first.expect(cx, 200, "views 1").expect_caching(cx, Some(PAGE_VARY), Some(&with_cookie));
        first.cookie(cx, &self.cookie_name);
        let second = a.get("/cached-page").await;
        second.expect(cx, 200, "views 2");
        let want = if self.cookie_only { with_cookie.as_str() } else { PAGE_CACHE_CONTROL };
        second.expect_caching(cx, Some(PAGE_VARY), Some(want));
    }

    /// Against a server started with `BEAKER_SESSION_CACHE_HEADERS=off`: no caching
    /// header from the session, and the handler's own left exactly as set.
    pub async fn cache_headers_off(&self) {
        let cx = Cx("cache_headers_off");
        let mut a = self.agent(cx);
        a.get("/counter").await.expect(cx, 200, "1").expect_caching(cx, None, None);
        a.get("/read").await.expect(cx, 200, "1").expect_caching(cx, None, None);
        a.get("/cached-page").await.expect(cx, 200, "views 1").expect_caching(
            cx,
            Some("Accept-Encoding"),
            Some(PAGE_CACHE_CONTROL),
        );
        a.post_form("/logout", "").await.expect(cx, 200, "bye").expect_caching(cx, None, None);
    }
}
