//! Which subscriptions an event goes to: event type, phone filter, active, partner.

use crate::common::*;
use hookline::store::DeliveryCounts;
use reqwest::Method;
use serde_json::json;

async fn fans_out_to_matching_subscriptions_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let (other_partner, other_key) = app.partner("other").await;
    subscribe(&app, &key, &rx.url("/all"), &["message.sent"], None).await;
    subscribe(
        &app,
        &key,
        &rx.url("/line"),
        &["message.sent"],
        Some(&["+12025551234"]),
    )
    .await;
    subscribe(
        &app,
        &key,
        &rx.url("/other-line"),
        &["message.sent"],
        Some(&["+12025550000"]),
    )
    .await;
    subscribe(
        &app,
        &key,
        &rx.url("/other-type"),
        &["message.received"],
        None,
    )
    .await;
    let inactive = subscribe(&app, &key, &rx.url("/inactive"), &["message.sent"], None).await;
    set_active(&app, &key, &inactive, false).await;
    let deleted = subscribe(&app, &key, &rx.url("/deleted"), &["message.sent"], None).await;
    app.call(&key, Method::DELETE, &subscription_path(&deleted), None)
        .await;
    subscribe(
        &app,
        &other_key,
        &rx.url("/other-partner"),
        &["message.sent"],
        None,
    )
    .await;

    let published = app
        .publish(event(&partner, "message.sent", Some("+12025551234")))
        .await;
    assert_eq!(published["deliveries"], json!(2));
    // No phone number: only unfiltered subscriptions.
    let published = app.publish(event(&partner, "message.sent", None)).await;
    assert_eq!(published["deliveries"], json!(1));

    rx.wait_for(Some("/all"), 2, WAIT).await;
    rx.wait_for(Some("/line"), 1, WAIT).await;
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            succeeded: 3,
            ..Default::default()
        }
    );
    let paths: Vec<String> = rx.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(
        paths.iter().all(|p| p == "/all" || p == "/line"),
        "{paths:?}"
    );
    let _ = other_partner;
}

crate::per_backend!(fans_out_to_matching_subscriptions_only,);
