//! The index page (`/`), which explains; `/app` is in `app_page`.

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const HEAD: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>beaker-rs demo</title>\
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}form{margin:.5em 0}</style></head><body>\n";
const TAIL: &str = "</body></html>\n";

/// The index page (`GET /`): the same bytes for every request, built once.
pub fn index() -> &'static str {
    static PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
        "{HEAD}<h1>beaker-rs demo</h1>\n\
<p>Sessions and caching in the spirit of Python's Beaker. Try the <a href=\"/app\">interactive page</a>, or the plain routes:</p>\n\
<ul>\n\
<li><a href=\"/counter\">GET /counter</a> increments <code>n</code>; <a href=\"/read\">GET /read</a> reads it</li>\n\
<li>POST /login <code>user=NAME</code>, <a href=\"/whoami\">GET /whoami</a>, <a href=\"/protected\">GET /protected</a>, POST /logout</li>\n\
<li>PUT, GET, DELETE /kv/{{key}}; <a href=\"/keys\">GET /keys</a></li>\n\
<li>POST /flash <code>msg=TEXT</code>; <a href=\"/flash\">GET /flash</a></li>\n\
<li><a href=\"/cached?key=a\">GET /cached?key=a</a>, <a href=\"/cached/stats\">GET /cached/stats</a></li>\n\
<li><a href=\"/healthz\">GET /healthz</a>, <a href=\"/metrics\">GET /metrics</a></li>\n\
</ul>\n\
<form method=\"post\" action=\"/login\"><input name=\"user\" placeholder=\"name\"> <button>log in</button></form>\n\
{TAIL}"
        )
    });
    &PAGE
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(super::escape("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
    }
}
