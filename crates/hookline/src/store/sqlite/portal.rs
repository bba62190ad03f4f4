//! Portal links and sessions on SQLite.

use async_trait::async_trait;
use hookline_core::{ApiKeyHash, PortalSession, Timestamp};
use rusqlite::{params, OptionalExtension, Row};

use super::SqliteStore;
use crate::store::portal_rows::{PortalRow, PORTAL_COLUMNS};
use crate::store::{PortalSessionStore, StoreResult};

fn portal_row(r: &Row<'_>) -> rusqlite::Result<PortalRow> {
    Ok(PortalRow {
        token_hash: r.get("token_hash")?,
        kind: r.get("kind")?,
        partner_id: r.get("partner_id")?,
        csrf_token: r.get("csrf_token")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        credential_hash: r.get("credential_hash")?,
    })
}

fn insert(tx: &rusqlite::Transaction<'_>, row: &PortalRow) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO portal_sessions ({PORTAL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ),
        params![
            row.token_hash,
            row.kind,
            row.partner_id,
            row.csrf_token,
            row.created_at,
            row.expires_at,
            row.credential_hash
        ],
    )?;
    Ok(())
}

#[async_trait]
impl PortalSessionStore for SqliteStore {
    async fn create_portal_session(&self, row: &PortalSession, now: Timestamp) -> StoreResult<()> {
        let row = PortalRow::of(row);
        self.write(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM portal_sessions WHERE expires_at <= ?1",
                [now.as_micros()],
            )?;
            insert(&tx, &row)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn redeem_portal_link(
        &self,
        link: &ApiKeyHash,
        session_hash: &ApiKeyHash,
        csrf_token: &str,
        now: Timestamp,
    ) -> StoreResult<Option<PortalSession>> {
        let (link, session_hash) = (link.as_bytes().to_vec(), session_hash.as_bytes().to_vec());
        let csrf_token = csrf_token.to_owned();
        let row = self
            .write(move |c| {
                let tx = c.transaction()?;
                let found = tx
                    .query_row(
                        &format!(
                            "DELETE FROM portal_sessions WHERE token_hash = ?1 AND kind = 'link' \
                             AND expires_at > ?2 RETURNING {PORTAL_COLUMNS}"
                        ),
                        params![link, now.as_micros()],
                        portal_row,
                    )
                    .optional()?;
                let Some(mut row) = found else {
                    return Ok(None);
                };
                (row.token_hash, row.kind, row.csrf_token) =
                    (session_hash, "session".to_owned(), csrf_token);
                row.created_at = now.as_micros();
                insert(&tx, &row)?;
                tx.commit()?;
                Ok(Some(row))
            })
            .await?;
        Ok(row.map(PortalRow::into_session).transpose()?)
    }

    async fn portal_session(
        &self,
        hash: &ApiKeyHash,
        now: Timestamp,
    ) -> StoreResult<Option<PortalSession>> {
        let hash = hash.as_bytes().to_vec();
        let row = self
            .read(move |c| {
                Ok(c.prepare_cached(&format!(
                    "SELECT {PORTAL_COLUMNS} FROM portal_sessions \
                     WHERE token_hash = ?1 AND kind = 'session' AND expires_at > ?2"
                ))?
                .query_row(params![hash, now.as_micros()], portal_row)
                .optional()?)
            })
            .await?;
        Ok(row.map(PortalRow::into_session).transpose()?)
    }

    async fn end_portal_session(&self, hash: &ApiKeyHash) -> StoreResult<()> {
        let hash = hash.as_bytes().to_vec();
        self.write(move |c| {
            c.execute(
                "DELETE FROM portal_sessions WHERE token_hash = ?1 AND kind = 'session'",
                [hash],
            )?;
            Ok(())
        })
        .await
    }
}
