//! The partner and operator APIs over real HTTP: every endpoint, status and error code.

mod admin_deliveries;
mod auth;
mod deliveries;
mod guard;
mod hygiene;
mod input;
mod publish;
mod server;
mod subscriptions;
mod validation;
mod webhook_logs;

use serde_json::{json, Value};

/// A subscription to two event types at `url`, no phone filter.
fn sub_body(url: &str) -> Value {
    json!({"target_url": url, "subscribed_events": ["message.sent", "message.received"]})
}
