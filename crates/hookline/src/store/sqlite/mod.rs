//! The embedded SQLite store: WAL mode, `synchronous=FULL` (a 202 means the event is on disk).
//!
//! One writer thread owns the only writing connection and runs each operation — a whole
//! transaction — as a single job; reads run on a small pool of read-only connections on tokio's
//! blocking threads. An operation therefore costs one thread hand-off, not one per statement:
//! with per-statement hand-offs, context switches were the largest cost in the profiles. The hot
//! jobs (publish, outcomes, claim) queued together share one transaction and one fsync
//! (`writer.rs`).

mod attempts;
mod health;
mod housekeeping;
mod partners;
mod portal;
mod publish;
mod queue;
mod redelivery;
mod rows;
mod serve_lock;
mod subscriptions;
mod writer;

/// The delivery log's key read (its query plan is checked by the test suite).
pub use attempts::KEYS_SQL as LOG_KEYS_SQL;
pub use serve_lock::ServeLock;

use anyhow::Context;
use async_trait::async_trait;
use hookline_core::PartnerId;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::oneshot;

use super::migrate::{self, DataStep, MigrationSteps, UrlRow};
use super::publish_plan::Targets;
use super::steps::run_ready;
use super::{Store, StoreError, StoreResult};

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../../migrations/sqlite/0002_subscription_queues.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/sqlite/0003_routing_tokens.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/sqlite/0004_global_due_index.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/sqlite/0005_target_url_key.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/sqlite/0006_write_probe.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/sqlite/0007_portal_sessions.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/sqlite/0008_event_data_v2025.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/sqlite/0009_rotation_and_endpoint_health.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/sqlite/0010_delivery_log.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/sqlite/0011_retention.sql"),
    ),
    (
        12,
        include_str!("../../../migrations/sqlite/0012_portal_session_credential.sql"),
    ),
];
/// Size of the readiness write: about one publish group of small events.
const PROBE_BYTES: i64 = 64 * 1024;
/// Read connections kept open for reuse.
const READERS: usize = 4;
use writer::Job;

pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
    /// The writer's page cache bound (MiB); readers open with less.
    cache_mib: u32,
    /// Each partner's active subscriptions as publish needs them. Every subscription write goes
    /// through this store (one process per SQLite file), which clears the cache, so it is never
    /// stale; it saves a read per publish.
    fan_out_cache: Mutex<FanOutCache>,
}

#[derive(Default)]
struct FanOutCache {
    /// Bumped after every subscription write commits: a read that raced a write is not cached.
    generation: u64,
    by_partner: HashMap<PartnerId, Targets>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::classify(e.into())
    }
}

/// SQLite failures that mean "cannot write now, retry later": the disk or the database file is
/// full (`SQLITE_FULL`), read-only (`SQLITE_READONLY`), failing I/O (`SQLITE_IOERR`), cannot be
/// opened (`SQLITE_CANTOPEN`), or still locked after the busy timeout (`SQLITE_BUSY`/`LOCKED`).
pub(crate) fn is_unavailable(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if matches!(
        f.code,
        ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
    ))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == ErrorCode::ConstraintViolation
            && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// `cache_mib`: the writer's page cache bound (a reader's is smaller).
fn open_connection(path: &Path, read_only: bool, cache_mib: u32) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if !read_only {
        // Only takes effect on a file with no tables yet (a new store), so it comes first:
        // retention's freed pages can then be given back (see housekeeping.rs).
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // The writer's working set is small (the right edges of the tables and indexes, the
        // head of the due queue), so a few MiB hold it even for a 1,000,000 backlog; a bigger
        // cache only grew the peaks (config.rs, DEFAULT_SQLITE_CACHE_MIB). Pages are only
        // allocated as touched, so a small store stays small.
        conn.pragma_update(None, "cache_size", -i64::from(cache_mib) * 1024)?;
    } else {
        // Readers run short lookups: SQLite's default 2 MiB, less if the writer gets less.
        conn.pragma_update(None, "cache_size", -(i64::from(cache_mib) * 256).min(2048))?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

struct Migrations<'c>(&'c mut Connection);

impl MigrationSteps for Migrations<'_> {
    async fn current_version(&mut self) -> anyhow::Result<i64> {
        self.0.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
        )?;
        Ok(self.0.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get(0),
        )?)
    }

    async fn apply(
        &mut self,
        version: i64,
        sql: &str,
        data: Option<DataStep>,
    ) -> anyhow::Result<()> {
        let tx = self.0.transaction()?;
        tx.execute_batch(sql)?;
        match data {
            Some(DataStep::TargetUrlKeys) => backfill_target_url_keys(&tx)?,
            None => {}
        }
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )?;
        tx.commit()?;
        Ok(())
    }
}

fn backfill_target_url_keys(tx: &rusqlite::Transaction) -> anyhow::Result<()> {
    let rows = tx
        .prepare(
            "SELECT id, partner_id, target_url, deleted_at IS NULL FROM subscriptions \
             ORDER BY created_at, id",
        )?
        .query_map([], |r| {
            Ok(UrlRow {
                id: r.get(0)?,
                partner_id: r.get(1)?,
                target_url: r.get(2)?,
                live: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut set = tx.prepare("UPDATE subscriptions SET target_url_key = ?1 WHERE id = ?2")?;
    for (row, key) in rows.iter().zip(migrate::target_url_keys(&rows)) {
        set.execute(rusqlite::params![key, row.id])?;
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    run_ready(migrate::run(&mut Migrations(conn), MIGRATIONS, "SQLite"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        Self::open_with_cache(path, crate::config::DEFAULT_SQLITE_CACHE_MIB).await
    }

    /// [`open`](Self::open), the writer's page cache bounded to `cache_mib` MiB.
    pub async fn open_with_cache(path: &Path, cache_mib: u32) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data directory {}", dir.display()))?;
        }
        let path = path.to_owned();
        let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<()>>();
        let (jobs, inbox) = mpsc::channel::<Job>();
        let writer_path = path.clone();
        std::thread::Builder::new()
            .name("hookline-sqlite-writer".into())
            .spawn(move || {
                let opened = open_connection(&writer_path, false, cache_mib)
                    .with_context(|| format!("opening SQLite database {}", writer_path.display()))
                    .and_then(|mut c| migrate(&mut c).map(|_| c));
                let mut conn = match opened {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                writer::run(&mut conn, &inbox);
            })
            .context("starting the SQLite writer thread")?;
        ready_rx.await.context("SQLite writer thread died")??;
        Ok(SqliteStore {
            jobs,
            readers: Arc::default(),
            path,
            cache_mib,
            fan_out_cache: Mutex::default(),
        })
    }

    /// Runs a subscription write on the writer thread, then drops the fan-out cache: the one
    /// way subscription rows are written, so the cache is never stale.
    async fn write_subscriptions<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let result = self.write(f).await;
        self.subscriptions_changed();
        result
    }

    fn subscriptions_changed(&self) {
        let mut cache = self.fan_out_cache.lock().expect("not poisoned");
        cache.generation += 1;
        cache.by_partner.clear();
    }

    /// Runs `f` on the writer thread. `f` is the whole transaction.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        let job = Job::Alone(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        }));
        self.submit(job, rx).await
    }

    /// Runs `f` on the writer thread inside a transaction it may share with other such jobs
    /// (see [`writer`]); answers once that transaction has committed. `f` must not begin or
    /// commit. `deferrable`: the commit may wait a few milliseconds for company.
    async fn write_shared<T: Send + 'static>(
        &self,
        deferrable: bool,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        let run: writer::SharedRun = Box::new(move |conn| {
            let result = conn.and_then(f);
            let ok = result.is_ok();
            let reply: writer::Reply = Box::new(move |committed| {
                let _ = tx.send(committed.and(result));
            });
            (ok, reply)
        });
        self.submit(Job::Shared { run, deferrable }, rx).await
    }

    async fn submit<T>(&self, job: Job, rx: oneshot::Receiver<StoreResult<T>>) -> StoreResult<T> {
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("SQLite writer thread stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("SQLite writer thread stopped"))?
    }

    /// Runs `f` on a read-only connection on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        let cache_mib = self.cache_mib;
        tokio::task::spawn_blocking(move || {
            let conn = readers.lock().expect("not poisoned").pop();
            let conn = match conn {
                Some(c) => c,
                None => open_connection(&path, true, cache_mib)?,
            };
            let result = f(&conn);
            let mut pool = readers.lock().expect("not poisoned");
            if pool.len() < READERS {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| anyhow::anyhow!("SQLite read task failed: {e}"))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn probe_write(&self) -> StoreResult<()> {
        // Replacing the row frees its pages and takes as many again, so every probe appends
        // about PROBE_BYTES to the WAL and fsyncs it: on a full disk that fails like a publish.
        let now = hookline_core::Timestamp::now().as_micros();
        self.write(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO write_probe (id, probed_at, filler) \
                 VALUES (1, ?1, zeroblob(?2))",
                rusqlite::params![now, PROBE_BYTES],
            )?;
            Ok(())
        })
        .await
    }
}
