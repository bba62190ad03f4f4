//! Input hardening over real HTTP (issue 10, failures 7 to 9): `target_url` is unique per
//! partner in its normalised form but returned as written, port 0 is refused; every answer is
//! `no-store` and `nosniff`; error messages stay short whatever the input; a partner's
//! subscriptions are capped, also under concurrent creates.
//!
//! The servers run with `HOOKLINE_ROLE=api`: the targets here are never delivered to.

use super::sub_body;
use crate::common::*;
use hookline::config::{RawConfig, Role};
use reqwest::Method;
use serde_json::{json, Value};

crate::per_backend!(
    spellings_of_a_used_target_url_are_409_and_each_answer_keeps_the_callers_spelling,
    a_put_onto_another_spelling_of_a_used_target_url_is_409,
    port_0_is_refused,
    every_answer_is_no_store_and_nosniff_errors_and_secrets_included,
    ten_thousand_unknown_event_names_get_a_short_message_with_their_count,
    the_create_past_the_subscription_cap_is_409_until_one_is_deleted,
    concurrent_creates_at_the_cap_leave_exactly_the_cap,
    partner_names_and_key_labels_are_judged_as_sent,
);

/// An API-only server (nothing is ever delivered), with `cap` subscriptions per partner.
async fn api_server(backend: Backend, cap: Option<usize>) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            raw: RawConfig {
                role: Some(Role::Api),
                max_subscriptions_per_partner: cap,
                ..Options::default().raw
            },
            ..Options::default()
        },
    )
    .await
}

async fn create(app: &TestApp, key: &str, url: &str) -> (u16, Value) {
    app.call(
        key,
        Method::POST,
        "/v3/webhook-subscriptions",
        Some(sub_body(url)),
    )
    .await
}

async fn spellings_of_a_used_target_url_are_409_and_each_answer_keeps_the_callers_spelling(
    backend: Backend,
) {
    let app = api_server(backend, None).await;
    let (_, key) = app.partner("acme").await;
    let first = app
        .create_subscription(&key, sub_body("https://example.com/x"))
        .await;
    let first_id = first["id"].as_str().unwrap();
    for same in [
        "HTTPS://EXAMPLE.COM/x",
        "https://example.com:443/x",
        "https://Example.com:443/./x",
    ] {
        let (s, v) = create(&app, &key, same).await;
        let msg = assert_error(s, &v, 409, 1005);
        assert!(msg.contains(first_id), "{same}: {msg}");
    }
    let idn = app
        .create_subscription(&key, sub_body("https://BÜCHER.example/h"))
        .await;
    assert_eq!(idn["target_url"], json!("https://BÜCHER.example/h"));
    let (s, v) = create(&app, &key, "https://xn--bcher-kva.example/h").await;
    let msg = assert_error(s, &v, 409, 1005);
    assert!(msg.contains(idn["id"].as_str().unwrap()), "{msg}");

    // Paths are case-sensitive and another port is another target: both are new.
    for other in ["HTTPS://EXAMPLE.COM/X", "https://example.com:8443/x"] {
        let created = app.create_subscription(&key, sub_body(other)).await;
        assert_eq!(created["target_url"], json!(other), "stored as given");
        let (s, got) = app
            .call(&key, Method::GET, &subscription_path(&created), None)
            .await;
        assert_eq!((s, &got["target_url"]), (200, &json!(other)));
    }
}

async fn a_put_onto_another_spelling_of_a_used_target_url_is_409(backend: Backend) {
    let app = api_server(backend, None).await;
    let (_, key) = app.partner("acme").await;
    let first = app
        .create_subscription(&key, sub_body("https://example.com/x"))
        .await;
    let second = app
        .create_subscription(&key, sub_body("https://example.com/y"))
        .await;
    let put = |url: &'static str, sub: &Value| {
        let path = subscription_path(sub);
        let app = &app;
        let key = &key;
        async move {
            app.call(key, Method::PUT, &path, Some(json!({ "target_url": url })))
                .await
        }
    };
    let (s, v) = put("HTTPS://EXAMPLE.COM:443/x", &second).await;
    let msg = assert_error(s, &v, 409, 1005);
    assert!(msg.contains(first["id"].as_str().unwrap()), "{msg}");

    // Its own target in another spelling is no conflict, and the new spelling is kept.
    let (s, v) = put("HTTPS://EXAMPLE.COM:443/x", &first).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["target_url"], json!("HTTPS://EXAMPLE.COM:443/x"));
    let (s, v) = put("https://example.com/x", &second).await;
    assert_error(s, &v, 409, 1005);
}

async fn port_0_is_refused(backend: Backend) {
    let app = api_server(backend, None).await;
    let (_, key) = app.partner("acme").await;
    let (s, v) = create(&app, &key, "https://example.com:0/x").await;
    let msg = assert_error(s, &v, 400, 1005);
    assert!(msg.contains("port 0"), "{msg}");
    let sub = app
        .create_subscription(&key, sub_body("https://example.com/x"))
        .await;
    let (s, v) = app
        .call(
            &key,
            Method::PUT,
            &subscription_path(&sub),
            Some(json!({"target_url": "https://example.com:0/x"})),
        )
        .await;
    assert_error(s, &v, 400, 1005);
}

async fn every_answer_is_no_store_and_nosniff_errors_and_secrets_included(backend: Backend) {
    let app = api_server(backend, None).await;
    let (partner, key) = app.partner("acme").await;
    let send = |req: reqwest::RequestBuilder| async move { req.send().await.unwrap() };
    let answers = [
        (
            201,
            send(
                app.http
                    .post(app.url("/v3/webhook-subscriptions"))
                    .bearer_auth(&key)
                    .json(&sub_body("https://example.com/x")),
            )
            .await,
        ),
        (
            201,
            send(
                app.http
                    .post(app.url(&format!("/admin/v1/partners/{partner}/api-keys")))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({})),
            )
            .await,
        ),
        (
            200,
            send(
                app.http
                    .get(app.url("/v3/webhook-subscriptions"))
                    .bearer_auth(&key),
            )
            .await,
        ),
        (
            404,
            send(
                app.http
                    .get(app.url("/v3/webhook-subscriptions/0190c2a0-0000-7000-8000-000000000000"))
                    .bearer_auth(&key),
            )
            .await,
        ),
        (
            401,
            send(app.http.get(app.url("/v3/webhook-subscriptions"))).await,
        ),
        (404, send(app.http.get(app.url("/no/such/path"))).await),
    ];
    for (status, r) in answers {
        assert_eq!(r.status().as_u16(), status, "{}", r.url());
        let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header("cache-control"), Some("no-store"), "{}", r.url());
        assert_eq!(
            header("x-content-type-options"),
            Some("nosniff"),
            "{}",
            r.url()
        );
    }
}

async fn ten_thousand_unknown_event_names_get_a_short_message_with_their_count(backend: Backend) {
    let app = api_server(backend, None).await;
    let (_, key) = app.partner("acme").await;
    let names: Vec<String> = (0..10_000).map(|i| format!("bogus.event_{i}")).collect();
    let (s, v) = app
        .call(
            &key,
            Method::POST,
            "/v3/webhook-subscriptions",
            Some(json!({"target_url": "https://example.com/x", "subscribed_events": names})),
        )
        .await;
    let msg = assert_error(s, &v, 400, 1005);
    assert!(msg.len() < 1024, "{} bytes: {msg}", msg.len());
    assert!(msg.contains("bogus.event_0"), "{msg}");
    assert!(msg.contains("9995 more"), "{msg}");

    // One huge offender is quoted cut short too.
    let (s, v) = app
        .call(
            &key,
            Method::POST,
            "/v3/webhook-subscriptions",
            Some(json!({"target_url": "https://example.com/x",
                        "subscribed_events": ["message.sent"],
                        "phone_numbers": ["+1".repeat(100_000)]})),
        )
        .await;
    let msg = assert_error(s, &v, 400, 1002);
    assert!(msg.len() < 1024, "{} bytes", msg.len());
}

async fn the_create_past_the_subscription_cap_is_409_until_one_is_deleted(backend: Backend) {
    let app = api_server(backend, Some(3)).await;
    let (_, key) = app.partner("acme").await;
    let mut subs = Vec::new();
    for i in 0..3 {
        let url = format!("https://example.com/{i}");
        subs.push(app.create_subscription(&key, sub_body(&url)).await);
    }
    let r = app
        .http
        .post(app.url("/v3/webhook-subscriptions"))
        .bearer_auth(&key)
        .json(&sub_body("https://example.com/3"))
        .send()
        .await
        .unwrap();
    let retry = r.headers().get("x-should-retry").cloned();
    let (s, v) = into_parts(r).await;
    let msg = assert_error(s, &v, 409, 1005);
    assert!(msg.contains('3') && msg.contains("delete"), "{msg}");
    assert_eq!(retry.unwrap(), "false", "SDKs must not retry it");

    let (_, other_key) = app.partner("other").await;
    app.create_subscription(&other_key, sub_body("https://example.com/3"))
        .await;
    let (s, _) = app
        .call(&key, Method::DELETE, &subscription_path(&subs[0]), None)
        .await;
    assert_eq!(s, 204);
    app.create_subscription(&key, sub_body("https://example.com/3"))
        .await;
}

async fn concurrent_creates_at_the_cap_leave_exactly_the_cap(backend: Backend) {
    const CAP: usize = 5;
    const RACERS: usize = 20;
    let app = api_server(backend, Some(CAP)).await;
    let (_, key) = app.partner("acme").await;
    for i in 0..CAP - 1 {
        let url = format!("https://example.com/{i}");
        app.create_subscription(&key, sub_body(&url)).await;
    }
    let urls: Vec<String> = (0..RACERS)
        .map(|i| format!("https://example.com/racer/{i}"))
        .collect();
    let answers =
        futures_util::future::join_all(urls.iter().map(|url| create(&app, &key, url))).await;
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        RACERS - 1,
        "{statuses:?}"
    );
    let (_, list) = app
        .call(&key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), CAP);
}

/// A partner's name and a key's label are judged as sent, as `/openapi.json` describes them
/// (Schemathesis found a label with a trailing form feed accepted): no control character even
/// at the edges, at most 200 characters with the spaces around them; stored trimmed.
async fn partner_names_and_key_labels_are_judged_as_sent(backend: Backend) {
    let app = api_server(backend, None).await;
    let (partner, _) = app.partner("acme").await;
    let keys = format!("/admin/v1/partners/{partner}/api-keys");
    let padded = format!(" {} ", "n".repeat(199));
    for name in ["globex\n", "\tglobex", padded.as_str()] {
        let body = json!({"name": name});
        let (s, v) = app
            .admin(Method::POST, "/admin/v1/partners", Some(body.clone()))
            .await;
        assert_error(s, &v, 400, 1005);
        let (s, v) = app.admin(Method::POST, &keys, Some(body)).await;
        assert_error(s, &v, 400, 1005);
    }
    let body = json!({"name": " globex "});
    let (s, v) = app
        .admin(Method::POST, "/admin/v1/partners", Some(body.clone()))
        .await;
    assert_eq!((s, &v["name"]), (201, &json!("globex")), "{v}");
    let (s, v) = app.admin(Method::POST, &keys, Some(body)).await;
    assert_eq!((s, &v["name"]), (201, &json!("globex")), "{v}");
}
