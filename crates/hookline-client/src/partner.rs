//! The partner API (`Authorization: Bearer <api key>`): subscriptions, event types and, per
//! subscription, its delivery log, redelivery, recovery, test events and secret rotation.

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{json_body, Auth, Client};
use crate::error::Result;
use crate::types::*;

const SUBSCRIPTIONS: &str = "webhook-subscriptions";

impl Client {
    fn subscription_url(&self, id: &str, rest: &[&str]) -> reqwest::Url {
        let mut segments = vec!["v3", SUBSCRIPTIONS, id];
        segments.extend_from_slice(rest);
        self.url(&segments)
    }

    /// `POST /v3/webhook-subscriptions`: the answer carries the signing secret, shown only once.
    pub async fn create_subscription(
        &self,
        req: &CreateSubscription,
    ) -> Result<CreatedSubscription> {
        let url = self.url(&["v3", SUBSCRIPTIONS]);
        self.send(Auth::Partner, Method::POST, url, json_body(req)?)
            .await
    }

    /// `GET /v3/webhook-subscriptions`: active and inactive, oldest first.
    pub async fn list_subscriptions(&self) -> Result<SubscriptionList> {
        let url = self.url(&["v3", SUBSCRIPTIONS]);
        self.send(Auth::Partner, Method::GET, url, None).await
    }

    /// `GET /v3/webhook-subscriptions/{id}`.
    pub async fn get_subscription(&self, id: &str) -> Result<Subscription> {
        let url = self.subscription_url(id, &[]);
        self.send(Auth::Partner, Method::GET, url, None).await
    }

    /// `PUT /v3/webhook-subscriptions/{id}`: only the fields set change.
    pub async fn update_subscription(
        &self,
        id: &str,
        req: &UpdateSubscription,
    ) -> Result<Subscription> {
        let url = self.subscription_url(id, &[]);
        self.send(Auth::Partner, Method::PUT, url, json_body(req)?)
            .await
    }

    /// `DELETE /v3/webhook-subscriptions/{id}`; pending deliveries to it are cancelled.
    pub async fn delete_subscription(&self, id: &str) -> Result<()> {
        let url = self.subscription_url(id, &[]);
        self.send_raw(Auth::Partner, Method::DELETE, url, None)
            .await
            .map(drop)
    }

    /// `GET /v3/webhook-events`: every event type a subscription may name.
    pub async fn event_types(&self) -> Result<EventTypes> {
        let url = self.url(&["v3", "webhook-events"]);
        self.send(Auth::Partner, Method::GET, url, None).await
    }

    /// `GET /v3/webhook-subscriptions/{id}/deliveries`: newest first, one page.
    pub async fn list_deliveries(&self, id: &str, query: &DeliveryQuery) -> Result<DeliveryList> {
        let mut url = self.subscription_url(id, &["deliveries"]);
        set_query(&mut url, query);
        self.send(Auth::Partner, Method::GET, url, None).await
    }

    /// `GET /v3/webhook-subscriptions/{id}/deliveries/{event_id}`, with every attempt.
    pub async fn get_delivery(&self, id: &str, event_id: &str) -> Result<Delivery> {
        let url = self.subscription_url(id, &["deliveries", event_id]);
        self.send(Auth::Partner, Method::GET, url, None).await
    }

    /// `POST …/deliveries/{event_id}/retry`: a fresh attempt now (same `event_id`).
    pub async fn retry_delivery(&self, id: &str, event_id: &str) -> Result<Value> {
        let url = self.subscription_url(id, &["deliveries", event_id, "retry"]);
        self.send(Auth::Partner, Method::POST, url, json_body(&json!({}))?)
            .await
    }

    /// `POST /v3/webhook-subscriptions/{id}/recover`: re-queues the failed deliveries of a window.
    pub async fn recover(&self, id: &str, req: &Recover) -> Result<Recovery> {
        let url = self.subscription_url(id, &["recover"]);
        self.send(Auth::Partner, Method::POST, url, json_body(req)?)
            .await
    }

    /// `GET /v3/webhook-subscriptions/{id}/recoveries/{recovery_id}`.
    pub async fn recovery(&self, id: &str, recovery_id: &str) -> Result<RecoveryStatus> {
        let url = self.subscription_url(id, &["recoveries", recovery_id]);
        self.send(Auth::Partner, Method::GET, url, None).await
    }

    /// `POST /v3/webhook-subscriptions/{id}/test`: one synthetic event, answered after its attempt.
    pub async fn send_test_event(&self, id: &str, event_type: Option<&str>) -> Result<TestResult> {
        let url = self.subscription_url(id, &["test"]);
        let body = match event_type {
            Some(t) => json!({ "event_type": t }),
            None => json!({}),
        };
        self.send(Auth::Partner, Method::POST, url, json_body(&body)?)
            .await
    }

    /// `POST /v3/webhook-subscriptions/{id}/rotate-secret`: the new secret, shown only once; the
    /// old one keeps signing too for `grace_period_seconds` (server default 24 h).
    pub async fn rotate_secret(
        &self,
        id: &str,
        grace_period_seconds: Option<u64>,
    ) -> Result<RotatedSecret> {
        let url = self.subscription_url(id, &["rotate-secret"]);
        let body = match grace_period_seconds {
            Some(g) => json!({ "grace_period_seconds": g }),
            None => json!({}),
        };
        self.send(Auth::Partner, Method::POST, url, json_body(&body)?)
            .await
    }
}

/// Adds the query's set fields as query parameters.
pub(crate) fn set_query<Q: serde::Serialize>(url: &mut reqwest::Url, query: &Q) {
    let Ok(Value::Object(fields)) = serde_json::to_value(query) else {
        return;
    };
    let mut pairs = url.query_pairs_mut();
    for (k, v) in fields {
        match v {
            Value::String(s) => pairs.append_pair(&k, &s),
            Value::Null => continue,
            other => pairs.append_pair(&k, &other.to_string()),
        };
    }
}
