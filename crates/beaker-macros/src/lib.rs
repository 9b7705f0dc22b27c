//! `#[cached]`: memoisation of async and sync functions in a beaker-rs cache region.
//!
//! ```
//! use beaker_core::cache::CacheManager;
//! use beaker_core::config::{CacheConfig, RegionConfig};
//! use beaker_macros::cached;
//!
//! # mod db {
//! #     #[derive(Debug)]
//! #     pub struct DbError;
//! #     pub struct User { pub name: String }
//! #     pub async fn load_user(id: u64) -> Result<User, DbError> {
//! #         if id == 42 { Ok(User { name: "Zoë".into() }) } else { Err(DbError) }
//! #     }
//! # }
//! # use db::DbError;
//! #[cached(region = "short_term")]
//! async fn user_name(caches: &CacheManager, id: u64) -> Result<String, DbError> {
//!     db::load_user(id).await.map(|u| u.name)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = CacheConfig::new().with_region("short_term", RegionConfig::memory(None));
//! let caches = CacheManager::new(config)?;
//!
//! let name = user_name(&caches, 42).await.unwrap();          // cached per `id`
//! assert!(user_name_invalidate(&caches, 42).await?);          // forget that one entry
//! let fresh = user_name_uncached(&caches, 42).await.unwrap(); // bypass the cache
//! assert_eq!(name, fresh);
//! assert!(user_name(&caches, 7).await.is_err());              // errors are never cached
//! # Ok(()) }
//! ```
//!
//! # Where the cache comes from
//!
//! The argument marked `#[cache]`, else `self` for a method, else the first argument,
//! must implement [`CacheSource`]: a `&CacheManager`, an `Arc<CacheManager>`, or the
//! application's own state. It is never part of the key.
//!
//! ```
//! # use std::sync::Arc;
//! # use beaker_core::cache::{CacheManager, CacheSource};
//! # use beaker_macros::cached;
//! struct Repo {
//!     caches: CacheManager,
//! }
//!
//! impl CacheSource for Repo {
//!     fn cache_manager(&self) -> &CacheManager {
//!         &self.caches
//!     }
//! }
//!
//! impl Repo {
//!     #[cached(region = "long_term")] // the cache comes from `self`
//!     fn title(&self, id: u32) -> Option<String> {
//!         (id < 100).then(|| format!("title {id}"))
//!     }
//! }
//!
//! #[cached(region = "long_term")] // ... or from the argument marked #[cache]
//! fn score(player: u32, #[cache] repo: &Repo) -> u64 {
//!     u64::from(player) * 10
//! }
//! # let config = beaker_core::config::CacheConfig::new()
//! #     .with_region("long_term", beaker_core::config::RegionConfig::memory(None));
//! # let repo = Repo { caches: CacheManager::new(config).unwrap() };
//! # assert_eq!(repo.title(1).as_deref(), Some("title 1"));
//! # assert!(repo.title_invalidate(1).unwrap());
//! # assert_eq!(score(3, &repo), 30);
//! # assert!(score_invalidate(&repo, 3).unwrap());
//! ```
//!
//! # The key
//!
//! The namespace is `module_path!()::fn_name`, and `type_name::<Self>()::fn_name` for a
//! method (a function with a `self` receiver), so two functions with the same arguments
//! never share entries; override it with `namespace = "..."`, which you should for an
//! associated function without a receiver whose name repeats in the module, and for values
//! in a shared backend that must survive a change of compiler (type names may change).
//! The instantiations of a generic function share its namespace.
//!
//! The key is the JSON form of the remaining arguments as a tuple, in order (`f(&caches,
//! 7, "a")` is keyed `[7,"a"]`); they must implement `serde::Serialize`. Leave arguments
//! out with `skip = "conn, tracer"`. Keys longer than the region's `key_length` are hashed
//! by the region. Arguments that fail to serialize, or a region that is not configured,
//! make the call bypass the cache (logged).
//!
//! # What is cached
//!
//! For `Result<T, E>` only `Ok` values, for `Option<T>` only `Some` (detected from the
//! written return type's last path segment, so a type alias of `Result` counts as a plain
//! value); any other type is cached as is. `T` must be a [`CacheValue`] (serde + `Clone`);
//! `E` needs nothing. Calls run under the dogpile rule of [`Region::get_or_create_with`]:
//! concurrent callers with the same arguments share one run of the body. A region with
//! `enabled = false` runs the function every time.
//!
//! # Companions
//!
//! - `fname_uncached(same arguments)`: the original function, bypassing the cache (it
//!   neither reads nor stores).
//! - `fname_invalidate(source, key arguments)`: removes the entry of one argument tuple
//!   and returns whether there was one, as `Result<bool, beaker_core::Error>` (async for
//!   async functions); an unconfigured region is an error here. A `&mut self` method's
//!   companion takes `&self`.
//!
//! Both have the function's visibility, and its `cfg`, lint and `deprecated` attributes.
//! Because of them, `#[cached]` cannot be used in a trait or a trait `impl`.
//!
//! # Sync functions
//!
//! A synchronous function is served through [`Region::get_or_create_blocking`]: memory
//! regions work fully (a caller waiting for another's creator blocks its thread); on a
//! region of any other type the function runs uncached (logged), because out-of-process
//! backends need their async runtime, and `fname_invalidate` returns an error.
//!
//! # Options
//!
//! | option | meaning |
//! |---|---|
//! | `region = "name"` | the region (required) |
//! | `namespace = "ns"` | the namespace (default `module_path!()::fn_name`, or `type_name::<Self>()::fn_name` for methods) |
//! | `skip = "a, b"` | arguments left out of the key |
//! | `expire = 30` | seconds, instead of the region's `expire` |
//! | `crate = "::beaker_rs"` | where beaker-core's items are; the generated code names `<crate>::cache::...`. Rarely needed: by default the crate the calling package depends on, `beaker-core` or else the `beaker-rs` facade (under whatever name its manifest gives it) |
//!
//! Through the `beaker-rs` facade (feature `macros`), which re-exports this attribute, write
//! `#[beaker_rs::cached(region = "short_term")]`: the application then needs no dependency
//! on `beaker-core` or `beaker-macros`.
//!
//! [`CacheSource`]: https://docs.rs/beaker-core/latest/beaker_core/cache/trait.CacheSource.html
//! [`CacheValue`]: https://docs.rs/beaker-core/latest/beaker_core/cache/trait.CacheValue.html
//! [`Region::get_or_create_with`]: https://docs.rs/beaker-core/latest/beaker_core/cache/struct.Region.html#method.get_or_create_with
//! [`Region::get_or_create_blocking`]: https://docs.rs/beaker-core/latest/beaker_core/cache/struct.Region.html#method.get_or_create_blocking

use proc_macro::TokenStream;

mod args;
#[cfg(doctest)]
mod compile_fail;
mod expand;

/// Memoises a function in a cache region; see the [crate documentation](crate).
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut options = args::OptionsParser::default();
    let parser = syn::meta::parser(|meta| options.parse(meta));
    if let Err(e) = syn::parse::Parser::parse(parser, attr) {
        return e.to_compile_error().into();
    }
    let function = match syn::parse::<syn::ItemFn>(item) {
        Ok(f) => f,
        Err(e) => return e.to_compile_error().into(),
    };
    match options.finish().and_then(|o| expand::expand(o, function)) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
