//! [`RedisClient`]: the connection (single node, Cluster or Sentinel; one more per worker
//! thread of a thread-per-core server) shared by the session store and the cache, with
//! the per-call deadline, the reconnect retry and `SCAN`.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use beaker_core::StoreError;
use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, FromRedisValue, IntoConnectionInfo, Pipeline, RedisFuture,
    RedisResult, Script, ServerErrorKind, Value,
};
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::{self, is_connection_error, ConnectError};
use crate::options::{RedisOptions, Target};

/// A connection to Redis shared by [`RedisStore`](crate::RedisStore) and
/// [`RedisCache`](crate::RedisCache); cheap to clone.
///
/// The URL chooses the topology:
///
/// | URL | topology |
/// |---|---|
/// | `redis://[user:pw@]host:port[/db]`, `rediss://…` | one server, reconnecting on its own |
/// | `redis+cluster://[user:pw@]h1:p1,h2:p2,…` | Redis Cluster; the nodes are seeds, the rest is discovered |
/// | `redis+sentinel://[user:pw@]s1:p1,s2:p2/master_name[/db]` | the master Sentinel names; the user info is the master's |
///
/// A single-node connection is a `ConnectionManager`: when Redis goes away, calls fail
/// with `StoreError::Unavailable` within [`RedisOptions::timeout`], and the first call
/// after Redis is back succeeds (a call that finds the connection broken retries once on
/// a fresh one). In Sentinel mode a broken connection, or a write refused with `READONLY`
/// (the server is a replica now), makes the call ask the sentinels for the master again
/// and retry once, so a failover is followed (tested with `SENTINEL FAILOVER` and with a
/// switch that leaves clients connected).
///
/// **Connections per thread.** A connection's I/O runs as a task on the runtime that
/// opened it. A client called from a current-thread runtime other than the one it
/// connected on (each actix-web worker is one) opens a connection of its own for that
/// thread on first use, so that its commands are written and answered on the caller's
/// thread instead of being handed to another thread and back, and so that
/// a call never waits on a runtime nobody drives any more. Calls from a multi-threaded
/// runtime, or from the runtime the client connected on, share the first connection. A
/// thread's connection closes when the thread ends, or when the thread next opens a
/// connection after the client is dropped.
/// [`RedisOptions::with_thread_connections(false)`](RedisOptions::with_thread_connections)
/// keeps every call on the one shared connection. All three topologies work this way;
/// in Sentinel mode a thread's connection also follows the master on its own (see
/// above).
///
/// ```no_run
/// use beaker_redis::{RedisCache, RedisClient, RedisOptions, RedisStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = RedisClient::connect("redis://127.0.0.1:6379", RedisOptions::default()).await?;
/// let sessions = RedisStore::new(client.clone());
/// let cache = RedisCache::new(client);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisClient {
    inner: Arc<Inner>,
}

struct Inner {
    options: RedisOptions,
    backend: Backend,
    /// The runtime the client connected on, where the shared connection's I/O task runs.
    origin: Option<tokio::runtime::Id>,
}

enum Backend {
    Single(Box<Single>),
    Cluster(Box<ClusterState>),
    Sentinel(Box<SentinelState>),
}

/// A single node: the shared connection, and what opening another one takes.
struct Single {
    shared: ConnectionManager,
    client: redis::Client,
    config: ConnectionManagerConfig,
}

/// A cluster: the shared connection, the client that opens another one, and what a
/// connection to one node takes (the first seed's credentials and TLS settings).
struct ClusterState {
    shared: ClusterConnection,
    client: ClusterClient,
    seed: redis::ConnectionInfo,
}

/// A connection this thread opened for one client, on one runtime.
struct ThreadConnection {
    owner: Weak<Inner>,
    runtime: tokio::runtime::Id,
    conn: Conn,
}

thread_local! {
    /// This thread's own connections, one per live client that used them.
    static THREAD_CONNECTIONS: RefCell<Vec<ThreadConnection>> = const { RefCell::new(Vec::new()) };
}

struct SentinelState {
    client: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<MultiplexedConnection>>,
    config: AsyncConnectionConfig,
}

impl fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topology = match self.inner.backend {
            Backend::Single(..) => "single",
            Backend::Cluster(_) => "cluster",
            Backend::Sentinel(_) => "sentinel",
        };
        f.debug_struct("RedisClient").field("topology", &topology).field("options", &self.inner.options).finish()
    }
}

/// One checked-out connection of whichever topology.
#[derive(Clone)]
pub(crate) enum Conn {
    Manager(ConnectionManager),
    Cluster(ClusterConnection),
    Plain(MultiplexedConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Plain(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Plain(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Plain(c) => c.get_db(),
        }
    }
}

impl RedisClient {
    /// Connects to the Redis named by `url` (see the table above) and checks that it answers.
    ///
    /// # Errors
    /// [`ConnectError::InvalidUrl`] / [`ConnectError::InvalidOptions`] for configuration
    /// mistakes; [`ConnectError::Store`] with `StoreError::Unavailable` when no server
    /// answered within [`RedisOptions::timeout`].
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, ConnectError> {
        options.validate()?;
        let target = Target::parse(url)?;
        let timeout = options.timeout;
        let invalid =
            |e: redis::RedisError| ConnectError::InvalidUrl { url: crate::options::redact(url), reason: e.to_string() };
        let connect = async {
            let backend = match target {
                Target::Single(url) => {
                    let client = redis::Client::open(url.as_str()).map_err(invalid)?;
                    // No response timeout of its own: `run` puts the call deadline around
                    // every call already, and a second timer per command costs CPU on
                    // every request. A server that stops answering fails the call at the
                    // same deadline either way.
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(None)
                        .set_number_of_retries(2)
                        .set_min_delay(Duration::from_millis(20))
                        .set_max_delay(Duration::from_millis(500));
                    let shared = ConnectionManager::new_with_config(client.clone(), config.clone())
                        .await
                        .map_err(|e| error::map("connect", e))?;
                    Backend::Single(Box::new(Single { shared, client, config }))
                }
                Target::Cluster(nodes) => {
                    let seed = nodes
                        .first()
                        .map(String::as_str)
                        .unwrap_or_default()
                        .into_connection_info()
                        .map_err(invalid)?;
                    let client = ClusterClient::builder(nodes)
                        .connection_timeout(timeout)
                        .response_timeout(timeout)
                        .build()
                        .map_err(invalid)?;
                    let shared = client.get_async_connection().await.map_err(|e| error::map("connect", e))?;
                    Backend::Cluster(Box::new(ClusterState { shared, client, seed }))
                }
                Target::Sentinel { sentinels, master, db, userinfo } => {
                    let addrs = sentinels.into_iter().map(|(host, port)| ConnectionAddr::Tcp(host, port));
                    let mut builder =
                        SentinelClientBuilder::new(addrs, master, SentinelServerType::Master).map_err(invalid)?;
                    builder = builder.set_client_to_redis_db(db);
                    if let Some(userinfo) = userinfo {
                        let (user, password) = userinfo.split_once(':').unwrap_or(("", userinfo.as_str()));
                        if !user.is_empty() {
                            builder = builder.set_client_to_redis_username(user);
                        }
                        builder = builder.set_client_to_redis_password(password);
                    }
                    let state = SentinelState {
                        client: tokio::sync::Mutex::new(builder.build().map_err(invalid)?),
                        current: Mutex::new(None),
                        config: AsyncConnectionConfig::new()
                            .set_connection_timeout(Some(timeout))
                            .set_response_timeout(None),
                    };
                    Backend::Sentinel(Box::new(state))
                }
            };
            Ok::<_, ConnectError>(backend)
        };
        let backend =
            tokio::time::timeout(timeout, connect).await.map_err(|_| error::timed_out("connect", timeout))??;
        let origin = Handle::try_current().ok().map(|h| h.id());
        let client = RedisClient { inner: Arc::new(Inner { options, backend, origin }) };
        // Sentinel connects lazily; make a bad master name or dead sentinels fail here.
        let _: String = client.run("PING", |mut c| async move { redis::cmd("PING").query_async(&mut c).await }).await?;
        Ok(client)
    }

    /// The options this client was made with.
    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// Whether this is a Redis Cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.backend, Backend::Cluster(_))
    }

    /// Whether this is a Sentinel-managed master.
    pub(crate) fn is_sentinel(&self) -> bool {
        matches!(self.inner.backend, Backend::Sentinel(_))
    }

    /// A new RESP3 connection of its own to the single node or the current master, for a
    /// near cache's tracking (`config` carries the push handler); on a cluster, to the
    /// master at `node` (from [`cluster_slots`](Self::cluster_slots)).
    pub(crate) async fn open_tracking(
        &self,
        node: Option<&(String, u16)>,
        config: &AsyncConnectionConfig,
    ) -> RedisResult<MultiplexedConnection> {
        let info = match (&self.inner.backend, node) {
            (Backend::Single(single), _) => single.client.get_connection_info().clone(),
            (Backend::Sentinel(s), _) => s.client.lock().await.async_get_client().await?.get_connection_info().clone(),
            (Backend::Cluster(c), Some((host, port))) => {
                let addr = match c.seed.addr() {
                    ConnectionAddr::TcpTls { insecure, tls_params, .. } => ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: *port,
                        insecure: *insecure,
                        tls_params: tls_params.clone(),
                    },
                    _ => ConnectionAddr::Tcp(host.clone(), *port),
                };
                c.seed.clone().set_addr(addr)
            }
            (Backend::Cluster(_), None) => {
                return Err(redis::RedisError::from((ErrorKind::Client, "a cluster tracking connection needs a node")))
            }
        };
        let settings = info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        client.get_multiplexed_async_connection_with_config(config).await
    }

    async fn conn(&self) -> RedisResult<Conn> {
        if let Some(runtime) = self.thread_runtime() {
            return self.thread_connection(runtime).await;
        }
        self.shared_conn().await
    }

    /// The connection calls from the client's own runtime, or from a multi-threaded one,
    /// share.
    async fn shared_conn(&self) -> RedisResult<Conn> {
        match &self.inner.backend {
            Backend::Single(single) => Ok(Conn::Manager(single.shared.clone())),
            Backend::Cluster(c) => Ok(Conn::Cluster(c.shared.clone())),
            Backend::Sentinel(s) => {
                if let Some(c) = s.current.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                    return Ok(Conn::Plain(c));
                }
                // One caller asks the sentinels; the others wait for its answer.
                let mut client = s.client.lock().await;
                if let Some(c) = s.current.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                    return Ok(Conn::Plain(c));
                }
                let conn = client.get_async_connection_with_config(&s.config).await?;
                *s.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
                Ok(Conn::Plain(conn))
            }
        }
    }

    /// The current-thread runtime this call runs on when it should use a connection of
    /// this thread's own (see "Connections per thread" above); `None` for the shared one.
    pub(crate) fn thread_runtime(&self) -> Option<tokio::runtime::Id> {
        if !self.inner.options.thread_connections {
            return None;
        }
        let handle = Handle::try_current().ok()?;
        let runtime = handle.id();
        (handle.runtime_flavor() == RuntimeFlavor::CurrentThread && self.inner.origin != Some(runtime))
            .then_some(runtime)
    }

    /// A new connection of the client's topology, its I/O task on the calling runtime.
    async fn open(&self) -> RedisResult<Conn> {
        match &self.inner.backend {
            Backend::Single(single) => ConnectionManager::new_with_config(single.client.clone(), single.config.clone())
                .await
                .map(Conn::Manager),
            Backend::Cluster(c) => c.client.get_async_connection().await.map(Conn::Cluster),
            Backend::Sentinel(s) => {
                let mut client = s.client.lock().await;
                client.get_async_connection_with_config(&s.config).await.map(Conn::Plain)
            }
        }
    }

    /// This thread's connection of this client on `runtime`, opened on first use. A
    /// connection of an earlier runtime of this thread, or of a dropped client, is let go
    /// when a new one is kept.
    async fn thread_connection(&self, runtime: tokio::runtime::Id) -> RedisResult<Conn> {
        // `try_with`: a call made while the thread is being torn down (from another
        // thread-local's destructor) takes the shared connection instead of panicking.
        match THREAD_CONNECTIONS.try_with(|v| self.find_thread_connection(&v.borrow(), runtime)) {
            Err(_) => return self.shared_conn().await,
            Ok(Some(conn)) => return Ok(conn),
            Ok(None) => {}
        }
        let conn = self.open().await?;
        let kept = THREAD_CONNECTIONS.try_with(|v| {
            let mut v = v.borrow_mut();
            // Another task of this thread may have opened one meanwhile: keep the first.
            if let Some(first) = self.find_thread_connection(&v, runtime) {
                return first;
            }
            v.retain(|t| t.owner.strong_count() > 0 && !self.owns(t));
            v.push(ThreadConnection { owner: Arc::downgrade(&self.inner), runtime, conn: conn.clone() });
            conn.clone()
        });
        Ok(kept.unwrap_or(conn))
    }

    /// Whether `t` was opened for this client. (A `Weak` keeps its allocation, so no other
    /// client can have the same address while `t` exists.)
    fn owns(&self, t: &ThreadConnection) -> bool {
        std::ptr::eq(t.owner.as_ptr(), Arc::as_ptr(&self.inner))
    }

    fn find_thread_connection(&self, v: &[ThreadConnection], runtime: tokio::runtime::Id) -> Option<Conn> {
        v.iter().find(|t| t.runtime == runtime && self.owns(t)).map(|t| t.conn.clone())
    }

    /// Whether `e` means the connection is no good any more: it broke, or (Sentinel) the
    /// server behind it is no longer the master. After a switch that leaves clients
    /// connected (an operator's `REPLICAOF`), the old master answers writes with
    /// `READONLY` for as long as the connection lasts.
    fn needs_new_connection(&self, e: &redis::RedisError) -> bool {
        is_connection_error(e)
            || (matches!(self.inner.backend, Backend::Sentinel(_))
                && e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly))
    }

    fn connection_failed(&self) {
        // The connection manager and the cluster connection reconnect on their own; a
        // Sentinel connection (the shared one, and this thread's own) is dropped so that
        // the next call finds the current master.
        if let Backend::Sentinel(s) = &self.inner.backend {
            *s.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let _ = THREAD_CONNECTIONS.try_with(|v| v.borrow_mut().retain(|t| !self.owns(t)));
        }
    }

    /// Runs `op` within the call deadline, retrying once on a fresh connection when the
    /// connection (not the command) failed. Every operation of this crate is safe to
    /// repeat: writes set absolute values and a repeated create or lock merely reports
    /// "exists", which callers already handle.
    pub(crate) async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let timeout = self.inner.options.timeout;
        let attempts = async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let result = match self.conn().await {
                    Ok(conn) => op(conn).await,
                    Err(e) => Err(e),
                };
                match result {
                    Err(e) if self.needs_new_connection(&e) => {
                        self.connection_failed();
                        if attempt >= 2 {
                            return Err(e);
                        }
                        tracing::debug!(error = %e, "redis: {what}: connection failed, retrying once");
                    }
                    other => return other,
                }
            }
        };
        match tokio::time::timeout(timeout, attempts).await {
            Ok(result) => result.map_err(|e| error::map(what, e)),
            Err(_) => Err(error::timed_out(what, timeout)),
        }
    }

    /// Runs a script call built by [`evalsha`], within the call deadline. A server that
    /// does not know the script yet (`NOSCRIPT`: new, restarted or flushed) gets it by
    /// `SCRIPT LOAD`, and the call is sent again.
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        what: &str,
        script: &Script,
        call: &Cmd,
    ) -> Result<T, StoreError> {
        self.run(what, |mut c| async move {
            match call.query_async(&mut c).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script.load_async(&mut c).await?;
                    call.query_async(&mut c).await
                }
                other => other,
            }
        })
        .await
    }

    /// Deletes every key matching the glob `pattern` with `SCAN` + `UNLINK`, on every
    /// master of a cluster; never `KEYS`, never `FLUSHDB`. Each step has the call deadline,
    /// not the whole sweep, so a large namespace can be cleared. Returns how many went.
    pub(crate) async fn scan_delete(&self, pattern: &str) -> Result<u64, StoreError> {
        let count = self.inner.options.scan_count;
        let mut deleted = 0;
        for node in self.scan_nodes().await? {
            let mut cursor = 0u64;
            loop {
                let (next, keys) = self.scan_step(node.as_ref(), cursor, pattern, count).await?;
                if !keys.is_empty() {
                    deleted += self.unlink(&keys).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    /// The nodes a full `SCAN` visits: every master of a cluster, sorted (`Some((host,
    /// port))`), or the one server (`None`).
    pub(crate) async fn scan_nodes(&self) -> Result<Vec<Option<(String, u16)>>, StoreError> {
        Ok(match &self.inner.backend {
            Backend::Cluster(_) => {
                let mut masters: Vec<_> = self.cluster_slots().await?.into_iter().map(|(_, master)| master).collect();
                masters.sort();
                masters.dedup();
                masters.into_iter().map(Some).collect()
            }
            _ => vec![None],
        })
    }

    /// One `SCAN cursor MATCH pattern COUNT count` on `node` (from [`scan_nodes`](Self::scan_nodes)):
    /// the next cursor (`0`: done) and the keys.
    pub(crate) async fn scan_step(
        &self,
        node: Option<&(String, u16)>,
        cursor: u64,
        pattern: &str,
        count: u32,
    ) -> Result<(u64, Vec<Vec<u8>>), StoreError> {
        self.run("SCAN", |mut c| {
            let node = node.cloned();
            async move {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count);
                match (&mut c, node) {
                    (Conn::Cluster(cc), Some((host, port))) => {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                        Ok(redis::from_redis_value(cc.route_command(scan, routing).await?)?)
                    }
                    _ => scan.query_async(&mut c).await,
                }
            }
        })
        .await
    }

    async fn unlink(&self, keys: &[Vec<u8>]) -> Result<u64, StoreError> {
        self.run("UNLINK", |mut c| async move {
            match &c {
                // Keys of one batch live in different slots: one command per key, sent
                // concurrently over the multiplexed node connections.
                Conn::Cluster(cc) => {
                    let each = keys.iter().map(|k| {
                        let mut cc = cc.clone();
                        async move { redis::cmd("UNLINK").arg(k).query_async::<u64>(&mut cc).await }
                    });
                    Ok(try_join_all(each).await?.into_iter().sum())
                }
                _ => redis::cmd("UNLINK").arg(keys).query_async(&mut c).await,
            }
        })
        .await
    }

    /// The slot ranges of a cluster (first and last slot) with the `(host, port)` of the
    /// master serving each, from `CLUSTER SLOTS`.
    pub(crate) async fn cluster_slots(&self) -> Result<Vec<((u16, u16), (String, u16))>, StoreError> {
        let slots: Value = self
            .run("CLUSTER SLOTS", |mut c| async move { redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await })
            .await?;
        let Value::Array(ranges) = slots else {
            return Err(StoreError::corrupt("redis: CLUSTER SLOTS: not an array"));
        };
        let mut found = Vec::new();
        for range in ranges {
            let Value::Array(fields) = range else { continue };
            let slot = |i: usize| match fields.get(i) {
                Some(Value::Int(n)) => u16::try_from(*n).ok().filter(|n| *n < 16384),
                _ => None,
            };
            let (Some(first), Some(last)) = (slot(0), slot(1)) else { continue };
            let Some(Value::Array(master)) = fields.get(2) else { continue };
            let host = match master.first() {
                Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
                Some(Value::SimpleString(h)) => h.clone(),
                _ => continue,
            };
            let Some(Value::Int(port)) = master.get(1) else { continue };
            let Ok(port) = u16::try_from(*port) else { continue };
            found.push(((first, last), (host, port)));
        }
        if found.is_empty() {
            return Err(StoreError::Unavailable {
                message: "redis: the cluster reports no master".into(),
                source: None,
            });
        }
        Ok(found)
    }
}

/// `EVALSHA <sha1 of script> 1 <key>`: a script call on one key, to which the caller
/// appends the arguments (`ARGV`) and which [`RedisClient::eval`] runs. Built as one
/// command buffer: `redis::ScriptInvocation` would allocate every argument on its own
/// and copy them all into a command again.
pub(crate) fn evalsha(script: &Script, key: &str) -> Cmd {
    let mut call = Cmd::with_capacity(16, 128);
    call.arg("EVALSHA").arg(script.get_hash()).arg(1).arg(key);
    call
}

/// Escapes the glob metacharacters of `SCAN MATCH` so that `s` matches only itself.
pub(crate) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_escape_neutralises_metacharacters() {
        assert_eq!(glob_escape(r"a*b?[c]\d"), r"a\*b\?\[c\]\\d");
        assert_eq!(glob_escape("plain:ключ"), "plain:ключ");
    }
}
