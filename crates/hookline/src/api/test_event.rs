//! `POST /v3/webhook-subscriptions/{id}/test`: one synthetic event to one subscription through
//! the normal signed path (`delivery/test_event.rs`), answered once its attempt is recorded.

use axum::extract::State;
use axum::Json;
use hookline_core::payload::catalogue;
use hookline_core::{EventId, EventTime, EventType, PartnerId, Timestamp, TraceId, WebhookVersion};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::partner::{load, not_found};
use super::request_id::RequestIdentity;
use super::schema::EventTypeName;
use crate::api::AppState;
use crate::delivery::Tested;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiPath, OptionalApiJson, PartnerAuth};
use crate::store::{NewEvent, Subscription};

/// Every field is optional; an empty body is the same as `{}`.
#[derive(Deserialize, ToSchema, Default)]
pub struct TestEventRequest {
    /// One of the subscription's `subscribed_events`; default: the first of them.
    #[serde(default)]
    #[schema(value_type = Option<EventTypeName>)]
    event_type: Option<String>,
}

/// The test event's only attempt (it is never retried). It is in the delivery log like any
/// delivery.
#[derive(Serialize, ToSchema)]
pub struct TestEventResult {
    /// The synthetic event's id (`webhook-id`), fresh for each test.
    event_id: String,
    /// The receiver's status code; null when no answer came.
    http_status_code: Option<u16>,
    duration_ms: i64,
    /// Why the attempt failed (`http_status`, `timeout`, `connect`, `ssrf_blocked`, …); null on success.
    error_type: Option<String>,
    error_message: Option<String>,
}

#[utoipa::path(post, path = "/v3/webhook-subscriptions/{subscriptionId}/test",
    tag = "Webhook Subscriptions",
    params(("subscriptionId" = String, Path, description = "Subscription id (UUID)")),
    request_body(content = Option<TestEventRequest>, description = "Optional; an empty body is `{}`"),
    responses((status = 200, description = "Sent; the attempt's result (a failed attempt is a 200 too)", body = TestEventResult),
              (status = 400, description = "The subscription is inactive, or `event_type` is not one it subscribes to (`message.edited` only on webhook version 2026-02-03)", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope),
              (status = 409, description = "This node does not send deliveries (HOOKLINE_ROLE=api)", body = ErrorEnvelope),
              (status = 413, body = ErrorEnvelope),
              (status = 503, description = "The store cannot take writes now; retry", body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn send_test(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    request: RequestIdentity,
    ApiPath(id): ApiPath<String>,
    OptionalApiJson(req): OptionalApiJson<TestEventRequest>,
) -> ApiResult<Json<TestEventResult>> {
    let sub = load(&state, &partner, &id).await?;
    let result = send_test_event(
        &state,
        partner,
        &sub,
        req.event_type.as_deref(),
        &request.trace_id,
    )
    .await?;
    Ok(Json(result))
}

/// Sends one test event of `event_type` (default: the first subscribed) to the partner's
/// `sub` and answers with its attempt: the API's and the portal's test.
/// How soon a test event at the in-flight cap may be tried again: an attempt in flight ends
/// within the delivery timeout, most within a second.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

pub async fn send_test_event(
    state: &AppState,
    partner: PartnerId,
    sub: &Subscription,
    event_type: Option<&str>,
    trace_id: &TraceId,
) -> ApiResult<TestEventResult> {
    let event_type = test_event_type(sub, event_type)?;
    if !state.settings.role.delivers() {
        // An API-only node never sends anything (README: Running several nodes).
        return Err(ApiError::Conflict(
            "this node does not send deliveries (HOOKLINE_ROLE=api); send test events through \
             a node with HOOKLINE_ROLE=all"
                .into(),
        ));
    }
    let now = Timestamp::now();
    let event = NewEvent {
        partner_id: partner,
        event_id: EventId::generate(),
        event_type,
        // A subscription filtered to some lines receives events from them only.
        phone_number: sub.phone_numbers.first().cloned(),
        created_at: EventTime::at(now),
        trace_id: trace_id.clone(),
        // The catalogue's example, as `GET /admin/v1/event-types` and the portal show it.
        data: catalogue::entry(event_type).example.to_string(),
        // Converted in the publish plan when the subscription is on 2025-01-01.
        data_v2025: None,
    };
    let event_id = event.event_id.clone();
    let id = sub.id.as_str();
    let attempt = match state.test_sender.send(event, &sub.id).await? {
        Tested::Attempted(attempt) => attempt,
        Tested::Busy => {
            return Err(ApiError::Busy {
                message: format!(
                    "webhook subscription '{id}' has as many deliveries in flight as it may; \
                     retry when one has finished"
                ),
                retry_after_secs: BUSY_RETRY_AFTER_SECS,
            })
        }
        Tested::Stopping => {
            return Err(ApiError::Unavailable(
                "this node is shutting down; send the test event again".into(),
            ))
        }
        // Deactivated, changed or deleted since it was read.
        Tested::NotReceived => {
            return Err(match load(state, &sub.partner_id, id).await?.is_active {
                true => ApiError::Unavailable(format!(
                    "webhook subscription '{id}' changed while the test was prepared; retry"
                )),
                false => ApiError::SubscriptionInactive(id.to_owned()),
            })
        }
    };
    Ok(TestEventResult {
        event_id: event_id.to_string(),
        http_status_code: attempt.status_code,
        duration_ms: attempt.duration_ms,
        error_type: attempt.error_kind.map(|k| k.as_str().to_owned()),
        error_message: attempt.error_message,
    })
}

/// The type to send: the one asked for, if the subscription would receive it, else its first.
fn test_event_type(sub: &Subscription, asked: Option<&str>) -> ApiResult<EventType> {
    if !sub.is_active {
        return Err(ApiError::SubscriptionInactive(sub.id.to_string()));
    }
    let event_type = match asked {
        None => *sub
            .subscribed_events
            .first()
            .ok_or_else(|| not_found(sub.id.as_str()))?,
        Some(name) => EventType::parse(name).map_err(|_| {
            ApiError::InvalidParameter(format!(
                "Unknown event type '{}' in event_type; GET /v3/webhook-events lists the valid ones",
                hookline_core::text::quote(name)
            ))
        })?,
    };
    if !sub.subscribed_events.contains(&event_type) {
        return Err(ApiError::InvalidParameter(format!(
            "event_type '{}' is not among the subscription's subscribed_events",
            event_type.as_str()
        )));
    }
    if event_type.is_message_edited()
        && sub.target_url.webhook_version() != WebhookVersion::V2026_02_03
    {
        return Err(ApiError::InvalidParameter(
            "message.edited is delivered only to subscriptions on webhook version 2026-02-03"
                .into(),
        ));
    }
    Ok(event_type)
}
