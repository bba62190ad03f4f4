//! `POST /v3/webhook-subscriptions/{id}/rotate-secret`: a new signing secret, shown once, with
//! the old one still signing beside it for a grace period (see `delivery/signer.rs` for what
//! each signature header carries meanwhile).

use axum::extract::State;
use axum::Json;
use hookline_core::{PartnerId, Subscription, Timestamp};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

use super::partner::{load, not_found};
use crate::api::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiPath, OptionalApiJson, PartnerAuth};

/// How long the previous secret keeps signing when the request does not say: 24 hours.
pub const DEFAULT_GRACE_SECONDS: i64 = 24 * 3600;
/// The longest grace period: 7 days.
pub const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3600;

/// Every field is optional; an empty body is the same as `{}`.
#[derive(Deserialize, ToSchema, Default)]
pub struct RotateSecretRequest {
    /// Seconds the previous secret keeps signing deliveries beside the new one (default 86400;
    /// 0 ends it at once).
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 0, maximum = 604800)]
    grace_period_seconds: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new secret, `whsec_` + base64 of 32 random bytes. Store it: it cannot be retrieved again.
    signing_secret: String,
    /// RFC 3339, UTC: until then deliveries carry a signature with the previous secret too
    /// (the rotation's time when the grace period is 0).
    previous_secret_expires_at: String,
}

#[utoipa::path(post, path = "/v3/webhook-subscriptions/{subscriptionId}/rotate-secret",
    tag = "Webhook Subscriptions",
    params(("subscriptionId" = String, Path, description = "Subscription id (UUID)")),
    request_body(content = Option<RotateSecretRequest>, description = "Optional; an empty body is `{}`"),
    responses((status = 200, body = RotatedSecret),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope),
              (status = 503, description = "The store cannot take writes now; retry", body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    PartnerAuth(partner): PartnerAuth,
    ApiPath(id): ApiPath<String>,
    OptionalApiJson(req): OptionalApiJson<RotateSecretRequest>,
) -> ApiResult<Json<RotatedSecret>> {
    let sub = load(&state, &partner, &id).await?;
    Ok(Json(
        rotate(&state, &partner, &sub, req.grace_period_seconds).await?,
    ))
}

/// Issues `sub` a new signing secret, the previous one signing beside it for `grace_seconds`
/// (default 24 hours): the API's and the portal's rotation.
pub async fn rotate(
    state: &AppState,
    partner: &PartnerId,
    sub: &Subscription,
    grace_seconds: Option<i64>,
) -> ApiResult<RotatedSecret> {
    let grace = match grace_seconds {
        None => DEFAULT_GRACE_SECONDS,
        Some(s) if (0..=MAX_GRACE_SECONDS).contains(&s) => s,
        Some(s) => {
            return Err(ApiError::InvalidParameter(format!(
                "grace_period_seconds must be between 0 and {MAX_GRACE_SECONDS} (7 days), got {s}"
            )))
        }
    };
    let now = Timestamp::now();
    let expires_at = now + Duration::from_secs(grace as u64);
    // Sealed to the subscription when a key is configured; shown here as issued, once.
    let issued = state.secrets.issue(&sub.id);
    if !state
        .store
        .rotate_signing_secret(
            partner,
            &sub.id,
            &issued.stored,
            (grace > 0).then_some(expires_at),
            now,
        )
        .await?
    {
        return Err(not_found(sub.id.as_str()));
    }
    tracing::info!(subscription_id = %sub.id, grace_period_seconds = grace, "signing secret rotated");
    Ok(RotatedSecret {
        signing_secret: issued.secret.expose().to_owned(),
        previous_secret_expires_at: expires_at.rfc3339(),
    })
}
