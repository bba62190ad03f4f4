//! The operator API (`Authorization: Bearer <admin token>`): partners, API keys, publishing,
//! and the delivery log across partners.

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{json_body, Auth, Client};
use crate::error::Result;
use crate::partner::set_query;
use crate::types::*;

/// Most events one batch request may carry.
pub const MAX_BATCH: usize = 1000;

impl Client {
    /// `POST /admin/v1/partners`.
    pub async fn create_partner(&self, name: &str) -> Result<Partner> {
        let url = self.url(&["admin", "v1", "partners"]);
        let body = json_body(&json!({ "name": name }))?;
        self.send(Auth::Admin, Method::POST, url, body).await
    }

    /// `GET /admin/v1/partners`.
    pub async fn list_partners(&self) -> Result<PartnerList> {
        let url = self.url(&["admin", "v1", "partners"]);
        self.send(Auth::Admin, Method::GET, url, None).await
    }

    /// `POST /admin/v1/partners/{partner_id}/api-keys`: the key is shown only in this answer.
    pub async fn create_api_key(
        &self,
        partner_id: &str,
        name: Option<&str>,
    ) -> Result<CreatedApiKey> {
        let url = self.url(&["admin", "v1", "partners", partner_id, "api-keys"]);
        let body = match name {
            Some(n) => json!({ "name": n }),
            None => json!({}),
        };
        self.send(Auth::Admin, Method::POST, url, json_body(&body)?)
            .await
    }

    /// `DELETE /admin/v1/partners/{partner_id}/api-keys/{key_id}`: the key stops working at once.
    pub async fn revoke_api_key(&self, partner_id: &str, key_id: &str) -> Result<()> {
        let url = self.url(&["admin", "v1", "partners", partner_id, "api-keys", key_id]);
        self.send_raw(Auth::Admin, Method::DELETE, url, None)
            .await
            .map(drop)
    }

    /// `POST /admin/v1/events`. An event without `event_id` gets one here, before the first
    /// attempt, so a retry after a lost answer repeats the same event (the server answers a
    /// repeat with the first result) instead of publishing it twice.
    pub async fn publish(&self, event: &NewEvent) -> Result<Published> {
        let mut event = event.clone();
        assign_id(&mut event);
        let url = self.url(&["admin", "v1", "events"]);
        self.send(Auth::Admin, Method::POST, url, json_body(&event)?)
            .await
    }

    /// `POST /admin/v1/events/batch` (at most [`MAX_BATCH`] events; validated all or nothing).
    /// Events without `event_id` get one first, as in [`Client::publish`].
    pub async fn publish_batch(&self, events: &[NewEvent]) -> Result<PublishedBatch> {
        let mut events = events.to_vec();
        events.iter_mut().for_each(assign_id);
        let url = self.url(&["admin", "v1", "events", "batch"]);
        let body = json_body(&json!({ "events": events }))?;
        self.send(Auth::Admin, Method::POST, url, body).await
    }

    /// `GET /admin/v1/deliveries`: the delivery log across partners, newest first.
    pub async fn admin_deliveries(&self, query: &DeliveryQuery) -> Result<DeliveryList> {
        let mut url = self.url(&["admin", "v1", "deliveries"]);
        set_query(&mut url, query);
        self.send(Auth::Admin, Method::GET, url, None).await
    }

    /// `GET /admin/v1/events/{event_id}?partner_id=`: the event and every delivery of it.
    pub async fn admin_event(&self, event_id: &str, partner_id: &str) -> Result<Value> {
        let mut url = self.url(&["admin", "v1", "events", event_id]);
        url.query_pairs_mut().append_pair("partner_id", partner_id);
        self.send(Auth::Admin, Method::GET, url, None).await
    }

    /// `POST /admin/v1/deliveries/retry`: re-queues failed deliveries in bulk, asynchronously.
    pub async fn admin_bulk_retry(&self, req: &BulkRetry) -> Result<Recovery> {
        let url = self.url(&["admin", "v1", "deliveries", "retry"]);
        self.send(Auth::Admin, Method::POST, url, json_body(req)?)
            .await
    }
}

fn assign_id(event: &mut NewEvent) {
    if event.event_id.is_none() {
        event.event_id = Some(uuid::Uuid::new_v4().to_string());
    }
}
