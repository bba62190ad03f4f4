//! Unauthenticated endpoints: liveness, readiness, the OpenAPI document.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

/// The process is up and serving.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers: safe to route traffic here.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(format!("store not reachable: {e}")))?;
    Ok(Json(json!({"status": "ready"})))
}

pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi_document())
}
