//! Linq's partner API for webhook subscriptions (`/v3/webhook-subscriptions`, `/v3/webhook-events`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use hookline_core::{
    event_type, phone, text, PartnerId, RoutingHeader, SubscriptionId, TargetUrl, Timestamp,
    DEFAULT_ROUTING_ID_HEADER,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::request_id::RequestIdentity;
use super::schema::{E164Number, EventTypeName, HeaderNameText, TargetUrlText};
use crate::account_events;
use crate::api::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, PartnerAuth};
use crate::store::{NewSubscription, Subscription, UpdateResult};

pub const EVENTS_DOC_URL: &str = "https://docs.linqapp.com/channel/imessage/guides/webhooks/events";

#[derive(Deserialize, ToSchema)]
pub struct CreateSubscriptionRequest {
    /// HTTPS URL that receives the events; `?version=YYYY-MM-DD` picks the payload format.
    #[schema(value_type = TargetUrlText)]
    pub target_url: String,
    /// Event types to receive (at least one; repeats are ignored).
    #[schema(value_type = Vec<EventTypeName>, min_items = 1)]
    pub subscribed_events: Vec<String>,
    /// E.164 numbers of your lines; omitted, null or empty means every line.
    #[serde(default)]
    #[schema(value_type = Option<Vec<E164Number>>, max_items = 1000)]
    pub phone_numbers: Option<Vec<String>>,
    /// The header that carries the chat id (default `Linq-Chat-Id`).
    #[serde(default)]
    #[schema(value_type = Option<HeaderNameText>)]
    pub routing_id_header: Option<String>,
    /// The header that carries the routing token; must differ from `routing_id_header`.
    #[serde(default)]
    #[schema(value_type = Option<HeaderNameText>)]
    pub routing_key_header: Option<String>,
}

/// Partial update: only the fields present change (null leaves `target_url`,
/// `subscribed_events` and `is_active` as they are). `phone_numbers: null` or `[]` clears the
/// filter; a routing header null or blank is unset.
#[derive(Deserialize, ToSchema)]
pub struct UpdateSubscriptionRequest {
    #[serde(default)]
    #[schema(value_type = Option<TargetUrlText>)]
    pub target_url: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<EventTypeName>>, min_items = 1)]
    pub subscribed_events: Option<Vec<String>>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<E164Number>>, max_items = 1000)]
    pub phone_numbers: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<HeaderNameText>)]
    pub routing_id_header: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<HeaderNameText>)]
    pub routing_key_header: Option<Option<String>>,
}

/// Tells "absent" (outer `None`) from "null" (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Serialize, ToSchema)]
pub struct WebhookSubscription {
    id: String,
    target_url: String,
    subscribed_events: Vec<String>,
    is_active: bool,
    /// RFC 3339, UTC.
    created_at: String,
    updated_at: String,
    phone_numbers: Option<Vec<String>>,
    routing_id_header: Option<String>,
    routing_key_header: Option<String>,
}

/// The create response: the subscription plus its signing secret, shown only here.
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhookSubscription {
    id: String,
    target_url: String,
    subscribed_events: Vec<String>,
    is_active: bool,
    created_at: String,
    updated_at: String,
    phone_numbers: Option<Vec<String>>,
    routing_id_header: Option<String>,
    routing_key_header: Option<String>,
    /// `whsec_` + base64 of 32 random bytes. Store it: it cannot be retrieved again.
    signing_secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    subscriptions: Vec<WebhookSubscription>,
}

#[derive(Serialize, ToSchema)]
pub struct EventTypeList {
    events: Vec<&'static str>,
    doc_url: &'static str,
}

impl From<&Subscription> for WebhookSubscription {
    fn from(s: &Subscription) -> Self {
        WebhookSubscription {
            id: s.id.to_string(),
            target_url: s.target_url.as_str().to_owned(),
            subscribed_events: s
                .subscribed_events
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect(),
            is_active: s.is_active,
            created_at: s.created_at.rfc3339(),
            updated_at: s.updated_at.rfc3339(),
            phone_numbers: (!s.phone_numbers.is_empty()).then(|| {
                s.phone_numbers
                    .iter()
                    .map(|p| p.as_str().to_owned())
                    .collect()
            }),
            routing_id_header: s.routing_id_header.as_ref().map(|h| h.to_string()),
            routing_key_header: s.routing_key_header.as_ref().map(|h| h.to_string()),
        }
    }
}

fn parse_target(raw: &str, state: &AppState) -> ApiResult<TargetUrl> {
    let target = TargetUrl::parse(raw, state.settings.allow_http_targets)
        .map_err(|e| ApiError::InvalidParameter(e.to_string()))?;
    // Only `GET /v3/listen` makes these: one naming another session would be its stream (and
    // with a trailing dot, a delivery would look the `.invalid` name up).
    if crate::delivery::listen_hub::is_listen_host(&target) {
        return Err(ApiError::InvalidParameter(format!(
            "target_url host {} is reserved for hookline listen sessions",
            crate::delivery::listen_hub::LISTEN_HOST
        )));
    }
    Ok(target)
}

pub(crate) fn parse_events(raw: &[String]) -> ApiResult<Vec<hookline_core::EventType>> {
    if raw.is_empty() {
        return Err(ApiError::InvalidParameter(
            "subscribed_events must list at least one event type".into(),
        ));
    }
    event_type::parse_list(raw).map_err(|unknown| {
        ApiError::InvalidParameter(format!(
            "Unknown event type(s) in subscribed_events: {}; GET /v3/webhook-events lists the valid ones",
            text::name_some(&unknown)
        ))
    })
}

/// Bounds the work one subscription adds to every publish of its partner.
pub const MAX_PHONE_NUMBERS: usize = 1000;

pub(crate) fn parse_phones(raw: Option<&[String]>) -> ApiResult<Vec<hookline_core::PhoneNumber>> {
    if raw.is_some_and(|r| r.len() > MAX_PHONE_NUMBERS) {
        return Err(ApiError::InvalidParameter(format!(
            "phone_numbers may list at most {MAX_PHONE_NUMBERS} numbers"
        )));
    }
    phone::parse_list(raw.unwrap_or_default()).map_err(|e| ApiError::InvalidPhone(e.to_string()))
}

/// A header name the receiver will see: an HTTP token, and not one hookline sets itself.
fn parse_header_name(field: &str, raw: Option<String>) -> ApiResult<Option<RoutingHeader>> {
    RoutingHeader::parse(field, raw.as_deref())
        .map_err(|e| ApiError::InvalidParameter(e.to_string()))
}

/// Publishes the account events of a committed change (see [`account_events`]). They report the
/// change rather than make it, so a failure here is logged and the change still stands. They
/// carry the trace id of the request that made the change.
pub(crate) async fn announce(
    state: &AppState,
    request: &RequestIdentity,
    before: Option<&Subscription>,
    after: Option<&Subscription>,
) {
    let mut events = account_events::for_change(before, after);
    if events.is_empty() {
        return;
    }
    for event in &mut events {
        event.trace_id = request.trace_id.clone();
    }
    if let Err(e) = state.publisher.publish(events).await {
        tracing::error!(error = %e, "publishing webhook_subscription account events failed");
    }
}

/// Stores a new subscription with a fresh signing secret (sealed when a key is configured) and
/// announces it; returns it with the secret as issued, for the one answer that shows it.
pub(crate) async fn insert(
    state: &AppState,
    request: &RequestIdentity,
    sub: Subscription,
) -> ApiResult<(Subscription, String)> {
    let issued = state.secrets.issue(&sub.id);
    let new = NewSubscription {
        subscription: sub,
        signing_secret: issued.stored,
    };
    state
        .store
        .insert_subscription(&new, state.settings.max_subscriptions_per_partner)
        .await?;
    announce(state, request, None, Some(&new.subscription)).await;
    Ok((new.subscription, issued.secret.expose().to_owned()))
}

/// The chat id and the routing token travel in two headers; one name for both would lose one.
fn distinct_routing_headers(
    id_header: Option<&RoutingHeader>,
    key_header: Option<&RoutingHeader>,
) -> ApiResult<()> {
    let id_header = id_header.map_or(DEFAULT_ROUTING_ID_HEADER, RoutingHeader::as_str);
    let key_header = key_header.map(RoutingHeader::as_str);
    match key_header {
        Some(key) if key.eq_ignore_ascii_case(id_header) => {
            Err(ApiError::InvalidParameter(format!(
                "routing_key_header '{key}' must differ from routing_id_header ('{id_header}')"
            )))
        }
        _ => Ok(()),
    }
}

/// Subscription ids are UUIDs; anything else cannot exist, so it is a 404 like an unknown id.
pub(super) fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "Webhook subscription '{}' not found",
        hookline_core::text::quote(id)
    ))
}

pub async fn load(state: &AppState, partner: &PartnerId, id: &str) -> ApiResult<Subscription> {
    let Ok(sub_id) = SubscriptionId::parse(id) else {
        return Err(not_found(id));
    };
    state
        .store
        .get_subscription(partner, &sub_id)
        .await?
        .ok_or_else(|| not_found(id))
}

#[utoipa::path(post, path = "/v3/webhook-subscriptions", tag = "Webhook Subscriptions",
    request_body = CreateSubscriptionRequest,
    responses((status = 201, body = CreatedWebhookSubscription, links(
                  ("RetrieveSubscription" = (operation_id = "retrieve",
                      parameters(("subscriptionId" = "$response.body#/id")))),
                  ("UpdateSubscription" = (operation_id = "update",
                      parameters(("subscriptionId" = "$response.body#/id")))),
                  ("DeleteSubscription" = (operation_id = "delete",
                      parameters(("subscriptionId" = "$response.body#/id")))))),
              (status = 409, description = "`target_url` already used by one of the partner's \
                  subscriptions, or the partner has the most subscriptions it may have",
                  body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    request: RequestIdentity,
    ApiJson(req): ApiJson<CreateSubscriptionRequest>,
) -> ApiResult<impl IntoResponse> {
    let (sub, signing_secret) = create_subscription(&state, partner, &request, req).await?;
    let view = WebhookSubscription::from(&sub);
    let body = CreatedWebhookSubscription {
        id: view.id,
        target_url: view.target_url,
        subscribed_events: view.subscribed_events,
        is_active: view.is_active,
        created_at: view.created_at,
        updated_at: view.updated_at,
        phone_numbers: view.phone_numbers,
        routing_id_header: view.routing_id_header,
        routing_key_header: view.routing_key_header,
        signing_secret,
    };
    Ok((StatusCode::CREATED, Json(body)))
}

/// Validates, stores and announces a new subscription (the API's and the portal's create):
/// the subscription and its signing secret as issued, to be shown once.
pub async fn create_subscription(
    state: &AppState,
    partner: PartnerId,
    request: &RequestIdentity,
    req: CreateSubscriptionRequest,
) -> ApiResult<(Subscription, String)> {
    let target_url = parse_target(&req.target_url, state)?;
    let subscribed_events = parse_events(&req.subscribed_events)?;
    let phone_numbers = parse_phones(req.phone_numbers.as_deref())?;
    let routing_id_header = parse_header_name("routing_id_header", req.routing_id_header)?;
    let routing_key_header = parse_header_name("routing_key_header", req.routing_key_header)?;
    distinct_routing_headers(routing_id_header.as_ref(), routing_key_header.as_ref())?;
    let now = Timestamp::now();
    let sub = Subscription {
        id: SubscriptionId::generate(),
        partner_id: partner,
        target_url,
        subscribed_events,
        phone_numbers,
        is_active: true,
        routing_id_header,
        routing_key_header,
        created_at: now,
        updated_at: now,
    };
    let (sub, secret) = insert(state, request, sub).await?;
    tracing::info!(subscription_id = %sub.id, "subscription created");
    Ok((sub, secret))
}

#[utoipa::path(get, path = "/v3/webhook-subscriptions", tag = "Webhook Subscriptions",
    responses((status = 200, body = SubscriptionList)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
) -> ApiResult<axum::response::Response> {
    // Unpaged (the seed's contract), so one list can be 1,000 subscriptions of 1,000 numbers:
    // ~40 MiB while built. Built a few at a time and serialised before the turn ends; only the
    // answer's bytes (~15 MiB) outlive the turn while a client reads them.
    let _turn = state.list_turns.acquire().await.expect("never closed");
    let subs = state.store.list_subscriptions(&partner).await?;
    let body = serde_json::to_vec(&SubscriptionList {
        subscriptions: subs.iter().map(WebhookSubscription::from).collect(),
    })
    .map_err(|e| ApiError::Internal(e.into()))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

#[utoipa::path(get, path = "/v3/webhook-subscriptions/{subscriptionId}", tag = "Webhook Subscriptions",
    params(("subscriptionId" = String, Path, description = "Subscription id (UUID)")),
    responses((status = 200, body = WebhookSubscription)),
    security(("bearer" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<WebhookSubscription>> {
    let sub = load(&state, &partner, &id).await?;
    Ok(Json(WebhookSubscription::from(&sub)))
}

#[utoipa::path(put, path = "/v3/webhook-subscriptions/{subscriptionId}", tag = "Webhook Subscriptions",
    params(("subscriptionId" = String, Path, description = "Subscription id (UUID)")),
    request_body = UpdateSubscriptionRequest,
    responses((status = 200, body = WebhookSubscription),
              (status = 409, description = "The new `target_url` is already used by another of \
                  the partner's subscriptions", body = ErrorEnvelope),
              (status = 503, description = "The store cannot take the request now, or the \
                  update lost the race against concurrent updates 16 times; retry after \
                  `Retry-After` seconds", body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    request: RequestIdentity,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateSubscriptionRequest>,
) -> ApiResult<Json<WebhookSubscription>> {
    let sub = update_subscription(&state, &partner, &request, &id, req).await?;
    Ok(Json(WebhookSubscription::from(&sub)))
}

/// Applies a partial update (the API's PUT and the portal's edit) and announces what changed.
pub async fn update_subscription(
    state: &AppState,
    partner: &PartnerId,
    request: &RequestIdentity,
    id: &str,
    req: UpdateSubscriptionRequest,
) -> ApiResult<Subscription> {
    // Keyed as the id is stored (an id in capitals names the same subscription).
    let key = SubscriptionId::parse(id).map_or_else(|_| id.to_owned(), |s| s.as_str().to_owned());
    let _turn = state.update_locks.lock(&key).await;
    let mut current = load(state, partner, id).await?;
    let patch = SubscriptionPatch::parse(req, state)?;
    // Compare-and-set on `updated_at`: a concurrent update in between makes us reapply this
    // patch to the newer row instead of overwriting the other update's fields.
    for _ in 0..UPDATE_ATTEMPTS {
        let mut sub = current.clone();
        patch.apply(&mut sub);
        distinct_routing_headers(
            sub.routing_id_header.as_ref(),
            sub.routing_key_header.as_ref(),
        )?;
        // Strictly after the previous value, so clients can rely on `updated_at` moving.
        sub.updated_at =
            Timestamp::now().max(Timestamp::from_micros(current.updated_at.as_micros() + 1));
        let forget_tokens = sub.routing_key_header != current.routing_key_header;
        match state
            .store
            .update_subscription(&sub, current.updated_at, forget_tokens)
            .await?
        {
            UpdateResult::Updated => {
                announce(state, request, Some(&current), Some(&sub)).await;
                return Ok(sub);
            }
            UpdateResult::Gone => return Err(not_found(id)),
            UpdateResult::Stale => current = load(state, partner, id).await?,
        }
    }
    Err(ApiError::Unavailable(format!(
        "webhook subscription '{id}' is being changed by other requests; retry"
    )))
}

/// Attempts of one PUT against concurrent writers before it gives up with a 503.
const UPDATE_ATTEMPTS: usize = 16;

/// A validated PUT body: `None` leaves a field as it is.
struct SubscriptionPatch {
    target_url: Option<TargetUrl>,
    subscribed_events: Option<Vec<hookline_core::EventType>>,
    is_active: Option<bool>,
    phone_numbers: Option<Vec<hookline_core::PhoneNumber>>,
    routing_id_header: Option<Option<RoutingHeader>>,
    routing_key_header: Option<Option<RoutingHeader>>,
}

impl SubscriptionPatch {
    fn parse(req: UpdateSubscriptionRequest, state: &AppState) -> ApiResult<Self> {
        Ok(SubscriptionPatch {
            target_url: req
                .target_url
                .map(|url| parse_target(&url, state))
                .transpose()?,
            subscribed_events: req
                .subscribed_events
                .map(|events| parse_events(&events))
                .transpose()?,
            is_active: req.is_active,
            phone_numbers: req
                .phone_numbers
                .map(|phones| parse_phones(phones.as_deref()))
                .transpose()?,
            routing_id_header: req
                .routing_id_header
                .map(|h| parse_header_name("routing_id_header", h))
                .transpose()?,
            routing_key_header: req
                .routing_key_header
                .map(|h| parse_header_name("routing_key_header", h))
                .transpose()?,
        })
    }

    fn apply(&self, sub: &mut Subscription) {
        if let Some(url) = &self.target_url {
            sub.target_url = url.clone();
        }
        if let Some(events) = &self.subscribed_events {
            sub.subscribed_events = events.clone();
        }
        if let Some(active) = self.is_active {
            sub.is_active = active;
        }
        if let Some(phones) = &self.phone_numbers {
            sub.phone_numbers = phones.clone();
        }
        if let Some(h) = &self.routing_id_header {
            sub.routing_id_header = h.clone();
        }
        if let Some(h) = &self.routing_key_header {
            sub.routing_key_header = h.clone();
        }
    }
}

#[utoipa::path(delete, path = "/v3/webhook-subscriptions/{subscriptionId}", tag = "Webhook Subscriptions",
    params(("subscriptionId" = String, Path, description = "Subscription id (UUID)")),
    responses((status = 204, description = "Deleted; empty body")),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    request: RequestIdentity,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    delete_subscription(&state, &partner, &request, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a subscription (pending deliveries to it are cancelled) and announces it.
pub async fn delete_subscription(
    state: &AppState,
    partner: &PartnerId,
    request: &RequestIdentity,
    id: &str,
) -> ApiResult<()> {
    let sub = load(state, partner, id).await?;
    if !state
        .store
        .delete_subscription(partner, &sub.id, Timestamp::now())
        .await?
    {
        return Err(not_found(id));
    }
    announce(state, request, Some(&sub), None).await;
    Ok(())
}

#[utoipa::path(get, path = "/v3/webhook-events", tag = "Webhook Events",
    responses((status = 200, body = EventTypeList)),
    security(("bearer" = [])))]
pub async fn event_types(_auth: PartnerAuth) -> Json<EventTypeList> {
    Json(EventTypeList {
        events: event_type::ALL.to_vec(),
        doc_url: EVENTS_DOC_URL,
    })
}
