//! The operator's pages (admin-token sessions): partners and their API keys, portal links, and
//! the health view. Each action is the operator API's own function.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use hookline_core::{ApiKeyId, Partner, PartnerId, Timestamp};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::errors::{PortalError, PortalResult};
use super::form::Ids;
use super::layout::{self, csrf_field, empty_state, notice, secret_once, time, Nav};
use super::session::{over_https, PortalPage, PortalPost};
use super::PortalState;
use crate::api::admin;

pub fn routes() -> Router<PortalState> {
    Router::new()
        .route("/portal/admin/partners", get(partners).post(create_partner))
        .route("/portal/admin/partners/{id}", get(partner_page))
        .route("/portal/admin/partners/{id}/keys", post(create_key))
        .route(
            "/portal/admin/partners/{id}/keys/{key_id}/revoke",
            post(revoke_key),
        )
        .route("/portal/admin/partners/{id}/portal-link", post(portal_link))
        .route("/portal/admin/health", get(health))
}

fn partner_path(p: &PartnerId) -> String {
    format!("/portal/admin/partners/{p}")
}

/// The partner list and the form for a new one; `typed` is the name the form keeps after an
/// error.
fn partners_markup(
    page: &PortalPage,
    list: &[Partner],
    error: Option<&str>,
    typed: &str,
) -> layout::Page {
    let now = Timestamp::now();
    let body = html! {
        h1 { "Partners" }
        @if let Some(e) = error { (notice("error", e)) }
        section.card {
            @if list.is_empty() {
                (empty_state("No partners yet", "Create a partner below, then give it an API key or a portal link.", None))
            } @else {
                div.table-wrap {
                    table.stack {
                        thead { tr { th { "Name" } th { "ID" } th { "Created" } } }
                        tbody {
                            @for p in list {
                                tr {
                                    td data-label="Name" { a href=(partner_path(&p.id)) { (p.name) } }
                                    td data-label="ID" { span.mono.break { (p.id) } }
                                    td data-label="Created" { (time(p.created_at, now)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        form.card method="post" action="/portal/admin/partners" {
            h2 { "New partner" }
            (csrf_field(page.csrf()))
            div.field {
                label for="name" { "Name" }
                input #name type="text" name="name" required maxlength="200" value=(typed);
            }
            button.primary type="submit" { "Create partner" }
        }
    };
    layout::page("Partners", Nav::Partners, Some(page.csrf()), body)
}

pub async fn partners(State(state): State<PortalState>, page: PortalPage) -> PortalResult {
    page.operator()?;
    let list = state.app.store.list_partners().await?;
    Ok(partners_markup(&page, &list, None, "").into_response())
}

pub async fn create_partner(State(state): State<PortalState>, post: PortalPost) -> PortalResult {
    post.page.operator()?;
    let name = post.form.get("name").unwrap_or_default();
    match admin::create_partner_named(&state.app, name).await {
        Ok(p) => Ok(Redirect::to(&format!("{}?done=created", partner_path(&p.id))).into_response()),
        Err(e @ crate::error::ApiError::InvalidParameter(_)) => {
            let list = state.app.store.list_partners().await?;
            let page = partners_markup(&post.page, &list, Some(&e.to_string()), name);
            Ok((StatusCode::BAD_REQUEST, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn find_partner(state: &PortalState, id: &str) -> PortalResult<Partner> {
    let list = state.app.store.list_partners().await?;
    list.into_iter()
        .find(|p| p.id.as_str() == id)
        .ok_or(PortalError::NotFound)
}

#[derive(Deserialize)]
pub struct PartnerQuery {
    #[serde(default)]
    revoked: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

pub async fn partner_page(
    State(state): State<PortalState>,
    page: PortalPage,
    Ids(id): Ids<String>,
    Query(q): Query<PartnerQuery>,
) -> PortalResult {
    page.operator()?;
    let partner = find_partner(&state, &id).await?;
    let message = match (q.revoked.is_some(), q.done.as_deref()) {
        (true, _) => Some(notice(
            "ok",
            "The key is revoked; it stopped working at once.",
        )),
        (_, Some("created")) => Some(notice(
            "ok",
            "Partner created. Give it an API key or a portal link below.",
        )),
        _ => None,
    };
    let body = partner_markup(&state, &page, &partner, message, "").await?;
    Ok(layout::page(&partner.name, Nav::Partners, Some(page.csrf()), body).into_response())
}

/// A partner's keys and the forms for a key and a portal link; `key_name` is what the key
/// form keeps after an error.
async fn partner_markup(
    state: &PortalState,
    page: &PortalPage,
    partner: &Partner,
    message: Option<Markup>,
    key_name: &str,
) -> PortalResult<Markup> {
    let keys = state.app.store.list_api_keys(&partner.id).await?;
    let now = Timestamp::now();
    let path = partner_path(&partner.id);
    Ok(html! {
        p.crumbs { a href="/portal/admin/partners" { "Partners" } " / " (partner.name) }
        h1 { (partner.name) }
        @if let Some(m) = message { (m) }
        section.card {
            h2 { "API keys" }
            @if keys.is_empty() {
                (empty_state("No active keys", "Create a key for the partner's servers, or give them a portal link instead.", None))
            } @else {
                div.table-wrap {
                    table.stack {
                        thead { tr { th { "Name" } th { "ID" } th { "Created" } th { span.sr { "Actions" } } } }
                        tbody {
                            @for k in &keys {
                                tr {
                                    td data-label="Name" { (k.name.as_deref().unwrap_or("—")) }
                                    td data-label="ID" { span.mono { (k.id) } }
                                    td data-label="Created" { (time(k.created_at, now)) }
                                    td {
                                        form method="post" action={(path) "/keys/" (k.id) "/revoke"} data-confirm="Revoke this key? It stops working at once." {
                                            (csrf_field(page.csrf()))
                                            button.danger.small type="submit" aria-label={"Revoke key " (k.name.as_deref().unwrap_or(k.id.as_str()))} { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action={(path) "/keys"} {
                (csrf_field(page.csrf()))
                div.field {
                    label for="key_name" { "New key name (optional)" }
                    input #key_name type="text" name="name" maxlength="200" value=(key_name);
                }
                button.primary type="submit" { "Create API key" }
            }
        }
        form.card method="post" action={(path) "/portal-link"} {
            h2 { "Portal link" }
            p.muted { "A one-time link that opens this portal as the partner, for the time you choose." }
            (csrf_field(page.csrf()))
            div.field {
                label for="ttl" { "Valid for" }
                select #ttl name="ttl_seconds" {
                    option value="900" { "15 minutes" }
                    option value="3600" selected { "1 hour" }
                    option value="86400" { "1 day" }
                    option value="604800" { "7 days" }
                }
            }
            button type="submit" { "Create portal link" }
        }
    })
}

fn shown_once(page: &PortalPage, partner: &Partner, title: &str, content: Markup) -> PortalResult {
    let body = html! {
        p.crumbs { a href="/portal/admin/partners" { "Partners" } " / " a href=(partner_path(&partner.id)) { (partner.name) } }
        h1 { (title) }
        section.card {
            (content)
            a.button.primary href=(partner_path(&partner.id)) { "Back to " (partner.name) }
        }
    };
    Ok(layout::page(title, Nav::Partners, Some(page.csrf()), body).into_response())
}

pub async fn create_key(
    State(state): State<PortalState>,
    Ids(id): Ids<String>,
    post: PortalPost,
) -> PortalResult {
    post.page.operator()?;
    let partner = find_partner(&state, &id).await?;
    let name = post.form.text("name");
    let key = match admin::issue_api_key(&state.app, &partner.id, name.as_deref()).await {
        Ok((key, _)) => key,
        Err(e @ crate::error::ApiError::InvalidParameter(_)) => {
            let error = notice("error", &e.to_string());
            let typed = name.as_deref().unwrap_or_default();
            let body = partner_markup(&state, &post.page, &partner, Some(error), typed).await?;
            let page = layout::page(&partner.name, Nav::Partners, Some(post.page.csrf()), body);
            return Ok((StatusCode::BAD_REQUEST, page).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let content = secret_once("api_key", "API key", key.expose());
    shown_once(&post.page, &partner, "API key created", content)
}

pub async fn revoke_key(
    State(state): State<PortalState>,
    Ids((id, key_id)): Ids<(String, String)>,
    post: PortalPost,
) -> PortalResult {
    post.page.operator()?;
    let partner = find_partner(&state, &id).await?;
    let key_id = ApiKeyId::from_stored(key_id);
    admin::revoke_key(&state.app, &partner.id, &key_id).await?;
    Ok(Redirect::to(&format!("{}?revoked=1", partner_path(&partner.id))).into_response())
}

pub async fn portal_link(
    State(state): State<PortalState>,
    headers: HeaderMap,
    Ids(id): Ids<String>,
    post: PortalPost,
) -> PortalResult {
    post.page.operator()?;
    let partner = find_partner(&state, &id).await?;
    let ttl = post.form.text("ttl_seconds").and_then(|t| t.parse().ok());
    let base = super::links::base_url(&state.app, &headers, over_https(&state.app, &headers));
    let (url, expires_at) = super::links::issue_link(&state.app, &partner.id, ttl, &base).await?;
    let now = Timestamp::now();
    let content = html! {
        (secret_once("portal_link", "Portal link", &url))
        p { "It works once, and the session it opens ends " (time(expires_at, now)) "." }
    };
    shown_once(&post.page, &partner, "Portal link created", content)
}

/// The numbers of `/metrics`: the queue gauges' latest sample, and this node's attempt and
/// deactivation counters since it started.
pub async fn health(State(state): State<PortalState>, page: PortalPage) -> PortalResult {
    page.operator()?;
    let h = state.ops.health().await?;
    let s = &h.stats;
    let count = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0) as u64;
    let attempts = h.attempts.values().sum::<f64>() as u64;
    let unsuccessful = count(&h.attempts, "retry") + count(&h.attempts, "failed");
    let ratio = (attempts > 0).then(|| unsuccessful as f64 * 100.0 / attempts as f64);
    let (gone, dead) = (
        count(&h.deactivations, "gone"),
        count(&h.deactivations, "dead_endpoint"),
    );
    let now = Timestamp::now();
    let oldest = (s.due > 0).then(|| s.sampled_at.saturating_sub(s.oldest_due_age));
    let body = html! {
        h1 { "Health" }
        div.stats {
            div.stat { div.muted { "Queue depth" } div.n { (s.pending) } div.hint { "deliveries pending: " (s.due) " due now, " (s.retrying) " retrying" } }
            div.stat { div.muted { "Oldest due delivery" } div.n {
                @match oldest { Some(t) => (time(t, now)), None => "—" }
            } div.hint { @if oldest.is_some() { "due since then, not sent yet" } @else { "nothing is due" } } }
            div.stat { div.muted { "Failed attempts" } div.n { @if let Some(r) = ratio { (format!("{r:.1} %")) } @else { "—" } } div.hint { (unsuccessful) " of " (attempts) " attempts by this node failed (retried or final)" } }
            div.stat { div.muted { "Inactive subscriptions" } div.n { (s.subscriptions_inactive) } div.hint { (s.subscriptions_active) " active; deactivated by this node: " (gone) " on 410 Gone, " (dead) " as dead endpoints" } }
        }
        p.hint { "The numbers of " code { "/metrics" } ": queue gauges as sampled " (time(s.sampled_at, now)) " (every " code { "HOOKLINE_METRICS_SAMPLE_INTERVAL" } "), counters of this node since it started." }
    };
    Ok(layout::page("Health", Nav::Health, Some(page.csrf()), body).into_response())
}
