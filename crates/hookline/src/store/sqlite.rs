//! The embedded SQLite store: WAL mode, `synchronous=FULL` (a 202 means the event is on disk).
//!
//! One writer thread owns the only writing connection and runs each operation — a whole
//! transaction — as a single job; reads run on a small pool of read-only connections on tokio's
//! blocking threads. An operation therefore costs one thread hand-off, not one per statement:
//! with per-statement hand-offs, context switches were the largest cost in the profiles.

use super::claim::{self, Candidate};
use super::publish_plan::{due_at, Acceptance, PublishPlan, Targets};
use super::rows::{self, sqlite_rows, *};
use super::*;
use anyhow::Context;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use tokio::sync::oneshot;

pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_subscription_queues.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_routing_tokens.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_global_due_index.sql"),
    ),
];
/// Read connections kept open for reuse.
const READERS: usize = 4;
/// Page cache of the writer connection, in KiB.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
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
        StoreError::Other(e.into())
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == ErrorCode::ConstraintViolation
            && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

fn open_connection(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
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
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // The writer walks the delivery indexes on every job; with the default 2 MiB cache a
        // large backlog turned each lookup into page reads (drain of 1M pending fell to ~4k/s).
        // Pages are only allocated as touched, so a small store stays small.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn candidate(r: &rusqlite::Row<'_>) -> rusqlite::Result<Candidate> {
    Ok(Candidate::from((r.get(0)?, r.get(1)?, r.get(2)?)))
}

/// The oldest due rows of each subscription with room, up to its room (see [`claim`]).
fn queue_heads(
    c: &Connection,
    now: i64,
    capacity: &Capacity<'_>,
    limit: usize,
) -> rusqlite::Result<Vec<Candidate>> {
    let mut oldest = c.prepare_cached(
        "SELECT next_attempt_at, id, subscription_id FROM deliveries \
         WHERE state = 'pending' AND subscription_id = ?1 AND next_attempt_at <= ?2 \
         ORDER BY next_attempt_at LIMIT ?3",
    )?;
    let mut heads = Vec::new();
    for (sub, first_due) in pending_queues(c)? {
        let room = capacity.room(&sub).min(limit);
        if first_due <= now && room > 0 {
            for row in oldest.query_map(params![sub.as_str(), now, room as i64], candidate)? {
                heads.push(row?);
            }
        }
    }
    Ok(heads)
}

/// Each subscription with pending deliveries, with its earliest `next_attempt_at`: a loose scan
/// of `deliveries_due`, one index probe per subscription however long its queue.
fn pending_queues(c: &Connection) -> rusqlite::Result<Vec<(SubscriptionId, i64)>> {
    let mut next_queue = c.prepare_cached(
        "SELECT subscription_id, next_attempt_at FROM deliveries \
         WHERE state = 'pending' AND subscription_id > ?1 \
         ORDER BY subscription_id, next_attempt_at LIMIT 1",
    )?;
    let mut queues: Vec<(SubscriptionId, i64)> = Vec::new();
    loop {
        let after = queues.last().map_or("", |(sub, _)| sub.as_str());
        match next_queue
            .query_row([after], |r| {
                Ok((
                    SubscriptionId::from_stored(r.get::<_, String>(0)?),
                    r.get(1)?,
                ))
            })
            .optional()?
        {
            Some(queue) => queues.push(queue),
            None => return Ok(queues),
        }
    }
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    anyhow::ensure!(
        current <= known,
        "the database schema is version {current}, newer than this hookline understands ({known}); upgrade hookline"
    );
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )?;
        tx.commit()?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}

/// Held by a serving process for as long as it serves a SQLite file. The store keeps state
/// that is only right with one process per file (the fan-out cache, the claim bookkeeping), so a
/// second `hookline serve` on the same file is refused instead of quietly double-sending.
pub struct ServeLock {
    _file: std::fs::File,
}

impl ServeLock {
    pub fn acquire(db_path: &Path) -> anyhow::Result<ServeLock> {
        let dir = db_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        // One lock per database file, however the path to it is spelled (relative, symlinks).
        let db_path = std::fs::canonicalize(db_path).unwrap_or_else(|_| {
            std::fs::canonicalize(dir)
                .unwrap_or_else(|_| dir.to_owned())
                .join(db_path.file_name().unwrap_or_default())
        });
        let mut lock_path = db_path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(ServeLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another hookline process is serving {} (SQLite takes one process per database \
                 file; run several nodes on PostgreSQL)",
                db_path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", lock_path.display()))
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
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
                let opened = open_connection(&writer_path, false)
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
                // Ends when every sender (the store) is gone.
                while let Ok(job) = inbox.recv() {
                    // A panicking job fails its own caller (its reply channel is dropped) and
                    // must not take the writer down with it.
                    let run = std::panic::AssertUnwindSafe(|| job(&mut conn));
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!(
                            "a SQLite write job panicked; its transaction was rolled back"
                        );
                    }
                }
            })
            .context("starting the SQLite writer thread")?;
        ready_rx.await.context("SQLite writer thread died")??;
        Ok(SqliteStore {
            jobs,
            readers: Arc::default(),
            path,
            fan_out_cache: Mutex::default(),
        })
    }

    /// Called after a subscription write commits.
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
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
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
        tokio::task::spawn_blocking(move || {
            let conn = readers.lock().expect("not poisoned").pop();
            let conn = match conn {
                Some(c) => c,
                None => open_connection(&path, true)?,
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

fn load_subscriptions(
    conn: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
    with_secret: bool,
) -> StoreResult<Vec<SubscriptionRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(args, |r| sqlite_rows::subscription(r, with_secret))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn existing_url_owner(
    tx: &Transaction<'_>,
    partner_id: &PartnerId,
    url: &str,
) -> StoreResult<StoreError> {
    let existing_id: String = tx.query_row(
        "SELECT id FROM subscriptions WHERE partner_id = ?1 AND target_url = ?2 AND deleted_at IS NULL",
        params![partner_id.as_str(), url],
        |r| r.get(0),
    )?;
    Ok(StoreError::DuplicateTargetUrl {
        existing_id: SubscriptionId::from_stored(existing_id),
    })
}

fn insert_partner(tx: &Transaction<'_>, p: &Partner) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO partners (id, name, created_at) VALUES (?1, ?2, ?3)",
        params![p.id.as_str(), p.name, p.created_at.as_micros()],
    )?;
    Ok(())
}

fn insert_api_key(tx: &Transaction<'_>, k: &ApiKeyRecord) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO api_keys (id, partner_id, name, key_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            k.id.as_str(),
            k.partner_id.as_str(),
            k.name,
            k.hash.as_bytes(),
            k.created_at.as_micros()
        ],
    )?;
    Ok(())
}

/// Inserts the plan's new events; for each event in the batch, what the insert found.
fn insert_events(
    tx: &Transaction<'_>,
    plan: &PublishPlan,
    now: Timestamp,
) -> StoreResult<Vec<Option<Acceptance>>> {
    let mut insert_event = tx.prepare_cached(
        "INSERT INTO events (partner_id, event_id, event_type, phone_number, created_at, \
         trace_id, data, deliveries, accepted_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (partner_id, event_id) DO NOTHING RETURNING seq",
    )?;
    let mut existing =
        tx.prepare_cached("SELECT deliveries FROM events WHERE partner_id = ?1 AND event_id = ?2")?;
    let mut accepted = vec![None; plan.events().len()];
    for (i, e, deliveries) in plan.new_events() {
        let seq: Option<i64> = insert_event
            .query_row(
                params![
                    e.partner_id.as_str(),
                    e.event_id.as_str(),
                    e.event_type.as_str(),
                    e.phone_number.as_ref().map(|p| p.as_str()),
                    e.created_at.as_str(),
                    e.trace_id.as_str(),
                    e.data,
                    deliveries,
                    now.as_micros()
                ],
                |r| r.get(0),
            )
            .optional()?;
        accepted[i] = Some(match seq {
            Some(seq) => Acceptance::New { seq },
            None => Acceptance::Before {
                deliveries: existing
                    .query_row(params![e.partner_id.as_str(), e.event_id.as_str()], |r| {
                        r.get(0)
                    })?,
            },
        });
    }
    Ok(accepted)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn admin_token_hash(&self) -> StoreResult<Option<ApiKeyHash>> {
        self.read(|c| {
            let v: Option<Vec<u8>> = c
                .query_row(
                    "SELECT value FROM settings WHERE key = 'admin_token_hash'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(v.and_then(|b| ApiKeyHash::from_bytes(&b)))
        })
        .await
    }

    async fn is_fresh(&self) -> StoreResult<bool> {
        self.write(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM partners", [], |r| r.get(0))?;
            Ok(n == 0)
        })
        .await
    }

    async fn bootstrap(
        &self,
        admin_hash: Option<&ApiKeyHash>,
        partner: &Partner,
        key: &ApiKeyRecord,
    ) -> StoreResult<()> {
        let (hash, partner, key) = (admin_hash.cloned(), partner.clone(), key.clone());
        self.write(move |c| {
            let tx = c.transaction()?;
            if let Some(hash) = hash {
                tx.execute(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES ('admin_token_hash', ?1)",
                    [hash.as_bytes()],
                )?;
            }
            insert_partner(&tx, &partner)?;
            insert_api_key(&tx, &key)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn create_partner(&self, partner: &Partner) -> StoreResult<()> {
        let partner = partner.clone();
        self.write(move |c| {
            let tx = c.transaction()?;
            insert_partner(&tx, &partner)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn list_partners(&self) -> StoreResult<Vec<Partner>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name, created_at FROM partners ORDER BY created_at, id",
            )?;
            let rows = stmt
                .query_map([], sqlite_rows::partner)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn partner_exists(&self, partner_id: &PartnerId) -> StoreResult<bool> {
        let id = partner_id.as_str().to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT 1 FROM partners WHERE id = ?1")?
                .exists([id])?)
        })
        .await
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let key = key.clone();
        self.write(move |c| {
            let tx = c.transaction()?;
            insert_api_key(&tx, &key)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        partner_id: &PartnerId,
        key_id: &ApiKeyId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (partner_id, key_id) = (partner_id.clone(), key_id.clone());
        let now = now.as_micros();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND partner_id = ?3 AND revoked_at IS NULL",
                params![now, key_id.as_str(), partner_id.as_str()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn partner_for_key(&self, hash: &ApiKeyHash) -> StoreResult<Option<PartnerId>> {
        let hash = hash.clone();
        self.read(move |c| {
            let id: Option<String> = c
                .prepare_cached(
                    "SELECT partner_id FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
                )?
                .query_row([hash.as_bytes()], |r| r.get(0))
                .optional()?;
            Ok(id.map(PartnerId::from_stored))
        })
        .await
    }

    async fn insert_subscription(&self, new: &NewSubscription) -> StoreResult<()> {
        let s = new.subscription.clone();
        let secret = new.signing_secret.clone();
        let result = self.write(move |c| {
            let tx = c.transaction()?;
            let res = tx.execute(
                "INSERT INTO subscriptions (id, partner_id, target_url, subscribed_events, phone_numbers, \
                 is_active, signing_secret, routing_id_header, routing_key_header, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    s.id.as_str(),
                    s.partner_id.as_str(),
                    s.target_url.as_str(),
                    events_column(&s),
                    phones_column(&s.phone_numbers),
                    s.is_active,
                    secret,
                    header_column(&s.routing_id_header),
                    header_column(&s.routing_key_header),
                    s.created_at.as_micros(),
                    s.updated_at.as_micros()
                ],
            );
            match res {
                Err(e) if is_unique_violation(&e) => {
                    Err(existing_url_owner(&tx, &s.partner_id, s.target_url.as_str())?)
                }
                Err(e) => Err(e.into()),
                Ok(_) => {
                    tx.commit()?;
                    Ok(())
                }
            }
        })
        .await;
        self.subscriptions_changed();
        result
    }

    async fn list_subscriptions(&self, partner_id: &PartnerId) -> StoreResult<Vec<Subscription>> {
        let partner_id = partner_id.as_str().to_owned();
        self.read(move |c| {
            let rows = load_subscriptions(
                c,
                &format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
                     WHERE partner_id = ?1 AND deleted_at IS NULL ORDER BY created_at, id"
                ),
                &[&partner_id],
                false,
            )?;
            Ok(rows::subscriptions(rows)?)
        })
        .await
    }

    async fn get_subscription(
        &self,
        partner_id: &PartnerId,
        id: &SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let (partner_id, id) = (partner_id.as_str().to_owned(), id.as_str().to_owned());
        self.read(move |c| {
            let rows = load_subscriptions(
                c,
                &format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
                     WHERE partner_id = ?1 AND id = ?2 AND deleted_at IS NULL"
                ),
                &[&partner_id, &id],
                false,
            )?;
            Ok(rows
                .into_iter()
                .next()
                .map(SubscriptionRow::into_domain)
                .transpose()?)
        })
        .await
    }

    async fn update_subscription(
        &self,
        s: &Subscription,
        read_updated_at: Timestamp,
        forget_routing_tokens: bool,
    ) -> StoreResult<UpdateResult> {
        let s = s.clone();
        let read_updated_at = read_updated_at.as_micros();
        let result = self.write(move |c| {
            let tx = c.transaction()?;
            let res = tx.execute(
                "UPDATE subscriptions SET target_url = ?1, subscribed_events = ?2, phone_numbers = ?3, \
                 is_active = ?4, routing_id_header = ?5, routing_key_header = ?6, updated_at = ?7 \
                 WHERE partner_id = ?8 AND id = ?9 AND deleted_at IS NULL AND updated_at = ?10",
                params![
                    s.target_url.as_str(),
                    events_column(&s),
                    phones_column(&s.phone_numbers),
                    s.is_active,
                    header_column(&s.routing_id_header),
                    header_column(&s.routing_key_header),
                    s.updated_at.as_micros(),
                    s.partner_id.as_str(),
                    s.id.as_str(),
                    read_updated_at
                ],
            );
            match res {
                Err(e) if is_unique_violation(&e) => {
                    Err(existing_url_owner(&tx, &s.partner_id, s.target_url.as_str())?)
                }
                Err(e) => Err(e.into()),
                Ok(1) => {
                    if forget_routing_tokens {
                        tx.execute(
                            "DELETE FROM routing_tokens WHERE subscription_id = ?1",
                            [s.id.as_str()],
                        )?;
                    }
                    tx.commit()?;
                    Ok(UpdateResult::Updated)
                }
                Ok(_) => {
                    let live: bool = tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM subscriptions \
                         WHERE partner_id = ?1 AND id = ?2 AND deleted_at IS NULL)",
                        params![s.partner_id.as_str(), s.id.as_str()],
                        |r| r.get(0),
                    )?;
                    Ok(if live {
                        UpdateResult::Stale
                    } else {
                        UpdateResult::Gone
                    })
                }
            }
        })
        .await;
        self.subscriptions_changed();
        result
    }

    async fn delete_subscription(
        &self,
        partner_id: &PartnerId,
        id: &SubscriptionId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (partner_id, id) = (partner_id.as_str().to_owned(), id.as_str().to_owned());
        let now = now.as_micros();
        let result = self
            .write(move |c| {
                let tx = c.transaction()?;
                let n = tx.execute(
                    "UPDATE subscriptions SET deleted_at = ?1, is_active = 0, updated_at = ?1 \
                 WHERE partner_id = ?2 AND id = ?3 AND deleted_at IS NULL",
                    params![now, partner_id, id],
                )?;
                if n == 1 {
                    tx.execute(
                        "DELETE FROM routing_tokens WHERE subscription_id = ?1",
                        [&id],
                    )?;
                }
                tx.commit()?;
                Ok(n == 1)
            })
            .await;
        self.subscriptions_changed();
        result
    }
    async fn signing_secrets(&self) -> StoreResult<Vec<(SubscriptionId, String)>> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT id, signing_secret FROM subscriptions ORDER BY id")?
                    .query_map([], |r| {
                        Ok((
                            SubscriptionId::from_stored(r.get::<_, String>(0)?),
                            r.get(1)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<_>>()?,
            )
        })
        .await
    }

    async fn replace_signing_secret(
        &self,
        id: &SubscriptionId,
        old: &str,
        new: &str,
    ) -> StoreResult<bool> {
        let (id, old, new) = (id.as_str().to_owned(), old.to_owned(), new.to_owned());
        let result = self
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE subscriptions SET signing_secret = ?1 WHERE id = ?2 AND signing_secret = ?3",
                    params![new, id, old],
                )? == 1)
            })
            .await;
        self.subscriptions_changed();
        result
    }

    async fn plan_publish(&self, events: Vec<NewEvent>) -> StoreResult<PublishPlan> {
        // Subscriptions come from the cache or a reader, outside the write transaction: the
        // single writer only writes. A subscription changed in between is caught at claim time.
        let mut subs: HashMap<PartnerId, Targets> = HashMap::new();
        let mut missing: Vec<PartnerId> = Vec::new();
        let generation = {
            let cache = self.fan_out_cache.lock().expect("not poisoned");
            for p in PublishPlan::partners(&events) {
                match cache.by_partner.get(&p) {
                    Some(t) => {
                        subs.insert(p, t.clone());
                    }
                    None => missing.push(p),
                }
            }
            cache.generation
        };
        if !missing.is_empty() {
            let loaded: Vec<(PartnerId, Targets)> = self
                .read(move |c| {
                    let mut out = Vec::new();
                    for p in missing {
                        let rows = load_subscriptions(
                            c,
                            &format!(
                                "SELECT {FAN_OUT_COLUMNS} FROM subscriptions \
                                 WHERE partner_id = ?1 AND deleted_at IS NULL AND is_active = 1"
                            ),
                            &[&p.as_str()],
                            true,
                        )?;
                        out.push((p, rows::targets(rows)?));
                    }
                    Ok(out)
                })
                .await?;
            let mut cache = self.fan_out_cache.lock().expect("not poisoned");
            let fresh = cache.generation == generation;
            for (p, t) in loaded {
                if fresh {
                    cache.by_partner.insert(p.clone(), t.clone());
                }
                subs.insert(p, t);
            }
        }
        Ok(PublishPlan::new(events, &subs))
    }

    async fn commit_publish(
        &self,
        plan: PublishPlan,
        now: Timestamp,
        lease_until: Option<Timestamp>,
    ) -> StoreResult<PublishBatch> {
        self.write(move |c| {
            let tx = c.transaction()?;
            let accepted = insert_events(&tx, &plan, now)?;
            let rows = plan.rows(&accepted, lease_until.is_some());
            let ids = {
                let mut insert_delivery = tx.prepare_cached(
                    "INSERT INTO deliveries (event_seq, subscription_id, state, attempts, \
                     next_attempt_at, created_at, updated_at) VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?5) \
                     RETURNING id",
                )?;
                let mut ids = Vec::with_capacity(rows.len());
                for r in &rows {
                    let sub = plan.deliveries()[r.plan_index].subscription_id();
                    let due = due_at(r, now, lease_until).as_micros();
                    let id: i64 = insert_delivery.query_row(
                        params![r.seq, sub.as_str(), i64::from(r.leased), due, now.as_micros()],
                        |r| r.get(0),
                    )?;
                    ids.push(DeliveryId::from_stored(id));
                }
                ids
            };
            tx.commit()?;
            Ok(plan.finish(&accepted, &rows, &ids))
        })
        .await
    }

    async fn claim_due(&self, req: &ClaimRequest<'_>) -> StoreResult<Claimed> {
        let (now, lease_until) = (req.now.as_micros(), req.lease_until.as_micros());
        let limit = req.limit as usize;
        let cap = req.capacity.per_subscription_cap;
        let in_flight = req.capacity.in_flight.clone();
        self.write(move |c| {
            let capacity = Capacity {
                per_subscription_cap: cap,
                in_flight: &in_flight,
            };
            let tx = c.transaction()?;
            let head: Vec<Candidate> = tx
                .prepare_cached(
                    "SELECT next_attempt_at, id, subscription_id FROM deliveries \
                     WHERE state = 'pending' AND next_attempt_at <= ?1 \
                     ORDER BY next_attempt_at LIMIT ?2",
                )?
                .query_map(params![now, limit as i64], candidate)?
                .collect::<rusqlite::Result<_>>()?;
            let head_len = head.len();
            let first = claim::choose(head, &capacity, limit);
            let held_back = first.held_back;
            let mut claimed = first.ids;
            if claim::needs_queue_walk(head_len, claimed.len(), limit) {
                let heads = queue_heads(&tx, now, &capacity, limit)?;
                claimed = claim::choose(heads, &capacity, limit).ids;
            }
            if claimed.is_empty() {
                tx.commit()?;
                return Ok(Claimed::nothing(false, held_back));
            }
            let ids = serde_json::to_string(&claimed).expect("ints serialise");
            tx.prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?1, updated_at = ?2 \
                 WHERE id IN (SELECT value FROM json_each(?3))",
            )?
            .execute(params![lease_until, now, ids])?;
            let rows: Vec<DueRow> = tx
                .prepare_cached(&format!(
                    "SELECT {DUE_COLUMNS} \
                     FROM deliveries d JOIN events e ON e.seq = d.event_seq \
                          JOIN subscriptions s ON s.id = d.subscription_id \
                     WHERE d.id IN (SELECT value FROM json_each(?1)) ORDER BY d.next_attempt_at, d.id"
                ))?
                .query_map([&ids], sqlite_rows::due)?
                .collect::<rusqlite::Result<_>>()?;
            let more_due = rows.len() == limit;
            let (live, dead): (Vec<DueRow>, Vec<DueRow>) = rows.into_iter().partition(|r| r.live);
            {
                let mut cancel = tx.prepare_cached(
                    "UPDATE deliveries SET state = 'cancelled', updated_at = ?1 WHERE id = ?2",
                )?;
                for d in &dead {
                    cancel.execute(params![now, d.id])?;
                }
            }
            tx.commit()?;
            Ok(Claimed {
                more_due: more_due || !dead.is_empty(),
                deliveries: rows::due_deliveries(live)?,
                held_back,
            })
        })
        .await
    }

    async fn record_outcomes(
        &self,
        outcomes: &[Outcome],
        now: Timestamp,
    ) -> StoreResult<Vec<Deactivation>> {
        let now = now.as_micros();
        let deactivates = outcomes.iter().any(|o| o.deactivate_subscription.is_some());
        let outcomes = outcomes.to_vec();
        let result = self.write(move |c| {
            let tx = c.transaction()?;
            let mut deactivated = Vec::new();
            {
                // Fenced by attempt number: an outcome whose delivery was re-claimed meanwhile is skipped.
                let mut update = tx.prepare_cached(
                    "UPDATE deliveries SET state = ?1, next_attempt_at = COALESCE(?2, next_attempt_at), \
                     updated_at = ?3 WHERE id = ?4 AND attempts = ?5 AND state = 'pending'",
                )?;
                let mut log = tx.prepare_cached(
                    "INSERT OR IGNORE INTO delivery_attempts (delivery_id, attempt, started_at, \
                     duration_ms, status_code, error_kind, error_message, response_body) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                let mut deactivate = tx.prepare_cached(
                    "UPDATE subscriptions SET is_active = 0, updated_at = MAX(?1, updated_at + 1) \
                     WHERE id = ?2 AND target_url = ?3 AND is_active = 1 AND deleted_at IS NULL",
                )?;
                // Only while the subscription still uses the header the token came back in.
                let mut learn = tx.prepare_cached(
                    "INSERT INTO routing_tokens (subscription_id, chat_id, token, updated_at) \
                     SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM subscriptions \
                         WHERE id = ?1 AND routing_key_header = ?5 AND deleted_at IS NULL) \
                     ON CONFLICT (subscription_id, chat_id) \
                     DO UPDATE SET token = excluded.token, updated_at = excluded.updated_at",
                )?;
                for o in &outcomes {
                    let a = &o.attempt;
                    let (state, next_at) = next_state_columns(o.next);
                    let id = a.delivery_id.get();
                    if update.execute(params![state, next_at, now, id, a.attempt])? != 1 {
                        tracing::warn!(
                            delivery_id = id,
                            attempt = a.attempt,
                            "outcome fenced off: the delivery was re-claimed after its lease expired"
                        );
                        continue;
                    }
                    log.execute(params![
                        id,
                        a.attempt,
                        a.started_at.as_micros(),
                        a.duration_ms,
                        a.status_code,
                        a.error_kind.map(ErrorKind::as_str),
                        a.error_message,
                        a.response_body
                    ])?;
                    if let Some(d) = &o.deactivate_subscription {
                        if deactivate.execute(params![now, d.subscription_id.as_str(), d.target_url])? == 1 {
                            deactivated.push(d.clone());
                        }
                    }
                    if let Some(t) = &o.learned_routing_token {
                        learn.execute(params![
                            t.subscription_id.as_str(),
                            t.chat_id,
                            t.token,
                            now,
                            t.header.as_str()
                        ])?;
                    }
                }
            }
            tx.commit()?;
            Ok(deactivated)
        })
        .await;
        if deactivates {
            self.subscriptions_changed();
        }
        result
    }

    async fn next_due_after(&self, after: Timestamp) -> StoreResult<Option<Timestamp>> {
        self.read(move |c| {
            let first: Option<i64> = c
                .prepare_cached(
                    "SELECT MIN(next_attempt_at) FROM deliveries \
                     WHERE state = 'pending' AND next_attempt_at > ?1",
                )?
                .query_row([after.as_micros()], |r| r.get(0))?;
            Ok(first.map(Timestamp::from_micros))
        })
        .await
    }

    async fn routing_token(
        &self,
        subscription_id: &SubscriptionId,
        chat_id: &str,
    ) -> StoreResult<Option<String>> {
        let (subscription_id, chat_id) = (subscription_id.as_str().to_owned(), chat_id.to_owned());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT token FROM routing_tokens WHERE subscription_id = ?1 AND chat_id = ?2",
            )?
            .query_row(params![subscription_id, chat_id], |r| r.get(0))
            .optional()?)
        })
        .await
    }

    async fn delivery_counts(&self) -> StoreResult<DeliveryCounts> {
        self.read(|c| {
            let rows: Vec<(String, i64)> = c
                .prepare_cached("SELECT state, COUNT(*) FROM deliveries GROUP BY state")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(counts_from(rows))
        })
        .await
    }

    async fn attempts_for_event(
        &self,
        partner_id: &PartnerId,
        event_id: &EventId,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let (partner_id, event_id) = (partner_id.as_str().to_owned(), event_id.as_str().to_owned());
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} \
                 FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id \
                      JOIN events e ON e.seq = d.event_seq \
                 WHERE e.partner_id = ?1 AND e.event_id = ?2 ORDER BY a.delivery_id, a.attempt"
            ))?
            .query_map(params![partner_id, event_id], sqlite_rows::attempt)?
            .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}
