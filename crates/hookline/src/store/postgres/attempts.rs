//! The attempt log and the delivery log on PostgreSQL: [`delivery_log::page`] over this
//! backend's reads. A page's keys are one statement: a LATERAL read of each (subscription,
//! state) range of `deliveries_log`, merged by the database.

use async_trait::async_trait;
use hookline_core::{EventId, PartnerId, SubscriptionId, Timestamp, TraceId};
use sqlx::PgConnection;

use super::{DbTime, PostgresStore};
use crate::store::delivery_log::{self, KeyBounds, LogRow, LogSteps, StateRange, LOG_SELECT};
use crate::store::rows::{AttemptRow, ATTEMPT_COLUMNS};
use crate::store::{
    AttemptLog, AttemptRecord, EventLog, LogEntry, LogPage, LogQuery, LogScope, StoreResult,
};

/// Each (subscription, state) range of `deliveries_log`, newest first below the bounds,
/// merged: one statement for a page's keys. The per-row checks are scalar subqueries, not
/// EXISTS: PostgreSQL may run an EXISTS under OR as a hashed subplan that reads the whole
/// table once, where a scalar subquery is one index probe per row read.
pub const KEYS_SQL: &str = "SELECT k.created_at, k.id \
             FROM unnest($1::text[]) AS sub(id) \
                  CROSS JOIN unnest($2::text[], $3::bigint[]) AS r(state, attempted), \
             LATERAL (SELECT d.created_at, d.id FROM deliveries d \
                WHERE d.subscription_id = sub.id AND d.state = r.state \
                  AND d.created_at >= $4 AND (d.created_at, d.id) < ($5, $6) \
                  AND ($7::text IS NULL OR (SELECT e.event_type FROM events e \
                       WHERE e.seq = d.event_seq) = $7) \
                  AND (r.attempted = 0 OR (r.attempted = 2) = ((SELECT a.attempt \
                       FROM delivery_attempts a WHERE a.delivery_id = d.id LIMIT 1) IS NOT NULL)) \
                ORDER BY d.created_at DESC, d.id DESC LIMIT $8) k \
             ORDER BY k.created_at DESC, k.id DESC LIMIT $8";

struct Reads<'c>(&'c mut PgConnection);

/// Deliveries' times are on the database's clock (see `db_clock`): the log shows them on this
/// node's, like every other time it answers with.
fn on_node(db: DbTime, mut e: LogEntry) -> LogEntry {
    e.created_at = db.node_time(e.created_at.as_micros());
    e.next_attempt_at = e.next_attempt_at.map(|t| db.node_time(t.as_micros()));
    e
}

/// A caller's time as deliveries store it.
fn on_db(db: DbTime, t: Option<Timestamp>) -> Option<Timestamp> {
    t.map(|t| Timestamp::from_micros(db.db_micros(t)))
}

impl LogSteps for Reads<'_> {
    async fn subscriptions(&mut self, scope: &LogScope) -> StoreResult<Vec<String>> {
        let (sql, arg) = match scope {
            LogScope::Subscription(id) => return Ok(vec![id.as_str().to_owned()]),
            LogScope::Partner(p) => (
                "SELECT id FROM subscriptions WHERE partner_id = $1",
                Some(p.as_str()),
            ),
            LogScope::All => ("SELECT id FROM subscriptions WHERE $1::text IS NULL", None),
        };
        Ok(sqlx::query_scalar(sql)
            .bind(arg)
            .fetch_all(&mut *self.0)
            .await?)
    }

    async fn keys(
        &mut self,
        subscriptions: &[String],
        ranges: &[StateRange],
        b: KeyBounds,
        event_type: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(KEYS_SQL)
            .bind(subscriptions)
            .bind(ranges.iter().map(|r| r.state).collect::<Vec<_>>())
            .bind(
                ranges
                    .iter()
                    .map(|r| r.attempted_code())
                    .collect::<Vec<_>>(),
            )
            .bind(b.low)
            .bind(b.high_created_at)
            .bind(b.high_id)
            .bind(event_type)
            .bind(limit as i64)
            .fetch_all(&mut *self.0)
            .await?)
    }

    async fn rows(&mut self, ids: &[i64]) -> StoreResult<Vec<LogRow>> {
        Ok(
            sqlx::query_as(&format!("{LOG_SELECT} WHERE d.id = ANY($1)"))
                .bind(ids)
                .fetch_all(&mut *self.0)
                .await?,
        )
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    event_type: String,
    phone_number: Option<String>,
    created_at: String,
    trace_id: String,
    data: String,
    accepted_at: i64,
}

#[async_trait]
impl AttemptLog for PostgresStore {
    async fn attempts_for_event(
        &self,
        partner_id: &PartnerId,
        event_id: &EventId,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let rows: Vec<AttemptRow> = sqlx::query_as(&format!(
            "SELECT {ATTEMPT_COLUMNS} \
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id \
                  JOIN events e ON e.seq = d.event_seq \
             WHERE e.partner_id = $1 AND e.event_id = $2 ORDER BY a.delivery_id, a.attempt"
        ))
        .bind(partner_id.as_str())
        .bind(event_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(AttemptRecord::from).collect())
    }

    async fn delivery_log(&self, query: &LogQuery) -> StoreResult<LogPage> {
        let db = self.db_time().await?;
        let mut query = query.clone();
        (query.since, query.until) = (on_db(db, query.since), on_db(db, query.until));
        let mut tx = self.pool.begin().await?;
        // The planner's row estimates for a page are pessimistic (it cannot know the LIMIT
        // stops the index walk early), which can cross `jit_above_cost`: compiling would cost
        // more than the page.
        sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
        let mut page = delivery_log::page(&mut Reads(&mut tx), &query).await?;
        tx.commit().await?;
        page.entries = page.entries.into_iter().map(|e| on_node(db, e)).collect();
        Ok(page)
    }

    async fn delivery_attempts(
        &self,
        partner_id: &PartnerId,
        subscription_id: &SubscriptionId,
        event_id: &EventId,
    ) -> StoreResult<Option<(LogEntry, Vec<AttemptRecord>)>> {
        let row: Option<LogRow> = sqlx::query_as(&format!(
            "{LOG_SELECT} WHERE e.partner_id = $1 AND e.event_id = $2 AND d.subscription_id = $3"
        ))
        .bind(partner_id.as_str())
        .bind(event_id.as_str())
        .bind(subscription_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let attempts: Vec<AttemptRow> = sqlx::query_as(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts a \
             WHERE a.delivery_id = $1 ORDER BY a.attempt"
        ))
        .bind(row.id)
        .fetch_all(&self.pool)
        .await?;
        let db = self.db_time().await?;
        Ok(Some((
            on_node(db, LogEntry::from(row)),
            attempts.into_iter().map(AttemptRecord::from).collect(),
        )))
    }

    async fn event_log(
        &self,
        partner_id: &PartnerId,
        event_id: &EventId,
    ) -> StoreResult<Option<EventLog>> {
        let event: Option<EventRow> = sqlx::query_as(
            "SELECT event_type, phone_number, created_at, trace_id, data, accepted_at \
             FROM events WHERE partner_id = $1 AND event_id = $2",
        )
        .bind(partner_id.as_str())
        .bind(event_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(event) = event else {
            return Ok(None);
        };
        let db = self.db_time().await?;
        let rows: Vec<LogRow> = sqlx::query_as(&format!(
            "{LOG_SELECT} WHERE e.partner_id = $1 AND e.event_id = $2 ORDER BY d.id"
        ))
        .bind(partner_id.as_str())
        .bind(event_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(EventLog {
            event_id: event_id.clone(),
            partner_id: partner_id.clone(),
            event_type: event.event_type,
            phone_number: event.phone_number,
            created_at: event.created_at,
            trace_id: TraceId::from_stored(event.trace_id),
            data: event.data,
            accepted_at: Timestamp::from_micros(event.accepted_at),
            deliveries: rows
                .into_iter()
                .map(|r| on_node(db, LogEntry::from(r)))
                .collect(),
        }))
    }
}
