//! The delivery queue on SQLite: claims ([`claim::run`] over this backend's steps, on the
//! writer thread), outcomes, and what the claim loop asks between claims. Publishing is in
//! `publish.rs`.

use async_trait::async_trait;
use hookline_core::{ErrorKind, EventId, PartnerId, RecoveryId, SubscriptionId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};

use super::{rows as sqlite_rows, SqliteStore};
use crate::store::claim::{self, Candidate, ClaimSteps};
use crate::store::rows::*;
use crate::store::steps::run_ready;
use crate::store::{
    endpoint_health, Capacity, ClaimRequest, Claimed, Deactivation, DeliveryCounts, DeliveryQueue,
    DisablePolicy, NewEvent, NewRecovery, Outcome, PublishBatch, PublishPlan, Recovery,
    RetryOutcome, StoreResult,
};

fn candidate(r: &rusqlite::Row<'_>) -> rusqlite::Result<Candidate> {
    Ok(Candidate::from((r.get(0)?, r.get(1)?, r.get(2)?)))
}

/// [`claim::run`]'s steps in one SQLite transaction on the writer thread.
struct Claim<'c>(&'c Connection);

impl ClaimSteps for Claim<'_> {
    async fn head(&mut self, now: i64, limit: usize) -> StoreResult<Vec<Candidate>> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT next_attempt_at, id, subscription_id FROM deliveries \
                 WHERE state = 'pending' AND next_attempt_at <= ?1 \
                 ORDER BY next_attempt_at LIMIT ?2",
            )?
            .query_map(params![now, limit as i64], candidate)?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The oldest due rows of each subscription with room, up to its room.
    async fn queue_heads(
        &mut self,
        now: i64,
        capacity: &Capacity<'_>,
        limit: usize,
    ) -> StoreResult<Vec<Candidate>> {
        let c: &Connection = self.0;
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

    /// The single writer cannot lose a row to anyone: every chosen row is leased.
    async fn lease(&mut self, ids: &[i64], now: i64, lease_until: i64) -> StoreResult<Vec<i64>> {
        self.0
            .prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?1, updated_at = ?2 \
                 WHERE id IN (SELECT value FROM json_each(?3))",
            )?
            .execute(params![lease_until, now, json_ids(ids)])?;
        Ok(ids.to_vec())
    }

    async fn load(&mut self, ids: &[i64]) -> StoreResult<Vec<DueRow>> {
        Ok(self
            .0
            .prepare_cached(&format!(
                "SELECT {DUE_COLUMNS} \
                 FROM deliveries d JOIN events e ON e.seq = d.event_seq \
                      JOIN subscriptions s ON s.id = d.subscription_id \
                 WHERE d.id IN (SELECT value FROM json_each(?1)) ORDER BY d.next_attempt_at, d.id"
            ))?
            .query_map([json_ids(ids)], sqlite_rows::due)?
            .collect::<rusqlite::Result<_>>()?)
    }

    async fn cancel(&mut self, ids: &[i64], now: i64) -> StoreResult<()> {
        let mut cancel = self.0.prepare_cached(
            "UPDATE deliveries SET state = 'cancelled', updated_at = ?1 WHERE id = ?2",
        )?;
        for id in ids {
            cancel.execute(params![now, id])?;
        }
        Ok(())
    }

    /// The writer commits the transaction this claim shares (see `writer.rs`); the claimed
    /// deliveries are handed out only once it has.
    async fn commit(self) -> StoreResult<()> {
        Ok(())
    }
}

fn json_ids(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("ints serialise")
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

/// Writes a batch of outcomes in one transaction (see [`DeliveryQueue::record_outcomes`]).
fn write_outcomes(
    tx: &Connection,
    outcomes: &[Outcome],
    now: i64,
    policy: DisablePolicy,
) -> StoreResult<Vec<Deactivation>> {
    let mut deactivated = Vec::new();
    let mut applied: Vec<&Outcome> = Vec::with_capacity(outcomes.len());
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
        for o in outcomes {
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
            applied.push(o);
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
                if deactivate.execute(params![now, d.subscription_id.as_str(), d.target_url])? == 1
                {
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
    let changes = endpoint_health::changes(applied);
    deactivated.extend(super::health::apply(tx, &changes, policy, now)?);
    Ok(deactivated)
}

#[async_trait]
impl DeliveryQueue for SqliteStore {
    async fn plan_publish(&self, events: Vec<NewEvent>) -> StoreResult<PublishPlan> {
        SqliteStore::plan_publish(self, events).await
    }

    async fn commit_publish(
        &self,
        plan: PublishPlan,
        now: Timestamp,
        lease_until: Option<Timestamp>,
    ) -> StoreResult<PublishBatch> {
        SqliteStore::commit_publish(self, plan, now, lease_until).await
    }

    async fn claim_due(&self, req: &ClaimRequest<'_>) -> StoreResult<Claimed> {
        let (now, lease_until) = (req.now.as_micros(), req.lease_until.as_micros());
        let limit = req.limit as usize;
        let cap = req.capacity.per_subscription_cap;
        let in_flight = req.capacity.in_flight.clone();
        let limits = req.capacity.limits.clone();
        self.write_shared(false, move |c| {
            let capacity = Capacity {
                per_subscription_cap: cap,
                in_flight: &in_flight,
                limits: &limits,
            };
            let steps = Claim(c);
            run_ready(claim::run(steps, now, lease_until, limit, &capacity))
        })
        .await?
        .into_claimed()
    }

    async fn record_outcomes_with(
        &self,
        outcomes: &[Outcome],
        now: Timestamp,
        policy: DisablePolicy,
    ) -> StoreResult<Vec<Deactivation>> {
        let now = now.as_micros();
        let outcomes = outcomes.to_vec();
        let deactivated = self
            // Deferrable: outcomes wait for nobody, so they share the next publish's commit.
            .write_shared(true, move |c| write_outcomes(c, &outcomes, now, policy))
            .await?;
        // A deactivation (410, dead endpoint) changes what publish fans out to.
        if !deactivated.is_empty() {
            self.subscriptions_changed();
        }
        Ok(deactivated)
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

    async fn retry_delivery(
        &self,
        partner_id: &PartnerId,
        subscription_id: &SubscriptionId,
        event_id: &EventId,
        now: Timestamp,
    ) -> StoreResult<RetryOutcome> {
        SqliteStore::retry_delivery(self, partner_id, subscription_id, event_id, now).await
    }

    async fn create_recovery(&self, new: &NewRecovery) -> StoreResult<Recovery> {
        SqliteStore::create_recovery(self, new).await
    }

    async fn get_recovery(
        &self,
        partner_id: &PartnerId,
        id: &RecoveryId,
    ) -> StoreResult<Option<Recovery>> {
        SqliteStore::get_recovery(self, partner_id, id).await
    }

    async fn advance_recoveries(&self, now: Timestamp, budget: usize) -> StoreResult<u64> {
        SqliteStore::advance_recoveries(self, now, budget).await
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
}
