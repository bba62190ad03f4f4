//! The API's request and answer bodies. Answers keep fields this version does not know in
//! `extra`, so re-serialising one gives back what the server sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A webhook subscription (never with its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub target_url: String,
    pub subscribed_events: Vec<String>,
    pub is_active: bool,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub phone_numbers: Option<Vec<String>>,
    #[serde(default)]
    pub routing_id_header: Option<String>,
    #[serde(default)]
    pub routing_key_header: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The create answer: the subscription and its signing secret, shown only here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedSubscription {
    #[serde(flatten)]
    pub subscription: Subscription,
    /// `whsec_…`: store it now, it cannot be retrieved again.
    pub signing_secret: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionList {
    pub subscriptions: Vec<Subscription>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /v3/webhook-subscriptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateSubscription {
    pub target_url: String,
    pub subscribed_events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_numbers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_id_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key_header: Option<String>,
}

/// `PUT /v3/webhook-subscriptions/{id}`: only the fields set change. For the nullable ones,
/// `Some(None)` sends `null` (clears the value).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpdateSubscription {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribed_events: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_numbers: Option<Option<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_id_header: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_key_header: Option<Option<String>>,
}

impl UpdateSubscription {
    /// Whether it would change nothing.
    pub fn is_empty(&self) -> bool {
        self == &UpdateSubscription::default()
    }
}

/// `GET /v3/webhook-events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventTypes {
    pub events: Vec<String>,
    pub doc_url: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partner {
    pub id: String,
    pub name: String,
    pub created_at: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartnerList {
    pub partners: Vec<Partner>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A new API key; `api_key` is shown only here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedApiKey {
    pub id: String,
    pub name: Option<String>,
    pub api_key: String,
    pub created_at: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An event to publish (operator API). Without `event_id` the client assigns one before the
/// first attempt, so a retried publish cannot create a second event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub partner_id: String,
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// A JSON object, delivered as given.
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// What a publish did: the event's id and how many deliveries it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    pub event_id: String,
    pub deliveries: u64,
    /// The `event_id` was published before: nothing new was stored (the first publish's
    /// `deliveries`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeated: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedBatch {
    pub results: Vec<Published>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One delivery of an event to a subscription, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub event_id: String,
    #[serde(default)]
    pub webhook_event_type: Option<String>,
    #[serde(default)]
    pub subscription_id: Option<String>,
    #[serde(default)]
    pub target_url: Option<String>,
    /// `pending`, `retrying`, `success`, `failed` or `cancelled`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub http_status_code: Option<u16>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub next_attempt_at: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Only on a single delivery's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pagination {
    pub has_more: bool,
    pub next_cursor: Option<String>,
    pub per_page: u32,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
    pub pagination: Pagination,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Filters of a delivery listing; unset ones are left out of the query.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeliveryQuery {
    /// Comma list of `pending`, `retrying`, `success`, `failed`, `cancelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_page: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Operator listing only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
    /// Operator listing only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
}

/// `POST …/recover` and the operator's bulk retry: a window of failed deliveries to re-queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recover {
    /// RFC 3339.
    pub since: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// The operator's bulk retry (`POST /admin/v1/deliveries/retry`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BulkRetry {
    pub partner_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// `failed`.
    pub status: String,
    pub since: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// A started recovery (or bulk retry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    pub recovery_id: String,
    pub deliveries: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How far a recovery got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryStatus {
    pub status: String,
    pub queued: u64,
    pub total: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to a test event, after its one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub event_id: String,
    #[serde(default)]
    pub http_status_code: Option<u16>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A rotated secret; `signing_secret` is shown only here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RotatedSecret {
    pub signing_secret: String,
    #[serde(default)]
    pub previous_secret_expires_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_with_unknown_fields() {
        let raw = serde_json::json!({"id":"s","target_url":"https://x","subscribed_events":["a"],
            "is_active":true,"created_at":"t","updated_at":"t","phone_numbers":null,
            "routing_id_header":null,"routing_key_header":null,"signing_secret":"whsec_x",
            "future":1});
        let c: CreatedSubscription = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(c.signing_secret, "whsec_x");
        assert!(!c.subscription.extra.contains_key("signing_secret"));
        assert_eq!(serde_json::to_value(&c).unwrap(), raw);
    }

    #[test]
    fn updates_send_only_what_is_set() {
        let u = UpdateSubscription {
            is_active: Some(false),
            phone_numbers: Some(None),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            serde_json::json!({"is_active": false, "phone_numbers": null})
        );
        assert!(UpdateSubscription::default().is_empty());
    }
}
