//! The PostgreSQL store, for several nodes sharing one database. PostgreSQL is the store and the
//! queue: claims use `FOR UPDATE SKIP LOCKED` in short transactions, and `NOTIFY` wakes the
//! dispatchers of every node when deliveries are committed.

use super::claim::{self, Candidate};
use super::db_clock::DbClock;
use super::publish_plan::{due_at, Acceptance, DeliveryRow, PublishPlan, Targets};
use super::rows::{self, *};
use super::*;
use anyhow::Context;
use futures_util::future::BoxFuture;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Notify;

pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_subscription_queues.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_routing_tokens.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_global_due_index.sql"),
    ),
];

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
/// Serialises migrations when several nodes start at once.
const MIGRATION_LOCK: i64 = 0x686f6f6b6c696e65; // "hookline"
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
    use sqlx::Executor;
    conn.execute(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})").as_str())
        .await?;
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await?;
    let current: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        .fetch_one(&mut *conn)
        .await?;
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    anyhow::ensure!(
        current <= known,
        "the database schema is version {current}, newer than this hookline understands ({known}); upgrade hookline"
    );
    for (version, sql) in MIGRATIONS.iter().copied().filter(|m| m.0 > current) {
        let script = format!(
            "BEGIN;\n{sql}\nINSERT INTO schema_version (version) VALUES ({version});\nCOMMIT;"
        );
        conn.execute(script.as_str()).await?;
        tracing::info!(version, "applied PostgreSQL migration");
    }
    conn.execute(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})").as_str())
        .await?;
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl PostgresStore {
    /// After a unique violation the transaction is aborted, so the owner is looked up outside it.
    async fn duplicate_url(&self, partner_id: &PartnerId, url: &str) -> StoreError {
        let existing: Result<String, sqlx::Error> = sqlx::query_scalar(
            "SELECT id FROM subscriptions WHERE partner_id = $1 AND target_url = $2 AND deleted_at IS NULL",
        )
        .bind(partner_id.as_str())
        .bind(url)
        .fetch_one(&self.pool)
        .await;
        match existing {
            Ok(existing_id) => StoreError::DuplicateTargetUrl {
                existing_id: SubscriptionId::from_stored(existing_id),
            },
            Err(e) => e.into(),
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn watch_wakeups(
        &self,
        wake: Arc<Notify>,
        cancel: CancellationToken,
    ) -> StoreResult<Option<JoinHandle<()>>> {
        let mut listener = PgListener::connect(&self.url).await?;
        listener.listen(WAKE_CHANNEL).await?;
        Ok(Some(tokio::spawn(async move {
            loop {
                // `recv` reconnects by itself after a lost connection; wake anyway, since
                // notifications sent while disconnected are lost and polling must catch up.
                let received = tokio::select! {
                    r = listener.recv() => r,
                    _ = cancel.cancelled() => return,
                };
                match received {
                    Ok(_) => wake.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "PostgreSQL listener error; reconnecting");
                        wake.notify_one();
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = cancel.cancelled() => return,
                        }
                    }
                }
            }
        })))
    }

    async fn admin_token_hash(&self) -> StoreResult<Option<ApiKeyHash>> {
        let v: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = 'admin_token_hash'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.and_then(|b| ApiKeyHash::from_bytes(&b)))
    }

    async fn is_fresh(&self) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM partners")
            .fetch_one(&self.pool)
            .await?;
        Ok(n == 0)
    }

    async fn bootstrap(
        &self,
        admin_hash: Option<&ApiKeyHash>,
        partner: &Partner,
        key: &ApiKeyRecord,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // Two nodes starting on an empty database: only one bootstraps.
        sqlx::query("LOCK TABLE partners IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM partners")
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            return Err(anyhow::anyhow!(
                "another node bootstrapped this database first; restart to use its admin token"
            )
            .into());
        }
        if let Some(hash) = admin_hash {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ('admin_token_hash', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
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
        let mut tx = self.pool.begin().await?;
        insert_partner(&mut tx, partner).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_partners(&self) -> StoreResult<Vec<Partner>> {
        let rows: Vec<PartnerRow> =
            sqlx::query_as("SELECT id, name, created_at FROM partners ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(Partner::from).collect())
    }

    async fn partner_exists(&self, partner_id: &PartnerId) -> StoreResult<bool> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM partners WHERE id = $1)")
                .bind(partner_id.as_str())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_api_key(
        &self,
        partner_id: &PartnerId,
        key_id: &ApiKeyId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND partner_id = $3 AND revoked_at IS NULL",
        )
        .bind(now.as_micros())
        .bind(key_id.as_str())
        .bind(partner_id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn partner_for_key(&self, hash: &ApiKeyHash) -> StoreResult<Option<PartnerId>> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT partner_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash.as_bytes())
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.map(PartnerId::from_stored))
    }

    async fn insert_subscription(&self, new: &NewSubscription) -> StoreResult<()> {
        let s = &new.subscription;
        let res = sqlx::query(
            "INSERT INTO subscriptions (id, partner_id, target_url, subscribed_events, phone_numbers, \
             is_active, signing_secret, routing_id_header, routing_key_header, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(s.id.as_str())
        .bind(s.partner_id.as_str())
        .bind(s.target_url.as_str())
        .bind(events_column(s))
        .bind(phones_column(&s.phone_numbers))
        .bind(s.is_active)
        .bind(&new.signing_secret)
        .bind(header_column(&s.routing_id_header))
        .bind(header_column(&s.routing_key_header))
        .bind(s.created_at.as_micros())
        .bind(s.updated_at.as_micros())
        .execute(&self.pool)
        .await;
        match res {
            Err(e) if is_unique_violation(&e) => Err(self
                .duplicate_url(&s.partner_id, s.target_url.as_str())
                .await),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    async fn list_subscriptions(&self, partner_id: &PartnerId) -> StoreResult<Vec<Subscription>> {
        let rows: Vec<SubscriptionRow> = sqlx::query_as(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
             WHERE partner_id = $1 AND deleted_at IS NULL ORDER BY created_at, id"
        ))
        .bind(partner_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows::subscriptions(rows)?)
    }

    async fn get_subscription(
        &self,
        partner_id: &PartnerId,
        id: &SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let row: Option<SubscriptionRow> = sqlx::query_as(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
             WHERE partner_id = $1 AND id = $2 AND deleted_at IS NULL"
        ))
        .bind(partner_id.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(SubscriptionRow::into_domain).transpose()?)
    }

    async fn update_subscription(
        &self,
        s: &Subscription,
        read_updated_at: Timestamp,
        forget_routing_tokens: bool,
    ) -> StoreResult<UpdateResult> {
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "UPDATE subscriptions SET target_url = $1, subscribed_events = $2, phone_numbers = $3, \
             is_active = $4, routing_id_header = $5, routing_key_header = $6, updated_at = $7 \
             WHERE partner_id = $8 AND id = $9 AND deleted_at IS NULL AND updated_at = $10",
        )
        .bind(s.target_url.as_str())
        .bind(events_column(s))
        .bind(phones_column(&s.phone_numbers))
        .bind(s.is_active)
        .bind(header_column(&s.routing_id_header))
        .bind(header_column(&s.routing_key_header))
        .bind(s.updated_at.as_micros())
        .bind(s.partner_id.as_str())
        .bind(s.id.as_str())
        .bind(read_updated_at.as_micros())
        .execute(&mut *tx)
        .await;
        let updated = match res {
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                return Err(self
                    .duplicate_url(&s.partner_id, s.target_url.as_str())
                    .await);
            }
            Err(e) => return Err(e.into()),
            Ok(done) => done.rows_affected() == 1,
        };
        if !updated {
            let live: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM subscriptions \
                 WHERE partner_id = $1 AND id = $2 AND deleted_at IS NULL)",
            )
            .bind(s.partner_id.as_str())
            .bind(s.id.as_str())
            .fetch_one(&mut *tx)
            .await?;
            return Ok(if live {
                UpdateResult::Stale
            } else {
                UpdateResult::Gone
            });
        }
        if forget_routing_tokens {
            sqlx::query("DELETE FROM routing_tokens WHERE subscription_id = $1")
                .bind(s.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(UpdateResult::Updated)
    }

    async fn delete_subscription(
        &self,
        partner_id: &PartnerId,
        id: &SubscriptionId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE subscriptions SET deleted_at = $1, is_active = FALSE, updated_at = $1 \
             WHERE partner_id = $2 AND id = $3 AND deleted_at IS NULL",
        )
        .bind(now.as_micros())
        .bind(partner_id.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let deleted = done.rows_affected() == 1;
        if deleted {
            sqlx::query("DELETE FROM routing_tokens WHERE subscription_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn signing_secrets(&self) -> StoreResult<Vec<(SubscriptionId, String)>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, signing_secret FROM subscriptions ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, secret)| (SubscriptionId::from_stored(id), secret))
            .collect())
    }

    async fn replace_signing_secret(
        &self,
        id: &SubscriptionId,
        old: &str,
        new: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE subscriptions SET signing_secret = $1 WHERE id = $2 AND signing_secret = $3",
        )
        .bind(new)
        .bind(id.as_str())
        .bind(old)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn plan_publish(&self, events: Vec<NewEvent>) -> StoreResult<PublishPlan> {
        // Read outside the commit's transaction: under READ COMMITTED a read inside it would see
        // no more than this one, and a subscription changed in between is caught at claim time.
        let mut subs: HashMap<PartnerId, Targets> = HashMap::new();
        for p in PublishPlan::partners(&events) {
            let rows: Vec<SubscriptionRow> = sqlx::query_as(&format!(
                "SELECT {FAN_OUT_COLUMNS} FROM subscriptions \
                 WHERE partner_id = $1 AND deleted_at IS NULL AND is_active"
            ))
            .bind(p.as_str())
            .fetch_all(&self.pool)
            .await?;
            subs.insert(p, rows::targets(rows)?);
        }
        Ok(PublishPlan::new(events, &subs))
    }

    async fn commit_publish(
        &self,
        plan: PublishPlan,
        now: Timestamp,
        lease_until: Option<Timestamp>,
    ) -> StoreResult<PublishBatch> {
        // Due times and leases are on the database's clock (see `DbClock`).
        let shift = self.clock.offset(&self.pool).await?;
        let on_db = |t: Timestamp| Timestamp::from_micros(t.as_micros() + shift);
        let (now, lease_until) = (on_db(now), lease_until.map(on_db));
        // A fixed number of statements per batch: each is a network round trip.
        let mut tx = self.pool.begin().await?;
        let accepted = insert_events(&mut tx, &plan, now).await?;
        let rows = plan.rows(&accepted, lease_until.is_some());
        let ids = insert_deliveries(&mut tx, &plan, &rows, now, lease_until).await?;
        if rows.iter().any(|r| !r.leased) {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(WAKE_CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(plan.finish(&accepted, &rows, &ids))
    }

    async fn claim_due(&self, req: &ClaimRequest<'_>) -> StoreResult<Claimed> {
        let shift = self.clock.offset(&self.pool).await?;
        let (now, lease_until) = (
            req.now.as_micros() + shift,
            req.lease_until.as_micros() + shift,
        );
        let limit = req.limit as usize;
        let mut tx = self.pool.begin().await?;
        // Candidates are read without locks (a full subscription's rows at the head would be
        // locked for nothing); only the rows chosen are locked, below.
        let head: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT next_attempt_at, id, subscription_id FROM deliveries \
             WHERE state = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        let head_len = head.len();
        let first = claim::choose(
            head.into_iter().map(Candidate::from).collect(),
            &req.capacity,
            limit,
        );
        let held_back = first.held_back;
        let mut chosen = first.ids;
        if claim::needs_queue_walk(head_len, chosen.len(), limit) {
            let heads: Vec<(i64, i64, String)> = sqlx::query_as(&format!(
                "WITH RECURSIVE {PENDING_QUEUES}, \
                 with_room AS ( \
                    SELECT subscription_id, \
                           $3 - COALESCE(($2::jsonb ->> subscription_id)::bigint, 0) AS room \
                    FROM queues WHERE first_due <= $1) \
                 SELECT d.next_attempt_at, d.id, q.subscription_id FROM with_room q, LATERAL ( \
                    SELECT id, next_attempt_at FROM deliveries \
                    WHERE state = 'pending' AND subscription_id = q.subscription_id \
                      AND next_attempt_at <= $1 \
                    ORDER BY next_attempt_at LIMIT GREATEST(LEAST(q.room, $4), 0)) d"
            ))
            .bind(now)
            .bind(req.capacity.in_flight_json())
            .bind(req.capacity.per_subscription_cap as i64)
            .bind(limit as i64)
            .fetch_all(&mut *tx)
            .await?;
            let heads = heads.into_iter().map(Candidate::from).collect();
            chosen = claim::choose(heads, &req.capacity, limit).ids;
        }
        if chosen.is_empty() {
            tx.commit().await?;
            return Ok(Claimed::nothing(false, held_back));
        }
        // SKIP LOCKED: nodes claiming at once take disjoint rows instead of waiting on each
        // other; the state and due checks under the lock skip rows another node leased since
        // they were read.
        let claimed: Vec<i64> = sqlx::query_scalar(
            "WITH locked AS ( \
                SELECT id FROM deliveries WHERE id = ANY($1) AND state = 'pending' \
                  AND next_attempt_at <= $2 FOR UPDATE SKIP LOCKED) \
             UPDATE deliveries d SET attempts = d.attempts + 1, next_attempt_at = $3, updated_at = $2 \
             FROM locked WHERE d.id = locked.id RETURNING d.id",
        )
        .bind(&chosen)
        .bind(now)
        .bind(lease_until)
        .fetch_all(&mut *tx)
        .await?;
        let lost_to_other_nodes = claimed.len() < chosen.len();
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(Claimed::nothing(lost_to_other_nodes, held_back));
        }
        let rows: Vec<DueRow> = sqlx::query_as(&format!(
            "SELECT {DUE_COLUMNS} \
             FROM deliveries d JOIN events e ON e.seq = d.event_seq \
                  JOIN subscriptions s ON s.id = d.subscription_id \
             WHERE d.id = ANY($1) ORDER BY d.next_attempt_at, d.id"
        ))
        .bind(&claimed)
        .fetch_all(&mut *tx)
        .await?;
        let more_due = rows.len() == limit || lost_to_other_nodes;
        let (live, dead): (Vec<DueRow>, Vec<DueRow>) = rows.into_iter().partition(|r| r.live);
        let dead: Vec<i64> = dead.iter().map(|d| d.id).collect();
        if !dead.is_empty() {
            sqlx::query(
                "UPDATE deliveries SET state = 'cancelled', updated_at = $1 WHERE id = ANY($2)",
            )
            .bind(now)
            .bind(&dead)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Claimed {
            more_due: more_due || !dead.is_empty(),
            deliveries: rows::due_deliveries(live)?,
            held_back,
        })
    }

    async fn record_outcomes(
        &self,
        outcomes: &[Outcome],
        now: Timestamp,
    ) -> StoreResult<Vec<Deactivation>> {
        let shift = self.clock.offset(&self.pool).await?;
        // Subscription rows keep the API's clock (the node's), deliveries the database's.
        let (node_now, now) = (now.as_micros(), now.as_micros() + shift);
        let mut tx = self.pool.begin().await?;
        let rows: Vec<_> = outcomes.iter().map(outcome_row).collect();
        // Fenced by attempt number: an outcome whose delivery was re-claimed meanwhile is skipped.
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
        .bind(rows.iter().map(|r| r.3.map(|at| at + shift)).collect::<Vec<_>>())
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let applied: std::collections::HashSet<(i64, i64)> = applied.into_iter().collect();
        let kept: Vec<&AttemptRecord> = outcomes
            .iter()
            .filter(|o| applied.contains(&applied_key(o)))
            .map(|o| &o.attempt)
            .collect();
        if kept.len() < outcomes.len() {
            tracing::warn!(
                skipped = outcomes.len() - kept.len(),
                "outcomes fenced off: their deliveries were re-claimed after the lease expired"
            );
        }
        if !kept.is_empty() {
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
            .execute(&mut *tx)
            .await?;
        }
        let mut deactivated = Vec::new();
        for o in outcomes
            .iter()
            .filter(|o| applied.contains(&applied_key(o)))
        {
            if let Some(t) = &o.learned_routing_token {
                // Only while the subscription still uses the header the token came back in.
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
                .execute(&mut *tx)
                .await?;
            }
            if let Some(d) = &o.deactivate_subscription {
                let done = sqlx::query(
                    "UPDATE subscriptions SET is_active = FALSE, updated_at = GREATEST($1, updated_at + 1) \
                     WHERE id = $2 AND target_url = $3 AND is_active AND deleted_at IS NULL",
                )
                .bind(node_now)
                .bind(d.subscription_id.as_str())
                .bind(&d.target_url)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    deactivated.push(d.clone());
                }
            }
        }
        tx.commit().await?;
        Ok(deactivated)
    }

    async fn next_due_after(&self, after: Timestamp) -> StoreResult<Option<Timestamp>> {
        let shift = self.clock.offset(&self.pool).await?;
        let first_due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries \
             WHERE state = 'pending' AND next_attempt_at > $1",
        )
        .bind(after.as_micros() + shift)
        .fetch_one(&self.pool)
        .await?;
        Ok(first_due.map(|at| Timestamp::from_micros(at - shift)))
    }

    async fn routing_token(
        &self,
        subscription_id: &SubscriptionId,
        chat_id: &str,
    ) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT token FROM routing_tokens WHERE subscription_id = $1 AND chat_id = $2",
        )
        .bind(subscription_id.as_str())
        .bind(chat_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn delivery_counts(&self) -> StoreResult<DeliveryCounts> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        Ok(counts_from(rows))
    }

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
}

async fn insert_partner(tx: &mut Transaction<'_, Postgres>, p: &Partner) -> StoreResult<()> {
    sqlx::query("INSERT INTO partners (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(p.id.as_str())
        .bind(&p.name)
        .bind(p.created_at.as_micros())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_api_key(tx: &mut Transaction<'_, Postgres>, k: &ApiKeyRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, partner_id, name, key_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(k.id.as_str())
    .bind(k.partner_id.as_str())
    .bind(&k.name)
    .bind(k.hash.as_bytes())
    .bind(k.created_at.as_micros())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

type EventKey = (String, String);

/// Inserts the plan's new events; for each event in the batch, what the insert found.
async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    plan: &PublishPlan,
    now: Timestamp,
) -> StoreResult<Vec<Option<Acceptance>>> {
    // Rows go in (partner_id, event_id) order: two nodes inserting overlapping ids then wait
    // on each other in the same order instead of deadlocking.
    let mut new: Vec<(usize, &NewEvent, i64)> = plan.new_events().collect();
    new.sort_by(|a, b| (&a.1.partner_id, &a.1.event_id).cmp(&(&b.1.partner_id, &b.1.event_id)));
    let column = |f: fn(&NewEvent) -> &str| new.iter().map(|n| f(n.1)).collect::<Vec<&str>>();
    let phones: Vec<Option<&str>> = new
        .iter()
        .map(|n| n.1.phone_number.as_ref().map(|p| p.as_str()))
        .collect();
    let counts: Vec<i64> = new.iter().map(|n| n.2).collect();
    // ON CONFLICT makes concurrent publishes of one event_id on two nodes create one event:
    // the second waits on the unique index, then skips the row the first committed.
    let inserted: Vec<(i64, String, String)> = sqlx::query_as(
        "INSERT INTO events (partner_id, event_id, event_type, phone_number, created_at, \
         trace_id, data, deliveries, accepted_at) \
         SELECT u.*, $9 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                                   $6::text[], $7::text[], $8::bigint[]) AS u \
         ON CONFLICT (partner_id, event_id) DO NOTHING RETURNING seq, partner_id, event_id",
    )
    .bind(column(|e| e.partner_id.as_str()))
    .bind(column(|e| e.event_id.as_str()))
    .bind(column(|e| e.event_type.as_str()))
    .bind(&phones)
    .bind(column(|e| e.created_at.as_str()))
    .bind(column(|e| e.trace_id.as_str()))
    .bind(column(|e| &e.data))
    .bind(&counts)
    .bind(now.as_micros())
    .fetch_all(&mut **tx)
    .await?;
    let all_new = inserted.len() == new.len();
    let inserted: HashMap<EventKey, i64> = inserted
        .into_iter()
        .map(|(seq, p, e)| ((p, e), seq))
        .collect();
    let mut prior: HashMap<EventKey, i64> = HashMap::new();
    if !all_new {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT partner_id, event_id, deliveries FROM events \
             WHERE (partner_id, event_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
        )
        .bind(column(|e| e.partner_id.as_str()))
        .bind(column(|e| e.event_id.as_str()))
        .fetch_all(&mut **tx)
        .await?;
        prior = rows.into_iter().map(|(p, e, n)| ((p, e), n)).collect();
    }
    let mut accepted = vec![None; plan.events().len()];
    for (i, e, _) in new {
        let key = (
            e.partner_id.as_str().to_owned(),
            e.event_id.as_str().to_owned(),
        );
        accepted[i] = Some(match inserted.get(&key) {
            Some(seq) => Acceptance::New { seq: *seq },
            None => Acceptance::Before {
                deliveries: prior.get(&key).copied().unwrap_or_default(),
            },
        });
    }
    Ok(accepted)
}

/// Inserts the delivery rows; their ids, in `rows` order.
async fn insert_deliveries(
    tx: &mut Transaction<'_, Postgres>,
    plan: &PublishPlan,
    rows: &[DeliveryRow],
    now: Timestamp,
    lease_until: Option<Timestamp>,
) -> StoreResult<Vec<DeliveryId>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let sub = |r: &DeliveryRow| plan.deliveries()[r.plan_index].subscription_id().as_str();
    let returned: Vec<(i64, i64, String)> = sqlx::query_as(
        "INSERT INTO deliveries (event_seq, subscription_id, state, attempts, \
         next_attempt_at, created_at, updated_at) \
         SELECT u.seq, u.sub, 'pending', u.attempts, u.due, $5, $5 \
         FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) AS u(seq, sub, attempts, due) \
         RETURNING id, event_seq, subscription_id",
    )
    .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
    .bind(rows.iter().map(sub).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| i64::from(r.leased)).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| due_at(r, now, lease_until).as_micros())
            .collect::<Vec<_>>(),
    )
    .bind(now.as_micros())
    .fetch_all(&mut **tx)
    .await?;
    // RETURNING promises no order: pair rows by (event, subscription), unique within a publish.
    let ids: HashMap<(i64, String), i64> = returned
        .into_iter()
        .map(|(id, seq, sub)| ((seq, sub), id))
        .collect();
    rows.iter()
        .map(|r| {
            ids.get(&(r.seq, sub(r).to_owned()))
                .map(|id| DeliveryId::from_stored(*id))
                .ok_or_else(|| anyhow::anyhow!("a delivery insert returned no id").into())
        })
        .collect()
}
