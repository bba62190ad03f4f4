//! Verify and sign webhooks the way hookline (and Linq) send them.
//!
//! Every delivery carries two signatures over the same body:
//!
//! - **[Standard Webhooks](https://www.standardwebhooks.com/)**: `webhook-id`,
//!   `webhook-timestamp` and `webhook-signature` (one or more space-separated `v1,<base64>`
//!   values; HMAC-SHA256 keyed with the base64-decoded `whsec_` secret over
//!   `"{id}.{timestamp}.{body}"`). Use [`Verifier::verify`].
//! - **Linq's legacy scheme**: `X-Webhook-Timestamp` and `X-Webhook-Signature` (lowercase hex
//!   HMAC-SHA256 keyed with the whole `whsec_…` string over `"{timestamp}.{body}"`). Use
//!   [`Verifier::verify_legacy`].
//!
//! Timestamps more than 5 minutes from the receiver's clock either way are refused
//! ([`Verifier::tolerance`] changes that); signatures are compared in constant time; every
//! refusal is a typed [`Error`]. Signing ([`Secret::sign`], [`Secret::sign_legacy`],
//! [`Secret::signed_headers`]) is here too, for tests and for forwarders.
//!
//! The crate does no I/O and depends only on `hmac`, `sha2`, `base64` and `subtle` (plus `http`
//! with the `http` feature): no async runtime, no HTTP client.
//!
//! # Example
//!
//! ```
//! use hookline_verify::{Error, Secret, Verifier};
//!
//! let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7Jxx2Oll+OE=")?;
//! let body = br#"{"event_type":"message.received","data":{}}"#;
//!
//! // What a sender does (hookline's server signs with this very code).
//! let now = 1_770_319_873;
//! let headers = secret.signed_headers("evt_1", now, body);
//!
//! // What a receiver does: any name/value pairs, `HashMap`s or (feature `http`) `HeaderMap`s.
//! let verifier = Verifier::new(secret);
//! let verified = verifier.verify_at(&headers, body, now)?;
//! assert_eq!(verified.id.as_deref(), Some("evt_1"));
//! verifier.verify_legacy_at(&headers, body, now)?;
//!
//! // A tampered body, or a replay ten minutes later, is refused.
//! assert_eq!(verifier.verify_at(&headers, b"{}", now), Err(Error::NoMatchingSignature));
//! assert!(matches!(verifier.verify_at(&headers, body, now + 600), Err(Error::TimestampTooOld { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In a real receiver, call [`Verifier::verify`], which reads the system clock.
#![cfg_attr(feature = "http", doc = include_str!("../docs/axum.md"))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod headers;
mod secret;
mod verify;

pub use headers::{
    Headers, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP, X_WEBHOOK_SIGNATURE,
    X_WEBHOOK_TIMESTAMP,
};
pub use secret::{InvalidSecret, Secret, SECRET_PREFIX};
pub use verify::{Error, Verified, Verifier, DEFAULT_TOLERANCE};

impl Secret {
    /// Both header sets a delivery carries, signed at `timestamp` (Unix seconds): `webhook-id`,
    /// `webhook-timestamp`, `webhook-signature`, `x-webhook-timestamp`, `x-webhook-signature`.
    pub fn signed_headers(
        &self,
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> [(&'static str, String); 5] {
        [
            (WEBHOOK_ID, msg_id.to_owned()),
            (WEBHOOK_TIMESTAMP, timestamp.to_string()),
            (WEBHOOK_SIGNATURE, self.sign(msg_id, timestamp, body)),
            (X_WEBHOOK_TIMESTAMP, timestamp.to_string()),
            (X_WEBHOOK_SIGNATURE, self.sign_legacy(timestamp, body)),
        ]
    }
}

#[cfg(test)]
mod tests {
    /// The 395-byte body of CONTRACT.md §3.5's Linq-shaped vector.
    pub const LINQ_BODY: &str = r#"{"api_version":"v3","webhook_version":"2026-02-03","event_type":"message.received","event_id":"2915e81c-5068-4796-ace2-21d2c94ad298","created_at":"2026-02-05T19:31:13.736444093Z","trace_id":"8af9171a45022df2eb74ba4e4c83be0f","partner_id":"your-partner-id","data":{"id":"89e3566e-1d13-49e5-a8ee-48490d5bfeb7","direction":"inbound","parts":[{"type":"text","value":"Hello!"}],"service":"iMessage"}}"#;
}
