//! The attempt log and the delivery log on SQLite: [`delivery_log::page`] over this backend's
//! reads, on one read-only connection.

use async_trait::async_trait;
use hookline_core::{EventId, PartnerId, SubscriptionId, Timestamp, TraceId};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{rows as sqlite_rows, SqliteStore};
use crate::store::delivery_log::{self, KeyBounds, LogRow, LogSteps, StateRange, LOG_SELECT};
use crate::store::rows::ATTEMPT_COLUMNS;
use crate::store::steps::run_ready;
use crate::store::{
    AttemptLog, AttemptRecord, EventLog, LogEntry, LogPage, LogQuery, LogScope, StoreResult,
};

fn log_row(r: &Row<'_>) -> rusqlite::Result<LogRow> {
    Ok(LogRow {
        id: r.get(0)?,
        subscription_id: r.get(1)?,
        state: r.get(2)?,
        attempts: r.get(3)?,
        attempt_base: r.get(4)?,
        next_attempt_at: r.get(5)?,
        created_at: r.get(6)?,
        partner_id: r.get(7)?,
        event_id: r.get(8)?,
        event_type: r.get(9)?,
        trace_id: r.get(10)?,
        target_url: r.get(11)?,
        attempt: r.get(12)?,
        started_at: r.get(13)?,
        duration_ms: r.get(14)?,
        status_code: r.get(15)?,
        error_kind: r.get(16)?,
        error_message: r.get(17)?,
    })
}

/// One (subscription, state) range of `deliveries_log`, newest first below the bounds.
pub const KEYS_SQL: &str = "SELECT d.created_at, d.id FROM deliveries d \
     WHERE d.subscription_id = ?1 AND d.state = ?2 AND d.created_at >= ?3 \
       AND d.created_at <= ?4 AND (d.created_at < ?4 OR d.id < ?5) \
       AND (?6 IS NULL OR EXISTS (SELECT 1 FROM events e \
                                  WHERE e.seq = d.event_seq AND e.event_type = ?6)) \
       AND (?7 = 0 OR (?7 = 2) = EXISTS (SELECT 1 FROM delivery_attempts a \
                                         WHERE a.delivery_id = d.id)) \
     ORDER BY d.created_at DESC, d.id DESC LIMIT ?8";

struct Reads<'c>(&'c Connection);

impl LogSteps for Reads<'_> {
    async fn subscriptions(&mut self, scope: &LogScope) -> StoreResult<Vec<String>> {
        let (sql, arg) = match scope {
            LogScope::Subscription(id) => return Ok(vec![id.as_str().to_owned()]),
            LogScope::Partner(p) => (
                "SELECT id FROM subscriptions WHERE partner_id = ?1",
                Some(p.as_str()),
            ),
            LogScope::All => ("SELECT id FROM subscriptions WHERE ?1 IS NULL", None),
        };
        Ok(self
            .0
            .prepare_cached(sql)?
            .query_map([arg], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    async fn keys(
        &mut self,
        subscriptions: &[String],
        ranges: &[StateRange],
        b: KeyBounds,
        event_type: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(i64, i64)>> {
        let mut stmt = self.0.prepare_cached(KEYS_SQL)?;
        let mut keys = Vec::new();
        for sub in subscriptions {
            for r in ranges {
                let args = params![
                    sub,
                    r.state,
                    b.low,
                    b.high_created_at,
                    b.high_id,
                    event_type,
                    r.attempted_code(),
                    limit as i64
                ];
                for key in stmt.query_map(args, |row| Ok((row.get(0)?, row.get(1)?)))? {
                    keys.push(key?);
                }
            }
        }
        Ok(keys)
    }

    async fn rows(&mut self, ids: &[i64]) -> StoreResult<Vec<LogRow>> {
        let ids = serde_json::to_string(ids).expect("ints serialise");
        Ok(self
            .0
            .prepare_cached(&format!(
                "{LOG_SELECT} WHERE d.id IN (SELECT value FROM json_each(?1))"
            ))?
            .query_map([ids], log_row)?
            .collect::<rusqlite::Result<_>>()?)
    }
}

fn attempts_of(c: &Connection, delivery_id: i64) -> StoreResult<Vec<AttemptRecord>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts a \
         WHERE a.delivery_id = ?1 ORDER BY a.attempt"
    ))?
    .query_map([delivery_id], sqlite_rows::attempt)?
    .collect::<rusqlite::Result<_>>()?)
}

fn event_deliveries(c: &Connection, partner: &str, event: &str) -> StoreResult<Vec<LogEntry>> {
    Ok(c.prepare_cached(&format!(
        "{LOG_SELECT} WHERE e.partner_id = ?1 AND e.event_id = ?2 ORDER BY d.id"
    ))?
    .query_map([partner, event], log_row)?
    .map(|r| r.map(LogEntry::from))
    .collect::<rusqlite::Result<_>>()?)
}

fn event_log(c: &Connection, partner: &str, event: &str) -> StoreResult<Option<EventLog>> {
    let found = c
        .prepare_cached(
            "SELECT event_type, phone_number, created_at, trace_id, data, accepted_at \
             FROM events WHERE partner_id = ?1 AND event_id = ?2",
        )?
        .query_row([partner, event], |r| {
            Ok(EventLog {
                event_id: EventId::from_stored(event),
                partner_id: PartnerId::from_stored(partner),
                event_type: r.get(0)?,
                phone_number: r.get(1)?,
                created_at: r.get(2)?,
                trace_id: TraceId::from_stored(r.get::<_, String>(3)?),
                data: r.get(4)?,
                accepted_at: Timestamp::from_micros(r.get(5)?),
                deliveries: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut log) = found else {
        return Ok(None);
    };
    log.deliveries = event_deliveries(c, partner, event)?;
    Ok(Some(log))
}

#[async_trait]
impl AttemptLog for SqliteStore {
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

    async fn delivery_log(&self, query: &LogQuery) -> StoreResult<LogPage> {
        let query = query.clone();
        self.read(move |c| run_ready(delivery_log::page(&mut Reads(c), &query)))
            .await
    }

    async fn delivery_attempts(
        &self,
        partner_id: &PartnerId,
        subscription_id: &SubscriptionId,
        event_id: &EventId,
    ) -> StoreResult<Option<(LogEntry, Vec<AttemptRecord>)>> {
        let args = [
            partner_id.as_str(),
            event_id.as_str(),
            subscription_id.as_str(),
        ]
        .map(str::to_owned);
        self.read(move |c| {
            let row = c
                .prepare_cached(&format!(
                    "{LOG_SELECT} WHERE e.partner_id = ?1 AND e.event_id = ?2 \
                     AND d.subscription_id = ?3"
                ))?
                .query_row(rusqlite::params_from_iter(&args), log_row)
                .optional()?;
            let Some(row) = row else {
                return Ok(None);
            };
            let attempts = attempts_of(c, row.id)?;
            Ok(Some((LogEntry::from(row), attempts)))
        })
        .await
    }

    async fn event_log(
        &self,
        partner_id: &PartnerId,
        event_id: &EventId,
    ) -> StoreResult<Option<EventLog>> {
        let (partner, event) = (partner_id.as_str().to_owned(), event_id.as_str().to_owned());
        self.read(move |c| event_log(c, &partner, &event)).await
    }
}
