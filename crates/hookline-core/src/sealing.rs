//! Signing secrets at rest. With a sealing key configured, the store holds each signing secret
//! sealed (ChaCha20-Poly1305, random nonce), bound to its subscription id: a sealed value copied
//! onto another subscription's row does not open. Without the key, a copy of the database file
//! does not give away the secrets.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use std::fmt;

/// Marks a stored secret as sealed (version 1 of the format: nonce ‖ ciphertext ‖ tag, base64).
const SEALED_PREFIX: &str = "sealed:v1:";
const KEY_BYTES: usize = 32;

/// The key from `HOOKLINE_SECRET_KEY`. `Debug` is redacted.
#[derive(Clone)]
pub struct SealingKey {
    bytes: [u8; KEY_BYTES],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealingError {
    #[error("the secret key must be standard base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`)")]
    InvalidKey,
    #[error("the stored signing secret is not in a sealed format this hookline understands")]
    Malformed,
    #[error(
        "the stored signing secret does not open with this key (wrong key, or the row was altered)"
    )]
    WrongKey,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(redacted)")
    }
}

/// True when a stored secret is sealed (as opposed to a plain `whsec_…` written without a key).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

impl SealingKey {
    pub fn parse(base64: &str) -> Result<Self, SealingError> {
        let raw = STANDARD
            .decode(base64.trim())
            .map_err(|_| SealingError::InvalidKey)?;
        let bytes: [u8; KEY_BYTES] = raw.try_into().map_err(|_| SealingError::InvalidKey)?;
        Ok(SealingKey { bytes })
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &self.bytes).expect("32 bytes is the key length"),
        )
    }

    pub fn seal(&self, secret: &str, subscription_id: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut sealed = secret.as_bytes().to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(subscription_id.as_bytes()),
                &mut sealed,
            )
            .expect("a signing secret is far below the AEAD's size limit");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(out))
    }

    pub fn open(&self, stored: &str, subscription_id: &str) -> Result<String, SealingError> {
        let encoded = stored
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SealingError::Malformed)?;
        let raw = STANDARD
            .decode(encoded)
            .map_err(|_| SealingError::Malformed)?;
        if raw.len() < NONCE_LEN {
            return Err(SealingError::Malformed);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealingError::Malformed)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(subscription_id.as_bytes()), &mut buf)
            .map_err(|_| SealingError::WrongKey)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealingError::Malformed)
    }
}

/// The key that seals, and during a key change the one it replaces (still opened, never used
/// to seal).
#[derive(Debug, Clone)]
pub struct Keyring {
    pub current: SealingKey,
    pub previous: Option<SealingKey>,
}

impl Keyring {
    pub fn seal(&self, secret: &str, subscription_id: &str) -> String {
        self.current.seal(secret, subscription_id)
    }

    /// Opens with the current key, else the previous one; the flag says the previous one was
    /// needed (the value should be sealed again with the current key).
    pub fn open(
        &self,
        stored: &str,
        subscription_id: &str,
    ) -> Result<(String, bool), SealingError> {
        match self.current.open(stored, subscription_id) {
            Ok(plain) => Ok((plain, false)),
            Err(SealingError::WrongKey) if self.previous.is_some() => self
                .previous
                .as_ref()
                .expect("checked")
                .open(stored, subscription_id)
                .map(|plain| (plain, true)),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SealingKey {
        SealingKey::parse(&STANDARD.encode([byte; 32])).unwrap()
    }

    #[test]
    fn seals_and_opens_bound_to_the_subscription() {
        let k = key(7);
        let sealed = k.seal("whsec_abc", "sub-1");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            k.seal("whsec_abc", "sub-1"),
            "a fresh nonce each time"
        );
        assert_eq!(k.open(&sealed, "sub-1").unwrap(), "whsec_abc");
        assert_eq!(k.open(&sealed, "sub-2"), Err(SealingError::WrongKey));
        assert_eq!(key(8).open(&sealed, "sub-1"), Err(SealingError::WrongKey));
    }

    #[test]
    fn a_keyring_opens_with_the_previous_key_and_seals_with_the_current() {
        let old = Keyring {
            current: key(1),
            previous: None,
        };
        let sealed_old = old.seal("whsec_abc", "s");
        let ring = Keyring {
            current: key(2),
            previous: Some(key(1)),
        };
        assert_eq!(
            ring.open(&sealed_old, "s").unwrap(),
            ("whsec_abc".into(), true)
        );
        let sealed_new = ring.seal("whsec_abc", "s");
        assert_eq!(
            ring.open(&sealed_new, "s").unwrap(),
            ("whsec_abc".into(), false)
        );
        assert_eq!(key(1).open(&sealed_new, "s"), Err(SealingError::WrongKey));
        let without_previous = Keyring {
            current: key(2),
            previous: None,
        };
        assert_eq!(
            without_previous.open(&sealed_old, "s"),
            Err(SealingError::WrongKey)
        );
    }

    #[test]
    fn rejects_bad_keys_and_tampered_values() {
        assert_eq!(
            SealingKey::parse("c2hvcnQ=").unwrap_err(),
            SealingError::InvalidKey
        );
        assert_eq!(
            SealingKey::parse("not base64!").unwrap_err(),
            SealingError::InvalidKey
        );
        let k = key(1);
        assert_eq!(k.open("whsec_plain", "s"), Err(SealingError::Malformed));
        assert_eq!(k.open("sealed:v1:@@", "s"), Err(SealingError::Malformed));
        let mut sealed = k.seal("whsec_abc", "s");
        sealed.pop();
        sealed.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(k.open(&sealed, "s").is_err());
        assert_eq!(format!("{k:?}"), "SealingKey(redacted)");
    }
}
