//! `hookline listen`'s server side: a server-sent-events stream, authenticated with the
//! partner's key, that owns an ephemeral subscription whose deliveries come down the stream
//! (signed, logged and retried like any other; see `delivery::listen_hub`), and the endpoint
//! the listener acknowledges each delivery on.
//!
//! The subscription is deleted when the stream's grace (`HOOKLINE_LISTEN_GRACE`) passes with no
//! stream attached; a reconnect with `?session=<id>` within it resumes the session, and the
//! deliveries the lost stream had not had acknowledged are retried down the new one. A client
//! that closes cleanly deletes the subscription itself (`DELETE /v3/webhook-subscriptions/{id}`).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use hookline_core::{Subscription, SubscriptionId, TargetUrl, Timestamp};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use utoipa::ToSchema;

use super::partner::{announce, insert, load, parse_events, parse_phones};
use super::request_id::RequestIdentity;
use super::AppState;
use crate::delivery::listen_hub::{listen_target, listen_url, Ack, Pushed};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, PartnerAuth};

/// The first event of a stream (`event: session`).
#[derive(Serialize, ToSchema)]
pub struct ListenSession {
    /// The ephemeral subscription; reconnect with `?session=<this>`.
    subscription_id: String,
    /// Only when the session starts (not on a resume): what verifies the deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_secret: Option<String>,
    subscribed_events: Vec<String>,
    phone_numbers: Vec<String>,
    /// How long the subscription waits for a reconnect after the stream drops.
    grace_seconds: u64,
}

/// One delivery (`event: delivery`, `id:` its token): the HTTP request it stands for.
#[derive(Serialize, ToSchema)]
pub struct ListenDelivery {
    /// What to acknowledge it with.
    delivery: String,
    /// Every header a POST to a target URL would carry (signatures included), lowercase names.
    headers: std::collections::BTreeMap<String, String>,
    /// The request body exactly as signed (a JSON document).
    body: String,
}

/// The listener's report on one delivery: what its receiver answered, or why it could not.
#[derive(Deserialize, ToSchema)]
pub struct ListenAck {
    delivery: String,
    /// The receiver's HTTP status (a 2xx delivers; others are failures, retried as usual).
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 100, maximum = 599)]
    status: Option<u16>,
    /// The start of the receiver's answer, for the delivery log.
    #[serde(default)]
    body: Option<String>,
    /// Set instead of `status` when the receiver could not be reached.
    #[serde(default)]
    error: Option<String>,
}

#[utoipa::path(get, path = "/v3/listen", tag = "Listen",
    description = "Server-sent events: `session` (ListenSession) first, then one `delivery` \
        (ListenDelivery) per delivery to the ephemeral subscription, and keep-alive comments.",
    params(
        ("events" = Option<String>, Query, description = "Comma-separated event types (default: all)"),
        ("phone_numbers" = Option<String>, Query, description = "Comma-separated E.164 numbers"),
        ("session" = Option<String>, Query, description = "Resume: the subscription id of a session in its grace"),
    ),
    responses((status = 200, content_type = "text/event-stream", body = String),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
              (status = 503, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn listen(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    request: RequestIdentity,
    RawQuery(query): RawQuery,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    if !state.settings.role.delivers() {
        return Err(ApiError::Unavailable(
            "listen streams need a node that also delivers (HOOKLINE_ROLE=all)".into(),
        ));
    }
    let q = Query::parse(query.as_deref().unwrap_or(""));
    let (sub, secret, attached) = match &q.session {
        Some(id) => {
            let sub = load(&state, &partner, id).await?;
            if listen_target(&sub.target_url).is_none() {
                return Err(ApiError::NotFound(format!(
                    "No listen session '{}'",
                    hookline_core::text::quote(id)
                )));
            }
            let attached = state.listen.attach(&sub.id);
            (sub, None, attached)
        }
        None => {
            // The stream attaches before its subscription exists: the announcement of that
            // subscription's creation (which it may subscribe to) and anything published
            // meanwhile find it there, instead of failing and waiting for their first retry.
            let id = SubscriptionId::generate();
            let attached = state.listen.attach(&id);
            let mut unstarted = Unstarted {
                state: state.clone(),
                request: request.clone(),
                partner: partner.clone(),
                id: id.clone(),
                generation: attached.0,
                started: false,
            };
            let (sub, secret) = start_session(&state, &request, id, partner, &q).await?;
            unstarted.started = true;
            (sub, Some(secret), attached)
        }
    };
    let first = ListenSession {
        subscription_id: sub.id.to_string(),
        signing_secret: secret,
        subscribed_events: sub
            .subscribed_events
            .iter()
            .map(|e| e.to_string())
            .collect(),
        phone_numbers: sub.phone_numbers.iter().map(|p| p.to_string()).collect(),
        grace_seconds: state.settings.listen_stream.grace.as_secs(),
    };
    tracing::info!(subscription_id = %sub.id, resumed = q.session.is_some(), "listen stream opened");
    let keepalive = state.settings.listen_stream.keepalive;
    Ok(Sse::new(stream_of(state, request, sub, attached, first))
        .keep_alive(KeepAlive::new().interval(keepalive)))
}

/// The query, read by hand: every parameter is an optional string, and a malformed query
/// must not reach axum's plain-text rejection.
struct Query {
    events: Option<String>,
    phone_numbers: Option<String>,
    session: Option<String>,
}

impl Query {
    fn parse(raw: &str) -> Query {
        let mut q = Query {
            events: None,
            phone_numbers: None,
            session: None,
        };
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            match k.as_ref() {
                "events" => q.events = Some(v.into_owned()),
                "phone_numbers" => q.phone_numbers = Some(v.into_owned()),
                "session" => q.session = Some(v.into_owned()),
                _ => {}
            }
        }
        q
    }
}

fn list(raw: &Option<String>) -> Option<Vec<String>> {
    raw.as_ref().map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// Creates the ephemeral subscription (announced like any other creation).
async fn start_session(
    state: &AppState,
    request: &RequestIdentity,
    id: SubscriptionId,
    partner: hookline_core::PartnerId,
    q: &Query,
) -> ApiResult<(Subscription, String)> {
    let events = match list(&q.events) {
        Some(e) if !e.is_empty() => e,
        _ => hookline_core::event_type::ALL
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let subscribed_events = parse_events(&events)?;
    let phone_numbers = parse_phones(list(&q.phone_numbers).as_deref())?;
    let target_url = TargetUrl::parse(&listen_url(&id), false)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("listen target: {e}")))?;
    let now = Timestamp::now();
    let sub = Subscription {
        id,
        partner_id: partner,
        target_url,
        subscribed_events,
        phone_numbers,
        is_active: true,
        routing_id_header: None,
        routing_key_header: None,
        created_at: now,
        updated_at: now,
    };
    insert(state, request, sub).await
}

/// Takes back a stream attached for a session that did not start (refused, or the request
/// dropped on its way). If its subscription was stored before that, it expires like a session
/// whose stream vanished: nothing else would delete it.
struct Unstarted {
    state: AppState,
    request: RequestIdentity,
    partner: hookline_core::PartnerId,
    id: SubscriptionId,
    generation: u64,
    started: bool,
}

impl Drop for Unstarted {
    fn drop(&mut self) {
        if self.started {
            return;
        }
        self.state.listen.detach(&self.id, self.generation);
        let (state, request) = (self.state.clone(), self.request.clone());
        let (partner, id) = (self.partner.clone(), self.id.clone());
        expire_after_grace(state, request, partner, id, self.generation);
    }
}

/// Ends the session when the stream is dropped (closed, vanished, or the server stopping):
/// detaches it, and deletes the subscription unless a new stream attaches within the grace.
struct Detach {
    state: AppState,
    request: RequestIdentity,
    sub: Subscription,
    generation: u64,
}

impl Drop for Detach {
    fn drop(&mut self) {
        let (state, request) = (self.state.clone(), self.request.clone());
        let (partner, id) = (self.sub.partner_id.clone(), self.sub.id.clone());
        state.listen.detach(&id, self.generation);
        tracing::info!(subscription_id = %id, "listen stream closed");
        expire_after_grace(state, request, partner, id, self.generation);
    }
}

/// Deletes the session's subscription (if it exists: the client may have deleted it on its way
/// out, or never created it) once the grace after the stream of `generation` has passed, unless
/// a newer stream has attached since (a resume, a takeover: its own end starts the grace that
/// counts).
fn expire_after_grace(
    state: AppState,
    request: RequestIdentity,
    partner: hookline_core::PartnerId,
    id: SubscriptionId,
    generation: u64,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        tokio::time::sleep(state.settings.listen_stream.grace).await;
        if state.listen.superseded(&id, generation) {
            return;
        }
        state.listen.end(&id, generation);
        let deleted = match state.store.get_subscription(&partner, &id).await {
            Ok(Some(sub)) => state
                .store
                .delete_subscription(&partner, &id, Timestamp::now())
                .await
                .map(|gone| gone.then_some(sub)),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        match deleted {
            Ok(Some(sub)) => {
                tracing::info!(subscription_id = %id, "listen session expired; subscription deleted");
                announce(&state, &request, Some(&sub), None).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(subscription_id = %id, error = %e, "deleting an expired listen subscription failed")
            }
        }
    });
}

/// `session` first, then every delivery pushed down the `attached` stream, until the client
/// goes or the server stops.
fn stream_of(
    state: AppState,
    request: RequestIdentity,
    sub: Subscription,
    (generation, rx): (u64, tokio::sync::mpsc::Receiver<Pushed>),
    first: ListenSession,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let stopping = state.readiness.stopping();
    let guard = Detach {
        state,
        request,
        sub,
        generation,
    };
    let session = Event::default()
        .event("session")
        .json_data(&first)
        .expect("serialises");
    let deliveries = stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let pushed = rx.recv().await?;
        Some((Ok(delivery_event(pushed)), (rx, guard)))
    });
    stream::once(async { Ok(session) })
        .chain(deliveries)
        .take_until(stopping.cancelled_owned())
}

fn delivery_event(p: Pushed) -> Event {
    let body = ListenDelivery {
        delivery: p.token.clone(),
        headers: p.headers.into_iter().collect(),
        // Envelopes are JSON, hence UTF-8; lossy only guards against a bug elsewhere.
        body: String::from_utf8_lossy(&p.body).into_owned(),
    };
    Event::default()
        .event("delivery")
        .id(p.token)
        .json_data(&body)
        .expect("serialises")
}

#[utoipa::path(post, path = "/v3/listen/{subscriptionId}/acks", tag = "Listen",
    params(("subscriptionId" = String, Path, description = "The listen session's subscription id")),
    request_body = ListenAck,
    responses((status = 204, description = "Recorded as the delivery's answer"),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn ack(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ListenAck>,
) -> ApiResult<StatusCode> {
    let sub = load(&state, &partner, &id).await?;
    let ack = match (req.status, req.error) {
        (Some(status), _) if (100..=599).contains(&status) => Ack::Answered {
            status,
            body: req.body.map(|b| cut(b, 4096)),
        },
        (Some(status), _) => {
            return Err(ApiError::InvalidParameter(format!(
                "status {status} is not an HTTP status (100 to 599)"
            )))
        }
        (None, Some(error)) => Ack::Failed {
            message: cut(error, 512),
        },
        (None, None) => return Err(ApiError::MissingField("status".into())),
    };
    if !state.listen.ack(&sub.id, &req.delivery, ack) {
        return Err(ApiError::NotFound(format!(
            "No delivery '{}' awaits an acknowledgement",
            hookline_core::text::quote(&req.delivery)
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
