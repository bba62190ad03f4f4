//! The PostgreSQL store, for several nodes sharing one database. PostgreSQL is the store and the
//! queue: claims use `FOR UPDATE SKIP LOCKED` in short transactions, and `NOTIFY` wakes the
//! dispatchers of every node when deliveries are committed.
//!
//! Due times and leases are on the database's clock: every method that reads or writes them
//! converts through one `DbTime` taken from `PostgresStore::db_time`.

mod attempts;
mod db_clock;
mod health;
mod housekeeping;
mod listener;
mod partners;
mod portal;
mod publish;
mod queue;
mod redelivery;
mod subscriptions;

/// The delivery log's key read (its query plan is checked by the test suite).
pub use attempts::KEYS_SQL as LOG_KEYS_SQL;

use anyhow::Context;
use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, Executor};
use std::time::Duration;

use super::migrate::{self, DataStep, MigrationSteps, UrlRow};
use super::{Store, StoreResult};
use db_clock::{DbClock, DbTime};

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_subscription_queues.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/postgres/0003_routing_tokens.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/postgres/0004_global_due_index.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/postgres/0005_target_url_key.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/postgres/0006_write_probe.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/postgres/0007_portal_sessions.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/postgres/0008_event_data_v2025.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/postgres/0009_rotation_and_endpoint_health.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/postgres/0010_delivery_log.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/postgres/0011_retention.sql"),
    ),
    (
        12,
        include_str!("../../../migrations/postgres/0012_portal_session_credential.sql"),
    ),
];

/// Serialises migrations when several nodes start at once.
const MIGRATION_LOCK: i64 = 0x686f6f6b6c696e65; // "hookline"
/// A pooled connection idle this long is pinged before it is used again.
const IDLE_PING_AFTER: Duration = Duration::from_secs(1);
/// The `NOTIFY` channel that wakes every node's dispatcher.
const WAKE_CHANNEL: &str = "hookline_wake";

pub struct PostgresStore {
    pool: PgPool,
    url: String,
    clock: DbClock,
}

impl PostgresStore {
    pub async fn connect(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings a connection when it goes back to the pool and, by default, again when
            // it is taken out: two round trips per use, about 4 % of this process's CPU at E=1
            // (README, Performance). A connection back for less than a second passed its release
            // ping just now; only one idle longer (PostgreSQL restarted, a proxy's idle timeout)
            // is pinged before use.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_PING_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect(url)
            .await
            .context("connecting to PostgreSQL")?;
        migrate(&pool).await?;
        Ok(PostgresStore {
            pool,
            url: url.to_owned(),
            clock: DbClock::default(),
        })
    }

    /// The conversion to and from the database's clock, for one operation.
    async fn db_time(&self) -> StoreResult<DbTime> {
        self.clock.time(&self.pool).await
    }
}

// Boxed so the future's `Send` bound is checked here, not through every caller's generics.
fn migrate(pool: &PgPool) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let mut conn = pool.acquire().await?;
        let outcome = migrate_locked(&mut conn).await;
        if outcome.is_err() {
            // Closing the session releases its advisory lock.
            conn.close().await.ok();
        }
        outcome
    })
}

async fn migrate_locked(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    conn.execute(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})").as_str())
        .await?;
    migrate::run(&mut Migrations(conn), MIGRATIONS, "PostgreSQL").await?;
    conn.execute(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})").as_str())
        .await?;
    Ok(())
}

struct Migrations<'c>(&'c mut sqlx::PgConnection);

impl MigrationSteps for Migrations<'_> {
    async fn current_version(&mut self) -> anyhow::Result<i64> {
        self.0
            .execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .await?;
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                .fetch_one(&mut *self.0)
                .await?,
        )
    }

    async fn apply(
        &mut self,
        version: i64,
        sql: &str,
        data: Option<DataStep>,
    ) -> anyhow::Result<()> {
        let mut tx = self.0.begin().await?;
        // Without bind arguments this is the simple query protocol: the file's statements run
        // as one script.
        (&mut *tx).execute(sql).await?;
        match data {
            Some(DataStep::TargetUrlKeys) => backfill_target_url_keys(&mut tx).await?,
            None => {}
        }
        sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn backfill_target_url_keys(tx: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let rows: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT id, partner_id, target_url, deleted_at IS NULL FROM subscriptions \
         ORDER BY created_at, id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let rows: Vec<UrlRow> = rows
        .into_iter()
        .map(|(id, partner_id, target_url, live)| UrlRow {
            id,
            partner_id,
            target_url,
            live,
        })
        .collect();
    let keys = migrate::target_url_keys(&rows);
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    // One statement for all rows: a round trip per row would make the migration's time grow
    // with the network latency to the database.
    sqlx::query(
        "UPDATE subscriptions s SET target_url_key = k.key \
         FROM UNNEST($1::text[], $2::text[]) AS k(id, key) WHERE s.id = k.id",
    )
    .bind(ids)
    .bind(keys)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// PostgreSQL failures that mean "cannot write now, retry later", by SQLSTATE: the session
/// or server is read-only or a standby in recovery (`25006` read_only_sql_transaction), out of
/// disk or resources (class `53`: `53100` disk_full, `53200` out_of_memory, `53300`
/// too_many_connections), shutting down or starting (`57P01`–`57P03`), an I/O error (`58030`),
/// or the connection is lost (class `08`); and, without a SQLSTATE, a pool that cannot hand
/// out a connection or a broken socket.
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code == "25006"
                || code.starts_with("53")
                || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "58030")
                || code.starts_with("08")
        }),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn probe_write(&self) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO write_probe (id, probed_at) VALUES (1, now()) \
             ON CONFLICT (id) DO UPDATE SET probed_at = EXCLUDED.probed_at",
        )
        .execute(&self.pool)
        .await?;
        // That rewrite fits in the page the row is on, so it succeeds on a full disk too. A
        // truncated table is a new, empty file: writing a row to it must allocate a page, as a
        // publish must. Rolled back, so the file goes and the committed row stays.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '2s'")
            .execute(&mut *tx)
            .await?;
        sqlx::query("TRUNCATE write_probe")
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO write_probe (id, probed_at) VALUES (1, now())")
            .execute(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok(())
    }
}
