//! A partner's subscriptions: list, create (the secret shown once), view and edit, delete.
//! Each action is the partner API's own function, scoped to the session's partner.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use hookline_core::{Subscription, Timestamp};
use maud::{html, Markup};
use serde::Deserialize;

use super::errors::{PortalError, PortalResult};
use super::form::Ids;
use super::layout::{self, csrf_field, empty_state, notice, secret_once, time, Nav};
use super::session::{PortalPage, PortalPost};
use super::subscription_form::{fields, FormValues};
use super::PortalState;
use crate::api::partner;
use crate::api::request_id::RequestIdentity;
use crate::error::ApiError;

pub fn status_badge(active: bool) -> Markup {
    html! {
        @if active { span.badge.ok { "Active" } } @else { span.badge.off { "Inactive" } }
    }
}

pub fn sub_path(sub: &Subscription) -> String {
    format!("/portal/subscriptions/{}", sub.id)
}

fn events_summary(sub: &Subscription) -> String {
    match sub.subscribed_events.as_slice() {
        [one] => one.as_str().to_owned(),
        [first, rest @ ..] => format!("{} and {} more", first.as_str(), rest.len()),
        [] => "none".into(),
    }
}

pub async fn list(
    State(state): State<PortalState>,
    page: PortalPage,
    Query(flash): Query<super::deliveries::Flash>,
) -> PortalResult {
    let partner = page.partner()?;
    // As the API's list: a few built at once (see `api::partner::list`).
    let _turn = state.app.list_turns.acquire().await.expect("never closed");
    let subs = state.app.store.list_subscriptions(partner).await?;
    let now = Timestamp::now();
    let body = html! {
        @if flash.done.as_deref() == Some("deleted") { (notice("ok", "Subscription deleted.")) }
        div.pagehead {
            h1 { "Webhook subscriptions" }
            a.button.primary href="/portal/subscriptions/new" { "New subscription" }
        }
        @if subs.is_empty() {
            section.card {
                (empty_state("No subscriptions yet",
                    "A subscription sends the events you choose to your HTTPS endpoint, signed with its own secret.",
                    Some(("/portal/subscriptions/new", "Create your first subscription"))))
            }
        } @else {
            section.card.table-wrap {
                table.stack {
                    thead { tr { th { "Endpoint" } th { "Events" } th { "Lines" } th { "Status" } th { "Created" } } }
                    tbody {
                        @for sub in &subs {
                            tr {
                                td data-label="Endpoint" { a.break href=(sub_path(sub)) { (sub.target_url.as_str()) } }
                                td data-label="Events" { span.mono { (events_summary(sub)) } }
                                td data-label="Lines" {
                                    @if sub.phone_numbers.is_empty() { "All" } @else { (sub.phone_numbers.len()) }
                                }
                                td data-label="Status" { (status_badge(sub.is_active)) }
                                td data-label="Created" { (time(sub.created_at, now)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Subscriptions", Nav::Subscriptions, Some(page.csrf()), body).into_response())
}

fn new_page(page: &PortalPage, values: &FormValues, error: Option<&str>) -> layout::Page {
    let body = html! {
        p.crumbs { a href="/portal/subscriptions" { "Subscriptions" } " / New" }
        h1 { "New subscription" }
        @if let Some(e) = error { (notice("error", e)) }
        form.card method="post" action="/portal/subscriptions" {
            (csrf_field(page.csrf()))
            (fields(values, false))
            div.actions {
                button.primary type="submit" { "Create subscription" }
                a.button href="/portal/subscriptions" { "Cancel" }
            }
        }
    };
    layout::page(
        "New subscription",
        Nav::Subscriptions,
        Some(page.csrf()),
        body,
    )
}

pub async fn new_form(page: PortalPage) -> PortalResult {
    page.partner()?;
    Ok(new_page(&page, &FormValues::blank(), None).into_response())
}

/// A refusal of the shared function, shown on the form it came from; anything else is an
/// error page.
fn refused(e: ApiError) -> Result<(StatusCode, String), PortalError> {
    match e {
        ApiError::NotFound(_) | ApiError::Internal(_) | ApiError::Unavailable(_) => Err(e.into()),
        e => Ok((e.status_and_code().0, in_form_words(&e.to_string()))),
    }
}

/// The API's message with its field names as the form labels them.
fn in_form_words(message: &str) -> String {
    const LABELS: [(&str, &str); 5] = [
        ("subscribed_events", "Events"),
        ("target_url", "Endpoint URL"),
        ("routing_id_header", "Chat id header"),
        ("routing_key_header", "Routing key header"),
        ("phone_numbers", "Phone numbers"),
    ];
    LABELS.iter().fold(message.to_owned(), |m, (field, label)| {
        m.replace(field, label)
    })
}

pub async fn create(
    State(state): State<PortalState>,
    request: RequestIdentity,
    post: PortalPost,
) -> PortalResult {
    let partner = post.page.partner()?.clone();
    let values = FormValues::posted(&post.form);
    match partner::create_subscription(&state.app, partner, &request, values.create_request()).await
    {
        Ok((sub, secret)) => {
            let body = html! {
                p.crumbs { a href="/portal/subscriptions" { "Subscriptions" } " / Created" }
                h1 { "Subscription created" }
                (notice("ok", "Events you subscribed to are now delivered to your endpoint."))
                section.card {
                    p { "Endpoint: " span.mono.break { (sub.target_url.as_str()) } }
                    (secret_once("signing_secret", "Signing secret", &secret))
                    p.hint { "Verify each delivery's webhook-signature header with it (any Standard Webhooks library does)." }
                    div.actions { a.button.primary href=(sub_path(&sub)) { "Go to the subscription" } }
                }
            };
            let csrf = post.page.csrf();
            Ok(
                layout::page("Subscription created", Nav::Subscriptions, Some(csrf), body)
                    .into_response(),
            )
        }
        Err(e) => {
            let (status, message) = refused(e)?;
            Ok((status, new_page(&post.page, &values, Some(&message))).into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct DetailQuery {
    #[serde(default)]
    saved: Option<String>,
}

pub async fn detail(
    State(state): State<PortalState>,
    page: PortalPage,
    Ids(id): Ids<String>,
    Query(q): Query<DetailQuery>,
) -> PortalResult {
    let sub = partner::load(&state.app, page.partner()?, &id).await?;
    let message = q.saved.map(|_| notice("ok", "Saved."));
    let values = FormValues::of(&sub);
    Ok(detail_page(&page, &sub, &values, message).into_response())
}

fn detail_page(
    page: &PortalPage,
    sub: &Subscription,
    values: &FormValues,
    message: Option<Markup>,
) -> layout::Page {
    let now = Timestamp::now();
    let path = sub_path(sub);
    let body = html! {
        p.crumbs { a href="/portal/subscriptions" { "Subscriptions" } " / Subscription" }
        div.pagehead {
            h1.break { (sub.target_url.as_str()) }
            (status_badge(sub.is_active))
        }
        @if let Some(m) = message { (m) }
        div.grid2 {
            section.card {
                h2 { "Details" }
                dl.facts {
                    dt { "ID" } dd.mono { (sub.id) }
                    dt { "Created" } dd { (time(sub.created_at, now)) }
                    dt { "Updated" } dd { (time(sub.updated_at, now)) }
                    dt { "Events" } dd { (sub.subscribed_events.len()) }
                    dt { "Lines" } dd { @if sub.phone_numbers.is_empty() { "All" } @else { (sub.phone_numbers.len()) } }
                }
                div.actions { a.button href={(path) "/deliveries"} { "Delivery log" } }
            }
            (super::deliveries::actions_card(page, sub))
        }
        form.card method="post" action=(path) {
            h2 { "Edit" }
            (csrf_field(page.csrf()))
            (fields(values, true))
            button.primary type="submit" { "Save changes" }
        }
        section.card {
            h2 { "Delete" }
            p.muted { "Deleting stops deliveries at once and cancels the pending ones." }
            a.button.danger href={(path) "/delete"} { "Delete subscription…" }
        }
    };
    layout::page("Subscription", Nav::Subscriptions, Some(page.csrf()), body)
}

pub async fn update(
    State(state): State<PortalState>,
    request: RequestIdentity,
    Ids(id): Ids<String>,
    post: PortalPost,
) -> PortalResult {
    let partner = post.page.partner()?;
    let values = FormValues::posted(&post.form);
    match partner::update_subscription(&state.app, partner, &request, &id, values.update_request())
        .await
    {
        Ok(sub) => Ok(Redirect::to(&format!("{}?saved=1", sub_path(&sub))).into_response()),
        Err(e) => {
            let (status, message) = refused(e)?;
            let sub = partner::load(&state.app, partner, &id).await?;
            let page = detail_page(&post.page, &sub, &values, Some(notice("error", &message)));
            Ok((status, page).into_response())
        }
    }
}

pub async fn confirm_delete(
    State(state): State<PortalState>,
    page: PortalPage,
    Ids(id): Ids<String>,
) -> PortalResult {
    let sub = partner::load(&state.app, page.partner()?, &id).await?;
    let path = sub_path(&sub);
    let body = html! {
        section.card.error-page {
            h1 { "Delete this subscription?" }
            p.break { span.mono { (sub.target_url.as_str()) } }
            p { "Deliveries to this endpoint stop at once and pending ones are cancelled. This cannot be undone." }
            form.actions method="post" action={(path) "/delete"} {
                (csrf_field(page.csrf()))
                button.danger type="submit" { "Delete subscription" }
                a.button href=(path) { "Keep it" }
            }
        }
    };
    Ok(layout::page(
        "Delete subscription",
        Nav::Subscriptions,
        Some(page.csrf()),
        body,
    )
    .into_response())
}

pub async fn delete(
    State(state): State<PortalState>,
    request: RequestIdentity,
    Ids(id): Ids<String>,
    post: PortalPost,
) -> PortalResult<Response> {
    partner::delete_subscription(&state.app, post.page.partner()?, &request, &id).await?;
    Ok(Redirect::to("/portal/subscriptions?done=deleted").into_response())
}
