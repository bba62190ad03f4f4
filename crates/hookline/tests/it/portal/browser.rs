//! The real portal in a real headless Chromium (see [`super::webdriver`]): what a partner and
//! an operator do, clicking and typing as a person would. The portal is the same on both
//! backends (its store calls are the API's, tested on both), so these run on SQLite.
//! `HOOKLINE_SCREENSHOTS=1` writes the README's screenshots to docs/.

use super::webdriver::Browser;
use crate::common::*;
use reqwest::Method;
use serde_json::json;

const DESKTOP: (u32, u32) = (1280, 860);

async fn portal_link(app: &TestApp, partner: &str) -> String {
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/partners/{partner}/portal-sessions"),
            Some(json!({"ttl_seconds": 900})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v["url"].as_str().unwrap().to_owned()
}

/// Creates a subscription to `url` through the form; the secret the page shows once.
async fn create_in_browser(b: &Browser, url: &str) -> String {
    b.press("Create your first subscription").await;
    b.type_into(&b.find("#target_url").await, url).await;
    for event in ["message.received", "message.sent"] {
        b.click(
            &b.find(&format!("input[name=events][value='{event}']"))
                .await,
        )
        .await;
    }
    b.type_into(&b.find("#phone_numbers").await, "+12025551234")
        .await;
    b.press("Create subscription").await;
    b.wait_for_text("Subscription created").await;
    let secret = b.value(&b.find("#signing_secret").await).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let copy = b.find("button[data-copy]").await;
    b.click(&copy).await;
    assert_eq!(b.text(&copy).await, "Copied");
    b.screenshot("portal-secret").await;
    secret
}

#[tokio::test]
async fn a_partner_manages_subscriptions_in_the_browser() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let receiver = TestReceiver::start().await;
    let (partner, key) = app.partner("Acme").await;
    let (_, other_key) = app.partner("Globex").await;
    let theirs = app
        .create_subscription(&other_key, json!({"target_url": "https://example.com/globex", "subscribed_events": ["message.sent"]}))
        .await;
    let b = Browser::start(DESKTOP.0, DESKTOP.1).await;

    // The link signs in (its page continues by itself) and shows the empty state.
    b.goto(&portal_link(&app, &partner).await).await;
    b.wait_for_text("No subscriptions yet").await;
    assert!(b.url().await.ends_with("/portal/subscriptions"));
    b.screenshot("portal-empty").await;

    // Keyboard: the first Tab reaches the skip link.
    b.keys("\u{E004}").await;
    assert_eq!(b.focused_attribute("href").await.as_deref(), Some("#main"));

    let url = receiver.url("/hooks/acme");
    let secret = create_in_browser(&b, &url).await;

    // Shown once: no other page has it.
    b.goto(&app.url("/portal/subscriptions")).await;
    b.wait_for_text("Webhook subscriptions").await;
    assert!(!b.source().await.contains(&secret));
    b.screenshot("portal-subscriptions").await;

    // Edit: switch it off.
    b.press(&url).await;
    b.wait_for_text("Save changes").await;
    assert!(!b.source().await.contains(&secret));
    b.screenshot("portal-subscription").await;
    b.click(&b.find("input[name=is_active]").await).await;
    b.press("Save changes").await;
    b.wait_for_text("Saved.").await;
    b.wait_for_text("Inactive").await;
    let (_, list) = app
        .call(&key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    let sub = &list["subscriptions"][0];
    assert_eq!(
        (&sub["is_active"], &sub["phone_numbers"]),
        (&json!(false), &json!(["+12025551234"]))
    );

    // A phone-width screen.
    b.resize(390, 844).await;
    b.goto(&app.url("/portal/subscriptions")).await;
    b.wait_for_text("Webhook subscriptions").await;
    b.screenshot("portal-phone").await;
    b.resize(DESKTOP.0, DESKTOP.1).await;

    // Another partner's subscription does not exist here.
    b.goto(&app.url(&format!(
        "/portal/subscriptions/{}",
        theirs["id"].as_str().unwrap()
    )))
    .await;
    b.wait_for_text("Not found").await;

    // Delete, after a confirmation page.
    b.goto(&app.url("/portal/subscriptions")).await;
    b.press(&url).await;
    b.press("Delete subscription…").await;
    b.wait_for_text("Delete this subscription?").await;
    b.press("Delete subscription").await;
    b.wait_for_text("No subscriptions yet").await;
    let (_, list) = app
        .call(&key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(list["subscriptions"], json!([]));

    b.press("Sign out").await;
    b.wait_for_text("You are signed out").await;
    b.goto(&app.url("/portal/subscriptions")).await;
    b.wait_for_text("Sign in").await;
    assert!(b.url().await.ends_with("/portal/sign-in"));
}

#[tokio::test]
async fn an_operator_manages_partners_and_keys_in_the_browser() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let b = Browser::start(DESKTOP.0, DESKTOP.1).await;
    b.goto(&app.url("/portal")).await;
    b.wait_for_text("Operator").await;
    b.screenshot("portal-sign-in").await;
    b.type_into(&b.find("#operator_secret").await, ADMIN_TOKEN)
        .await;
    b.press("Sign in as operator").await;
    b.wait_for_text("New partner").await;

    b.type_into(&b.find("#name").await, "Globex").await;
    b.press("Create partner").await;
    b.wait_for_text("No active keys").await;
    b.type_into(&b.find("#key_name").await, "production").await;
    b.press("Create API key").await;
    b.wait_for_text("API key created").await;
    let key = b.value(&b.find("#api_key").await).await;
    assert!(key.starts_with("hl_live_"), "{key}");
    let (s, _) = app
        .call(&key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(s, 200, "the key works");

    b.press("Back to Globex").await;
    b.wait_for_text("production").await;
    b.screenshot("portal-operator").await;
    // Revoking asks first (the browser accepts); the key stops working at once.
    b.press("Revoke").await;
    b.wait_for_text("The key is revoked").await;
    let (s, _) = app
        .call(&key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    assert_eq!(s, 401);

    b.press("Create portal link").await;
    b.wait_for_text("Portal link created").await;
    let link = b.value(&b.find("#portal_link").await).await;
    assert!(
        link.starts_with(&format!("{}/portal/enter?token=hlpl_", app.base)),
        "{link}"
    );

    b.press("Health").await;
    b.wait_for_text("Queue depth").await;
    b.screenshot("portal-health").await;

    // The operator's session is no partner's: partner pages send it to its own.
    b.goto(&app.url("/portal/subscriptions")).await;
    b.wait_for_text("New partner").await;
}

#[tokio::test]
async fn a_partner_finds_a_delivery_retries_it_and_rotates_the_secret() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let receiver = TestReceiver::start().await;
    let (partner, key) = app.partner("Acme").await;
    let sub = subscribe(
        &app,
        &key,
        &receiver.url("/hook"),
        &["message.received"],
        None,
    )
    .await;
    let id = sub["id"].as_str().unwrap();
    let b = Browser::start(DESKTOP.0, DESKTOP.1).await;
    b.goto(&portal_link(&app, &partner).await).await;
    b.wait_for_text("Webhook subscriptions").await;

    let delivered = app.publish(event(&partner, "message.received", None)).await;
    let first = delivered["event_id"].as_str().unwrap().to_owned();
    receiver.wait_for(Some("/hook"), 1, WAIT).await;
    let log = app.url(&format!("/portal/subscriptions/{id}/deliveries"));
    b.goto(&log).await;
    b.wait_for_text(&first).await;
    b.wait_for_text("success").await;
    b.screenshot("portal-log").await;

    // The receiver fails: the delivery ends failed after its retries.
    receiver.set_default("/hook", Reply::status(500));
    let failed = app.publish(event(&partner, "message.received", None)).await;
    let failed = failed["event_id"].as_str().unwrap().to_owned();
    settled(&app).await;
    b.goto(&format!("{log}?status=failed")).await;
    b.press(&failed).await;
    b.wait_for_text("Attempt 3").await;
    b.wait_for_text("500").await;

    // Fixed: retry, and the new attempt shows.
    receiver.set_default("/hook", Reply::ok());
    b.press("Retry now").await;
    eventually("the retried attempt", WAIT, || async {
        b.goto(&app.url(&format!("/portal/subscriptions/{id}/deliveries/{failed}")))
            .await;
        b.source().await.contains("Attempt 4").then_some(())
    })
    .await;
    b.wait_for_text("200").await;
    b.screenshot("portal-delivery").await;

    // Rotate: the new secret shows once, with the grace period.
    b.goto(&app.url(&format!("/portal/subscriptions/{id}")))
        .await;
    b.press("Rotate secret").await;
    b.wait_for_text("Secret rotated").await;
    let secret = b.value(&b.find("#signing_secret").await).await;
    assert!(secret.starts_with("whsec_"));
    b.wait_for_text("until then it stays valid").await;

    // A test event arrives, and is in the log.
    b.goto(&app.url(&format!("/portal/subscriptions/{id}")))
        .await;
    b.press("Send test event").await;
    b.wait_for_text("Your endpoint accepted the test event")
        .await;
}
