//! PostgreSQL: the same ordered keyspace as sled, in one table of a shared
//! database, written under leases that the database itself enforces.
//!
//! Every record is a row of `phasegate_kv (k bytea PRIMARY KEY, v bytea)`;
//! `bytea` compares bytewise, so key order, prefixes and ranges are sled's.
//! A group of batches is one transaction, and the writer acknowledges it
//! only after `COMMIT` returns, which with PostgreSQL's default
//! `synchronous_commit = on` means the write-ahead log is flushed.
//!
//! Instances are spread over [`SHARDS`] shards (a CRC-32 of the id), and a
//! node writes an instance only while it holds its shard's lease: a row of
//! `phasegate_shards` naming the owner, a fence token that grows by one at
//! every change of owner, and an expiry on the database's clock. Each write
//! share-locks the rows of the shards it touches and checks that they still
//! name this node with the fence it claimed; a node whose lease was taken
//! over is refused by the database, whatever it believes. Each write also
//! locks the heads of its instances and checks they are what the writer
//! read, so two writers can never interleave one instance's events.
//!
//! The client is tokio-postgres behind a deadpool pool, on a small runtime
//! of the backend's own: the [`Backend`] trait is synchronous (the writer
//! is a thread, and sled's reads are too), so each call waits on its query
//! from the caller's thread. A connection lost mid-call (PostgreSQL
//! restarted) is retried for up to a minute; a commit whose answer was lost
//! is recognised on retry by the heads it wrote.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{IsolationLevel, NoTls};

use crate::backend::{Backend, Guard, OpenMode, Write};
use crate::log::LogStore;
use crate::{Error, Result};

/// How many shards instances are spread over (fixed when the schema is created).
pub const SHARDS: u32 = 64;

/// The schema version this build writes; see [`MIGRATIONS`].
pub const SCHEMA_VERSION: u32 = 2;

/// The schema, one step per version: applied in order by
/// [`PostgresBackend::migrate`], each in its own transaction with the
/// version it reaches.
const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        "CREATE TABLE phasegate_kv (
         k bytea PRIMARY KEY,
         v bytea NOT NULL,
         -- for an event: the node that appended it and the fence it held
         node text,
         fence bigint
     );
     CREATE TABLE phasegate_shards (
         shard integer PRIMARY KEY,
         owner text,
         fence bigint NOT NULL DEFAULT 0,
         expires timestamptz
     );
     INSERT INTO phasegate_shards (shard) SELECT generate_series(0, 63);",
    ),
    (
        2,
        "CREATE TABLE phasegate_nodes (
             node text PRIMARY KEY,
             -- where its control API answers, for commands other nodes forward
             address text,
             started timestamptz NOT NULL DEFAULT now(),
             heartbeat timestamptz NOT NULL DEFAULT now()
         );
         -- What nodes prove to each other that they share the store with:
         -- 244 random bits (gen_random_uuid draws from a strong source).
         -- It belongs to the database, not to the store's records: never
         -- copied, never listed with the settings.
         CREATE TABLE phasegate_cluster (
             id integer PRIMARY KEY CHECK (id = 1),
             secret text NOT NULL
         );
         INSERT INTO phasegate_cluster (id, secret)
         VALUES (1, replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));",
    ),
];

/// Rows fetched per round trip of a scan.
const SCAN_PAGE: i32 = 1024;

/// How long a call keeps retrying a connection that failed (PostgreSQL
/// restarting) before it reports the error.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// The store on PostgreSQL.
pub type PostgresStore = LogStore<PostgresBackend>;

/// How a node uses the database.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// How long a lease lasts without renewal: after a node dies, its shards
    /// are taken over within this time. Renewed every third of it.
    pub lease: Duration,
    /// This node's name in the lease table (default: host name, process id
    /// and a random suffix, unique per process).
    pub node: Option<String>,
    /// Most connections the node opens.
    pub pool_size: usize,
    /// Share the instances with the other nodes on the database (`serve`
    /// in a cluster): the node claims its fair share of the shards, gives
    /// shards up when more nodes join, and takes over the shards of nodes
    /// that die. Without it (the default) the node claims every shard or
    /// none, as one process holds a sled store.
    pub shared: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions { lease: Duration::from_secs(10), node: None, pool_size: 8, shared: false }
    }
}

/// A node's part in a cluster, for `/healthz` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    /// This node's name.
    pub node: String,
    /// Shards this node holds now (of [`SHARDS`]).
    pub shards: usize,
    /// Nodes whose heartbeat is within a lease (this one included).
    pub live_nodes: usize,
    /// Lease renewals this node made.
    pub renewals: u64,
    /// Shards this node took over from another node (expired leases).
    pub takeovers: u64,
    /// Shards this node gave up or lost.
    pub released: u64,
    /// Moves on at every change of what this node holds.
    pub epoch: u64,
}

/// Where the node holding an instance's shard answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    /// The node's name.
    pub node: String,
    /// Its control API (`127.0.0.1:7878`), if it serves one.
    pub address: Option<String>,
}

/// The shards this node holds, by fence token.
#[derive(Debug, Default)]
struct Leases {
    held: HashMap<u32, i64>,
    /// Why the node no longer holds what it claimed, once it does not.
    lost: Option<String>,
    /// Renewals done, for metrics.
    renewals: u64,
    /// Shards taken over from another node, and shards given up or lost.
    takeovers: u64,
    released: u64,
    /// Nodes alive at the last look.
    live_nodes: usize,
    /// Moves on whenever `held` changes.
    epoch: u64,
    /// The control address this node advertises.
    address: Option<String>,
}

/// The backend on a PostgreSQL database (see the module's documentation).
pub struct PostgresBackend {
    pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
    node: String,
    location: String,
    options: PostgresOptions,
    leases: Arc<Mutex<Leases>>,
    /// How long a failing connection is retried: nothing while opening
    /// (a wrong URL or a server that is down is said at once), then
    /// [`RETRY_FOR`].
    retry_for: Arc<Mutex<Duration>>,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend").field("location", &self.location).field("node", &self.node).finish()
    }
}

/// The shard an instance belongs to.
pub fn shard_of(instance: &str) -> u32 {
    crc32fast::hash(instance.as_bytes()) % SHARDS
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            let host = config
                .get_hosts()
                .iter()
                .map(|host| match host {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
            let port = config.get_ports().first().map(|p| format!(":{p}")).unwrap_or_default();
            let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
            let db = config.get_dbname().unwrap_or_default();
            format!("postgres://{user}{host}{port}/{db}")
        }
        Err(_) => "postgres://(unreadable URL)".to_owned(),
    }
}

/// Whether `location` names a PostgreSQL database rather than a directory.
pub fn is_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

fn pg(error: tokio_postgres::Error) -> Error {
    // A database error has a SQLSTATE; anything else lost the connection.
    // Some SQLSTATEs are the server going away or refusing for now (classes
    // 08 connection, 53 resources, 57 operator intervention such as a
    // shutdown) or a transaction rolled back to be tried again (40001, 40P01):
    // the transaction did not commit, so it is tried again like a lost
    // connection.
    match error.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let again = ["08", "53", "57"].iter().any(|class| code.starts_with(class)) || code == "40001" || code == "40P01";
            let kind = if again { "PostgreSQL connection" } else { "PostgreSQL" };
            Error::Io(format!("{kind}: {} ({code})", db.message()))
        }
        None => Error::Io(format!("PostgreSQL connection: {error}")),
    }
}

fn pool_error(error: deadpool_postgres::PoolError) -> Error {
    match error {
        deadpool_postgres::PoolError::Backend(error) => pg(error),
        other => Error::Io(format!("PostgreSQL connection: {other}")),
    }
}

/// Whether an error is the connection's (retry) rather than the query's.
fn transient(error: &Error) -> bool {
    matches!(error, Error::Io(message) if message.starts_with("PostgreSQL connection"))
}

/// The instance an event key belongs to (`e:<id> 0x00 <seq>`).
fn event_instance(key: &[u8]) -> Option<&str> {
    let rest = key.strip_prefix(b"e:")?;
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

impl PostgresBackend {
    /// Connects to the database at `url`, checks its schema (creating it in
    /// an empty database with [`OpenMode::Create`]) and claims every shard:
    /// this node drives every instance, and a second node is refused with
    /// [`Error::InUse`] while the first holds its leases. A node that died
    /// leaves its leases to expire (`options.lease`); opening waits that long
    /// for them before it gives up.
    pub fn open(url: &str, mode: OpenMode, options: PostgresOptions) -> Result<Self> {
        let shared = options.shared;
        let backend = Self::connect(url, options)?;
        backend.check_schema(mode)?;
        if shared {
            backend.join()?;
        } else {
            backend.claim_all()?;
        }
        backend.start_membership();
        if let Ok(mut retry_for) = backend.retry_for.lock() {
            *retry_for = RETRY_FOR;
        }
        Ok(backend)
    }

    /// Connects without checking the schema or claiming anything.
    fn connect(url: &str, options: PostgresOptions) -> Result<Self> {
        let location = redact_url(url);
        let config: tokio_postgres::Config = url.parse().map_err(|_| {
            Error::Io(format!("{location}: not a PostgreSQL URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, or ?host=/socket/dir)"))
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("phasegate-postgres")
            .enable_all()
            .build()
            .map_err(|error| Error::Io(format!("cannot start the PostgreSQL client: {error}")))?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|error| Error::Io(format!("{location}: cannot make a connection pool: {error}")))?;
        let node = options.node.clone().unwrap_or_else(default_node_name);
        Ok(PostgresBackend {
            pool,
            runtime: Some(runtime),
            node,
            location,
            options,
            leases: Arc::default(),
            retry_for: Arc::new(Mutex::new(Duration::ZERO)),
        })
    }

    /// This node's name in the lease table.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The database, without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// How many shards this node holds, and how many lease renewals it has made.
    pub fn lease_counts(&self) -> (usize, u64) {
        self.leases.lock().map(|l| (l.held.len(), l.renewals)).unwrap_or_default()
    }

    /// Brings the schema at `url` to this build's version, applying each
    /// missing migration in order; refuses a schema newer than this build.
    /// Returns the versions before and after.
    pub fn migrate(url: &str) -> Result<(u32, u32)> {
        Self::connect(url, PostgresOptions::default())?.migrate_here()
    }

    fn check_schema(&self, mode: OpenMode) -> Result<()> {
        let location = self.location.clone();
        let found = self.call(|pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let exists: bool = client.query_one("SELECT to_regclass('phasegate_schema') IS NOT NULL", &[]).await.map_err(pg)?.get(0);
            if !exists {
                return Ok(None);
            }
            let row = client.query_one("SELECT coalesce(max(version), 0) FROM phasegate_schema", &[]).await.map_err(pg)?;
            Ok(Some(row.get::<_, i32>(0) as u32))
        })?;
        match found {
            None if mode == OpenMode::Existing => Err(Error::NoStore { path: location }),
            None => self.migrate_here().map(|_| ()),
            Some(version) if version > SCHEMA_VERSION => {
                Err(Error::NewerFormat { path: location, found: version, supported: SCHEMA_VERSION })
            }
            Some(version) if version < SCHEMA_VERSION => Err(Error::OldSchema { location, found: version, supported: SCHEMA_VERSION }),
            Some(_) => Ok(()),
        }
    }

    /// Brings the schema of the database this backend is connected to up
    /// to date, under an advisory lock so that two migrators take turns.
    fn migrate_here(&self) -> Result<(u32, u32)> {
        let location = self.location.clone();
        self.call(move |pool| {
            let location = location.clone();
            async move {
                let mut client = pool.get().await.map_err(pool_error)?;
                let txn = client.transaction().await.map_err(pg)?;
                txn.execute("SELECT pg_advisory_xact_lock(7306040)", &[]).await.map_err(pg)?;
                txn.batch_execute(
                    "CREATE TABLE IF NOT EXISTS phasegate_schema (version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())",
                )
                .await
                .map_err(pg)?;
                let before = schema_version(&txn).await?;
                if before > SCHEMA_VERSION {
                    return Err(Error::NewerFormat { path: location, found: before, supported: SCHEMA_VERSION });
                }
                for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > before) {
                    txn.batch_execute(sql).await.map_err(pg)?;
                    txn.execute("INSERT INTO phasegate_schema (version) VALUES ($1)", &[&(*version as i32)]).await.map_err(pg)?;
                }
                txn.commit().await.map_err(pg)?;
                Ok((before, SCHEMA_VERSION.max(before)))
            }
        })
    }

    /// Claims every shard, waiting up to a lease (plus a second) for the
    /// leases of a node that stopped without releasing them.
    fn claim_all(&self) -> Result<()> {
        let deadline = Instant::now() + self.options.lease + Duration::from_secs(1);
        let mut announced = false;
        loop {
            let gained = self.claim(SHARDS as i64)?;
            let held = {
                let mut leases = self.leases.lock().map_err(|_| Error::Io("the lease table was poisoned".to_owned()))?;
                leases.held.extend(gained);
                leases.held.len()
            };
            if held == SHARDS as usize {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.release();
                return Err(Error::InUse { path: self.location.clone() });
            }
            if !announced {
                tracing::info!(store = %self.location, held, "waiting for the leases of another node to expire (a node that stopped without releasing them, or one still running)");
                announced = true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Claims up to `want` shards that no node holds or whose lease has
    /// expired (see [`claim_free`]).
    fn claim(&self, want: i64) -> Result<Vec<(u32, i64)>> {
        let node = self.node.clone();
        let lease = self.options.lease;
        self.call(move |pool| {
            let node = node.clone();
            async move { Ok(claim_free(&pool, &node, lease, want).await?.into_iter().map(|(shard, fence, _)| (shard, fence)).collect()) }
        })
    }

    /// Joins the cluster: registers this node and claims its fair share of
    /// the shards that are free now (more come as leases expire or other
    /// nodes give theirs up).
    fn join(&self) -> Result<()> {
        let node = self.node.clone();
        let lease = self.options.lease;
        let leases = Arc::clone(&self.leases);
        self.call(move |pool| {
            let (node, leases) = (node.clone(), Arc::clone(&leases));
            async move { rebalance(&pool, &node, lease, &leases, true).await }
        })
    }

    /// Heartbeats, renews this node's leases and (sharing) rebalances, on
    /// the backend's runtime, every third of a lease and at least every
    /// second. Not sharing, a shard whose fence moved is lost and the
    /// store fails; sharing, it is one the node no longer drives.
    fn start_membership(&self) {
        let pool = self.pool.clone();
        let leases = Arc::clone(&self.leases);
        let node = self.node.clone();
        let (lease, shared) = (self.options.lease, self.options.shared);
        self.runtime().spawn(async move {
            let mut tick = tokio::time::interval((lease / 3).min(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if shared {
                    if let Err(error) = rebalance(&pool, &node, lease, &leases, false).await {
                        tracing::warn!(%error, "could not renew the store's leases; retrying");
                    }
                    continue;
                }
                let held: Vec<(u32, i64)> = match leases.lock() {
                    Ok(leases) if leases.lost.is_none() => leases.held.iter().map(|(s, f)| (*s, *f)).collect(),
                    _ => return,
                };
                match renew(&pool, &node, lease, &held).await {
                    Ok(renewed) => {
                        let Ok(mut leases) = leases.lock() else { return };
                        leases.renewals += 1;
                        let lost: Vec<u32> = held.iter().map(|(s, _)| *s).filter(|s| !renewed.contains(s)).collect();
                        if !lost.is_empty() {
                            let why = format!("this node lost the lease of shards {lost:?} to another node; it no longer writes them");
                            tracing::error!(%why);
                            for shard in &lost {
                                leases.held.remove(shard);
                            }
                            leases.released += lost.len() as u64;
                            leases.epoch += 1;
                            leases.lost = Some(why);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "could not renew the store's leases; retrying"),
                }
            }
        });
    }

    /// Gives this node's leases back, so another node need not wait for them to expire.
    fn release(&self) {
        let node = self.node.clone();
        let result = self.call(move |pool| {
            let node = node.clone();
            async move {
                let client = pool.get().await.map_err(pool_error)?;
                client.execute("UPDATE phasegate_shards SET owner = NULL, expires = NULL WHERE owner = $1", &[&node]).await.map_err(pg)?;
                client.execute("DELETE FROM phasegate_nodes WHERE node = $1", &[&node]).await.map_err(pg)
            }
        });
        if let Err(error) = result {
            tracing::warn!(%error, "could not release the store's leases; they expire on their own");
        }
        if let Ok(mut leases) = self.leases.lock() {
            leases.released += leases.held.len() as u64;
            leases.held.clear();
            leases.epoch += 1;
        }
    }

    fn retry_for(&self) -> Duration {
        self.retry_for.lock().map(|d| *d).unwrap_or(RETRY_FOR)
    }

    fn runtime(&self) -> &tokio::runtime::Handle {
        match &self.runtime {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the runtime lives until the backend is dropped"),
        }
    }

    /// Runs `make(pool)` on the backend's runtime and waits for it from
    /// this thread, retrying for [`RETRY_FOR`] while the connection fails.
    fn call<T, F, Fut>(&self, make: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Pool) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let pool = self.pool.clone();
        let location = self.location.clone();
        let retry_for = self.retry_for();
        self.runtime().spawn(async move {
            let _ = sender.send(retrying(&location, retry_for, || make(pool.clone())).await);
        });
        receiver.recv().map_err(|_| Error::Closed)?
    }
}

/// Runs `attempt` until it succeeds, fails for a reason other than the
/// connection, or has failed for `retry_for`.
async fn retrying<T, Fut>(location: &str, retry_for: Duration, mut attempt: impl FnMut() -> Fut) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match attempt().await {
            Err(error) if transient(&error) && started.elapsed() < retry_for => {
                tracing::warn!(store = %location, %error, "PostgreSQL is unreachable; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

async fn schema_version(txn: &tokio_postgres::Transaction<'_>) -> Result<u32> {
    let row = txn.query_one("SELECT coalesce(max(version), 0) FROM phasegate_schema", &[]).await.map_err(pg)?;
    Ok(row.get::<_, i32>(0) as u32)
}

/// Extends the leases this node holds with the fence it claimed them at;
/// returns the shards renewed.
async fn renew(pool: &Pool, node: &str, lease: Duration, held: &[(u32, i64)]) -> Result<BTreeSet<u32>> {
    let client = pool.get().await.map_err(pool_error)?;
    let shards: Vec<i32> = held.iter().map(|(s, _)| *s as i32).collect();
    let fences: Vec<i64> = held.iter().map(|(_, f)| *f).collect();
    let rows = client
        .query(
            "UPDATE phasegate_shards s SET expires = now() + make_interval(secs => $2)
             FROM unnest($3::int4[], $4::int8[]) AS h(shard, fence)
             WHERE s.shard = h.shard AND s.fence = h.fence AND s.owner = $1
             RETURNING s.shard",
            &[&node, &lease.as_secs_f64(), &shards, &fences],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(|row| row.get::<_, i32>(0) as u32).collect())
}

/// Claims up to `want` shards that no node holds or whose lease has
/// expired, skipping rows another transaction has locked (a write in
/// flight, another claimer). Each claim moves the shard's fence on by one.
/// Returns each shard with its new fence and whether another node held it.
async fn claim_free(pool: &Pool, node: &str, lease: Duration, want: i64) -> Result<Vec<(u32, i64, bool)>> {
    if want <= 0 {
        return Ok(Vec::new());
    }
    let client = pool.get().await.map_err(pool_error)?;
    let rows = client
        .query(
            "WITH free AS (
                 SELECT shard, owner AS previous FROM phasegate_shards
                 WHERE owner IS NULL OR expires < now()
                 ORDER BY shard LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             UPDATE phasegate_shards s
             SET owner = $1, fence = s.fence + 1, expires = now() + make_interval(secs => $2)
             FROM free WHERE s.shard = free.shard
             RETURNING s.shard, s.fence, free.previous IS NOT NULL AND free.previous <> $1",
            &[&node, &lease.as_secs_f64(), &want],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(|row| (row.get::<_, i32>(0) as u32, row.get::<_, i64>(1), row.get::<_, bool>(2))).collect())
}

/// One turn of a sharing node: heartbeat, renew what it holds, count the
/// live nodes, then claim free shards up to its fair share
/// (`ceil(SHARDS / live)`) or give up what it holds beyond it, so a node
/// that joins gets work and a dead node's shards are taken over once its
/// leases expire.
async fn rebalance(pool: &Pool, node: &str, lease: Duration, leases: &Mutex<Leases>, joining: bool) -> Result<()> {
    let (held, address) = {
        let leases = leases.lock().map_err(|_| Error::Io("the lease table was poisoned".to_owned()))?;
        (leases.held.iter().map(|(s, f)| (*s, *f)).collect::<Vec<_>>(), leases.address.clone())
    };
    let live = {
        let client = pool.get().await.map_err(pool_error)?;
        client
            .execute(
                "INSERT INTO phasegate_nodes (node, address) VALUES ($1, $2)
                 ON CONFLICT (node) DO UPDATE SET heartbeat = now(), address = coalesce(EXCLUDED.address, phasegate_nodes.address)",
                &[&node, &address],
            )
            .await
            .map_err(pg)?;
        let row = client
            .query_one("SELECT count(*) FROM phasegate_nodes WHERE heartbeat > now() - make_interval(secs => $1)", &[&lease.as_secs_f64()])
            .await
            .map_err(pg)?;
        (row.get::<_, i64>(0).max(1)) as usize
    };
    let renewed = if held.is_empty() { BTreeSet::new() } else { renew(pool, node, lease, &held).await? };
    let lost: Vec<u32> = held.iter().map(|(s, _)| *s).filter(|s| !renewed.contains(s)).collect();
    let fair = (SHARDS as usize).div_ceil(live);
    let keeping = held.len() - lost.len();
    let claimed = if keeping < fair { claim_free(pool, node, lease, (fair - keeping) as i64).await? } else { Vec::new() };
    // Beyond the fair share (a node joined): give up the highest shards.
    let mut giving: Vec<u32> = Vec::new();
    if keeping > fair && !joining {
        let mut mine: Vec<u32> = renewed.iter().copied().collect();
        mine.sort_unstable();
        giving = mine.split_off(fair);
        let client = pool.get().await.map_err(pool_error)?;
        let shards: Vec<i32> = giving.iter().map(|s| *s as i32).collect();
        client
            .execute("UPDATE phasegate_shards SET owner = NULL, expires = NULL WHERE owner = $1 AND shard = ANY($2)", &[&node, &shards])
            .await
            .map_err(pg)?;
    }
    let mut leases = leases.lock().map_err(|_| Error::Io("the lease table was poisoned".to_owned()))?;
    leases.renewals += 1;
    leases.live_nodes = live;
    for shard in lost.iter().chain(&giving) {
        leases.held.remove(shard);
    }
    if !lost.is_empty() {
        tracing::warn!(node, shards = ?lost, "lost the lease of shards to another node");
    }
    let taken = claimed.iter().filter(|(.., taken)| *taken).count() as u64;
    if taken > 0 {
        tracing::info!(node, shards = taken, "took over the shards of a node whose leases expired");
    }
    for (shard, fence, _) in &claimed {
        leases.held.insert(*shard, *fence);
    }
    leases.takeovers += taken;
    leases.released += (lost.len() + giving.len()) as u64;
    if !lost.is_empty() || !giving.is_empty() || !claimed.is_empty() {
        leases.epoch += 1;
    }
    Ok(())
}

fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "node".to_owned());
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[suffix.len() - 6..])
}

/// One guarded write, as the transaction carries it out.
async fn write_guarded(pool: &Pool, node: &str, held: &HashMap<u32, i64>, writes: &[Write], guards: &[Guard], retried: bool) -> Result<()> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let txn = client.transaction().await.map_err(pg)?;
    // The leases first: share-locked, so a takeover waits for this write
    // and every write after it sees the new fence.
    let mut shards: Vec<(u32, &str)> = guards.iter().map(|g| (shard_of(&g.instance), g.instance.as_str())).collect();
    shards.sort_unstable();
    shards.dedup_by_key(|(shard, _)| *shard);
    if !shards.is_empty() {
        let wanted: Vec<i32> = shards.iter().map(|(s, _)| *s as i32).collect();
        let rows = txn
            .query("SELECT shard, fence FROM phasegate_shards WHERE shard = ANY($1) AND owner = $2 FOR SHARE", &[&wanted, &node])
            .await
            .map_err(pg)?;
        let current: HashMap<u32, i64> = rows.iter().map(|row| (row.get::<_, i32>(0) as u32, row.get::<_, i64>(1))).collect();
        for (shard, instance) in &shards {
            if held.get(shard).is_none() || current.get(shard) != held.get(shard) {
                return Err(Error::NotOwner { instance: (*instance).to_owned(), shard: *shard });
            }
        }
    }
    if !guards.is_empty() {
        let heads: Vec<&[u8]> = guards.iter().map(|g| g.key.as_slice()).collect();
        let rows = txn.query("SELECT k, v FROM phasegate_kv WHERE k = ANY($1) FOR UPDATE", &[&heads]).await.map_err(pg)?;
        let current: HashMap<Vec<u8>, Vec<u8>> = rows.into_iter().map(|row| (row.get(0), row.get(1))).collect();
        let unchanged = guards.iter().all(|g| current.get(&g.key) == g.before.as_ref());
        if !unchanged {
            // A retry after a commit whose answer was lost finds its own heads.
            if retried && guards.iter().all(|g| current.get(&g.key) == g.after.as_ref()) {
                return Ok(());
            }
            let instance = guards.iter().find(|g| current.get(&g.key) != g.before.as_ref()).map(|g| g.instance.clone());
            return Err(Error::Stale { instance: instance.unwrap_or_default() });
        }
    }
    let mut put_keys: Vec<&[u8]> = Vec::new();
    let mut put_values: Vec<&[u8]> = Vec::new();
    let mut put_nodes: Vec<Option<&str>> = Vec::new();
    let mut put_fences: Vec<Option<i64>> = Vec::new();
    let mut deletes: Vec<&[u8]> = Vec::new();
    for (key, value) in writes {
        match value {
            Some(value) => {
                let fence = event_instance(key).and_then(|instance| held.get(&shard_of(instance)).copied());
                put_keys.push(key);
                put_values.push(value);
                put_nodes.push(fence.map(|_| node));
                put_fences.push(fence);
            }
            None => deletes.push(key),
        }
    }
    if !deletes.is_empty() {
        txn.execute("DELETE FROM phasegate_kv WHERE k = ANY($1)", &[&deletes]).await.map_err(pg)?;
    }
    if !put_keys.is_empty() {
        txn.execute(
            "INSERT INTO phasegate_kv (k, v, node, fence)
             SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::text[], $4::int8[])
             ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, node = EXCLUDED.node, fence = EXCLUDED.fence",
            &[&put_keys, &put_values, &put_nodes, &put_fences],
        )
        .await
        .map_err(pg)?;
    }
    txn.commit().await.map_err(pg)
}

/// Rows of a scan, as one round trip fetched them.
type Page = Vec<(Vec<u8>, Vec<u8>)>;

async fn scan_into(pool: Pool, start: Vec<u8>, end: Option<Vec<u8>>, sender: std::sync::mpsc::SyncSender<Result<Page>>) -> Result<()> {
    let mut client = pool.get().await.map_err(pool_error)?;
    // One snapshot for the whole scan, however many pages it takes.
    let txn = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await.map_err(pg)?;
    let portal = match &end {
        Some(end) => txn.bind("SELECT k, v FROM phasegate_kv WHERE k >= $1 AND k < $2 ORDER BY k", &[&start, end]).await,
        None => txn.bind("SELECT k, v FROM phasegate_kv WHERE k >= $1 ORDER BY k", &[&start]).await,
    }
    .map_err(pg)?;
    loop {
        let rows = txn.query_portal(&portal, SCAN_PAGE).await.map_err(pg)?;
        let last = rows.len() < SCAN_PAGE as usize;
        let page: Vec<(Vec<u8>, Vec<u8>)> = rows.into_iter().map(|row| (row.get(0), row.get(1))).collect();
        // The reader went away (it saw enough): stop.
        if tokio::task::block_in_place(|| sender.send(Ok(page))).is_err() || last {
            return Ok(());
        }
    }
}

impl Backend for PostgresBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let key = key.to_vec();
        self.call(move |pool| {
            let key = key.clone();
            async move {
                let client = pool.get().await.map_err(pool_error)?;
                let statement = client.prepare_cached("SELECT v FROM phasegate_kv WHERE k = $1").await.map_err(pg)?;
                Ok(client.query_opt(&statement, &[&key]).await.map_err(pg)?.map(|row| row.get(0)))
            }
        })
    }

    fn range_limit(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if limit == usize::MAX {
            let mut out = Vec::new();
            self.scan(start, end, &mut |key, value| {
                out.push((key.to_vec(), value.to_vec()));
                true
            })?;
            return Ok(out);
        }
        let (start, end, limit) = (start.to_vec(), end.map(<[u8]>::to_vec), limit.min(i64::MAX as usize) as i64);
        self.call(move |pool| {
            let (start, end) = (start.clone(), end.clone());
            async move {
                let client = pool.get().await.map_err(pool_error)?;
                let rows = match &end {
                    Some(end) => {
                        client
                            .query("SELECT k, v FROM phasegate_kv WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3", &[&start, end, &limit])
                            .await
                    }
                    None => client.query("SELECT k, v FROM phasegate_kv WHERE k >= $1 ORDER BY k LIMIT $2", &[&start, &limit]).await,
                }
                .map_err(pg)?;
                Ok(rows.into_iter().map(|row| (row.get(0), row.get(1))).collect())
            }
        })
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(2);
        let (pool, start, end) = (self.pool.clone(), start.to_vec(), end.map(<[u8]>::to_vec));
        let location = self.location.clone();
        self.runtime().spawn(async move {
            let failed = sender.clone();
            let mut attempts = 0;
            // A scan is retried only before it has shown anything.
            let result = loop {
                attempts += 1;
                match scan_into(pool.clone(), start.clone(), end.clone(), sender.clone()).await {
                    Err(error) if transient(&error) && attempts < 3 => {
                        tracing::warn!(store = %location, %error, "PostgreSQL scan failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    other => break other,
                }
            };
            if let Err(error) = result {
                let _ = tokio::task::block_in_place(|| failed.send(Err(error)));
            }
        });
        for page in receiver {
            for (key, value) in page? {
                if !visit(&key, &value) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn apply(&self, writes: Vec<Write>) -> Result<()> {
        self.apply_guarded(writes, &[])
    }

    fn apply_guarded(&self, writes: Vec<Write>, guards: &[Guard]) -> Result<()> {
        let held = self.leases.lock().map(|l| l.held.clone()).map_err(|_| Error::Io("the lease table was poisoned".to_owned()))?;
        let (writes, guards, node) = (Arc::new(writes), Arc::new(guards.to_vec()), self.node.clone());
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let pool = self.pool.clone();
        let location = self.location.clone();
        let retry_for = self.retry_for();
        self.runtime().spawn(async move {
            let mut tries = 0u32;
            let result = retrying(&location, retry_for, || {
                tries += 1;
                let (pool, node, held, writes, guards) =
                    (pool.clone(), node.clone(), held.clone(), Arc::clone(&writes), Arc::clone(&guards));
                let retried = tries > 1;
                async move { write_guarded(&pool, &node, &held, &writes, &guards, retried).await }
            })
            .await;
            let _ = sender.send(result);
        });
        receiver.recv().map_err(|_| Error::Closed)?
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn flush(&self) -> Result<()> {
        // Each write committed its own transaction: durable when it returned.
        Ok(())
    }

    fn check(&self) -> Result<()> {
        match self.leases.lock() {
            Ok(leases) => match &leases.lost {
                Some(why) => Err(Error::Io(why.clone())),
                None => Ok(()),
            },
            Err(_) => Err(Error::Io("the lease table was poisoned".to_owned())),
        }
    }

    fn close(&self) {
        self.release();
    }

    fn owns(&self, instance: &str) -> bool {
        self.leases.lock().is_ok_and(|leases| leases.held.contains_key(&shard_of(instance)))
    }

    fn ownership_epoch(&self) -> u64 {
        self.leases.lock().map(|leases| leases.epoch).unwrap_or_default()
    }

    fn owner(&self, instance: &str) -> Result<Option<NodeAddress>> {
        let shard = shard_of(instance) as i32;
        self.call(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_opt(
                    "SELECT s.owner, n.address FROM phasegate_shards s LEFT JOIN phasegate_nodes n ON n.node = s.owner
                     WHERE s.shard = $1 AND s.owner IS NOT NULL AND s.expires > now()",
                    &[&shard],
                )
                .await
                .map_err(pg)?;
            Ok(row.map(|row| NodeAddress { node: row.get(0), address: row.get(1) }))
        })
    }

    fn cluster_secret(&self) -> Result<Option<String>> {
        self.call(|pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client.query_opt("SELECT secret FROM phasegate_cluster WHERE id = 1", &[]).await.map_err(pg)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn advertise(&self, address: &str) {
        if let Ok(mut leases) = self.leases.lock() {
            leases.address = Some(address.to_owned());
        }
    }

    fn cluster(&self) -> Option<ClusterStatus> {
        if !self.options.shared {
            return None;
        }
        let leases = self.leases.lock().ok()?;
        Some(ClusterStatus {
            node: self.node.clone(),
            shards: leases.held.len(),
            live_nodes: leases.live_nodes,
            renewals: leases.renewals,
            takeovers: leases.takeovers,
            released: leases.released,
            epoch: leases.epoch,
        })
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        // Dropping a runtime may block, which tokio forbids inside another
        // runtime (where the engine drops its store): let it wind down alone.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl PostgresStore {
    /// Opens the store in the PostgreSQL database at `url` (see
    /// [`PostgresBackend::open`]).
    pub fn open_url(url: &str, mode: OpenMode, options: PostgresOptions) -> Result<Self> {
        let backend = PostgresBackend::open(url, mode, options)?;
        let location = backend.location.clone();
        Self::start(backend, location)
    }
}

impl PostgresBackend {
    /// Connects to an existing store to read it, claiming nothing: what
    /// `store copy` reads from while nodes may still run (each scan is one
    /// consistent snapshot).
    pub fn open_reader(url: &str) -> Result<Self> {
        let backend = Self::connect(url, PostgresOptions::default())?;
        backend.check_schema(OpenMode::Existing)?;
        Ok(backend)
    }

    /// Whether the database holds no record but the format key.
    fn is_empty(&self) -> Result<bool> {
        self.call(|pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client.query_one("SELECT count(*) FROM phasegate_kv WHERE k <> $1", &[&crate::keys::FORMAT]).await.map_err(pg)?;
            Ok(row.get::<_, i64>(0) == 0)
        })
    }
}

/// Copies the whole store at `from` into `to` (each a sled data directory or
/// a `postgres://` URL): how a team moves its embedded store into a shared
/// database, or back. The target must hold no store (a new directory, or a
/// database with no phasegate records), and no node may run on it: the copy
/// holds every lease of a PostgreSQL target while it writes. A PostgreSQL
/// source is read in one consistent snapshot, so nodes may keep running on it.
pub fn copy(from: &str, to: &str) -> Result<crate::BackupReport> {
    use crate::backend::SledBackend;
    enum Source {
        Sled(SledBackend),
        Postgres(PostgresBackend),
    }
    let source = if is_url(from) {
        Source::Postgres(PostgresBackend::open_reader(from)?)
    } else {
        Source::Sled(SledBackend::open(std::path::Path::new(from), OpenMode::Existing)?)
    };
    let source: &dyn Backend = match &source {
        Source::Sled(backend) => backend,
        Source::Postgres(backend) => backend,
    };
    if is_url(to) {
        let target = PostgresBackend::open(to, OpenMode::Create, PostgresOptions::default())?;
        let result = if target.is_empty()? {
            crate::log::copy_records(source, &target, target.location.clone())
        } else {
            Err(Error::Io(format!("{} already holds a phasegate store; copy into an empty database, never over a store", target.location)))
        };
        target.close();
        result
    } else {
        let dest = std::path::Path::new(to);
        if dest.exists() && std::fs::read_dir(dest).map_or(true, |mut entries| entries.next().is_some()) {
            return Err(Error::Io(format!("{to} already exists and is not empty; copy into a new directory, never over a store")));
        }
        let target = SledBackend::open(dest, OpenMode::Create)?;
        crate::log::copy_records(source, &target, to.to_owned())
    }
}
