//! Subscriptions, their signing secrets and routing tokens on PostgreSQL.

use async_trait::async_trait;
use hookline_core::{PartnerId, SubscriptionId, Timestamp};
use sqlx::postgres::PgQueryResult;
use sqlx::{PgPool, Postgres, Transaction};

use super::{is_unique_violation, PostgresStore};
use crate::store::rows::{self, *};
use crate::store::subscription_writes::{self, SubscriptionWriteSteps, Written};
use crate::store::{NewSubscription, StoreResult, Subscription, SubscriptionStore, UpdateResult};

/// [`subscription_writes`]'s steps in one PostgreSQL transaction.
struct Writes<'p> {
    /// Taken (rolled back) after a unique violation, which aborts it.
    tx: Option<Transaction<'static, Postgres>>,
    pool: &'p PgPool,
}

impl Writes<'_> {
    fn tx(&mut self) -> &mut Transaction<'static, Postgres> {
        self.tx.as_mut().expect("used before a unique violation")
    }
}

fn written(res: Result<PgQueryResult, sqlx::Error>) -> StoreResult<Written> {
    match res {
        Err(e) if is_unique_violation(&e) => Ok(Written::DuplicateUrl),
        Err(e) => Err(e.into()),
        Ok(done) if done.rows_affected() == 1 => Ok(Written::Applied),
        Ok(_) => Ok(Written::Missed),
    }
}

impl SubscriptionWriteSteps for Writes<'_> {
    /// Two statements on purpose: the partner row's lock makes a concurrent create for the
    /// partner wait for this transaction, and the count, a statement of its own, takes its
    /// snapshot only after that wait, so it sees what the other create committed. (A count
    /// inside the locking statement would use the snapshot from before the wait.)
    async fn live_subscriptions(&mut self, partner_id: &PartnerId) -> StoreResult<u64> {
        sqlx::query("SELECT 1 FROM partners WHERE id = $1 FOR NO KEY UPDATE")
            .bind(partner_id.as_str())
            .fetch_optional(&mut **self.tx())
            .await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM subscriptions WHERE partner_id = $1 AND deleted_at IS NULL",
        )
        .bind(partner_id.as_str())
        .fetch_one(&mut **self.tx())
        .await?;
        Ok(n as u64)
    }

    async fn insert(&mut self, new: &NewSubscription) -> StoreResult<Written> {
        let s = &new.subscription;
        let res = sqlx::query(
            "INSERT INTO subscriptions (id, partner_id, target_url, subscribed_events, phone_numbers, \
             is_active, signing_secret, routing_id_header, routing_key_header, created_at, updated_at, \
             target_url_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .bind(s.target_url.uniqueness_key())
        .execute(&mut **self.tx())
        .await;
        written(res)
    }

    async fn update(
        &mut self,
        s: &Subscription,
        read_updated_at: Timestamp,
    ) -> StoreResult<Written> {
        let res = sqlx::query(
            "UPDATE subscriptions SET target_url = $1, subscribed_events = $2, phone_numbers = $3, \
             is_active = $4, routing_id_header = $5, routing_key_header = $6, updated_at = $7, \
             target_url_key = CASE WHEN target_url = $1 THEN target_url_key ELSE $11 END, \
             failing_since = CASE WHEN $4 AND NOT is_active THEN NULL ELSE failing_since END, \
             exhausted_failures = CASE WHEN $4 AND NOT is_active THEN 0 ELSE exhausted_failures END \
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
        .bind(s.target_url.uniqueness_key())
        .execute(&mut **self.tx())
        .await;
        written(res)
    }

    async fn is_live(&mut self, partner_id: &PartnerId, id: &SubscriptionId) -> StoreResult<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM subscriptions \
             WHERE partner_id = $1 AND id = $2 AND deleted_at IS NULL)",
        )
        .bind(partner_id.as_str())
        .bind(id.as_str())
        .fetch_one(&mut **self.tx())
        .await?)
    }

    async fn forget_routing_tokens(&mut self, id: &SubscriptionId) -> StoreResult<()> {
        sqlx::query("DELETE FROM routing_tokens WHERE subscription_id = $1")
            .bind(id.as_str())
            .execute(&mut **self.tx())
            .await?;
        Ok(())
    }

    /// After a unique violation the transaction is aborted: it is given back first and the
    /// owner read outside it.
    async fn url_owner(
        &mut self,
        partner_id: &PartnerId,
        key: &str,
    ) -> StoreResult<SubscriptionId> {
        drop(self.tx.take());
        let id: String = sqlx::query_scalar(
            "SELECT id FROM subscriptions WHERE partner_id = $1 AND target_url_key = $2 AND deleted_at IS NULL",
        )
        .bind(partner_id.as_str())
        .bind(key)
        .fetch_one(self.pool)
        .await?;
        Ok(SubscriptionId::from_stored(id))
    }

    async fn commit(mut self) -> StoreResult<()> {
        Ok(self.tx.take().expect("not aborted").commit().await?)
    }
}

impl PostgresStore {
    async fn writes(&self) -> StoreResult<Writes<'_>> {
        Ok(Writes {
            tx: Some(self.pool.begin().await?),
            pool: &self.pool,
        })
    }
}

#[async_trait]
impl SubscriptionStore for PostgresStore {
    async fn insert_subscription(
        &self,
        new: &NewSubscription,
        max_per_partner: usize,
    ) -> StoreResult<()> {
        subscription_writes::insert(self.writes().await?, new, max_per_partner).await
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
        let steps = self.writes().await?;
        subscription_writes::update(steps, s, read_updated_at, forget_routing_tokens).await
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

    async fn rotate_signing_secret(
        &self,
        partner_id: &PartnerId,
        id: &SubscriptionId,
        new: &str,
        previous_expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        // Publish and claims read the secrets from the row: every node signs with the new one
        // from its next claim or publish on.
        let done = sqlx::query(
            "UPDATE subscriptions SET \
             previous_signing_secret = CASE WHEN $1::bigint IS NULL THEN NULL ELSE signing_secret END, \
             previous_secret_expires_at = $1, signing_secret = $2, \
             updated_at = GREATEST($3, updated_at + 1) \
             WHERE partner_id = $4 AND id = $5 AND deleted_at IS NULL",
        )
        .bind(previous_expires_at.map(Timestamp::as_micros))
        .bind(new)
        .bind(now.as_micros())
        .bind(partner_id.as_str())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn previous_signing_secrets(&self) -> StoreResult<Vec<(SubscriptionId, String)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, previous_signing_secret FROM subscriptions \
             WHERE previous_signing_secret IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, s)| (SubscriptionId::from_stored(id), s))
            .collect())
    }

    async fn replace_previous_signing_secret(
        &self,
        id: &SubscriptionId,
        old: &str,
        new: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE subscriptions SET previous_signing_secret = $1 \
             WHERE id = $2 AND previous_signing_secret = $3",
        )
        .bind(new)
        .bind(id.as_str())
        .bind(old)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
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
}
