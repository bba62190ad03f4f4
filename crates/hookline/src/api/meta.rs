//! Unauthenticated endpoints: liveness, readiness, metrics, the OpenAPI document.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::api::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};

#[utoipa::path(get, path = "/healthz", tag = "Meta",
    responses((status = 200, body = Object, description = "The process is up: \
        `{\"status\":\"ok\",\"log_writes_dropped\":N}`")))]
/// The process is up and serving. `log_writes_dropped`: log lines stderr refused (see
/// [`crate::logging`]); non-zero means the log sink is failing.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok", "log_writes_dropped": crate::logging::dropped_writes()}))
}

#[utoipa::path(get, path = "/readyz", tag = "Meta",
    responses((status = 200, body = Object, description = "`{\"status\":\"ready\"}`"),
              (status = 503, body = ErrorEnvelope, description = "Not ready: stopping, the \
                  publisher is down, or the store refuses writes; see `Retry-After`")))]
/// This node can accept work: not stopping, its publisher running, and the store taking
/// writes (see [`super::readiness`]). 503 with code 4004 and `Retry-After` otherwise.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state
        .readiness
        .check(&state.store, &state.publisher)
        .await
        .map_err(ApiError::Unavailable)?;
    Ok(Json(json!({"status": "ready"})))
}

#[utoipa::path(get, path = "/openapi.json", tag = "Meta",
    responses((status = 200, body = Object, description = "This document")))]
pub async fn openapi() -> Json<&'static Value> {
    Json(super::schema::openapi_json())
}

/// The Prometheus text format (0.0.4) of every metric (see README, Monitoring). Public like
/// `/healthz`; `HOOKLINE_METRICS_LISTEN` moves it to a listener of its own.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "Meta",
    responses((
        status = 200,
        description = "Every hookline metric in the Prometheus text format",
        content_type = "text/plain; version=0.0.4; charset=utf-8",
        body = String
    ))
)]
pub async fn metrics() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::telemetry::render(),
    )
}
