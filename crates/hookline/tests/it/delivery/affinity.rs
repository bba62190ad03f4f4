//! Delivery affinity: routing tokens learned per chat and echoed.

use crate::common::*;
use hookline_core::SubscriptionId;
use reqwest::Method;
use serde_json::json;

/// Delivery affinity (CONTRACT.md §3.6): the chat id goes out in `routing_id_header`; the token
/// a receiver returns in `routing_key_header` is echoed on later deliveries for that chat only,
/// and clearing `routing_key_header` forgets the tokens.
async fn routing_tokens_are_learned_per_chat_and_echoed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let sub = app
        .create_subscription(
            &key,
            json!({"target_url": rx.url("/r"), "subscribed_events": ["message.sent"],
                   "routing_key_header": "X-Route"}),
        )
        .await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    let sub_path = format!("/v3/webhook-subscriptions/{sub_id}");
    rx.script("/r", vec![Reply::ok().header("X-Route", "tok-1")]);
    let store = app.store().await;
    let publish_for = |chat: &'static str| {
        app.publish(json!({"partner_id": partner, "event_type": "message.sent",
                           "data": {"chat_id": chat, "text": "hi"}}))
    };
    let token_of = |chat: &'static str| {
        let (store, sub_id) = (store.clone(), sub_id.clone());
        async move {
            let sub_id = SubscriptionId::from_stored(sub_id);
            store.routing_token(&sub_id, chat).await.unwrap()
        }
    };

    publish_for("chat-a").await;
    let first = rx.wait_for(Some("/r"), 1, WAIT).await;
    assert_eq!(first[0].header("linq-chat-id"), "chat-a");
    assert_eq!(first[0].header("x-route"), "", "no token is known yet");
    eventually("the token to be stored", WAIT, || async {
        token_of("chat-a").await.filter(|t| t == "tok-1")
    })
    .await;

    publish_for("chat-a").await;
    publish_for("chat-b").await;
    let got = rx.wait_for(Some("/r"), 3, WAIT).await;
    let for_chat = |chat: &str| {
        got[1..]
            .iter()
            .find(|r| r.header("linq-chat-id") == chat)
            .unwrap_or_else(|| panic!("no delivery for {chat}"))
            .clone()
    };
    assert_eq!(for_chat("chat-a").header("x-route"), "tok-1");
    assert_eq!(
        for_chat("chat-b").header("x-route"),
        "",
        "tokens are per chat"
    );

    // Clearing the header turns affinity off and drops the learned tokens.
    let (s, body) = app
        .call(
            &key,
            Method::PUT,
            &sub_path,
            Some(json!({"routing_key_header": null})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(token_of("chat-a").await, None);
    publish_for("chat-a").await;
    let got = rx.wait_for(Some("/r"), 4, WAIT).await;
    assert_eq!(got[3].header("linq-chat-id"), "", "affinity is off");
    assert_eq!(got[3].header("x-route"), "");
}

crate::per_backend!(routing_tokens_are_learned_per_chat_and_echoed,);
