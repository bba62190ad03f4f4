//! Delivery affinity (CONTRACT.md §3.6): for subscriptions with a `routing_key_header`, each
//! delivery about a chat names the chat and echoes the routing token the receiver last returned
//! for it, so a receiver behind a load balancer can route a chat to one backend.

use hookline_core::DEFAULT_ROUTING_ID_HEADER;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::store::{DueDelivery, DynStore};

/// The chat a delivery is for and the token last learned for that chat, if any.
#[derive(Debug, Clone)]
pub struct Affinity {
    pub chat_id: String,
    pub token: Option<String>,
}

/// Longest routing token kept; a longer one is ignored rather than echoed.
const ROUTING_TOKEN_CAP: usize = 1024;

/// The chat and its learned routing token, for subscriptions with delivery affinity. A failed
/// lookup sends without the token rather than holding the delivery back.
pub async fn look_up(store: &DynStore, d: &DueDelivery) -> Option<Affinity> {
    d.routing_key_header.as_ref()?;
    let chat_id = chat_id(&d.data)?;
    let token = match store.routing_token(&d.subscription_id, &chat_id).await {
        Ok(token) => token,
        Err(e) => {
            tracing::warn!(error = %e, "reading the routing token failed; sending without it");
            None
        }
    };
    Some(Affinity { chat_id, token })
}

/// The chat id in `routing_id_header` (`Linq-Chat-Id` unless the subscription names another),
/// and the learned token, if any, in `routing_key_header`. Before a token is learned the
/// routing key header is left out.
pub fn add_headers(h: &mut HeaderMap, d: &DueDelivery, a: &Affinity) {
    let id_header = d
        .routing_id_header
        .as_ref()
        .map_or(DEFAULT_ROUTING_ID_HEADER, |h| h.as_str());
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(id_header.as_bytes()),
        HeaderValue::from_str(&a.chat_id),
    ) {
        h.insert(name, value);
    }
    if let (Some(key_header), Some(token)) = (d.routing_key_header.as_ref(), &a.token) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key_header.as_str().as_bytes()),
            HeaderValue::from_str(token),
        ) {
            h.insert(name, value);
        }
    }
}

/// The token a receiver returned in the subscription's `routing_key_header`, if usable.
pub fn returned_token(d: &DueDelivery, headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(d.routing_key_header.as_ref()?.as_str())?
        .to_str()
        .ok()?;
    (!value.is_empty() && value.len() <= ROUTING_TOKEN_CAP).then(|| value.to_owned())
}

/// `data.chat_id`, or `data.chat.id`, as Linq's message events carry it.
fn chat_id(data: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        chat_id: Option<String>,
        chat: Option<Chat>,
    }
    #[derive(serde::Deserialize)]
    struct Chat {
        id: Option<String>,
    }
    let p: Probe = serde_json::from_str(data).ok()?;
    p.chat_id.or(p.chat.and_then(|c| c.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_ids_in_both_shapes() {
        assert_eq!(chat_id(r#"{"chat_id":"c1"}"#).as_deref(), Some("c1"));
        assert_eq!(chat_id(r#"{"chat":{"id":"c2"}}"#).as_deref(), Some("c2"));
        assert_eq!(chat_id(r#"{"text":"hi"}"#), None);
        assert_eq!(chat_id("not json"), None);
    }
}
