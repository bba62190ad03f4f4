//! A subscription's delivery log and the operations on it: a delivery's attempts, retry,
//! recover a time window, send a test event, rotate the signing secret. The work is done by
//! [`super::ops`]; the subscription is first loaded through the partner API's lookup, so
//! another partner's ids are a 404 here exactly as in the API.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use hookline_core::{EventType, Subscription, Timestamp};
use maud::{html, Markup};
use serde::Deserialize;

use super::errors::{PortalError, PortalResult};
use super::form::Ids;
use super::layout::{self, csrf_field, empty_state, notice, pre, secret_once, Nav};
use super::ops::{DeliveryView, LogQuery};
use super::session::{PortalPage, PortalPost};
use super::subscriptions::sub_path;
use super::PortalState;
use crate::api::partner;
use crate::api::request_id::RequestIdentity;

/// What a redirect after a form says it did (`?done=retried`), shown once on the page it lands on.
#[derive(Deserialize, Default)]
pub struct Flash {
    #[serde(default)]
    pub done: Option<String>,
}

const STATUSES: [&str; 5] = ["pending", "retrying", "success", "failed", "cancelled"];
const PER_PAGE: u32 = 25;

/// A timestamp of the operations' JSON (RFC 3339), shown relative with the exact time on hover.
fn when(rfc3339: &str, now: Timestamp) -> Markup {
    match Timestamp::parse_rfc3339(rfc3339) {
        Some(t) => layout::time(t, now),
        None => html! { (rfc3339) },
    }
}

fn outcome(d_status: Option<u16>, error_type: Option<&str>) -> Markup {
    html! {
        @match (d_status, error_type) {
            (Some(code), _) => span.mono { (code) },
            (None, Some(kind)) => span.mono { (kind) },
            (None, None) => span.muted { "—" },
        }
    }
}

/// The actions card of a subscription's page.
pub fn actions_card(page: &PortalPage, sub: &Subscription) -> Markup {
    let path = sub_path(sub);
    html! {
        section.card {
            h2 { "Operations" }
            @if !sub.is_active {
                p.muted { "This subscription is inactive: make it active (Edit, below) to send a test event or recover failed deliveries." }
            } @else {
            form method="post" action={(path) "/test"} {
                (csrf_field(page.csrf()))
                div.field {
                    label for="test_event_type" { "Send a test event" }
                    select #test_event_type name="event_type" {
                        @for e in &sub.subscribed_events { option value=(e.as_str()) { (e.as_str()) } }
                    }
                }
                button type="submit" { "Send test event" }
            }
            }
            hr;
            form method="post" action={(path) "/rotate-secret"} data-confirm="Rotate the signing secret? The new one is shown once." {
                (csrf_field(page.csrf()))
                div.field {
                    label for="grace" { "Rotate the signing secret" }
                    select #grace name="grace_period_seconds" aria-describedby="grace_hint" {
                        option value="0" { "End the old secret now" }
                        option value="3600" { "Keep the old one valid for 1 hour" }
                        option value="86400" selected { "Keep the old one valid for 24 hours" }
                        option value="604800" { "Keep the old one valid for 7 days" }
                    }
                    p.hint #grace_hint { "During the grace period deliveries carry both signatures." }
                }
                button type="submit" { "Rotate secret" }
            }
            @if sub.is_active {
            hr;
            form method="post" action={(path) "/recover"} {
                (csrf_field(page.csrf()))
                div.field {
                    label for="since" { "Recover failed deliveries since (UTC)" }
                    input #since type="datetime-local" name="since" required;
                }
                button type="submit" { "Recover" }
            }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct LogParams {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// "Newest deliveries" past the first page, "Older deliveries" while there are more; both keep
/// the filters.
fn pager(
    status: &Option<String>,
    event_type: &Option<String>,
    paged: bool,
    next: Option<&str>,
) -> Markup {
    let filters = html! {
        @if let Some(s) = status { input type="hidden" name="status" value=(s); }
        @if let Some(e) = event_type { input type="hidden" name="event_type" value=(e); }
    };
    html! {
        div.actions {
            @if paged {
                form method="get" { (filters) button type="submit" { "Newest deliveries" } }
            }
            @if let Some(next) = next {
                form method="get" {
                    (filters)
                    input type="hidden" name="cursor" value=(next);
                    button type="submit" { "Older deliveries" }
                }
            }
        }
    }
}

/// The log's filters that it can apply, and a description of those it cannot (a hand-edited
/// link), which the page says rather than dropping them silently.
fn filters(
    status: Option<String>,
    event_type: Option<String>,
) -> (Option<String>, Option<String>, Vec<String>) {
    let mut ignored = Vec::new();
    let status = status.filter(|s| !s.is_empty()).filter(|s| {
        STATUSES.contains(&s.as_str()) || {
            ignored.push(format!("status '{}'", hookline_core::text::quote(s)));
            false
        }
    });
    let event_type = event_type.filter(|e| !e.is_empty()).filter(|e| {
        EventType::parse(e).is_ok() || {
            ignored.push(format!("event type '{}'", hookline_core::text::quote(e)));
            false
        }
    });
    (status, event_type, ignored)
}

async fn subscription(
    state: &PortalState,
    page: &PortalPage,
    id: &str,
) -> PortalResult<Subscription> {
    Ok(partner::load(&state.app, page.partner()?, id).await?)
}

pub async fn log(
    State(state): State<PortalState>,
    page: PortalPage,
    Ids(id): Ids<String>,
    Query(p): Query<LogParams>,
) -> PortalResult {
    let sub = subscription(&state, &page, &id).await?;
    let (status, event_type, ignored) = filters(p.status, p.event_type);
    let query = LogQuery {
        status: status.iter().cloned().collect(),
        event_type: event_type.clone(),
        cursor: p.cursor.filter(|c| !c.is_empty()),
        per_page: PER_PAGE,
    };
    // Past the first page: a way back to the newest, beside the way on.
    let paged = query.cursor.is_some();
    let result = state.ops.deliveries(page.partner()?, &sub, &query).await?;
    let pages = &result.pagination;
    let next = pages.next_cursor.as_deref().filter(|_| pages.has_more);
    let now = Timestamp::now();
    let path = sub_path(&sub);
    let body = html! {
        p.crumbs { a href="/portal/subscriptions" { "Subscriptions" } " / " a href=(path) { "Subscription" } " / Deliveries" }
        h1 { "Delivery log" }
        p.muted.break { span.mono { (sub.target_url.as_str()) } }
        @if !ignored.is_empty() {
            (notice("error", &format!("Unknown {}: not applied, every one is shown.", ignored.join(" and "))))
        }
        form.card.filters method="get" {
            div.field {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "Any" }
                    @for s in STATUSES { option value=(s) selected[status.as_deref() == Some(s)] { (s) } }
                }
            }
            div.field {
                label for="event_type" { "Event type" }
                select #event_type name="event_type" {
                    option value="" { "Any" }
                    @for e in &sub.subscribed_events {
                        option value=(e.as_str()) selected[event_type.as_deref() == Some(e.as_str())] { (e.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if result.deliveries.is_empty() {
            section.card { (empty_state("No deliveries here",
                "Nothing matches yet. Send a test event from the subscription's page to see one arrive.",
                Some((&path, "Back to the subscription")))) }
        } @else {
            section.card.table-wrap {
                table.stack {
                    thead { tr { th { "Event" } th { "Type" } th { "Status" } th { "Attempts" } th { "Last answer" } th { "When" } } }
                    tbody {
                        @for d in &result.deliveries {
                            tr {
                                td data-label="Event" { a.mono href={(path) "/deliveries/" (d.event_id)} { (d.event_id) } }
                                td data-label="Type" { span.mono { (d.webhook_event_type) } }
                                td data-label="Status" { span class={"badge " (d.status)} { (d.status) } }
                                td data-label="Attempts" { (d.attempt) " / " (d.max_attempts) }
                                td data-label="Last answer" { (outcome(d.http_status_code, d.error_type.as_deref())) }
                                td data-label="When" { (when(&d.timestamp, now)) }
                            }
                        }
                    }
                }
            }
            (pager(&status, &event_type, paged, next))
        }
    };
    Ok(layout::page("Delivery log", Nav::Subscriptions, Some(page.csrf()), body).into_response())
}

fn delivery_body(
    page: &PortalPage,
    sub: &Subscription,
    d: &DeliveryView,
    message: Option<Markup>,
) -> Markup {
    let now = Timestamp::now();
    let path = sub_path(sub);
    let retryable = sub.is_active && !matches!(d.status.as_str(), "pending" | "retrying");
    html! {
        p.crumbs { a href=(path) { "Subscription" } " / " a href={(path) "/deliveries"} { "Deliveries" } " / Delivery" }
        div.pagehead {
            h1.mono.break { (d.event_id) }
            span class={"badge " (d.status)} { (d.status) }
        }
        @if let Some(m) = message { (m) }
        section.card {
            dl.facts {
                dt { "Type" } dd.mono { (d.webhook_event_type) }
                dt { "Created" } dd { (when(&d.created_at, now)) }
                dt { "Attempts" } dd { (d.attempt) " of " (d.max_attempts) }
                @if let Some(next) = &d.next_attempt_at { dt { "Next attempt" } dd { (when(next, now)) } }
            }
            @if retryable {
                form.actions method="post" action={(path) "/deliveries/" (d.event_id) "/retry"} {
                    (csrf_field(page.csrf()))
                    button.primary type="submit" { "Retry now" }
                }
            } @else if !sub.is_active {
                p.muted { "The subscription is inactive: make it active to retry this delivery." }
            }
        }
        h2 { "Attempts" }
        @if d.attempts.is_empty() {
            section.card { (empty_state("No attempts yet", "The first attempt is on its way.", None)) }
        }
        @for a in d.attempts.iter().rev() {
            section.card.attempt {
                div.pagehead {
                    h2 { "Attempt " (a.attempt) }
                    span { (outcome(a.http_status_code, a.error_type.as_deref())) }
                }
                dl.facts {
                    dt { "Started" } dd { (when(&a.started_at, now)) }
                    @if let Some(ms) = a.duration_ms { dt { "Duration" } dd { (ms) " ms" } }
                    @if let Some(m) = &a.error_message { dt { "Error" } dd { (m) } }
                }
                @if let Some(body) = a.response_body.as_deref().filter(|b| !b.is_empty()) {
                    details { summary { "Response body" } (pre(body)) }
                }
            }
        }
    }
}

pub async fn detail(
    State(state): State<PortalState>,
    page: PortalPage,
    Ids((id, event_id)): Ids<(String, String)>,
    Query(flash): Query<Flash>,
) -> PortalResult {
    let sub = subscription(&state, &page, &id).await?;
    let d = state.ops.delivery(page.partner()?, &sub, &event_id).await?;
    let accepted = d.attempts.last().and_then(|a| a.http_status_code);
    let message = match flash.done.as_deref() {
        Some("retried") => Some(notice("ok", "Queued: it is sent again now.")),
        Some("tested") if accepted.is_some_and(|c| (200..300).contains(&c)) => {
            Some(notice("ok", "Your endpoint accepted the test event."))
        }
        Some("tested") => Some(notice(
            "error",
            "Your endpoint did not accept the test event.",
        )),
        _ => None,
    };
    let body = delivery_body(&page, &sub, &d, message);
    Ok(layout::page("Delivery", Nav::Subscriptions, Some(page.csrf()), body).into_response())
}

pub async fn retry(
    State(state): State<PortalState>,
    Ids((id, event_id)): Ids<(String, String)>,
    post: PortalPost,
) -> PortalResult {
    let sub = subscription(&state, &post.page, &id).await?;
    let partner = post.page.partner()?;
    state.ops.retry(partner, &sub, &event_id).await?;
    let to = format!("{}/deliveries/{event_id}?done=retried", sub_path(&sub));
    Ok(Redirect::to(&to).into_response())
}

/// A page with the outcome of an operation, and the way back to the subscription.
fn outcome_page(page: &PortalPage, sub: &Subscription, title: &str, content: Markup) -> Response {
    let body = html! {
        p.crumbs { a href="/portal/subscriptions" { "Subscriptions" } " / " a href=(sub_path(sub)) { "Subscription" } }
        h1 { (title) }
        section.card {
            (content)
            div.actions {
                a.button.primary href=(sub_path(sub)) { "Back to the subscription" }
                a.button href={(sub_path(sub)) "/deliveries"} { "Delivery log" }
            }
        }
    };
    layout::page(title, Nav::Subscriptions, Some(page.csrf()), body).into_response()
}

pub async fn send_test(
    State(state): State<PortalState>,
    Ids(id): Ids<String>,
    request: RequestIdentity,
    post: PortalPost,
) -> PortalResult {
    let sub = subscription(&state, &post.page, &id).await?;
    let event_type = match post.form.text("event_type") {
        Some(name) => {
            Some(EventType::parse(&name).map_err(|e| PortalError::BadRequest(e.to_string()))?)
        }
        None => None,
    };
    let r = state
        .ops
        .send_test(
            post.page.partner()?,
            &sub,
            event_type.as_ref(),
            &request.trace_id,
        )
        .await?;
    // To the test event's delivery, which shows the attempt: a reload does not send another.
    let to = format!("{}/deliveries/{}?done=tested", sub_path(&sub), r.event_id);
    Ok(Redirect::to(&to).into_response())
}

pub async fn rotate_secret(
    State(state): State<PortalState>,
    Ids(id): Ids<String>,
    post: PortalPost,
) -> PortalResult {
    let sub = subscription(&state, &post.page, &id).await?;
    let grace = post
        .form
        .text("grace_period_seconds")
        .unwrap_or_else(|| "86400".into())
        .parse::<u64>()
        .map_err(|_| PortalError::BadRequest("grace period must be a number of seconds".into()))?;
    let r = state
        .ops
        .rotate_secret(post.page.partner()?, &sub, grace)
        .await?;
    let now = Timestamp::now();
    let content = html! {
        (secret_once("signing_secret", "New signing secret", &r.signing_secret))
        @match &r.previous_secret_expires_at {
            Some(at) => p { "The previous secret expires " (when(at, now)) "; until then it stays valid and deliveries carry both signatures." },
            None => p { "The previous secret no longer works." },
        }
    };
    Ok(outcome_page(&post.page, &sub, "Secret rotated", content))
}

pub async fn recover(
    State(state): State<PortalState>,
    Ids(id): Ids<String>,
    post: PortalPost,
) -> PortalResult {
    let sub = subscription(&state, &post.page, &id).await?;
    // `datetime-local` sends `YYYY-MM-DDTHH:MM` without a zone; the form says UTC.
    let since = post.form.text("since").unwrap_or_default();
    let since_rfc = chrono::NaiveDateTime::parse_from_str(&since, "%Y-%m-%dT%H:%M")
        .map(|t| {
            t.and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .map_err(|_| PortalError::BadRequest(format!("'{since}' is not a date and time")))?;
    let r = state
        .ops
        .recover(post.page.partner()?, &sub, &since_rfc, None)
        .await?;
    // To its progress page: a reload there does not start another.
    let to = format!(
        "{}/recoveries/{}?done=started",
        sub_path(&sub),
        r.recovery_id
    );
    Ok(Redirect::to(&to).into_response())
}

/// How far a recovery got: re-queued so far of the failed deliveries in its window.
pub async fn recovery(
    State(state): State<PortalState>,
    page: PortalPage,
    Ids((id, recovery_id)): Ids<(String, String)>,
    Query(flash): Query<Flash>,
) -> PortalResult {
    let sub = subscription(&state, &page, &id).await?;
    let r = state
        .ops
        .recovery(page.partner()?, &sub, &recovery_id)
        .await?;
    let content = html! {
        @if flash.done.as_deref() == Some("started") && r.total == 0 {
            (notice("ok", "Nothing to recover: no delivery of this subscription failed in that window."))
        } @else if flash.done.as_deref() == Some("started") {
            (notice("ok", &format!("Recovery started: {} failed deliveries are being sent again.", r.total)))
            p.muted { "It runs at a bounded pace; the delivery log shows each attempt." }
        }
        dl.facts {
            dt { "Recovery" } dd.mono { (r.recovery_id) }
            dt { "Status" } dd { span class={"badge " (r.status)} { (r.status) } }
            dt { "Re-queued" } dd { (r.queued) " of " (r.total) }
        }
    };
    Ok(outcome_page(&page, &sub, "Recovery", content))
}
