//! The partner's delivery log and redelivery, under `/v3/webhook-subscriptions/{id}`:
//! the log, one delivery with its attempts, a retry, and recoveries. Only the partner's own
//! subscriptions: another partner's ids answer 404, like unknown ones.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hookline_core::{EventId, PartnerId, RecoveryId, Subscription, SubscriptionId, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::delivery_views::{
    parse_statuses, ApiQuery, AttemptItem, DeliveryItem, LogParams, Pagination,
};
use super::schema::DateTimeText;
use crate::api::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, PartnerAuth};
use crate::store::{LogScope, NewRecovery, Recovery, RetryOutcome};

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    deliveries: Vec<DeliveryItem>,
    pagination: Pagination,
}

/// One delivery with every recorded attempt, oldest first.
#[derive(Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    delivery: DeliveryItem,
    attempts: Vec<AttemptItem>,
}

#[derive(Deserialize, ToSchema)]
pub struct RecoverRequest {
    /// Re-queue failed deliveries created at or after this time (RFC 3339).
    #[schema(value_type = DateTimeText)]
    since: String,
    /// … and before this time (RFC 3339), later than `since`; default: now.
    #[serde(default)]
    #[schema(value_type = Option<DateTimeText>)]
    until: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryStarted {
    recovery_id: String,
    /// Failed deliveries in the window, to be re-queued.
    deliveries: u64,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryState {
    recovery_id: String,
    /// `running` until every delivery was re-queued, then `completed`.
    #[schema(example = "running")]
    status: String,
    /// Re-queued so far.
    queued: u64,
    /// Failed deliveries in the window when the recovery was made.
    total: u64,
}

impl From<&Recovery> for RecoveryState {
    fn from(r: &Recovery) -> Self {
        RecoveryState {
            recovery_id: r.id.to_string(),
            status: r.status.as_str().to_owned(),
            queued: r.queued,
            total: r.total,
        }
    }
}

impl From<&Recovery> for RecoveryStarted {
    fn from(r: &Recovery) -> Self {
        RecoveryStarted {
            recovery_id: r.id.to_string(),
            deliveries: r.total,
        }
    }
}

fn delivery_not_found(event_id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "No delivery of event '{}' to this webhook subscription",
        hookline_core::text::quote(event_id)
    ))
}

/// The partner's own live subscription, else 404.
pub async fn own_subscription(
    state: &AppState,
    partner: &PartnerId,
    id: &str,
) -> ApiResult<Subscription> {
    super::partner::load(state, partner, id).await
}

/// The partner's recovery (of `subscription`, when given), else 404.
pub async fn find_recovery(
    state: &AppState,
    partner: &PartnerId,
    raw_id: &str,
    subscription: Option<&SubscriptionId>,
) -> ApiResult<Recovery> {
    let not_found = || {
        ApiError::NotFound(format!(
            "Recovery '{}' not found",
            hookline_core::text::quote(raw_id)
        ))
    };
    let id = RecoveryId::parse(raw_id).map_err(|_| not_found())?;
    state
        .store
        .get_recovery(partner, &id)
        .await?
        .filter(|r| subscription.is_none_or(|s| r.subscription_id.as_ref() == Some(s)))
        .ok_or_else(not_found)
}

/// Parses a window of a recovery: `since` required, `until` later when given.
pub fn parse_window(since: &str, until: Option<&str>) -> ApiResult<(Timestamp, Option<Timestamp>)> {
    let time = |name: &str, raw: &str| {
        Timestamp::parse_date_time(raw).ok_or_else(|| {
            ApiError::InvalidParameter(format!(
                "{name} '{}' is not an RFC 3339 time (e.g. 2026-04-14T12:00:00Z)",
                hookline_core::text::quote(raw)
            ))
        })
    };
    let since = time("since", since)?;
    let until = until.map(|u| time("until", u)).transpose()?;
    if until.is_some_and(|u| u <= since) {
        return Err(ApiError::InvalidParameter(
            "until must be later than since".into(),
        ));
    }
    Ok((since, until))
}

#[utoipa::path(get, path = "/v3/webhook-subscriptions/{subscriptionId}/deliveries",
    tag = "Delivery Log",
    params(("subscriptionId" = String, Path, description = "Subscription id (UUID)"), LogParams),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<LogParams>,
) -> ApiResult<Json<DeliveryList>> {
    let sub = own_subscription(&state, &partner, &id).await?;
    Ok(Json(log_page(&state, &sub, &params).await?))
}

/// One page of `sub`'s delivery log (the API's and the portal's); `sub` is the caller's own.
pub async fn log_page(
    state: &AppState,
    sub: &Subscription,
    params: &LogParams,
) -> ApiResult<DeliveryList> {
    let statuses = parse_statuses(params.status.as_deref())?;
    let query = params.query(LogScope::Subscription(sub.id.clone()), statuses)?;
    let page = state.store.delivery_log(&query).await?;
    Ok(DeliveryList {
        pagination: Pagination::of(&page, query.limit),
        deliveries: page
            .entries
            .iter()
            .map(|e| DeliveryItem::new(e, state.max_attempts))
            .collect(),
    })
}

/// One delivery of the partner's `sub` with its attempts, else 404.
pub async fn detail(
    state: &AppState,
    partner: &PartnerId,
    sub: &Subscription,
    event_id: &str,
) -> ApiResult<DeliveryDetail> {
    let Ok(event) = EventId::parse(event_id) else {
        return Err(delivery_not_found(event_id));
    };
    let (entry, attempts) = state
        .store
        .delivery_attempts(partner, &sub.id, &event)
        .await?
        .ok_or_else(|| delivery_not_found(event_id))?;
    Ok(DeliveryDetail {
        delivery: DeliveryItem::new(&entry, state.max_attempts),
        attempts: attempts.iter().map(AttemptItem::from).collect(),
    })
}

#[utoipa::path(get, path = "/v3/webhook-subscriptions/{subscriptionId}/deliveries/{eventId}",
    tag = "Delivery Log",
    params(("subscriptionId" = String, Path, description = "Subscription id (UUID)"),
           ("eventId" = String, Path, description = "The event's id (`webhook-id`)")),
    responses((status = 200, body = DeliveryDetail), (status = 401, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
              (status = 503, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    ApiPath((id, event_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<DeliveryDetail>> {
    let sub = own_subscription(&state, &partner, &id).await?;
    Ok(Json(detail(&state, &partner, &sub, &event_id).await?))
}

#[utoipa::path(post, path = "/v3/webhook-subscriptions/{subscriptionId}/deliveries/{eventId}/retry",
    tag = "Delivery Log",
    params(("subscriptionId" = String, Path, description = "Subscription id (UUID)"),
           ("eventId" = String, Path, description = "The event's id (`webhook-id`)")),
    responses((status = 202, description = "Due now, with a fresh retry schedule", body = DeliveryDetail),
              (status = 400, description = "The subscription is inactive", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "Pending or retrying already", body = ErrorEnvelope),
              (status = 413, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
              (status = 503, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    ApiPath((id, event_id)): ApiPath<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeliveryDetail>)> {
    let sub = own_subscription(&state, &partner, &id).await?;
    let body = retry_delivery(&state, &partner, &sub, &event_id).await?;
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// Re-queues one finished delivery of the partner's `sub` (the API's and the portal's retry).
pub async fn retry_delivery(
    state: &AppState,
    partner: &PartnerId,
    sub: &Subscription,
    event_id: &str,
) -> ApiResult<DeliveryDetail> {
    let Ok(event) = EventId::parse(event_id) else {
        return Err(delivery_not_found(event_id));
    };
    match state
        .store
        .retry_delivery(partner, &sub.id, &event, Timestamp::now())
        .await?
    {
        RetryOutcome::Requeued => state.publisher.wake_dispatcher(),
        RetryOutcome::NotFound => return Err(delivery_not_found(event_id)),
        RetryOutcome::Inactive => return Err(ApiError::SubscriptionInactive(sub.id.to_string())),
        RetryOutcome::InProgress => {
            return Err(ApiError::Conflict(format!(
                "the delivery of event '{event}' is pending or retrying already"
            )))
        }
    }
    tracing::info!(subscription_id = %sub.id, event_id = %event, "delivery re-queued");
    detail(state, partner, sub, event_id).await
}

#[utoipa::path(post, path = "/v3/webhook-subscriptions/{subscriptionId}/recover",
    tag = "Delivery Log",
    params(("subscriptionId" = String, Path, description = "Subscription id (UUID)")),
    request_body = RecoverRequest,
    responses((status = 202, description = "Re-queued in the background at a bounded pace", body = RecoveryStarted),
              (status = 400, description = "A time that is not RFC 3339, `until` not later than `since`, or the subscription is inactive", body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope),
              (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn recover(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RecoverRequest>,
) -> ApiResult<(StatusCode, Json<RecoveryStarted>)> {
    let sub = own_subscription(&state, &partner, &id).await?;
    let started = start_recovery(&state, &partner, &sub, &req.since, req.until.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// Starts re-queueing the failed deliveries of the partner's `sub` created in the window
/// (RFC 3339 times; `until` defaults to now): the API's and the portal's recover.
pub async fn start_recovery(
    state: &AppState,
    partner: &PartnerId,
    sub: &Subscription,
    since: &str,
    until: Option<&str>,
) -> ApiResult<RecoveryStarted> {
    let (since, until) = parse_window(since, until)?;
    if !sub.is_active {
        return Err(ApiError::SubscriptionInactive(sub.id.to_string()));
    }
    let now = Timestamp::now();
    let recovery = state
        .store
        .create_recovery(&NewRecovery {
            id: RecoveryId::generate(),
            partner_id: partner.clone(),
            subscription_id: Some(sub.id.clone()),
            since,
            until: Some(until.unwrap_or(now)),
            now,
        })
        .await?;
    tracing::info!(subscription_id = %sub.id, recovery_id = %recovery.id,
        total = recovery.total, "recovery started");
    Ok(RecoveryStarted::from(&recovery))
}

#[utoipa::path(get, path = "/v3/webhook-subscriptions/{subscriptionId}/recoveries/{recoveryId}",
    tag = "Delivery Log",
    params(("subscriptionId" = String, Path, description = "Subscription id (UUID)"),
           ("recoveryId" = String, Path, description = "From the recover answer")),
    responses((status = 200, body = RecoveryState), (status = 401, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
              (status = 503, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn recovery(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    ApiPath((id, recovery_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<RecoveryState>> {
    let sub = own_subscription(&state, &partner, &id).await?;
    Ok(Json(
        recovery_state(&state, &partner, &sub, &recovery_id).await?,
    ))
}

/// A recovery of the partner's `sub`, else 404 (the API's and the portal's status).
pub async fn recovery_state(
    state: &AppState,
    partner: &PartnerId,
    sub: &Subscription,
    recovery_id: &str,
) -> ApiResult<RecoveryState> {
    let recovery = find_recovery(state, partner, recovery_id, Some(&sub.id)).await?;
    Ok(RecoveryState::from(&recovery))
}
