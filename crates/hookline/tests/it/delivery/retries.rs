//! How a receiver's answer is handled: retries with back-off and Retry-After, giving up, 410 and
//! redirects.

use crate::common::*;
use hookline::store::DeliveryCounts;
use hookline_core::ErrorKind;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

async fn retries_5xx_and_429_honouring_retry_after_with_the_same_webhook_id(backend: Backend) {
    let app = TestApp::spawn(backend).await; // schedule 200ms, 400ms
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &rx.url("/flaky"), &["message.sent"], None).await;
    rx.script(
        "/flaky",
        vec![
            Reply::status(500),
            Reply::status(429).header("retry-after", "1"),
            Reply::ok(),
        ],
    );
    let started = Instant::now();
    let p = app.publish(event(&partner, "message.sent", None)).await;
    let got = rx.wait_for(Some("/flaky"), 3, WAIT).await;
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(
        gap1 >= Duration::from_millis(200),
        "first retry after {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_secs(1),
        "Retry-After: 1 not honoured ({gap2:?})"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|id| *id == p["event_id"].as_str().unwrap()),
        "{ids:?}"
    );
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            succeeded: 1,
            ..Default::default()
        }
    );
    let attempts = app
        .attempts(&partner, p["event_id"].as_str().unwrap())
        .await;
    let codes: Vec<Option<u16>> = attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, vec![Some(500), Some(429), Some(200)]);
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(attempts[0].error_kind, Some(ErrorKind::HttpStatus));
    assert_eq!(attempts[2].error_kind, None);
}

async fn gives_up_after_the_last_retry_and_never_retries_other_4xx(backend: Backend) {
    let app = TestApp::spawn(backend).await; // 3 attempts in all
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &rx.url("/down"), &["message.sent"], None).await;
    subscribe(&app, &key, &rx.url("/bad"), &["message.sent"], None).await;
    subscribe(&app, &key, &rx.url("/missing"), &["message.sent"], None).await;
    rx.set_default("/down", Reply::status(503).body("maintenance"));
    rx.set_default("/bad", Reply::status(400));
    rx.set_default("/missing", Reply::status(404));
    let p = app.publish(event(&partner, "message.sent", None)).await;
    assert_eq!(p["deliveries"], json!(3));
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            failed: 3,
            ..Default::default()
        }
    );
    assert_eq!(rx.received_at("/down").len(), 3);
    assert_eq!(rx.received_at("/bad").len(), 1);
    assert_eq!(rx.received_at("/missing").len(), 1);
    let attempts = app
        .attempts(&partner, p["event_id"].as_str().unwrap())
        .await;
    assert!(attempts
        .iter()
        .any(|a| a.response_body.as_deref() == Some("maintenance")));
}

async fn gone_deactivates_the_subscription_and_redirects_are_not_followed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let gone = subscribe(&app, &key, &rx.url("/gone"), &["message.sent"], None).await;
    subscribe(&app, &key, &rx.url("/moved"), &["message.sent"], None).await;
    rx.set_default("/gone", Reply::status(410));
    rx.set_default(
        "/moved",
        Reply::status(302).header("location", &rx.url("/elsewhere")),
    );
    let p = app.publish(event(&partner, "message.sent", None)).await;
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            failed: 2,
            ..Default::default()
        }
    );
    assert_eq!(rx.received_at("/gone").len(), 1);
    assert_eq!(rx.received_at("/moved").len(), 1);
    assert!(rx.received_at("/elsewhere").is_empty());
    let (_, sub) = app
        .call(&key, Method::GET, &subscription_path(&gone), None)
        .await;
    assert_eq!(sub["is_active"], json!(false));
    let attempts = app
        .attempts(&partner, p["event_id"].as_str().unwrap())
        .await;
    assert!(attempts
        .iter()
        .any(|a| a.error_kind == Some(ErrorKind::Redirect) && a.status_code == Some(302)));
}

crate::per_backend!(
    retries_5xx_and_429_honouring_retry_after_with_the_same_webhook_id,
    gives_up_after_the_last_retry_and_never_retries_other_4xx,
    gone_deactivates_the_subscription_and_redirects_are_not_followed,
);
