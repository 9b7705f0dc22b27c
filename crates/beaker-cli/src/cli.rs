//! The command line: one subcommand per verb, each with a manual-page style `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const ABOUT: &str = "Administer the sessions and caches of a beaker-rs application";

const LONG_ABOUT: &str = "\
Administer the sessions and caches of a beaker-rs application: count, list, inspect and end \
sessions, purge expired ones, read and clear cache namespaces, and check a configuration.

CONFIGURATION
    The tool opens the stores the application uses, read from the same configuration:
    the environment (BEAKER_SESSION_URL, BEAKER_SESSION_TYPE, BEAKER_CACHE_REGIONS,
    BEAKER_CACHE_<REGION>_URL, ...), or a file given with --config (or BEAKER_CONFIG).
    A file ending in .toml holds [session] and [cache] tables; any other file is read as a
    Beaker-style INI file whose section (e.g. [app:main]) holds beaker.session.*,
    session.*, beaker.cache.* or cache.* options. With --config the environment's
    BEAKER_* options are not read.

    Memory and cookie-only sessions live inside the application's process or in its
    cookies: the session commands need a server store (file, SQLite, PostgreSQL, MySQL,
    Redis, Memcached, object storage).

SESSION HANDLES
    Sessions are named by handles: 22 characters derived from the store key by a one-way
    hash, starting with a letter or digit. A handle is never a usable session token, and the tool never prints a session
    id or a store key.

OUTPUT
    Tables for people, or JSON with --json for scripts. Progress bars appear on stderr
    during long scans when stderr is a terminal.

EXIT STATUS
    0   success
    1   an error: bad configuration (the message names the option), a store that cannot
        be reached or cannot do what was asked, or nothing found under the name given
    2   a usage error: unknown command or option, or an argument of the wrong shape";

/// `beaker`: the command line.
#[derive(Debug, Parser)]
#[command(name = "beaker", version, about = ABOUT, long_about = LONG_ABOUT, propagate_version = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Read the configuration from FILE (INI or TOML) instead of the environment.
    #[arg(long, short = 'c', global = true, env = "BEAKER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The INI section to read, when several sections of the file hold beaker options.
    #[arg(long, global = true, value_name = "NAME", requires = "config")]
    pub section: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Never draw progress bars (they are drawn only when stderr is a terminal anyway).
    #[arg(long, global = true)]
    pub no_progress: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Count, list, inspect, end and purge sessions.
    #[command(
        subcommand,
        long_about = "Count, list, inspect, end and purge the sessions of the configured session store \
                      (BEAKER_SESSION_URL or session.url). Sessions are named by their handles."
    )]
    Sessions(SessionsCommand),
    /// Read, clear and describe cache regions.
    #[command(
        subcommand,
        long_about = "Read, clear and describe the cache regions the configuration declares \
                      (BEAKER_CACHE_REGIONS or cache.regions). Memory regions live inside the application's \
                      process and cannot be reached from here."
    )]
    Cache(CacheCommand),
    /// Check a configuration.
    #[command(subcommand, long_about = "Check a configuration: read it, print it resolved, open its stores.")]
    Config(ConfigCommand),
}

/// `beaker sessions …`
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Print how many live sessions the store holds.
    #[command(long_about = "\
Print how many live sessions the store holds. Stores that can count natively answer at once; others are counted by a paged scan, with a \
progress bar on a terminal. SQL and file stores may count expired sessions that the \
application's sweeper (or `beaker sessions purge-expired`) has yet to remove.")]
    Count {
        /// Count by scanning page by page even when the store can count natively.
        #[arg(long)]
        scan: bool,
        /// Sessions asked for per page while scanning.
        #[arg(long, value_name = "N", default_value_t = crate::scan::DEFAULT_PAGE_SIZE, value_parser = page_size)]
        page_size: usize,
    },
    /// List sessions: all of them, or those of one principal.
    #[command(long_about = "\
List sessions: handle, principal, device, created, last used, expires, size. Without \
--principal every live session of the store is listed in the store's order, one page at a \
time, so the tool's memory stays bounded whatever the store's size. With --principal, the \
sessions of that principal from the store's principal index, newest first.")]
    List {
        /// Only the sessions of this principal (the id the application recorded at login).
        #[arg(long, short = 'p', value_name = "PRINCIPAL")]
        principal: Option<String>,
        /// Stop after N sessions.
        #[arg(long, short = 'n', value_name = "N")]
        limit: Option<u64>,
        /// Sessions asked for per page while scanning.
        #[arg(long, value_name = "N", default_value_t = crate::scan::DEFAULT_PAGE_SIZE, value_parser = page_size)]
        page_size: usize,
    },
    /// Show one session: its metadata and its values, decoded.
    #[command(long_about = "\
Show one session: its metadata and its values, each decoded by the serializer that wrote it \
(every stored value carries its serializer's tag: JSON and MessagePack are shown as JSON; \
bincode values, which cannot be read without their Rust type, as a size). The session's id \
and store key are never printed.")]
    Show {
        /// The session's handle, as `beaker sessions list` prints it.
        handle: String,
        /// Look the handle up among this principal's sessions (the principal index)
        /// instead of scanning the store: needed on Memcached, which cannot scan.
        #[arg(long, short = 'p', value_name = "PRINCIPAL")]
        principal: Option<String>,
    },
    /// End one session (a logout from the server side).
    #[command(long_about = "\
End one session, as a logout does: its record is removed and its key retired for the \
configured retired_window, so a request that was in flight when it ended cannot write it \
back.")]
    End {
        /// The session's handle, as `beaker sessions list` prints it.
        handle: String,
        /// Look the handle up among this principal's sessions (the principal index)
        /// instead of scanning the store: needed on Memcached, which cannot scan.
        #[arg(long, short = 'p', value_name = "PRINCIPAL")]
        principal: Option<String>,
    },
    /// End every session of a principal ("sign out everywhere").
    #[command(
        name = "end-principal",
        long_about = "\
End every session of a principal (\"sign out everywhere\", after a password change or a \
compromise), each as `beaker sessions end` ends one. Prints how many were ended."
    )]
    EndPrincipal {
        /// The principal (the id the application recorded at login).
        principal: String,
    },
    /// Remove the records of expired sessions now.
    #[command(
        name = "purge-expired",
        long_about = "\
Remove the records (and expired tombstones) of expired sessions now, as the application's \
sweeper does periodically, and print how many went. Redis and Memcached expire records \
themselves: there, nothing is left to purge."
    )]
    PurgeExpired,
}

/// `beaker cache …`
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Describe a region: its backend, options and what its namespace holds.
    #[command(long_about = "\
Describe a cache region: its backend (URL with any password masked), expiry, key length \
and switch, and the number of live entries its namespace holds and their size, where the backend \
counts them (the file and SQL backends; the others say so).")]
    Stats {
        /// The region, as the configuration names it.
        region: String,
        /// The namespace to count (default: `default`).
        namespace: Option<String>,
    },
    /// Remove every value of one namespace of a region.
    #[command(long_about = "\
Remove every value of one namespace of a region, and nothing else: other namespaces and \
other regions are untouched. Without NAMESPACE, the namespace `default` (what a region \
handle uses until the application names another). #[cached] functions use their module \
path and name as the namespace, e.g. `my_app::prices::quote`.")]
    Clear {
        /// The region, as the configuration names it.
        region: String,
        /// The namespace (default: `default`).
        namespace: Option<String>,
    },
    /// Print the value stored under a key, as JSON.
    #[command(long_about = "\
Print the fresh value stored under KEY in NAMESPACE of REGION, as JSON. Exits with status \
1 when there is none (absent, expired or stale).")]
    Get {
        /// The region, as the configuration names it.
        region: String,
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
    },
}

/// `beaker config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Read a configuration, print it resolved (secrets masked) and open its stores.
    #[command(long_about = "\
Read the configuration (--config FILE, or the environment), print it resolved with every \
default filled in and secrets and passwords masked, then open the session store and every \
cache region's backend. Exits with status 1 and a message naming the option on any error: \
an unknown option, a value of the wrong type, a missing secret, a store that cannot be \
opened.")]
    Check {
        /// Only read and validate; do not open the stores.
        #[arg(long)]
        offline: bool,
    },
}

fn page_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a page size from 1 to 100000")),
    }
}
