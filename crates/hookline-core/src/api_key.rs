//! Partner API keys and operator tokens: random, shown once, stored only as a SHA-256 hash.
//!
//! The keys carry 256 bits of entropy, so a fast hash is enough: there is nothing to brute-force.
//! Lookups go by hash through a unique index; [`ApiKeyHash::matches`] compares in constant time
//! where a single stored hash is checked directly (the operator token).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

#[derive(Clone)]
pub struct ApiKey(String);

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyHash([u8; 32]);

impl ApiKey {
    /// `prefix` tells keys apart at a glance (`hl_live_`, `hl_admin_`); the rest is 32 CSPRNG bytes.
    pub fn generate(prefix: &str) -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        ApiKey(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn from_presented(raw: &str) -> Self {
        ApiKey(raw.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKeyHash {
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(ApiKeyHash)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn matches(&self, presented: &ApiKey) -> bool {
        self.same_as(&presented.hash())
    }

    /// Constant-time equality (the derived `==` is not).
    pub fn same_as(&self, other: &ApiKeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyHash({}…)", hex::encode(&self.0[..4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_and_hash_matches() {
        let a = ApiKey::generate("hl_live_");
        let b = ApiKey::generate("hl_live_");
        assert!(a.expose().starts_with("hl_live_"));
        assert_ne!(a.expose(), b.expose());
        assert!(a.hash().matches(&a));
        assert!(!a.hash().matches(&b));
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
