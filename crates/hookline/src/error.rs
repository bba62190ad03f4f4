//! The one place API errors become HTTP: Linq's envelope
//! `{"success":false,"error":{"status","code","message","doc_url"},"trace_id"}`. The
//! `trace_id` is the request's (see [`crate::api::request_id`]), so a caller quoting it finds
//! the request's log lines.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// `Retry-After` of a 503: long enough for a full disk to be noticed or a node to restart, short
/// enough that a retrying client does not stall.
const UNAVAILABLE_RETRY_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 1001: a required field is absent.
    #[error("Missing required field '{0}'")]
    MissingField(String),
    /// 1002: a phone number is not E.164.
    #[error("{0}")]
    InvalidPhone(String),
    /// 1003: the body is not JSON, or a field has the wrong type.
    #[error("{0}")]
    InvalidBody(String),
    /// 1005: a field has a value we refuse.
    #[error("{0}")]
    InvalidParameter(String),
    /// 400 (1005): a retry, recover or test of an inactive subscription (issue 11 binds 400
    /// for retry; recover and test answer the same). One message for all three, which the
    /// schema fuzz recognises (scripts/schemathesis_hooks.py).
    #[error("webhook subscription '{0}' is inactive; re-enable it first (is_active: true)")]
    SubscriptionInactive(String),
    #[error("Unauthorized - missing or invalid authentication token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("Method {0} is not allowed on this path")]
    MethodNotAllowed(String),
    /// 409 with `x-should-retry: false`: retrying cannot help.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 408: the request body did not arrive within `HOOKLINE_BODY_TIMEOUT`.
    #[error("{0}")]
    RequestTimeout(String),
    /// 400, 414 or 431 for a request the HTTP layer could not parse (no route ever saw it).
    #[error("{message}")]
    MalformedRequest {
        status: StatusCode,
        message: &'static str,
    },
    /// 503 with `Retry-After`: the store cannot take writes now, or the node is stopping.
    #[error("Service unavailable: {0}")]
    Unavailable(String),
    /// 429 with `Retry-After`: too many failed authentications from this address (or, while
    /// the global failure budget is spent, from an address that failed recently).
    #[error("Too many failed authentication attempts; retry after {retry_after_secs} s")]
    TooManyAuthFailures { retry_after_secs: u64 },
    /// 429 with `Retry-After`: the request would exceed a limit that frees up by itself (a
    /// subscription's deliveries in flight, for a test event).
    #[error("{message}")]
    Busy {
        message: String,
        retry_after_secs: u64,
    },
    #[error("Internal server error")]
    Internal(#[source] anyhow::Error),
}

/// The envelope, as documented for every non-2xx answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub success: bool,
    pub error: ErrorDetail,
    pub trace_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub status: u16,
    pub code: u32,
    pub message: String,
    pub doc_url: String,
    /// Seconds to wait before retrying; on 429 only, beside the `Retry-After` header (the SDKs
    /// read it as `retry_after`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// The seconds a 429 tells the client to wait (`Retry-After` and the envelope's
    /// `retry_after`); `None` for every other error.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyAuthFailures { retry_after_secs }
            | ApiError::Busy {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    pub fn status_and_code(&self) -> (StatusCode, u32) {
        match self {
            ApiError::MissingField(_) => (StatusCode::BAD_REQUEST, 1001),
            ApiError::InvalidPhone(_) => (StatusCode::BAD_REQUEST, 1002),
            ApiError::InvalidBody(_) => (StatusCode::BAD_REQUEST, 1003),
            ApiError::InvalidParameter(_) | ApiError::SubscriptionInactive(_) => {
                (StatusCode::BAD_REQUEST, 1005)
            }
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, 2004),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, 2001),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, 1005),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, 1005),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 1003),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, 1003),
            ApiError::MalformedRequest { status, .. } => (*status, 1003),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, 4004),
            ApiError::TooManyAuthFailures { .. } | ApiError::Busy { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, 1007)
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 3006),
        }
    }
}

/// The longest `message` sent, in bytes. Messages quote caller input in bounded form already
/// (`hookline_core::text`); this is the backstop for any that quotes it whole (a serde error
/// naming a huge string, say), so no answer echoes a request back at length.
pub const MAX_MESSAGE_BYTES: usize = 512;

fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES - '…'.len_utf8();
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

fn doc_url(code: u32) -> String {
    format!(
        "https://docs.linqapp.com/error/codes/{}xxx/{code}/",
        code / 1000
    )
}

impl ApiError {
    /// The envelope of this error for the request `trace_id`.
    pub fn envelope(&self, trace_id: String) -> (StatusCode, ErrorEnvelope) {
        let (status, code) = self.status_and_code();
        let body = ErrorEnvelope {
            success: false,
            error: ErrorDetail {
                status: status.as_u16(),
                code,
                message: bounded(self.to_string()),
                doc_url: doc_url(code),
                retry_after: self.retry_after(),
            },
            trace_id,
        };
        (status, body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let trace_id = crate::api::request_id::current_trace_id().into_string();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%trace_id, error = ?cause, "request failed");
        }
        let (status, body) = self.envelope(trace_id);
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        match self {
            ApiError::Conflict(_) => {
                headers.insert("x-should-retry", HeaderValue::from_static("false"));
            }
            ApiError::Unavailable(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(UNAVAILABLE_RETRY_SECS),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateTargetUrl { existing_id } => ApiError::Conflict(format!(
                "target_url is already used by webhook subscription {existing_id}; each target_url can be used once per account"
            )),
            StoreError::SubscriptionLimit { limit } => ApiError::Conflict(format!(
                "this account already has {limit} webhook subscriptions, the most it may have; delete one before creating another"
            )),
            StoreError::Unavailable(cause) => {
                // The cause (paths, SQLSTATEs) is for the log, not for the caller.
                tracing::warn!(%cause, "the store refused a request; answering 503");
                ApiError::Unavailable("the store cannot take writes right now; retry later".into())
            }
            StoreError::Other(e) => ApiError::Internal(e),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_on_a_character_boundary() {
        assert_eq!(bounded("short".into()), "short");
        for filler in ["x", "é", "😀"] {
            let cut = bounded(filler.repeat(10_000));
            assert!(cut.len() <= MAX_MESSAGE_BYTES, "{}", cut.len());
            assert!(cut.len() > MAX_MESSAGE_BYTES - 8);
            assert!(cut.ends_with('…'));
        }
    }
}
