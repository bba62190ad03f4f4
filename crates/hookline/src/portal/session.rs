//! Portal sessions in the browser: the cookie, the extractors that demand a session, CSRF, and
//! the security headers of every portal answer.
//!
//! The session cookie is HttpOnly, SameSite=Strict, scoped to `/portal`, and Secure when the
//! server is reached over HTTPS. Every state-changing form carries the session's CSRF token
//! (checked in constant time by [`PortalPost`], so no handler can forget it); forms shown
//! before there is a session (sign-in, a portal link) are tied to a pre-session cookie instead
//! (double submit), so another site cannot sign a browser into an account of its choosing.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use hookline_core::{ApiKey, PartnerId, PortalPrincipal, PortalSession, Timestamp};

use super::errors::PortalError;
use super::form::Form;
use super::PortalState;

pub const SESSION_COOKIE: &str = "hl_portal";
/// The double-submit cookie of the forms shown before a session exists.
pub const PRE_COOKIE: &str = "hl_portal_pre";
/// The form field every state-changing form carries.
pub const CSRF_FIELD: &str = "csrf";

/// Scripts, styles and images only from the portal itself; no inline script or style, no
/// framing, forms post only back here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers of every portal answer (the app adds `no-store` and `nosniff` to all answers).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// True when the browser reached us over HTTPS: the public URL says so, or the TLS-terminating
/// proxy does. (A wrong `X-Forwarded-Proto` can only make this browser's own cookie Secure.)
pub fn over_https(state: &crate::api::AppState, headers: &HeaderMap) -> bool {
    state.settings.portal.https()
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for the portal's path; `None` clears the cookie.
pub fn set_cookie(name: &str, value: Option<(&str, i64)>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = match value {
        Some((v, max_age)) => format!(
            "{name}={v}; Path=/portal; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
        ),
        None => format!("{name}=; Path=/portal; Max-Age=0; HttpOnly; SameSite=Strict{secure}"),
    };
    HeaderValue::from_str(&text).expect("cookie tokens are URL-safe base64")
}

/// Constant-time comparison of a presented token with the expected one.
pub fn tokens_match(expected: &str, presented: &str) -> bool {
    ApiKey::from_presented(expected)
        .hash()
        .matches(&ApiKey::from_presented(presented))
}

/// A page request with a live session; without one the browser is sent to sign in.
pub struct PortalPage {
    pub session: PortalSession,
}

impl PortalPage {
    /// The session's partner; an operator session has none and is sent to its own pages.
    pub fn partner(&self) -> Result<&PartnerId, PortalError> {
        self.session.partner().ok_or(PortalError::Home)
    }

    pub fn operator(&self) -> Result<(), PortalError> {
        match self.session.principal {
            PortalPrincipal::Operator => Ok(()),
            // The operator pages do not exist for a partner, as for an API key.
            PortalPrincipal::Partner(_) => Err(PortalError::NotFound),
        }
    }

    pub fn csrf(&self) -> &str {
        &self.session.csrf_token
    }
}

impl FromRequestParts<PortalState> for PortalPage {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &PortalState,
    ) -> Result<Self, PortalError> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(PortalError::SignIn)?;
        let session = state
            .app
            .store
            .portal_session(&ApiKey::from_presented(token).hash(), Timestamp::now())
            .await?
            .ok_or(PortalError::SessionEnded)?;
        if !credential_still_valid(&state.app, &session).await? {
            state
                .app
                .store
                .end_portal_session(&session.token_hash)
                .await?;
            return Err(PortalError::SessionEnded);
        }
        Ok(PortalPage { session })
    }
}

/// Whether the key or admin token the session's sign-in presented would still be accepted:
/// a session must not outlive a revoked key or a replaced admin token. A session opened from a
/// portal link has no credential and lives until it expires or the operator ends it.
async fn credential_still_valid(
    app: &crate::api::AppState,
    session: &PortalSession,
) -> Result<bool, PortalError> {
    let Some(credential) = &session.credential else {
        return Ok(true);
    };
    Ok(match &session.principal {
        PortalPrincipal::Operator => app.admin_hash.same_as(credential),
        PortalPrincipal::Partner(partner) => {
            app.store.partner_for_key(credential).await?.as_ref() == Some(partner)
        }
    })
}

/// A form post with a live session and the session's CSRF token: the only way a portal
/// handler receives a state-changing request.
pub struct PortalPost {
    pub page: PortalPage,
    pub form: Form,
}

impl FromRequest<PortalState> for PortalPost {
    type Rejection = PortalError;

    async fn from_request(req: Request, state: &PortalState) -> Result<Self, PortalError> {
        let (mut parts, body) = req.into_parts();
        let page = PortalPage::from_request_parts(&mut parts, state).await?;
        let form = Form::from_request(Request::from_parts(parts, body), state).await?;
        if !tokens_match(page.csrf(), form.get(CSRF_FIELD).unwrap_or_default()) {
            return Err(PortalError::Csrf);
        }
        Ok(PortalPost { page, form })
    }
}

/// A form post made before there is a session (sign-in, a portal link): its CSRF field must
/// equal the pre-session cookie set when the form was shown.
pub struct PreSessionPost {
    pub form: Form,
    pub headers: HeaderMap,
    /// The TCP peer, for the failed-authentication throttle.
    pub client: Option<std::net::IpAddr>,
}

impl FromRequest<PortalState> for PreSessionPost {
    type Rejection = PortalError;

    async fn from_request(req: Request, state: &PortalState) -> Result<Self, PortalError> {
        let headers = req.headers().clone();
        let client = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let form = Form::from_request(req, state).await?;
        let expected = cookie(&headers, PRE_COOKIE).unwrap_or_default();
        let presented = form.get(CSRF_FIELD).unwrap_or_default();
        if expected.is_empty() || !tokens_match(expected, presented) {
            return Err(PortalError::Csrf);
        }
        Ok(PreSessionPost {
            form,
            headers,
            client,
        })
    }
}
