//! `beaker sessions …`: count, list, show, end, end-principal, purge-expired.

use std::io::Write as _;
use std::sync::Arc;

use beaker_rs::store::{Listed, SessionStore, StoreKey};
use beaker_rs::{DataSerializer, SessionConfig, SessionHandle, StoreError};
use serde_json::{json, Value};

use crate::cli::SessionsCommand;
use crate::error::CliError;
use crate::output::{self, io, Listing};
use crate::scan::Scan;
use crate::settings::Source;
use crate::Global;

pub(crate) async fn run(global: &Global, source: &Source, command: SessionsCommand) -> Result<(), CliError> {
    // A handle of the wrong shape is a usage error, found before any store is opened.
    let handle = match &command {
        SessionsCommand::Show { handle, .. } | SessionsCommand::End { handle, .. } => Some(parse_handle(handle)?),
        _ => None,
    };
    let (config, store) = source.session_store().await?;
    match command {
        SessionsCommand::Count { scan, page_size } => count(global, store, scan, page_size).await,
        SessionsCommand::List { principal: Some(p), limit, .. } => list_principal(global, &*store, &p, limit).await,
        SessionsCommand::List { principal: None, limit, page_size } => list_all(global, store, limit, page_size).await,
        SessionsCommand::Show { principal, .. } => {
            show(global, &*store, &handle.expect("parsed above"), principal.as_deref()).await
        }
        SessionsCommand::End { principal, .. } => {
            end(global, &config, &*store, &handle.expect("parsed above"), principal.as_deref()).await
        }
        SessionsCommand::EndPrincipal { principal } => end_principal(global, &config, &*store, &principal).await,
        SessionsCommand::PurgeExpired => purge(global, &*store).await,
    }
}

fn parse_handle(s: &str) -> Result<SessionHandle, CliError> {
    SessionHandle::parse(s.trim()).ok_or_else(|| {
        CliError::Usage(format!(
            "{s:?} is not a session handle (22 characters of A-Z, a-z, 0-9, - and _, the first a letter or digit, as `beaker sessions list` prints them)"
        ))
    })
}

async fn count(global: &Global, store: Arc<dyn SessionStore>, scan: bool, page_size: usize) -> Result<(), CliError> {
    let native = if scan { None } else { unsupported_as_none(store.count().await)? };
    let (n, how) = match native {
        Some(n) => (n, "store"),
        None => {
            let bar = output::progress(!global.no_progress, None, "counting sessions");
            let mut walk = Scan::new(store, page_size);
            let mut n = 0u64;
            while let Some(page) = walk.next_page().await? {
                n += page.items.len() as u64;
                bar.inc(page.items.len() as u64);
            }
            bar.finish_and_clear();
            (n, "scan")
        }
    };
    if global.json {
        output::print_json(&json!({ "sessions": n, "counted_by": how }))
    } else {
        writeln!(std::io::stdout(), "{n}").map_err(io)
    }
}

async fn list_all(
    global: &Global,
    store: Arc<dyn SessionStore>,
    limit: Option<u64>,
    page_size: usize,
) -> Result<(), CliError> {
    // The total, when the store can tell, gives the bar a length (asked only for a bar).
    let total = if output::progress_shown(!global.no_progress) {
        unsupported_as_none(store.count().await)?.map(|n| limit.map_or(n, |l| l.min(n)))
    } else {
        None
    };
    let bar = output::progress(!global.no_progress, total, "listing sessions");
    let page_size = limit.map_or(page_size, |l| page_size.min(usize::try_from(l.max(1)).unwrap_or(usize::MAX)));
    let mut walk = Scan::new(store, page_size);
    let mut listing = Listing::new(std::io::stdout().lock(), global.json);
    let mut shown = 0u64;
    'pages: while let Some(page) = walk.next_page().await? {
        for item in &page.items {
            if limit.is_some_and(|l| shown >= l) {
                break 'pages;
            }
            listing.row(item)?;
            shown += 1;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    listing.finish()?;
    Ok(())
}

async fn list_principal(
    global: &Global,
    store: &dyn SessionStore,
    principal: &str,
    limit: Option<u64>,
) -> Result<(), CliError> {
    let mut sessions = store.sessions_of(principal).await?;
    // Newest first, as an application's "your devices" page shows them.
    sessions.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.accessed.cmp(&a.accessed)));
    let mut listing = Listing::new(std::io::stdout().lock(), global.json);
    for item in sessions.iter().take(limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX))) {
        listing.row(item)?;
    }
    listing.finish()?;
    Ok(())
}

/// The key (never printed) of the live session named `handle`: found by the store, or
/// among the sessions of `principal` when one is given.
async fn find(store: &dyn SessionStore, handle: &SessionHandle, principal: Option<&str>) -> Result<StoreKey, CliError> {
    let found = match principal {
        None => store.find(handle).await?,
        Some(p) => store.sessions_of(p).await?.into_iter().map(|l| l.key).find(|k| SessionHandle::of(k) == *handle),
    };
    found.ok_or_else(|| match principal {
        None => CliError::Input(format!("no live session has the handle {handle}")),
        Some(p) => CliError::Input(format!("no live session of {p} has the handle {handle}")),
    })
}

async fn show(
    global: &Global,
    store: &dyn SessionStore,
    handle: &SessionHandle,
    principal: Option<&str>,
) -> Result<(), CliError> {
    let key = find(store, handle, principal).await?;
    let record =
        store.load(&key).await?.ok_or_else(|| CliError::Input(format!("session {handle} ended while being read")))?;
    let listed = Listed::of(&key, &record);
    let mut values = serde_json::Map::new();
    for (name, bytes) in &record.entries {
        values.insert(name.clone(), decode(bytes));
    }
    if global.json {
        let mut doc = output::listed_json(&listed);
        doc["values"] = Value::Object(values);
        return output::print_json(&doc);
    }
    let mut out = std::io::stdout().lock();
    let owner = listed.owner.as_ref();
    let lines = [
        ("handle", handle.to_string()),
        ("principal", owner.map_or("-".into(), |o| o.principal.clone())),
        ("device", owner.and_then(|o| o.device.clone()).unwrap_or_else(|| "-".into())),
        ("created", output::rfc3339(listed.created)),
        ("last used", output::rfc3339(listed.accessed)),
        ("expires", listed.expires.map_or_else(|| "never".into(), output::rfc3339)),
        ("size", format!("{} bytes", listed.size)),
    ];
    for (label, value) in lines {
        writeln!(out, "{label:<10} {value}").map_err(io)?;
    }
    writeln!(out, "values").map_err(io)?;
    if values.is_empty() {
        writeln!(out, "  (none)").map_err(io)?;
    }
    for (name, value) in values {
        writeln!(out, "  {name} = {value}").map_err(io)?;
    }
    Ok(())
}

/// A stored value as JSON, whichever serializer's tag it carries. bincode is not
/// self-describing, so its values are shown by size; an undecodable value is shown as
/// such rather than failing the whole command.
fn decode(bytes: &[u8]) -> Value {
    if bytes.first() == Some(&b'b') {
        return json!({ "bincode_bytes": bytes.len() - 1 });
    }
    DataSerializer::decode::<Value>(bytes).unwrap_or_else(|e| json!({ "undecodable": e.to_string() }))
}

async fn end(
    global: &Global,
    config: &SessionConfig,
    store: &dyn SessionStore,
    handle: &SessionHandle,
    principal: Option<&str>,
) -> Result<(), CliError> {
    let key = find(store, handle, principal).await?;
    store.end(&key, config.retired_window).await?;
    if global.json {
        output::print_json(&json!({ "ended": [handle.as_str()] }))
    } else {
        writeln!(std::io::stdout(), "ended {handle}").map_err(io)
    }
}

async fn end_principal(
    global: &Global,
    config: &SessionConfig,
    store: &dyn SessionStore,
    principal: &str,
) -> Result<(), CliError> {
    let sessions = store.sessions_of(principal).await?;
    let mut ended = Vec::with_capacity(sessions.len());
    for listed in &sessions {
        store.end(&listed.key, config.retired_window).await?;
        ended.push(SessionHandle::of(&listed.key));
    }
    if global.json {
        let handles: Vec<&str> = ended.iter().map(SessionHandle::as_str).collect();
        output::print_json(&json!({ "principal": principal, "ended": handles }))
    } else {
        writeln!(std::io::stdout(), "ended {} sessions of {principal}", ended.len()).map_err(io)
    }
}

async fn purge(global: &Global, store: &dyn SessionStore) -> Result<(), CliError> {
    let removed = store.cleanup().await?;
    if global.json {
        output::print_json(&json!({ "removed": removed }))
    } else {
        writeln!(std::io::stdout(), "removed {removed} expired records").map_err(io)
    }
}

/// `Unsupported` as `None` (the caller has another way), any other error as itself.
fn unsupported_as_none<T>(r: Result<T, StoreError>) -> Result<Option<T>, CliError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::Unsupported { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
