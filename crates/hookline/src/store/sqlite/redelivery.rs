//! Redelivery on SQLite: single retries, recoveries, and the runner's chunks
//! ([`recovery::advance`] over this backend's steps, on the writer thread).

use hookline_core::{EventId, PartnerId, RecoveryId, SubscriptionId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::SqliteStore;
use crate::store::recovery::{
    self, retry_allowed, until_column, Progress, RecoveryRow, RecoverySteps, PROGRESS_COLUMNS,
    RECOVERY_COLUMNS,
};
use crate::store::steps::run_ready;
use crate::store::{NewRecovery, Recovery, RetryOutcome, StoreResult};

/// Due now, with the retry schedule counting from the attempts made so far.
const REQUEUE: &str = "UPDATE deliveries SET state = 'pending', next_attempt_at = ?1, \
     attempt_base = attempts, updated_at = ?1";

/// The active subscriptions a recovery covers, from `?3` on, in id order.
const LIVE_SUBSCRIPTIONS: &str = "SELECT id FROM subscriptions \
     WHERE partner_id = ?1 AND (?2 IS NULL OR id = ?2) AND id >= ?3 \
       AND is_active = 1 AND deleted_at IS NULL ORDER BY id";

fn retry(c: &mut Connection, args: [String; 3], now: i64) -> StoreResult<RetryOutcome> {
    let tx = c.transaction()?;
    let found: Option<(i64, String, bool)> = tx
        .prepare_cached(
            "SELECT d.id, d.state, s.is_active = 1 AND s.deleted_at IS NULL \
             FROM events e JOIN deliveries d ON d.event_seq = e.seq \
                  JOIN subscriptions s ON s.id = d.subscription_id \
             WHERE e.partner_id = ?1 AND e.event_id = ?2 AND d.subscription_id = ?3",
        )?
        .query_row(rusqlite::params_from_iter(&args), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    if let Err(refused) = retry_allowed(found.as_ref().map(|f| (f.1.as_str(), f.2))) {
        return Ok(refused);
    }
    let (id, state, _) = found.expect("allowed means found");
    tx.prepare_cached(&format!("{REQUEUE} WHERE id = ?2 AND state = ?3"))?
        .execute(params![now, id, state])?;
    tx.commit()?;
    Ok(RetryOutcome::Requeued)
}

fn create(c: &mut Connection, new: &NewRecovery) -> StoreResult<Recovery> {
    let tx = c.transaction()?;
    let (since, until) = (new.since.as_micros(), until_column(new.until));
    let subscription = new.subscription_id.as_ref().map(SubscriptionId::as_str);
    let total: i64 = tx
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM deliveries WHERE state = 'failed' \
               AND created_at >= ?4 AND created_at < ?5 \
               AND subscription_id IN ({LIVE_SUBSCRIPTIONS})"
        ))?
        .query_row(
            params![new.partner_id.as_str(), subscription, "", since, until],
            |r| r.get(0),
        )?;
    let now = new.now.as_micros();
    tx.prepare_cached(
        "INSERT INTO recoveries (id, partner_id, subscription_id, since_at, until_at, status, \
         total, cursor_created_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?4, ?7, ?7)",
    )?
    .execute(params![
        new.id.as_str(),
        new.partner_id.as_str(),
        subscription,
        since,
        until,
        total,
        now
    ])?;
    let recovery = get(&tx, new.partner_id.as_str(), new.id.as_str())?
        .ok_or_else(|| anyhow::anyhow!("the recovery just inserted is missing"))?;
    tx.commit()?;
    Ok(recovery)
}

fn get(c: &Connection, partner: &str, id: &str) -> StoreResult<Option<Recovery>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {RECOVERY_COLUMNS} FROM recoveries WHERE partner_id = ?1 AND id = ?2"
    ))?
    .query_row([partner, id], |r| {
        Ok(RecoveryRow {
            id: r.get(0)?,
            partner_id: r.get(1)?,
            subscription_id: r.get(2)?,
            status: r.get(3)?,
            total: r.get(4)?,
            queued: r.get(5)?,
            created_at: r.get(6)?,
        })
    })
    .optional()?
    .map(Recovery::from))
}

/// [`recovery::advance`]'s steps in one transaction on the writer thread.
struct Advance<'c>(Transaction<'c>);

impl RecoverySteps for Advance<'_> {
    async fn running(&mut self, limit: usize) -> StoreResult<Vec<Progress>> {
        Ok(self
            .0
            .prepare_cached(&format!(
                "SELECT {PROGRESS_COLUMNS} FROM recoveries WHERE status = 'running' \
                 ORDER BY created_at LIMIT ?1"
            ))?
            .query_map([limit as i64], |r| {
                Ok(Progress {
                    id: r.get(0)?,
                    partner_id: r.get(1)?,
                    subscription_id: r.get(2)?,
                    since_at: r.get(3)?,
                    until_at: r.get(4)?,
                    queued: r.get(5)?,
                    cursor_subscription: r.get(6)?,
                    cursor_created_at: r.get(7)?,
                    cursor_id: r.get(8)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    async fn live_subscriptions(&mut self, p: &Progress, from: &str) -> StoreResult<Vec<String>> {
        Ok(self
            .0
            .prepare_cached(LIVE_SUBSCRIPTIONS)?
            .query_map(params![p.partner_id, p.subscription_id, from], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    async fn failed_keys(
        &mut self,
        subscription: &str,
        p: &Progress,
        after: (i64, i64),
        limit: usize,
    ) -> StoreResult<Vec<(i64, i64)>> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT created_at, id FROM deliveries \
                 WHERE subscription_id = ?1 AND state = 'failed' \
                   AND created_at >= ?2 AND created_at < ?3 \
                   AND created_at >= ?4 AND (created_at > ?4 OR id > ?5) \
                 ORDER BY created_at, id LIMIT ?6",
            )?
            .query_map(
                params![
                    subscription,
                    p.since_at,
                    p.until_at,
                    after.0,
                    after.1,
                    limit as i64
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<rusqlite::Result<_>>()?)
    }

    async fn requeue(&mut self, ids: &[i64], now: i64) -> StoreResult<u64> {
        let ids = serde_json::to_string(ids).expect("ints serialise");
        Ok(self
            .0
            .prepare_cached(&format!(
                "{REQUEUE} WHERE id IN (SELECT value FROM json_each(?2)) AND state = 'failed'"
            ))?
            .execute(params![now, ids])? as u64)
    }

    async fn save(&mut self, p: &Progress, done: bool, now: i64) -> StoreResult<()> {
        self.0
            .prepare_cached(
                "UPDATE recoveries SET queued = ?2, cursor_subscription = ?3, \
                 cursor_created_at = ?4, cursor_id = ?5, updated_at = ?6, \
                 status = CASE WHEN ?7 THEN 'completed' ELSE status END WHERE id = ?1",
            )?
            .execute(params![
                p.id,
                p.queued,
                p.cursor_subscription,
                p.cursor_created_at,
                p.cursor_id,
                now,
                done
            ])?;
        Ok(())
    }

    async fn commit(self) -> StoreResult<()> {
        Ok(self.0.commit()?)
    }
}

impl SqliteStore {
    pub(super) async fn retry_delivery(
        &self,
        partner_id: &PartnerId,
        subscription_id: &SubscriptionId,
        event_id: &EventId,
        now: Timestamp,
    ) -> StoreResult<RetryOutcome> {
        let args = [
            partner_id.as_str(),
            event_id.as_str(),
            subscription_id.as_str(),
        ]
        .map(str::to_owned);
        self.write(move |c| retry(c, args, now.as_micros())).await
    }

    pub(super) async fn create_recovery(&self, new: &NewRecovery) -> StoreResult<Recovery> {
        let new = new.clone();
        self.write(move |c| create(c, &new)).await
    }

    pub(super) async fn get_recovery(
        &self,
        partner_id: &PartnerId,
        id: &RecoveryId,
    ) -> StoreResult<Option<Recovery>> {
        let (partner, id) = (partner_id.as_str().to_owned(), id.as_str().to_owned());
        self.read(move |c| get(c, &partner, &id)).await
    }

    pub(super) async fn advance_recoveries(
        &self,
        now: Timestamp,
        budget: usize,
    ) -> StoreResult<u64> {
        let now = now.as_micros();
        self.write(move |c| {
            let steps = Advance(c.transaction()?);
            run_ready(recovery::advance(steps, now, budget))
        })
        .await
    }
}
