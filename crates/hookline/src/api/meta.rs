//! Unauthenticated endpoints: liveness, readiness, the OpenAPI document.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::api::AppState;
use crate::error::{ApiError, ApiResult};

const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The process is up and serving.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers: safe to route traffic here.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    // Answer within a load balancer's health-check timeout even when the store hangs.
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            // The cause goes to the log, not to an unauthenticated caller.
            tracing::warn!(error = %e, "readiness check: store not reachable");
            return Err(ApiError::Unavailable("store not reachable".into()));
        }
        Err(_) => {
            return Err(ApiError::Unavailable(format!(
                "store did not answer within {READY_TIMEOUT:?}"
            )))
        }
    }
    Ok(Json(json!({"status": "ready"})))
}

pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi_document())
}
