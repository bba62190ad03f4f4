//! Signing secrets and the two signature schemes every delivery carries.
//!
//! Standard Webhooks: key = base64-decoded secret body, message `{id}.{ts}.{body}`, `v1,<base64>`.
//! Legacy Linq: key = the whole `whsec_…` string as UTF-8, message `{ts}.{body}`, lowercase hex.
//! The HMACs are `hookline-verify`'s, the crate receivers verify with: one implementation signs
//! and verifies, and it keys both HMACs once per secret rather than once per delivery.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use std::fmt;

const PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;

/// A subscription's signing secret. `Debug` is redacted so it cannot reach a log by accident.
#[derive(Clone)]
pub struct SigningSecret {
    full: String,
    keyed: hookline_verify::Secret,
}

impl PartialEq for SigningSecret {
    fn eq(&self, other: &Self) -> bool {
        self.full == other.full
    }
}

impl Eq for SigningSecret {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing secret must be 'whsec_' followed by standard base64")]
pub struct InvalidSecret;

impl SigningSecret {
    /// 32 bytes from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut key = vec![0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut key);
        let full = format!("{PREFIX}{}", STANDARD.encode(&key));
        Self::parse(&full).expect("a generated secret parses")
    }

    pub fn parse(full: &str) -> Result<Self, InvalidSecret> {
        if !full.starts_with(PREFIX) {
            return Err(InvalidSecret);
        }
        let keyed = hookline_verify::Secret::parse(full).map_err(|_| InvalidSecret)?;
        Ok(SigningSecret {
            full: full.to_owned(),
            keyed,
        })
    }

    /// The string shown to the partner once, and stored for signing.
    pub fn expose(&self) -> &str {
        &self.full
    }

    /// `v1,<base64 HMAC>` for the `webhook-signature` header.
    pub fn sign_standard(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        self.keyed.sign(msg_id, timestamp, body)
    }

    /// Lowercase hex HMAC for the legacy `X-Webhook-Signature` header.
    pub fn sign_legacy(&self, timestamp: i64, body: &[u8]) -> String {
        self.keyed.sign_legacy(timestamp, body)
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_is_whsec_and_32_bytes() {
        let s = SigningSecret::generate();
        let body = s.expose().strip_prefix("whsec_").unwrap();
        assert_eq!(STANDARD.decode(body).unwrap().len(), 32);
        assert_ne!(s, SigningSecret::generate());
        assert_eq!(format!("{s:?}"), "SigningSecret(<redacted>)");
    }

    #[test]
    fn standard_webhooks_reference_vector() {
        let s = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            s.sign_standard("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(
            s.sign_legacy(1614265330, body),
            "2e37df5d4a028c51a7f3133d64ae1e300d2c2c900f1b1d49d4369ad2530f8964"
        );
    }

    #[test]
    fn linq_shaped_vector() {
        let s = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7Jxx2Oll+OE=").unwrap();
        let body = br#"{"api_version":"v3","webhook_version":"2026-02-03","event_type":"message.received","event_id":"2915e81c-5068-4796-ace2-21d2c94ad298","created_at":"2026-02-05T19:31:13.736444093Z","trace_id":"8af9171a45022df2eb74ba4e4c83be0f","partner_id":"your-partner-id","data":{"id":"89e3566e-1d13-49e5-a8ee-48490d5bfeb7","direction":"inbound","parts":[{"type":"text","value":"Hello!"}],"service":"iMessage"}}"#;
        assert_eq!(body.len(), 395);
        assert_eq!(
            s.sign_standard("2915e81c-5068-4796-ace2-21d2c94ad298", 1770319873, body),
            "v1,mbTcIuiGZBt8phWNPD97yL8uTB2xRDD3bNnn6jD3RR0="
        );
        assert_eq!(
            s.sign_legacy(1770319873, body),
            "34f8ad6573b7c642dc1ad0d7f7d78c728a62511ecb32b74095c30e565ebfa563"
        );
    }

    #[test]
    fn parse_rejects_malformed() {
        for bad in ["", "whsec_", "abc", "whsec_***", "WHSEC_MfKQ"] {
            assert!(SigningSecret::parse(bad).is_err(), "{bad:?}");
        }
    }
}
