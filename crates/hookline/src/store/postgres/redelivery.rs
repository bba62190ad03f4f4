//! Redelivery on PostgreSQL: single retries, recoveries, and the runner's chunks
//! ([`recovery::advance`] over this backend's steps). Due times are on the database's clock;
//! work made due wakes every node (`NOTIFY`). Nodes advance different recoveries at once: a
//! chunk locks its recovery rows (`FOR UPDATE SKIP LOCKED`).

use hookline_core::{EventId, PartnerId, RecoveryId, SubscriptionId, Timestamp};
use sqlx::{Postgres, Transaction};

use super::{PostgresStore, WAKE_CHANNEL};
use crate::store::recovery::{
    self, retry_allowed, until_column, Progress, RecoveryRow, RecoverySteps, PROGRESS_COLUMNS,
    RECOVERY_COLUMNS,
};
use crate::store::{NewRecovery, Recovery, RetryOutcome, StoreResult};

/// Due now, with the retry schedule counting from the attempts made so far.
const REQUEUE: &str = "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, \
     attempt_base = attempts, updated_at = $1";

/// The active subscriptions a recovery covers, from `$3` on, in id order.
const LIVE_SUBSCRIPTIONS: &str = "SELECT id FROM subscriptions \
     WHERE partner_id = $1 AND ($2::text IS NULL OR id = $2) AND id >= $3 \
       AND is_active AND deleted_at IS NULL ORDER BY id";

type Tx = Transaction<'static, Postgres>;

async fn wake_all(tx: &mut Tx) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WAKE_CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// [`recovery::advance`]'s steps in one transaction.
struct Advance(Tx);

impl RecoverySteps for Advance {
    async fn running(&mut self, limit: usize) -> StoreResult<Vec<Progress>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PROGRESS_COLUMNS} FROM recoveries WHERE status = 'running' \
             ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED"
        ))
        .bind(limit as i64)
        .fetch_all(&mut *self.0)
        .await?)
    }

    async fn live_subscriptions(&mut self, p: &Progress, from: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(LIVE_SUBSCRIPTIONS)
            .bind(&p.partner_id)
            .bind(&p.subscription_id)
            .bind(from)
            .fetch_all(&mut *self.0)
            .await?)
    }

    async fn failed_keys(
        &mut self,
        subscription: &str,
        p: &Progress,
        after: (i64, i64),
        limit: usize,
    ) -> StoreResult<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT created_at, id FROM deliveries \
             WHERE subscription_id = $1 AND state = 'failed' \
               AND created_at >= $2 AND created_at < $3 AND (created_at, id) > ($4, $5) \
             ORDER BY created_at, id LIMIT $6",
        )
        .bind(subscription)
        .bind(p.since_at)
        .bind(p.until_at)
        .bind(after.0)
        .bind(after.1)
        .bind(limit as i64)
        .fetch_all(&mut *self.0)
        .await?)
    }

    async fn requeue(&mut self, ids: &[i64], now: i64) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let n = sqlx::query(&format!(
            "{REQUEUE} WHERE id = ANY($2) AND state = 'failed'"
        ))
        .bind(now)
        .bind(ids)
        .execute(&mut *self.0)
        .await?
        .rows_affected();
        if n > 0 {
            wake_all(&mut self.0).await?;
        }
        Ok(n)
    }

    async fn save(&mut self, p: &Progress, done: bool, now: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE recoveries SET queued = $2, cursor_subscription = $3, \
             cursor_created_at = $4, cursor_id = $5, updated_at = $6, \
             status = CASE WHEN $7 THEN 'completed' ELSE status END WHERE id = $1",
        )
        .bind(&p.id)
        .bind(p.queued)
        .bind(&p.cursor_subscription)
        .bind(p.cursor_created_at)
        .bind(p.cursor_id)
        .bind(now)
        .bind(done)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn commit(self) -> StoreResult<()> {
        Ok(self.0.commit().await?)
    }
}

impl PostgresStore {
    pub(super) async fn retry_delivery(
        &self,
        partner_id: &PartnerId,
        subscription_id: &SubscriptionId,
        event_id: &EventId,
        now: Timestamp,
    ) -> StoreResult<RetryOutcome> {
        let now = self.db_time().await?.db_micros(now);
        let mut tx = self.pool.begin().await?;
        let found: Option<(i64, String, bool)> = sqlx::query_as(
            "SELECT d.id, d.state, s.is_active AND s.deleted_at IS NULL \
             FROM events e JOIN deliveries d ON d.event_seq = e.seq \
                  JOIN subscriptions s ON s.id = d.subscription_id \
             WHERE e.partner_id = $1 AND e.event_id = $2 AND d.subscription_id = $3 \
             FOR UPDATE OF d",
        )
        .bind(partner_id.as_str())
        .bind(event_id.as_str())
        .bind(subscription_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Err(refused) = retry_allowed(found.as_ref().map(|f| (f.1.as_str(), f.2))) {
            // Explicitly: a dropped transaction is rolled back only when its connection is
            // next used, and until then the row stays locked (a claim would skip it).
            tx.rollback().await?;
            return Ok(refused);
        }
        let (id, _, _) = found.expect("allowed means found");
        sqlx::query(&format!("{REQUEUE} WHERE id = $2"))
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        wake_all(&mut tx).await?;
        tx.commit().await?;
        Ok(RetryOutcome::Requeued)
    }

    pub(super) async fn create_recovery(&self, new: &NewRecovery) -> StoreResult<Recovery> {
        // Compared with deliveries' `created_at`, which is on the database's clock.
        let db = self.db_time().await?;
        let on_db = |t: Timestamp| Timestamp::from_micros(db.db_micros(t));
        let (since, until) = (
            on_db(new.since).as_micros(),
            until_column(new.until.map(on_db)),
        );
        let mut tx = self.pool.begin().await?;
        let subscription = new.subscription_id.as_ref().map(SubscriptionId::as_str);
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM deliveries WHERE state = 'failed' \
               AND created_at >= $4 AND created_at < $5 \
               AND subscription_id IN ({LIVE_SUBSCRIPTIONS})"
        ))
        .bind(new.partner_id.as_str())
        .bind(subscription)
        .bind("")
        .bind(since)
        .bind(until)
        .fetch_one(&mut *tx)
        .await?;
        let row: RecoveryRow = sqlx::query_as(&format!(
            "INSERT INTO recoveries (id, partner_id, subscription_id, since_at, until_at, \
             status, total, cursor_created_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'running', $6, $4, $7, $7) RETURNING {RECOVERY_COLUMNS}"
        ))
        .bind(new.id.as_str())
        .bind(new.partner_id.as_str())
        .bind(subscription)
        .bind(since)
        .bind(until)
        .bind(total)
        .bind(new.now.as_micros())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    pub(super) async fn get_recovery(
        &self,
        partner_id: &PartnerId,
        id: &RecoveryId,
    ) -> StoreResult<Option<Recovery>> {
        let row: Option<RecoveryRow> = sqlx::query_as(&format!(
            "SELECT {RECOVERY_COLUMNS} FROM recoveries WHERE partner_id = $1 AND id = $2"
        ))
        .bind(partner_id.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Recovery::from))
    }

    pub(super) async fn advance_recoveries(
        &self,
        now: Timestamp,
        budget: usize,
    ) -> StoreResult<u64> {
        let now = self.db_time().await?.db_micros(now);
        let steps = Advance(self.pool.begin().await?);
        recovery::advance(steps, now, budget).await
    }
}
