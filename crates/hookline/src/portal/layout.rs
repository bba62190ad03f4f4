//! The page shell (header, navigation, sign-out) and the small pieces every page uses:
//! relative times with the exact time on hover, notices, empty states, the CSRF field.

use axum::response::Html;
use hookline_core::Timestamp;
use maud::{html, Markup, DOCTYPE};

use super::session::CSRF_FIELD;

/// Which navigation a page shows, and which entry is the current one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// Signed-out and error pages.
    None,
    Subscriptions,
    EventTypes,
    Partners,
    Health,
}

impl Nav {
    fn links(self) -> &'static [(&'static str, &'static str, Nav)] {
        match self {
            Nav::None => &[],
            Nav::Subscriptions | Nav::EventTypes => &[
                ("/portal/subscriptions", "Subscriptions", Nav::Subscriptions),
                ("/portal/event-types", "Event types", Nav::EventTypes),
            ],
            Nav::Partners | Nav::Health => &[
                ("/portal/admin/partners", "Partners", Nav::Partners),
                ("/portal/admin/health", "Health", Nav::Health),
            ],
        }
    }
}

/// A whole page. `csrf` is the session's token when signed in (it shows the sign-out button).
pub fn page(title: &str, nav: Nav, csrf: Option<&str>, body: Markup) -> Page {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · hookline" }
                link rel="stylesheet" href="/portal/assets/portal.css";
                link rel="icon" href="/portal/assets/icon.svg" type="image/svg+xml";
                script src="/portal/assets/portal.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/portal" { span.logo aria-hidden="true" { "⟶" } " hookline" }
                    @if !nav.links().is_empty() {
                        nav aria-label="Main" {
                            ul {
                                @for (href, label, which) in nav.links() {
                                    li {
                                        a href=(href) aria-current=[(*which == nav).then_some("page")] { (label) }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(token) = csrf {
                        form.signout method="post" action="/portal/sign-out" {
                            (csrf_field(token))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    };
    Html(markup.into_string())
}

/// A rendered page.
pub type Page = Html<String>;

pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(token); }
}

/// `<time>` showing how long ago (or how far ahead) `at` is, the exact UTC time on hover.
pub fn time(at: Timestamp, now: Timestamp) -> Markup {
    html! {
        time datetime=(at.rfc3339()) title=(exact(at)) { (relative(at, now)) }
    }
}

pub fn exact(at: Timestamp) -> String {
    chrono::DateTime::from_timestamp_micros(at.as_micros())
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| at.rfc3339())
}

pub fn relative(at: Timestamp, now: Timestamp) -> String {
    let secs = (now.as_micros() - at.as_micros()) / 1_000_000;
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    if n < 45 {
        return if future { "in a moment" } else { "just now" }.into();
    }
    let (value, unit) = match n {
        0..=5_399 => (n.div_ceil(60).max(1), "minute"),
        5_400..=129_599 => ((n + 1_800) / 3_600, "hour"),
        129_600..=3_887_999 => ((n + 43_200) / 86_400, "day"),
        _ => ((n + 1_296_000) / 2_592_000, "month"),
    };
    let plural = if value == 1 { "" } else { "s" };
    if future {
        format!("in {value} {unit}{plural}")
    } else {
        format!("{value} {unit}{plural} ago")
    }
}

/// A status message at the top of a page (`role=status`, read out by screen readers).
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { div class={"notice " (kind)} role=(if kind == "error" { "alert" } else { "status" }) { (text) } }
}

/// What an empty list says: what it is for and what to do next.
pub fn empty_state(title: &str, text: &str, action: Option<(&str, &str)>) -> Markup {
    html! {
        div.empty {
            h2 { (title) }
            p { (text) }
            @if let Some((href, label)) = action {
                p { a.button.primary href=(href) { (label) } }
            }
        }
    }
}

/// A secret shown once, with a copy button (the portal's script; without it, select the text).
pub fn secret_once(id: &str, label: &str, value: &str) -> Markup {
    html! {
        div.secret {
            label for=(id) { (label) }
            div.copyrow {
                input #(id) type="text" readonly value=(value) spellcheck="false" autocomplete="off";
                button.copy type="button" data-copy=(id) { "Copy" }
            }
            p.hint { "Store it now: it is shown only this once." }
        }
    }
}

/// Text the browser must not interpret, shown as preformatted (JSON bodies, payloads).
pub fn pre(text: &str) -> Markup {
    html! { pre.code { code { (text) } } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = Timestamp::from_micros(10_000_000_000_000);
        let ago = |s: i64| relative(Timestamp::from_micros(now.as_micros() - s * 1_000_000), now);
        assert_eq!(ago(3), "just now");
        assert_eq!(ago(-3), "in a moment");
        assert_eq!(ago(60), "1 minute ago");
        assert_eq!(ago(61 * 5), "6 minutes ago");
        assert_eq!(ago(3 * 3600), "3 hours ago");
        assert_eq!(ago(-2 * 86_400), "in 2 days");
        assert_eq!(ago(90 * 86_400), "3 months ago");
    }
}
