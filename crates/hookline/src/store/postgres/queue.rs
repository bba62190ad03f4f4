//! The delivery queue on PostgreSQL: claims ([`claim::run`] over this backend's steps),
//! outcomes, and what the claim loop asks between claims. Publishing is in `publish.rs`.

use async_trait::async_trait;
use hookline_core::{ErrorKind, EventId, PartnerId, RecoveryId, SubscriptionId, Timestamp};
use sqlx::{Postgres, Transaction};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{listener, DbTime, PostgresStore};
use crate::store::claim::{self, Candidate, ClaimSteps};
use crate::store::rows::*;
use crate::store::{
    endpoint_health, AttemptRecord, Capacity, ClaimRequest, Claimed, Deactivation, DeliveryCounts,
    DeliveryQueue, DisablePolicy, LearnedRoutingToken, NewEvent, NewRecovery, Outcome,
    PublishBatch, PublishPlan, Recovery, RetryOutcome, StoreResult,
};

/// `queues(subscription_id, first_due)`: each subscription with pending deliveries and its
/// earliest `next_attempt_at`. A loose index scan of `deliveries_due` (PostgreSQL has no skip
/// scan): one probe per subscription, however long its queue.
const PENDING_QUEUES: &str = "queues(subscription_id, first_due) AS ( \
        (SELECT subscription_id, next_attempt_at FROM deliveries WHERE state = 'pending' \
         ORDER BY subscription_id, next_attempt_at LIMIT 1) \
      UNION ALL \
        SELECT n.subscription_id, n.next_attempt_at FROM queues, LATERAL ( \
            SELECT subscription_id, next_attempt_at FROM deliveries \
            WHERE state = 'pending' AND subscription_id > queues.subscription_id \
            ORDER BY subscription_id, next_attempt_at LIMIT 1) n)";
/// [`claim::run`]'s steps in one PostgreSQL transaction.
struct Claim(Transaction<'static, Postgres>);

fn candidates(rows: Vec<(i64, i64, String)>) -> Vec<Candidate> {
    rows.into_iter().map(Candidate::from).collect()
}

impl ClaimSteps for Claim {
    /// Read without locks (a full subscription's rows at the head would be locked for
    /// nothing); only the rows chosen are locked, by [`lease`](Self::lease).
    async fn head(&mut self, now: i64, limit: usize) -> StoreResult<Vec<Candidate>> {
        let head: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT next_attempt_at, id, subscription_id FROM deliveries \
             WHERE state = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut *self.0)
        .await?;
        Ok(candidates(head))
    }

    async fn queue_heads(
        &mut self,
        now: i64,
        capacity: &Capacity<'_>,
        limit: usize,
    ) -> StoreResult<Vec<Candidate>> {
        let heads: Vec<(i64, i64, String)> = sqlx::query_as(&format!(
            "WITH RECURSIVE {PENDING_QUEUES}, \
             with_room AS ( \
                SELECT subscription_id, \
                       COALESCE(($2::jsonb ->> subscription_id)::bigint, $3) AS room \
                FROM queues WHERE first_due <= $1) \
             SELECT d.next_attempt_at, d.id, q.subscription_id FROM with_room q, LATERAL ( \
                SELECT id, next_attempt_at FROM deliveries \
                WHERE state = 'pending' AND subscription_id = q.subscription_id \
                  AND next_attempt_at <= $1 \
                ORDER BY next_attempt_at LIMIT GREATEST(LEAST(q.room, $4), 0)) d"
        ))
        .bind(now)
        .bind(capacity.room_json())
        .bind(capacity.per_subscription_cap as i64)
        .bind(limit as i64)
        .fetch_all(&mut *self.0)
        .await?;
        Ok(candidates(heads))
    }

    /// SKIP LOCKED: nodes claiming at once take disjoint rows instead of waiting on each
    /// other; the state and due checks under the lock skip rows another node leased since
    /// they were read.
    async fn lease(&mut self, ids: &[i64], now: i64, lease_until: i64) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "WITH locked AS ( \
                SELECT id FROM deliveries WHERE id = ANY($1) AND state = 'pending' \
                  AND next_attempt_at <= $2 FOR UPDATE SKIP LOCKED) \
             UPDATE deliveries d SET attempts = d.attempts + 1, next_attempt_at = $3, updated_at = $2 \
             FROM locked WHERE d.id = locked.id RETURNING d.id",
        )
        .bind(ids)
        .bind(now)
        .bind(lease_until)
        .fetch_all(&mut *self.0)
        .await?)
    }

    async fn load(&mut self, ids: &[i64]) -> StoreResult<Vec<DueRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DUE_COLUMNS} \
             FROM deliveries d JOIN events e ON e.seq = d.event_seq \
                  JOIN subscriptions s ON s.id = d.subscription_id \
             WHERE d.id = ANY($1) ORDER BY d.next_attempt_at, d.id"
        ))
        .bind(ids)
        .fetch_all(&mut *self.0)
        .await?)
    }

    async fn cancel(&mut self, ids: &[i64], now: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE deliveries SET state = 'cancelled', updated_at = $1 WHERE id = ANY($2)",
        )
        .bind(now)
        .bind(ids)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn commit(self) -> StoreResult<()> {
        Ok(self.0.commit().await?)
    }
}

#[async_trait]
impl DeliveryQueue for PostgresStore {
    async fn watch_wakeups(
        &self,
        wake: Arc<Notify>,
        cancel: CancellationToken,
    ) -> StoreResult<Option<JoinHandle<()>>> {
        Ok(Some(listener::spawn(&self.url, wake, cancel).await?))
    }

    async fn plan_publish(&self, events: Vec<NewEvent>) -> StoreResult<PublishPlan> {
        PostgresStore::plan_publish(self, events).await
    }

    async fn commit_publish(
        &self,
        plan: PublishPlan,
        now: Timestamp,
        lease_until: Option<Timestamp>,
    ) -> StoreResult<PublishBatch> {
        PostgresStore::commit_publish(self, plan, now, lease_until).await
    }

    async fn claim_due(&self, req: &ClaimRequest<'_>) -> StoreResult<Claimed> {
        let db = self.db_time().await?;
        let (now, lease_until) = (db.db_micros(req.now), db.db_micros(req.lease_until));
        let steps = Claim(self.pool.begin().await?);
        let mut claimed = claim::run(steps, now, lease_until, req.limit as usize, &req.capacity)
            .await?
            .into_claimed()?;
        for d in &mut claimed.deliveries {
            d.accepted_at = db.node_time(d.accepted_at.as_micros());
        }
        Ok(claimed)
    }

    async fn record_outcomes_with(
        &self,
        outcomes: &[Outcome],
        now: Timestamp,
        policy: DisablePolicy,
    ) -> StoreResult<Vec<Deactivation>> {
        let db = self.db_time().await?;
        let mut tx = self.pool.begin().await?;
        let applied = apply_fenced(&mut tx, outcomes, db.db_micros(now), db).await?;
        let kept: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| applied.contains(&applied_key(o)))
            .collect();
        if kept.len() < outcomes.len() {
            tracing::warn!(
                skipped = outcomes.len() - kept.len(),
                "outcomes fenced off: their deliveries were re-claimed after the lease expired"
            );
        }
        log_attempts(&mut tx, &kept).await?;
        // Before the 410 deactivations: it locks the batch's subscription rows in id order.
        let mut changes = endpoint_health::changes(kept.iter().copied());
        let dead = super::health::apply(&mut tx, &mut changes, policy, now).await?;
        let mut deactivated = Vec::new();
        for o in kept {
            if let Some(t) = &o.learned_routing_token {
                learn_routing_token(&mut tx, t, db.db_micros(now)).await?;
            }
            if let Some(d) = &o.deactivate_subscription {
                // Subscription rows keep the API's clock (the node's), deliveries the database's.
                if deactivate(&mut tx, d, now).await? {
                    deactivated.push(d.clone());
                }
            }
        }
        tx.commit().await?;
        deactivated.extend(dead);
        Ok(deactivated)
    }

    async fn next_due_after(&self, after: Timestamp) -> StoreResult<Option<Timestamp>> {
        let db = self.db_time().await?;
        let first_due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries \
             WHERE state = 'pending' AND next_attempt_at > $1",
        )
        .bind(db.db_micros(after))
        .fetch_one(&self.pool)
        .await?;
        Ok(first_due.map(|at| db.node_time(at)))
    }

    async fn retry_delivery(
        &self,
        partner_id: &PartnerId,
        subscription_id: &SubscriptionId,
        event_id: &EventId,
        now: Timestamp,
    ) -> StoreResult<RetryOutcome> {
        PostgresStore::retry_delivery(self, partner_id, subscription_id, event_id, now).await
    }

    async fn create_recovery(&self, new: &NewRecovery) -> StoreResult<Recovery> {
        PostgresStore::create_recovery(self, new).await
    }

    async fn get_recovery(
        &self,
        partner_id: &PartnerId,
        id: &RecoveryId,
    ) -> StoreResult<Option<Recovery>> {
        PostgresStore::get_recovery(self, partner_id, id).await
    }

    async fn advance_recoveries(&self, now: Timestamp, budget: usize) -> StoreResult<u64> {
        PostgresStore::advance_recoveries(self, now, budget).await
    }

    async fn delivery_counts(&self) -> StoreResult<DeliveryCounts> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        Ok(counts_from(rows))
    }
}

type Tx = Transaction<'static, Postgres>;

/// The delivery updates, fenced by attempt number: an outcome whose delivery was re-claimed
/// meanwhile is skipped. Returns the `(delivery id, attempt)` of those applied.
async fn apply_fenced(
    tx: &mut Tx,
    outcomes: &[Outcome],
    now: i64,
    db: DbTime,
) -> StoreResult<HashSet<(i64, i64)>> {
    let rows: Vec<_> = outcomes.iter().map(outcome_row).collect();
    let applied: Vec<(i64, i64)> = sqlx::query_as(
        "UPDATE deliveries d SET state = o.state, \
                next_attempt_at = COALESCE(o.next_at, d.next_attempt_at), updated_at = $5 \
         FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[]) AS o(id, attempt, state, next_at) \
         WHERE d.id = o.id AND d.attempts = o.attempt AND d.state = 'pending' \
         RETURNING d.id, d.attempts",
    )
    .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.3.map(|at| db.db_micros(Timestamp::from_micros(at))))
            .collect::<Vec<_>>(),
    )
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    Ok(applied.into_iter().collect())
}

async fn log_attempts(tx: &mut Tx, kept: &[&Outcome]) -> StoreResult<()> {
    if kept.is_empty() {
        return Ok(());
    }
    let kept: Vec<&AttemptRecord> = kept.iter().map(|o| &o.attempt).collect();
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, \
         status_code, error_kind, error_message, response_body) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], \
                              $5::bigint[], $6::text[], $7::text[], $8::text[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(kept.iter().map(|a| a.delivery_id.get()).collect::<Vec<_>>())
    .bind(kept.iter().map(|a| a.attempt as i64).collect::<Vec<_>>())
    .bind(
        kept.iter()
            .map(|a| a.started_at.as_micros())
            .collect::<Vec<_>>(),
    )
    .bind(kept.iter().map(|a| a.duration_ms).collect::<Vec<_>>())
    .bind(
        kept.iter()
            .map(|a| a.status_code.map(i64::from))
            .collect::<Vec<_>>(),
    )
    .bind(
        kept.iter()
            .map(|a| a.error_kind.map(ErrorKind::as_str))
            .collect::<Vec<_>>(),
    )
    .bind(
        kept.iter()
            .map(|a| a.error_message.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        kept.iter()
            .map(|a| a.response_body.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores a routing token only while the subscription still uses the header it came back in.
async fn learn_routing_token(tx: &mut Tx, t: &LearnedRoutingToken, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO routing_tokens (subscription_id, chat_id, token, updated_at) \
         SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM subscriptions \
             WHERE id = $1 AND routing_key_header = $5 AND deleted_at IS NULL \
             FOR SHARE) \
         ON CONFLICT (subscription_id, chat_id) \
         DO UPDATE SET token = EXCLUDED.token, updated_at = EXCLUDED.updated_at",
    )
    .bind(t.subscription_id.as_str())
    .bind(&t.chat_id)
    .bind(&t.token)
    .bind(now)
    .bind(t.header.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// True when this call deactivated the subscription (still active, still at that target).
async fn deactivate(tx: &mut Tx, d: &Deactivation, node_now: Timestamp) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE subscriptions SET is_active = FALSE, updated_at = GREATEST($1, updated_at + 1) \
         WHERE id = $2 AND target_url = $3 AND is_active AND deleted_at IS NULL",
    )
    .bind(node_now.as_micros())
    .bind(d.subscription_id.as_str())
    .bind(&d.target_url)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
