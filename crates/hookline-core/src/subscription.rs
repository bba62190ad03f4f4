//! The subscription aggregate as the domain sees it, and the fan-out rule that decides which
//! subscriptions receive an event.

use crate::{
    EventType, PartnerId, PhoneNumber, RoutingHeader, SubscriptionId, TargetUrl, Timestamp,
    WebhookVersion,
};

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub partner_id: PartnerId,
    pub target_url: TargetUrl,
    pub subscribed_events: Vec<EventType>,
    /// Empty means every line.
    pub phone_numbers: Vec<PhoneNumber>,
    pub is_active: bool,
    pub routing_id_header: Option<RoutingHeader>,
    pub routing_key_header: Option<RoutingHeader>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Subscription {
    /// Whether this subscription receives an event of `event_type` from line `phone`
    /// (DESIGN.md's filter rule). The phone-number filter selects lines, so account events
    /// (about the whole account) pass it; `message.edited` exists only in the 2026-02-03 format.
    pub fn matches(&self, event_type: EventType, phone: Option<&PhoneNumber>) -> bool {
        self.is_active
            && self.subscribed_events.contains(&event_type)
            && (self.phone_numbers.is_empty()
                || event_type.is_account_event()
                || phone.is_some_and(|p| self.phone_numbers.contains(p)))
            && !(event_type.is_message_edited()
                && self.target_url.webhook_version() != WebhookVersion::V2026_02_03)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(url: &str, events: &[&str], phones: &[&str]) -> Subscription {
        Subscription {
            id: SubscriptionId::generate(),
            partner_id: PartnerId::from_stored("p"),
            target_url: TargetUrl::parse(url, false).unwrap(),
            subscribed_events: crate::event_type::parse_list(events).unwrap(),
            phone_numbers: crate::phone::parse_list(phones).unwrap(),
            is_active: true,
            routing_id_header: None,
            routing_key_header: None,
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::EPOCH,
        }
    }

    #[test]
    fn fan_out_rule() {
        let sent = EventType::parse("message.sent").unwrap();
        let edited = EventType::parse("message.edited").unwrap();
        let line = PhoneNumber::parse("+14155550100").unwrap();
        let other = PhoneNumber::parse("+14155550199").unwrap();
        let all_lines = sub(
            "https://example.com/a",
            &["message.sent", "message.edited"],
            &[],
        );
        assert!(all_lines.matches(sent, Some(&line)));
        assert!(all_lines.matches(sent, None));
        let one_line = sub(
            "https://example.com/a",
            &["message.sent"],
            &["+14155550100"],
        );
        assert!(one_line.matches(sent, Some(&line)));
        assert!(!one_line.matches(sent, Some(&other)));
        assert!(!one_line.matches(sent, None));
        assert!(!one_line.matches(edited, Some(&line)), "not subscribed");
        let old = sub(
            "https://example.com/a?version=2025-01-01",
            &["message.edited"],
            &[],
        );
        assert!(
            !old.matches(edited, None),
            "message.edited is 2026-02-03 only"
        );
        let mut inactive = all_lines.clone();
        inactive.is_active = false;
        assert!(!inactive.matches(sent, None));
    }
}
