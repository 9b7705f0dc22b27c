//! The HTML of `GET /app`: the live session, its flash messages, and the cache panel.
//! Inline CSS and a tiny optional script; everything works with JavaScript off.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beaker_core::cache::CacheStats;
use beaker_core::SessionInfo;

use crate::page::escape;

/// One of the user's sessions on the page.
#[derive(Debug)]
pub(crate) struct Listed {
    pub(crate) info: SessionInfo,
    /// The session of this page's request.
    pub(crate) current: bool,
}

/// What the page shows, gathered by the route.
#[derive(Debug)]
pub(crate) struct AppView {
    /// The logged-in user's sessions (`None`: nobody is logged in; `Err`: why they cannot
    /// be listed).
    pub(crate) others: Option<Result<Vec<Listed>, String>>,
    pub(crate) user: Option<String>,
    pub(crate) n: Option<i64>,
    /// Every key of the session with its value as text (strings as they are, others as JSON).
    pub(crate) entries: Vec<(String, String)>,
    pub(crate) created: Option<SystemTime>,
    pub(crate) accessed: Option<SystemTime>,
    pub(crate) expires: Option<SystemTime>,
    pub(crate) now: SystemTime,
    pub(crate) flashes: Vec<String>,
    pub(crate) cache: Option<CacheStats>,
    pub(crate) slow: Duration,
}

const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--fg:#1d2430;--muted:#5c6675;--line:#dde2e8;--accent:#2f6fde;--ok:#1f7a4d;--okbg:#e5f5ec}\
@media(prefers-color-scheme:dark){:root{--bg:#14171c;--card:#1d2129;--fg:#e6e9ee;--muted:#9aa4b2;--line:#2e3440;--accent:#6ea0ff;--ok:#7fd6a4;--okbg:#1b3326}}\
*{box-sizing:border-box}\
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\
header{padding:1.2rem 1rem .4rem;max-width:64rem;margin:auto}\
header h1{margin:0;font-size:1.5rem}header p{margin:.2rem 0 0;color:var(--muted)}\
main{max-width:64rem;margin:auto;padding:0 1rem 2rem;display:grid;gap:1rem;grid-template-columns:repeat(auto-fit,minmax(19rem,1fr))}\
section{background:var(--card);border:1px solid var(--line);border-radius:.75rem;padding:1rem 1.1rem}\
section h2{margin:0 0 .6rem;font-size:1.05rem}\
.wide{grid-column:1/-1}\
.flash{list-style:none;margin:0;padding:0}.flash li{background:var(--okbg);color:var(--ok);border-radius:.5rem;padding:.55rem .8rem;margin:.3rem 0}\
.big{font-size:2.4rem;font-weight:700;line-height:1.1}\
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem .8rem;margin:0}dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}\
table{width:100%;border-collapse:collapse}td,th{text-align:left;padding:.3rem .4rem;border-bottom:1px solid var(--line);vertical-align:top}\
td code{overflow-wrap:anywhere}th{color:var(--muted);font-weight:500}\
form{display:flex;flex-wrap:wrap;gap:.4rem;margin:.5rem 0 0}form.inline{display:inline;margin:0}\
input{flex:1 1 8rem;min-width:0;padding:.45rem .6rem;border:1px solid var(--line);border-radius:.45rem;background:var(--bg);color:var(--fg);font:inherit}\
button{padding:.45rem .9rem;border:0;border-radius:.45rem;background:var(--accent);color:#fff;font:inherit;cursor:pointer}\
button.quiet{background:transparent;color:var(--accent);border:1px solid var(--line)}\
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(6.5rem,1fr));gap:.5rem;margin:0}\
.stats div{border:1px solid var(--line);border-radius:.5rem;padding:.4rem .6rem}.stats b{display:block;font-size:1.4rem}\
.muted{color:var(--muted)}footer{max-width:64rem;margin:auto;padding:0 1rem 2rem;color:var(--muted)}a{color:var(--accent)}";

/// Counts down to the expiry and runs the cache computation from five "tabs" at once
/// (each URL made unique, or the browser would queue identical requests behind one
/// another); the page is whole without it.
const SCRIPT: &str = "\
(function(){\
function span(s){var h=Math.floor(s/3600),m=Math.floor(s%3600/60),x=s%60;return (h?h+' h ':'')+(h||m?m+' min ':'')+x+' s';}\
var e=document.getElementById('expires-in');\
if(e&&e.dataset.epoch){var t=+e.dataset.epoch;var tick=function(){var s=Math.round(t-Date.now()/1000);e.textContent=s>0?'in '+span(s):'expired: reload to start afresh';};tick();setInterval(tick,1000);}\
var p=document.getElementById('parallel');\
if(p){p.hidden=false;p.addEventListener('click',function(){\
var k=document.getElementById('cache-key').value||'a',out=document.getElementById('parallel-out');out.textContent='computing in five parallel requests…';\
var all=[];for(var i=0;i<5;i++){all.push(fetch('/cached?key='+encodeURIComponent(k)+'&tab='+i,{cache:'no-store'}).then(function(r){return r.text();}));}\
Promise.all(all).then(function(rs){var g=new Set(rs).size;out.textContent=rs.join(' · ')+(g===1?': one creator served all five':': '+g+' generations');\
return fetch('/cached/stats').then(function(r){return r.text();});}).then(function(st){st.split(' ').forEach(function(kv){var a=kv.split('='),el=document.getElementById('stat-'+a[0]);if(el){el.textContent=a[1];}});})\
.catch(function(err){out.textContent='failed: '+err;});});}\
})();";

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(t: SystemTime) -> String {
    let d = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// A duration for people: `42 s`, `3 min 5 s`, `2 h 0 min 7 s`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s % 3600 / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, m) => format!("{m} min {s} s"),
        (h, m) => format!("{h} h {m} min {s} s"),
    }
}

fn ago(t: SystemTime, now: SystemTime) -> String {
    format!("{} ago", span(now.duration_since(t).unwrap_or_default()))
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn when(t: Option<SystemTime>, now: SystemTime, id: &str, none: &str) -> String {
    match t {
        Some(t) => format!("<span id=\"{id}\">{}</span> <span class=\"muted\">({})</span>", utc(t), ago(t, now)),
        None => format!("<span id=\"{id}\" class=\"muted\">{none}</span>"),
    }
}

/// The user's sessions ("your devices"), each with a button that ends it, and one that
/// signs out everywhere.
fn sessions_section(h: &mut String, v: &AppView) {
    let Some(others) = &v.others else { return };
    h.push_str("<section class=\"wide\" id=\"sessions\"><h2>Your sessions</h2>");
    match others {
        Err(why) => {
            let _ = write!(h, "<p class=\"muted\">{}</p>", escape(why));
        }
        Ok(listed) => {
            h.push_str("<table><tr><th>session</th><th>created</th><th>last used</th><th></th></tr>");
            for s in listed {
                let handle = escape(s.info.handle.as_str());
                let end = if s.current {
                    "<b>this one</b>".to_owned()
                } else {
                    format!(
                        "<form class=\"inline\" method=\"post\" action=\"/app/end\">\
<input type=\"hidden\" name=\"handle\" value=\"{handle}\"><button class=\"quiet\">sign out</button></form>"
                    )
                };
                let device = s.info.device.as_deref().map(|d| format!("<br>{}", escape(d))).unwrap_or_default();
                let _ = write!(
                    h,
                    "<tr><td><code>{handle}</code>{device}</td><td>{}</td><td>{}</td><td>{end}</td></tr>",
                    ago(s.info.created, v.now),
                    ago(s.info.last_used, v.now),
                );
            }
            h.push_str(
                "</table><form method=\"post\" action=\"/app/everywhere\">\
<button id=\"everywhere\">sign out everywhere</button></form>",
            );
        }
    }
    h.push_str("</section>\n");
}

pub(crate) fn render(v: &AppView) -> String {
    let mut h = String::with_capacity(8 * 1024);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>beaker-rs session</title>\
<style>{STYLE}</style></head><body>\n<header><h1>beaker-rs session</h1>\
<p>Everything below is read from your session on every load. Forms post, then bring you back here.</p></header>\n<main>\n"
    );
    if !v.flashes.is_empty() {
        h.push_str("<section class=\"wide\" aria-live=\"polite\"><ul id=\"flashes\" class=\"flash\">");
        for f in &v.flashes {
            let _ = write!(h, "<li>{}</li>", escape(f));
        }
        h.push_str("</ul></section>\n");
    }

    // Who and the counter.
    let who = match &v.user {
        Some(u) => format!("logged in as <b id=\"who\">{}</b>", escape(u)),
        None => "not logged in".to_owned(),
    };
    let n = v.n.map_or_else(|| "none".to_owned(), |n| n.to_string());
    let _ =
        write!(h, "<section><h2>You</h2><p id=\"status\">You are {who}. Counter: <span id=\"counter\">{n}</span>.</p>");
    if v.user.is_some() {
        h.push_str("<form method=\"post\" action=\"/app/logout\"><button id=\"logout\">log out</button></form>");
    } else {
        h.push_str(
            "<form method=\"post\" action=\"/app/login\"><input id=\"user\" name=\"user\" placeholder=\"your name\" \
autocomplete=\"username\" required> <button id=\"login\">log in</button></form>",
        );
    }
    let _ = write!(
        h,
        "</section>\n<section><h2>Counter</h2><div class=\"big\" id=\"counter-big\">{}</div>\
<form method=\"post\" action=\"/app/increment\"><button id=\"increment\">increment</button></form></section>\n",
        v.n.unwrap_or(0)
    );

    // Lifetime.
    h.push_str("<section><h2>Lifetime</h2><dl>");
    let _ = write!(h, "<dt>created</dt><dd>{}</dd>", when(v.created, v.now, "created", "not saved yet"));
    let _ = write!(h, "<dt>last used</dt><dd>{}</dd>", when(v.accessed, v.now, "accessed", "not before this page"));
    match v.expires {
        Some(t) => {
            let left = t.duration_since(v.now).unwrap_or_default();
            let _ = write!(
                h,
                "<dt>expires</dt><dd><span id=\"expires\">{}</span><br><b id=\"expires-in\" data-epoch=\"{}\">in {}</b></dd>",
                utc(t),
                epoch(t),
                span(left)
            );
        }
        None if v.created.is_some() => h.push_str(
            "<dt>expires</dt><dd id=\"expires\" class=\"muted\">when the store evicts it: no timeout is set \
(<code>BEAKER_SESSION_TIMEOUT</code>)</dd>",
        ),
        None => h.push_str("<dt>expires</dt><dd id=\"expires\" class=\"muted\">nothing saved yet</dd>"),
    }
    h.push_str("</dl></section>\n");

    sessions_section(&mut h, v);

    // Every key.
    h.push_str("<section class=\"wide\"><h2>Session data</h2>");
    if v.entries.is_empty() {
        h.push_str("<p id=\"entries\" class=\"muted\">The session holds no keys.</p>");
    } else {
        h.push_str("<table id=\"entries\"><tr><th>key</th><th>value</th><th></th></tr>");
        for (k, val) in &v.entries {
            let _ = write!(
                h,
                "<tr><td><code>{k}</code></td><td><code>{val}</code></td><td>\
<form class=\"inline\" method=\"post\" action=\"/app/remove\"><input type=\"hidden\" name=\"key\" value=\"{k}\">\
<button class=\"quiet\" title=\"remove {k}\">remove</button></form></td></tr>",
                k = escape(k),
                val = escape(val)
            );
        }
        h.push_str("</table>");
    }
    h.push_str(
        "<form method=\"post\" action=\"/app/set\"><input id=\"key\" name=\"key\" placeholder=\"key\" required>\
<input id=\"value\" name=\"value\" placeholder=\"value\"> <button id=\"set\">set</button></form>\
<form method=\"post\" action=\"/app/flash\"><input id=\"msg\" name=\"msg\" placeholder=\"a message for your next page\" required> \
<button id=\"flash\">flash</button></form></section>\n",
    );

    // The cache.
    h.push_str("<section class=\"wide\" id=\"cache\"><h2>Cache region <code>demo</code></h2>");
    match v.cache {
        Some(s) => {
            let _ = write!(
                h,
                "<div class=\"stats\" id=\"cache-stats\">\
<div>hits<b id=\"stat-hits\">{}</b></div><div>misses<b id=\"stat-misses\">{}</b></div>\
<div>creations<b id=\"stat-creations\">{}</b></div><div>stale serves<b id=\"stat-stale\">{}</b></div>\
<div>lock waits<b id=\"stat-waits\">{}</b></div></div>",
                s.hits, s.misses, s.creations, s.stale_serves, s.lock_waits
            );
        }
        None => h.push_str("<p class=\"muted\">The region is not configured.</p>"),
    }
    let _ = write!(
        h,
        "<p class=\"muted\">The computation takes {} ms. Press <i>compute</i> in several tabs within that time: \
one caller computes, the others wait and get its value (the same generation), and creations grow by one.</p>\
<form method=\"post\" action=\"/app/cached\"><input id=\"cache-key\" name=\"key\" value=\"a\" required> \
<button id=\"compute\">compute</button> <button type=\"button\" class=\"quiet\" id=\"parallel\" hidden>five tabs at once</button></form>\
<p id=\"parallel-out\" class=\"muted\" aria-live=\"polite\"></p></section>\n</main>\n",
        v.slow.as_millis()
    );
    let _ = write!(
        h,
        "<footer><a href=\"/\">about</a> · <a href=\"/app\">reload</a> · <a href=\"/metrics\">metrics</a></footer>\n\
<script>{SCRIPT}</script>\n</body></html>\n"
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> AppView {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        AppView {
            others: None,
            user: Some("<b>&".into()),
            n: Some(3),
            entries: vec![("k\"".into(), "<script>x</script>".into())],
            created: Some(now - Duration::from_secs(125)),
            accessed: Some(now - Duration::from_secs(5)),
            expires: Some(now + Duration::from_secs(3600)),
            now,
            flashes: vec!["hi <there>".into()],
            cache: Some(CacheStats::default()),
            slow: Duration::from_millis(200),
        }
    }

    #[test]
    fn escapes_everything_the_user_wrote() {
        let page = render(&view());
        assert!(page.contains("&lt;b&gt;&amp;") && page.contains("k&quot;") && page.contains("&lt;script&gt;x"));
        assert!(page.contains("hi &lt;there&gt;"));
        assert!(!page.contains("<script>x"), "user data never becomes markup");
    }

    #[test]
    fn times_read_as_dates_and_spans() {
        let page = render(&view());
        assert!(page.contains("2023-11-14 22:11:15 UTC"), "{page}");
        assert!(page.contains("(2 min 5 s ago)") && page.contains("in 1 h 0 min 0 s"), "{page}");
        assert!(page.contains("data-epoch=\"1700003600\""));
    }
}
