//! Typed identifiers. Each id is its own type, so a partner id cannot be passed where a
//! subscription id is expected (`get_subscription(partner, id)` no longer compiles swapped).
//!
//! Ids the server mints are UUIDs (v7 where ordering helps: partners, keys; v4 for
//! subscriptions, as Linq's are); event ids are the publisher's idempotency keys, checked by
//! [`EventId::parse`]. Values read back from the store are trusted ([`PartnerId::from_stored`]
//! and friends): they were checked on the way in.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub String);

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A value that passed validation before it was stored.
            pub fn from_stored(s: impl Into<String>) -> Self {
                $name(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Lets maps keyed by the id be probed with a `&str`.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A partner (tenant). Every partner-scoped query takes one.
    PartnerId
);
string_id!(
    /// A webhook subscription: a UUID, as in Linq's API.
    SubscriptionId
);
string_id!(
    /// An API key's public id (never the key).
    ApiKeyId
);
string_id!(
    /// The publisher's idempotency key for an event, unique per partner; `webhook-id` on the wire.
    EventId
);
string_id!(
    /// A recovery (a bulk re-queue of failed deliveries): a UUID v7.
    RecoveryId
);
string_id!(
    /// 32 lowercase hex characters: ties an event, its deliveries and log lines together.
    TraceId
);

/// A version 4 UUID from the thread's CSPRNG (ChaCha, seeded from the OS), not one `getrandom`
/// system call per id as `Uuid::new_v4` makes: a trace id per request and an event id per event
/// without one were a system call each on the publish path. Ids are unguessable, not secret;
/// secrets come from the OS generator (`SigningSecret`, `ApiKey`).
fn random_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// Longest partner id or name accepted from a request.
pub const MAX_ID_LEN: usize = 128;

impl PartnerId {
    pub fn generate() -> Self {
        PartnerId(uuid::Uuid::now_v7().to_string())
    }

    /// A partner id as a request names it: 1 to 128 characters, no control characters. Whether
    /// the partner exists is the store's question.
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        // Characters, not bytes: the OpenAPI document's `maxLength` counts characters.
        if raw.is_empty() || raw.chars().count() > MAX_ID_LEN || raw.chars().any(char::is_control) {
            return Err(InvalidId(format!(
                "Unknown partner_id '{}'",
                crate::text::quote(&raw.escape_debug().to_string())
            )));
        }
        // Partner ids are generated UUIDs, stored lowercase: one written in capitals names it.
        Ok(PartnerId(
            canonical_uuid(raw).unwrap_or_else(|| raw.to_owned()),
        ))
    }
}

/// `raw` as the ids are generated and stored (lowercase, hyphenated) if it is a UUID written with
/// hyphens (the only form ids are given out in), in either case.
fn canonical_uuid(raw: &str) -> Option<String> {
    let id = uuid::Uuid::try_parse(raw).ok()?;
    (raw.len() == uuid::fmt::Hyphenated::LENGTH).then(|| id.hyphenated().to_string())
}

impl SubscriptionId {
    pub fn generate() -> Self {
        SubscriptionId(random_uuid().to_string())
    }

    /// Subscription ids are UUIDs, written with hyphens; anything else cannot name one. Hex
    /// digits are read in either case, as UUIDs are (RFC 9562), so `3B1D…` names `3b1d…`.
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        canonical_uuid(raw)
            .map(SubscriptionId)
            .ok_or_else(|| InvalidId(format!("'{raw}' is not a webhook subscription id")))
    }
}

impl RecoveryId {
    pub fn generate() -> Self {
        RecoveryId(uuid::Uuid::now_v7().to_string())
    }

    /// Recovery ids are UUIDs, read as [`SubscriptionId::parse`] reads them.
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        canonical_uuid(raw)
            .map(RecoveryId)
            .ok_or_else(|| InvalidId(format!("'{raw}' is not a recovery id")))
    }
}

impl ApiKeyId {
    pub fn generate() -> Self {
        ApiKeyId(uuid::Uuid::now_v7().to_string())
    }
}

impl EventId {
    /// A fresh id for an event published without one.
    pub fn generate() -> Self {
        EventId(random_uuid().to_string())
    }

    /// 1 to 128 characters of letters, digits, `-`, `_`, `.`, `:` (safe in headers and URLs).
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let ok = (1..=MAX_ID_LEN).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !ok {
            return Err(InvalidId(format!(
                "event_id '{}' must be 1 to 128 characters of letters, digits, '-', '_', '.', ':'",
                crate::text::quote(raw)
            )));
        }
        Ok(EventId(raw.to_owned()))
    }
}

impl TraceId {
    pub fn generate() -> Self {
        TraceId(random_uuid().simple().to_string())
    }

    /// 32 hex characters, stored lowercase.
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        if raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(TraceId(raw.to_ascii_lowercase()))
        } else {
            Err(InvalidId(format!(
                "trace_id '{}' must be 32 hex characters",
                crate::text::quote(raw)
            )))
        }
    }

    /// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`).
    pub fn from_traceparent(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (_version, trace) = (parts.next()?, parts.next()?);
        let id = TraceId::parse(trace).ok()?;
        (id.0 != "00000000000000000000000000000000").then_some(id)
    }
}

/// A delivery: one event to one subscription. Store-assigned, increasing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(i64);

impl DeliveryId {
    pub fn from_stored(id: i64) -> Self {
        DeliveryId(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeliveryId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn event_ids() {
        for ok in ["a", "evt_1:2.3-4", &"x".repeat(128)] {
            assert!(EventId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "é", &"x".repeat(129), "a/b"] {
            assert!(EventId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trace_ids_from_headers() {
        let t = TraceId::parse("4BF92F3577B34DA6A3CE929D0E0E4736").unwrap();
        assert_eq!(t.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            TraceId::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some(t)
        );
        assert_eq!(TraceId::from_traceparent("garbage"), None);
        assert_eq!(
            TraceId::from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(TraceId::generate().as_str().len(), 32);
    }

    #[test]
    fn subscription_ids_are_uuids() {
        assert!(SubscriptionId::parse(SubscriptionId::generate().as_str()).is_ok());
        assert!(SubscriptionId::parse("nope").is_err());
        let partner = PartnerId::generate();
        let upper = PartnerId::parse(&partner.as_str().to_uppercase()).unwrap();
        assert_eq!(upper, partner, "a partner id in capitals");
        assert_eq!(
            PartnerId::parse("Legacy-Name").unwrap().as_str(),
            "Legacy-Name"
        );
        // Either case, one spelling: hyphenated, as ids are given out.
        let id = SubscriptionId::generate();
        let upper = SubscriptionId::parse(&id.as_str().to_uppercase()).unwrap();
        assert_eq!(upper, id);
        let simple = id.as_str().replace('-', "");
        assert!(SubscriptionId::parse(&simple).is_err());
        assert!(SubscriptionId::parse(&format!("{{{id}}}")).is_err());
        assert!(SubscriptionId::parse(&format!("urn:uuid:{id}")).is_err());
    }

    #[test]
    fn partner_ids() {
        assert!(PartnerId::parse("default").is_ok());
        assert!(PartnerId::parse("").is_err());
        assert!(PartnerId::parse("a\nb").is_err());
        assert!(PartnerId::parse(&"p".repeat(129)).is_err());
        // 128 characters of two bytes each, as the document's maxLength counts them.
        assert!(PartnerId::parse(&"é".repeat(128)).is_ok());
        assert!(PartnerId::parse(&"é".repeat(129)).is_err());
    }

    #[test]
    fn maps_are_probed_by_str() {
        let m = HashMap::from([(SubscriptionId::from_stored("s"), 1)]);
        assert_eq!(m.get("s"), Some(&1));
    }
}
