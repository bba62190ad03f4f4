//! Example `data` for test events (`POST /v3/webhook-subscriptions/{id}/test`): the example
//! payloads of CONTRACT.md §4.4 (webhook version 2026-02-03), which validate against Linq's
//! Python SDK models. Types without a documented `data` (the `call.*` family and the non-seed
//! events) get an account event's common shape when they are account events, else `{}`.

use crate::EventType;

/// The example `data` object of `event_type`, as JSON text.
pub fn example_data(event_type: EventType) -> &'static str {
    match event_type.as_str() {
        "message.received" => {
            r#"{"id":"89e3566e-1d13-49e5-a8ee-48490d5bfeb7","chat":{"id":"8f392755-6865-4b18-880a-227f9d8b458f","is_group":false,"health_status":{"status":"HEALTHY","doc_url":"https://docs.linqapp.com/channel/imessage/guides/chats/chat-health","updated_at":"2026-01-04T05:48:51Z"},"owner_handle":{"id":"6d6c617f-187a-4dcd-a0d5-988347a8c092","handle":"+12025551234","joined_at":"2026-01-04T05:48:51.321469Z","service":"iMessage","is_me":true,"left_at":null,"line_type":"iMessage","status":"active"}},"direction":"inbound","sender_handle":{"id":"e604375a-5913-483a-8278-c631e8f0ffda","handle":"+12025559876","joined_at":"2026-01-04T05:48:51.321469Z","service":"iMessage","is_me":false,"left_at":null,"status":"active"},"parts":[{"type":"text","value":"Hello!"},{"type":"media","id":"f13dda7d-ecac-49eb-b3fe-16fe286abf19","filename":"photo.jpg","mime_type":"image/jpeg","size_bytes":245678,"url":"https://cdn.linqapp.com/attachments/a1b2c3d4/photo.jpg?signature=..."}],"effect":null,"reply_to":null,"service":"iMessage","sent_at":"2026-02-05T19:31:13.074Z","delivered_at":null,"read_at":null}"#
        }
        "message.sent" => {
            r#"{"id":"347d62c2-2170-4754-8d30-c76d0c727d96","chat":{"id":"0c961e93-e7bf-4db2-bf7b-ea06826bcab4","is_group":false,"health_status":{"status":"HEALTHY","doc_url":"https://docs.linqapp.com/channel/imessage/guides/chats/chat-health","updated_at":"2026-01-21T21:59:45Z"},"owner_handle":{"id":"8d79532a-f529-4244-a5cf-d443de051434","handle":"+12025551234","joined_at":"2026-01-21T21:59:45.191571Z","service":"iMessage","is_me":true,"left_at":null,"status":"active"}},"direction":"outbound","sender_handle":{"id":"8d79532a-f529-4244-a5cf-d443de051434","handle":"+12025551234","joined_at":"2026-01-21T21:59:45.191571Z","service":"iMessage","is_me":true,"left_at":null,"status":"active"},"parts":[{"type":"text","value":"Hello from Linq!"}],"effect":null,"idempotency_key":null,"service":"iMessage","preferred_service":null,"sent_at":"2026-02-05T19:52:17.219Z","delivered_at":null,"read_at":null}"#
        }
        "message.delivered" => {
            r#"{"id":"347d62c2-2170-4754-8d30-c76d0c727d96","chat":{"id":"0c961e93-e7bf-4db2-bf7b-ea06826bcab4","is_group":false,"health_status":{"status":"HEALTHY","doc_url":"https://docs.linqapp.com/channel/imessage/guides/chats/chat-health","updated_at":"2026-01-21T21:59:45Z"},"owner_handle":{"id":"8d79532a-f529-4244-a5cf-d443de051434","handle":"+12025551234","joined_at":"2026-01-21T21:59:45.191571Z","service":"iMessage","is_me":true,"left_at":null,"status":"active"}},"direction":"outbound","sender_handle":{"id":"8d79532a-f529-4244-a5cf-d443de051434","handle":"+12025551234","joined_at":"2026-01-21T21:59:45.191571Z","service":"iMessage","is_me":true,"left_at":null,"status":"active"},"parts":[{"type":"text","value":"Hello from Linq!"}],"effect":null,"idempotency_key":null,"service":"iMessage","preferred_service":null,"sent_at":"2026-02-05T19:52:17.219Z","delivered_at":"2026-02-05T19:52:22.291Z","read_at":null}"#
        }
        "message.read" => {
            r#"{"id":"347d62c2-2170-4754-8d30-c76d0c727d96","chat":{"id":"0c961e93-e7bf-4db2-bf7b-ea06826bcab4","is_group":false,"health_status":{"status":"HEALTHY","doc_url":"https://docs.linqapp.com/channel/imessage/guides/chats/chat-health","updated_at":"2026-01-21T21:59:45Z"},"owner_handle":{"id":"8d79532a-f529-4244-a5cf-d443de051434","handle":"+12025551234","joined_at":"2026-01-21T21:59:45.191571Z","service":"iMessage","is_me":true,"left_at":null,"status":"active"}},"direction":"outbound","sender_handle":{"id":"8d79532a-f529-4244-a5cf-d443de051434","handle":"+12025551234","joined_at":"2026-01-21T21:59:45.191571Z","service":"iMessage","is_me":true,"left_at":null,"status":"active"},"parts":[{"type":"text","value":"Hello from Linq!"}],"effect":null,"idempotency_key":null,"service":"iMessage","preferred_service":null,"sent_at":"2026-02-05T19:52:17.219Z","delivered_at":"2026-02-05T19:52:22.291Z","read_at":"2026-02-05T19:13:58.177Z"}"#
        }
        "message.failed" => {
            r#"{"code":4001,"failed_at":"2025-11-23T17:35:00Z","chat_id":"550e8400-e29b-41d4-a716-446655440000","message_id":"550e8400-e29b-41d4-a716-446655440001","reason":"Request expired before being processed","detail_code":1203,"service":"iMessage","preferred_service":"auto"}"#
        }
        "message.edited" => {
            r#"{"id":"347d62c2-2170-4754-8d30-c76d0c727d96","chat":{"id":"0c961e93-e7bf-4db2-bf7b-ea06826bcab4","is_group":false,"health_status":{"status":"HEALTHY","doc_url":"https://docs.linqapp.com/channel/imessage/guides/chats/chat-health","updated_at":"2026-01-21T21:59:45Z"},"owner_handle":{"id":"8d79532a-f529-4244-a5cf-d443de051434","handle":"+12025551234","joined_at":"2026-01-21T21:59:45.191571Z","service":"iMessage","is_me":true}},"direction":"outbound","edited_at":"2026-02-05T19:55:00Z","part":{"index":0,"text":"Hello from Linq (edited)"},"sender_handle":{"id":"8d79532a-f529-4244-a5cf-d443de051434","handle":"+12025551234","joined_at":"2026-01-21T21:59:45.191571Z","service":"iMessage","is_me":true}}"#
        }
        "reaction.added" => {
            r#"{"is_from_me":false,"reaction_type":"love","chat_id":"550e8400-e29b-41d4-a716-446655440000","message_id":"550e8400-e29b-41d4-a716-446655440001","part_index":0,"custom_emoji":null,"from":"+14155559876","from_handle":{"id":"550e8400-e29b-41d4-a716-446655440011","handle":"+14155559876","joined_at":"2025-11-23T17:30:00.000Z","service":"iMessage","is_me":false,"left_at":null,"status":"active"},"reacted_at":"2025-11-23T17:35:00Z","reaction_id":"7c1e0b1e-2f7e-4a57-9d7e-0a6f8b4f9b21","service":"iMessage","sticker":null}"#
        }
        "reaction.removed" => {
            r#"{"is_from_me":false,"reaction_type":"love","chat_id":"550e8400-e29b-41d4-a716-446655440000","message_id":"550e8400-e29b-41d4-a716-446655440001","part_index":0,"custom_emoji":null,"from":"+14155559876","from_handle":{"id":"550e8400-e29b-41d4-a716-446655440011","handle":"+14155559876","joined_at":"2025-11-23T17:30:00.000Z","service":"iMessage","is_me":false,"left_at":null,"status":"active"},"reacted_at":"2025-11-23T17:35:00Z","reaction_id":"7c1e0b1e-2f7e-4a57-9d7e-0a6f8b4f9b21","service":"iMessage","sticker":null}"#
        }
        "participant.added" => {
            r#"{"handle":"+14155550123","added_at":"2026-02-05T20:00:00Z","chat_id":"a1f0c3d2-1111-4e5b-9c2d-3e4f5a6b7c8d","participant":{"id":"1b2c3d4e-0000-4a4a-8b8b-9c9c9c9c9c9c","handle":"+14155550123","joined_at":"2026-02-05T20:00:00Z","service":"iMessage","is_me":false,"status":"active"}}"#
        }
        "participant.removed" => {
            r#"{"handle":"+14155550123","removed_at":"2026-02-05T20:00:00Z","chat_id":"a1f0c3d2-1111-4e5b-9c2d-3e4f5a6b7c8d","participant":{"id":"1b2c3d4e-0000-4a4a-8b8b-9c9c9c9c9c9c","handle":"+14155550123","joined_at":"2026-02-05T20:00:00Z","service":"iMessage","is_me":false,"left_at":"2026-02-05T20:00:00Z","status":"removed"}}"#
        }
        "chat.created" => {
            r#"{"id":"550e8400-e29b-41d4-a716-446655440000","created_at":"2025-11-23T17:30:00Z","updated_at":"2025-11-23T17:30:00Z","display_name":"+14155551234, +14155559876","is_group":false,"service":"iMessage","health_status":{"status":"HEALTHY","doc_url":"https://docs.linqapp.com/channel/imessage/guides/chats/chat-health","updated_at":"2025-11-23T17:30:00Z"},"handles":[{"id":"550e8400-e29b-41d4-a716-446655440010","handle":"+14155551234","joined_at":"2025-11-23T17:30:00Z","service":"iMessage","is_me":true,"status":"active"},{"id":"550e8400-e29b-41d4-a716-446655440011","handle":"+14155559876","joined_at":"2025-11-23T17:30:00Z","service":"iMessage","is_me":false,"status":"active"}]}"#
        }
        "chat.group_name_updated" => {
            r#"{"chat_id":"550e8400-e29b-41d4-a716-446655440000","updated_at":"2026-02-05T20:10:00Z","old_value":"Weekend plans","new_value":"Trip to Tahoe","changed_by_handle":{"id":"550e8400-e29b-41d4-a716-446655440011","handle":"+14155559876","joined_at":"2025-11-23T17:30:00Z","service":"iMessage","is_me":false}}"#
        }
        "chat.group_icon_updated" => {
            r#"{"chat_id":"550e8400-e29b-41d4-a716-446655440000","updated_at":"2026-02-05T20:10:00Z","old_value":null,"new_value":"https://cdn.linqapp.com/group-icons/550e8400/icon.png","changed_by_handle":{"id":"550e8400-e29b-41d4-a716-446655440011","handle":"+14155559876","joined_at":"2025-11-23T17:30:00Z","service":"iMessage","is_me":false}}"#
        }
        "chat.group_name_update_failed" => {
            r#"{"chat_id":"550e8400-e29b-41d4-a716-446655440000","error_code":4001,"failed_at":"2026-02-05T20:10:05Z"}"#
        }
        "chat.group_icon_update_failed" => {
            r#"{"chat_id":"550e8400-e29b-41d4-a716-446655440000","error_code":4001,"failed_at":"2026-02-05T20:10:05Z"}"#
        }
        "chat.typing_indicator.started" => {
            r#"{"chat_id":"550e8400-e29b-41d4-a716-446655440000","actor_handle":{"id":"550e8400-e29b-41d4-a716-446655440011","handle":"+14155559876","joined_at":"2025-11-23T17:30:00Z","service":"iMessage","is_me":false}}"#
        }
        "chat.typing_indicator.stopped" => {
            r#"{"chat_id":"550e8400-e29b-41d4-a716-446655440000","actor_handle":{"id":"550e8400-e29b-41d4-a716-446655440011","handle":"+14155559876","joined_at":"2025-11-23T17:30:00Z","service":"iMessage","is_me":false}}"#
        }
        "phone_number.status_updated" => {
            r#"{"phone_number":"+12025551234","changed_at":"2026-03-01T12:00:00Z","previous_status":"ACTIVE","new_status":"FLAGGED","previous_reputation":"HEALTHY","new_reputation":"AT_RISK","previous_health_status":"HEALTHY","new_health_status":"AT_RISK"}"#
        }
        _ if event_type.is_account_event() => ACCOUNT_EVENT,
        _ => "{}",
    }
}

/// CONTRACT.md §4.6's common account-event `data`, for a test.
const ACCOUNT_EVENT: &str = r#"{"summary":"Test event","occurred_at":"2026-02-05T20:00:00Z","actor":{"type":"system"},"origin":"linq"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_a_json_object() {
        for t in EventType::all() {
            let v: serde_json::Value = serde_json::from_str(example_data(t)).unwrap();
            assert!(v.is_object(), "{}", t.as_str());
        }
        let received = EventType::parse("message.received").unwrap();
        assert!(example_data(received).contains("\"direction\":\"inbound\""));
    }
}
