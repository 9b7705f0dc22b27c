//! `#[cached]`: memoisation of async and sync functions in a beaker-rs cache region.
//!
//! ```ignore
//! use beaker_core::cache::CacheManager;
//! use beaker_macros::cached;
//!
//! #[cached(region = "short_term")]
//! async fn user_name(caches: &CacheManager, id: u64) -> Result<String, DbError> {
//!     db::load_user(id).await.map(|u| u.name)
//! }
//!
//! let name = user_name(&caches, 42).await?;          // cached per `id`
//! user_name_invalidate(&caches, 42).await?;           // forget that one entry
//! let fresh = user_name_uncached(&caches, 42).await?; // bypass the cache
//! ```
//!
//! (The example is `ignore`d here because a proc-macro crate cannot use itself in doc
//! tests; the same code runs in this crate's `tests/cached.rs`.)
//!
//! # Where the cache comes from
//!
//! The argument marked `#[cache]`, else `self` for a method, else the first argument,
//! must implement [`CacheSource`](../beaker_core/cache/trait.CacheSource.html): a
//! `&CacheManager`, an `Arc<CacheManager>`, or the application's own state. It is never
//! part of the key.
//!
//! # The key
//!
//! The namespace is `module_path!()::fn_name` (override: `namespace = "..."`), so two
//! functions with the same arguments never share entries. The key is the JSON form of the
//! remaining arguments, which must implement `serde::Serialize`; leave arguments out with
//! `skip = "conn, tracer"`. Keys longer than the region's `key_length` are hashed by the
//! region. Arguments that fail to serialize, or a region that is not configured, make the
//! call bypass the cache (logged).
//!
//! # What is cached
//!
//! For `Result<T, E>` only `Ok` values, for `Option<T>` only `Some` (detected from the
//! written return type's last path segment); any other type is cached as is. `T` must be
//! a [`CacheValue`](../beaker_core/cache/trait.CacheValue.html) (serde + `Clone`). Calls run
//! under the dogpile rule of
//! [`Region::get_or_create_with`](../beaker_core/cache/struct.Region.html). A region with
//! `enabled = false` runs the function every time.
//!
//! # Companions
//!
//! - `fname_uncached(same arguments)`: the original body, bypassing the cache.
//! - `fname_invalidate(source, key arguments)`: removes the entry of one argument tuple;
//!   returns `Result<bool, beaker_core::Error>` (async for async functions).
//!
//! # Sync functions
//!
//! A synchronous function is served through
//! [`Region::get_or_create_blocking`](../beaker_core/cache/struct.Region.html): memory
//! regions work fully (a caller waiting for another's creator blocks its thread); on a
//! region of any other type the function runs uncached (logged), because out-of-process
//! backends need their async runtime, and `fname_invalidate` returns an error.
//!
//! # Options
//!
//! | option | meaning |
//! |---|---|
//! | `region = "name"` | the region (required) |
//! | `namespace = "ns"` | the namespace (default `module_path!()::fn_name`) |
//! | `skip = "a, b"` | arguments left out of the key |
//! | `expire = 30` | seconds, instead of the region's `expire` |
//! | `crate = "::beaker"` | where beaker-core's items are (for re-exports; default `::beaker_core`) |

use proc_macro::TokenStream;

mod args;
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
