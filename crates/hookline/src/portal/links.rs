//! Portal links: `POST /admin/v1/partners/{id}/portal-sessions` gives an operator (or a platform
//! embedding the portal in its own dashboard) a short-lived link that opens the portal as one
//! partner. The link's token works once; the session it opens ends when the link would have.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use hookline_core::{PartnerId, PortalPrincipal, PortalSession, PortalTokenKind, Timestamp};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

use crate::api::admin::partner_not_found;
use crate::api::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{AdminAuth, ApiPath, OptionalApiJson};

pub const DEFAULT_LINK_TTL_SECONDS: u64 = 3600;
pub const MIN_LINK_TTL_SECONDS: u64 = 60;
/// A week: a link is a credential in a URL, so it is kept short-lived.
pub const MAX_LINK_TTL_SECONDS: u64 = 7 * 24 * 3600;

#[derive(Deserialize, ToSchema, Default)]
pub struct CreatePortalSessionRequest {
    /// How long the link (and the session it opens) lasts; default 3600.
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 60, maximum = 604800)]
    pub ttl_seconds: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct PortalLink {
    /// Opens the portal as the partner; works once, until `expires_at`.
    pub url: String,
    /// RFC 3339, UTC: the link and the session it opens end then.
    pub expires_at: String,
}

/// Where links point: `HOOKLINE_PUBLIC_URL`, else the `Host` the request came to.
pub fn base_url(state: &AppState, headers: &HeaderMap, https: bool) -> String {
    if let Some(url) = &state.settings.portal.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| state.settings.listen.to_string());
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// Stores a one-time link for `partner` (the API's and the operator page's): its URL under
/// `base` and when it ends.
pub async fn issue_link(
    state: &AppState,
    partner: &PartnerId,
    ttl_seconds: Option<u64>,
    base: &str,
) -> ApiResult<(String, Timestamp)> {
    let ttl = ttl_seconds.unwrap_or(DEFAULT_LINK_TTL_SECONDS);
    if !(MIN_LINK_TTL_SECONDS..=MAX_LINK_TTL_SECONDS).contains(&ttl) {
        return Err(ApiError::InvalidParameter(format!(
            "ttl_seconds must be between {MIN_LINK_TTL_SECONDS} and {MAX_LINK_TTL_SECONDS} (got {ttl})"
        )));
    }
    if !state.store.partner_exists(partner).await? {
        return Err(partner_not_found(partner.as_str()));
    }
    let now = Timestamp::now();
    let expires_at = now + Duration::from_secs(ttl);
    let (token, row) = PortalSession::issue(
        PortalTokenKind::Link,
        PortalPrincipal::Partner(partner.clone()),
        now,
        expires_at,
    );
    state.store.create_portal_session(&row, now).await?;
    tracing::info!(partner_id = %partner, "portal link issued");
    Ok((
        format!("{base}/portal/enter?token={}", token.expose()),
        expires_at,
    ))
}

#[utoipa::path(post, path = "/admin/v1/partners/{partner_id}/portal-sessions", tag = "Operator",
    params(("partner_id" = String, Path)),
    request_body(content = Option<CreatePortalSessionRequest>, description = "Optional body"),
    responses((status = 201, body = PortalLink), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 413, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
              (status = 503, body = ErrorEnvelope)),
    security(("admin" = [])))]
pub async fn create_portal_session(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiPath(partner_id): ApiPath<PartnerId>,
    headers: HeaderMap,
    OptionalApiJson(req): OptionalApiJson<CreatePortalSessionRequest>,
) -> ApiResult<(StatusCode, Json<PortalLink>)> {
    let base = base_url(
        &state,
        &headers,
        super::session::over_https(&state, &headers),
    );
    let (url, expires_at) = issue_link(&state, &partner_id, req.ttl_seconds, &base).await?;
    Ok((
        StatusCode::CREATED,
        Json(PortalLink {
            url,
            expires_at: expires_at.rfc3339(),
        }),
    ))
}
