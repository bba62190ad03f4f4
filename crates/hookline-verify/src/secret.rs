//! A signing secret and the two signatures made with it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of every Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A webhook signing secret (`whsec_` + standard base64 of the key bytes).
///
/// Both HMACs are keyed once when the secret is parsed, so each signature costs only the
/// message's hashing. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Secret {
    /// Keyed with the base64-decoded bytes (Standard Webhooks).
    standard: HmacSha256,
    /// Keyed with the whole secret string as given, prefix included (Linq's legacy scheme).
    legacy: HmacSha256,
}

/// The secret is not `whsec_` (optional) followed by non-empty standard base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSecret;

impl fmt::Display for InvalidSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("signing secret must be 'whsec_' followed by standard base64")
    }
}

impl std::error::Error for InvalidSecret {}

impl Secret {
    /// Parses a secret as the subscription's create answer shows it (`whsec_…`). The prefix
    /// may be left out, as Standard Webhooks libraries allow; the legacy signature is then keyed
    /// with the string as given (Linq's receivers key it with the whole `whsec_…` string).
    pub fn parse(secret: &str) -> Result<Secret, InvalidSecret> {
        let body = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        let key = STANDARD.decode(body).map_err(|_| InvalidSecret)?;
        if key.is_empty() {
            return Err(InvalidSecret);
        }
        Ok(Secret {
            standard: HmacSha256::new_from_slice(&key).expect("HMAC takes any key length"),
            legacy: HmacSha256::new_from_slice(secret.as_bytes())
                .expect("HMAC takes any key length"),
        })
    }

    /// The Standard Webhooks signature, `v1,<base64>`: HMAC-SHA256 keyed with the decoded
    /// secret over `"{msg_id}.{timestamp}.{body}"`. This is the `webhook-signature` value.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut out = String::with_capacity(47);
        out.push_str("v1,");
        STANDARD.encode_string(self.standard_mac(msg_id, timestamp, body), &mut out);
        out
    }

    /// Linq's legacy `X-Webhook-Signature`: lowercase hex HMAC-SHA256 keyed with the whole
    /// secret string over `"{timestamp}.{body}"`.
    pub fn sign_legacy(&self, timestamp: i64, body: &[u8]) -> String {
        hex(&self.legacy_mac(timestamp, body))
    }

    pub(crate) fn standard_mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = self.standard.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    pub(crate) fn legacy_mac(&self, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = self.legacy.clone();
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = InvalidSecret;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Secret::parse(s)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// Decodes lowercase or uppercase hex into exactly 32 bytes.
pub(crate) fn unhex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // CONTRACT.md §3.5: the Standard Webhooks reference vector and the Linq-shaped one.
    #[test]
    fn reference_vector() {
        let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            s.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(
            s.sign_legacy(1614265330, body),
            "2e37df5d4a028c51a7f3133d64ae1e300d2c2c900f1b1d49d4369ad2530f8964"
        );
    }

    #[test]
    fn linq_vector() {
        let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7Jxx2Oll+OE=").unwrap();
        let body = crate::tests::LINQ_BODY.as_bytes();
        assert_eq!(body.len(), 395);
        assert_eq!(
            s.sign("2915e81c-5068-4796-ace2-21d2c94ad298", 1770319873, body),
            "v1,mbTcIuiGZBt8phWNPD97yL8uTB2xRDD3bNnn6jD3RR0="
        );
        assert_eq!(
            s.sign_legacy(1770319873, body),
            "34f8ad6573b7c642dc1ad0d7f7d78c728a62511ecb32b74095c30e565ebfa563"
        );
    }

    #[test]
    fn prefix_is_optional_for_the_standard_key() {
        let with = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let without = Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(with.sign("m", 1, b"x"), without.sign("m", 1, b"x"));
        assert_ne!(with.sign_legacy(1, b"x"), without.sign_legacy(1, b"x"));
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for bad in [
            "",
            "whsec_",
            "whsec_!!!",
            "whsec_abc-_",
            "whsec_QUJD"[..9].as_ref(),
        ] {
            assert_eq!(Secret::parse(bad).unwrap_err(), InvalidSecret, "{bad:?}");
        }
        assert!(!format!("{:?}", Secret::parse("whsec_QUJD").unwrap()).contains("QUJD"));
    }

    #[test]
    fn hex_round_trip() {
        let bytes: [u8; 32] = core::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex32(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex32(&hex(&bytes).to_uppercase()), Some(bytes));
        assert_eq!(unhex32("zz"), None);
    }
}
