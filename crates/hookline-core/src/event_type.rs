//! The webhook event types a subscription may name.
//!
//! The accepted set is the union of Linq's seed spec (25 names) and the newest SDK
//! (linq-python 0.65.0, 75 names), in the SDK's order so `/v3/webhook-events` matches it.

use std::fmt;

/// Every event type hookline accepts, in the order linq-python 0.65.0 lists them.
pub const ALL: &[&str] = &[
    "message.sent",
    "message.received",
    "message.read",
    "message.delivered",
    "message.failed",
    "message.edited",
    "reaction.added",
    "reaction.removed",
    "poll.received",
    "poll.failed",
    "poll.sent",
    "poll.delivered",
    "poll.read",
    "poll.updated",
    "poll.vote.added",
    "poll.vote.removed",
    "poll.reaction.added",
    "participant.added",
    "participant.removed",
    "chat.created",
    "chat.group_name_updated",
    "chat.group_icon_updated",
    "chat.group_name_update_failed",
    "chat.group_icon_update_failed",
    "chat.background_updated",
    "chat.background_update_failed",
    "chat.typing_indicator.started",
    "chat.typing_indicator.stopped",
    "phone_number.status_updated",
    "phone_number.assigned",
    "phone_number.released",
    "contact_card.received",
    "call.initiated",
    "call.ringing",
    "call.answered",
    "call.ended",
    "call.failed",
    "call.declined",
    "call.no_answer",
    "location.sharing.started",
    "location.sharing.stopped",
    "payment.succeeded",
    "payment.canceled",
    "payment.expired",
    "payment.declined",
    "payment.authorized",
    "connection.created",
    "connection.revoked",
    "zero_day_retention.updated",
    "phone_number.forwarding_updated",
    "environment.line_moved",
    "contact_card.created",
    "contact_card.updated",
    "contact_card.deleted",
    "api_token.created",
    "api_token.renamed",
    "api_token.expiry_scheduled",
    "api_token.expired",
    "api_token.activated",
    "api_token.deleted",
    "environment.created",
    "environment.renamed",
    "environment.deleted",
    "webhook_subscription.created",
    "webhook_subscription.deleted",
    "webhook_subscription.target_url_changed",
    "webhook_subscription.enabled",
    "webhook_subscription.disabled",
    "webhook_subscription.events.updated",
    "webhook_subscription.phone_numbers.updated",
    "webhook_subscription.routing_headers_set",
    "webhook_subscription.routing_headers_cleared",
    "team_member.added",
    "team_member.signed_in",
    "team_member.signed_out",
];

/// A known event type. Holds a `'static` name from [`ALL`], so copies are free.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(&'static str);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type '{}'", crate::text::quote(.0))]
pub struct UnknownEventType(pub String);

impl EventType {
    pub fn parse(name: &str) -> Result<Self, UnknownEventType> {
        ALL.iter()
            .find(|known| **known == name)
            .map(|known| EventType(known))
            .ok_or_else(|| UnknownEventType(name.to_owned()))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// Message events are the only ones whose payload differs between webhook versions.
    pub fn is_message_edited(&self) -> bool {
        self.0 == "message.edited"
    }

    /// Account events (CONTRACT.md §4.6) concern the whole account, not one line: a
    /// subscription's phone-number filter does not apply to them.
    pub fn is_account_event(&self) -> bool {
        const FAMILIES: [&str; 4] = [
            "api_token.",
            "environment.",
            "webhook_subscription.",
            "team_member.",
        ];
        const SINGLES: [&str; 5] = [
            "contact_card.created",
            "contact_card.updated",
            "contact_card.deleted",
            "zero_day_retention.updated",
            "phone_number.forwarding_updated",
        ];
        FAMILIES.iter().any(|f| self.0.starts_with(f)) || SINGLES.contains(&self.0)
    }

    pub fn all() -> impl Iterator<Item = EventType> {
        ALL.iter().map(|name| EventType(name))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventType({})", self.0)
    }
}

/// Parses a list of names, keeping first-seen order and dropping repeats.
/// Every unknown name is reported, not only the first.
pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<EventType>, Vec<String>> {
    let mut parsed: Vec<EventType> = Vec::with_capacity(names.len());
    let mut unknown = Vec::new();
    for name in names {
        match EventType::parse(name.as_ref()) {
            Ok(t) if !parsed.contains(&t) => parsed.push(t),
            Ok(_) => {}
            Err(e) => unknown.push(e.0),
        }
    }
    if unknown.is_empty() {
        Ok(parsed)
    } else {
        Err(unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_all_75_sdk_names_and_the_seed_call_events() {
        assert_eq!(ALL.len(), 75);
        for name in [
            "message.edited",
            "call.no_answer",
            "chat.typing_indicator.stopped",
        ] {
            assert_eq!(EventType::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn account_events_are_the_contract_families() {
        let account: Vec<&str> = EventType::all()
            .filter(EventType::is_account_event)
            .map(|e| e.as_str())
            .collect();
        assert_eq!(account.len(), 27, "{account:?}");
        assert!(account.contains(&"webhook_subscription.routing_headers_cleared"));
        assert!(account.contains(&"environment.line_moved"));
        for line_event in [
            "message.received",
            "contact_card.received",
            "phone_number.assigned",
        ] {
            assert!(!EventType::parse(line_event).unwrap().is_account_event());
        }
    }

    #[test]
    fn rejects_unknown_and_near_misses() {
        for bad in [
            "",
            "message",
            "Message.Sent",
            "message.sent ",
            "bogus.event",
        ] {
            assert!(EventType::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parse_list_dedupes_and_reports_every_unknown() {
        let ok = parse_list(&["message.sent", "message.read", "message.sent"]).unwrap();
        assert_eq!(ok.len(), 2);
        let err = parse_list(&["a.b", "message.sent", "c.d"]).unwrap_err();
        assert_eq!(err, vec!["a.b".to_owned(), "c.d".to_owned()]);
    }
}
