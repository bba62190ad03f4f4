//! The JSON body of a delivery, in the key order of Linq's examples.
//!
//! `data` is kept as the raw JSON text the publisher sent, and the envelope is assembled by
//! concatenation: no parse and re-serialise per delivery on the hot path.

use serde::Serialize;

pub struct Envelope<'a> {
    pub webhook_version: &'a str,
    pub event_type: &'a str,
    pub event_id: &'a str,
    pub created_at: &'a str,
    pub trace_id: &'a str,
    pub partner_id: &'a str,
    /// Already-serialised JSON object.
    pub data: &'a str,
}

impl Envelope<'_> {
    pub fn render(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Head<'a> {
            api_version: &'static str,
            webhook_version: &'a str,
            event_type: &'a str,
            event_id: &'a str,
            created_at: &'a str,
            trace_id: &'a str,
            partner_id: &'a str,
        }
        let head = Head {
            api_version: "v3",
            webhook_version: self.webhook_version,
            event_type: self.event_type,
            event_id: self.event_id,
            created_at: self.created_at,
            trace_id: self.trace_id,
            partner_id: self.partner_id,
        };
        let mut out = serde_json::to_vec(&head).expect("strings serialise");
        out.pop(); // the closing brace; `data` goes last
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(self.data.as_bytes());
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_linq_key_order_byte_for_byte() {
        let body = Envelope {
            webhook_version: "2026-02-03",
            event_type: "message.received",
            event_id: "2915e81c-5068-4796-ace2-21d2c94ad298",
            created_at: "2026-02-05T19:31:13.736444093Z",
            trace_id: "8af9171a45022df2eb74ba4e4c83be0f",
            partner_id: "your-partner-id",
            data: r#"{"id":"89e3566e-1d13-49e5-a8ee-48490d5bfeb7","direction":"inbound","parts":[{"type":"text","value":"Hello!"}],"service":"iMessage"}"#,
        }
        .render();
        let want = r#"{"api_version":"v3","webhook_version":"2026-02-03","event_type":"message.received","event_id":"2915e81c-5068-4796-ace2-21d2c94ad298","created_at":"2026-02-05T19:31:13.736444093Z","trace_id":"8af9171a45022df2eb74ba4e4c83be0f","partner_id":"your-partner-id","data":{"id":"89e3566e-1d13-49e5-a8ee-48490d5bfeb7","direction":"inbound","parts":[{"type":"text","value":"Hello!"}],"service":"iMessage"}}"#;
        assert_eq!(String::from_utf8(body).unwrap(), want);
    }
}
