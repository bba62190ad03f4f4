//! Portal forms and pages that say what happened: what an operator typed is kept when it is
//! refused, what an action did is said on the page it lands on, a filter the log cannot apply
//! is named, and what cannot be done to an inactive subscription is not offered.

use super::Visitor;
use crate::common::*;
use serde_json::json;

/// The operator's forms keep what was typed when it is refused, and say what they did.
#[tokio::test]
async fn operator_forms_keep_what_was_typed_and_say_what_they_did() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut op = Visitor::new(&app);
    assert_eq!(op.sign_in(ADMIN_TOKEN, true).await.status, 303);
    let csrf = op.csrf("/portal/admin/partners").await;
    let long = "a".repeat(201);
    let refused = op
        .post(
            "/portal/admin/partners",
            &[("csrf", &csrf), ("name", &long)],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.input("name"), long, "the typed name is kept");

    let created = op
        .post(
            "/portal/admin/partners",
            &[("csrf", &csrf), ("name", "Acme")],
        )
        .await;
    assert_eq!(created.status, 303);
    let partner_page = created.location().to_owned();
    assert!(partner_page.ends_with("?done=created"), "{partner_page}");
    assert!(op
        .get(&partner_page)
        .await
        .body
        .contains("Partner created."));

    let keys = format!("{}/keys", partner_page.trim_end_matches("?done=created"));
    let refused = op
        .post(&keys, &[("csrf", &csrf), ("name", "ci\u{202E}gpj.exe")])
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("bidirectional"), "{}", refused.body);
    assert_eq!(refused.input("name"), "ci\u{202E}gpj.exe");
}

/// An unknown filter in a hand-edited log link is named; an inactive subscription offers no
/// test event or recovery (both would be refused), and says why.
#[tokio::test]
async fn pages_name_what_they_cannot_do() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, key) = app.partner("acme").await;
    let sub = app
        .create_subscription(
            &key,
            json!({"target_url": "https://example.com/p", "subscribed_events": ["message.sent"]}),
        )
        .await;
    let id = sub["id"].as_str().unwrap();
    let mut browser = Visitor::new(&app);
    assert_eq!(browser.sign_in(&key, false).await.status, 303);
    let log = browser
        .get(&format!(
            "/portal/subscriptions/{id}/deliveries?status=bogus&event_type=nope"
        ))
        .await;
    assert_eq!(log.status, 200);
    let said = "Unknown status 'bogus' and event type 'nope': not applied";
    assert!(log.body.contains(said), "{}", log.body);

    let page = browser.get(&format!("/portal/subscriptions/{id}")).await;
    assert!(page.body.contains("Send test event"));
    set_active(&app, &key, &sub, false).await;
    let page = browser.get(&format!("/portal/subscriptions/{id}")).await;
    assert!(!page.body.contains("Send test event"), "{}", page.body);
    assert!(page.body.contains("This subscription is inactive"));
}

/// A browser whose session ended elsewhere is told so on the sign-in page, not just sent there;
/// one that never signed in is sent there without a word.
#[tokio::test]
async fn an_ended_session_is_said_on_the_sign_in_page() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut fresh = Visitor::new(&app);
    let r = fresh.get("/portal/subscriptions").await;
    assert_eq!((r.status, r.location()), (303, "/portal/sign-in"));
    let mut stale = Visitor::new(&app);
    stale
        .cookies
        .insert("hl_portal".into(), "hlps_no-such-session".into());
    let r = stale.get("/portal/subscriptions").await;
    assert_eq!((r.status, r.location()), (303, "/portal/sign-in?ended=1"));
    let page = stale.get("/portal/sign-in?ended=1").await;
    assert!(
        page.body.contains("Your session has ended"),
        "{}",
        page.body
    );
}

/// A refused form speaks of its fields by their labels, not the API's names.
#[tokio::test]
async fn a_refused_form_names_its_fields_by_their_labels() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, key) = app.partner("acme").await;
    let mut browser = Visitor::new(&app);
    assert_eq!(browser.sign_in(&key, false).await.status, 303);
    let csrf = browser.csrf("/portal/subscriptions/new").await;
    let form = [
        ("csrf", csrf.as_str()),
        ("target_url", "https://example.com/f"),
    ];
    let refused = browser.post("/portal/subscriptions", &form).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("Events must"), "{}", refused.body);
    assert!(
        !refused.body.contains("subscribed_events"),
        "{}",
        refused.body
    );
}

/// A recovery of a window with no failed delivery says there is nothing to recover, on the page
/// the form redirects to (a reload there starts nothing).
#[tokio::test]
async fn a_recovery_with_nothing_to_recover_says_so() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, key) = app.partner("acme").await;
    let body =
        json!({"target_url": "https://example.com/r", "subscribed_events": ["message.sent"]});
    let id = app.create_subscription(&key, body).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut browser = Visitor::new(&app);
    assert_eq!(browser.sign_in(&key, false).await.status, 303);
    let page = format!("/portal/subscriptions/{id}");
    let csrf = browser.csrf(&page).await;
    let form = [("csrf", csrf.as_str()), ("since", "2026-01-01T00:00")];
    let started = browser.post(&format!("{page}/recover"), &form).await;
    assert_eq!(started.status, 303, "{}", started.body);
    let landed = browser.get(started.location()).await;
    assert!(
        landed.body.contains("Nothing to recover"),
        "{}",
        landed.body
    );
}
