//! What the commands print: aligned tables for people, JSON for scripts, progress bars on
//! a terminal, all written as they come (a listing of any length is never held whole).

use std::io::{IsTerminal as _, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beaker_rs::store::Listed;
use beaker_rs::SessionHandle;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use crate::error::CliError;

/// Seconds since the Unix epoch (0 for times before it).
pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `2026-12-06T22:55:01Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = i64::try_from(unix(t)).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// `30m`, `8h`, `none`.
pub(crate) fn duration(d: Option<Duration>) -> String {
    let Some(d) = d else { return "none".into() };
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A listing as JSON: the handle, never the key.
pub(crate) fn listed_json(l: &Listed) -> Value {
    json!({
        "handle": SessionHandle::of(&l.key).as_str(),
        "principal": l.owner.as_ref().map(|o| o.principal.as_str()),
        "device": l.owner.as_ref().and_then(|o| o.device.as_deref()),
        "created": unix(l.created),
        "last_used": unix(l.accessed),
        "expires": l.expires.map(unix),
        "size": l.size,
    })
}

/// Writes a session listing row by row: as a table (fixed columns, so no row needs to be
/// seen before the first is printed) or as one JSON array, streamed.
#[derive(Debug)]
pub(crate) struct Listing<W: Write> {
    out: W,
    json: bool,
    rows: u64,
}

impl<W: Write> Listing<W> {
    /// Starts a listing on `out`.
    pub(crate) fn new(out: W, json: bool) -> Self {
        Listing { out, json, rows: 0 }
    }

    /// Writes one session.
    pub(crate) fn row(&mut self, l: &Listed) -> Result<(), CliError> {
        if self.json {
            let sep = if self.rows == 0 { "[\n  " } else { ",\n  " };
            write!(self.out, "{sep}{}", listed_json(l)).map_err(io)?;
        } else {
            if self.rows == 0 {
                writeln!(
                    self.out,
                    "{:<22}  {:<24}  {:<20}  {:<20}  {:<20}  {:>8}  DEVICE",
                    "HANDLE", "PRINCIPAL", "CREATED", "LAST USED", "EXPIRES", "SIZE"
                )
                .map_err(io)?;
            }
            let owner = l.owner.as_ref();
            writeln!(
                self.out,
                "{:<22}  {:<24}  {:<20}  {:<20}  {:<20}  {:>8}  {}",
                SessionHandle::of(&l.key),
                owner.map_or("-", |o| o.principal.as_str()),
                rfc3339(l.created),
                rfc3339(l.accessed),
                l.expires.map_or_else(|| "never".to_owned(), rfc3339),
                l.size,
                owner.and_then(|o| o.device.as_deref()).unwrap_or("-"),
            )
            .map_err(io)?;
        }
        self.rows += 1;
        Ok(())
    }

    /// Ends the listing; returns how many rows it had.
    pub(crate) fn finish(mut self) -> Result<u64, CliError> {
        if self.json {
            writeln!(self.out, "{}", if self.rows == 0 { "[]" } else { "\n]" }).map_err(io)?;
        } else if self.rows == 0 {
            writeln!(self.out, "no sessions").map_err(io)?;
        }
        self.out.flush().map_err(io)?;
        Ok(self.rows)
    }
}

/// Whether progress bars are drawn: wanted, and stderr is a terminal.
pub(crate) fn progress_shown(wanted: bool) -> bool {
    wanted && std::io::stderr().is_terminal()
}

/// A progress bar on stderr when it is a terminal and progress is wanted; hidden otherwise.
pub(crate) fn progress(wanted: bool, total: Option<u64>, what: &str) -> ProgressBar {
    if !progress_shown(wanted) {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {msg} {pos} ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &Value) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| io(e.into()))?;
    writeln!(out).map_err(io)
}

/// A write to stdout failed (a closed pipe, a full disk).
pub(crate) fn io(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return CliError::OutputClosed;
    }
    CliError::Input(format!("cannot write the output: {e}"))
}
