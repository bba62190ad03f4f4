//! The subscription form (create and edit): its fields, and what a posted form asks the
//! partner API's functions for. Validation is theirs; the form only collects.

use hookline_core::{event_type, Subscription};
use maud::{html, Markup};

use super::form::Form;
use crate::api::partner::{CreateSubscriptionRequest, UpdateSubscriptionRequest};

/// What the form shows: a subscription's values, or what was posted (shown again on an error).
pub struct FormValues {
    pub target_url: String,
    pub events: Vec<String>,
    pub phone_numbers: String,
    pub routing_id_header: String,
    pub routing_key_header: String,
    pub is_active: bool,
}

impl FormValues {
    pub fn blank() -> FormValues {
        FormValues {
            target_url: String::new(),
            events: Vec::new(),
            phone_numbers: String::new(),
            routing_id_header: String::new(),
            routing_key_header: String::new(),
            is_active: true,
        }
    }

    pub fn of(sub: &Subscription) -> FormValues {
        FormValues {
            target_url: sub.target_url.as_str().to_owned(),
            events: sub
                .subscribed_events
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect(),
            phone_numbers: sub
                .phone_numbers
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            routing_id_header: sub
                .routing_id_header
                .as_ref()
                .map(|h| h.to_string())
                .unwrap_or_default(),
            routing_key_header: sub
                .routing_key_header
                .as_ref()
                .map(|h| h.to_string())
                .unwrap_or_default(),
            is_active: sub.is_active,
        }
    }

    pub fn posted(form: &Form) -> FormValues {
        FormValues {
            target_url: form.text("target_url").unwrap_or_default(),
            events: form.all("events"),
            phone_numbers: form.get("phone_numbers").unwrap_or_default().to_owned(),
            routing_id_header: form.text("routing_id_header").unwrap_or_default(),
            routing_key_header: form.text("routing_key_header").unwrap_or_default(),
            is_active: form.checked("is_active"),
        }
    }

    /// One number per line (commas and spaces separate too); none means every line.
    fn phones(&self) -> Option<Vec<String>> {
        let list: Vec<String> = self
            .phone_numbers
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        (!list.is_empty()).then_some(list)
    }

    fn header(value: &str) -> Option<String> {
        (!value.is_empty()).then(|| value.to_owned())
    }

    pub fn create_request(&self) -> CreateSubscriptionRequest {
        CreateSubscriptionRequest {
            target_url: self.target_url.clone(),
            subscribed_events: self.events.clone(),
            phone_numbers: self.phones(),
            routing_id_header: Self::header(&self.routing_id_header),
            routing_key_header: Self::header(&self.routing_key_header),
        }
    }

    /// The edit form shows every field, so every field is set (blank clears).
    pub fn update_request(&self) -> UpdateSubscriptionRequest {
        UpdateSubscriptionRequest {
            target_url: Some(self.target_url.clone()),
            subscribed_events: Some(self.events.clone()),
            is_active: Some(self.is_active),
            phone_numbers: Some(self.phones()),
            routing_id_header: Some(Self::header(&self.routing_id_header)),
            routing_key_header: Some(Self::header(&self.routing_key_header)),
        }
    }
}

/// Event types grouped by their family (`message`, `chat`, …), in catalogue order.
pub fn event_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for name in event_type::ALL {
        let family = name.split('.').next().unwrap_or(name);
        match groups.iter_mut().find(|(f, _)| *f == family) {
            Some((_, names)) => names.push(name),
            None => groups.push((family, vec![name])),
        }
    }
    groups
}

/// The form's fields (the caller wraps them in its `<form>` with the CSRF field).
pub fn fields(v: &FormValues, editing: bool) -> Markup {
    html! {
        div.field {
            label for="target_url" { "Endpoint URL" }
            input #target_url type="url" name="target_url" value=(v.target_url) required
                placeholder="https://example.com/webhooks/linq" aria-describedby="target_url_hint";
            p.hint #target_url_hint { "HTTPS. Add ?version=2025-01-01 to receive the older payload format." }
        }
        fieldset {
            legend { "Events" }
            p.hint { "The events this endpoint receives (at least one)." }
            div.checks {
                @for (family, names) in event_groups() {
                    h3 { (family) }
                    @for name in names {
                        label {
                            input type="checkbox" name="events" value=(name) checked[v.events.iter().any(|e| e == name)];
                            span.mono { (name) }
                        }
                    }
                }
            }
        }
        div.field {
            label for="phone_numbers" { "Phone numbers" }
            textarea #phone_numbers name="phone_numbers" rows="3" placeholder="+12025551234"
                aria-describedby="phone_hint" { (v.phone_numbers) }
            p.hint #phone_hint { "One E.164 number per line. Leave empty to receive events of every line." }
        }
        // Open when it holds something: a refused header must be seen to be fixed.
        details open[!v.routing_id_header.is_empty() || !v.routing_key_header.is_empty()] {
            summary { "Delivery affinity (optional)" }
            div.grid2 {
                div.field {
                    label for="routing_id_header" { "Chat id header" }
                    input #routing_id_header type="text" name="routing_id_header" value=(v.routing_id_header) placeholder="Linq-Chat-Id";
                }
                div.field {
                    label for="routing_key_header" { "Routing key header" }
                    input #routing_key_header type="text" name="routing_key_header" value=(v.routing_key_header);
                }
            }
            p.hint { "When your receiver answers with the routing key header, later deliveries for the same chat carry it back." }
        }
        @if editing {
            div.field {
                label.inline {
                    input type="checkbox" name="is_active" value="true" checked[v.is_active];
                    span { "Active — deliver events to this endpoint" }
                }
            }
        }
    }
}
