//! The scenarios of [`ContractSuite`], one `pub async fn` each.

use beaker_core::SessionId;
use futures_util::future::join_all;
use reqwest::Method;

use super::http::{Body, Cx};
use super::ContractSuite;

const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// `s` with the character at `at` replaced by another URL-safe base64 character.
fn flip(s: &str, at: usize) -> String {
    s.char_indices()
        .map(|(i, c)| {
            if i == at {
                if c == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                c
            }
        })
        .collect()
}

/// A short random token, for keys no other run uses.
pub(super) fn unique() -> String {
    SessionId::generate().expose().chars().filter(char::is_ascii_alphanumeric).take(12).collect()
}

/// `creations`, `hits` and `misses` of a `/cached/stats` body.
fn stats(cx: Cx, body: &str) -> [u64; 3] {
    let mut out = [None; 3];
    for part in body.split_whitespace() {
        let (name, n) = part.split_once('=').unwrap_or((part, ""));
        let slot = ["creations", "hits", "misses"].iter().position(|k| *k == name);
        if let (Some(slot), Ok(n)) = (slot, n.parse()) {
            out[slot] = Some(n);
        }
    }
    match out {
        [Some(c), Some(h), Some(m)] => [c, h, m],
        _ => cx.fail(format!("/cached/stats: expected `creations=N hits=N misses=N`, got {body:?}")),
    }
}

impl ContractSuite {
    /// Requests that never touch the session, without a cookie: `GET /`, `/healthz`,
    /// `/read`, `/whoami`, `/protected`, `/kv/K`, `/keys`, `/flash` answer as the contract
    /// says and set no cookie.
    pub async fn untouched_requests(&self) {
        let cx = Cx("untouched_requests");
        self.get(cx, "/", None).await.expect_status(cx, 200).expect_content_type(cx, HTML).expect_no_cookie(cx);
        self.get(cx, "/healthz", None).await.expect(cx, 200, "ok").expect_content_type(cx, TEXT).expect_no_cookie(cx);
        self.get(cx, "/read", None).await.expect(cx, 200, "none").expect_no_cookie(cx);
        self.get(cx, "/whoami", None).await.expect(cx, 200, "anonymous").expect_no_cookie(cx);
        self.get(cx, "/protected", None).await.expect(cx, 401, "login required").expect_no_cookie(cx);
        self.get(cx, "/kv/nothing", None).await.expect(cx, 404, "not found").expect_no_cookie(cx);
        self.get(cx, "/keys", None).await.expect(cx, 200, "").expect_no_cookie(cx);
        self.get(cx, "/flash", None).await.expect(cx, 200, "").expect_no_cookie(cx);
    }

    /// The first write (`GET /counter`) sets exactly one cookie, named after the
    /// configuration, with `Path=/`, `HttpOnly`, `SameSite=Lax` and neither `Max-Age` nor
    /// `Expires`.
    pub async fn first_write(&self) {
        let cx = Cx("first_write");
        let answer = self.get(cx, "/counter", None).await;
        answer.expect(cx, 200, "1").expect_content_type(cx, TEXT);
        cx.ensure(answer.set_cookies.len() == 1, || format!("expected one Set-Cookie; {answer}"));
        let cookie = answer.cookie(cx, &self.cookie_name);
        cx.ensure(!cookie.value.is_empty(), || format!("empty session cookie: {}", cookie.raw));
        cookie.expect_attributes(cx, self.secure);
        cx.ensure(cookie.attr("max-age").is_none() && cookie.attr("expires").is_none(), || {
            format!("a browser-session cookie has neither Max-Age nor Expires: {}", cookie.raw)
        });
    }

    /// The cookie brings the data back (`/read` → the counter) without a new cookie; with
    /// a server-side store, later writes set no cookie either.
    pub async fn returning_cookie(&self) {
        let cx = Cx("returning_cookie");
        let mut a = self.agent(cx);
        a.get("/counter").await.expect(cx, 200, "1");
        let second = a.get("/counter").await;
        second.expect(cx, 200, "2");
        if !self.cookie_only {
            second.expect_no_cookie(cx);
        }
        a.get("/read").await.expect(cx, 200, "2").expect_no_cookie(cx);
        a.get("/read").await.expect(cx, 200, "2").expect_no_cookie(cx);
    }

    /// Requests that only read an existing session set no cookie.
    pub async fn read_only_requests(&self) {
        let cx = Cx("read_only_requests");
        let mut a = self.agent(cx);
        a.get("/counter").await.expect(cx, 200, "1");
        a.get("/read").await.expect(cx, 200, "1").expect_no_cookie(cx);
        a.get("/whoami").await.expect(cx, 200, "anonymous").expect_no_cookie(cx);
        a.get("/protected").await.expect(cx, 401, "login required").expect_no_cookie(cx);
        a.get("/kv/missing").await.expect(cx, 404, "not found").expect_no_cookie(cx);
        a.get("/keys").await.expect(cx, 200, "n").expect_no_cookie(cx);
        a.get("/").await.expect_status(cx, 200).expect_no_cookie(cx);
        a.get("/healthz").await.expect(cx, 200, "ok").expect_no_cookie(cx);
        a.get("/cached/stats").await.expect_status(cx, 200).expect_no_cookie(cx);
    }

    /// Malformed session cookies read as no session (200, `none`, no cookie), and a write
    /// under one gets a fresh cookie.
    pub async fn malformed_cookies(&self) {
        let cx = Cx("malformed_cookies");
        let name = &self.cookie_name;
        let long = "x".repeat(4000);
        let values: [&[u8]; 9] = [
            b"",
            b"garbage",
            b"a.b",
            b"...",
            b"%%%",
            b"\"quoted\"",
            b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            b"\xff\xfe\x80",
            long.as_bytes(),
        ];
        for value in values {
            let mut header = format!("{name}=").into_bytes();
            header.extend_from_slice(value);
            let shown = String::from_utf8_lossy(&header[..header.len().min(60)]).into_owned();
            let read = self.http.send(cx, Method::GET, "/read", &[&header], None).await;
            cx.ensure(read.status == 200 && read.body == "none" && read.set_cookies.is_empty(), || {
                format!("cookie {shown:?}: expected 200 \"none\" without Set-Cookie; {read}")
            });
            let write = self.http.send(cx, Method::GET, "/counter", &[&header], None).await;
            write.expect(cx, 200, "1");
            let fresh = write.cookie(cx, name);
            cx.ensure(fresh.value.as_bytes() != value && !fresh.value.is_empty(), || {
                format!("cookie {shown:?}: a write must get a fresh cookie; {write}")
            });
        }
        // Not even a name=value pair.
        for header in ["garbage-without-equals", "=", ";;;"] {
            self.get(cx, "/read", Some(header)).await.expect(cx, 200, "none").expect_no_cookie(cx);
        }
    }

    /// A cookie whose signature (or id, or sealed payload) has one character changed reads
    /// as no session; a write under it gets a new id; the genuine cookie still works.
    pub async fn tampered_cookie(&self) {
        let cx = Cx("tampered_cookie");
        let mut a = self.agent(cx);
        a.get("/counter").await.expect(cx, 200, "1");
        let value = a.value();
        let mut tampered = Vec::new();
        match value.rsplit_once('.') {
            Some((id, sig)) if !self.cookie_only && sig.len() > 4 && id.len() > 4 => {
                tampered.push(flip(&value, id.len() + 1 + sig.len() / 2));
                tampered.push(flip(&value, id.len() / 2));
            }
            _ => tampered.push(flip(&value, value.len() / 2)),
        }
        for t in tampered {
            let header = format!("{}={t}", self.cookie_name);
            self.get(cx, "/read", Some(&header)).await.expect(cx, 200, "none").expect_no_cookie(cx);
            let write = self.get(cx, "/counter", Some(&header)).await;
            write.expect(cx, 200, "1");
            let fresh = write.cookie(cx, &self.cookie_name);
            cx.ensure(
                self.id_part(&fresh.value) != self.id_part(&value) && self.id_part(&fresh.value) != self.id_part(&t),
                || format!("a write under a tampered cookie must get a new id; {write}"),
            );
        }
        a.get("/read").await.expect(cx, 200, "1").expect_no_cookie(cx);
    }

    /// A well-formed, correctly signed cookie whose record is gone (after a logout) reads
    /// as no session, and a write under it never adopts its id: while the store remembers
    /// the id as retired (`retired_window`) the write is dropped and gets no cookie, and
    /// otherwise it gets a new id. Skipped for cookie-only sessions.
    pub async fn unknown_cookie(&self) {
        if self.cookie_only {
            return;
        }
        let cx = Cx("unknown_cookie");
        let mut a = self.agent(cx);
        a.get("/counter").await.expect(cx, 200, "1");
        let stale = a.cookie();
        let old_value = a.value();
        a.post_form("/logout", "").await.expect(cx, 200, "bye");
        self.get(cx, "/read", Some(&stale)).await.expect(cx, 200, "none").expect_no_cookie(cx);
        let write = self.get(cx, "/counter", Some(&stale)).await;
        write.expect(cx, 200, "1");
        if write.has_cookie(&self.cookie_name) {
            let fresh = write.cookie(cx, &self.cookie_name);
            cx.ensure(self.id_part(&fresh.value) != self.id_part(&old_value), || {
                format!("the id of a dead session was adopted; {write}")
            });
            let fresh_pair = fresh.pair();
            self.get(cx, "/read", Some(&fresh_pair)).await.expect(cx, 200, "1").expect_no_cookie(cx);
        }
        self.get(cx, "/read", Some(&stale)).await.expect(cx, 200, "none").expect_no_cookie(cx);
    }

    /// `POST /login` (form or query) answers the name, regenerates the id (one new cookie,
    /// data kept), and the old cookie is not logged in.
    pub async fn login_regenerates_id(&self) {
        let cx = Cx("login_regenerates_id");
        let mut a = self.agent(cx);
        a.get("/counter").await.expect(cx, 200, "1");
        let before = a.cookie();
        let before_value = a.value();
        let login = a.post_form("/login", "user=ada").await;
        login.expect(cx, 200, "ada");
        let cookie = login.cookie(cx, &self.cookie_name);
        cookie.expect_attributes(cx, self.secure);
        cx.ensure(self.id_part(&cookie.value) != self.id_part(&before_value), || {
            format!("login must regenerate the session id; {login}")
        });
        a.get("/whoami").await.expect(cx, 200, "ada").expect_no_cookie(cx);
        a.get("/read").await.expect(cx, 200, "1").expect_no_cookie(cx);
        self.get(cx, "/whoami", Some(&before)).await.expect(cx, 200, "anonymous").expect_no_cookie(cx);
        if !self.cookie_only {
            // The record under the old id is gone, not just the user in it.
            self.get(cx, "/read", Some(&before)).await.expect(cx, 200, "none").expect_no_cookie(cx);
        }
        let mut b = self.agent(cx);
        let by_query = b.request(Method::POST, "/login?user=grace", None).await;
        by_query.expect(cx, 200, "grace");
        by_query.cookie(cx, &self.cookie_name);
        b.get("/whoami").await.expect(cx, 200, "grace");
    }

    /// `POST /logout` answers `bye` with a removal cookie repeating the attributes; with a
    /// server-side store the old cookie is dead afterwards.
    pub async fn logout(&self) {
        let cx = Cx("logout");
        let mut a = self.agent(cx);
        a.post_form("/login", "user=ada").await.expect(cx, 200, "ada");
        let old = a.cookie();
        let bye = a.post_form("/logout", "").await;
        bye.expect(cx, 200, "bye");
        let removal = bye.cookie(cx, &self.cookie_name);
        cx.ensure(removal.is_removal(), || format!("expected a removal cookie (Max-Age=0 or a past Expires); {bye}"));
        removal.expect_attributes(cx, self.secure);
        cx.ensure(a.cookie.is_none(), || "the removal cookie must clear the session cookie".into());
        a.get("/whoami").await.expect(cx, 200, "anonymous").expect_no_cookie(cx);
        if !self.cookie_only {
            self.get(cx, "/whoami", Some(&old)).await.expect(cx, 200, "anonymous").expect_no_cookie(cx);
            self.get(cx, "/protected", Some(&old)).await.expect(cx, 401, "login required").expect_no_cookie(cx);
        }
    }

    /// `/protected`: 401 `login required`, then 200 `hello NAME` once logged in.
    pub async fn protected(&self) {
        let cx = Cx("protected");
        let mut a = self.agent(cx);
        a.get("/protected").await.expect(cx, 401, "login required").expect_content_type(cx, TEXT);
        a.post_form("/login", "user=ada").await.expect(cx, 200, "ada");
        a.get("/protected").await.expect(cx, 200, "hello ada").expect_no_cookie(cx);
    }

    /// `PUT`, `GET` and `DELETE /kv/{key}`, UTF-8 values, and 404 `not found`.
    pub async fn kv(&self) {
        let cx = Cx("kv");
        let mut a = self.agent(cx);
        a.put("/kv/color", "blue").await.expect(cx, 200, "ok");
        a.get("/kv/color").await.expect(cx, 200, "blue").expect_no_cookie(cx);
        a.put("/kv/color", "green").await.expect(cx, 200, "ok");
        a.get("/kv/color").await.expect(cx, 200, "green");
        a.put("/kv/greeting", "héllo wörld ✓").await.expect(cx, 200, "ok");
        a.get("/kv/greeting").await.expect(cx, 200, "héllo wörld ✓");
        a.delete("/kv/color").await.expect(cx, 200, "ok");
        a.get("/kv/color").await.expect(cx, 404, "not found");
        a.get("/kv/greeting").await.expect(cx, 200, "héllo wörld ✓");
        a.delete("/kv/never-set").await.expect(cx, 200, "ok");
    }

    /// `/keys` lists the user's keys sorted, one per line.
    pub async fn keys_sorted(&self) {
        let cx = Cx("keys_sorted");
        let mut a = self.agent(cx);
        for key in ["b", "a2", "c", "a10", "a"] {
            a.put(&format!("/kv/{key}"), key).await.expect(cx, 200, "ok");
        }
        a.get("/keys").await.expect(cx, 200, "a\na10\na2\nb\nc").expect_no_cookie(cx);
    }

    /// Flash messages come back once, in order.
    pub async fn flash(&self) {
        let cx = Cx("flash");
        let mut a = self.agent(cx);
        a.post_form("/flash", "msg=hello").await.expect(cx, 200, "ok");
        a.post_form("/flash", "msg=world%21").await.expect(cx, 200, "ok");
        a.get("/flash").await.expect(cx, 200, "hello\nworld!");
        a.get("/flash").await.expect(cx, 200, "");
    }

    /// `/cached?key=K` twice answers the same `K:G` and `/cached/stats` counts the
    /// creation and the hit; no cookie anywhere.
    pub async fn cached(&self) {
        let cx = Cx("cached");
        let before = self.get(cx, "/cached/stats", None).await;
        before.expect_status(cx, 200).expect_no_cookie(cx);
        let before = stats(cx, &before.body);
        let key = format!("contract{}", unique());
        let path = format!("/cached?key={key}");
        let first = self.get(cx, &path, None).await;
        first.expect_status(cx, 200).expect_no_cookie(cx);
        let generation = first.body.strip_prefix(&format!("{key}:")).and_then(|g| g.parse::<u64>().ok());
        cx.ensure(generation.is_some(), || format!("expected `{key}:G`; {first}"));
        self.get(cx, &path, None).await.expect(cx, 200, &first.body).expect_no_cookie(cx);
        let after = self.get(cx, "/cached/stats", None).await;
        let after = stats(cx, &after.body);
        cx.ensure(after[0] > before[0] && after[1] > before[1], || {
            format!("expected more creations and hits after two /cached calls: before {before:?}, after {after:?}")
        });
        self.get(cx, "/cached", None).await.expect_status(cx, 400).expect_no_cookie(cx);
    }

    /// 100 concurrent requests on one session, each writing its own key, all survive.
    /// Skipped for cookie-only sessions (each response carries a whole session).
    pub async fn concurrent_writes(&self) {
        if self.cookie_only {
            return;
        }
        let cx = Cx("concurrent_writes");
        let mut a = self.agent(cx);
        a.put("/kv/seed", "0").await.expect(cx, 200, "ok");
        let cookie = a.cookie();
        let writes = (0..100).map(|i| {
            let cookie = cookie.clone();
            async move {
                let body = Some(Body::Text(format!("v{i}").into_bytes()));
                self.send(cx, Method::PUT, &format!("/kv/k{i}"), Some(&cookie), body).await
            }
        });
        for answer in join_all(writes).await {
            answer.expect(cx, 200, "ok").expect_no_cookie(cx);
        }
        let mut expected: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
        expected.push("seed".into());
        expected.sort();
        a.get("/keys").await.expect(cx, 200, &expected.join("\n")).expect_no_cookie(cx);
        a.get("/kv/k42").await.expect(cx, 200, "v42");
    }

    /// Unrelated and illegal cookies beside ours, a second cookie of our name holding
    /// garbage, and several `Cookie` header lines change nothing.
    pub async fn foreign_cookies(&self) {
        let cx = Cx("foreign_cookies");
        let mut a = self.agent(cx);
        a.put("/kv/color", "blue").await.expect(cx, 200, "ok");
        let ours = a.cookie();
        let mut headers = vec![
            format!("theme=dark; {ours}"),
            format!("{ours}; theme=dark"),
            format!("a=b; ===; {ours}"),
            format!("; ;;{ours};=;"),
            format!("{}x=1; {ours}; x{}=2", self.cookie_name, self.cookie_name),
            format!("{ours}; {}=garbage", self.cookie_name),
        ];
        if !self.cookie_only {
            // Browsers send two cookies of one name (other paths or domains), the longer
            // path first: the one that verifies counts, wherever it stands. (Cookie-only
            // sessions open the first one only, lazily: not checked there.)
            headers.push(format!("{}=garbage; {ours}", self.cookie_name));
        }
        for header in &headers {
            let read = self.get(cx, "/kv/color", Some(header)).await;
            cx.ensure(read.status == 200 && read.body == "blue" && read.set_cookies.is_empty(), || {
                format!("Cookie {header:?}: expected 200 \"blue\" without Set-Cookie; {read}")
            });
        }
        // Several Cookie header lines (HTTP/2 splits them; so do some proxies).
        let lines: [&[u8]; 3] = [b"theme=dark", ours.as_bytes(), b"a=b; ==="];
        let read = self.http.send(cx, Method::GET, "/kv/color", &lines, None).await;
        read.expect(cx, 200, "blue").expect_no_cookie(cx);
        let body = Some(Body::Text(b"round".to_vec()));
        let write = self.send(cx, Method::PUT, "/kv/shape", Some(&headers[2]), body).await;
        write.expect(cx, 200, "ok");
        if self.cookie_only {
            a.cookie = Some(write.cookie(cx, &self.cookie_name).pair());
        } else {
            write.expect_no_cookie(cx);
        }
        a.get("/kv/shape").await.expect(cx, 200, "round");
        a.get("/keys").await.expect(cx, 200, "color\nshape");
    }

    /// A value too big for a cookie-only session: 413 or 500 with a one-line body, no
    /// cookie, and the previous cookie still holds the previous data. Skipped for
    /// server-side stores.
    pub async fn oversized_value(&self) {
        if !self.cookie_only {
            return;
        }
        let cx = Cx("oversized_value");
        let mut a = self.agent(cx);
        a.put("/kv/small", "x").await.expect(cx, 200, "ok");
        let before = a.cookie();
        let big = a.put("/kv/big", &"x".repeat(5000)).await;
        let body = big.body.trim_end_matches('\n');
        cx.ensure((big.status == 413 || big.status == 500) && !body.is_empty() && !body.contains('\n'), || {
            format!("expected 413 or 500 with a one-line body; {big}")
        });
        big.expect_no_cookie(cx);
        cx.ensure(a.cookie.as_deref() == Some(before.as_str()), || "the previous cookie must stay".into());
        a.get("/kv/small").await.expect(cx, 200, "x");
        a.get("/kv/big").await.expect(cx, 404, "not found");
    }

    /// `GET /app`: the page for people, naming who is logged in.
    pub async fn app_page(&self) {
        let cx = Cx("app_page");
        let mut a = self.agent(cx);
        a.get("/app").await.expect_status(cx, 200).expect_content_type(cx, HTML);
        a.post_form("/login", "user=ada").await.expect(cx, 200, "ada");
        let page = a.get("/app").await;
        page.expect_status(cx, 200).expect_content_type(cx, HTML).expect_no_cookie(cx);
        cx.ensure(page.body.contains("ada"), || format!("the page must name the user; {page}"));
    }

    /// An unknown route is 404 and sets no cookie, with or without a session.
    pub async fn unknown_route(&self) {
        let cx = Cx("unknown_route");
        self.get(cx, "/no/such/route", None).await.expect_status(cx, 404).expect_no_cookie(cx);
        let mut a = self.agent(cx);
        a.get("/counter").await.expect(cx, 200, "1");
        a.get("/no-such-route").await.expect_status(cx, 404).expect_no_cookie(cx);
    }
}
