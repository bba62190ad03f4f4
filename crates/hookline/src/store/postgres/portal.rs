//! Portal links and sessions on PostgreSQL.

use async_trait::async_trait;
use hookline_core::{ApiKeyHash, PortalSession, Timestamp};

use super::PostgresStore;
use crate::store::portal_rows::{PortalRow, PORTAL_COLUMNS};
use crate::store::{PortalSessionStore, StoreResult};

#[async_trait]
impl PortalSessionStore for PostgresStore {
    async fn create_portal_session(&self, row: &PortalSession, now: Timestamp) -> StoreResult<()> {
        let row = PortalRow::of(row);
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= $1")
            .bind(now.as_micros())
            .execute(&mut *tx)
            .await?;
        insert(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn redeem_portal_link(
        &self,
        link: &ApiKeyHash,
        session_hash: &ApiKeyHash,
        csrf_token: &str,
        now: Timestamp,
    ) -> StoreResult<Option<PortalSession>> {
        let mut tx = self.pool.begin().await?;
        // DELETE … RETURNING takes the row lock: of two racing exchanges, one finds nothing.
        let found: Option<PortalRow> = sqlx::query_as(&format!(
            "DELETE FROM portal_sessions WHERE token_hash = $1 AND kind = 'link' \
             AND expires_at > $2 RETURNING {PORTAL_COLUMNS}"
        ))
        .bind(link.as_bytes())
        .bind(now.as_micros())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mut row) = found else {
            tx.rollback().await?;
            return Ok(None);
        };
        row.token_hash = session_hash.as_bytes().to_vec();
        row.kind = "session".to_owned();
        row.csrf_token = csrf_token.to_owned();
        row.created_at = now.as_micros();
        insert(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(Some(row.into_session()?))
    }

    async fn portal_session(
        &self,
        hash: &ApiKeyHash,
        now: Timestamp,
    ) -> StoreResult<Option<PortalSession>> {
        let row: Option<PortalRow> = sqlx::query_as(&format!(
            "SELECT {PORTAL_COLUMNS} FROM portal_sessions \
             WHERE token_hash = $1 AND kind = 'session' AND expires_at > $2"
        ))
        .bind(hash.as_bytes())
        .bind(now.as_micros())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(PortalRow::into_session).transpose()?)
    }

    async fn end_portal_session(&self, hash: &ApiKeyHash) -> StoreResult<()> {
        sqlx::query("DELETE FROM portal_sessions WHERE token_hash = $1 AND kind = 'session'")
            .bind(hash.as_bytes())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    row: &PortalRow,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO portal_sessions ({PORTAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&row.token_hash)
    .bind(&row.kind)
    .bind(&row.partner_id)
    .bind(&row.csrf_token)
    .bind(row.created_at)
    .bind(row.expires_at)
    .bind(&row.credential_hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
