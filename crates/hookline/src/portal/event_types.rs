//! The event-type catalogue: every type a subscription can receive, by family, with its
//! example payload where the catalogue has one.

use axum::extract::State;
use axum::response::IntoResponse;
use hookline_core::EventType;
use maud::html;

use super::errors::PortalResult;
use super::layout::{self, pre, Nav};
use super::session::PortalPage;
use super::subscription_form::event_groups;
use super::PortalState;
use crate::api::partner::EVENTS_DOC_URL;

pub async fn list(State(state): State<PortalState>, page: PortalPage) -> PortalResult {
    page.partner()?;
    let groups = event_groups();
    let body = html! {
        h1 { "Event types" }
        p.muted {
            "A subscription receives the types it lists. Payload fields are described in "
            a href=(EVENTS_DOC_URL) rel="noreferrer" { "Linq's event reference" } "."
        }
        @for (family, names) in &groups {
            section.card {
                h2 { (family) }
                ul.plain {
                    @for name in names {
                        li {
                            span.mono { (name) }
                            @if let Some(example) = EventType::parse(name).ok().and_then(|e| state.ops.example_payload(&e)) {
                                details { summary { "Example payload" } (pre(&example)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Event types", Nav::EventTypes, Some(page.csrf()), body).into_response())
}
