//! HTTP routing: the partner API (at `/v3` and `/api/partner/v3`), the operator API, and meta.

pub mod admin;
pub mod admin_deliveries;
pub mod auth_throttle;
mod body_limit;
pub mod deliveries;
pub mod delivery_views;
pub mod event_types;
mod http_metrics;
pub mod listen;
pub mod meta;
pub mod partner;
#[cfg(test)]
mod properties;
pub mod readiness;
mod schema;
mod state;
pub mod webhook_logs;

pub use state::{AppState, Shared as AppShared, LIST_TURNS};
pub mod request_id;
pub mod rotate_secret;
pub mod test_event;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method, Uri};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use schema::ErrorResponses;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ApiError;

/// Batch publishes carry up to 1000 events of up to 256 KiB each; cap the request at 16 MiB.
const ADMIN_BODY_LIMIT: usize = 16 * 1024 * 1024;

fn partner_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/v3/webhook-subscriptions",
            post(partner::create).get(partner::list),
        )
        .route(
            "/v3/webhook-subscriptions/{id}",
            get(partner::retrieve)
                .put(partner::update)
                .delete(partner::delete),
        )
        .route(
            "/v3/webhook-subscriptions/{id}/rotate-secret",
            post(rotate_secret::rotate_secret),
        )
        .route(
            "/v3/webhook-subscriptions/{id}/test",
            post(test_event::send_test),
        )
        .route("/v3/webhook-events", get(partner::event_types))
        .route("/v3/listen", get(listen::listen))
        .route("/v3/listen/{id}/acks", post(listen::ack))
        .route(
            "/v3/webhook-subscriptions/{id}/deliveries",
            get(deliveries::list),
        )
        .route(
            "/v3/webhook-subscriptions/{id}/deliveries/{event_id}",
            get(deliveries::retrieve),
        )
        .route(
            "/v3/webhook-subscriptions/{id}/deliveries/{event_id}/retry",
            post(deliveries::retry),
        )
        .route(
            "/v3/webhook-subscriptions/{id}/recover",
            post(deliveries::recover),
        )
        .route(
            "/v3/webhook-subscriptions/{id}/recoveries/{recovery_id}",
            get(deliveries::recovery),
        )
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .route_layer(axum::middleware::from_fn_with_state(
            state.settings.max_body_bytes,
            body_limit::refuse_declared_oversize,
        ))
}

fn admin_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/v1/partners",
            post(admin::create_partner).get(admin::list_partners),
        )
        .route(
            "/admin/v1/partners/{partner_id}/api-keys",
            post(admin::create_api_key),
        )
        .route(
            "/admin/v1/partners/{partner_id}/api-keys/{key_id}",
            delete(admin::revoke_api_key),
        )
        .route(
            "/admin/v1/partners/{partner_id}/portal-sessions",
            post(crate::portal::links::create_portal_session),
        )
        .route("/admin/v1/events", post(admin::publish))
        .route("/admin/v1/events/batch", post(admin::publish_batch))
        .route("/admin/v1/event-types", get(event_types::list))
        .route("/admin/v1/events/{event_id}", get(admin_deliveries::event))
        .route("/admin/v1/deliveries", get(admin_deliveries::list))
        .route(
            "/admin/v1/deliveries/retry",
            post(admin_deliveries::bulk_retry),
        )
        .route(
            "/admin/v1/recoveries/{recovery_id}",
            get(admin_deliveries::recovery),
        )
        .layer(DefaultBodyLimit::max(ADMIN_BODY_LIMIT))
        .route_layer(axum::middleware::from_fn_with_state(
            ADMIN_BODY_LIMIT,
            body_limit::refuse_declared_oversize,
        ))
}

fn meta_routes(metrics: bool) -> Router<AppState> {
    let routes = Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/openapi.json", get(meta::openapi));
    match metrics {
        true => routes.route("/metrics", get(meta::metrics)),
        false => routes,
    }
}

/// Only `/metrics`, for `HOOKLINE_METRICS_LISTEN`.
pub fn metrics_router() -> Router {
    Router::new()
        .route("/metrics", get(meta::metrics))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::map_response(not_cacheable))
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!(
        "No route for {method} {}",
        hookline_core::text::quote(uri.path())
    ))
}

async fn wrong_method(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// The whole HTTP surface for a process in `role`. Worker-only nodes serve meta routes only.
pub fn router(state: AppState) -> Router {
    build(state, true)
}

/// [`router`] less `/metrics`, which [`metrics_router`] serves on a listener of its own.
pub fn router_without_metrics(state: AppState) -> Router {
    build(state, false)
}

fn build(state: AppState, metrics: bool) -> Router {
    let mut app = meta_routes(metrics);
    if state.settings.role.serves_api() {
        let partner = partner_routes(&state);
        app = app
            .merge(partner.clone())
            .nest("/api/partner", partner)
            // Linq CLI compatibility (`LINQ_LOGS_URL=<hookline>/api`).
            .route("/api/v1/webhook-logs", get(webhook_logs::list))
            .merge(admin_routes())
            .merge(crate::portal::routes(&state));
    }
    // Layered last so it wraps every route and both fallbacks: no answer leaves without an id.
    app.fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        // Inside the routing, so each request is counted under its route template.
        .layer(axum::middleware::from_fn(http_metrics::count))
        .layer(axum::middleware::from_fn(request_id::identify))
        // Outermost, so it marks every answer, whichever layer or handler made it.
        .layer(axum::middleware::map_response(not_cacheable))
        .with_state(state)
}

/// Answers carry API keys and signing secrets: no cache or proxy may keep them, and no browser
/// may sniff a JSON answer into something it renders.
async fn not_cacheable(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, desc) in [
            ("bearer", "Partner API key"),
            ("admin", "Operator token (HOOKLINE_ADMIN_TOKEN)"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(desc))
                        .build(),
                ),
            );
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "hookline", description = "Linq-compatible webhook subscriptions and delivery. \
        Partner paths are also served under /api/partner (the SDKs' default prefix)."),
    paths(
        partner::create, partner::list, partner::retrieve, partner::update, partner::delete,
        partner::event_types,
        rotate_secret::rotate_secret, test_event::send_test,
        admin::create_partner, admin::list_partners, admin::create_api_key, admin::revoke_api_key,
        admin::publish, admin::publish_batch, event_types::list,
        crate::portal::links::create_portal_session,
        meta::healthz, meta::readyz, meta::openapi,
        listen::listen, listen::ack,
        deliveries::list, deliveries::retrieve, deliveries::retry, deliveries::recover,
        deliveries::recovery, webhook_logs::list,
        admin_deliveries::list, admin_deliveries::event, admin_deliveries::bulk_retry,
        admin_deliveries::recovery,
        meta::metrics,
    ),
    modifiers(&SecuritySchemes, &ErrorResponses)
)]
struct ApiDoc;

pub fn openapi_document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
