//! Signing in and out: an API key (a partner), the admin token (the operator), or a one-time
//! portal link; every way ends in the same session cookie.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hookline_core::{
    ApiKey, ApiKeyHash, PortalPrincipal, PortalSession, PortalTokenKind, Timestamp,
};
use maud::{html, Markup};
use serde::Deserialize;

use super::errors::{PortalError, PortalResult};
use super::layout::{self, csrf_field, notice, Nav};
use super::session::{
    cookie, over_https, set_cookie, PortalPage, PortalPost, PreSessionPost, PRE_COOKIE,
    SESSION_COOKIE,
};
use super::PortalState;
use crate::error::ApiError;
use crate::extract::authenticate_client;

/// `/portal`: each kind of session to its own start page, no session to sign-in.
pub async fn home(page: Result<PortalPage, PortalError>) -> Response {
    match page {
        Ok(p) if p.session.partner().is_some() => Redirect::to("/portal/subscriptions"),
        Ok(_) => Redirect::to("/portal/admin/partners"),
        Err(_) => Redirect::to("/portal/sign-in"),
    }
    .into_response()
}

/// The pre-session token of this browser (kept across tabs), or a fresh one.
fn pre_token(headers: &HeaderMap) -> String {
    cookie(headers, PRE_COOKIE)
        .filter(|t| {
            t.len() == 43
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| ApiKey::generate("").expose().to_owned())
}

/// A page of a pre-session form, setting the cookie its CSRF field must match.
fn with_pre_cookie(
    state: &PortalState,
    headers: &HeaderMap,
    status: StatusCode,
    pre: &str,
    page: layout::Page,
) -> Response {
    let secure = over_https(&state.app, headers);
    let c = set_cookie(PRE_COOKIE, Some((pre, 3600)), secure);
    (status, [(header::SET_COOKIE, c)], page).into_response()
}

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    signed_out: Option<String>,
    #[serde(default)]
    ended: Option<String>,
}

/// One sign-in form: `kind` says which credential `secret` is.
fn sign_in_form(
    pre: &str,
    kind: &str,
    title: &str,
    label: &str,
    hint: &str,
    button: Markup,
) -> Markup {
    let id = format!("{kind}_secret");
    html! {
        section.card {
            h2 { (title) }
            form method="post" action="/portal/sign-in" {
                (csrf_field(pre))
                input type="hidden" name="kind" value=(kind);
                div.field {
                    label for=(id) { (label) }
                    input id=(id) type="password" name="secret" required autocomplete="off" aria-describedby={(id) "_hint"};
                    p.hint id={(id) "_hint"} { (hint) }
                }
                (button)
            }
        }
    }
}

fn sign_in_markup(pre: &str, message: Option<Markup>) -> layout::Page {
    let body = html! {
        div.signin {
            h1 { "Sign in" }
            @if let Some(m) = message { (m) }
            (sign_in_form(pre, "partner", "Partner", "API key",
                "The key you use with the API. Or open the portal link your platform gave you.",
                html! { button.primary type="submit" { "Sign in" } }))
            (sign_in_form(pre, "operator", "Operator", "Admin token",
                "HOOKLINE_ADMIN_TOKEN, or the token printed on first start.",
                html! { button type="submit" { "Sign in as operator" } }))
        }
    };
    layout::page("Sign in", Nav::None, None, body)
}

pub async fn sign_in_page(
    State(state): State<PortalState>,
    headers: HeaderMap,
    Query(q): Query<SignInQuery>,
) -> Response {
    let pre = pre_token(&headers);
    let message = match (q.signed_out.is_some(), q.ended.is_some()) {
        (true, _) => Some(notice("ok", "You are signed out.")),
        (_, true) => Some(notice(
            "error",
            "Your session has ended: it expired, was signed out elsewhere, or the key it was \
             opened with was revoked. Sign in again.",
        )),
        _ => None,
    };
    with_pre_cookie(
        &state,
        &headers,
        StatusCode::OK,
        &pre,
        sign_in_markup(&pre, message),
    )
}

/// Opens a session for `principal` and sends the browser to its start page.
async fn open_session(
    state: &PortalState,
    headers: &HeaderMap,
    principal: PortalPrincipal,
    credential: ApiKeyHash,
) -> PortalResult {
    let now = Timestamp::now();
    let ttl = state.app.settings.portal.session_ttl;
    let (token, row) = PortalSession::issue(PortalTokenKind::Session, principal, now, now + ttl);
    let row = row.signed_in_with(credential);
    state.app.store.create_portal_session(&row, now).await?;
    Ok(session_cookie_redirect(
        state,
        headers,
        token.expose(),
        ttl.as_secs() as i64,
    ))
}

fn session_cookie_redirect(
    state: &PortalState,
    headers: &HeaderMap,
    token: &str,
    max_age: i64,
) -> Response {
    let secure = over_https(&state.app, headers);
    let mut response = Redirect::to("/portal").into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, Some((token, max_age)), secure),
    );
    h.append(header::SET_COOKIE, set_cookie(PRE_COOKIE, None, secure));
    response
}

pub async fn sign_in(State(state): State<PortalState>, post: PreSessionPost) -> PortalResult {
    let secret = post.form.text("secret").unwrap_or_default();
    let presented = ApiKey::from_presented(&secret);
    let operator = post.form.get("kind") == Some("operator");
    let app = &state.app;
    let found = authenticate_client(post.client, app, async {
        if secret.is_empty() {
            return Ok::<_, ApiError>(None);
        }
        Ok(if operator {
            app.admin_hash
                .matches(&presented)
                .then_some(PortalPrincipal::Operator)
        } else {
            app.store
                .partner_for_key(&presented.hash())
                .await?
                .map(PortalPrincipal::Partner)
        })
    })
    .await;
    match found {
        Ok(principal) => open_session(&state, &post.headers, principal, presented.hash()).await,
        Err(e @ (ApiError::Unauthorized | ApiError::TooManyAuthFailures { .. })) => {
            let (status, _) = e.status_and_code();
            let wait = e.retry_after();
            let text = match e {
                ApiError::Unauthorized if operator => "That admin token is not valid.".to_owned(),
                ApiError::Unauthorized => {
                    "That API key is not valid, or it was revoked.".to_owned()
                }
                e => e.to_string(),
            };
            let pre = pre_token(&post.headers);
            let page = sign_in_markup(&pre, Some(notice("error", &text)));
            let mut response = with_pre_cookie(&state, &post.headers, status, &pre, page);
            // The page says how long to wait; the header says it to anything automated.
            if let Some(secs) = wait {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            }
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn sign_out(
    State(state): State<PortalState>,
    headers: HeaderMap,
    post: PortalPost,
) -> PortalResult {
    state
        .app
        .store
        .end_portal_session(&post.page.session.token_hash)
        .await?;
    let secure = over_https(&state.app, &headers);
    let mut response = Redirect::to("/portal/sign-in?signed_out=1").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, None, secure));
    Ok(response)
}

#[derive(Deserialize)]
pub struct EnterQuery {
    #[serde(default)]
    token: String,
}

/// A portal link lands here. Opening it changes nothing (link previews fetch URLs too): the
/// page posts the token back, by itself with the portal's script, else by its button.
pub async fn enter_page(
    State(state): State<PortalState>,
    headers: HeaderMap,
    Query(q): Query<EnterQuery>,
) -> Response {
    let pre = pre_token(&headers);
    let body = html! {
        section.card.signin {
            h1 { "Opening the portal…" }
            form method="post" action="/portal/enter" data-autosubmit {
                (csrf_field(&pre))
                input type="hidden" name="token" value=(q.token);
                p { "Continue to manage your webhooks." }
                button.primary type="submit" { "Continue to the portal" }
            }
        }
    };
    let page = layout::page("Opening the portal", Nav::None, None, body);
    with_pre_cookie(&state, &headers, StatusCode::OK, &pre, page)
}

pub async fn enter(State(state): State<PortalState>, post: PreSessionPost) -> PortalResult {
    let token = ApiKey::from_presented(post.form.get("token").unwrap_or_default());
    let now = Timestamp::now();
    let (session_token, fresh) = PortalSession::issue(
        PortalTokenKind::Session,
        PortalPrincipal::Operator,
        now,
        now,
    );
    let redeemed = state
        .app
        .store
        .redeem_portal_link(&token.hash(), &fresh.token_hash, &fresh.csrf_token, now)
        .await?;
    let Some(session) = redeemed else {
        return Ok(super::errors::error_page(
            StatusCode::FORBIDDEN,
            "This link no longer works",
            "Portal links work once and for a limited time. Ask for a new link, or sign in with an API key.",
        ));
    };
    let max_age = session.expires_at.since(now).as_secs() as i64;
    Ok(session_cookie_redirect(
        &state,
        &post.headers,
        session_token.expose(),
        max_age,
    ))
}
