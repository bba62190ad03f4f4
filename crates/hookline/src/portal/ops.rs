//! The delivery operations the portal shows (issue 11's delivery log, retry, recover, test
//! events and secret rotation; the metrics behind the health view), behind one trait.
//!
//! The view types are the partner API's JSON shapes of those operations, field for field, so
//! an implementation can hand the API's own answer through `serde_json` without a mapping of
//! its own. [`Unavailable`] is what this build has: the pages built on it say plainly that the
//! operation is not in this build; the health view shows the delivery counts the store keeps.

use async_trait::async_trait;
use hookline_core::{EventType, PartnerId, Subscription};
use serde::Deserialize;
use std::sync::Arc;

use crate::api::AppState;
use crate::error::ApiError;

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

/// The operator's health numbers (those of `/metrics`). `None`: not known to this build.
#[derive(Debug, Clone, Default)]
pub struct HealthView {
    pub pending: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub oldest_due_at: Option<String>,
    pub deactivated_subscriptions: Option<u64>,
}

#[derive(Debug)]
pub enum OpsError {
    /// This build does not have the operation; the text names it.
    NotAvailable(&'static str),
    /// The operation refused (404 for another partner's ids, 409, 400 …) or failed.
    Api(ApiError),
}

impl From<ApiError> for OpsError {
    fn from(e: ApiError) -> Self {
        OpsError::Api(e)
    }
}

pub type OpsResult<T> = Result<T, OpsError>;

/// The operations, each scoped to `partner` and one of its subscriptions (already loaded
/// through the partner API's own lookup, so tenant isolation is settled before any call).
#[async_trait]
pub trait DeliveryOps: Send + Sync + 'static {
    async fn deliveries(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        query: &LogQuery,
    ) -> OpsResult<DeliveryPage>;
    /// One delivery with its `attempts`.
    async fn delivery(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        event_id: &str,
    ) -> OpsResult<DeliveryView>;
    async fn retry(&self, partner: &PartnerId, sub: &Subscription, event_id: &str)
        -> OpsResult<()>;
    /// `since`/`until` as RFC 3339.
    async fn recover(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        since: &str,
        until: Option<&str>,
    ) -> OpsResult<RecoveryView>;
    async fn send_test(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        event_type: Option<&EventType>,
    ) -> OpsResult<TestResultView>;
    async fn rotate_secret(
        &self,
        partner: &PartnerId,
        sub: &Subscription,
        grace_period_seconds: u64,
    ) -> OpsResult<RotationView>;
    async fn health(&self) -> OpsResult<HealthView>;
    /// The catalogue's example `data` of an event type, as JSON text.
    fn example_payload(&self, event_type: &EventType) -> Option<String>;
}

/// The operations of this build.
pub fn for_app(app: &AppState) -> Arc<dyn DeliveryOps> {
    Arc::new(Unavailable { app: app.clone() })
}

const LOG: &str = "The delivery log";
const RETRY: &str = "Retrying a delivery";
const RECOVER: &str = "Recovering missed deliveries";
const TEST: &str = "Sending a test event";
const ROTATE: &str = "Rotating the signing secret";

/// The delivery operations before they exist in the store: each answers `NotAvailable`,
/// except the health view, which shows the counts the store has.
pub struct Unavailable {
    app: AppState,
}

#[async_trait]
impl DeliveryOps for Unavailable {
    async fn deliveries(
        &self,
        _: &PartnerId,
        _: &Subscription,
        _: &LogQuery,
    ) -> OpsResult<DeliveryPage> {
        Err(OpsError::NotAvailable(LOG))
    }
    async fn delivery(&self, _: &PartnerId, _: &Subscription, _: &str) -> OpsResult<DeliveryView> {
        Err(OpsError::NotAvailable(LOG))
    }
    async fn retry(&self, _: &PartnerId, _: &Subscription, _: &str) -> OpsResult<()> {
        Err(OpsError::NotAvailable(RETRY))
    }
    async fn recover(
        &self,
        _: &PartnerId,
        _: &Subscription,
        _: &str,
        _: Option<&str>,
    ) -> OpsResult<RecoveryView> {
        Err(OpsError::NotAvailable(RECOVER))
    }
    async fn send_test(
        &self,
        _: &PartnerId,
        _: &Subscription,
        _: Option<&EventType>,
    ) -> OpsResult<TestResultView> {
        Err(OpsError::NotAvailable(TEST))
    }
    async fn rotate_secret(
        &self,
        _: &PartnerId,
        _: &Subscription,
        _: u64,
    ) -> OpsResult<RotationView> {
        Err(OpsError::NotAvailable(ROTATE))
    }
    async fn health(&self) -> OpsResult<HealthView> {
        let c = self
            .app
            .store
            .delivery_counts()
            .await
            .map_err(ApiError::from)?;
        Ok(HealthView {
            pending: c.pending,
            succeeded: c.succeeded,
            failed: c.failed,
            cancelled: c.cancelled,
            oldest_due_at: None,
            deactivated_subscriptions: None,
        })
    }
    fn example_payload(&self, _: &EventType) -> Option<String> {
        None
    }
}
