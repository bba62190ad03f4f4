//! `POST …/test`: one synthetic event, to that subscription only, through the signed path,
//! answered with its attempt, never retried, recorded in the delivery log.

use crate::common::*;
use hookline_core::SigningSecret;
use reqwest::Method;
use serde_json::json;

async fn a_test_event_reaches_only_its_subscription_signed_and_logged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let events = ["message.received", "message.sent"];
    let sub = subscribe(&app, &key, &rx.url("/h"), &events, Some(&["+12025551234"])).await;
    subscribe(&app, &key, &rx.url("/other"), &events, None).await;

    let test = format!("{}/test", subscription_path(&sub));
    let (s, result) = app.call(&key, Method::POST, &test, Some(json!({}))).await;
    assert_eq!(s, 200, "{result}");
    assert_eq!(result["http_status_code"], json!(200), "{result}");
    assert_eq!(result["error_type"], json!(null));
    assert_eq!(result["error_message"], json!(null));
    assert!(result["duration_ms"].as_i64().unwrap() >= 0);
    let event_id = result["event_id"].as_str().unwrap();

    // Answered after the attempt: it has arrived already.
    let got = rx.received_at("/h");
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.header("x-webhook-test"), "true");
    assert_eq!(r.header("webhook-id"), event_id);
    let body = r.json();
    assert_eq!(
        body["event_type"],
        json!("message.received"),
        "the first subscribed type"
    );
    assert_eq!(
        body["data"]["direction"],
        json!("inbound"),
        "CONTRACT.md §4.4's example"
    );
    assert_eq!(body["partner_id"], json!(partner));
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    let secret = SigningSecret::parse(sub["signing_secret"].as_str().unwrap()).unwrap();
    assert_eq!(
        r.header("webhook-signature"),
        secret.sign_standard(event_id, ts, &r.body)
    );

    // Recorded: one delivery in its final state, one attempt; nothing fanned out.
    let attempts = app.attempts(&partner, event_id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, Some(200));
    assert_eq!(settled(&app).await.succeeded, 1);
    assert!(rx.received_at("/other").is_empty(), "fanned out");

    // Another subscribed type, asked for by name; a fresh event id each time.
    let (s, second) = app
        .call(
            &key,
            Method::POST,
            &test,
            Some(json!({"event_type": "message.sent"})),
        )
        .await;
    assert_eq!(s, 200, "{second}");
    assert_ne!(second["event_id"], result["event_id"]);
    assert_eq!(
        rx.received_at("/h")[1].json()["event_type"],
        json!("message.sent")
    );
}

async fn a_failed_test_event_is_answered_and_not_retried(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    rx.set_default("/h", Reply::status(503).body("busy"));
    let (partner, key) = app.partner("acme").await;
    let sub = subscribe(&app, &key, &rx.url("/h"), &["message.sent"], None).await;
    let test = format!("{}/test", subscription_path(&sub));
    let r = app
        .http
        .post(app.url(&test))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (s, result) = into_parts(r).await;
    assert_eq!(s, 200, "an empty body is {{}}: {result}");
    assert_eq!(result["http_status_code"], json!(503));
    assert_eq!(result["error_type"], json!("http_status"));
    assert_eq!(result["error_message"], json!("receiver answered 503"));
    let c = settled(&app).await;
    assert_eq!(
        (c.failed, c.pending),
        (1, 0),
        "failed at once, no retry scheduled"
    );
    // Longer than the whole retry schedule (200 ms, 400 ms): still one request.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(rx.received_at("/h").len(), 1);
    let event_id = result["event_id"].as_str().unwrap();
    assert_eq!(app.attempts(&partner, event_id).await.len(), 1);
}

async fn test_event_refusals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let (_, other_key) = app.partner("other").await;
    let sub = subscribe(
        &app,
        &key,
        "https://a.example/h?version=2025-01-01",
        &["message.sent", "message.edited"],
        None,
    )
    .await;
    let test = format!("{}/test", subscription_path(&sub));
    for (body, needle) in [
        (
            json!({"event_type": "message.read"}),
            "not among the subscription's subscribed_events",
        ),
        (
            json!({"event_type": "no.such"}),
            "Unknown event type 'no.such'",
        ),
        (
            json!({"event_type": "message.edited"}),
            "only to subscriptions on webhook version 2026-02-03",
        ),
    ] {
        let (s, v) = app.call(&key, Method::POST, &test, Some(body)).await;
        let message = assert_error(s, &v, 400, 1005);
        assert!(message.contains(needle), "{message}");
    }
    let (s, v) = app
        .call(&key, Method::POST, &test, Some(json!({"event_type": 5})))
        .await;
    assert_error(s, &v, 400, 1003);
    // Another partner's subscription is unknown to it.
    let (s, v) = app
        .call(&other_key, Method::POST, &test, Some(json!({})))
        .await;
    assert_error(s, &v, 404, 2001);
    set_active(&app, &key, &sub, false).await;
    let (s, v) = app.call(&key, Method::POST, &test, Some(json!({}))).await;
    let message = assert_error(s, &v, 400, 1005);
    assert!(message.contains("is inactive"), "{message}");
    assert_eq!(counts(&app).await.pending, 0, "nothing was published");
}

/// The SSRF guard applies as to any delivery: a loopback target is refused, and said so.
async fn a_test_event_to_a_refused_address_reports_ssrf_blocked(backend: Backend) {
    let opts = Options {
        loopback_allowed: false,
        ..Options::default()
    };
    let app = TestApp::spawn_with(backend, opts).await;
    let (_, key) = app.partner("acme").await;
    let sub = subscribe(&app, &key, "https://127.0.0.1:9/h", &["message.sent"], None).await;
    let test = format!("{}/test", subscription_path(&sub));
    let (s, result) = app.call(&key, Method::POST, &test, Some(json!({}))).await;
    assert_eq!(s, 200, "{result}");
    assert_eq!(result["error_type"], json!("ssrf_blocked"), "{result}");
    assert_eq!(result["http_status_code"], json!(null));
}

/// An API-only node never sends anything, test events included.
async fn an_api_only_node_refuses_test_events(backend: Backend) {
    let mut opts = Options::default();
    opts.raw.role = Some(hookline::config::Role::Api);
    let app = TestApp::spawn_with(backend, opts).await;
    let (_, key) = app.partner("acme").await;
    let sub = subscribe(&app, &key, "https://a.example/h", &["message.sent"], None).await;
    let test = format!("{}/test", subscription_path(&sub));
    let (s, v) = app.call(&key, Method::POST, &test, Some(json!({}))).await;
    let message = assert_error(s, &v, 409, 1005);
    assert!(message.contains("HOOKLINE_ROLE=api"), "{message}");
    assert_eq!(counts(&app).await.pending, 0, "nothing was published");
}

crate::per_backend!(
    an_api_only_node_refuses_test_events,
    a_test_event_reaches_only_its_subscription_signed_and_logged,
    a_failed_test_event_is_answered_and_not_retried,
    test_event_refusals,
    a_test_event_to_a_refused_address_reports_ssrf_blocked,
);

/// A test attempt holds a delivery slot like any other: with the subscription at its cap, a
/// test event is 429 with `Retry-After` (the SDKs retry it), not an attempt beyond the cap.
#[tokio::test]
async fn test_events_keep_to_the_in_flight_cap() {
    let mut opts = Options::default();
    opts.raw.max_in_flight_per_subscription = Some(1);
    let app = TestApp::spawn_with(Backend::Sqlite, opts).await;
    let rx = TestReceiver::start().await;
    let gate = Gate::default();
    rx.set_default("/slow", Reply::ok().held(&gate));
    let (_, key) = app.partner("acme").await;
    let sub = subscribe(&app, &key, &rx.url("/slow"), &["message.sent"], None).await;
    let test = format!("{}/test", subscription_path(&sub));

    let first = app.call(&key, Method::POST, &test, Some(json!({})));
    let second = async {
        rx.wait_for(Some("/slow"), 1, WAIT).await; // the first holds the only slot
        let refused = app.call(&key, Method::POST, &test, Some(json!({}))).await;
        gate.open(); // only now may the first attempt end
        refused
    };
    let ((s1, r1), (s2, r2)) = tokio::join!(first, second);
    assert_eq!((s1, &r1["http_status_code"]), (200, &json!(200)), "{r1}");
    let msg = assert_error(s2, &r2, 429, 1007);
    assert!(msg.contains("in flight"), "{msg}");
    assert_eq!(r2["error"]["retry_after"], json!(1));
    assert_eq!(
        rx.received_at("/slow").len(),
        1,
        "no attempt beyond the cap"
    );
}
