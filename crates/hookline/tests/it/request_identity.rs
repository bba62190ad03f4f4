//! Request identity over real HTTP: the id a caller sends (`x-request-id`, `traceparent`) or the
//! one generated is the error envelope's `trace_id`, the `x-request-id` answer, and the trace id
//! of what the request publishes.

use super::common::*;
use reqwest::RequestBuilder;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Sends `req`; returns the status, the `x-request-id` answer and the body.
async fn send(req: RequestBuilder) -> (u16, String, Value) {
    let response = req.send().await.unwrap();
    let echoed = response
        .headers()
        .get("x-request-id")
        .expect("every answer carries x-request-id")
        .to_str()
        .unwrap()
        .to_owned();
    let (status, body) = into_parts(response).await;
    (status, echoed, body)
}

fn is_trace_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every kind of rejection, including those made before a handler runs (routing, extractors),
/// answers with the id the caller sent.
async fn a_sent_id_is_the_envelope_trace_id_and_comes_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let subs = app.url("/v3/webhook-subscriptions");
    let by_request_id = |req: RequestBuilder| req.header("x-request-id", TRACE.to_uppercase());
    let by_traceparent = |req: RequestBuilder| req.header("traceparent", TRACEPARENT);
    let cases: Vec<(&str, RequestBuilder, u16, u64)> =
        vec![
            (
                "404 fallback",
                by_request_id(app.http.get(app.url("/nowhere"))),
                404,
                2001,
            ),
            (
                "405 fallback",
                by_traceparent(app.http.patch(&subs).bearer_auth(&key)),
                405,
                1005,
            ),
            (
                "401 from the auth extractor",
                by_traceparent(app.http.get(&subs).bearer_auth("hl_live_nope")),
                401,
                2004,
            ),
            (
                "400 from the JSON extractor",
                by_request_id(
                    app.http
                        .post(&subs)
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body("{not json"),
                ),
                400,
                1003,
            ),
            (
                "400 from a handler",
                by_traceparent(app.http.post(&subs).bearer_auth(&key).json(
                    &json!({"target_url": "ftp://x", "subscribed_events": ["message.sent"]}),
                )),
                400,
                1005,
            ),
        ];
    for (what, req, want_status, want_code) in cases {
        let (status, echoed, body) = send(req).await;
        assert_error(status, &body, want_status, want_code);
        assert_eq!(body["trace_id"], json!(TRACE), "{what}: {body}");
        assert_eq!(echoed, TRACE, "{what}");
    }

    // A request id that is not a trace id is the caller's: echoed as sent, beside a fresh trace.
    let (status, echoed, body) = send(
        app.http
            .get(app.url("/nowhere"))
            .header("x-request-id", "req-42"),
    )
    .await;
    assert_error(status, &body, 404, 2001);
    assert_eq!(echoed, "req-42");
    let trace = body["trace_id"].as_str().unwrap();
    assert!(is_trace_id(trace) && trace != TRACE, "{body}");
}

async fn each_request_gets_its_own_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (status, echoed, body) = send(app.http.get(app.url("/nowhere"))).await;
        assert_error(status, &body, 404, 2001);
        assert_eq!(
            body["trace_id"],
            json!(echoed),
            "the answer names the same id"
        );
        assert!(is_trace_id(&echoed), "{echoed}");
        seen.push(echoed);
    }
    assert_ne!(seen[0], seen[1]);
    // Successes carry one too.
    let (status, echoed, _) = send(app.http.get(app.url("/healthz"))).await;
    assert_eq!(status, 200);
    assert!(is_trace_id(&echoed), "{echoed}");
}

/// An event published without a `trace_id` takes the publish request's, so the request, the
/// event and its deliveries share one id; so do account events of a partner-API change.
async fn published_events_carry_the_request_trace_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let (status, _, sub) = send(
        app.http
            .post(app.url("/v3/webhook-subscriptions"))
            .bearer_auth(&key)
            .header("traceparent", TRACEPARENT)
            .json(&json!({"target_url": rx.url("/r"),
                   "subscribed_events": ["message.sent", "webhook_subscription.created"]})),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let created = rx.wait_for(Some("/r"), 1, WAIT).await[0].json();
    assert_eq!(created["event_type"], json!("webhook_subscription.created"));
    assert_eq!(created["trace_id"], json!(TRACE));

    let event = json!({"partner_id": partner, "event_type": "message.sent", "data": {}});
    let publish = || {
        app.http
            .post(app.url("/admin/v1/events"))
            .bearer_auth(ADMIN_TOKEN)
    };
    let (status, generated, body) = send(publish().json(&event)).await;
    assert_eq!(status, 202, "{body}");
    assert!(is_trace_id(&generated), "{generated}");
    let sent = "0af7651916cd43dd8448eb211c80319c";
    let (status, echoed, body) = send(publish().header("x-request-id", sent).json(&event)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(echoed, sent);

    let got = rx.wait_for(Some("/r"), 3, WAIT).await;
    let mut traces: Vec<String> = got[1..]
        .iter()
        .map(|r| r.json()["trace_id"].as_str().unwrap().to_owned())
        .collect();
    traces.sort();
    let mut want = vec![generated, sent.to_owned()];
    want.sort();
    assert_eq!(traces, want);
}

crate::per_backend!(
    a_sent_id_is_the_envelope_trace_id_and_comes_back,
    each_request_gets_its_own_id,
    published_events_carry_the_request_trace_id,
);
