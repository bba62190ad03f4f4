//! The `portal_sessions` row shape, the same on both backends, and its conversion.

use hookline_core::{
    ApiKeyHash, PartnerId, PortalPrincipal, PortalSession, PortalTokenKind, Timestamp,
};

pub const PORTAL_COLUMNS: &str =
    "token_hash, kind, partner_id, csrf_token, created_at, expires_at, credential_hash";

#[derive(sqlx::FromRow)]
pub struct PortalRow {
    pub token_hash: Vec<u8>,
    pub kind: String,
    pub partner_id: Option<String>,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub credential_hash: Option<Vec<u8>>,
}

impl PortalRow {
    /// The columns to write for `s`, in [`PORTAL_COLUMNS`] order (the hash as bytes).
    pub fn of(s: &PortalSession) -> PortalRow {
        PortalRow {
            token_hash: s.token_hash.as_bytes().to_vec(),
            kind: s.kind.as_str().to_owned(),
            partner_id: s.partner().map(|p| p.as_str().to_owned()),
            csrf_token: s.csrf_token.clone(),
            created_at: s.created_at.as_micros(),
            expires_at: s.expires_at.as_micros(),
            credential_hash: s.credential.as_ref().map(|h| h.as_bytes().to_vec()),
        }
    }

    pub fn into_session(self) -> anyhow::Result<PortalSession> {
        let token_hash = ApiKeyHash::from_bytes(&self.token_hash)
            .ok_or_else(|| anyhow::anyhow!("portal_sessions.token_hash is not 32 bytes"))?;
        let kind = match self.kind.as_str() {
            "link" => PortalTokenKind::Link,
            "session" => PortalTokenKind::Session,
            other => anyhow::bail!("portal_sessions.kind '{other}' is unknown"),
        };
        let credential = match self.credential_hash {
            Some(bytes) => Some(ApiKeyHash::from_bytes(&bytes).ok_or_else(|| {
                anyhow::anyhow!("portal_sessions.credential_hash is not 32 bytes")
            })?),
            None => None,
        };
        Ok(PortalSession {
            token_hash,
            credential,
            kind,
            principal: match self.partner_id {
                Some(p) => PortalPrincipal::Partner(PartnerId::from_stored(p)),
                None => PortalPrincipal::Operator,
            },
            csrf_token: self.csrf_token,
            created_at: Timestamp::from_micros(self.created_at),
            expires_at: Timestamp::from_micros(self.expires_at),
        })
    }
}
