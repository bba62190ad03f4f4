//! The delivery operations the portal shows (issue 11's delivery log, retry, recover, test
//! events and secret rotation; the store's counts behind the health view), behind one trait.
//!
//! The view types are the partner API's JSON shapes of those operations, field for field:
//! [`ApiOps`] calls the very functions the API handlers call (`api::deliveries`,
//! `api::test_event`, `api::rotate_secret`) and hands their answer through `serde_json`, so the
//! portal has no rules of its own and no mapping to drift.

use async_trait::async_trait;
use hookline_core::payload::catalogue;
use hookline_core::{EventType, PartnerId, Subscription, Timestamp, TraceId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::delivery_views::LogParams;
use crate::api::{deliveries, rotate_secret, test_event, AppState};
use crate::error::{ApiError, ApiResult};
use crate::store::StoreStats;
use crate::telemetry;

/// A filter of the delivery log (`GET …/deliveries`'s query).
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Any of `pending`, `retrying`, `success`, `failed`, `cancelled`; empty: all.
    pub status: Vec<String>,
    pub event_type: Option<String>,
    pub cursor: Option<String>,
    pub per_page: u32,
}

/// One delivery, as an item of `GET …/deliveries`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryView {
    pub event_id: String,
    pub webhook_event_type: String,
    pub status: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub http_status_code: Option<u16>,
    pub duration_ms: Option<u64>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    /// RFC 3339: the last attempt, or the creation.
    pub timestamp: String,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    #[serde(default)]
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AttemptView {
    pub attempt: u32,
    pub started_at: String,
    pub duration_ms: Option<u64>,
    pub http_status_code: Option<u16>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryView>,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Pagination {
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RecoveryView {
    pub recovery_id: String,
    pub deliveries: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RecoveryStateView {
    pub recovery_id: String,
    /// `running` or `completed`.
    pub status: String,
    pub queued: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TestResultView {
    pub event_id: String,
    pub http_status_code: Option<u16>,
    pub duration_ms: Option<u64>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RotationView {
    pub signing_secret: String,
    pub previous_secret_expires_at: Option<String>,
}

/// The operator's health numbers: those `/metrics` shows. The queue and subscription gauges'
/// sample (on PostgreSQL the one all nodes share, so a page view never scans the queue), and
/// this node's counters since it started.
#[derive(Debug, Clone, Default)]
pub struct HealthView {
    pub stats: StoreStats,
    /// `hookline_delivery_attempts_total` by `result` (`delivered`, `retry`, `failed`).
    pub attempts: BTreeMap<String, f64>,
    /// `hookline_subscriptions_deactivated_total` by `reason` (`gone`, `dead_endpoint`).
    pub deactivations: BTreeMap<String, f64>,
}

/// The operations, each scoped to `partner` and one of its subscriptions (already loaded
/// through the partner API's own lookup, so tenant isolation is settled before any call).
#[async_trait]
pub trait DeliveryOps: Send + Sync + 'static {
    async fn deliveries(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        query: &LogQuery,
    ) -> ApiResult<DeliveryPage>;
    /// One delivery with its `attempts`.
    async fn delivery(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        event_id: &str,
    ) -> ApiResult<DeliveryView>;
    async fn retry(&self, partner: &PartnerId, sub: &Subscription, event_id: &str)
        -> ApiResult<()>;
    /// `since`/`until` as RFC 3339.
    async fn recover(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        since: &str,
        until: Option<&str>,
    ) -> ApiResult<RecoveryView>;
    /// A recovery of `sub`, by the id `recover` answered.
    async fn recovery(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        recovery_id: &str,
    ) -> ApiResult<RecoveryStateView>;
    async fn send_test(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        event_type: Option<&EventType>,
        trace_id: &TraceId,
    ) -> ApiResult<TestResultView>;
    async fn rotate_secret(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        grace_period_seconds: u64,
    ) -> ApiResult<RotationView>;
    async fn health(&self) -> ApiResult<HealthView>;
    /// The catalogue's example `data` of an event type, as JSON text.
    fn example_payload(&self, event_type: &EventType) -> Option<String>;
}

/// The operations of this build: the API's own functions.
pub fn for_app(app: &AppState) -> Arc<dyn DeliveryOps> {
    Arc::new(ApiOps { app: app.clone() })
}

/// The API's answer as the portal's view of it (the same JSON, read back).
fn view<A: Serialize, V: DeserializeOwned>(answer: &A) -> ApiResult<V> {
    serde_json::to_value(answer)
        .and_then(serde_json::from_value)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("portal view of an API answer: {e}")))
}

/// The delivery operations through the partner API's functions.
pub struct ApiOps {
    app: AppState,
}

#[async_trait]
impl DeliveryOps for ApiOps {
    async fn deliveries(
        &self,
        _: &PartnerId,
        sub: &Subscription,
        query: &LogQuery,
    ) -> ApiResult<DeliveryPage> {
        let params = LogParams {
            status: (!query.status.is_empty()).then(|| query.status.join(",")),
            event_type: query.event_type.clone(),
            cursor: query.cursor.clone(),
            per_page: Some(query.per_page.to_string()),
            ..LogParams::default()
        };
        view(&deliveries::log_page(&self.app, sub, &params).await?)
    }
    async fn delivery(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        event_id: &str,
    ) -> ApiResult<DeliveryView> {
        view(&deliveries::detail(&self.app, partner, sub, event_id).await?)
    }
    async fn retry(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        event_id: &str,
    ) -> ApiResult<()> {
        deliveries::retry_delivery(&self.app, partner, sub, event_id).await?;
        Ok(())
    }
    async fn recover(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        since: &str,
        until: Option<&str>,
    ) -> ApiResult<RecoveryView> {
        view(&deliveries::start_recovery(&self.app, partner, sub, since, until).await?)
    }
    async fn recovery(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        recovery_id: &str,
    ) -> ApiResult<RecoveryStateView> {
        view(&deliveries::recovery_state(&self.app, partner, sub, recovery_id).await?)
    }
    async fn send_test(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        event_type: Option<&EventType>,
        trace_id: &TraceId,
    ) -> ApiResult<TestResultView> {
        let asked = event_type.map(|e| e.as_str());
        let sent =
            test_event::send_test_event(&self.app, partner.clone(), sub, asked, trace_id).await?;
        view(&sent)
    }
    async fn rotate_secret(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        grace_period_seconds: u64,
    ) -> ApiResult<RotationView> {
        // Out of range is the API's 400, with its message, rather than a wrapped number.
        let grace = i64::try_from(grace_period_seconds).unwrap_or(i64::MAX);
        let rotated = rotate_secret::rotate(&self.app, partner, sub, Some(grace)).await?;
        let mut v: RotationView = view(&rotated)?;
        // With no grace period the previous secret ended at the rotation itself.
        if grace == 0 {
            v.previous_secret_expires_at = None;
        }
        Ok(v)
    }
    async fn health(&self) -> ApiResult<HealthView> {
        let interval = self.app.settings.portal.health_sample_max_age;
        Ok(HealthView {
            stats: self
                .app
                .store
                .sample_stats(Timestamp::now(), interval)
                .await?,
            attempts: telemetry::counter_by_label(telemetry::ATTEMPTS, "result"),
            deactivations: telemetry::counter_by_label(
                telemetry::SUBSCRIPTIONS_DEACTIVATED,
                "reason",
            ),
        })
    }
    fn example_payload(&self, event_type: &EventType) -> Option<String> {
        serde_json::to_string_pretty(&catalogue::entry(*event_type).example).ok()
    }
}
