//! Portal sessions: who a browser session acts for, and the one-time links that open them.
//!
//! Every token here is 32 CSPRNG bytes. Links and session cookies are shown to the browser once
//! and stored only as their SHA-256 hash ([`ApiKey`]'s scheme): a copy of the database opens no
//! session. A session's CSRF token is stored as it is, because every page the session is shown
//! embeds it in its forms; it is worth nothing without the session cookie.

use crate::{ApiKey, ApiKeyHash, PartnerId, Timestamp};

/// Prefix of one-time portal links' tokens.
pub const LINK_TOKEN_PREFIX: &str = "hlpl_";
/// Prefix of portal session cookies.
pub const SESSION_TOKEN_PREFIX: &str = "hlps_";

/// Whom a portal session acts for: one partner (a portal link or an API key), or the operator
/// (the admin token). A partner session reaches only that partner's data, as its API key would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalPrincipal {
    Partner(PartnerId),
    Operator,
}

/// What a stored row is: a link not used yet, or an open session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalTokenKind {
    Link,
    Session,
}

impl PortalTokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortalTokenKind::Link => "link",
            PortalTokenKind::Session => "session",
        }
    }
}

/// A stored link or session: the token's hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSession {
    pub token_hash: ApiKeyHash,
    pub kind: PortalTokenKind,
    pub principal: PortalPrincipal,
    /// Proves a form was rendered for this session (compared in constant time). Stored as
    /// issued: it is worthless without the session cookie, which is stored hashed.
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The hash of the API key or admin token a sign-in presented: the session lives only while
    /// that credential would still be accepted, so revoking the key (or changing the admin
    /// token) ends it. `None` for links and the sessions they open, which an operator granted.
    pub credential: Option<ApiKeyHash>,
}

impl PortalSession {
    /// A fresh session (or link, by `kind`) for `principal`: the token to hand out once, and
    /// the row to store.
    pub fn issue(
        kind: PortalTokenKind,
        principal: PortalPrincipal,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> (ApiKey, PortalSession) {
        let prefix = match kind {
            PortalTokenKind::Link => LINK_TOKEN_PREFIX,
            PortalTokenKind::Session => SESSION_TOKEN_PREFIX,
        };
        let token = ApiKey::generate(prefix);
        let session = PortalSession {
            token_hash: token.hash(),
            kind,
            principal,
            csrf_token: ApiKey::generate("").expose().to_owned(),
            created_at: now,
            expires_at,
            credential: None,
        };
        (token, session)
    }

    /// The same session, tied to the credential its sign-in presented.
    pub fn signed_in_with(self, credential: ApiKeyHash) -> Self {
        PortalSession {
            credential: Some(credential),
            ..self
        }
    }

    /// The partner this session may act for; `None` for the operator.
    pub fn partner(&self) -> Option<&PartnerId> {
        match &self.principal {
            PortalPrincipal::Partner(p) => Some(p),
            PortalPrincipal::Operator => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_hash_to_their_row_and_differ() {
        let now = Timestamp::from_micros(1);
        let (token, row) =
            PortalSession::issue(PortalTokenKind::Link, PortalPrincipal::Operator, now, now);
        assert!(token.expose().starts_with(LINK_TOKEN_PREFIX));
        assert!(row.token_hash.matches(&token));
        let (other, row2) = PortalSession::issue(
            PortalTokenKind::Session,
            PortalPrincipal::Operator,
            now,
            now,
        );
        assert!(other.expose().starts_with(SESSION_TOKEN_PREFIX));
        assert_ne!(row.csrf_token, row2.csrf_token);
        assert_eq!(row.csrf_token.len(), 43);
    }
}
