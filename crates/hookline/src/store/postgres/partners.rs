//! Partners, their API keys, and the operator's settings on PostgreSQL.

use async_trait::async_trait;
use hookline_core::{ApiKeyHash, ApiKeyId, PartnerId, Timestamp};
use sqlx::{Postgres, Transaction};

use super::PostgresStore;
use crate::store::rows::PartnerRow;
use crate::store::{ApiKeyRecord, ApiKeySummary, Partner, PartnerStore, StoreResult};

#[async_trait]
impl PartnerStore for PostgresStore {
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
            tx.rollback().await?;
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

    async fn list_api_keys(&self, partner_id: &PartnerId) -> StoreResult<Vec<ApiKeySummary>> {
        let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, name, created_at FROM api_keys \
             WHERE partner_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
        )
        .bind(partner_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, created_at)| ApiKeySummary {
                id: ApiKeyId::from_stored(id),
                name,
                created_at: Timestamp::from_micros(created_at),
            })
            .collect())
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
