//! `POST …/rotate-secret`: during the grace period deliveries verify with the old secret and the
//! new one, after it only with the new one — as the `standardwebhooks` package sees it.

use crate::common::*;
use crate::python;
use crate::receiver::Received;
use hookline_core::SigningSecret;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// A sealing key, so the test also shows both secrets are stored sealed.
const SEALING_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

async fn rotation_keeps_the_old_secret_valid_for_the_grace_period_only(backend: Backend) {
    let mut opts = Options::default();
    opts.raw.secret_key = Some(SEALING_KEY.into());
    let app = TestApp::spawn_with(backend, opts).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let sub = subscribe(&app, &key, &rx.url("/h"), &["message.sent"], None).await;
    let old = sub["signing_secret"].as_str().unwrap().to_owned();

    let rotate = format!("{}/rotate-secret", subscription_path(&sub));
    let (s, rotated) = app
        .call(
            &key,
            Method::POST,
            &rotate,
            Some(json!({"grace_period_seconds": 2})),
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new = rotated["signing_secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    let expires = chrono::DateTime::parse_from_rfc3339(
        rotated["previous_secret_expires_at"].as_str().unwrap(),
    )
    .unwrap();
    assert_sealed_at_rest(&app, &[&old, &new]).await;

    app.publish(event(&partner, "message.sent", None)).await;
    let during = rx.wait_for(Some("/h"), 1, WAIT).await.remove(0);
    let signatures: Vec<&str> = during.header("webhook-signature").split(' ').collect();
    assert_eq!(
        signatures.len(),
        2,
        "both secrets sign during the grace period"
    );
    let ts: i64 = during.header("webhook-timestamp").parse().unwrap();
    let (old_s, new_s) = (secret(&old), secret(&new));
    let id = during.header("webhook-id");
    assert_eq!(
        signatures[0],
        new_s.sign_standard(id, ts, &during.body),
        "new first"
    );
    assert_eq!(signatures[1], old_s.sign_standard(id, ts, &during.body));
    assert_eq!(
        during.header("x-webhook-signature"),
        new_s.sign_legacy(ts, &during.body),
        "the legacy header carries the new secret's signature"
    );

    // Past the grace period (on the server's clock, which is this one).
    let left = expires.signed_duration_since(chrono::Utc::now());
    tokio::time::sleep(left.to_std().unwrap_or_default() + Duration::from_millis(300)).await;
    app.publish(event(&partner, "message.sent", None)).await;
    let after = rx.wait_for(Some("/h"), 2, WAIT).await.remove(1);
    assert_eq!(after.header("webhook-signature").split(' ').count(), 1);

    let lines = [
        line(&during, &old, true),
        line(&during, &new, true),
        line(&after, &new, true),
        line(&after, &old, false),
    ];
    verify_with_standardwebhooks(&lines.concat(), 4).await;
}

/// Grace 0 ends the old secret at once; the default grace is 24 h; the bounds are enforced.
async fn rotation_grace_period_bounds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let sub = subscribe(&app, &key, &rx.url("/h"), &["message.sent"], None).await;
    let rotate = format!("{}/rotate-secret", subscription_path(&sub));

    // No body at all: the default grace period.
    let r = app
        .http
        .post(app.url(&rotate))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (s, body) = into_parts(r).await;
    assert_eq!(s, 200, "{body}");
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["previous_secret_expires_at"].as_str().unwrap())
            .unwrap();
    let grace = expires
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!((86_000..=86_400).contains(&grace), "{grace}");

    for bad in [json!(-1), json!(604_801)] {
        let (s, body) = app
            .call(
                &key,
                Method::POST,
                &rotate,
                Some(json!({"grace_period_seconds": bad})),
            )
            .await;
        let message = assert_error(s, &body, 400, 1005);
        assert!(
            message.contains("grace_period_seconds must be between 0 and 604800"),
            "{message}"
        );
    }
    let (s, body) = app
        .call(
            &key,
            Method::POST,
            &rotate,
            Some(json!({"grace_period_seconds": "1h"})),
        )
        .await;
    assert_error(s, &body, 400, 1003);

    let (s, body) = app
        .call(
            &key,
            Method::POST,
            &rotate,
            Some(json!({"grace_period_seconds": 0})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let newest = body["signing_secret"].as_str().unwrap().to_owned();
    app.publish(event(&partner, "message.sent", None)).await;
    let got = rx.wait_for(Some("/h"), 1, WAIT).await.remove(0);
    let ts: i64 = got.header("webhook-timestamp").parse().unwrap();
    assert_eq!(
        got.header("webhook-signature"),
        secret(&newest).sign_standard(got.header("webhook-id"), ts, &got.body),
        "only the newest secret signs"
    );
}

/// Another partner's subscription, and an unknown id, are 404 — nothing rotates.
async fn rotation_is_tenant_isolated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key_a) = app.partner("a").await;
    let (_, key_b) = app.partner("b").await;
    let sub = subscribe(&app, &key_a, "https://a.example/h", &["message.sent"], None).await;
    let rotate = format!("{}/rotate-secret", subscription_path(&sub));
    let (s, body) = app
        .call(&key_b, Method::POST, &rotate, Some(json!({})))
        .await;
    assert_error(s, &body, 404, 2001);
    let unknown = "/v3/webhook-subscriptions/00000000-0000-4000-8000-000000000000/rotate-secret";
    let (s, body) = app
        .call(&key_a, Method::POST, unknown, Some(json!({})))
        .await;
    assert_error(s, &body, 404, 2001);
    let (s, body) = app
        .call(
            &key_a,
            Method::POST,
            &format!("/api/partner{rotate}"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "the SDK prefix too: {body}");
}

/// Two nodes on one PostgreSQL database: a node that signed with the old secret (its signer
/// cache holds it) signs with the new one as soon as another node rotated it.
#[tokio::test]
async fn every_node_signs_with_the_rotated_secret() {
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.another_node().await;
    let rx = TestReceiver::start().await;
    let (partner, key) = a.partner("acme").await;
    let sub = subscribe(&a, &key, &rx.url("/h"), &["message.sent"], None).await;
    // Published through B: B hands it to its own dispatcher, whose signer caches the secret.
    b.publish(event(&partner, "message.sent", None)).await;
    let first = rx.wait_for(Some("/h"), 1, WAIT).await.remove(0);
    assert_signed_by(&first, sub["signing_secret"].as_str().unwrap());

    let rotate = format!("{}/rotate-secret", subscription_path(&sub));
    let (s, rotated) = a
        .call(
            &key,
            Method::POST,
            &rotate,
            Some(json!({"grace_period_seconds": 0})),
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    b.publish(event(&partner, "message.sent", None)).await;
    let second = rx.wait_for(Some("/h"), 2, WAIT).await.remove(1);
    assert_signed_by(&second, rotated["signing_secret"].as_str().unwrap());
}

fn assert_signed_by(r: &Received, whsec: &str) {
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    assert_eq!(
        r.header("webhook-signature"),
        secret(whsec).sign_standard(r.header("webhook-id"), ts, &r.body)
    );
}

fn secret(whsec: &str) -> SigningSecret {
    SigningSecret::parse(whsec).unwrap()
}

/// Neither secret is in the store as issued (HOOKLINE_SECRET_KEY seals both).
async fn assert_sealed_at_rest(app: &TestApp, secrets: &[&str]) {
    let store = app.store().await;
    let mut stored = store.signing_secrets().await.unwrap();
    stored.extend(store.previous_signing_secrets().await.unwrap());
    assert_eq!(stored.len(), 2, "the current and the previous secret");
    for (_, value) in &stored {
        assert!(
            secrets.iter().all(|s| !value.contains(s)),
            "stored unsealed"
        );
    }
}

/// One input line for `verify_rotation.py`.
fn line(r: &Received, secret: &str, expect: bool) -> String {
    let headers: serde_json::Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap())))
        .collect();
    let body = std::str::from_utf8(&r.body).unwrap();
    let mut line =
        json!({"secret": secret, "headers": headers, "body": body, "expect": expect}).to_string();
    line.push('\n');
    line
}

/// Runs the `standardwebhooks` reference verifier over `lines`; each must come out as expected.
async fn verify_with_standardwebhooks(lines: &str, n: usize) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(python::python())
        .arg(python::script("verify_rotation.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "standardwebhooks disagreed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("ok ").count(), n, "{stdout}");
}

crate::per_backend!(
    rotation_keeps_the_old_secret_valid_for_the_grace_period_only,
    rotation_grace_period_bounds,
    rotation_is_tenant_isolated,
);
