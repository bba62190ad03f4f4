//! Account events: subscription changes, by a partner or by the platform, delivered as events.

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Subscription changes are account events (CONTRACT.md §4.6): a subscription to
/// `webhook_subscription.*` hears about its own creation, then about other subscriptions' changes.
async fn subscription_changes_are_delivered_as_account_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let watched = [
        "webhook_subscription.created",
        "webhook_subscription.disabled",
        "webhook_subscription.events.updated",
        "webhook_subscription.deleted",
    ];
    // A phone filter selects lines; account events concern the account and still arrive.
    let watcher = subscribe(&app, &key, &rx.url("/w"), &watched, Some(&["+12025551234"])).await;
    let got = rx.wait_for(Some("/w"), 1, WAIT).await;
    let created = got[0].json();
    assert_eq!(created["event_type"], json!("webhook_subscription.created"));
    assert_eq!(created["partner_id"], json!(partner));
    assert_eq!(created["data"]["webhook_subscription"]["id"], watcher["id"]);
    assert_eq!(created["data"]["actor"], json!({"type": "api"}));
    assert_eq!(created["data"]["origin"], json!("api"));

    // Another subscription (never delivered to: it takes no account events) changes, then goes.
    let other = subscribe(
        &app,
        &key,
        "https://other.example/h",
        &["message.sent"],
        None,
    )
    .await;
    let path = subscription_path(&other);
    let (s, body) = app
        .call(
            &key,
            Method::PUT,
            &path,
            Some(json!({"is_active": false, "subscribed_events": ["message.read"]})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, _) = app.call(&key, Method::DELETE, &path, None).await;
    assert_eq!(s, 204);
    let got = rx.wait_for(Some("/w"), 5, WAIT).await;
    let about_other: Vec<Value> = got
        .iter()
        .map(|r| r.json())
        .filter(|e| e["data"]["webhook_subscription"]["id"] == other["id"])
        .collect();
    let mut types: Vec<&str> = about_other
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "webhook_subscription.created",
            "webhook_subscription.deleted",
            "webhook_subscription.disabled",
            "webhook_subscription.events.updated"
        ]
    );
    let disabled = about_other
        .iter()
        .find(|e| e["event_type"] == json!("webhook_subscription.disabled"))
        .unwrap();
    assert_eq!(
        disabled["data"]["change"],
        json!({"from": true, "to": false})
    );
    let updated = about_other
        .iter()
        .find(|e| e["event_type"] == json!("webhook_subscription.events.updated"))
        .unwrap();
    assert_eq!(
        updated["data"]["change"],
        json!({"from": ["message.sent"], "to": ["message.read"]})
    );
}

/// A subscription deactivated by `410 Gone` is announced as `webhook_subscription.disabled`, a
/// change made by the platform (actor `system`, origin `linq`).
async fn gone_is_announced_as_a_platform_disable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(
        &app,
        &key,
        &rx.url("/w"),
        &["webhook_subscription.disabled"],
        None,
    )
    .await;
    let gone = subscribe(&app, &key, &rx.url("/gone"), &["message.sent"], None).await;
    rx.set_default("/gone", Reply::status(410));
    app.publish(event(&partner, "message.sent", None)).await;
    let got = rx.wait_for(Some("/w"), 1, WAIT).await;
    let e = got[0].json();
    assert_eq!(e["event_type"], json!("webhook_subscription.disabled"));
    assert_eq!(e["data"]["actor"], json!({"type": "system"}));
    assert_eq!(e["data"]["origin"], json!("linq"));
    assert_eq!(e["data"]["change"], json!({"from": true, "to": false}));
    assert_eq!(e["data"]["webhook_subscription"]["id"], gone["id"]);
}

crate::per_backend!(
    subscription_changes_are_delivered_as_account_events,
    gone_is_announced_as_a_platform_disable,
);
