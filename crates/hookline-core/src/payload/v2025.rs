//! The 2025-01-01 message format (CONTRACT.md §4.2 and §4.5), derived from a 2026-02-03 `data`.
//!
//! Only `message.sent`, `.received`, `.read` and `.delivered` differ between the versions; every
//! other type is delivered as published. Sub-objects (handles, parts, effect, reply_to) are
//! copied byte for byte: the conversion reads the fields it moves as raw JSON and writes the
//! 2025 object in Linq's key order, so nothing is re-serialised that need not be.
//!
//! Field by field (README "Webhook versions" says the same for readers):
//! `chat.id` → `chat_id`; `chat.is_group` → `is_group`; `direction == "outbound"` → `is_from_me`;
//! `sender_handle.handle` → `from`; `sender_handle` → `from_handle`; inbound: `chat.owner_handle`
//! → `recipient_handle` and `sent_at` → `received_at`, outbound: both null; `idempotency_key`,
//! `service`, `preferred_service` as they are; `id`, `parts`, `sent_at`, `delivered_at`,
//! `read_at` (+ `effect`, `reply_to` when set) → `message.*`, with `is_delivered` / `is_read`
//! true when the time is set; `message.read` / `.delivered` add `message_id` and `read_at` /
//! `delivered_at` at the top. Not derivable, filled as Linq's example shows or from the
//! nearest fact: `recipient_phone` null (as in every Linq example), `message.created_at` =
//! `sent_at`, `message.updated_at` = the latest of `sent_at`, `delivered_at`, `read_at`.
//! Dropped (no 2025 field): `chat.health_status`, `reconciled_at`, `zero_retention`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::event_type::EventType;

/// The event types whose `data` differs in 2025-01-01.
pub const CONVERTED: [&str; 4] = [
    "message.sent",
    "message.received",
    "message.read",
    "message.delivered",
];

pub fn is_converted(event_type: EventType) -> bool {
    CONVERTED.contains(&event_type.as_str())
}

/// The 2026-02-03 fields the conversion reads; everything else is ignored.
#[derive(Deserialize)]
struct V2026<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    chat: Option<Chat<'a>>,
    direction: Option<String>,
    #[serde(borrow)]
    sender_handle: Option<&'a RawValue>,
    #[serde(borrow)]
    parts: Option<&'a RawValue>,
    #[serde(borrow)]
    effect: Option<&'a RawValue>,
    #[serde(borrow)]
    reply_to: Option<&'a RawValue>,
    #[serde(borrow)]
    idempotency_key: Option<&'a RawValue>,
    #[serde(borrow)]
    service: Option<&'a RawValue>,
    #[serde(borrow)]
    preferred_service: Option<&'a RawValue>,
    sent_at: Option<String>,
    delivered_at: Option<String>,
    read_at: Option<String>,
}

#[derive(Deserialize)]
struct Chat<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    is_group: Option<&'a RawValue>,
    #[serde(borrow)]
    owner_handle: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Handle<'a> {
    #[serde(borrow)]
    handle: Option<&'a RawValue>,
}

/// The 2025-01-01 object, in the key order of Linq's example (CONTRACT.md §4.5).
#[derive(Serialize)]
struct V2025<'a> {
    chat_id: Option<&'a RawValue>,
    is_group: Option<&'a RawValue>,
    is_from_me: bool,
    from: Option<&'a RawValue>,
    from_handle: Option<&'a RawValue>,
    recipient_phone: Option<&'a RawValue>,
    recipient_handle: Option<&'a RawValue>,
    received_at: Option<&'a str>,
    idempotency_key: Option<&'a RawValue>,
    service: Option<&'a RawValue>,
    preferred_service: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivered_at: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_at: Option<Option<&'a str>>,
    message: Message<'a>,
}

#[derive(Serialize)]
struct Message<'a> {
    id: Option<&'a RawValue>,
    created_at: Option<&'a str>,
    updated_at: Option<&'a str>,
    parts: Option<&'a RawValue>,
    sent_at: Option<&'a str>,
    delivered_at: Option<&'a str>,
    read_at: Option<&'a str>,
    is_delivered: bool,
    is_read: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    effect: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a RawValue>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot derive the 2025-01-01 payload: {0}")]
pub struct NotConvertible(String);

/// The 2025-01-01 `data` of a message event whose 2026-02-03 `data` is `data` (a JSON object).
/// Fields the input lacks come out null; it fails only when a field it reads has the wrong JSON
/// type (e.g. `chat` not an object) or appears twice, which schema validation reports first.
pub fn convert(event_type: EventType, data: &str) -> Result<String, NotConvertible> {
    let v: V2026<'_> = serde_json::from_str(data).map_err(|e| NotConvertible(e.to_string()))?;
    let chat = v.chat.unwrap_or(Chat {
        id: None,
        is_group: None,
        owner_handle: None,
    });
    let from = match v.sender_handle {
        Some(raw) => serde_json::from_str::<Option<Handle<'_>>>(raw.get())
            .map_err(|e| NotConvertible(format!("sender_handle: {e}")))?
            .and_then(|h| h.handle),
        None => None,
    };
    let inbound = v.direction.as_deref() != Some("outbound");
    let (sent, delivered, read) = (
        v.sent_at.as_deref(),
        v.delivered_at.as_deref(),
        v.read_at.as_deref(),
    );
    // RFC 3339 UTC times of one message compare as text; the latest is its last known change.
    let updated_at = [sent, delivered, read].into_iter().flatten().max();
    let (is_read, is_delivered) = (
        event_type.as_str() == "message.read",
        event_type.as_str() == "message.delivered",
    );
    let out = V2025 {
        chat_id: chat.id,
        is_group: chat.is_group,
        is_from_me: !inbound,
        from,
        from_handle: v.sender_handle,
        recipient_phone: None,
        recipient_handle: if inbound { chat.owner_handle } else { None },
        received_at: if inbound { sent } else { None },
        idempotency_key: v.idempotency_key,
        service: v.service,
        preferred_service: v.preferred_service,
        message_id: if is_read || is_delivered { v.id } else { None },
        delivered_at: is_delivered.then_some(delivered),
        read_at: is_read.then_some(read),
        message: Message {
            id: v.id,
            created_at: sent,
            updated_at,
            parts: v.parts,
            sent_at: sent,
            delivered_at: delivered,
            read_at: read,
            is_delivered: delivered.is_some(),
            is_read: read.is_some(),
            effect: v.effect,
            reply_to: v.reply_to,
        },
    };
    Ok(serde_json::to_string(&out).expect("raw values and strings serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn t(name: &str) -> EventType {
        EventType::parse(name).unwrap()
    }

    /// CONTRACT.md §4.5's 2025 example, from the 2026-02-03 data of the same message.
    #[test]
    fn received_matches_linqs_2025_example() {
        let data = r#"{"id":"89e3566e-1d13-49e5-a8ee-48490d5bfeb7","chat":{"id":"8f392755-6865-4b18-880a-227f9d8b458f","is_group":false,"health_status":{"status":"HEALTHY","doc_url":"https://docs.linqapp.com/channel/imessage/guides/chats/chat-health","updated_at":"2026-01-04T05:48:51Z"},"owner_handle":{"handle":"+12025551234","id":"6d6c617f-187a-4dcd-a0d5-988347a8c092","is_me":true,"joined_at":"2026-01-04T05:48:51.321469Z","left_at":null,"service":"iMessage","status":"active"}},"direction":"inbound","sender_handle":{"handle":"+12025559876","id":"e604375a-5913-483a-8278-c631e8f0ffda","is_me":false,"joined_at":"2026-01-04T05:48:51.321469Z","left_at":null,"service":"iMessage","status":"active"},"parts":[{"type":"text","value":"Hello!"}],"effect":null,"reply_to":null,"idempotency_key":null,"service":"iMessage","preferred_service":null,"sent_at":"2026-02-05T19:31:13.074Z","delivered_at":null,"read_at":null}"#;
        let out = convert(t("message.received"), data).unwrap();
        let got: Value = serde_json::from_str(&out).unwrap();
        let mut want = json!({"chat_id":"8f392755-6865-4b18-880a-227f9d8b458f","is_group":false,"is_from_me":false,
          "from":"+12025559876","from_handle":{"handle":"+12025559876","id":"e604375a-5913-483a-8278-c631e8f0ffda","is_me":false,"joined_at":"2026-01-04T05:48:51.321469Z","left_at":null,"service":"iMessage","status":"active"},
          "recipient_phone":null,"recipient_handle":{"handle":"+12025551234","id":"6d6c617f-187a-4dcd-a0d5-988347a8c092","is_me":true,"joined_at":"2026-01-04T05:48:51.321469Z","left_at":null,"service":"iMessage","status":"active"},
          "received_at":"2026-02-05T19:31:13.074Z","idempotency_key":null,"service":"iMessage","preferred_service":null,
          "message":{"id":"89e3566e-1d13-49e5-a8ee-48490d5bfeb7","created_at":"2026-02-05T19:31:12.892Z","updated_at":"2026-02-05T19:31:13.712Z",
           "parts":[{"type":"text","value":"Hello!"}],"sent_at":"2026-02-05T19:31:13.074Z","delivered_at":null,"read_at":null,
           "is_delivered":false,"is_read":false}});
        // Not derivable: the 2026 shape has no creation or update time of the message.
        want["message"]["created_at"] = json!("2026-02-05T19:31:13.074Z");
        want["message"]["updated_at"] = json!("2026-02-05T19:31:13.074Z");
        assert_eq!(got, want);
        assert!(
            out.starts_with(r#"{"chat_id":"8f392755"#),
            "Linq's key order: {out}"
        );
    }

    #[test]
    fn outbound_read_has_no_recipient_and_names_the_message_at_the_top() {
        let data = r#"{"id":"m1","chat":{"id":"c1","is_group":true},"direction":"outbound","sender_handle":{"handle":"+12025551234"},"parts":[],"effect":{"type":"screen","name":"confetti"},"sent_at":"2026-02-05T19:52:17.219Z","delivered_at":"2026-02-05T19:52:22.291Z","read_at":"2026-02-05T19:53:58.177Z"}"#;
        let got: Value = serde_json::from_str(&convert(t("message.read"), data).unwrap()).unwrap();
        assert_eq!(got["is_from_me"], true);
        assert_eq!(got["from"], "+12025551234");
        assert_eq!(got["recipient_handle"], Value::Null);
        assert_eq!(got["received_at"], Value::Null);
        assert_eq!(got["message_id"], "m1");
        assert_eq!(got["read_at"], "2026-02-05T19:53:58.177Z");
        assert!(got.get("delivered_at").is_none());
        assert_eq!(got["message"]["is_read"], true);
        assert_eq!(got["message"]["is_delivered"], true);
        assert_eq!(got["message"]["updated_at"], "2026-02-05T19:53:58.177Z");
        assert_eq!(got["message"]["effect"]["name"], "confetti");
        assert!(got["message"].get("reply_to").is_none());
    }

    #[test]
    fn missing_fields_come_out_null_and_wrong_types_fail() {
        let got: Value = serde_json::from_str(&convert(t("message.sent"), "{}").unwrap()).unwrap();
        assert_eq!(got["chat_id"], Value::Null);
        assert_eq!(got["message"]["parts"], Value::Null);
        assert!(convert(t("message.sent"), r#"{"chat":"c1"}"#).is_err());
        assert!(convert(t("message.sent"), r#"{"sent_at":5}"#).is_err());
    }
}
