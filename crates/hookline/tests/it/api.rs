//! The partner and operator APIs over real HTTP: every endpoint, status and error code.

use super::common::*;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

fn sub_body(url: &str) -> Value {
    json!({"target_url": url, "subscribed_events": ["message.sent", "message.received"]})
}

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
        let text = app
            .http
            .get(app.url(&path))
            .bearer_auth(&key)
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
        let (s, created) = app
            .call(
                &key,
                Method::POST,
                &format!("{prefix}/v3/webhook-subscriptions"),
                Some(sub_body(&url)),
            )
            .await;
        assert_eq!(s, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let one = format!("{prefix}/v3/webhook-subscriptions/{id}");

        let (s, list) = app
            .call(
                &key,
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

        let (s, got) = app.call(&key, Method::GET, &one, None).await;
        assert_eq!(s, 200);
        assert_eq!(got["target_url"], json!(url));
        assert_eq!(
            got["subscribed_events"],
            json!(["message.sent", "message.received"])
        );
        assert_eq!(got["phone_numbers"], Value::Null);

        // Partial update: only is_active changes.
        let (s, upd) = app
            .call(&key, Method::PUT, &one, Some(json!({"is_active": false})))
            .await;
        assert_eq!(s, 200, "{upd}");
        assert_eq!(upd["is_active"], json!(false));
        assert_eq!(upd["target_url"], got["target_url"]);
        assert_eq!(upd["subscribed_events"], got["subscribed_events"]);
        assert_eq!(upd["created_at"], got["created_at"]);
        assert!(upd["updated_at"].as_str().unwrap() > got["updated_at"].as_str().unwrap());

        // Set, then clear the phone filter with null and with [].
        let (_, upd) = app.call(&key, Method::PUT, &one, Some(json!({"phone_numbers": ["+447911123456"], "subscribed_events": ["call.ended"]}))).await;
        assert_eq!(upd["phone_numbers"], json!(["+447911123456"]));
        assert_eq!(upd["subscribed_events"], json!(["call.ended"]));
        assert_eq!(upd["is_active"], json!(false));
        let (_, upd) = app
            .call(
                &key,
                Method::PUT,
                &one,
                Some(json!({"phone_numbers": null})),
            )
            .await;
        assert_eq!(upd["phone_numbers"], Value::Null);
        app.call(
            &key,
            Method::PUT,
            &one,
            Some(json!({"phone_numbers": ["+447911123456"]})),
        )
        .await;
        let (_, upd) = app
            .call(&key, Method::PUT, &one, Some(json!({"phone_numbers": []})))
            .await;
        assert_eq!(upd["phone_numbers"], Value::Null);
        let (_, upd) = app
            .call(
                &key,
                Method::PUT,
                &one,
                Some(json!({"target_url": format!("{url}2"), "is_active": true})),
            )
            .await;
        assert_eq!(upd["target_url"], json!(format!("{url}2")));
        assert_eq!(upd["is_active"], json!(true));
        let (_, again) = app.call(&key, Method::GET, &one, None).await;
        assert_eq!(again, upd);

        let resp = app
            .http
            .delete(app.url(&one))
            .bearer_auth(&key)
            .header("accept", "*/*")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        assert!(resp.bytes().await.unwrap().is_empty());
        let (s, v) = app.call(&key, Method::GET, &one, None).await;
        assert_error(s, &v, 404, 2001);
        let (s, v) = app.call(&key, Method::DELETE, &one, None).await;
        assert_error(s, &v, 404, 2001);
        // The URL is free again once deleted.
        app.create_subscription(&key, sub_body(&format!("{url}2")))
            .await;
    }
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

async fn authentication_failures_are_401_2004_with_the_seed_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (partner, key) = app.partner("acme").await;
    let cases: Vec<Option<String>> = vec![
        None,
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(format!("Basic {key}")),
        Some("Bearer hl_live_unknown".into()),
        Some(key.clone()),
    ];
    for auth in cases {
        for (method, path) in [
            (Method::GET, "/v3/webhook-subscriptions"),
            (Method::POST, "/v3/webhook-subscriptions"),
            (Method::GET, "/v3/webhook-events"),
            (
                Method::DELETE,
                "/v3/webhook-subscriptions/0190c2a0-0000-7000-8000-000000000000",
            ),
        ] {
            let mut req = app.http.request(method.clone(), app.url(path));
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let (s, v) = into_parts(req.send().await.unwrap()).await;
            let msg = assert_error(s, &v, 401, 2004);
            assert_eq!(
                msg,
                "Unauthorized - missing or invalid authentication token"
            );
        }
    }
    // Scheme is case-insensitive.
    let r = app
        .http
        .get(app.url("/v3/webhook-events"))
        .header("authorization", format!("bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Revoked keys stop working at once; other keys keep working.
    let (_, k2) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/partners/{partner}/api-keys"),
            None,
        )
        .await;
    let (_, list) = app.admin(Method::GET, "/admin/v1/partners", None).await;
    assert!(list["partners"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == json!(partner)));
    let k2_key = k2["api_key"].as_str().unwrap();
    let (s, _) = app
        .call(k2_key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(s, 200);
    let r = app
        .http
        .delete(app.url(&format!(
            "/admin/v1/partners/{partner}/api-keys/{}",
            k2["id"].as_str().unwrap()
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (s, v) = app
        .call(k2_key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_error(s, &v, 401, 2004);
    let (s, _) = app
        .call(&key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(s, 200);
    let (s, v) = app
        .admin(
            Method::DELETE,
            &format!(
                "/admin/v1/partners/{partner}/api-keys/{}",
                k2["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_error(s, &v, 404, 2001);
}

async fn operator_api_needs_the_admin_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    for auth in [None, Some(key.as_str()), Some("wrong-admin-token-xxxxxxxx")] {
        let mut req = app.http.get(app.url("/admin/v1/partners"));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        let (s, v) = into_parts(req.send().await.unwrap()).await;
        assert_error(s, &v, 401, 2004);
    }
    let (s, v) = app
        .admin(
            Method::POST,
            "/admin/v1/partners",
            Some(json!({"name": "  "})),
        )
        .await;
    assert_error(s, &v, 400, 1005);
    let (s, v) = app
        .admin(Method::POST, "/admin/v1/partners", Some(json!({})))
        .await;
    assert_eq!(
        assert_error(s, &v, 400, 1001),
        "Missing required field 'name'"
    );
    let (s, v) = app
        .admin(Method::POST, "/admin/v1/partners/nope/api-keys", None)
        .await;
    assert_error(s, &v, 404, 2001);
}

async fn validation_errors_name_the_problem(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let long = format!("https://example.com/{}", "a".repeat(2100));
    let cases: Vec<(Value, u16, u64, &str)> = vec![
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
        (json!([1, 2]), 400, 1003, "JSON object"),
    ];
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
    // Malformed JSON and an empty body.
    for raw in ["{\"target_url\": ", "", "not json"] {
        let r = app
            .http
            .post(app.url("/v3/webhook-subscriptions"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let (s, v) = into_parts(r).await;
        assert_error(s, &v, 400, 1003);
    }
    // Unknown fields are ignored.
    let (s, _) = app.call(&key, Method::POST, "/v3/webhook-subscriptions",
        Some(json!({"target_url": "https://example.com/extra", "subscribed_events": ["message.sent"], "something_new": 1}))).await;
    assert_eq!(s, 201);
    // Nothing invalid was stored.
    let (_, list) = app
        .call(&key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1);

    // Update validates the same way.
    let id = list["subscriptions"][0]["id"].as_str().unwrap().to_owned();
    let one = format!("/v3/webhook-subscriptions/{id}");
    for (body, code) in [
        (json!({"target_url": "http://example.com/x"}), 1005),
        (json!({"subscribed_events": []}), 1005),
        (json!({"phone_numbers": ["555"]}), 1002),
        (json!({"is_active": "yes"}), 1003),
    ] {
        let (s, v) = app.call(&key, Method::PUT, &one, Some(body)).await;
        assert_error(s, &v, 400, code);
    }
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
        .put(app.url(&format!(
            "/v3/webhook-subscriptions/{}",
            other["id"].as_str().unwrap()
        )))
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
            &format!(
                "/v3/webhook-subscriptions/{}",
                first["id"].as_str().unwrap()
            ),
            Some(json!({"target_url": "https://example.com/same"})),
        )
        .await;
    assert_eq!(s, 200);
    // Another partner may use the same URL.
    app.create_subscription(&b, sub_body("https://example.com/same"))
        .await;
}

async fn partners_cannot_see_change_or_delete_each_others_subscriptions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, a) = app.partner("a").await;
    let (_, b) = app.partner("b").await;
    let sub = app
        .create_subscription(&a, sub_body("https://example.com/a-only"))
        .await;
    let one = format!("/v3/webhook-subscriptions/{}", sub["id"].as_str().unwrap());
    let (_, list) = app
        .call(&b, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(list["subscriptions"], json!([]));
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"is_active": false}))),
        (Method::DELETE, None),
    ] {
        let (s, v) = app.call(&b, method, &one, body).await;
        let msg = assert_error(s, &v, 404, 2001);
        assert!(msg.contains(sub["id"].as_str().unwrap()));
    }
    let (_, still) = app.call(&a, Method::GET, &one, None).await;
    assert_eq!(still["is_active"], json!(true));
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

async fn health_readiness_and_openapi_need_no_auth(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (s, doc) = into_parts(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v3/webhook-subscriptions",
        "/v3/webhook-subscriptions/{subscriptionId}",
        "/v3/webhook-events",
        "/admin/v1/partners",
        "/admin/v1/partners/{partner_id}/api-keys",
        "/admin/v1/events",
        "/admin/v1/events/batch",
    ] {
        assert!(paths.contains_key(p), "{p} missing from OpenAPI");
    }
    let props = &doc["components"]["schemas"]["CreatedWebhookSubscription"]["properties"];
    for f in [
        "id",
        "target_url",
        "subscribed_events",
        "is_active",
        "created_at",
        "updated_at",
        "phone_numbers",
        "signing_secret",
    ] {
        assert!(props.get(f).is_some(), "{f} missing from schema");
    }
}

async fn restart_keeps_partners_keys_and_subscriptions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (partner, key) = app.partner("acme").await;
    let sub = app
        .create_subscription(&key, sub_body("https://example.com/persist"))
        .await;
    let app = app.restart().await;
    let (s, got) = app
        .call(
            &key,
            Method::GET,
            &format!("/v3/webhook-subscriptions/{}", sub["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(got["target_url"], json!("https://example.com/persist"));
    let (_, list) = app.admin(Method::GET, "/admin/v1/partners", None).await;
    assert!(list["partners"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == json!(partner)));
}

/// PUT is a compare-and-set: concurrent partial updates of different fields all stick.
async fn concurrent_partial_updates_do_not_undo_each_other(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    for round in 0..5 {
        let created = app
            .create_subscription(&key, sub_body(&format!("https://example.com/{round}")))
            .await;
        let path = format!(
            "/v3/webhook-subscriptions/{}",
            created["id"].as_str().unwrap()
        );
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

/// SQLite is one process per file: a second server on the same file refuses to start.
#[tokio::test]
async fn a_second_server_on_the_same_sqlite_file_is_refused() {
    let mut app = TestApp::spawn(Backend::Sqlite).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // A start that wrongly succeeds would serve forever: bound it.
    let second = tokio::time::timeout(
        Duration::from_secs(30),
        hookline::serve(listener, app.settings.clone(), std::future::pending()),
    )
    .await
    .expect("the second server must refuse to start, not run");
    let message = format!("{:#}", second.expect_err("a second server must not start"));
    assert!(
        message.contains("another hookline process is serving"),
        "{message}"
    );
    // The first one is unaffected, and the lock goes with it.
    let (s, _) = app
        .call(ADMIN_TOKEN, Method::GET, "/admin/v1/partners", None)
        .await;
    assert_eq!(s, 200);
    app.shutdown().await;
    let app = app.restart().await;
    let (s, _) = app
        .call(ADMIN_TOKEN, Method::GET, "/admin/v1/partners", None)
        .await;
    assert_eq!(s, 200);
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
    authentication_failures_are_401_2004_with_the_seed_message,
    operator_api_needs_the_admin_token,
    validation_errors_name_the_problem,
    duplicate_target_url_is_409_per_partner_on_create_and_update,
    partners_cannot_see_change_or_delete_each_others_subscriptions,
    unknown_ids_paths_methods_and_big_bodies_get_the_envelope,
    health_readiness_and_openapi_need_no_auth,
    restart_keeps_partners_keys_and_subscriptions,
    concurrent_partial_updates_do_not_undo_each_other,
    concurrent_creates_fail_and_succeed_independently,
);
