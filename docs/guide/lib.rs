//! The user's guide of beaker-rs, as doc tests: every Rust snippet in `docs/guide/*.md`
//! compiles (and runs, unless marked `no_run`) with `cargo test -p beaker-guide`.

#[doc = include_str!("getting-started.md")]
#[cfg(doctest)]
pub struct GettingStarted;

#[doc = include_str!("choosing-a-store.md")]
#[cfg(doctest)]
pub struct ChoosingAStore;

#[doc = include_str!("production.md")]
#[cfg(doctest)]
pub struct Production;

#[doc = include_str!("configuration.md")]
#[cfg(doctest)]
pub struct Configuration;

#[doc = include_str!("sessions-per-user.md")]
#[cfg(doctest)]
pub struct SessionsPerUser;

#[doc = include_str!("caching.md")]
#[cfg(doctest)]
pub struct Caching;

#[doc = include_str!("migrating.md")]
#[cfg(doctest)]
pub struct Migrating;

#[doc = include_str!("the-beaker-tool.md")]
#[cfg(doctest)]
pub struct TheBeakerTool;
