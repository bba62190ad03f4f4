//! Dead endpoints over real HTTP, with short settings: every attempt failing for
//! `HOOKLINE_DISABLE_AFTER` with `HOOKLINE_DISABLE_MIN_FAILURES` deliveries failed for good
//! deactivates the subscription and announces it; a success in between keeps it alive.

use crate::common::*;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

async fn a_dead_endpoint_is_deactivated_and_announced(backend: Backend) {
    let mut opts = Options::default();
    opts.raw.retry_schedule = Some(String::new()); // one attempt per delivery
    opts.raw.disable_after = Some("1s".into());
    opts.raw.disable_min_failures = Some(2);
    let app = TestApp::spawn_with(backend, opts).await;
    let rx = TestReceiver::start().await;
    rx.set_default("/dead", Reply::status(500));
    rx.script(
        "/flaky",
        vec![Reply::status(500), Reply::ok(), Reply::status(500)],
    );
    let (partner, key) = app.partner("acme").await;
    let dead = subscribe(&app, &key, &rx.url("/dead"), &["message.sent"], None).await;
    let flaky = subscribe(&app, &key, &rx.url("/flaky"), &["message.sent"], None).await;
    subscribe(
        &app,
        &key,
        &rx.url("/w"),
        &["webhook_subscription.disabled"],
        None,
    )
    .await;

    // Round 1: both fail. Round 2: /dead fails again (too soon to count as dead), /flaky
    // succeeds. Round 3, past HOOKLINE_DISABLE_AFTER: /dead is dead; /flaky failed only once.
    app.publish(event(&partner, "message.sent", None)).await;
    assert_eq!(settled(&app).await.failed, 2);
    app.publish(event(&partner, "message.sent", None)).await;
    let c = settled(&app).await;
    assert_eq!((c.failed, c.succeeded), (3, 1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.publish(event(&partner, "message.sent", None)).await;

    let announced = rx.wait_for(Some("/w"), 1, WAIT).await.remove(0).json();
    assert_eq!(
        announced["event_type"],
        json!("webhook_subscription.disabled")
    );
    assert_eq!(announced["data"]["webhook_subscription"]["id"], dead["id"]);
    assert_eq!(announced["data"]["actor"], json!({"type": "system"}));
    assert_eq!(announced["data"]["origin"], json!("linq"));
    let summary = announced["data"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("every delivery attempt has failed since"),
        "{summary}"
    );
    assert!(
        summary.contains("(3 deliveries failed after all retries"),
        "{summary}"
    );

    assert!(!is_active(&app, &key, &dead).await);
    assert!(
        is_active(&app, &key, &flaky).await,
        "a success in between keeps it alive"
    );

    // Re-enabled, it starts counting afresh: one more failure does not deactivate it again.
    set_active(&app, &key, &dead, true).await;
    app.publish(event(&partner, "message.sent", None)).await;
    settled(&app).await;
    assert!(is_active(&app, &key, &dead).await);
    assert_eq!(rx.received_at("/w").len(), 1, "announced once");
}

async fn is_active(app: &TestApp, key: &str, sub: &serde_json::Value) -> bool {
    let (s, v) = app
        .call(key, Method::GET, &subscription_path(sub), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v["is_active"].as_bool().unwrap()
}

crate::per_backend!(a_dead_endpoint_is_deactivated_and_announced);
