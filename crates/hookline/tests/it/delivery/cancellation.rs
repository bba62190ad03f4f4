//! Deactivated and deleted subscriptions: their pending deliveries are cancelled, not sent.

use crate::common::*;
use hookline::config::Role;
use hookline::store::DeliveryCounts;
use reqwest::Method;
use serde_json::{json, Value};

async fn deactivating_or_deleting_stops_remaining_attempts(backend: Backend) {
    let mut opts = Options::default();
    opts.raw.retry_schedule = Some("1s,1s".into());
    let app = TestApp::spawn_with(backend, opts).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let a = subscribe(&app, &key, &rx.url("/a"), &["message.sent"], None).await;
    let b = subscribe(&app, &key, &rx.url("/b"), &["message.sent"], None).await;
    rx.set_default("/a", Reply::status(500));
    rx.set_default("/b", Reply::status(500));
    app.publish(event(&partner, "message.sent", None)).await;
    rx.wait_for(Some("/a"), 1, WAIT).await;
    rx.wait_for(Some("/b"), 1, WAIT).await;
    set_active(&app, &key, &a, false).await;
    app.call(&key, Method::DELETE, &subscription_path(&b), None)
        .await;
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            cancelled: 2,
            ..Default::default()
        }
    );
    assert_eq!(rx.received().len(), 2);
}

/// A deleted subscription's backlog is cancelled as fast as claims go: it never holds a slot, so
/// waiting for one of its slots to free (or for the poll) would take a poll interval per batch.
async fn a_deleted_subscriptions_backlog_is_cancelled_promptly(backend: Backend) {
    const EVENTS: usize = 5000;
    let mut opts = Options::default();
    // Queue without delivering: nothing is sent before the subscription is gone.
    opts.raw.role = Some(Role::Api);
    let app = TestApp::spawn_with(backend, opts).await;
    let (partner, key) = app.partner("acme").await;
    let sub = subscribe(
        &app,
        &key,
        "https://gone.example/h",
        &["message.sent"],
        None,
    )
    .await;
    for _ in 0..EVENTS / 500 {
        let events: Vec<Value> = (0..500)
            .map(|_| event(&partner, "message.sent", None))
            .collect();
        let r = app
            .http
            .post(app.url("/admin/v1/events/batch"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"events": events}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let path = subscription_path(&sub);
    let (s, _) = app.call(&key, Method::DELETE, &path, None).await;
    assert_eq!(s, 204);

    let mut app = app;
    app.settings.server.role = Role::All;
    let app = app.restart().await;
    // `settled` gives up after 15 s; one claim batch per poll interval would need about 40.
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            cancelled: EVENTS as u64,
            ..Default::default()
        }
    );
}

crate::per_backend!(
    deactivating_or_deleting_stops_remaining_attempts,
    a_deleted_subscriptions_backlog_is_cancelled_promptly,
);
