//! Checking a delivery: its timestamp against the tolerance, then its signatures in constant time.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

use crate::headers::{
    Headers, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP, X_WEBHOOK_SIGNATURE,
    X_WEBHOOK_TIMESTAMP,
};
use crate::secret::{unhex32, Secret};

/// The default tolerance, as in Standard Webhooks: a timestamp more than 5 minutes off the
/// receiver's clock, either way, is refused (replay protection).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A required header is absent (its lowercase name).
    MissingHeader(&'static str),
    /// A header is present but malformed, e.g. a timestamp that is not integer seconds.
    InvalidHeader(&'static str),
    /// The timestamp is older than the tolerance allows, by this many seconds.
    TimestampTooOld {
        /// Seconds between the timestamp and the receiver's clock.
        age_seconds: u64,
    },
    /// The timestamp is further in the future than the tolerance allows, by this many seconds.
    TimestampTooNew {
        /// Seconds the timestamp is ahead of the receiver's clock.
        ahead_seconds: u64,
    },
    /// No signature in the header matches any of the verifier's secrets.
    NoMatchingSignature,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingHeader(h) => write!(f, "missing header {h}"),
            Error::InvalidHeader(h) => write!(f, "malformed header {h}"),
            Error::TimestampTooOld { age_seconds } => {
                write!(f, "timestamp too old ({age_seconds} s ago)")
            }
            Error::TimestampTooNew { ahead_seconds } => {
                write!(f, "timestamp too new ({ahead_seconds} s ahead)")
            }
            Error::NoMatchingSignature => f.write_str("no matching signature"),
        }
    }
}

impl std::error::Error for Error {}

/// A delivery that passed: its message id (Standard Webhooks only) and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `webhook-id`; `None` for a legacy verification, which does not sign it.
    pub id: Option<String>,
    /// Unix seconds, as signed.
    pub timestamp: i64,
}

/// Verifies deliveries signed with one of its secrets.
///
/// Holding more than one secret accepts either during a rotation grace period.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier for `secret` with the default ±5 minute tolerance.
    pub fn new(secret: Secret) -> Self {
        Verifier {
            secrets: vec![secret],
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Also accepts signatures made with `secret` (e.g. the previous one during a rotation).
    pub fn with_secret(mut self, secret: Secret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// How far the timestamp may be from the receiver's clock, either way.
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies a Standard Webhooks delivery (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`) against the system clock. `body` must be the raw bytes received.
    pub fn verify<H: Headers + ?Sized>(&self, headers: &H, body: &[u8]) -> Result<Verified, Error> {
        self.verify_at(headers, body, unix_now())
    }

    /// [`Verifier::verify`] with the receiver's clock given (Unix seconds).
    pub fn verify_at<H: Headers + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, Error> {
        let id = required(headers, WEBHOOK_ID)?;
        let timestamp = self.timestamp(headers, WEBHOOK_TIMESTAMP, now)?;
        let signatures = required(headers, WEBHOOK_SIGNATURE)?;
        let candidates: Vec<[u8; 32]> = signatures
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .filter_map(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .collect();
        for secret in &self.secrets {
            let expected = secret.standard_mac(id, timestamp, body);
            if any_equal(&expected, &candidates) {
                return Ok(Verified {
                    id: Some(id.to_owned()),
                    timestamp,
                });
            }
        }
        Err(Error::NoMatchingSignature)
    }

    /// Verifies Linq's legacy headers (`X-Webhook-Timestamp`, `X-Webhook-Signature`) against the
    /// system clock, with the same tolerance.
    pub fn verify_legacy<H: Headers + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
    ) -> Result<Verified, Error> {
        self.verify_legacy_at(headers, body, unix_now())
    }

    /// [`Verifier::verify_legacy`] with the receiver's clock given (Unix seconds).
    pub fn verify_legacy_at<H: Headers + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, Error> {
        let timestamp = self.timestamp(headers, X_WEBHOOK_TIMESTAMP, now)?;
        let given = required(headers, X_WEBHOOK_SIGNATURE)?;
        let candidate = unhex32(given.trim()).ok_or(Error::NoMatchingSignature)?;
        for secret in &self.secrets {
            if any_equal(&secret.legacy_mac(timestamp, body), &[candidate]) {
                return Ok(Verified {
                    id: None,
                    timestamp,
                });
            }
        }
        Err(Error::NoMatchingSignature)
    }

    fn timestamp<H: Headers + ?Sized>(
        &self,
        headers: &H,
        name: &'static str,
        now: i64,
    ) -> Result<i64, Error> {
        let ts: i64 = required(headers, name)?
            .trim()
            .parse()
            .map_err(|_| Error::InvalidHeader(name))?;
        let tolerance = self.tolerance.as_secs();
        let delta = now.saturating_sub(ts);
        if delta > 0 && delta.unsigned_abs() > tolerance {
            return Err(Error::TimestampTooOld {
                age_seconds: delta.unsigned_abs(),
            });
        }
        if delta < 0 && delta.unsigned_abs() > tolerance {
            return Err(Error::TimestampTooNew {
                ahead_seconds: delta.unsigned_abs(),
            });
        }
        Ok(ts)
    }
}

fn required<'h, H: Headers + ?Sized>(headers: &'h H, name: &'static str) -> Result<&'h str, Error> {
    headers.header(name).ok_or(Error::MissingHeader(name))
}

/// Compares against every candidate without stopping at the first match, each comparison in
/// constant time, so timing reveals neither the expected MAC nor which candidate matched.
fn any_equal(expected: &[u8; 32], candidates: &[[u8; 32]]) -> bool {
    let mut found = subtle::Choice::from(0);
    for c in candidates {
        found |= expected.ct_eq(c);
    }
    found.into()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7Jxx2Oll+OE=";
    const ID: &str = "2915e81c-5068-4796-ace2-21d2c94ad298";
    const TS: i64 = 1770319873;

    fn verifier() -> Verifier {
        Verifier::new(Secret::parse(SECRET).unwrap())
    }

    fn headers(sig: &str) -> Vec<(&'static str, String)> {
        vec![
            ("webhook-id", ID.to_owned()),
            ("webhook-timestamp", TS.to_string()),
            ("webhook-signature", sig.to_owned()),
            ("X-Webhook-Timestamp", TS.to_string()),
            (
                "X-Webhook-Signature",
                "34f8ad6573b7c642dc1ad0d7f7d78c728a62511ecb32b74095c30e565ebfa563".to_owned(),
            ),
        ]
    }

    const GOOD: &str = "v1,mbTcIuiGZBt8phWNPD97yL8uTB2xRDD3bNnn6jD3RR0=";

    #[test]
    fn contract_vector_verifies_both_ways() {
        let body = crate::tests::LINQ_BODY.as_bytes();
        let v = verifier().verify_at(&headers(GOOD), body, TS).unwrap();
        assert_eq!(v.id.as_deref(), Some(ID));
        assert_eq!(v.timestamp, TS);
        verifier()
            .verify_legacy_at(&headers(GOOD), body, TS)
            .unwrap();
    }

    #[test]
    fn any_of_several_signatures_matches() {
        let body = crate::tests::LINQ_BODY.as_bytes();
        let other = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        for list in [
            format!("{other} {GOOD}"),
            format!("v2,xyz {GOOD}"),
            format!("{GOOD} {other}"),
        ] {
            verifier().verify_at(&headers(&list), body, TS).unwrap();
        }
        assert_eq!(
            verifier().verify_at(&headers(other), body, TS),
            Err(Error::NoMatchingSignature)
        );
    }

    #[test]
    fn tampering_is_refused() {
        let body = crate::tests::LINQ_BODY.replace("Hello", "Hellp");
        assert_eq!(
            verifier().verify_at(&headers(GOOD), body.as_bytes(), TS),
            Err(Error::NoMatchingSignature)
        );
        assert_eq!(
            verifier().verify_legacy_at(&headers(GOOD), body.as_bytes(), TS),
            Err(Error::NoMatchingSignature)
        );
        let wrong = Verifier::new(Secret::parse("whsec_QUJDRA==").unwrap());
        assert_eq!(
            wrong.verify_at(&headers(GOOD), crate::tests::LINQ_BODY.as_bytes(), TS),
            Err(Error::NoMatchingSignature)
        );
    }

    #[test]
    fn rotation_accepts_either_secret() {
        let body = crate::tests::LINQ_BODY.as_bytes();
        let v = Verifier::new(Secret::parse("whsec_QUJDRA==").unwrap())
            .with_secret(Secret::parse(SECRET).unwrap());
        v.verify_at(&headers(GOOD), body, TS).unwrap();
        v.verify_legacy_at(&headers(GOOD), body, TS).unwrap();
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_refused() {
        let body = crate::tests::LINQ_BODY.as_bytes();
        let h = headers(GOOD);
        verifier().verify_at(&h, body, TS + 300).unwrap();
        verifier().verify_at(&h, body, TS - 300).unwrap();
        assert_eq!(
            verifier().verify_at(&h, body, TS + 301),
            Err(Error::TimestampTooOld { age_seconds: 301 })
        );
        assert_eq!(
            verifier().verify_legacy_at(&h, body, TS - 301),
            Err(Error::TimestampTooNew { ahead_seconds: 301 })
        );
        let loose = verifier().tolerance(Duration::from_secs(3600));
        loose.verify_at(&h, body, TS + 3000).unwrap();
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let body = b"{}";
        let mut h = headers(GOOD);
        h.retain(|(k, _)| *k != "webhook-id");
        assert_eq!(
            verifier().verify_at(&h, body, TS),
            Err(Error::MissingHeader("webhook-id"))
        );
        let mut h = headers(GOOD);
        h[1].1 = "1770319873.5".into();
        assert_eq!(
            verifier().verify_at(&h, body, TS),
            Err(Error::InvalidHeader("webhook-timestamp"))
        );
        let h: Vec<(&str, &str)> = vec![("x-webhook-timestamp", "1770319873")];
        assert_eq!(
            verifier().verify_legacy_at(&h, body, TS),
            Err(Error::MissingHeader("x-webhook-signature"))
        );
    }
}
