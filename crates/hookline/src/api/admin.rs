//! The operator API (`/admin/v1`): partners, their API keys, and event publishing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hookline_core::{
    ApiKey, ApiKeyId, ApiKeyRecord, EventId, EventTime, EventType, Partner, PartnerId, PhoneNumber,
    Timestamp, TraceId,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::request_id::RequestIdentity;
use super::schema::{
    DateTimeText, E164Number, EventIdText, EventTypeName, LabelText, NameText, PartnerIdText,
    TraceIdText,
};
use crate::api::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AdminAuth, ApiJson, ApiPath, OptionalApiJson};
use crate::payload_check::Refused;
use crate::store::{NewEvent, Published};

pub const MAX_BATCH: usize = 1000;

#[derive(Deserialize, ToSchema)]
pub struct CreatePartnerRequest {
    #[schema(value_type = NameText)]
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct PartnerView {
    id: String,
    name: String,
    created_at: String,
}

impl From<&Partner> for PartnerView {
    fn from(p: &Partner) -> Self {
        PartnerView {
            id: p.id.to_string(),
            name: p.name.clone(),
            created_at: p.created_at.rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PartnerList {
    partners: Vec<PartnerView>,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct CreateApiKeyRequest {
    /// A label for the key; blank or absent means none.
    #[serde(default)]
    #[schema(value_type = Option<LabelText>)]
    name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    id: String,
    name: Option<String>,
    /// Shown only in this response.
    api_key: String,
    created_at: String,
}

/// One event to publish.
#[derive(Deserialize, ToSchema)]
pub struct PublishRequest {
    /// An existing partner's id (an unknown one is a 400).
    #[schema(value_type = PartnerIdText)]
    partner_id: String,
    #[schema(value_type = EventTypeName)]
    event_type: String,
    /// The partner's line the event comes from (E.164); null or absent for events of no line.
    #[serde(default)]
    #[schema(value_type = Option<E164Number>)]
    phone_number: Option<String>,
    /// Delivered verbatim inside the envelope; must be a JSON object, in the 2026-02-03 shape of
    /// its event type (`GET /admin/v1/event-types`; checked as `HOOKLINE_VALIDATE_PAYLOADS` says).
    #[schema(value_type = Object)]
    data: Box<RawValue>,
    /// The same event in older webhook versions' shapes: what their subscriptions receive
    /// instead of hookline's conversion of `data`.
    #[serde(default)]
    data_by_version: Option<DataByVersion>,
    /// Idempotency key; generated (UUID) when absent.
    #[serde(default)]
    #[schema(value_type = Option<EventIdText>)]
    event_id: Option<String>,
    /// RFC 3339; now when absent.
    #[serde(default)]
    #[schema(value_type = Option<DateTimeText>)]
    created_at: Option<String>,
    /// 32 hex characters; generated when absent.
    #[serde(default)]
    #[schema(value_type = Option<TraceIdText>)]
    trace_id: Option<String>,
}

/// `data` for older webhook versions, by version (only 2025-01-01 exists; `data` is the
/// current 2026-02-03 shape).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataByVersion {
    /// A JSON object, delivered verbatim to `?version=2025-01-01` subscriptions.
    #[serde(rename = "2025-01-01", default)]
    #[schema(value_type = Option<Object>)]
    v2025_01_01: Option<Box<RawValue>>,
}

#[derive(Deserialize, ToSchema)]
pub struct PublishBatchRequest {
    /// 1 to 1000 events, validated all or nothing.
    #[schema(min_items = 1, max_items = 1000)]
    events: Vec<PublishRequest>,
}

#[derive(Serialize, ToSchema)]
pub struct PublishResult {
    event_id: String,
    deliveries: u32,
    /// `true` when the `event_id` was published before: nothing new was stored, and
    /// `deliveries` is the first publish's. Absent for a new event.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    repeated: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PublishBatchResult {
    results: Vec<PublishResult>,
}

#[utoipa::path(post, path = "/admin/v1/partners", tag = "Operator",
    request_body = CreatePartnerRequest,
    responses((status = 201, body = PartnerView, links(
        ("CreateApiKey" = (operation_id = "create_api_key",
            parameters(("partner_id" = "$response.body#/id"))))))),
    security(("admin" = [])))]
pub async fn create_partner(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(req): ApiJson<CreatePartnerRequest>,
) -> ApiResult<(StatusCode, Json<PartnerView>)> {
    let partner = create_partner_named(&state, &req.name).await?;
    Ok((StatusCode::CREATED, Json(PartnerView::from(&partner))))
}

/// Validates the name and stores a new partner (the API's and the portal's create).
pub async fn create_partner_named(state: &AppState, name: &str) -> ApiResult<Partner> {
    let partner = Partner::issue(name, Timestamp::now())
        .map_err(|e| ApiError::InvalidParameter(e.to_string()))?;
    state.store.create_partner(&partner).await?;
    Ok(partner)
}

#[utoipa::path(get, path = "/admin/v1/partners", tag = "Operator",
    responses((status = 200, body = PartnerList)),
    security(("admin" = [])))]
pub async fn list_partners(
    State(state): State<AppState>,
    _: AdminAuth,
) -> ApiResult<Json<PartnerList>> {
    let partners = state.store.list_partners().await?;
    Ok(Json(PartnerList {
        partners: partners.iter().map(PartnerView::from).collect(),
    }))
}

pub fn partner_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "Partner '{}' not found",
        hookline_core::text::quote(id)
    ))
}

#[utoipa::path(post, path = "/admin/v1/partners/{partner_id}/api-keys", tag = "Operator",
    params(("partner_id" = String, Path)),
    request_body(content = Option<CreateApiKeyRequest>, description = "Optional body"),
    responses((status = 201, body = CreatedApiKey, links(
        ("RevokeApiKey" = (operation_id = "revoke_api_key",
            parameters(("partner_id" = "$request.path.partner_id"),
                       ("key_id" = "$response.body#/id"))))))),
    security(("admin" = [])))]
pub async fn create_api_key(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiPath(partner_id): ApiPath<PartnerId>,
    OptionalApiJson(req): OptionalApiJson<CreateApiKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let (key, record) = issue_api_key(&state, &partner_id, req.name.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            id: record.id.into_string(),
            name: record.name,
            api_key: key.expose().to_owned(),
            created_at: record.created_at.rfc3339(),
        }),
    ))
}

#[utoipa::path(delete, path = "/admin/v1/partners/{partner_id}/api-keys/{key_id}", tag = "Operator",
    params(("partner_id" = String, Path), ("key_id" = String, Path)),
    responses((status = 204, description = "Revoked")),
    security(("admin" = [])))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiPath((partner_id, key_id)): ApiPath<(PartnerId, ApiKeyId)>,
) -> ApiResult<StatusCode> {
    revoke_key(&state, &partner_id, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues and stores a key for an existing partner (the API's and the portal's create): the key
/// to show once, and its record.
pub async fn issue_api_key(
    state: &AppState,
    partner_id: &PartnerId,
    name: Option<&str>,
) -> ApiResult<(ApiKey, ApiKeyRecord)> {
    let name = hookline_core::partner::api_key_label(name)
        .map_err(|e| ApiError::InvalidParameter(e.to_string()))?;
    if !state.store.partner_exists(partner_id).await? {
        return Err(partner_not_found(partner_id.as_str()));
    }
    let (key, record) = ApiKeyRecord::issue(partner_id, name, Timestamp::now());
    state.store.create_api_key(&record).await?;
    Ok((key, record))
}

/// Revokes a key of the partner: it stops working at once.
pub async fn revoke_key(
    state: &AppState,
    partner_id: &PartnerId,
    key_id: &ApiKeyId,
) -> ApiResult<()> {
    if state
        .store
        .revoke_api_key(partner_id, key_id, Timestamp::now())
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "API key '{}' of partner '{}' not found",
            hookline_core::text::quote(key_id.as_str()),
            hookline_core::text::quote(partner_id.as_str())
        )))
    }
}

/// Validates one event; `at` prefixes messages inside a batch (`events[3].`). An event without
/// a `trace_id` takes the publish request's, so the request, the event and its deliveries share
/// one id.
fn validate_event(
    req: PublishRequest,
    at: &str,
    request: &RequestIdentity,
    state: &AppState,
) -> ApiResult<NewEvent> {
    let invalid = |msg: String| ApiError::InvalidParameter(format!("{at}{msg}"));
    let event_type = EventType::parse(&req.event_type).map_err(|e| {
        invalid(format!(
            "event_type: {e}; GET /v3/webhook-events lists the valid ones"
        ))
    })?;
    let phone_number = req
        .phone_number
        .as_deref()
        .map(PhoneNumber::parse)
        .transpose()
        .map_err(|e| ApiError::InvalidPhone(format!("{at}phone_number: {e}")))?;
    let data = object(req.data.get(), "data", at, state)?;
    let data_v2025 = req
        .data_by_version
        .and_then(|d| d.v2025_01_01)
        .map(|d| {
            let name = "data_by_version.2025-01-01";
            let raw = object(d.get(), name, at, state)?;
            // No schema check reads it (see `check_payloads` for `data`).
            hookline_core::payload::json::readable(raw).map_err(|e| unreadable(at, name, &e))?;
            Ok::<_, ApiError>(raw.to_owned())
        })
        .transpose()?;
    let event_id = match req.event_id {
        None => EventId::generate(),
        Some(id) => EventId::parse(&id).map_err(|e| invalid(e.0))?,
    };
    let created_at = match req.created_at {
        None => EventTime::at(Timestamp::now()),
        Some(c) => EventTime::parse_created_at(&c).map_err(invalid)?,
    };
    let trace_id = match req.trace_id {
        None => request.trace_id.clone(),
        Some(t) => TraceId::parse(&t).map_err(|e| invalid(e.0))?,
    };
    let partner_id =
        PartnerId::parse(&req.partner_id).map_err(|e| ApiError::InvalidParameter(e.0))?;
    Ok(NewEvent {
        partner_id,
        event_id,
        event_type,
        phone_number,
        created_at,
        trace_id,
        data: data.to_owned(),
        data_v2025,
    })
}

/// `raw` if it is a JSON object within the event size limit; `name` is its field.
fn object<'a>(raw: &'a str, name: &str, at: &str, state: &AppState) -> ApiResult<&'a str> {
    if !raw.trim_start().starts_with('{') {
        return Err(ApiError::InvalidParameter(format!(
            "{at}{name} must be a JSON object"
        )));
    }
    if raw.len() > state.settings.max_event_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "{at}{name} is {} bytes; the limit is {} bytes",
            raw.len(),
            state.settings.max_event_bytes
        )));
    }
    Ok(raw)
}

/// Delivered byte for byte, so refused if a receiver's JSON parser would refuse it (syntax alone,
/// which the request parse checked, lets `1e400` through).
fn unreadable(at: &str, name: &str, why: &str) -> ApiError {
    ApiError::InvalidParameter(hookline_core::payload::json::refusal(
        &format!("{at}{name}"),
        why,
    ))
}

/// Where event `i` is, for a message about it: `events[i]` then `sep` in a batch, nothing for a
/// single publish.
fn place(batch: bool, i: usize, sep: &str) -> String {
    match batch {
        true => format!("events[{i}]{sep}"),
        false => String::new(),
    }
}

/// Each event's `data` against its type's schema, once everything else about the request was
/// accepted: a `warn` line saying an event was published anyway must not be about one that the
/// request's other errors refused.
fn check_payloads(state: &AppState, events: &[NewEvent], batch: bool) -> ApiResult<()> {
    for (i, e) in events.iter().enumerate() {
        let at = || place(batch, i, ".");
        match state.payload_check.check(e.event_type, &e.data) {
            Ok(()) => {}
            Err(Refused::Unreadable(why)) => return Err(unreadable(&at(), "data", &why)),
            Err(Refused::Schema(v)) => {
                return Err(ApiError::InvalidParameter(format!(
                    "{}{}",
                    at(),
                    v.describe(e.event_type)
                )))
            }
        }
    }
    Ok(())
}

/// Every event's partner exists; an unknown one is named, and in a batch so is its place
/// (`events[2]: `), like the batch's other errors.
async fn check_partners(state: &AppState, events: &[NewEvent], batch: bool) -> ApiResult<()> {
    let mut checked: Vec<&PartnerId> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let id = &e.partner_id;
        if checked.contains(&id)
            || state
                .known_partners
                .read()
                .expect("not poisoned")
                .contains(id.as_str())
        {
            continue;
        }
        if !state.store.partner_exists(id).await? {
            let at = place(batch, i, ": ");
            return Err(ApiError::InvalidParameter(format!(
                "{at}Unknown partner_id '{}'",
                hookline_core::text::quote(id.as_str())
            )));
        }
        state
            .known_partners
            .write()
            .expect("not poisoned")
            .insert(id.to_string());
        checked.push(id);
    }
    Ok(())
}

fn result(p: Published) -> PublishResult {
    PublishResult {
        event_id: p.event_id.into_string(),
        deliveries: p.deliveries,
        repeated: p.duplicate,
    }
}

#[utoipa::path(post, path = "/admin/v1/events", tag = "Operator",
    request_body = PublishRequest,
    responses((status = 202, body = PublishResult, description = "Accepted and durable"),
              (status = 200, body = PublishResult, description = "Repeated event_id: the first result, `repeated: true`")),
    security(("admin" = [])))]
pub async fn publish(
    State(state): State<AppState>,
    _: AdminAuth,
    request: RequestIdentity,
    ApiJson(req): ApiJson<PublishRequest>,
) -> ApiResult<(StatusCode, Json<PublishResult>)> {
    let event = validate_event(req, "", &request, &state)?;
    check_partners(&state, std::slice::from_ref(&event), false).await?;
    check_payloads(&state, std::slice::from_ref(&event), false)?;
    let published = state.publisher.publish(vec![event]).await?;
    let first = published.into_iter().next().expect("one result per event");
    let status = if first.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(result(first))))
}

#[utoipa::path(post, path = "/admin/v1/events/batch", tag = "Operator",
    request_body = PublishBatchRequest,
    responses((status = 202, body = PublishBatchResult, description = "Accepted and durable")),
    security(("admin" = [])))]
pub async fn publish_batch(
    State(state): State<AppState>,
    _: AdminAuth,
    request: RequestIdentity,
    ApiJson(req): ApiJson<PublishBatchRequest>,
) -> ApiResult<(StatusCode, Json<PublishBatchResult>)> {
    if req.events.is_empty() || req.events.len() > MAX_BATCH {
        return Err(ApiError::InvalidParameter(format!(
            "events must hold 1 to {MAX_BATCH} events (got {})",
            req.events.len()
        )));
    }
    let events = req
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| validate_event(e, &place(true, i, "."), &request, &state))
        .collect::<ApiResult<Vec<_>>>()?;
    check_partners(&state, &events, true).await?;
    check_payloads(&state, &events, true)?;
    let published = state.publisher.publish(events).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(PublishBatchResult {
            results: published.into_iter().map(result).collect(),
        }),
    ))
}

#[cfg(test)]
mod properties;
