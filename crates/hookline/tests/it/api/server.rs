//! The server as a whole: health, readiness and OpenAPI; what a restart keeps; one server per
//! SQLite file.

use super::sub_body;
use crate::common::*;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

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
        .call(&key, Method::GET, &subscription_path(&sub), None)
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

/// SQLite is one process per file: a second server, or `hookline migrate`, on the same file
/// refuses to start.
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
    // `hookline migrate` is refused the same way.
    let migrate = hookline::app::migrate(&app.settings.store).await;
    let message = format!("{:#}", migrate.expect_err("migrate beside a server"));
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

crate::per_backend!(
    health_readiness_and_openapi_need_no_auth,
    restart_keeps_partners_keys_and_subscriptions,
);
