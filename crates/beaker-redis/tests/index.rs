//! The principal index and enumeration of `RedisStore`, on one node (the shared server)
//! and on a Cluster (`BEAKER_TEST_REDIS_CLUSTER_URL`, unset = skipped): the owner's round
//! trip, the index following every write, its expiry never beyond its sessions', `end`
//! racing `apply` through the index, and scans in pages.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use beaker_core::store::{SessionHandle, SessionStore, StoreKey};
use beaker_core::StoreError;
use beaker_redis::{RedisOptions, RedisStore};
use beaker_testkit::skip_or_fail;
use beaker_testkit::store::{
    changes, fresh_key, key_set, listed_keys, owned, owner, record, with_owner, EndRace, SessionIndexSuite, OWNED_ENTRY,
};
use common::{cleanup, connect, options, single_url};

const RETIRE: Duration = Duration::from_secs(60);

/// The device of every owned session here.
const DEVICE: Option<&str> = Some("Firefox on 203.0.113.7");

/// A raw connection to the topology of `url`, to look at the index keys themselves.
enum Raw {
    One(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Raw {
    async fn connect(url: &str) -> Raw {
        match url.strip_prefix("redis+cluster://") {
            Some(nodes) => {
                let nodes: Vec<String> = nodes.split(',').map(|n| format!("redis://{n}")).collect();
                let client = redis::cluster::ClusterClient::new(nodes).unwrap();
                Raw::Cluster(client.get_async_connection().await.unwrap())
            }
            None => Raw::One(common::raw(url).await),
        }
    }

    async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        match self {
            Raw::One(c) => cmd.query_async(c).await.unwrap(),
            Raw::Cluster(c) => cmd.query_async(c).await.unwrap(),
        }
    }
}

fn index_key(opts: &RedisOptions, principal: &str) -> String {
    format!("{}principal:{{{}}}", opts.session_prefix, URL_SAFE_NO_PAD.encode(principal))
}

async fn run_all(url: &str, opts: RedisOptions, suite: &str) {
    let Some(client) = connect(suite, url, opts.clone()).await else { return };
    let store = RedisStore::new(client);
    SessionIndexSuite::new(Arc::new(store.clone())).with_scan(400, 13).run().await;
    let mut raw = Raw::connect(url).await;
    the_owner_round_trips(&store).await;
    the_index_follows_every_write(&store).await;
    the_index_expires_with_its_longest_session(&store, &opts, &mut raw).await;
    listing_prunes_members_a_lost_step_left_behind(&store, &opts, &mut raw).await;
    apply_racing_end_through_the_index_never_revives(&store).await;
    scans_list_each_session_once_in_bounded_pages(&store).await;
    cleanup_any(url, &opts).await;
}

async fn cleanup_any(url: &str, opts: &RedisOptions) {
    if !url.starts_with("redis+cluster://") {
        cleanup(url, opts).await;
    }
    // On a Cluster every key of the run has an expiry or was ended: the sessions expire
    // within seconds, the indexes with them.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_keeps_the_index_and_lists_sessions() {
    run_all(&single_url(), options("index"), "redis index").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_keeps_the_index_and_lists_sessions_across_slots() {
    let suite = "redis cluster index";
    let Ok(url) = std::env::var("BEAKER_TEST_REDIS_CLUSTER_URL") else {
        return skip_or_fail(suite, "BEAKER_TEST_REDIS_CLUSTER_URL is not set");
    };
    run_all(&url, options("cluster-index"), suite).await;
}

async fn the_owner_round_trips(store: &RedisStore) {
    let k = fresh_key();
    let soon = Some(SystemTime::now() + Duration::from_secs(30));
    let r = owned("ann@example.com", DEVICE, soon);
    assert!(store.create(&k, &r).await.unwrap());
    assert_eq!(store.load(&k).await.unwrap().unwrap().owner, r.owner);
    // Changes without an owner leave it; `clear` drops entries, never the owner.
    let mut c = changes(&[("n", b"1")], &[], soon);
    c.clear = true;
    assert!(store.apply(&k, &c).await.unwrap());
    assert_eq!(store.load(&k).await.unwrap().unwrap().owner, r.owner);
    // A new owner without a device replaces both.
    let unicode = owner("Зоя {x} 🔑", None);
    assert!(store.apply(&k, &with_owner(changes(&[], &[], soon), unicode.clone())).await.unwrap());
    let loaded = store.load(&k).await.unwrap().unwrap();
    assert_eq!(loaded.owner, Some(unicode));
    assert_eq!(loaded.entries.keys().collect::<Vec<_>>(), ["n"], "owner fields never show as entries");
    store.delete(&k).await.unwrap();
}

async fn the_index_follows_every_write(store: &RedisStore) {
    let soon = Some(SystemTime::now() + Duration::from_secs(30));
    let (p, q) = (format!("p-{}", fresh_key().as_str()), format!("q-{}", fresh_key().as_str()));
    let [a, b, c] = [fresh_key(), fresh_key(), fresh_key()];
    assert!(store.create(&a, &owned(&p, DEVICE, soon)).await.unwrap());
    assert!(store.create(&b, &owned(&p, DEVICE, soon)).await.unwrap());
    assert!(store.create(&c, &record(&[], soon)).await.unwrap());
    assert_eq!(listed_keys(store, &p).await, key_set([&a, &b]));
    let one = store.sessions_of(&p).await.unwrap().into_iter().find(|l| l.key == a).unwrap();
    assert_eq!(one.owner, Some(owner(&p, DEVICE)));
    assert_eq!(one.size, (OWNED_ENTRY.0.len() + OWNED_ENTRY.1.len()) as u64);

    // An owner given later files an unowned session; a new owner moves it.
    assert!(store.apply(&c, &with_owner(changes(&[], &[], soon), owner(&p, None))).await.unwrap());
    assert_eq!(listed_keys(store, &p).await, key_set([&a, &b, &c]));
    assert!(store.apply(&c, &with_owner(changes(&[], &[], soon), owner(&q, None))).await.unwrap());
    assert_eq!(listed_keys(store, &p).await, key_set([&a, &b]));
    assert_eq!(listed_keys(store, &q).await, key_set([&c]));

    // rename lists the new key in place of the old one.
    let a2 = fresh_key();
    assert!(store.rename(&a, &a2, &changes(&[], &[], soon), RETIRE).await.unwrap());
    assert_eq!(listed_keys(store, &p).await, key_set([&a2, &b]));
    // end and delete take keys out; an apply to the ended key is refused and lists nothing.
    store.end(&a2, RETIRE).await.unwrap();
    assert!(!store.apply(&a2, &with_owner(changes(&[], &[], soon), owner(&p, None))).await.unwrap());
    assert!(!store.touch(&a2, SystemTime::now(), soon).await.unwrap());
    store.delete(&b).await.unwrap();
    assert!(store.sessions_of(&p).await.unwrap().is_empty());
    store.delete(&c).await.unwrap();
    assert!(store.sessions_of(&q).await.unwrap().is_empty());
    assert!(store.sessions_of("nobody at all").await.unwrap().is_empty());
}

async fn pttl(raw: &mut Raw, key: &str) -> i64 {
    raw.query(redis::cmd("PTTL").arg(key)).await
}

async fn the_index_expires_with_its_longest_session(store: &RedisStore, opts: &RedisOptions, raw: &mut Raw) {
    let p = format!("ttl-{}", fresh_key().as_str());
    let index = index_key(opts, &p);
    let now = SystemTime::now();
    let (short, long) = (fresh_key(), fresh_key());
    assert!(store.create(&short, &owned(&p, DEVICE, Some(now + Duration::from_millis(1500)))).await.unwrap());
    assert!(store.create(&long, &owned(&p, DEVICE, Some(now + Duration::from_secs(4)))).await.unwrap());
    let ttl = pttl(raw, &index).await;
    assert!((2500..=4000).contains(&ttl), "the index lives as long as its longest session: {ttl} ms");
    // A touch extends the index with the session.
    assert!(store.touch(&short, SystemTime::now(), Some(now + Duration::from_secs(6))).await.unwrap());
    let ttl = pttl(raw, &index).await;
    assert!((4500..=6000).contains(&ttl), "a touch extends the index: {ttl} ms");
    // A session without expiry keeps the index without one.
    let forever = fresh_key();
    assert!(store.create(&forever, &owned(&p, DEVICE, None)).await.unwrap());
    assert_eq!(pttl(raw, &index).await, -1);
    store.delete(&forever).await.unwrap();
    let ttl = pttl(raw, &index).await;
    assert!((4000..=6000).contains(&ttl), "its expiry comes back once that session goes: {ttl} ms");

    // Expired sessions are not listed, and the index goes with the last of them.
    assert!(store
        .touch(&short, SystemTime::now(), Some(SystemTime::now() + Duration::from_millis(500)))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(listed_keys(store, &p).await, key_set([&long]), "an expired session is listed");
    let remaining: Vec<String> = raw.query(redis::cmd("ZRANGE").arg(&index).arg(0).arg(-1)).await;
    assert_eq!(remaining, [long.as_str()], "listing prunes the expired member");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(store.sessions_of(&p).await.unwrap().is_empty());
    assert_eq!(pttl(raw, &index).await, -2, "the index outlived its sessions");
}

/// A member whose record is gone (a Cluster's second step that never ran after an `end`,
/// or a member written by hand) is not listed, and listing takes it out; a member whose
/// record now belongs to someone else is not listed either. In a Cluster the index key and
/// the session keys live in different slots, so this is the path every write takes there.
async fn listing_prunes_members_a_lost_step_left_behind(store: &RedisStore, opts: &RedisOptions, raw: &mut Raw) {
    let (p, q) = (format!("lost-{}", fresh_key().as_str()), format!("other-{}", fresh_key().as_str()));
    let index = index_key(opts, &p);
    let soon = Some(SystemTime::now() + Duration::from_secs(30));
    let (kept, moved) = (fresh_key(), fresh_key());
    assert!(store.create(&kept, &owned(&p, DEVICE, soon)).await.unwrap());
    assert!(store.create(&moved, &owned(&q, DEVICE, soon)).await.unwrap());
    if let Raw::Cluster(_) = raw {
        let slot = |key: String| redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).clone();
        let index_slot: i64 = raw.query(&slot(index.clone())).await;
        let session_slot: i64 = raw.query(&slot(store.redis_key(&kept))).await;
        assert_ne!(index_slot, session_slot, "the test must cross slots");
    }
    let dead = fresh_key();
    let far = (SystemTime::now() + Duration::from_secs(60)).duration_since(SystemTime::UNIX_EPOCH).unwrap();
    for member in [dead.as_str(), moved.as_str(), "not a store key"] {
        let _: i64 = raw.query(redis::cmd("ZADD").arg(&index).arg(far.as_millis() as u64).arg(member)).await;
    }
    assert_eq!(listed_keys(store, &p).await, key_set([&kept]));
    let mut left: Vec<String> = raw.query(redis::cmd("ZRANGE").arg(&index).arg(0).arg(-1)).await;
    left.sort();
    let mut want = vec![kept.as_str().to_owned(), moved.as_str().to_owned()];
    want.sort();
    assert_eq!(left, want, "dead members are pruned; a live one filed elsewhere waits for its record");
    store.delete(&kept).await.unwrap();
    store.delete(&moved).await.unwrap();
    assert!(store.sessions_of(&p).await.unwrap().is_empty());
    let gone: i64 = raw.query(redis::cmd("EXISTS").arg(&index)).await;
    assert_eq!(gone, 0, "an index whose sessions are all gone is gone once listed");
}

/// Sign-out-everywhere through the index while requests keep writing, logging in again
/// and touching: every listed session ends and stays ended; none comes back in the index
/// or the store.
async fn apply_racing_end_through_the_index_never_revives(store: &RedisStore) {
    let race = EndRace {
        trials: 20,
        sessions: 3,
        writers: 3,
        writes: 15,
        pause: Duration::from_micros(200),
        relogin: true,
        touch_every: Some(5),
        ..EndRace::default()
    };
    race.run(Arc::new(store.clone())).await;
}

async fn scans_list_each_session_once_in_bounded_pages(store: &RedisStore) {
    let soon = Some(SystemTime::now() + Duration::from_secs(60));
    let keys: Vec<StoreKey> = (0..3000).map(|_| fresh_key()).collect();
    for chunk in keys.chunks(200) {
        let each = chunk.iter().map(|k| {
            let r = if k.as_str().ends_with(['a', 'b']) { owned("scanned", DEVICE, soon) } else { record(&[], soon) };
            async move { store.create(k, &r).await }
        });
        for created in futures_util::future::join_all(each).await {
            assert!(created.unwrap());
        }
    }
    // Tombstones are not sessions.
    let ended: HashSet<StoreKey> = keys.iter().step_by(10).cloned().collect();
    for k in &ended {
        store.end(k, RETIRE).await.unwrap();
    }
    let live: HashSet<StoreKey> = keys.iter().filter(|k| !ended.contains(k)).cloned().collect();
    assert_eq!(store.count().await.unwrap(), live.len() as u64);

    let mut seen = HashSet::new();
    let (mut cursor, mut pages) = (None::<String>, 0);
    loop {
        // A tool may change its page size between pages: the cursor keeps its place.
        let limit = [97, 13, 400, 1][pages % 4];
        let page = store.scan(cursor.as_deref(), limit).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= limit, "a page of {} items for {limit}", page.items.len());
        assert!(!page.items.is_empty() || page.next.is_none(), "an empty page before the end");
        for item in page.items {
            assert!(seen.insert(item.key.clone()), "{:?} listed twice", item.key);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, live, "a scan lists exactly the live sessions");
    assert!(pages >= live.len() / 400, "{pages} pages");

    // find by handle; a handle of nothing, or of an ended session, finds nothing.
    let target = live.iter().next().unwrap();
    assert_eq!(store.find(&SessionHandle::of(target)).await.unwrap().as_ref(), Some(target));
    assert_eq!(store.find(&SessionHandle::of(ended.iter().next().unwrap())).await.unwrap(), None);
    assert_eq!(store.find(&SessionHandle::of(&fresh_key())).await.unwrap(), None);

    for bad in ["", "garbage", "r2/-/x/10/", "r2/10.9.9.9:1/0/10/"] {
        match store.scan(Some(bad), 10).await {
            Err(StoreError::Rejected { message, .. }) | Err(StoreError::Unavailable { message, .. }) => {
                assert!(message.contains("scan"), "{message}")
            }
            other => panic!("cursor {bad:?}: {other:?}"),
        }
    }
    for k in &keys {
        store.delete(k).await.unwrap();
    }
    assert_eq!(store.count().await.unwrap(), 0);
}
