//! Linq CLI compatibility: `GET /api/v1/webhook-logs`, the endpoint `linq webhooks logs`
//! reads (CONTRACT.md §5.2), so `LINQ_LOGS_URL=<hookline>/api linq webhooks logs <id>` works.
//!
//! The CLI's `WebhookLog` has no nullable fields, so absent values are `0` and `""` here (the
//! CLI shows `ERR` / `---` for a 0 status), and its statuses are `success`, `failed` and
//! `retrying`: pending deliveries count as retrying, cancelled ones as failed. `partner_id`
//! and `org_id` are accepted and ignored: the API key decides whose logs these are.

use axum::extract::State;
use axum::Json;
use hookline_core::DeliveryStatus;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::deliveries::own_subscription;
use super::delivery_views::{ApiQuery, DeliveryItem, LogParams, Pagination};
use super::schema::{CliStatusFilter, CursorText, EventTypeFilter, PerPageText};
use crate::api::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::PartnerAuth;
use crate::store::{LogEntry, LogScope};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookLogParams {
    /// The subscription; omitted or empty: every subscription of the key's partner.
    subscription_id: Option<String>,
    /// `success`, `failed`, `retrying` or `all` (the default).
    #[param(value_type = Option<CliStatusFilter>, inline)]
    status: Option<String>,
    #[param(value_type = Option<EventTypeFilter>, inline)]
    event_type: Option<String>,
    /// 1 to 100; default 20.
    #[param(value_type = Option<PerPageText>, inline)]
    per_page: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<CursorText>, inline)]
    cursor: Option<String>,
    /// Accepted and ignored (the CLI sends its profile's organisation).
    partner_id: Option<String>,
    /// Accepted and ignored.
    org_id: Option<String>,
}

/// The CLI's status vocabulary.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogStatus {
    Success,
    Failed,
    Retrying,
}

/// One entry as the CLI's `WebhookLog` interface declares it.
#[derive(Serialize, ToSchema)]
pub struct WebhookLog {
    event_id: String,
    webhook_event_type: String,
    target_url: String,
    /// 0 when no HTTP answer was received.
    http_status_code: u16,
    /// 0 before any attempt.
    duration_ms: i64,
    timestamp: String,
    status: LogStatus,
    attempt: u32,
    max_attempts: u32,
    /// Empty when there was no error.
    error_type: String,
    error_message: String,
    trace_id: String,
    subscription_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookLogs {
    webhook_logs: Vec<WebhookLog>,
    pagination: Pagination,
}

impl WebhookLog {
    fn new(e: &LogEntry, max_attempts: u32) -> Self {
        let item = DeliveryItem::new(e, max_attempts);
        let status = match e.status {
            DeliveryStatus::Success => LogStatus::Success,
            DeliveryStatus::Failed | DeliveryStatus::Cancelled => LogStatus::Failed,
            DeliveryStatus::Pending | DeliveryStatus::Retrying => LogStatus::Retrying,
        };
        WebhookLog {
            event_id: item.event_id,
            webhook_event_type: item.webhook_event_type,
            target_url: item.target_url,
            http_status_code: item.http_status_code.unwrap_or(0),
            duration_ms: item.duration_ms.unwrap_or(0),
            timestamp: item.timestamp,
            status,
            attempt: item.attempt,
            max_attempts: item.max_attempts,
            error_type: item.error_type.unwrap_or_default(),
            error_message: item.error_message.unwrap_or_default(),
            trace_id: item.trace_id,
            subscription_id: item.subscription_id,
        }
    }
}

fn statuses(raw: Option<&str>) -> ApiResult<Vec<DeliveryStatus>> {
    Ok(match raw.unwrap_or("all") {
        "all" | "" => Vec::new(),
        "success" => vec![DeliveryStatus::Success],
        "failed" => vec![DeliveryStatus::Failed, DeliveryStatus::Cancelled],
        "retrying" => vec![DeliveryStatus::Pending, DeliveryStatus::Retrying],
        other => {
            return Err(ApiError::InvalidParameter(format!(
                "status '{}' is not one of success, failed, retrying, all",
                hookline_core::text::quote(other)
            )))
        }
    })
}

#[utoipa::path(get, path = "/api/v1/webhook-logs", tag = "Delivery Log",
    params(WebhookLogParams),
    responses((status = 200, body = WebhookLogs), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    ApiQuery(params): ApiQuery<WebhookLogParams>,
) -> ApiResult<Json<WebhookLogs>> {
    let _ignored = (&params.partner_id, &params.org_id);
    let scope = match params.subscription_id.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => LogScope::Subscription(own_subscription(&state, &partner, id).await?.id),
        None => LogScope::Partner(partner),
    };
    let log_params = LogParams {
        status: None,
        event_type: params.event_type,
        since: None,
        until: None,
        per_page: params.per_page,
        cursor: params.cursor,
    };
    let query = log_params.query(scope, statuses(params.status.as_deref())?)?;
    let page = state.store.delivery_log(&query).await?;
    Ok(Json(WebhookLogs {
        pagination: Pagination::of(&page, query.limit),
        webhook_logs: page
            .entries
            .iter()
            .map(|e| WebhookLog::new(e, state.max_attempts))
            .collect(),
    }))
}
