//! How a portal request fails: a page a person can act on, never a JSON envelope.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::layout::{self, Nav};
use crate::error::ApiError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum PortalError {
    /// No session: to the sign-in page.
    SignIn,
    /// The browser's session ended (expired, signed out elsewhere, its key revoked): to the
    /// sign-in page, which says so.
    SessionEnded,
    /// A session of the other kind (an operator on a partner page): to its own start page.
    Home,
    /// A form without the right CSRF token.
    Csrf,
    NotFound,
    BadRequest(String),
    /// What the shared API functions refused, with their status and message.
    Api(ApiError),
}

impl From<ApiError> for PortalError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound(_) => PortalError::NotFound,
            e => PortalError::Api(e),
        }
    }
}

impl From<StoreError> for PortalError {
    fn from(e: StoreError) -> Self {
        PortalError::Api(ApiError::from(e))
    }
}

pub type PortalResult<T = Response> = Result<T, PortalError>;

/// A whole page for an error, with a way on.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        section.card.error-page {
            h1 { (title) }
            p { (message) }
            p.actions {
                // Shown by the script when there is a page to go back to.
                a.button.primary href="/portal" data-back hidden { "Go back" }
                a.button href="/portal" { "Back to the portal" }
            }
        }
    };
    (status, layout::page(title, Nav::None, None, body)).into_response()
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        match self {
            PortalError::SignIn | PortalError::SessionEnded => {
                let to = match self {
                    PortalError::SessionEnded => "/portal/sign-in?ended=1",
                    _ => "/portal/sign-in",
                };
                let mut r = Redirect::to(to).into_response();
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            PortalError::Home => Redirect::to("/portal").into_response(),
            PortalError::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was not sent from this portal session (or the session changed since it was shown). Go back, reload the page and try again.",
            ),
            PortalError::NotFound => error_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here: the link may be mistyped, or what it pointed to was deleted.",
            ),
            PortalError::BadRequest(message) => {
                error_page(StatusCode::BAD_REQUEST, "That did not work", &message)
            }
            PortalError::Api(e) => {
                let (status, _) = e.status_and_code();
                if let ApiError::Internal(cause) = &e {
                    tracing::error!(error = %format!("{cause:#}"), "portal request failed");
                    return error_page(
                        status,
                        "Something went wrong",
                        "hookline could not finish this request. It was logged; try again in a moment.",
                    );
                }
                error_page(status, "That did not work", &e.to_string())
            }
        }
    }
}

pub async fn not_found_page() -> Response {
    PortalError::NotFound.into_response()
}
