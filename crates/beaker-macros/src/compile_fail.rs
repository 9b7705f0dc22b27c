//! Misuses of `#[cached]` that must not compile (run as doc tests only).
//!
//! No region:
//!
//! ```compile_fail
//! # use beaker_core::cache::CacheManager;
//! #[beaker_macros::cached]
//! fn f(caches: &CacheManager, x: u32) -> u32 { x }
//! ```
//!
//! An unknown option:
//!
//! ```compile_fail
//! # use beaker_core::cache::CacheManager;
//! #[beaker_macros::cached(region = "r", ttl = 30)]
//! fn f(caches: &CacheManager, x: u32) -> u32 { x }
//! ```
//!
//! `skip` naming something that is not an argument:
//!
//! ```compile_fail
//! # use beaker_core::cache::CacheManager;
//! #[beaker_macros::cached(region = "r", skip = "y")]
//! fn f(caches: &CacheManager, x: u32) -> u32 { x }
//! ```
//!
//! No argument to take the cache from:
//!
//! ```compile_fail
//! #[beaker_macros::cached(region = "r")]
//! fn f() -> u32 { 1 }
//! ```
//!
//! A source that is no `CacheSource`:
//!
//! ```compile_fail,E0277
//! #[beaker_macros::cached(region = "r")]
//! fn f(x: u32) -> u32 { x }
//! ```
//!
//! Two sources:
//!
//! ```compile_fail
//! # use beaker_core::cache::CacheManager;
//! #[beaker_macros::cached(region = "r")]
//! fn f(#[cache] a: &CacheManager, #[cache] b: &CacheManager) -> u32 { 1 }
//! ```
//!
//! An argument that cannot be part of a key:
//!
//! ```compile_fail,E0277
//! # use beaker_core::cache::CacheManager;
//! struct NotSerialize;
//! #[beaker_macros::cached(region = "r")]
//! fn f(caches: &CacheManager, x: NotSerialize) -> u32 { 1 }
//! ```
//!
//! A value that cannot be cached:
//!
//! ```compile_fail,E0277
//! # use beaker_core::cache::CacheManager;
//! #[beaker_macros::cached(region = "r")]
//! fn f(caches: &CacheManager, x: u32) -> std::rc::Rc<u32> { std::rc::Rc::new(x) }
//! ```
//!
//! An opaque return type:
//!
//! ```compile_fail
//! # use beaker_core::cache::CacheManager;
//! #[beaker_macros::cached(region = "r")]
//! fn f(caches: &CacheManager, x: u32) -> impl std::fmt::Display { x }
//! ```
//!
//! A `const fn`:
//!
//! ```compile_fail
//! # use beaker_core::cache::CacheManager;
//! #[beaker_macros::cached(region = "r")]
//! const fn f(caches: &CacheManager, x: u32) -> u32 { x }
//! ```
//!
//! The same misuses, corrected, compile:
//!
//! ```
//! # use beaker_core::cache::CacheManager;
//! #[derive(serde::Serialize)]
//! struct Serialize;
//! #[beaker_macros::cached(region = "r", skip = "x", expire = 30)]
//! fn f(x: u32, #[cache] caches: &CacheManager, y: Serialize) -> u32 {
//!     x
//! }
//! ```
