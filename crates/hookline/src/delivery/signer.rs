//! Signing: the envelope's bytes and both signature header sets of CONTRACT.md §3.1 (Standard
//! Webhooks and legacy Linq), computed over exactly the bytes that are sent. Never does I/O.
//!
//! During a rotation's grace period `webhook-signature` carries two signatures, space-separated,
//! the new secret's first (Standard Webhooks verifiers accept a message if any one matches).
//! The legacy `X-Webhook-Signature` holds one value; it carries the **new** secret's: the
//! rotation hands the partner the new secret, so a receiver that has deployed it verifies at
//! once, and a legacy receiver's window of failures is bounded by the partner's own roll-out
//! rather than lasting until the grace period ends (a receiver can also try both secrets).

use hookline_core::envelope::Envelope;
use hookline_core::payload::v2025;
use hookline_core::{
    ErrorKind, SigningSecret, SubscriptionId, TargetUrl, Timestamp, WebhookVersion,
};
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, USER_AGENT};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::secrets::{OpenError, Secrets};
use crate::store::{DueDelivery, PreviousSecret};

pub const USER_AGENT_VALUE: &str = concat!("hookline/", env!("CARGO_PKG_VERSION"));

/// A delivery ready to send: where to, with which headers, which bytes.
pub struct Signed {
    pub to: Arc<Prepared>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A subscription's parsed target and opened secret, as of the stored values they came from.
pub struct Prepared {
    raw_url: String,
    raw_secret: String,
    raw_previous: Option<String>,
    pub target: TargetUrl,
    secret: SigningSecret,
    /// The rotated-out secret and the end of its grace period.
    previous: Option<(SigningSecret, Timestamp)>,
}

/// Why a delivery could not be signed; no request was made.
#[derive(Debug)]
pub struct Unsignable {
    pub kind: ErrorKind,
    pub message: String,
}

pub struct Signer {
    secrets: Secrets,
    /// Parsing the target and opening the secret on every attempt is measurable (the secret may
    /// be sealed): both are kept per subscription while its stored values stay the same.
    prepared: Mutex<HashMap<SubscriptionId, Arc<Prepared>>>,
}

/// Subscriptions cached before the cache is dropped and rebuilt; bounds memory.
const PREPARED_CAP: usize = 10_000;

impl Signer {
    pub fn new(secrets: Secrets) -> Self {
        Signer {
            secrets,
            prepared: Mutex::default(),
        }
    }

    /// The envelope and its signed headers, every signature made at `at` (whole seconds in the
    /// headers); a previous secret signs too while `at` is before the end of its grace period.
    pub fn sign(&self, d: &DueDelivery, at: Timestamp) -> Result<Signed, Unsignable> {
        let to = self.prepare(d)?;
        let body = envelope(d, &to.target);
        let previous = to
            .previous
            .as_ref()
            .filter(|(_, until)| at < *until)
            .map(|(secret, _)| secret);
        let timestamp = at.as_micros().div_euclid(1_000_000);
        let headers = signed_headers(d, &to.secret, previous, timestamp, &body);
        Ok(Signed { to, headers, body })
    }

    fn prepare(&self, d: &DueDelivery) -> Result<Arc<Prepared>, Unsignable> {
        let raw_previous = d.previous_secret.as_ref().map(|p| &p.stored);
        let mut cache = self.prepared.lock().expect("not poisoned");
        if let Some(p) = cache.get(&d.subscription_id) {
            // A rotation changes the stored secrets: the entry is rebuilt on every node.
            if p.raw_url == d.target_url
                && p.raw_secret == d.signing_secret
                && p.raw_previous.as_ref() == raw_previous
            {
                return Ok(p.clone());
            }
        }
        let target = TargetUrl::parse(&d.target_url, true).map_err(|e| Unsignable {
            kind: ErrorKind::InvalidTarget,
            message: e.to_string(),
        })?;
        let secret = self.open(&d.signing_secret, d)?;
        let previous = match &d.previous_secret {
            Some(PreviousSecret { stored, expires_at }) => {
                Some((self.open(stored, d)?, *expires_at))
            }
            None => None,
        };
        let p = Arc::new(Prepared {
            raw_url: d.target_url.clone(),
            raw_secret: d.signing_secret.clone(),
            raw_previous: raw_previous.cloned(),
            target,
            secret,
            previous,
        });
        if cache.len() >= PREPARED_CAP {
            cache.clear();
        }
        cache.insert(d.subscription_id.clone(), p.clone());
        Ok(p)
    }

    fn open(&self, stored: &str, d: &DueDelivery) -> Result<SigningSecret, Unsignable> {
        self.secrets
            .open(stored, &d.subscription_id)
            .map_err(|e| Unsignable {
                kind: match e {
                    OpenError::NoKey | OpenError::Sealing(_) => ErrorKind::SecretUnavailable,
                    OpenError::Invalid(_) => ErrorKind::InvalidTarget,
                },
                message: e.to_string(),
            })
    }
}

/// The envelope's bytes, in the shape the target's webhook version asks for.
fn envelope(d: &DueDelivery, target: &TargetUrl) -> Vec<u8> {
    let version = target.webhook_version();
    let converted;
    let data = match (&d.data_v2025, version) {
        (_, WebhookVersion::V2026_02_03) => &d.data,
        (Some(v2025), WebhookVersion::V2025_01_01) => v2025,
        // The conversion is made at publish for the 2025-01-01 subscriptions it matched; this
        // one changed its target_url to 2025-01-01 after the event was published.
        (None, WebhookVersion::V2025_01_01) if v2025::is_converted(d.event_type) => {
            converted = v2025::convert(d.event_type, &d.data).unwrap_or_else(|err| {
                tracing::debug!("{err}; delivered as published");
                d.data.clone()
            });
            &converted
        }
        (None, WebhookVersion::V2025_01_01) => &d.data,
    };
    Envelope {
        webhook_version: version.as_str(),
        event_type: d.event_type.as_str(),
        event_id: d.event_id.as_str(),
        created_at: d.created_at.as_str(),
        trace_id: d.trace_id.as_str(),
        partner_id: d.partner_id.as_str(),
        data,
    }
    .render()
}

/// Both header sets of CONTRACT.md §3.1, from one clock reading.
fn signed_headers(
    d: &DueDelivery,
    secret: &SigningSecret,
    previous: Option<&SigningSecret>,
    timestamp: i64,
    body: &[u8],
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(10);
    let ts = HeaderValue::from(timestamp);
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""));
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    h.insert("webhook-id", value(d.event_id.as_str()));
    h.insert("webhook-timestamp", ts.clone());
    let mut signature = secret.sign_standard(d.event_id.as_str(), timestamp, body);
    if let Some(previous) = previous {
        signature.push(' ');
        signature.push_str(&previous.sign_standard(d.event_id.as_str(), timestamp, body));
    }
    h.insert("webhook-signature", value(&signature));
    h.insert("x-webhook-event", value(d.event_type.as_str()));
    h.insert(
        "x-webhook-subscription-id",
        value(d.subscription_id.as_str()),
    );
    h.insert("x-webhook-timestamp", ts);
    h.insert(
        "x-webhook-signature",
        value(&secret.sign_legacy(timestamp, body)),
    );
    h
}
