//! `#[cached]` through its public surface: the generated function, `_uncached` and
//! `_invalidate`, on memory regions of a real `CacheManager`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beaker_core::cache::{CacheManager, CacheSource};
use beaker_core::config::{CacheConfig, RegionConfig};
use beaker_core::ManualClock;
use beaker_macros::cached;

/// Regions `r` (never stale), `off` (disabled) and `short_keys` (keys over 16 bytes hashed).
fn caches() -> CacheManager {
    caches_with_clock(ManualClock::new())
}

fn caches_with_clock(clock: ManualClock) -> CacheManager {
    let config = CacheConfig::new()
        .with_region("r", RegionConfig::memory(None))
        .with_region("off", RegionConfig::memory(None).with_enabled(false))
        .with_region("short_keys", RegionConfig::memory(None).with_key_length(16));
    CacheManager::builder(config).clock(clock).build().expect("memory regions build")
}

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

// ---- caching per argument tuple -------------------------------------------------------

static SQUARE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
async fn square(caches: &CacheManager, x: u64) -> u64 {
    SQUARE_RUNS.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[tokio::test]
async fn the_body_runs_once_per_argument_tuple() {
    let caches = caches();
    assert_eq!(square(&caches, 3).await, 9);
    assert_eq!(square(&caches, 3).await, 9);
    assert_eq!(square(&caches, 4).await, 16);
    assert_eq!(square(&caches, 4).await, 16);
    assert_eq!(runs(&SQUARE_RUNS), 2);
    // The documented key: namespace `module_path!()::fn_name`, key the JSON of the arguments.
    let ns = caches.region("r").unwrap().namespace("cached::square");
    assert_eq!(ns.get::<u64>("[3]").await.unwrap(), Some(9));
}

static PAIR_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
async fn join(caches: &CacheManager, a: &str, b: Option<u32>) -> String {
    PAIR_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{a}{b:?}")
}

#[tokio::test]
async fn every_argument_is_part_of_the_key() {
    let caches = caches();
    assert_eq!(join(&caches, "a", Some(1)).await, "aSome(1)");
    assert_eq!(join(&caches, "a", None).await, "aNone");
    assert_eq!(join(&caches, "b", Some(1)).await, "bSome(1)");
    assert_eq!(join(&caches, "a", Some(1)).await, "aSome(1)");
    assert_eq!(runs(&PAIR_RUNS), 3);
}

static TWIN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
async fn double(caches: &CacheManager, x: u64) -> u64 {
    TWIN_RUNS.fetch_add(1, Ordering::SeqCst);
    2 * x
}

#[cached(region = "r")]
async fn triple(caches: &CacheManager, x: u64) -> u64 {
    TWIN_RUNS.fetch_add(1, Ordering::SeqCst);
    3 * x
}

#[tokio::test]
async fn two_functions_with_the_same_arguments_do_not_share_entries() {
    let caches = caches();
    assert_eq!(double(&caches, 5).await, 10);
    assert_eq!(triple(&caches, 5).await, 15);
    assert_eq!(double(&caches, 5).await, 10);
    assert_eq!(triple(&caches, 5).await, 15);
    assert_eq!(runs(&TWIN_RUNS), 2);
}

// ---- companions -------------------------------------------------------------------------

static FORGET_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
async fn label(caches: &CacheManager, id: u32) -> String {
    FORGET_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("#{id}")
}

#[tokio::test]
async fn invalidate_forgets_one_argument_tuple_only() {
    let caches = caches();
    label(&caches, 1).await;
    label(&caches, 2).await;
    assert_eq!(runs(&FORGET_RUNS), 2);

    assert!(label_invalidate(&caches, 1).await.unwrap(), "there was an entry");
    assert!(!label_invalidate(&caches, 1).await.unwrap(), "it is gone");

    assert_eq!(label(&caches, 1).await, "#1");
    assert_eq!(runs(&FORGET_RUNS), 3, "the invalidated tuple runs again");
    assert_eq!(label(&caches, 2).await, "#2");
    assert_eq!(runs(&FORGET_RUNS), 3, "the other tuple stays cached");
}

static BYPASS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
async fn stamp(caches: &CacheManager, id: u32) -> usize {
    BYPASS_RUNS.fetch_add(1, Ordering::SeqCst) + id as usize
}

#[tokio::test]
async fn uncached_runs_every_time_and_stores_nothing() {
    let caches = caches();
    assert_eq!(stamp_uncached(&caches, 0).await, 0);
    assert_eq!(stamp_uncached(&caches, 0).await, 1);
    assert_eq!(stamp(&caches, 0).await, 2, "the uncached calls stored nothing");
    assert_eq!(stamp(&caches, 0).await, 2);
    assert_eq!(stamp_uncached(&caches, 0).await, 3, "and do not read the cache either");
}

// ---- regions ----------------------------------------------------------------------------

static OFF_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "off")]
async fn disabled(caches: &CacheManager, x: u32) -> u32 {
    OFF_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

#[tokio::test]
async fn a_disabled_region_runs_the_body_every_time() {
    let caches = caches();
    for _ in 0..3 {
        assert_eq!(disabled(&caches, 7).await, 7);
    }
    assert_eq!(runs(&OFF_RUNS), 3);
}

static MISSING_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "nowhere")]
async fn unconfigured(caches: &CacheManager, x: u32) -> u32 {
    MISSING_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

#[tokio::test]
async fn an_unconfigured_region_bypasses_the_cache_and_invalidate_says_why() {
    let caches = caches();
    assert_eq!(unconfigured(&caches, 1).await, 1);
    assert_eq!(unconfigured(&caches, 1).await, 1);
    assert_eq!(runs(&MISSING_RUNS), 2);
    let err = unconfigured_invalidate(&caches, 1).await.unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
}

static LONG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "short_keys")]
async fn shout(caches: &CacheManager, text: String) -> String {
    LONG_RUNS.fetch_add(1, Ordering::SeqCst);
    text.to_uppercase()
}

#[tokio::test]
async fn keys_longer_than_key_length_are_hashed_and_still_work() {
    let caches = caches();
    let long_a = "a".repeat(100);
    let long_b = format!("{}b", "a".repeat(99));
    assert_eq!(shout(&caches, long_a.clone()).await, "A".repeat(100));
    assert_eq!(shout(&caches, long_b.clone()).await, format!("{}B", "A".repeat(99)));
    assert_eq!(shout(&caches, long_a.clone()).await, "A".repeat(100));
    assert_eq!(runs(&LONG_RUNS), 2, "hashed keys keep tuples apart");
    assert!(shout_invalidate(&caches, long_a.clone()).await.unwrap());
    shout(&caches, long_a).await;
    shout(&caches, long_b).await;
    assert_eq!(runs(&LONG_RUNS), 3);
}

// ---- options ----------------------------------------------------------------------------

static SKIP_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Stands for something that must not be in a key (a connection, a tracer).
struct Tracer(&'static str);

#[cached(region = "r", skip = "tracer, note")]
async fn lookup(caches: &CacheManager, id: u32, tracer: &Tracer, note: String) -> String {
    SKIP_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{id} via {} ({note})", tracer.0)
}

#[tokio::test]
async fn skipped_arguments_are_left_out_of_the_key() {
    let caches = caches();
    assert_eq!(lookup(&caches, 1, &Tracer("a"), "first".into()).await, "1 via a (first)");
    assert_eq!(lookup(&caches, 1, &Tracer("b"), "second".into()).await, "1 via a (first)");
    assert_eq!(runs(&SKIP_RUNS), 1);
    lookup(&caches, 2, &Tracer("a"), String::new()).await;
    assert_eq!(runs(&SKIP_RUNS), 2);
    // The companion takes the source and the key arguments only.
    assert!(lookup_invalidate(&caches, 1).await.unwrap());
}

static NS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r", namespace = "users")]
async fn user(caches: &CacheManager, id: u32) -> String {
    NS_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("user {id}")
}

#[tokio::test]
async fn an_explicit_namespace_is_used_as_is() {
    let caches = caches();
    user(&caches, 9).await;
    let users = caches.region("r").unwrap().namespace("users");
    assert_eq!(users.get::<String>("[9]").await.unwrap(), Some("user 9".to_owned()));
    users.clear().await.unwrap();
    user(&caches, 9).await;
    assert_eq!(runs(&NS_RUNS), 2);
}

static EXPIRE_RUNS: AtomicUsize = AtomicUsize::new(0);
static KEEP_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r", expire = 30)]
async fn brief(caches: &CacheManager, x: u32) -> u32 {
    EXPIRE_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

#[cached(region = "r")]
async fn lasting(caches: &CacheManager, x: u32) -> u32 {
    KEEP_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

#[tokio::test]
async fn expire_overrides_the_region_expiry_per_function() {
    let clock = ManualClock::new();
    let caches = caches_with_clock(clock.clone());
    brief(&caches, 1).await;
    lasting(&caches, 1).await;
    clock.advance(Duration::from_secs(29));
    brief(&caches, 1).await;
    assert_eq!(runs(&EXPIRE_RUNS), 1, "fresh for 30 s");
    clock.advance(Duration::from_secs(2));
    brief(&caches, 1).await;
    assert_eq!(runs(&EXPIRE_RUNS), 2, "stale after 30 s: regenerated");
    lasting(&caches, 1).await;
    assert_eq!(runs(&KEEP_RUNS), 1, "the region itself never expires");
}

// ---- what is cached ---------------------------------------------------------------------

static PARSE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The error type needs no serde: errors are never stored.
#[cached(region = "r")]
async fn parse(caches: &CacheManager, text: &str) -> Result<u32, std::num::ParseIntError> {
    PARSE_RUNS.fetch_add(1, Ordering::SeqCst);
    let n: u32 = text.parse()?;
    Ok(n)
}

#[tokio::test]
async fn only_ok_results_are_cached() {
    let caches = caches();
    assert!(parse(&caches, "x").await.is_err());
    assert!(parse(&caches, "x").await.is_err());
    assert_eq!(runs(&PARSE_RUNS), 2, "Err is never cached");
    assert_eq!(parse(&caches, "5").await.unwrap(), 5);
    assert_eq!(parse(&caches, "5").await.unwrap(), 5);
    assert_eq!(runs(&PARSE_RUNS), 3, "Ok is");
}

static FIND_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
async fn find(caches: &CacheManager, id: u32) -> Option<String> {
    FIND_RUNS.fetch_add(1, Ordering::SeqCst);
    (id != 0).then(|| format!("found {id}"))
}

#[tokio::test]
async fn only_some_options_are_cached() {
    let caches = caches();
    assert_eq!(find(&caches, 0).await, None);
    assert_eq!(find(&caches, 0).await, None);
    assert_eq!(runs(&FIND_RUNS), 2, "None is never cached");
    assert_eq!(find(&caches, 1).await.as_deref(), Some("found 1"));
    assert_eq!(find(&caches, 1).await.as_deref(), Some("found 1"));
    assert_eq!(runs(&FIND_RUNS), 3, "Some is");
}

/// `?`, an early `return` and a `collect()` whose type only the return type gives: the
/// body must infer inside the macro as it does in the written function.
#[cached(region = "r")]
async fn digits(caches: &CacheManager, text: String) -> Result<Vec<u32>, String> {
    if text.is_empty() {
        return text.chars().map(|c| c.to_digit(10).ok_or_else(|| format!("{c}?"))).collect();
    }
    let first = text.chars().next().and_then(|c| c.to_digit(10)).ok_or("not a digit")?;
    if first == 0 {
        return Ok(Default::default());
    }
    text.chars().map(|c| c.to_digit(10).ok_or_else(|| format!("{c} is not a digit"))).collect()
}

#[tokio::test]
async fn bodies_with_question_marks_and_early_returns_keep_their_meaning() {
    let caches = caches();
    assert_eq!(digits(&caches, "123".into()).await, Ok(vec![1, 2, 3]));
    assert_eq!(digits(&caches, "0123".into()).await, Ok(vec![]));
    assert_eq!(digits(&caches, "x".into()).await, Err("not a digit".to_owned()));
    assert_eq!(digits(&caches, "1x".into()).await, Err("x is not a digit".to_owned()));
}

// ---- sync functions ---------------------------------------------------------------------

static SYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
fn cube(caches: &CacheManager, x: u64) -> u64 {
    SYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    x * x * x
}

static SYNC_RESULT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
fn half(caches: &CacheManager, x: u32) -> Result<u32, String> {
    SYNC_RESULT_RUNS.fetch_add(1, Ordering::SeqCst);
    if x % 2 == 1 {
        return Err(format!("{x} is odd"));
    }
    Ok(x / 2)
}

static SYNC_OPTION_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
fn positive(caches: &CacheManager, x: i32) -> Option<i32> {
    SYNC_OPTION_RUNS.fetch_add(1, Ordering::SeqCst);
    (x > 0).then_some(x)
}

#[test]
fn sync_functions_are_cached_without_a_runtime() {
    let caches = caches();
    assert_eq!(cube(&caches, 2), 8);
    assert_eq!(cube(&caches, 2), 8);
    assert_eq!(runs(&SYNC_RUNS), 1);
    assert!(cube_invalidate(&caches, 2).unwrap());
    assert_eq!(cube_uncached(&caches, 2), 8);
    assert_eq!(cube(&caches, 2), 8);
    assert_eq!(runs(&SYNC_RUNS), 3);

    assert_eq!(half(&caches, 3), Err("3 is odd".to_owned()));
    assert_eq!(half(&caches, 3), Err("3 is odd".to_owned()));
    assert_eq!(half(&caches, 4), Ok(2));
    assert_eq!(half(&caches, 4), Ok(2));
    assert_eq!(runs(&SYNC_RESULT_RUNS), 3);

    assert_eq!(positive(&caches, -1), None);
    assert_eq!(positive(&caches, -1), None);
    assert_eq!(positive(&caches, 1), Some(1));
    assert_eq!(positive(&caches, 1), Some(1));
    assert_eq!(runs(&SYNC_OPTION_RUNS), 3);
}

static THREAD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
fn slow_sync(caches: &CacheManager, x: u32) -> u32 {
    THREAD_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    x
}

#[test]
fn concurrent_sync_callers_share_one_run() {
    let caches = caches();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(slow_sync(&caches, 1), 1));
        }
    });
    assert_eq!(runs(&THREAD_RUNS), 1, "the dogpile rule holds for sync callers");
}

// ---- methods and cache sources ----------------------------------------------------------

/// An application state that owns the cache manager.
struct App {
    caches: CacheManager,
    name_runs: AtomicUsize,
}

impl CacheSource for App {
    fn cache_manager(&self) -> &CacheManager {
        &self.caches
    }
}

impl App {
    fn new() -> Self {
        App { caches: caches(), name_runs: AtomicUsize::new(0) }
    }

    #[cached(region = "r")]
    async fn name(&self, id: u32) -> String {
        self.name_runs.fetch_add(1, Ordering::SeqCst);
        format!("app {id}")
    }

    #[cached(region = "r")]
    fn name_sync(&self, id: u32) -> String {
        self.name_runs.fetch_add(1, Ordering::SeqCst);
        format!("app {id}")
    }

    /// An associated function without a receiver: the first argument is the source.
    #[cached(region = "r")]
    fn describe(app: &Self, id: u32) -> String {
        app.name_runs.fetch_add(1, Ordering::SeqCst);
        Self::prefix().to_owned() + &id.to_string()
    }

    fn prefix() -> &'static str {
        "described "
    }
}

/// A second type with a method of the same name and arguments, in the same module.
struct Other {
    caches: CacheManager,
}

impl CacheSource for Other {
    fn cache_manager(&self) -> &CacheManager {
        &self.caches
    }
}

impl Other {
    #[cached(region = "r")]
    async fn name(&self, id: u32) -> String {
        format!("other {id}")
    }
}

#[tokio::test]
async fn methods_take_the_cache_from_self() {
    let app = App::new();
    assert_eq!(app.name(1).await, "app 1");
    assert_eq!(app.name(1).await, "app 1");
    assert_eq!(app.name_runs.load(Ordering::SeqCst), 1);
    assert!(app.name_invalidate(1).await.unwrap());
    assert_eq!(app.name_uncached(1).await, "app 1");
    assert_eq!(app.name_runs.load(Ordering::SeqCst), 2);

    assert_eq!(app.name_sync(2), "app 2");
    assert_eq!(app.name_sync(2), "app 2");
    assert_eq!(app.name_runs.load(Ordering::SeqCst), 3);
    assert!(app.name_sync_invalidate(2).unwrap());

    assert_eq!(App::describe(&app, 3), "described 3");
    assert_eq!(App::describe(&app, 3), "described 3");
    assert_eq!(app.name_runs.load(Ordering::SeqCst), 4);
    assert!(App::describe_invalidate(&app, 3).unwrap());
}

#[tokio::test]
async fn methods_of_different_types_do_not_share_entries() {
    let caches = caches();
    let app = App { caches: caches.clone(), name_runs: AtomicUsize::new(0) };
    let other = Other { caches };
    assert_eq!(app.name(1).await, "app 1");
    assert_eq!(other.name(1).await, "other 1");
    assert_eq!(app.name(1).await, "app 1");
    // Method namespaces are `type_name::<Self>()::fn_name`.
    let ns = app.caches.region("r").unwrap().namespace("cached::Other::name");
    assert_eq!(ns.get::<String>("[1]").await.unwrap(), Some("other 1".to_owned()));
}

static MARKED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
async fn marked(id: u32, #[cache] app: Arc<App>, (a, b): (u8, u8), mut n: u32) -> u32 {
    MARKED_RUNS.fetch_add(1, Ordering::SeqCst);
    n += 1;
    id + u32::from(a) + u32::from(b) + n + app.name_runs.load(Ordering::SeqCst) as u32
}

#[tokio::test]
async fn the_source_can_be_marked_and_arguments_can_be_patterns() {
    let app = Arc::new(App::new());
    assert_eq!(marked(1, Arc::clone(&app), (2, 3), 4).await, 11);
    assert_eq!(marked(1, Arc::clone(&app), (2, 3), 4).await, 11);
    assert_eq!(marked(1, Arc::clone(&app), (3, 2), 4).await, 11);
    assert_eq!(runs(&MARKED_RUNS), 2, "patterns are keyed by value");
    // The source comes first in the companion, then the key arguments in order.
    assert!(marked_invalidate(Arc::clone(&app), 1, (2, 3), 4).await.unwrap());
}

// ---- async concerns ---------------------------------------------------------------------

static SPAWN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
async fn slow(caches: Arc<CacheManager>, x: u32) -> u32 {
    SPAWN_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_futures_are_send_and_concurrent_callers_share_one_run() {
    let caches = Arc::new(caches());
    let tasks: Vec<_> = (0..8).map(|_| tokio::spawn(slow(Arc::clone(&caches), 1))).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 1);
    }
    assert_eq!(runs(&SPAWN_RUNS), 1, "the dogpile rule: one run for eight callers");
}

// ---- lints ------------------------------------------------------------------------------

/// Single-expression bodies, unused sources and unused companions compile without
/// warnings (this crate's tests build with `-D warnings` under clippy).
mod quiet {
    #![deny(warnings)]

    use beaker_core::cache::CacheManager;
    use beaker_macros::cached;

    #[cached(region = "r")]
    pub(super) fn one_expression(caches: &CacheManager, x: u32) -> u32 {
        x
    }

    #[cached(region = "r")]
    pub(super) async fn one_expression_async(caches: &CacheManager, x: u32) -> u32 {
        x
    }

    #[cached(region = "r")]
    fn inner_attributes(caches: &CacheManager, x: u32) -> u32 {
        #![allow(clippy::let_and_return)]
        let y = x;
        y
    }

    #[cached(region = "r")]
    fn never_called(caches: &CacheManager, (a, _): (u32, u32), mut b: u32) {
        b += a;
        let _ = b;
    }
}

#[tokio::test]
async fn single_expression_bodies_work() {
    let caches = caches();
    assert_eq!(quiet::one_expression(&caches, 4), 4);
    assert_eq!(quiet::one_expression_async(&caches, 5).await, 5);
}

// ---- signatures -------------------------------------------------------------------------

static GENERIC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "r")]
async fn show<T>(caches: &CacheManager, value: T, suffix: impl AsRef<str> + serde::Serialize) -> String
where
    T: std::fmt::Display + serde::Serialize,
{
    GENERIC_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{value}{}", suffix.as_ref())
}

#[tokio::test]
async fn generic_functions_and_impl_trait_arguments() {
    let caches = caches();
    assert_eq!(show(&caches, 1, "!").await, "1!");
    assert_eq!(show(&caches, 1, "!").await, "1!");
    assert_eq!(show(&caches, 1, "?").await, "1?");
    assert_eq!(runs(&GENERIC_RUNS), 2);
    assert!(show_invalidate(&caches, 1, "!").await.unwrap());
}

/// A state behind `&mut self` and `Arc<Self>` receivers.
struct Counter {
    caches: CacheManager,
    bumps: u32,
}

impl CacheSource for Counter {
    fn cache_manager(&self) -> &CacheManager {
        &self.caches
    }
}

impl Counter {
    #[cached(region = "r")]
    async fn bump(&mut self, by: u32) -> u32 {
        self.bumps += by;
        self.bumps
    }

    #[cached(region = "r")]
    async fn shared(self: Arc<Self>, x: u32) -> u32 {
        self.bumps + x
    }
}

#[tokio::test]
async fn mut_self_and_arc_self_receivers() {
    let mut counter = Counter { caches: caches(), bumps: 0 };
    assert_eq!(counter.bump(2).await, 2);
    assert_eq!(counter.bump(2).await, 2, "cached: the body did not run again");
    assert_eq!(counter.bumps, 2);
    // `_invalidate` borrows `self` shared, even for a `&mut self` method.
    let counter_ref = &counter;
    assert!(counter_ref.bump_invalidate(2).await.unwrap());
    assert_eq!(counter.bump(2).await, 4);

    let counter = Arc::new(counter);
    assert_eq!(Arc::clone(&counter).shared(1).await, 5);
    assert_eq!(Arc::clone(&counter).shared(1).await, 5);
    assert!(Arc::clone(&counter).shared_invalidate(1).await.unwrap());
}
