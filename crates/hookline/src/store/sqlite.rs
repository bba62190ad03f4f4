//! The embedded SQLite store: WAL mode, `synchronous=FULL` (a 202 means the event is on disk),
//! one writer connection (SQLite allows one writer anyway; a single connection avoids
//! busy-retries) and a small pool of readers.

use super::rows::{self, *};
use super::*;
use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/sqlite/0001_init.sql"))];

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Keeps the background checkpointer alive; it stops when the store is dropped.
    _alive: Arc<()>,
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data directory {}", dir.display()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // The writer never checkpoints itself (`wal_autocheckpoint=0`): copying the WAL back into
        // the database runs on a connection of its own, so it does not stall commits.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening SQLite database {}", path.display()))?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone().read_only(true))
            .await?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let alive = Arc::new(());
        tokio::spawn(checkpoint_loop(checkpointer, Arc::downgrade(&alive)));
        Ok(SqliteStore {
            writer,
            reader,
            _alive: alive,
        })
    }
}

async fn checkpoint_loop(pool: SqlitePool, alive: std::sync::Weak<()>) {
    while alive.strong_count() > 0 {
        tokio::time::sleep(CHECKPOINT_INTERVAL).await;
        // PASSIVE never waits on readers or the writer; what it cannot copy now waits a round.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
    pool.close().await;
}

async fn migrate(pool: &SqlitePool) -> anyhow::Result<()> {
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .execute(pool)
        .await?;
    let current: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        .fetch_one(pool)
        .await?;
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    anyhow::ensure!(
        current <= known,
        "the database schema is version {current}, newer than this hookline understands ({known}); upgrade hookline"
    );
    let pending: Vec<(i64, &'static str)> = MIGRATIONS
        .iter()
        .copied()
        .filter(|m| m.0 > current)
        .collect();
    for (version, sql) in pending {
        // One script so the schema change and its version row commit together.
        let script = format!(
            "BEGIN;\n{sql}\nINSERT INTO schema_version (version) VALUES ({version});\nCOMMIT;"
        );
        sqlx::raw_sql(&script).execute(pool).await?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

async fn existing_url_owner(
    tx: &mut Transaction<'_, Sqlite>,
    partner_id: &str,
    url: &str,
) -> StoreResult<StoreError> {
    let existing_id: String = sqlx::query_scalar(
        "SELECT id FROM subscriptions WHERE partner_id = ? AND target_url = ? AND deleted_at IS NULL",
    )
    .bind(partner_id)
    .bind(url)
    .fetch_one(&mut **tx)
    .await?;
    Ok(StoreError::DuplicateTargetUrl { existing_id })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn admin_token_hash(&self) -> StoreResult<Option<ApiKeyHash>> {
        let v: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = 'admin_token_hash'")
                .fetch_optional(&self.reader)
                .await?;
        Ok(v.and_then(|b| ApiKeyHash::from_bytes(&b)))
    }

    async fn is_fresh(&self) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM partners")
            .fetch_one(&self.writer)
            .await?;
        Ok(n == 0)
    }

    async fn bootstrap(
        &self,
        admin_hash: Option<&ApiKeyHash>,
        partner: &Partner,
        key: &ApiKeyRecord,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        if let Some(hash) = admin_hash {
            sqlx::query(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('admin_token_hash', ?)",
            )
            .bind(hash.as_bytes())
            .execute(&mut *tx)
            .await?;
        }
        insert_partner(&mut tx, partner).await?;
        insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_partner(&self, partner: &Partner) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        insert_partner(&mut tx, partner).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_partners(&self) -> StoreResult<Vec<Partner>> {
        let rows: Vec<PartnerRow> =
            sqlx::query_as("SELECT id, name, created_at FROM partners ORDER BY created_at, id")
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(Partner::from).collect())
    }

    async fn partner_exists(&self, partner_id: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM partners WHERE id = ?")
            .bind(partner_id)
            .fetch_one(&self.reader)
            .await?;
        Ok(n > 0)
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_api_key(&self, partner_id: &str, key_id: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND partner_id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(key_id)
        .bind(partner_id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn partner_for_key(&self, hash: &ApiKeyHash) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT partner_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
        )
        .bind(hash.as_bytes())
        .fetch_optional(&self.reader)
        .await?)
    }

    async fn insert_subscription(&self, new: &NewSubscription) -> StoreResult<()> {
        let s = &new.subscription;
        let mut tx = self.writer.begin().await?;
        let res = sqlx::query(
            "INSERT INTO subscriptions (id, partner_id, target_url, subscribed_events, phone_numbers, \
             is_active, signing_secret, routing_id_header, routing_key_header, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.partner_id)
        .bind(s.target_url.as_str())
        .bind(events_column(s))
        .bind(phones_column(&s.phone_numbers))
        .bind(s.is_active)
        .bind(&new.signing_secret)
        .bind(&s.routing_id_header)
        .bind(&s.routing_key_header)
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(&mut *tx)
        .await;
        match res {
            Err(e) if is_unique_violation(&e) => {
                Err(existing_url_owner(&mut tx, &s.partner_id, s.target_url.as_str()).await?)
            }
            Err(e) => Err(e.into()),
            Ok(_) => {
                tx.commit().await?;
                Ok(())
            }
        }
    }

    async fn list_subscriptions(&self, partner_id: &str) -> StoreResult<Vec<Subscription>> {
        let rows: Vec<SubscriptionRow> = sqlx::query_as(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
             WHERE partner_id = ? AND deleted_at IS NULL ORDER BY created_at, id"
        ))
        .bind(partner_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows::subscriptions(rows)?)
    }

    async fn get_subscription(
        &self,
        partner_id: &str,
        id: &str,
    ) -> StoreResult<Option<Subscription>> {
        let row: Option<SubscriptionRow> = sqlx::query_as(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
             WHERE partner_id = ? AND id = ? AND deleted_at IS NULL"
        ))
        .bind(partner_id)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(SubscriptionRow::into_domain).transpose()?)
    }

    async fn update_subscription(&self, s: &Subscription) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let res = sqlx::query(
            "UPDATE subscriptions SET target_url = ?, subscribed_events = ?, phone_numbers = ?, \
             is_active = ?, routing_id_header = ?, routing_key_header = ?, updated_at = ? \
             WHERE partner_id = ? AND id = ? AND deleted_at IS NULL",
        )
        .bind(s.target_url.as_str())
        .bind(events_column(s))
        .bind(phones_column(&s.phone_numbers))
        .bind(s.is_active)
        .bind(&s.routing_id_header)
        .bind(&s.routing_key_header)
        .bind(s.updated_at)
        .bind(&s.partner_id)
        .bind(&s.id)
        .execute(&mut *tx)
        .await;
        match res {
            Err(e) if is_unique_violation(&e) => {
                Err(existing_url_owner(&mut tx, &s.partner_id, s.target_url.as_str()).await?)
            }
            Err(e) => Err(e.into()),
            Ok(done) => {
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }
        }
    }

    async fn delete_subscription(&self, partner_id: &str, id: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE subscriptions SET deleted_at = ?, is_active = 0, updated_at = ? \
             WHERE partner_id = ? AND id = ? AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(now)
        .bind(partner_id)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn publish(
        &self,
        events: &[NewEvent],
        now: i64,
        claimer: Option<&mut Claimer<'_>>,
    ) -> StoreResult<PublishBatch> {
        // A handful of statements per batch, whatever its size: each statement is a round trip
        // to SQLite's worker thread, which is what bounds throughput here.
        // Subscriptions come from a reader, outside the write transaction: the single writer
        // only writes. A subscription changed in between is caught at claim time.
        let mut subs: HashMap<String, Vec<Target>> = HashMap::new();
        for e in events {
            if subs.contains_key(&e.partner_id) {
                continue;
            }
            let rows: Vec<SubscriptionRow> = sqlx::query_as(&format!(
                "SELECT {FAN_OUT_COLUMNS} FROM subscriptions \
                 WHERE partner_id = ? AND deleted_at IS NULL AND is_active = 1"
            ))
            .bind(&e.partner_id)
            .fetch_all(&self.reader)
            .await?;
            subs.insert(e.partner_id.clone(), rows::targets(rows)?);
        }
        let mut tx = self.writer.begin().await?;
        let targets = fan_out(events, &subs);
        let batch: Vec<_> = events
            .iter()
            .zip(&targets)
            .map(|(e, t)| {
                (
                    &e.partner_id,
                    &e.event_id,
                    e.event_type.as_str(),
                    e.phone_number.as_ref().map(|p| p.as_str()),
                    &e.created_at,
                    &e.trace_id,
                    &e.data,
                    t.len(),
                )
            })
            .collect();
        let inserted: Vec<(i64, String, String)> = sqlx::query_as(
            "INSERT INTO events (partner_id, event_id, event_type, phone_number, created_at, \
             trace_id, data, deliveries, accepted_at) \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, \
                    value->>7, ?2 FROM json_each(?1) WHERE true \
             ON CONFLICT (partner_id, event_id) DO NOTHING RETURNING seq, partner_id, event_id",
        )
        .bind(serde_json::to_string(&batch).map_err(anyhow::Error::from)?)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let inserted: HashMap<EventKey, i64> = inserted
            .into_iter()
            .map(|(seq, p, e)| ((p, e), seq))
            .collect();
        let mut prior: HashMap<EventKey, i64> = HashMap::new();
        if inserted.len() < events.len() {
            let keys: Vec<(&str, &str)> = events
                .iter()
                .map(|e| (e.partner_id.as_str(), e.event_id.as_str()))
                .collect();
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT partner_id, event_id, deliveries FROM events \
                 WHERE (partner_id, event_id) IN (SELECT value->>0, value->>1 FROM json_each(?))",
            )
            .bind(serde_json::to_string(&keys).map_err(anyhow::Error::from)?)
            .fetch_all(&mut *tx)
            .await?;
            prior = rows.into_iter().map(|(p, e, n)| ((p, e), n)).collect();
        }
        let lease_until = claimer.as_ref().map(|c| c.lease_until).unwrap_or(now);
        let settled = settle_publish(events, &targets, &inserted, &prior, claimer);
        let mut claimed = Vec::new();
        if !settled.deliveries.is_empty() {
            let rows: Vec<_> = settled
                .deliveries
                .iter()
                .map(|d| {
                    let (attempts, due) = if d.claimed {
                        (1, lease_until)
                    } else {
                        (0, now)
                    };
                    (d.seq, &d.target.subscription.id, attempts, due)
                })
                .collect();
            let ids: Vec<(i64, i64, String)> = sqlx::query_as(
                "INSERT INTO deliveries (event_seq, subscription_id, state, attempts, \
                 next_attempt_at, created_at, updated_at) \
                 SELECT value->>0, value->>1, 'pending', value->>2, value->>3, ?2, ?2 \
                 FROM json_each(?1) RETURNING id, event_seq, subscription_id",
            )
            .bind(serde_json::to_string(&rows).map_err(anyhow::Error::from)?)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            claimed = claimed_deliveries(ids, &settled.deliveries);
        }
        tx.commit().await?;
        Ok(PublishBatch {
            queued: settled.deliveries.len() - claimed.len(),
            published: settled.published,
            claimed,
        })
    }

    async fn claim_due(&self, req: &ClaimRequest<'_>) -> StoreResult<Vec<DueDelivery>> {
        let in_flight = serde_json::to_string(req.in_flight).expect("map serialises");
        let mut tx = self.writer.begin().await?;
        // Look at a bounded window of the oldest due rows (index scan, independent of backlog
        // size), then keep per subscription only what fits under its in-flight cap.
        let claimed: Vec<(i64,)> = sqlx::query_as(
            "WITH due AS ( \
                SELECT id, subscription_id, next_attempt_at FROM deliveries \
                WHERE state = 'pending' AND next_attempt_at <= ?1 \
                  AND subscription_id NOT IN (SELECT key FROM json_each(?2) WHERE value >= ?3) \
                ORDER BY next_attempt_at LIMIT ?4), \
             ranked AS ( \
                SELECT id, next_attempt_at, \
                       ROW_NUMBER() OVER (PARTITION BY subscription_id ORDER BY next_attempt_at) \
                       + COALESCE(json_extract(?2, '$.\"' || subscription_id || '\"'), 0) AS slot \
                FROM due) \
             UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?5, updated_at = ?1 \
             WHERE id IN (SELECT id FROM ranked WHERE slot <= ?3 ORDER BY next_attempt_at LIMIT ?6) \
             RETURNING id",
        )
        .bind(req.now)
        .bind(&in_flight)
        .bind(req.per_subscription_cap as i64)
        .bind(req.limit as i64 * 4)
        .bind(req.lease_until)
        .bind(req.limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        // The rows are leased to us now; read what is needed to send them on a reader.
        let ids = serde_json::to_string(&claimed.iter().map(|r| r.0).collect::<Vec<_>>())
            .expect("ints serialise");
        let rows: Vec<DueRow> = sqlx::query_as(&format!(
            "SELECT {DUE_COLUMNS} \
             FROM deliveries d JOIN events e ON e.seq = d.event_seq \
                  JOIN subscriptions s ON s.id = d.subscription_id \
             WHERE d.id IN (SELECT value FROM json_each(?)) ORDER BY d.next_attempt_at, d.id"
        ))
        .bind(&ids)
        .fetch_all(&self.reader)
        .await?;
        let (live, dead): (Vec<DueRow>, Vec<DueRow>) = rows.into_iter().partition(|r| r.live);
        if !dead.is_empty() {
            let dead: Vec<i64> = dead.iter().map(DueRow::id).collect();
            sqlx::query(
                "UPDATE deliveries SET state = 'cancelled', updated_at = ? \
                 WHERE id IN (SELECT value FROM json_each(?)) AND state = 'pending'",
            )
            .bind(req.now)
            .bind(serde_json::to_string(&dead).expect("ints serialise"))
            .execute(&self.writer)
            .await?;
        }
        Ok(live.into_iter().map(DueDelivery::from).collect())
    }

    async fn record_outcomes(&self, outcomes: &[Outcome], now: i64) -> StoreResult<usize> {
        let mut tx = self.writer.begin().await?;
        let updates: Vec<_> = outcomes.iter().map(outcome_row).collect();
        // Fenced by attempt number: an outcome whose delivery was re-claimed meanwhile is skipped.
        let applied: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE deliveries SET state = o.value->>2, \
                    next_attempt_at = COALESCE(o.value->>3, deliveries.next_attempt_at), updated_at = ?2 \
             FROM json_each(?1) AS o \
             WHERE deliveries.id = o.value->>0 AND deliveries.attempts = o.value->>1 \
               AND deliveries.state = 'pending' \
             RETURNING deliveries.id, deliveries.attempts",
        )
        .bind(serde_json::to_string(&updates).map_err(anyhow::Error::from)?)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let applied: std::collections::HashSet<(i64, i64)> = applied.into_iter().collect();
        let attempts: Vec<_> = outcomes
            .iter()
            .filter(|o| applied.contains(&applied_key(o)))
            .map(|o| {
                let a = &o.attempt;
                (
                    a.delivery_id,
                    a.attempt,
                    a.started_at,
                    a.duration_ms,
                    a.status_code,
                    a.error_kind,
                    &a.error_message,
                    &a.response_body,
                )
            })
            .collect();
        if attempts.len() < outcomes.len() {
            tracing::warn!(
                skipped = outcomes.len() - attempts.len(),
                "outcomes fenced off: their deliveries were re-claimed after the lease expired"
            );
        }
        if !attempts.is_empty() {
            sqlx::query(
                "INSERT OR IGNORE INTO delivery_attempts (delivery_id, attempt, started_at, \
                 duration_ms, status_code, error_kind, error_message, response_body) \
                 SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, \
                        value->>6, value->>7 FROM json_each(?)",
            )
            .bind(serde_json::to_string(&attempts).map_err(anyhow::Error::from)?)
            .execute(&mut *tx)
            .await?;
        }
        for o in outcomes
            .iter()
            .filter(|o| applied.contains(&applied_key(o)))
        {
            if let Some(sub_id) = &o.deactivate_subscription {
                sqlx::query("UPDATE subscriptions SET is_active = 0, updated_at = ? WHERE id = ?")
                    .bind(now)
                    .bind(sub_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(applied.len())
    }

    async fn next_due_at(&self) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'pending'",
        )
        .fetch_one(&self.reader)
        .await?)
    }

    async fn delivery_counts(&self) -> StoreResult<DeliveryCounts> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
                .fetch_all(&self.reader)
                .await?;
        Ok(counts_from(rows))
    }

    async fn attempts_for_event(
        &self,
        partner_id: &str,
        event_id: &str,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let rows: Vec<AttemptRow> = sqlx::query_as(&format!(
            "SELECT {ATTEMPT_COLUMNS} \
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id \
                  JOIN events e ON e.seq = d.event_seq \
             WHERE e.partner_id = ? AND e.event_id = ? ORDER BY a.delivery_id, a.attempt"
        ))
        .bind(partner_id)
        .bind(event_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(AttemptRecord::from).collect())
    }
}

async fn insert_partner(tx: &mut Transaction<'_, Sqlite>, p: &Partner) -> StoreResult<()> {
    sqlx::query("INSERT INTO partners (id, name, created_at) VALUES (?, ?, ?)")
        .bind(&p.id)
        .bind(&p.name)
        .bind(p.created_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_api_key(tx: &mut Transaction<'_, Sqlite>, k: &ApiKeyRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, partner_id, name, key_hash, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&k.id)
    .bind(&k.partner_id)
    .bind(&k.name)
    .bind(k.hash.as_bytes())
    .bind(k.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
