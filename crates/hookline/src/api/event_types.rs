//! `GET /admin/v1/event-types`: the event-type catalogue (`hookline_core::payload::catalogue`)
//! for publishers — each type's family, the JSON Schema its `data` is checked against on
//! publish, an example, and which webhook versions receive it in which shape. The partner
//! API's `GET /v3/webhook-events` stays Linq's plain list of names.

use axum::extract::State;
use axum::Json;
use hookline_core::payload::catalogue::{self, Entry};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::AppState;
use crate::config::ValidatePayloads;
use crate::error::ErrorEnvelope;
use crate::extract::AdminAuth;

#[derive(Serialize, ToSchema)]
pub struct EventTypeCatalogue {
    /// What publishing does with `data` that breaks its schema (`HOOKLINE_VALIDATE_PAYLOADS`).
    #[schema(value_type = String, example = "warn")]
    validation: ValidatePayloads,
    /// Every event type, in `GET /v3/webhook-events` order.
    event_types: Vec<EventTypeEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct EventTypeEntry {
    #[schema(example = "message.received")]
    event_type: &'static str,
    /// `message`, `reaction`, `poll`, `participant`, `chat`, `phone_number`, `call`, `account`, …
    #[schema(example = "message")]
    family: &'static str,
    /// One of the 25 event types of Linq's seed specification.
    seed: bool,
    /// The linq-python 0.65.0 model the schema was generated from; null where no Linq source
    /// defines `data` (`call.*`, whose schema accepts any object).
    #[schema(example = "MessageReceivedWebhookEvent")]
    model: Option<&'static str>,
    /// JSON Schema (draft 2020-12) of `data` in the 2026-02-03 format, self-contained.
    #[schema(value_type = Object)]
    schema: &'static Value,
    /// An example `data` that passes the schema.
    #[schema(value_type = Object)]
    example: &'static Value,
    /// The webhook versions whose subscriptions receive this type.
    #[schema(example = json!(["2026-02-03", "2025-01-01"]))]
    versions: Vec<&'static str>,
    /// 2025-01-01 subscriptions receive it converted to Linq's older shape (README "Webhook
    /// versions"); other types are the same in both versions.
    converted_for_2025_01_01: bool,
}

impl From<&'static Entry> for EventTypeEntry {
    fn from(e: &'static Entry) -> Self {
        EventTypeEntry {
            event_type: e.event_type.as_str(),
            family: &e.family,
            seed: e.seed,
            model: e.model.as_deref(),
            schema: &e.schema,
            example: &e.example,
            versions: e.versions.iter().map(String::as_str).collect(),
            converted_for_2025_01_01: e.converted_for_2025_01_01,
        }
    }
}

#[utoipa::path(get, path = "/admin/v1/event-types", tag = "Operator",
    responses((status = 200, body = EventTypeCatalogue), (status = 401, body = ErrorEnvelope),
              (status = 429, body = ErrorEnvelope)),
    security(("admin" = [])))]
pub async fn list(State(state): State<AppState>, _: AdminAuth) -> Json<EventTypeCatalogue> {
    Json(EventTypeCatalogue {
        validation: state.payload_check.mode(),
        event_types: catalogue::entries()
            .iter()
            .map(EventTypeEntry::from)
            .collect(),
    })
}
