//! The operator's delivery log, across partners (admin token): listing, one event with every
//! delivery of it, and bulk retry (a recovery over a partner's subscriptions).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hookline_core::{EventId, PartnerId, RecoveryId, SubscriptionId, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::deliveries::{find_recovery, parse_window, RecoveryStarted, RecoveryState};
use super::delivery_views::{parse_statuses, ApiQuery, DeliveryItem, LogParams, Pagination};
use super::schema::{BulkRetryStatus, DateTimeText, PartnerIdText};
use crate::api::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{AdminAuth, ApiJson, ApiPath};
use crate::store::{LogEntry, LogScope, NewRecovery};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminScope {
    /// Only this partner's deliveries.
    partner_id: Option<String>,
    /// Only this subscription's deliveries.
    subscription_id: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PartnerParam {
    /// The partner the event (or recovery) belongs to; event ids are unique per partner.
    /// Required: absent or empty is a 400 (1001).
    #[param(value_type = PartnerIdText, required = true, inline)]
    partner_id: Option<String>,
}

/// A delivery as the operator sees it: with its partner.
#[derive(Serialize, ToSchema)]
pub struct AdminDeliveryItem {
    partner_id: String,
    #[serde(flatten)]
    delivery: DeliveryItem,
}

#[derive(Serialize, ToSchema)]
pub struct AdminDeliveryList {
    deliveries: Vec<AdminDeliveryItem>,
    pagination: Pagination,
}

/// A stored event and every delivery of it.
#[derive(Serialize, ToSchema)]
pub struct EventWithDeliveries {
    event_id: String,
    partner_id: String,
    event_type: String,
    phone_number: Option<String>,
    /// As the publisher gave it.
    created_at: String,
    trace_id: String,
    /// When hookline accepted it.
    accepted_at: String,
    /// Byte for byte as published.
    #[schema(value_type = Object)]
    data: Box<serde_json::value::RawValue>,
    deliveries: Vec<AdminDeliveryItem>,
}

#[derive(Deserialize, ToSchema)]
pub struct BulkRetryRequest {
    /// An existing partner (else 400).
    #[schema(value_type = PartnerIdText)]
    partner_id: String,
    /// Only this subscription of the partner (else 404); omitted: every active subscription
    /// of the partner.
    #[serde(default)]
    subscription_id: Option<String>,
    /// Which deliveries: only `failed` is supported.
    #[schema(value_type = BulkRetryStatus)]
    status: String,
    /// Deliveries created at or after (RFC 3339).
    #[schema(value_type = DateTimeText)]
    since: String,
    /// … and before (RFC 3339), later than `since`; default: now.
    #[serde(default)]
    #[schema(value_type = Option<DateTimeText>)]
    until: Option<String>,
}

fn item(e: &LogEntry, max_attempts: u32) -> AdminDeliveryItem {
    AdminDeliveryItem {
        partner_id: e.partner_id.to_string(),
        delivery: DeliveryItem::new(e, max_attempts),
    }
}

fn required_partner(raw: Option<&str>) -> ApiResult<PartnerId> {
    let raw = raw
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::MissingField("partner_id".into()))?;
    PartnerId::parse(raw).map_err(|e| ApiError::InvalidParameter(e.to_string()))
}

/// The scope of a listing; `None` when the filters name nothing that can exist.
async fn scope(state: &AppState, s: &AdminScope) -> ApiResult<Option<LogScope>> {
    let partner = match s.partner_id.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(raw) => match PartnerId::parse(raw) {
            Ok(p) => Some(p),
            Err(_) => return Ok(None),
        },
    };
    let Some(raw_sub) = s.subscription_id.as_deref().filter(|p| !p.is_empty()) else {
        return Ok(Some(partner.map_or(LogScope::All, LogScope::Partner)));
    };
    let Ok(sub) = SubscriptionId::parse(raw_sub) else {
        return Ok(None);
    };
    if let Some(p) = &partner {
        if state.store.get_subscription(p, &sub).await?.is_none() {
            return Ok(None);
        }
    }
    Ok(Some(LogScope::Subscription(sub)))
}

#[utoipa::path(get, path = "/admin/v1/deliveries", tag = "Operator",
    params(AdminScope, LogParams),
    responses((status = 200, body = AdminDeliveryList), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
              (status = 503, body = ErrorEnvelope)),
    security(("admin" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiQuery(filter): ApiQuery<AdminScope>,
    ApiQuery(params): ApiQuery<LogParams>,
) -> ApiResult<Json<AdminDeliveryList>> {
    let statuses = parse_statuses(params.status.as_deref())?;
    // Parsed even when the scope is empty, so a bad parameter is a 400 either way.
    let mut query = params.query(LogScope::All, statuses)?;
    let (entries, pagination) = match scope(&state, &filter).await? {
        None => (
            Vec::new(),
            Pagination::of(
                &crate::store::LogPage {
                    entries: Vec::new(),
                    next: None,
                },
                query.limit,
            ),
        ),
        Some(scope) => {
            query.scope = scope;
            let page = state.store.delivery_log(&query).await?;
            let pagination = Pagination::of(&page, query.limit);
            (page.entries, pagination)
        }
    };
    Ok(Json(AdminDeliveryList {
        deliveries: entries
            .iter()
            .map(|e| item(e, state.max_attempts))
            .collect(),
        pagination,
    }))
}

#[utoipa::path(get, path = "/admin/v1/events/{eventId}", tag = "Operator",
    params(("eventId" = String, Path, description = "The event's id"), PartnerParam),
    responses((status = 200, body = EventWithDeliveries), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)),
    security(("admin" = [])))]
pub async fn event(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiPath(event_id): ApiPath<String>,
    ApiQuery(p): ApiQuery<PartnerParam>,
) -> ApiResult<Json<EventWithDeliveries>> {
    let partner = required_partner(p.partner_id.as_deref())?;
    let not_found = || {
        ApiError::NotFound(format!(
            "Event '{}' of partner '{}' not found",
            hookline_core::text::quote(&event_id),
            hookline_core::text::quote(partner.as_str())
        ))
    };
    let id = EventId::parse(&event_id).map_err(|_| not_found())?;
    let log = state
        .store
        .event_log(&partner, &id)
        .await?
        .ok_or_else(not_found)?;
    // As stored, not re-serialised: `-0` stays `-0`, and events accepted before the publish
    // check refused values serde cannot hold (`1e400`) still show.
    let data = serde_json::value::RawValue::from_string(log.data)
        .map_err(|e| anyhow::anyhow!("stored event data is not JSON: {e}"))?;
    Ok(Json(EventWithDeliveries {
        event_id: log.event_id.to_string(),
        partner_id: log.partner_id.to_string(),
        event_type: log.event_type,
        phone_number: log.phone_number,
        created_at: log.created_at,
        trace_id: log.trace_id.to_string(),
        accepted_at: log.accepted_at.rfc3339(),
        data,
        deliveries: log
            .deliveries
            .iter()
            .map(|e| item(e, state.max_attempts))
            .collect(),
    }))
}

#[utoipa::path(post, path = "/admin/v1/deliveries/retry", tag = "Operator",
    request_body = BulkRetryRequest,
    responses((status = 202, description = "Re-queued in the background at a bounded pace", body = RecoveryStarted),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope),
              (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)),
    security(("admin" = [])))]
pub async fn bulk_retry(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiJson(req): ApiJson<BulkRetryRequest>,
) -> ApiResult<(StatusCode, Json<RecoveryStarted>)> {
    let partner = required_partner(Some(&req.partner_id))?;
    if req.status != "failed" {
        return Err(ApiError::InvalidParameter(format!(
            "status '{}' cannot be retried in bulk; only 'failed' can",
            hookline_core::text::quote(&req.status)
        )));
    }
    let (since, until) = parse_window(&req.since, req.until.as_deref())?;
    if !state.store.partner_exists(&partner).await? {
        return Err(ApiError::InvalidParameter(format!(
            "Unknown partner_id '{}'",
            hookline_core::text::quote(partner.as_str())
        )));
    }
    let subscription_id = match req.subscription_id.as_deref() {
        None => None,
        Some(raw) => {
            let sub = super::deliveries::own_subscription(&state, &partner, raw).await?;
            // As the partner's recover answers: an inactive subscription would re-queue
            // nothing (its deliveries are never sent), which a 202 would hide.
            if !sub.is_active {
                return Err(ApiError::SubscriptionInactive(sub.id.to_string()));
            }
            Some(sub.id)
        }
    };
    let now = Timestamp::now();
    let recovery = state
        .store
        .create_recovery(&NewRecovery {
            id: RecoveryId::generate(),
            partner_id: partner,
            subscription_id,
            since,
            until: Some(until.unwrap_or(now)),
            now,
        })
        .await?;
    tracing::info!(recovery_id = %recovery.id, total = recovery.total, "bulk retry started");
    Ok((StatusCode::ACCEPTED, Json(RecoveryStarted::from(&recovery))))
}

#[utoipa::path(get, path = "/admin/v1/recoveries/{recoveryId}", tag = "Operator",
    params(("recoveryId" = String, Path, description = "From the bulk retry answer"), PartnerParam),
    responses((status = 200, body = RecoveryState), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)),
    security(("admin" = [])))]
pub async fn recovery(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiPath(recovery_id): ApiPath<String>,
    ApiQuery(p): ApiQuery<PartnerParam>,
) -> ApiResult<Json<RecoveryState>> {
    let partner = required_partner(p.partner_id.as_deref())?;
    let recovery = find_recovery(&state, &partner, &recovery_id, None).await?;
    Ok(Json(RecoveryState::from(&recovery)))
}
