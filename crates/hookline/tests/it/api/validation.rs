//! Bad requests to the partner API: every validation error names its problem in the envelope,
//! as do unknown ids, paths and methods and oversized bodies.

use super::sub_body;
use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// A subscription body `POST /v3/webhook-subscriptions` refuses, with the status, code and a
/// word of the message it gets.
type Case = (Value, u16, u64, &'static str);

/// Missing required fields, and target URLs that are not absolute HTTPS URLs without credentials, fragment or whitespace, of at most 2048 bytes.
fn missing_fields_and_bad_target_urls() -> Vec<Case> {
    let long = format!("https://example.com/{}", "a".repeat(2100));
    vec![
        (
            json!({"subscribed_events": ["message.sent"]}),
            400,
            1001,
            "target_url",
        ),
        (
            json!({"target_url": "https://example.com/v"}),
            400,
            1001,
            "subscribed_events",
        ),
        (
            json!({"target_url": "http://example.com/v", "subscribed_events": ["message.sent"]}),
            400,
            1005,
            "HTTPS",
        ),
        (
            json!({"target_url": "https://u:p@example.com/v", "subscribed_events": ["message.sent"]}),
            400,
            1005,
            "credentials",
        ),
        (
            json!({"target_url": "https://example.com/v#f", "subscribed_events": ["message.sent"]}),
            400,
            1005,
            "fragment",
        ),
        (
            json!({"target_url": long, "subscribed_events": ["message.sent"]}),
            400,
            1005,
            "2048",
        ),
        (
            json!({"target_url": "not-a-url", "subscribed_events": ["message.sent"]}),
            400,
            1005,
            "not-a-url",
        ),
        (
            json!({"target_url": "https://example.com/a\nb", "subscribed_events": ["message.sent"]}),
            400,
            1005,
            "whitespace",
        ),
        (
            json!({"target_url": "https://LISTEN.hookline.invalid/3b1df0b8-1c56-4b1e-9f3e-2d6a8e2b7c10", "subscribed_events": ["message.sent"]}),
            400,
            1005,
            "reserved for hookline listen",
        ),
        (
            json!({"target_url": "https://listen.hookline.invalid./x", "subscribed_events": ["message.sent"]}),
            400,
            1005,
            "reserved for hookline listen",
        ),
    ]
}

/// Event type lists that are empty or name unknown types, and phone filters that are too long or not E.164.
fn bad_event_types_and_phone_numbers() -> Vec<Case> {
    vec![
        (
            json!({"target_url": "https://example.com/v", "subscribed_events": ["message.sent"],
                   "phone_numbers": (0..1001).map(|i| format!("+1202555{i:04}")).collect::<Vec<_>>()}),
            400,
            1005,
            "at most 1000",
        ),
        (
            json!({"target_url": "https://example.com/v", "subscribed_events": []}),
            400,
            1005,
            "at least one",
        ),
        (
            json!({"target_url": "https://example.com/v", "subscribed_events": ["message.sent", "bogus.one", "bogus.two"]}),
            400,
            1005,
            "bogus.one, bogus.two",
        ),
        (
            json!({"target_url": "https://example.com/v", "subscribed_events": ["message.sent"], "phone_numbers": ["+1202555123x"]}),
            400,
            1002,
            "+1202555123x",
        ),
        (
            json!({"target_url": "https://example.com/v", "subscribed_events": ["message.sent"], "phone_numbers": ["2025551234"]}),
            400,
            1002,
            "2025551234",
        ),
    ]
}

/// Well-formed JSON of the wrong type, at the top or in a field.
fn wrongly_typed_json() -> Vec<Case> {
    vec![
        (
            json!({"target_url": 42, "subscribed_events": ["message.sent"]}),
            400,
            1003,
            "target_url",
        ),
        (
            json!({"target_url": "https://example.com/v", "subscribed_events": "message.sent"}),
            400,
            1003,
            "subscribed_events",
        ),
        (
            json!({"target_url": "https://example.com/v", "subscribed_events": ["message.sent", 7]}),
            400,
            1003,
            "subscribed_events[1]",
        ),
        (json!([1, 2]), 400, 1003, "JSON object"),
    ]
}

/// Routing key headers that are not a header name, are reserved, or collide with the routing id header.
fn bad_routing_key_headers() -> Vec<Case> {
    vec![
        (
            json!({"target_url": "https://example.com/v", "subscribed_events": ["message.sent"], "routing_key_header": "bad header"}),
            400,
            1005,
            "routing_key_header",
        ),
        (
            json!({"target_url": "https://example.com/v", "subscribed_events": ["message.sent"], "routing_key_header": "Transfer-Encoding"}),
            400,
            1005,
            "routing_key_header 'Transfer-Encoding'",
        ),
        (
            json!({"target_url": "https://example.com/v", "subscribed_events": ["message.sent"], "routing_key_header": "linq-chat-id"}),
            400,
            1005,
            "must differ from routing_id_header ('Linq-Chat-Id')",
        ),
    ]
}

/// The partner's subscriptions, as listed.
async fn listed(app: &TestApp, key: &str) -> Vec<Value> {
    let (s, list) = app
        .call(key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(s, 200, "{list}");
    list["subscriptions"].as_array().unwrap().clone()
}

/// Posts every case, checks each is refused as it says, and that nothing was stored.
async fn assert_refused(backend: Backend, cases: Vec<Case>) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    for (body, status, code, needle) in cases {
        let (s, v) = app
            .call(
                &key,
                Method::POST,
                "/v3/webhook-subscriptions",
                Some(body.clone()),
            )
            .await;
        let msg = assert_error(s, &v, status, code);
        assert!(msg.contains(needle), "{body} → {msg}");
    }
    assert_eq!(
        listed(&app, &key).await,
        Vec::<Value>::new(),
        "nothing invalid was stored"
    );
}

async fn missing_fields_and_bad_target_urls_are_refused_naming_the_problem(backend: Backend) {
    assert_refused(backend, missing_fields_and_bad_target_urls()).await;
}

async fn bad_event_types_and_phone_numbers_are_refused_naming_the_problem(backend: Backend) {
    assert_refused(backend, bad_event_types_and_phone_numbers()).await;
}

async fn wrongly_typed_json_is_400_1003_naming_the_field(backend: Backend) {
    assert_refused(backend, wrongly_typed_json()).await;
}

async fn bad_routing_key_headers_are_refused_naming_the_header(backend: Backend) {
    assert_refused(backend, bad_routing_key_headers()).await;
}

/// POSTs `raw` as a JSON body to `path` with the partner's `key`.
async fn post_raw(app: &TestApp, key: &str, path: &str, raw: &'static str) -> (u16, Value) {
    let r = app
        .http
        .post(app.url(path))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    into_parts(r).await
}

async fn malformed_json_and_an_empty_body_are_400_1003(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    for raw in ["{\"target_url\": ", "", "not json"] {
        let (s, v) = post_raw(&app, &key, "/v3/webhook-subscriptions", raw).await;
        assert_error(s, &v, 400, 1003);
    }
    assert_eq!(
        listed(&app, &key).await,
        Vec::<Value>::new(),
        "nothing invalid was stored"
    );
}

/// An optional body (here a rotation's) may be left out or be `null`; a blank one is not JSON
/// and is refused, as `/openapi.json` says.
async fn an_optional_body_may_be_absent_or_null_but_not_blank(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let sub = app
        .create_subscription(&key, sub_body("https://example.com/optional-body"))
        .await;
    let rotate = format!("{}/rotate-secret", subscription_path(&sub));
    for (raw, status) in [
        ("", 200),
        ("null", 200),
        (" null\n", 200),
        ("\t", 400),
        ("\n", 400),
    ] {
        let (s, v) = post_raw(&app, &key, &rotate, raw).await;
        assert_eq!(s, status, "{raw:?}: {v}");
        if status == 400 {
            assert_error(s, &v, 400, 1003);
        }
    }
}

async fn unknown_fields_are_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let (s, _) = app.call(&key, Method::POST, "/v3/webhook-subscriptions",
        Some(json!({"target_url": "https://example.com/extra", "subscribed_events": ["message.sent"], "something_new": 1}))).await;
    assert_eq!(s, 201);
    assert_eq!(listed(&app, &key).await.len(), 1);
}

async fn updates_are_validated_like_creates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let created = app
        .create_subscription(
            &key,
            json!({"target_url": "https://example.com/v", "subscribed_events": ["message.sent"]}),
        )
        .await;
    let one = format!(
        "/v3/webhook-subscriptions/{}",
        created["id"].as_str().unwrap()
    );
    for (body, code) in [
        (json!({"target_url": "http://example.com/x"}), 1005),
        (json!({"subscribed_events": []}), 1005),
        (json!({"phone_numbers": ["555"]}), 1002),
        (json!({"is_active": "yes"}), 1003),
    ] {
        let (s, v) = app.call(&key, Method::PUT, &one, Some(body)).await;
        assert_error(s, &v, 400, code);
    }
    let (_, after) = app.call(&key, Method::GET, &one, None).await;
    assert_eq!(
        after,
        created_without_secret(created),
        "a refused update changed nothing"
    );
}

/// What GET answers for a subscription just created: the create answer without the secret.
fn created_without_secret(mut created: Value) -> Value {
    created.as_object_mut().unwrap().remove("signing_secret");
    created
}

async fn unknown_ids_paths_methods_and_big_bodies_get_the_envelope(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            raw: hookline::config::RawConfig {
                max_body_bytes: Some(4096),
                ..Options::default().raw
            },
            ..Options::default()
        },
    )
    .await;
    let (_, key) = app.partner("acme").await;
    for id in ["not-a-uuid", "0190c2a0-0000-7000-8000-000000000000"] {
        let (s, v) = app
            .call(
                &key,
                Method::GET,
                &format!("/v3/webhook-subscriptions/{id}"),
                None,
            )
            .await;
        let msg = assert_error(s, &v, 404, 2001);
        assert!(msg.contains(id));
    }
    let (s, v) = app.call(&key, Method::GET, "/v3/nothing-here", None).await;
    assert_error(s, &v, 404, 2001);
    // Ids that do not even decode are unknown ids too, in the envelope.
    for bad in [
        "/v3/webhook-subscriptions/%FF",
        "/v3/webhook-subscriptions/a%00b",
    ] {
        let (s, v) = app.call(&key, Method::GET, bad, None).await;
        assert_error(s, &v, 404, 2001);
    }
    let (s, v) = app
        .call(&key, Method::PATCH, "/v3/webhook-subscriptions", None)
        .await;
    assert_error(s, &v, 405, 1005);
    let (s, v) = app
        .call(&key, Method::POST, "/v3/webhook-events", None)
        .await;
    assert_error(s, &v, 405, 1005);
    let big = json!({"target_url": "https://example.com/big", "subscribed_events": ["message.sent"], "pad": "x".repeat(8192)});
    let (s, v) = app
        .call(&key, Method::POST, "/v3/webhook-subscriptions", Some(big))
        .await;
    assert_error(s, &v, 413, 1003);
    // The connection stays usable after errors (keep-alive clients).
    let (s, _) = app
        .call(&key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(s, 200);
}

crate::per_backend!(
    missing_fields_and_bad_target_urls_are_refused_naming_the_problem,
    bad_event_types_and_phone_numbers_are_refused_naming_the_problem,
    wrongly_typed_json_is_400_1003_naming_the_field,
    bad_routing_key_headers_are_refused_naming_the_header,
    malformed_json_and_an_empty_body_are_400_1003,
    an_optional_body_may_be_absent_or_null_but_not_blank,
    unknown_fields_are_ignored,
    updates_are_validated_like_creates,
    unknown_ids_paths_methods_and_big_bodies_get_the_envelope,
);

/// Messages are in the caller's terms: a compressed body is named as such (not "malformed
/// JSON"), serde's type names do not leak, and quoted values are cut at 64 characters.
#[tokio::test]
async fn errors_speak_the_callers_language() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, key) = app.partner("acme").await;
    let r = app
        .http
        .post(app.url("/v3/webhook-subscriptions"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0x08, 0x00])
        .send()
        .await
        .unwrap();
    let (s, v) = into_parts(r).await;
    let msg = assert_error(s, &v, 400, 1003);
    assert!(
        msg.starts_with("Content-Encoding 'gzip' is not supported"),
        "{msg}"
    );

    let (s, v) = app
        .admin(
            Method::POST,
            "/admin/v1/events/batch",
            Some(json!({"events": [1]})),
        )
        .await;
    let msg = assert_error(s, &v, 400, 1003);
    assert!(
        msg.contains("expected a JSON object") && !msg.contains("struct"),
        "{msg}"
    );

    let long = "z".repeat(1000);
    let (s, v) = app
        .call(
            &key,
            Method::POST,
            "/v3/webhook-subscriptions",
            Some(json!({"target_url": "https://example.com/q", "subscribed_events": long})),
        )
        .await;
    let msg = assert_error(s, &v, 400, 1003);
    assert!(msg.contains(&format!("\"{}…\"", "z".repeat(64))), "{msg}");
    let (s, v) = app.call(&key, Method::POST, "/v3/webhook-subscriptions",
        Some(json!({"target_url": "https://example.com/q", "subscribed_events": ["message.sent"], "routing_id_header": "a".repeat(1000)}))).await;
    let msg = assert_error(s, &v, 400, 1005);
    assert!(msg.contains(&format!("'{}…'", "a".repeat(64))), "{msg}");
}
