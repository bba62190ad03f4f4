//! Authentication and tenancy: API keys and the admin token, and partners kept apart.

use super::sub_body;
use crate::common::*;
use reqwest::Method;
use serde_json::json;

/// Every partner endpoint, one of each method.
const PARTNER_ENDPOINTS: [(Method, &str); 4] = [
    (Method::GET, "/v3/webhook-subscriptions"),
    (Method::POST, "/v3/webhook-subscriptions"),
    (Method::GET, "/v3/webhook-events"),
    (
        Method::DELETE,
        "/v3/webhook-subscriptions/0190c2a0-0000-7000-8000-000000000000",
    ),
];

async fn missing_malformed_or_unknown_credentials_are_401_2004_with_the_seed_message(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let cases: Vec<Option<String>> = vec![
        None,
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(format!("Basic {key}")),
        Some("Bearer hl_live_unknown".into()),
        Some(key.clone()),
    ];
    for auth in cases {
        for (method, path) in PARTNER_ENDPOINTS {
            let mut req = app.http.request(method, app.url(path));
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
}

async fn the_bearer_scheme_is_case_insensitive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let r = app
        .http
        .get(app.url("/v3/webhook-events"))
        .header("authorization", format!("bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn a_revoked_key_stops_working_at_once_and_the_partners_other_keys_keep_working(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (partner, key) = app.partner("acme").await;
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
    let revoke = format!(
        "/admin/v1/partners/{partner}/api-keys/{}",
        k2["id"].as_str().unwrap()
    );
    let r = app
        .http
        .delete(app.url(&revoke))
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
    // Revoking it again: the key is gone.
    let (s, v) = app.admin(Method::DELETE, &revoke, None).await;
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

async fn partners_cannot_see_change_or_delete_each_others_subscriptions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, a) = app.partner("a").await;
    let (_, b) = app.partner("b").await;
    let sub = app
        .create_subscription(&a, sub_body("https://example.com/a-only"))
        .await;
    let one = subscription_path(&sub);
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

crate::per_backend!(
    missing_malformed_or_unknown_credentials_are_401_2004_with_the_seed_message,
    the_bearer_scheme_is_case_insensitive,
    a_revoked_key_stops_working_at_once_and_the_partners_other_keys_keep_working,
    operator_api_needs_the_admin_token,
    partners_cannot_see_change_or_delete_each_others_subscriptions,
);
