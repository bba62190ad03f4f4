//! The web portal at `/portal`: partners manage their webhook subscriptions and operators their
//! partners in a browser. Server-rendered HTML (maud), one small script and one stylesheet
//! embedded in the binary; nothing loads from anywhere else.
//!
//! Every page goes through the same functions as the JSON API (`api::partner`, `api::admin`),
//! scoped to the session's partner exactly as an API key scopes a request, so the portal has no
//! rules of its own to drift. Sessions, CSRF and the security headers are in [`session`].

mod assets;
mod auth;
mod deliveries;
mod errors;
mod event_types;
mod form;
mod layout;
pub mod links;
mod operator;
pub mod ops;
mod session;
mod subscription_form;
mod subscriptions;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

use crate::api::AppState;

/// Forms carry at most a subscription with its phone numbers.
const FORM_BODY_LIMIT: usize = 256 * 1024;

/// What portal handlers reach: the app's state and the delivery operations (see [`ops`]).
#[derive(Clone)]
pub struct PortalState {
    pub app: AppState,
    pub ops: Arc<dyn ops::DeliveryOps>,
}

/// The portal's routes, for a process that serves the API.
pub fn routes(app: &AppState) -> Router<AppState> {
    let state = PortalState {
        ops: ops::for_app(app),
        app: app.clone(),
    };
    Router::new()
        .route("/portal", get(auth::home))
        .route("/portal/", get(auth::home))
        .route("/portal/assets/{name}", get(assets::serve))
        .route(
            "/portal/sign-in",
            get(auth::sign_in_page).post(auth::sign_in),
        )
        .route("/portal/sign-out", post(auth::sign_out))
        .route("/portal/enter", get(auth::enter_page).post(auth::enter))
        .merge(partner_pages())
        .merge(operator::routes())
        .route("/portal/{*rest}", get(errors::not_found_page))
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        .layer(axum::middleware::from_fn(session::security_headers))
        .with_state(state)
}

fn partner_pages() -> Router<PortalState> {
    Router::new()
        .route(
            "/portal/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        )
        .route("/portal/subscriptions/new", get(subscriptions::new_form))
        .route(
            "/portal/subscriptions/{id}",
            get(subscriptions::detail).post(subscriptions::update),
        )
        .route(
            "/portal/subscriptions/{id}/delete",
            get(subscriptions::confirm_delete).post(subscriptions::delete),
        )
        .route(
            "/portal/subscriptions/{id}/deliveries",
            get(deliveries::log),
        )
        .route(
            "/portal/subscriptions/{id}/deliveries/{event_id}",
            get(deliveries::detail),
        )
        .route(
            "/portal/subscriptions/{id}/deliveries/{event_id}/retry",
            post(deliveries::retry),
        )
        .route(
            "/portal/subscriptions/{id}/recover",
            post(deliveries::recover),
        )
        .route(
            "/portal/subscriptions/{id}/recoveries/{recovery_id}",
            get(deliveries::recovery),
        )
        .route(
            "/portal/subscriptions/{id}/test",
            post(deliveries::send_test),
        )
        .route(
            "/portal/subscriptions/{id}/rotate-secret",
            post(deliveries::rotate_secret),
        )
        .route("/portal/event-types", get(event_types::list))
}
