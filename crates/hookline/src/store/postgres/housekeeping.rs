//! Housekeeping on PostgreSQL, safe with any number of nodes: the gauges are one shared row
//! (`queue_stats`) that one node at a time recounts when it is stale, and purges are short
//! batches that only one node runs at a time, each under a transaction-scoped advisory lock
//! (two nodes never purge together, so they cannot deadlock over the same rows), with the
//! deliveries they remove locked in id order.

use async_trait::async_trait;
use hookline_core::Timestamp;
use sqlx::PgConnection;
use std::time::Duration;

use super::{DbTime, PostgresStore, MIGRATION_LOCK};
use crate::store::housekeeping::{before_cutoff, GONE_SUBSCRIPTIONS_WHERE};
use crate::store::{Housekeeping, Leftovers, PurgeBatch, PurgeRequest, StoreResult, StoreStats};

/// Held by the node recounting the gauges.
const STATS_LOCK: i64 = MIGRATION_LOCK + 1;
/// Held by the node running a purge batch.
const PURGE_LOCK: i64 = MIGRATION_LOCK + 2;

#[derive(sqlx::FromRow)]
struct StatsRow {
    sampled_at: i64,
    pending: i64,
    retrying: i64,
    due: i64,
    oldest_due_at: Option<i64>,
    subscriptions_active: i64,
    subscriptions_inactive: i64,
    size_bytes: i64,
}

impl StatsRow {
    fn into_stats(self, db: DbTime) -> StoreStats {
        StoreStats {
            sampled_at: db.node_time(self.sampled_at),
            pending: self.pending as u64,
            retrying: self.retrying as u64,
            due: self.due as u64,
            oldest_due_age: self.oldest_due_at.map_or(Duration::ZERO, |at| {
                Duration::from_micros(self.sampled_at.saturating_sub(at).max(0) as u64)
            }),
            subscriptions_active: self.subscriptions_active as u64,
            subscriptions_inactive: self.subscriptions_inactive as u64,
            size_bytes: self.size_bytes as u64,
        }
    }
}

async fn read_row(conn: &mut PgConnection) -> sqlx::Result<Option<StatsRow>> {
    sqlx::query_as("SELECT * FROM queue_stats WHERE id = 1")
        .fetch_optional(conn)
        .await
}

/// Counts everything as of `now` (database clock) and stores it as the shared sample.
async fn recount(conn: &mut PgConnection, now: i64) -> sqlx::Result<StatsRow> {
    sqlx::query_as(
        "INSERT INTO queue_stats \
         SELECT 1, $1, q.*, s.*, pg_database_size(current_database()) FROM \
           (SELECT COUNT(*), COUNT(*) FILTER (WHERE attempts > 0), \
                   COUNT(*) FILTER (WHERE next_attempt_at <= $1), \
                   MIN(next_attempt_at) FILTER (WHERE next_attempt_at <= $1) \
            FROM deliveries WHERE state = 'pending') q, \
           (SELECT COUNT(*) FILTER (WHERE is_active), COUNT(*) FILTER (WHERE NOT is_active) \
            FROM subscriptions WHERE deleted_at IS NULL) s \
         ON CONFLICT (id) DO UPDATE SET sampled_at = EXCLUDED.sampled_at, \
           pending = EXCLUDED.pending, retrying = EXCLUDED.retrying, due = EXCLUDED.due, \
           oldest_due_at = EXCLUDED.oldest_due_at, \
           subscriptions_active = EXCLUDED.subscriptions_active, \
           subscriptions_inactive = EXCLUDED.subscriptions_inactive, \
           size_bytes = EXCLUDED.size_bytes \
         RETURNING *",
    )
    .bind(now)
    .fetch_one(conn)
    .await
}

async fn try_lock(conn: &mut PgConnection, key: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(key)
        .fetch_one(conn)
        .await
}

const PURGE: &str = "\
    WITH locked AS ( \
        SELECT id, event_seq, state, updated_at FROM deliveries \
        WHERE event_seq = ANY($1) ORDER BY id FOR UPDATE), \
    kept AS (SELECT DISTINCT event_seq FROM locked WHERE state = 'pending' OR updated_at >= $2), \
    gone AS (SELECT seq FROM UNNEST($1::bigint[]) AS c(seq) \
             WHERE seq NOT IN (SELECT event_seq FROM kept)), \
    gone_deliveries AS (SELECT id FROM locked WHERE event_seq IN (SELECT seq FROM gone)), \
    da AS (DELETE FROM delivery_attempts \
           WHERE delivery_id IN (SELECT id FROM gone_deliveries) RETURNING 1), \
    dd AS (DELETE FROM deliveries WHERE id IN (SELECT id FROM gone_deliveries) RETURNING 1), \
    de AS (DELETE FROM events WHERE seq IN (SELECT seq FROM gone) RETURNING 1) \
    SELECT (SELECT COUNT(*) FROM de), (SELECT COUNT(*) FROM dd), (SELECT COUNT(*) FROM da)";

#[async_trait]
impl Housekeeping for PostgresStore {
    async fn sample_stats(&self, now: Timestamp, max_age: Duration) -> StoreResult<StoreStats> {
        let db = self.db_time().await?;
        let now = db.db_micros(now);
        let fresh = |row: &StatsRow| now - row.sampled_at < max_age.as_micros() as i64;
        let mut conn = self.pool.acquire().await?;
        let shared = read_row(&mut conn).await?;
        if let Some(row) = shared.filter(fresh) {
            return Ok(row.into_stats(db));
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        if !try_lock(&mut tx, STATS_LOCK).await? {
            // Another node is recounting: show the previous sample until its next turn.
            let previous = read_row(&mut tx).await?;
            tx.rollback().await?;
            return Ok(previous.map(|r| r.into_stats(db)).unwrap_or_default());
        }
        let row = match read_row(&mut tx).await?.filter(fresh) {
            Some(row) => row,
            None => recount(&mut tx, now).await?,
        };
        tx.commit().await?;
        Ok(row.into_stats(db))
    }

    async fn purge_batch(&self, req: &PurgeRequest) -> StoreResult<PurgeBatch> {
        let db = self.db_time().await?;
        let cutoff = db.db_micros(req.cutoff);
        let mut tx = self.pool.begin().await?;
        if !try_lock(&mut tx, PURGE_LOCK).await? {
            tx.rollback().await?;
            return Ok(PurgeBatch {
                busy: true,
                finished: true,
                next_after_seq: req.after_seq,
                ..PurgeBatch::default()
            });
        }
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT seq, accepted_at FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(req.after_seq)
        .bind(req.limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        let (old, finished) = before_cutoff(&rows, cutoff, req.limit);
        let candidates: Vec<i64> = rows[..old].iter().map(|r| r.0).collect();
        let (events, deliveries, attempts): (i64, i64, i64) = sqlx::query_as(PURGE)
            .bind(&candidates)
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(PurgeBatch {
            events: events as u64,
            deliveries: deliveries as u64,
            attempts: attempts as u64,
            next_after_seq: candidates.last().copied().unwrap_or(req.after_seq),
            finished,
            busy: false,
        })
    }

    async fn reclaim_space(&self, _max_pages: u32) -> StoreResult<u64> {
        Ok(0)
    }

    async fn purge_leftovers(&self, cutoff: Timestamp, limit: usize) -> StoreResult<Leftovers> {
        let cutoff = self.db_time().await?.db_micros(cutoff);
        let mut tx = self.pool.begin().await?;
        if !try_lock(&mut tx, PURGE_LOCK).await? {
            tx.rollback().await?;
            return Ok(Leftovers {
                busy: true,
                ..Leftovers::default()
            });
        }
        let gone = GONE_SUBSCRIPTIONS_WHERE.replace("{cutoff}", "$1");
        let ids: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT s.id FROM subscriptions s WHERE {gone} LIMIT $2"
        ))
        .bind(cutoff)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM routing_tokens WHERE subscription_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        let subscriptions = sqlx::query("DELETE FROM subscriptions WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let recoveries = sqlx::query(
            "DELETE FROM recoveries WHERE id IN (SELECT id FROM recoveries \
                 WHERE status = 'completed' AND updated_at < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(limit as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Leftovers {
            subscriptions,
            recoveries,
            busy: false,
        })
    }
}
