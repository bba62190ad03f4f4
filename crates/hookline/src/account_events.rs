//! Account events (CONTRACT.md §4.6): a change to a partner's webhook subscriptions is itself an
//! event, delivered to that partner's subscriptions like any other. As Linq documents it, "a
//! subscription to `webhook_subscription.*` events receives an event about the subscription that
//! was just created or edited".

use hookline_core::{EventId, EventTime, EventType, RoutingHeader, Timestamp, TraceId};
use serde::Serialize;
use serde_json::{json, Value};

use crate::store::{NewEvent, Subscription};

/// The events a partner-API change produces: `before` is `None` for a creation, `after` is
/// `None` for a deletion. An update yields one event per aspect that changed.
pub fn for_change(before: Option<&Subscription>, after: Option<&Subscription>) -> Vec<NewEvent> {
    let occurred_at = EventTime::at(Timestamp::now());
    let event = |(name, summary): Kind, sub: &Subscription, change: Option<Change>| {
        account_event(name, summary, &occurred_at, BY_API, sub, change)
    };
    match (before, after) {
        (None, Some(new)) => vec![event(CREATED, new, None)],
        (Some(old), None) => vec![event(DELETED, old, None)],
        (Some(old), Some(new)) => changes(old, new)
            .into_iter()
            .map(|(kind, change)| event(kind, new, Some(change)))
            .collect(),
        (None, None) => Vec::new(),
    }
}

/// An account event's `(type, summary)`.
type Kind = (&'static str, &'static str);
const CREATED: Kind = (
    "webhook_subscription.created",
    "Webhook subscription created",
);
const DELETED: Kind = (
    "webhook_subscription.deleted",
    "Webhook subscription deleted",
);

/// Each aspect of an update that changed, in the order the events are published.
fn changes(old: &Subscription, new: &Subscription) -> Vec<(Kind, Change)> {
    let mut changes = Vec::new();
    if old.target_url.as_str() != new.target_url.as_str() {
        changes.push((
            (
                "webhook_subscription.target_url_changed",
                "Webhook subscription target URL changed",
            ),
            Change::of(old.target_url.as_str(), new.target_url.as_str()),
        ));
    }
    if old.is_active != new.is_active {
        let kind = match new.is_active {
            true => (
                "webhook_subscription.enabled",
                "Webhook subscription enabled",
            ),
            false => (
                "webhook_subscription.disabled",
                "Webhook subscription disabled",
            ),
        };
        changes.push((kind, Change::of(old.is_active, new.is_active)));
    }
    if old.subscribed_events != new.subscribed_events {
        changes.push((
            (
                "webhook_subscription.events.updated",
                "Webhook subscription events updated",
            ),
            Change::of(event_names(old), event_names(new)),
        ));
    }
    if old.phone_numbers != new.phone_numbers {
        changes.push((
            (
                "webhook_subscription.phone_numbers.updated",
                "Webhook subscription phone numbers updated",
            ),
            Change::of(phones(old), phones(new)),
        ));
    }
    changes.extend(routing_change(old, new));
    changes
}

/// Affinity is on while `routing_key_header` is set; `routing_id_header` alone changes nothing
/// a receiver sees, so a change to it while affinity is off is not announced.
fn routing_change(old: &Subscription, new: &Subscription) -> Option<(Kind, Change)> {
    let routing = |s: &Subscription| {
        let name = |h: &Option<RoutingHeader>| h.as_ref().map(|h| h.as_str().to_owned());
        json!({"routing_id_header": name(&s.routing_id_header),
               "routing_key_header": name(&s.routing_key_header)})
    };
    let affinity_on = |s: &Subscription| s.routing_key_header.is_some();
    if routing(old) == routing(new) || !(affinity_on(old) || affinity_on(new)) {
        return None;
    }
    let kind = match affinity_on(new) {
        true => (
            "webhook_subscription.routing_headers_set",
            "Webhook subscription routing headers set",
        ),
        false => (
            "webhook_subscription.routing_headers_cleared",
            "Webhook subscription routing headers cleared",
        ),
    };
    Some((kind, Change::of(routing(old), routing(new))))
}

/// `webhook_subscription.disabled` for a subscription hookline itself deactivated because its
/// endpoint answered `410 Gone`: a change made by the platform (`actor.type` `system`, `origin`
/// `linq`, the values Linq's SDK models give such changes).
pub fn disabled_by_receiver(sub: &Subscription) -> Vec<NewEvent> {
    disabled_by_platform(
        sub,
        "Webhook subscription disabled: its endpoint answered 410 Gone",
    )
}

/// `webhook_subscription.disabled` for a deactivation hookline made itself (410, a dead
/// endpoint), with the reason in `summary`.
pub fn disabled_by_platform(sub: &Subscription, summary: &str) -> Vec<NewEvent> {
    vec![account_event(
        "webhook_subscription.disabled",
        summary,
        &EventTime::at(Timestamp::now()),
        BY_PLATFORM,
        sub,
        Some(Change::of(true, false)),
    )]
}

/// Who made a change: `(actor.type, origin)`.
type Source = (&'static str, &'static str);
const BY_API: Source = ("api", "api");
const BY_PLATFORM: Source = ("system", "linq");

#[derive(Serialize)]
struct Change {
    from: Value,
    to: Value,
}

impl Change {
    fn of(from: impl Into<Value>, to: impl Into<Value>) -> Change {
        Change {
            from: from.into(),
            to: to.into(),
        }
    }
}

/// The common `data` of account events, in the field order of Linq's SDK models.
#[derive(Serialize)]
struct AccountEventData<'a> {
    summary: &'a str,
    occurred_at: &'a str,
    actor: Actor,
    origin: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<Change>,
    webhook_subscription: SubscriptionRef<'a>,
}

#[derive(Serialize)]
struct Actor {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct SubscriptionRef<'a> {
    id: &'a str,
    target_url: &'a str,
    events: Vec<&'static str>,
}

fn event_names(s: &Subscription) -> Vec<&'static str> {
    s.subscribed_events.iter().map(EventType::as_str).collect()
}

/// `null` when the subscription takes every line, as the API shows it.
fn phones(s: &Subscription) -> Value {
    if s.phone_numbers.is_empty() {
        Value::Null
    } else {
        s.phone_numbers.iter().map(|p| p.as_str()).collect()
    }
}

fn account_event(
    name: &str,
    summary: &str,
    occurred_at: &EventTime,
    (actor, origin): Source,
    sub: &Subscription,
    change: Option<Change>,
) -> NewEvent {
    let data = AccountEventData {
        summary,
        occurred_at: occurred_at.as_str(),
        actor: Actor { kind: actor },
        origin,
        change,
        webhook_subscription: SubscriptionRef {
            id: sub.id.as_str(),
            target_url: sub.target_url.as_str(),
            events: event_names(sub),
        },
    };
    NewEvent {
        partner_id: sub.partner_id.clone(),
        event_id: EventId::generate(),
        event_type: EventType::parse(name).expect("account event names are known event types"),
        phone_number: None,
        created_at: occurred_at.clone(),
        trace_id: TraceId::generate(),
        data: serde_json::to_string(&data).expect("account event data serialises"),
        data_v2025: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::TargetUrl;

    fn sub() -> Subscription {
        Subscription {
            id: hookline_core::SubscriptionId::from_stored("sub-1"),
            partner_id: hookline_core::PartnerId::from_stored("p"),
            target_url: TargetUrl::parse("https://example.com/a", false).unwrap(),
            subscribed_events: vec![EventType::parse("message.sent").unwrap()],
            phone_numbers: Vec::new(),
            is_active: true,
            routing_id_header: None,
            routing_key_header: None,
            created_at: Timestamp::from_micros(1),
            updated_at: Timestamp::from_micros(1),
        }
    }

    fn types(events: &[NewEvent]) -> Vec<&str> {
        events.iter().map(|e| e.event_type.as_str()).collect()
    }

    #[test]
    fn one_event_per_aspect_that_changed() {
        let old = sub();
        let mut new = sub();
        assert!(for_change(Some(&old), Some(&new)).is_empty());
        new.is_active = false;
        new.target_url = TargetUrl::parse("https://example.com/b", false).unwrap();
        new.routing_key_header = Some(hookline_core::RoutingHeader::from_stored("X-Route"));
        let events = for_change(Some(&old), Some(&new));
        assert_eq!(
            types(&events),
            [
                "webhook_subscription.target_url_changed",
                "webhook_subscription.disabled",
                "webhook_subscription.routing_headers_set"
            ]
        );
        let data: Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(
            data["change"],
            json!({"from": "https://example.com/a", "to": "https://example.com/b"})
        );
        assert_eq!(data["actor"], json!({"type": "api"}));
        assert_eq!(data["webhook_subscription"]["id"], json!("sub-1"));
        assert_eq!(
            types(&for_change(Some(&new), Some(&old)))[2],
            "webhook_subscription.routing_headers_cleared"
        );
    }

    #[test]
    fn creation_and_deletion_have_no_change() {
        let s = sub();
        let created = for_change(None, Some(&s));
        assert_eq!(types(&created), ["webhook_subscription.created"]);
        let data: Value = serde_json::from_str(&created[0].data).unwrap();
        assert!(data.get("change").is_none());
        assert_eq!(
            types(&for_change(Some(&s), None)),
            ["webhook_subscription.deleted"]
        );
    }
}
