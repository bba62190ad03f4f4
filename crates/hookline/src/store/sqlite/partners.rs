//! Partners, their API keys, and the operator's settings on SQLite.

use async_trait::async_trait;
use hookline_core::{ApiKeyHash, ApiKeyId, PartnerId, Timestamp};
use rusqlite::{params, OptionalExtension, Transaction};

use super::{rows as sqlite_rows, SqliteStore};
use crate::store::{ApiKeyRecord, ApiKeySummary, Partner, PartnerStore, StoreResult};

fn insert_partner(tx: &Transaction<'_>, p: &Partner) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO partners (id, name, created_at) VALUES (?1, ?2, ?3)",
        params![p.id.as_str(), p.name, p.created_at.as_micros()],
    )?;
    Ok(())
}

fn insert_api_key(tx: &Transaction<'_>, k: &ApiKeyRecord) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO api_keys (id, partner_id, name, key_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            k.id.as_str(),
            k.partner_id.as_str(),
            k.name,
            k.hash.as_bytes(),
            k.created_at.as_micros()
        ],
    )?;
    Ok(())
}

#[async_trait]
impl PartnerStore for SqliteStore {
    async fn admin_token_hash(&self) -> StoreResult<Option<ApiKeyHash>> {
        self.read(|c| {
            let v: Option<Vec<u8>> = c
                .query_row(
                    "SELECT value FROM settings WHERE key = 'admin_token_hash'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(v.and_then(|b| ApiKeyHash::from_bytes(&b)))
        })
        .await
    }

    async fn is_fresh(&self) -> StoreResult<bool> {
        self.write(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM partners", [], |r| r.get(0))?;
            Ok(n == 0)
        })
        .await
    }

    async fn bootstrap(
        &self,
        admin_hash: Option<&ApiKeyHash>,
        partner: &Partner,
        key: &ApiKeyRecord,
    ) -> StoreResult<()> {
        let (hash, partner, key) = (admin_hash.cloned(), partner.clone(), key.clone());
        self.write(move |c| {
            let tx = c.transaction()?;
            if let Some(hash) = hash {
                tx.execute(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES ('admin_token_hash', ?1)",
                    [hash.as_bytes()],
                )?;
            }
            insert_partner(&tx, &partner)?;
            insert_api_key(&tx, &key)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn create_partner(&self, partner: &Partner) -> StoreResult<()> {
        let partner = partner.clone();
        self.write(move |c| {
            let tx = c.transaction()?;
            insert_partner(&tx, &partner)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn list_partners(&self) -> StoreResult<Vec<Partner>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name, created_at FROM partners ORDER BY created_at, id",
            )?;
            let rows = stmt
                .query_map([], sqlite_rows::partner)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn partner_exists(&self, partner_id: &PartnerId) -> StoreResult<bool> {
        let id = partner_id.as_str().to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT 1 FROM partners WHERE id = ?1")?
                .exists([id])?)
        })
        .await
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let key = key.clone();
        self.write(move |c| {
            let tx = c.transaction()?;
            insert_api_key(&tx, &key)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        partner_id: &PartnerId,
        key_id: &ApiKeyId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (partner_id, key_id) = (partner_id.clone(), key_id.clone());
        let now = now.as_micros();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND partner_id = ?3 AND revoked_at IS NULL",
                params![now, key_id.as_str(), partner_id.as_str()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn partner_for_key(&self, hash: &ApiKeyHash) -> StoreResult<Option<PartnerId>> {
        let hash = hash.clone();
        self.read(move |c| {
            let id: Option<String> = c
                .prepare_cached(
                    "SELECT partner_id FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
                )?
                .query_row([hash.as_bytes()], |r| r.get(0))
                .optional()?;
            Ok(id.map(PartnerId::from_stored))
        })
        .await
    }

    async fn list_api_keys(&self, partner_id: &PartnerId) -> StoreResult<Vec<ApiKeySummary>> {
        let id = partner_id.as_str().to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name, created_at FROM api_keys \
                 WHERE partner_id = ?1 AND revoked_at IS NULL ORDER BY created_at, id",
            )?;
            let keys = stmt
                .query_map([id], |r| {
                    Ok(ApiKeySummary {
                        id: ApiKeyId::from_stored(r.get::<_, String>(0)?),
                        name: r.get(1)?,
                        created_at: Timestamp::from_micros(r.get(2)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(keys)
        })
        .await
    }
}
