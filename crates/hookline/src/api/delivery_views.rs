//! What the delivery-log endpoints share: their query parameters, parsed once into a
//! [`LogQuery`], and the JSON of a delivery and its attempts.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use hookline_core::{DeliveryStatus, EventType, LogCursor, Timestamp};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::schema::{CursorText, DateTimeFilter, EventTypeFilter, PerPageText, StatusListText};
use crate::error::{ApiError, ApiResult};
use crate::store::{AttemptRecord, LogEntry, LogPage, LogQuery, LogScope};

pub const DEFAULT_PER_PAGE: usize = 20;
pub const MAX_PER_PAGE: usize = 100;

/// Query parameters, with errors in our envelope: a parameter given twice or that is not
/// UTF-8 is a 400 (1003), never axum's plain-text rejection. Unknown parameters are ignored.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::InvalidBody(format!("Invalid query string: {}", e.body_text())))
    }
}

/// The filters every log listing takes. The document describes each value exactly
/// (`api/schema.rs`); an empty one is the same as none.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Comma-separated: `pending`, `retrying`, `success`, `failed`, `cancelled`.
    #[param(value_type = Option<StatusListText>, inline)]
    pub status: Option<String>,
    /// One event type, e.g. `message.received`.
    #[param(value_type = Option<EventTypeFilter>, inline)]
    pub event_type: Option<String>,
    /// Deliveries created at or after this time (RFC 3339).
    #[param(value_type = Option<DateTimeFilter>, inline)]
    pub since: Option<String>,
    /// Deliveries created before this time (RFC 3339), later than `since`.
    #[param(value_type = Option<DateTimeFilter>, inline)]
    pub until: Option<String>,
    /// 1 to 100; default 20.
    #[param(value_type = Option<PerPageText>, inline)]
    pub per_page: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<CursorText>, inline)]
    pub cursor: Option<String>,
}

fn invalid(message: String) -> ApiError {
    ApiError::InvalidParameter(message)
}

fn parse_time(name: &str, raw: Option<&str>) -> ApiResult<Option<Timestamp>> {
    raw.filter(|r| !r.is_empty())
        .map(|r| {
            Timestamp::parse_date_time(r).ok_or_else(|| {
                invalid(format!(
                    "{name} '{}' is not an RFC 3339 time (e.g. 2026-04-14T12:00:00Z)",
                    hookline_core::text::quote(r)
                ))
            })
        })
        .transpose()
}

pub fn parse_statuses(raw: Option<&str>) -> ApiResult<Vec<DeliveryStatus>> {
    DeliveryStatus::parse_list(raw.unwrap_or_default()).map_err(|unknown| {
        invalid(format!(
            "status '{}' is not one of pending, retrying, success, failed, cancelled",
            hookline_core::text::quote(&unknown)
        ))
    })
}

pub fn parse_event_type(raw: Option<&str>) -> ApiResult<Option<EventType>> {
    raw.filter(|r| !r.is_empty())
        .map(|r| {
            EventType::parse(r).map_err(|_| {
                invalid(format!(
                    "event_type '{}' is not a known event type; GET /v3/webhook-events lists them",
                    hookline_core::text::quote(r)
                ))
            })
        })
        .transpose()
}

pub(crate) fn parse_per_page(raw: Option<&str>) -> ApiResult<usize> {
    match raw.filter(|r| !r.is_empty()) {
        None => Ok(DEFAULT_PER_PAGE),
        Some(r) => r
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PER_PAGE).contains(n))
            .ok_or_else(|| {
                invalid(format!(
                    "per_page '{}' must be an integer from 1 to {MAX_PER_PAGE}",
                    hookline_core::text::quote(r)
                ))
            }),
    }
}

pub fn parse_cursor(raw: Option<&str>) -> ApiResult<Option<LogCursor>> {
    raw.filter(|r| !r.is_empty())
        .map(|r| {
            LogCursor::decode(r)
                .ok_or_else(|| invalid("cursor is not a next_cursor this API returned".to_owned()))
        })
        .transpose()
}

impl LogParams {
    /// The query for `scope`; `statuses` already parsed (the compatibility endpoint has its own).
    pub fn query(&self, scope: LogScope, statuses: Vec<DeliveryStatus>) -> ApiResult<LogQuery> {
        let since = parse_time("since", self.since.as_deref())?;
        let until = parse_time("until", self.until.as_deref())?;
        if let (Some(s), Some(u)) = (since, until) {
            if u <= s {
                return Err(invalid("until must be later than since".into()));
            }
        }
        Ok(LogQuery {
            scope,
            statuses,
            event_type: parse_event_type(self.event_type.as_deref())?,
            since,
            until,
            cursor: parse_cursor(self.cursor.as_deref())?,
            limit: parse_per_page(self.per_page.as_deref())?,
        })
    }
}

/// A delivery's status.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusName {
    Pending,
    Retrying,
    Success,
    Failed,
    Cancelled,
}

impl From<DeliveryStatus> for StatusName {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => StatusName::Pending,
            DeliveryStatus::Retrying => StatusName::Retrying,
            DeliveryStatus::Success => StatusName::Success,
            DeliveryStatus::Failed => StatusName::Failed,
            DeliveryStatus::Cancelled => StatusName::Cancelled,
        }
    }
}

/// One delivery (an event to one subscription) and its latest attempt. The fields of Linq's
/// `webhook logs`, plus `created_at` and `next_attempt_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryItem {
    pub event_id: String,
    #[schema(example = "message.received")]
    pub webhook_event_type: String,
    pub target_url: String,
    /// The latest attempt's HTTP status; null before any answer.
    pub http_status_code: Option<u16>,
    /// The latest attempt's duration; null before any attempt.
    pub duration_ms: Option<i64>,
    /// When the latest attempt started, or the delivery was created (RFC 3339).
    pub timestamp: String,
    pub status: StatusName,
    /// The number of the latest recorded attempt; 0 before any.
    pub attempt: u32,
    /// The attempt after which the delivery fails for good if none succeeds.
    pub max_attempts: u32,
    /// `timeout`, `connect`, `dns`, `tls`, `http_status`, `redirect`, `ssrf_blocked`, …
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub trace_id: String,
    pub subscription_id: String,
    pub created_at: String,
    /// Pending and retrying deliveries: when the next attempt is due.
    pub next_attempt_at: Option<String>,
}

impl DeliveryItem {
    /// `max_attempts` is the schedule's per (re)delivery; a redelivered one counts on from
    /// the attempts it had.
    pub fn new(e: &LogEntry, max_attempts: u32) -> Self {
        let last = e.last_attempt.as_ref();
        DeliveryItem {
            event_id: e.event_id.to_string(),
            webhook_event_type: e.event_type.clone(),
            target_url: e.target_url.clone(),
            http_status_code: last.and_then(|a| a.status_code),
            duration_ms: last.map(|a| a.duration_ms),
            timestamp: last.map_or(e.created_at, |a| a.started_at).rfc3339(),
            status: e.status.into(),
            attempt: last.map_or(0, |a| a.attempt),
            max_attempts: e.attempt_base + max_attempts,
            error_type: last
                .and_then(|a| a.error_kind)
                .map(|k| k.as_str().to_owned()),
            error_message: last.and_then(|a| a.error_message.clone()),
            trace_id: e.trace_id.to_string(),
            subscription_id: e.subscription_id.to_string(),
            created_at: e.created_at.rfc3339(),
            next_attempt_at: e.next_attempt_at.map(Timestamp::rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptItem {
    /// 1-based; keeps counting up across redeliveries.
    pub attempt: u32,
    pub started_at: String,
    pub duration_ms: i64,
    pub http_status_code: Option<u16>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    /// The first 4 KiB of the receiver's answer, as stored.
    pub response_body: Option<String>,
}

impl From<&AttemptRecord> for AttemptItem {
    fn from(a: &AttemptRecord) -> Self {
        AttemptItem {
            attempt: a.attempt,
            started_at: a.started_at.rfc3339(),
            duration_ms: a.duration_ms,
            http_status_code: a.status_code,
            error_type: a.error_kind.map(|k| k.as_str().to_owned()),
            error_message: a.error_message.clone(),
            response_body: a.response_body.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pagination {
    pub has_more: bool,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    pub per_page: u32,
}

impl Pagination {
    pub fn of(page: &LogPage, per_page: usize) -> Self {
        Pagination {
            has_more: page.next.is_some(),
            next_cursor: page.next.map(LogCursor::encode),
            per_page: per_page as u32,
        }
    }
}
