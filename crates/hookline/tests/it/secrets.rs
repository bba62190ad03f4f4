//! Signing secrets at rest (`HOOKLINE_SECRET_KEY`): sealed in the store, still signing deliveries.

use super::common::*;
use super::receiver::{Received, TestReceiver};
use hookline_core::sealing::{is_sealed, Keyring, SealingKey};
use hookline_core::SigningSecret;
use serde_json::{json, Value};
use std::time::Duration;

/// Base64 of 32 bytes; a test key, nothing else.
const KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
const OTHER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn sealing_key() -> SealingKey {
    SealingKey::parse(KEY).unwrap()
}

fn keyring(current: &str, previous: Option<&str>) -> Keyring {
    Keyring {
        current: SealingKey::parse(current).unwrap(),
        previous: previous.map(|k| SealingKey::parse(k).unwrap()),
    }
}

/// The stored value of one subscription's signing secret.
async fn stored_secret(app: &TestApp, id: &str) -> String {
    let all = app.store().await.signing_secrets().await.unwrap();
    all.into_iter()
        .find(|(sub, _)| sub.as_str() == id)
        .map(|(_, stored)| stored)
        .expect("subscription stored")
}

/// Publishes one event (the `n`th) and checks its delivery verifies with the secret shown at
/// creation.
async fn delivery_verifies(app: &TestApp, rx: &TestReceiver, partner: &str, sub: &Value, n: usize) {
    let published = app
        .publish(json!({"partner_id": partner, "event_type": "message.sent", "data": {"n": n}}))
        .await;
    let event_id = published["event_id"].as_str().unwrap();
    let this_event = |r: &Received| r.path == "/s" && r.header("webhook-id") == event_id;
    assert!(
        rx.wait_until(WAIT, |got| got.iter().any(&this_event)).await,
        "event {n} was not delivered"
    );
    let r = rx.with_received(|got| got.iter().find(|r| this_event(r)).cloned().unwrap());
    let secret = SigningSecret::parse(sub["signing_secret"].as_str().unwrap()).unwrap();
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    assert_eq!(
        r.header("webhook-signature"),
        secret.sign_standard(r.header("webhook-id"), ts, &r.body)
    );
}

/// A server, a receiver and one subscription of partner `acme` to `message.sent` at `/s`.
async fn set_up(backend: Backend, opts: Options) -> (TestApp, TestReceiver, String, Value) {
    let app = TestApp::spawn_with(backend, opts).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let sub = app
        .create_subscription(
            &key,
            json!({"target_url": rx.url("/s"), "subscribed_events": ["message.sent"]}),
        )
        .await;
    (app, rx, partner, sub)
}

async fn secrets_are_sealed_at_rest_and_still_sign(backend: Backend) {
    let mut opts = Options::default();
    opts.raw.secret_key = Some(KEY.into());
    let (app, rx, partner, sub) = set_up(backend, opts).await;
    let secret = sub["signing_secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_"),
        "the answer shows the secret as issued"
    );
    let stored = stored_secret(&app, sub["id"].as_str().unwrap()).await;
    assert!(is_sealed(&stored) && !stored.contains(secret), "{stored}");
    assert_eq!(
        sealing_key()
            .open(&stored, sub["id"].as_str().unwrap())
            .unwrap(),
        secret
    );
    delivery_verifies(&app, &rx, &partner, &sub, 1).await;
}

async fn a_key_seals_existing_secrets_and_a_missing_key_refuses_to_start(backend: Backend) {
    let (app, rx, partner, sub) = set_up(backend, Options::default()).await;
    let id = sub["id"].as_str().unwrap();
    assert_eq!(
        stored_secret(&app, id).await,
        sub["signing_secret"].as_str().unwrap()
    );
    delivery_verifies(&app, &rx, &partner, &sub, 1).await;

    // Restarted with a key: the plain secret is sealed, deliveries still verify.
    let mut app = app;
    app.settings.secrets.keys = Some(keyring(KEY, None));
    let mut app = app.restart().await;
    assert!(is_sealed(&stored_secret(&app, id).await));
    delivery_verifies(&app, &rx, &partner, &sub, 2).await;

    // Without the key (or with another one) the server refuses to start.
    app.shutdown().await;
    for (secret_keys, expected) in [
        (None, "HOOKLINE_SECRET_KEY"),
        (
            Some(keyring(OTHER_KEY, None)),
            "is HOOKLINE_SECRET_KEY (or HOOKLINE_SECRET_KEY_PREVIOUS) the key",
        ),
    ] {
        let mut settings = app.settings.clone();
        settings.secrets.keys = secret_keys;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // A start that wrongly succeeds would serve forever: bound it.
        let started = tokio::time::timeout(
            Duration::from_secs(30),
            hookline::serve(listener, settings, std::future::pending()),
        )
        .await
        .expect("the server must refuse to start, not run");
        let message = format!("{:#}", started.expect_err("must refuse to start"));
        assert!(message.contains(expected), "{message}");
    }
}

/// Changing the key: with the old key as `HOOKLINE_SECRET_KEY_PREVIOUS`, a restart seals every
/// secret again with the new key; after that the old key is no longer needed.
async fn a_previous_key_lets_the_key_change(backend: Backend) {
    let mut opts = Options::default();
    opts.raw.secret_key = Some(KEY.into());
    let (mut app, rx, partner, sub) = set_up(backend, opts).await;
    let id = sub["id"].as_str().unwrap().to_owned();
    delivery_verifies(&app, &rx, &partner, &sub, 1).await;

    app.settings.secrets.keys = Some(keyring(OTHER_KEY, Some(KEY)));
    let mut app = app.restart().await;
    let stored = stored_secret(&app, &id).await;
    let new_key = SealingKey::parse(OTHER_KEY).unwrap();
    assert_eq!(
        new_key.open(&stored, &id).unwrap(),
        sub["signing_secret"].as_str().unwrap()
    );
    delivery_verifies(&app, &rx, &partner, &sub, 2).await;

    app.settings.secrets.keys = Some(keyring(OTHER_KEY, None));
    let app = app.restart().await;
    delivery_verifies(&app, &rx, &partner, &sub, 3).await;
}

crate::per_backend!(
    secrets_are_sealed_at_rest_and_still_sign,
    a_key_seals_existing_secrets_and_a_missing_key_refuses_to_start,
    a_previous_key_lets_the_key_change,
);
