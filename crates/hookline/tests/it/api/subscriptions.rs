//! Subscriptions CRUD through the partner API: create, list, get, update, delete; conflicts
//! (409) and concurrent writes.

use super::sub_body;
use crate::common::*;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

async fn create_returns_201_with_a_32_byte_whsec_secret_shown_only_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let created = app
        .create_subscription(
            &key,
            json!({"target_url": "https://example.com/hook?version=2026-02-03",
                   "subscribed_events": ["message.sent"], "phone_numbers": ["+12025551234"]}),
        )
        .await;
    let secret = created["signing_secret"].as_str().unwrap();
    let raw = secret.strip_prefix("whsec_").expect("whsec_ prefix");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .unwrap();
    assert_eq!(decoded.len(), 32);
    assert_eq!(created["is_active"], json!(true));
    assert_eq!(
        created["target_url"],
        json!("https://example.com/hook?version=2026-02-03")
    );
    assert_eq!(created["phone_numbers"], json!(["+12025551234"]));
    assert_eq!(created["routing_id_header"], Value::Null);
    assert_eq!(created["routing_key_header"], Value::Null);
    assert_eq!(created["created_at"], created["updated_at"]);
    let id = created["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());

    // No later answer carries the secret.
    for path in [
        "/v3/webhook-subscriptions".to_owned(),
        format!("/v3/webhook-subscriptions/{id}"),
    ] {
        let text = app.get_text(&path, Some(&key)).await;
        assert!(
            !text.contains(secret) && !text.contains("signing_secret"),
            "{text}"
        );
    }
    let text = app
        .http
        .put(app.url(&format!("/v3/webhook-subscriptions/{id}")))
        .bearer_auth(&key)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !text.contains(secret) && !text.contains("signing_secret"),
        "{text}"
    );
    // Nor does a conflict error naming this subscription.
    let (s, v) = app.call(&key, Method::POST, "/v3/webhook-subscriptions",
        Some(json!({"target_url": "https://example.com/hook?version=2026-02-03", "subscribed_events": ["message.sent"]}))).await;
    assert_error(s, &v, 409, 1005);
    assert!(!v.to_string().contains(secret));
}

async fn secrets_differ_between_subscriptions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let a = app
        .create_subscription(&key, sub_body("https://example.com/a"))
        .await;
    let b = app
        .create_subscription(&key, sub_body("https://example.com/b"))
        .await;
    assert_ne!(a["signing_secret"], b["signing_secret"]);
}

async fn list_get_update_delete_roundtrip_on_both_prefixes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    for prefix in ["", "/api/partner"] {
        let url = format!("https://example.com/{prefix}x");
        let one = create_and_find_in_list(&app, &key, prefix, &url).await;
        let got = get_as_created(&app, &key, &one, &url).await;
        partial_update_changes_only_is_active(&app, &key, &one, &got).await;
        phone_filter_is_set_then_cleared_by_null_and_by_empty(&app, &key, &one).await;
        let url2 = format!("{url}2");
        target_url_and_is_active_change_together(&app, &key, &one, &url2).await;
        delete_answers_204_then_404_and_frees_the_url(&app, &key, &one, &url2).await;
    }
}

/// Creates a subscription to `url` under `prefix`, checks the list shows it, and returns its
/// path.
async fn create_and_find_in_list(app: &TestApp, key: &str, prefix: &str, url: &str) -> String {
    let (s, created) = app
        .call(
            key,
            Method::POST,
            &format!("{prefix}/v3/webhook-subscriptions"),
            Some(sub_body(url)),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (s, list) = app
        .call(
            key,
            Method::GET,
            &format!("{prefix}/v3/webhook-subscriptions"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == json!(id)));
    format!("{prefix}/v3/webhook-subscriptions/{id}")
}

/// GET `one` returns what `sub_body(url)` created.
async fn get_as_created(app: &TestApp, key: &str, one: &str, url: &str) -> Value {
    let (s, got) = app.call(key, Method::GET, one, None).await;
    assert_eq!(s, 200);
    assert_eq!(got["target_url"], json!(url));
    assert_eq!(
        got["subscribed_events"],
        json!(["message.sent", "message.received"])
    );
    assert_eq!(got["phone_numbers"], Value::Null);
    // The id in capitals names the same subscription (UUIDs are read in either case).
    let (head, id) = one.rsplit_once('/').unwrap();
    let (s, upper) = app
        .call(
            key,
            Method::GET,
            &format!("{head}/{}", id.to_uppercase()),
            None,
        )
        .await;
    assert_eq!((s, &upper), (200, &got));
    got
}

async fn partial_update_changes_only_is_active(app: &TestApp, key: &str, one: &str, got: &Value) {
    let (s, upd) = app
        .call(key, Method::PUT, one, Some(json!({"is_active": false})))
        .await;
    assert_eq!(s, 200, "{upd}");
    assert_eq!(upd["is_active"], json!(false));
    assert_eq!(upd["target_url"], got["target_url"]);
    assert_eq!(upd["subscribed_events"], got["subscribed_events"]);
    assert_eq!(upd["created_at"], got["created_at"]);
    assert!(upd["updated_at"].as_str().unwrap() > got["updated_at"].as_str().unwrap());
}

/// Sets the phone filter (with the event types, leaving is_active false), then clears it with
/// null and with [].
async fn phone_filter_is_set_then_cleared_by_null_and_by_empty(
    app: &TestApp,
    key: &str,
    one: &str,
) {
    let (_, upd) = app
        .call(
            key,
            Method::PUT,
            one,
            Some(json!({"phone_numbers": ["+447911123456"], "subscribed_events": ["call.ended"]})),
        )
        .await;
    assert_eq!(upd["phone_numbers"], json!(["+447911123456"]));
    assert_eq!(upd["subscribed_events"], json!(["call.ended"]));
    assert_eq!(upd["is_active"], json!(false));
    let (_, upd) = app
        .call(key, Method::PUT, one, Some(json!({"phone_numbers": null})))
        .await;
    assert_eq!(upd["phone_numbers"], Value::Null);
    app.call(
        key,
        Method::PUT,
        one,
        Some(json!({"phone_numbers": ["+447911123456"]})),
    )
    .await;
    let (_, upd) = app
        .call(key, Method::PUT, one, Some(json!({"phone_numbers": []})))
        .await;
    assert_eq!(upd["phone_numbers"], Value::Null);
}

/// Updates two fields at once; a later GET returns exactly what the PUT answered.
async fn target_url_and_is_active_change_together(app: &TestApp, key: &str, one: &str, url2: &str) {
    let (_, upd) = app
        .call(
            key,
            Method::PUT,
            one,
            Some(json!({"target_url": url2, "is_active": true})),
        )
        .await;
    assert_eq!(upd["target_url"], json!(url2));
    assert_eq!(upd["is_active"], json!(true));
    let (_, again) = app.call(key, Method::GET, one, None).await;
    assert_eq!(again, upd);
}

/// DELETE answers 204 with no body; the subscription is then 404 to GET and DELETE, and its
/// URL (`url2`) can be subscribed again.
async fn delete_answers_204_then_404_and_frees_the_url(
    app: &TestApp,
    key: &str,
    one: &str,
    url2: &str,
) {
    let resp = app
        .http
        .delete(app.url(one))
        .bearer_auth(key)
        .header("accept", "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp.bytes().await.unwrap().is_empty());
    let (s, v) = app.call(key, Method::GET, one, None).await;
    assert_error(s, &v, 404, 2001);
    let (s, v) = app.call(key, Method::DELETE, one, None).await;
    assert_error(s, &v, 404, 2001);
    app.create_subscription(key, sub_body(url2)).await;
}

async fn list_is_stable_and_includes_inactive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.create_subscription(&key, sub_body(&format!("https://example.com/{i}")))
                .await["id"]
                .clone(),
        );
    }
    app.call(
        &key,
        Method::PUT,
        &format!("/v3/webhook-subscriptions/{}", ids[2].as_str().unwrap()),
        Some(json!({"is_active": false})),
    )
    .await;
    let (_, list) = app
        .call(&key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    let got: Vec<Value> = list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(got, ids);
}

async fn webhook_events_lists_all_75_with_doc_url(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let (s, v) = app
        .call(&key, Method::GET, "/v3/webhook-events", None)
        .await;
    assert_eq!(s, 200);
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 75);
    for e in [
        "message.sent",
        "message.edited",
        "call.no_answer",
        "team_member.signed_out",
    ] {
        assert!(events.contains(&json!(e)), "{e}");
    }
    assert!(v["doc_url"].as_str().unwrap().starts_with("https://"));
}

async fn duplicate_target_url_is_409_per_partner_on_create_and_update(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, a) = app.partner("a").await;
    let (_, b) = app.partner("b").await;
    let first = app
        .create_subscription(&a, sub_body("https://example.com/same"))
        .await;
    let other = app
        .create_subscription(&a, sub_body("https://example.com/other"))
        .await;
    let r = app
        .http
        .post(app.url("/v3/webhook-subscriptions"))
        .bearer_auth(&a)
        .json(&sub_body("https://example.com/same"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-should-retry"], "false");
    let (s, v) = into_parts(r).await;
    let msg = assert_error(s, &v, 409, 1005);
    assert!(msg.contains(first["id"].as_str().unwrap()), "{msg}");
    // Update onto a used URL.
    let r = app
        .http
        .put(app.url(&subscription_path(&other)))
        .bearer_auth(&a)
        .json(&json!({"target_url": "https://example.com/same"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-should-retry"], "false");
    let (s, v) = into_parts(r).await;
    assert_error(s, &v, 409, 1005);
    // Updating a subscription to its own URL is fine.
    let (s, _) = app
        .call(
            &a,
            Method::PUT,
            &subscription_path(&first),
            Some(json!({"target_url": "https://example.com/same"})),
        )
        .await;
    assert_eq!(s, 200);
    // Another partner may use the same URL.
    app.create_subscription(&b, sub_body("https://example.com/same"))
        .await;
}

/// PUT is a compare-and-set: concurrent partial updates of different fields all stick.
async fn concurrent_partial_updates_do_not_undo_each_other(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    for round in 0..5 {
        let created = app
            .create_subscription(&key, sub_body(&format!("https://example.com/{round}")))
            .await;
        let path = subscription_path(&created);
        let patches = [
            json!({"is_active": false}),
            json!({"subscribed_events": ["message.read"]}),
            json!({"phone_numbers": ["+13105551234"]}),
            json!({"routing_id_header": "X-Chat"}),
            json!({"routing_key_header": "X-Route"}),
        ];
        let answers = futures_util::future::join_all(
            patches
                .iter()
                .map(|p| app.call(&key, Method::PUT, &path, Some(p.clone()))),
        )
        .await;
        for (status, body) in &answers {
            assert_eq!(*status, 200, "{body}");
        }
        let (_, got) = app.call(&key, Method::GET, &path, None).await;
        assert_eq!(got["is_active"], json!(false), "round {round}: {got}");
        assert_eq!(got["subscribed_events"], json!(["message.read"]), "{got}");
        assert_eq!(got["phone_numbers"], json!(["+13105551234"]), "{got}");
        assert_eq!(got["routing_id_header"], json!("X-Chat"), "{got}");
        assert_eq!(got["routing_key_header"], json!("X-Route"), "{got}");
    }
}

/// Many concurrent PUTs of one subscription on one node take turns: none gives up with 503
/// (racing the compare-and-set, the last of N needed N rounds), and each answer is a distinct
/// step of one serial order.
async fn many_concurrent_updates_of_one_subscription_all_succeed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let created = app
        .create_subscription(&key, sub_body("https://example.com/contended"))
        .await;
    let path = subscription_path(&created);
    let answers = futures_util::future::join_all((0..40).map(|i| {
        let body = json!({"target_url": format!("https://example.com/contended/{i}")});
        app.call(&key, Method::PUT, &path, Some(body))
    }))
    .await;
    let mut stamps: Vec<&str> = Vec::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        stamps.push(body["updated_at"].as_str().unwrap());
    }
    stamps.sort();
    stamps.dedup();
    assert_eq!(stamps.len(), 40, "every update is its own step");
    let (_, got) = app.call(&key, Method::GET, &path, None).await;
    let last = answers
        .iter()
        .max_by_key(|(_, b)| b["updated_at"].as_str().unwrap().to_owned())
        .unwrap();
    assert_eq!(
        got["target_url"], last.1["target_url"],
        "the last step stands"
    );
}

/// Concurrent creates, half of them for one target URL: exactly one of those wins, the others get
/// 409, the unique ones all succeed, and a failed create leaves nothing behind.
async fn concurrent_creates_fail_and_succeed_independently(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let bodies: Vec<Value> = (0..24)
        .map(|i| match i % 2 {
            0 => sub_body("https://example.com/same"),
            _ => sub_body(&format!("https://example.com/unique-{i}")),
        })
        .collect();
    let answers = futures_util::future::join_all(bodies.iter().map(|b| {
        app.call(
            &key,
            Method::POST,
            "/v3/webhook-subscriptions",
            Some(b.clone()),
        )
    }))
    .await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let conflicts = answers.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!((created, conflicts), (13, 11), "{answers:?}");
    let (_, list) = app
        .call(&key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 13);
}

crate::per_backend!(
    create_returns_201_with_a_32_byte_whsec_secret_shown_only_once,
    secrets_differ_between_subscriptions,
    list_get_update_delete_roundtrip_on_both_prefixes,
    list_is_stable_and_includes_inactive,
    webhook_events_lists_all_75_with_doc_url,
    duplicate_target_url_is_409_per_partner_on_create_and_update,
    concurrent_partial_updates_do_not_undo_each_other,
    many_concurrent_updates_of_one_subscription_all_succeed,
    concurrent_creates_fail_and_succeed_independently,
);
