//! What a delivery carries: Linq's envelope byte for byte, both signature schemes (checked by an
//! independent implementation too), and the webhook version a subscription asked for.

use crate::common::*;
use crate::python;
use crate::receiver::Received;
use hookline_core::SigningSecret;
use serde_json::{json, Value};

const TRACE: &str = "8af9171a45022df2eb74ba4e4c83be0f";

async fn deliveries_carry_both_signatures_and_the_linq_envelope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let new = subscribe(
        &app,
        &key,
        &rx.url("/hook?version=2026-02-03&line=1"),
        &["message.received"],
        None,
    )
    .await;
    let old = subscribe(
        &app,
        &key,
        &rx.url("/old?version=2025-01-01"),
        &["message.received", "message.edited"],
        None,
    )
    .await;
    publish_raw_event(&app, &partner).await;
    let got = rx.wait_for(None, 2, WAIT).await;

    let mut lines = String::new();
    for r in &got {
        let (sub, version) = if r.path == "/hook" {
            (&new, "2026-02-03")
        } else {
            (&old, "2025-01-01")
        };
        assert_envelope(r, version, &partner);
        assert_headers_and_signatures(r, sub);
        lines.push_str(&verification_line(r, &sub["signing_secret"]));
    }
    assert!(got
        .iter()
        .any(|r| r.path == "/hook" && r.query.as_deref() == Some("version=2026-02-03&line=1")));
    verify_independently(&lines, 2).await;
}

/// Publishes `evt-sig-1` for `partner` as raw text, so `data` must arrive byte for byte (key
/// order, number spelling), and checks it is accepted for two deliveries.
async fn publish_raw_event(app: &TestApp, partner: &str) {
    let raw = format!(
        r#"{{"partner_id":"{partner}","event_type":"message.received","event_id":"evt-sig-1","created_at":"2026-02-05T19:31:13.736444093Z","trace_id":"{TRACE}","data":{{"id":"m1","parts":[{{"type":"text","value":"Hello!"}}],"n":1.5e3}}}}"#
    );
    let resp = app
        .http
        .post(app.url("/admin/v1/events"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let (status, published) = into_parts(resp).await;
    assert_eq!(status, 202);
    assert_eq!(published, json!({"event_id": "evt-sig-1", "deliveries": 2}));
}

/// The body is Linq's envelope, byte for byte in Linq's key order, with `data` verbatim for
/// 2026-02-03 and its 2025-01-01 conversion (tests in `payloads.rs`) for the old version.
fn assert_envelope(r: &Received, version: &str, partner: &str) {
    let body = std::str::from_utf8(&r.body).unwrap();
    let published = r#"{"id":"m1","parts":[{"type":"text","value":"Hello!"}],"n":1.5e3}"#;
    let data = match version {
        "2026-02-03" => published.to_owned(),
        _ => hookline_core::payload::v2025::convert(
            hookline_core::EventType::parse("message.received").unwrap(),
            published,
        )
        .unwrap(),
    };
    assert_eq!(
        body,
        format!(
            r#"{{"api_version":"v3","webhook_version":"{version}","event_type":"message.received","event_id":"evt-sig-1","created_at":"2026-02-05T19:31:13.736444093Z","trace_id":"{TRACE}","partner_id":"{partner}","data":{data}}}"#
        )
    );
}

/// The headers name the event and subscription, and both signatures match our own check,
/// against the signer's algorithm from CONTRACT.md §3 (an independent implementation checks
/// them too: `verify_independently`).
fn assert_headers_and_signatures(r: &Received, sub: &Value) {
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.header("user-agent").starts_with("hookline/"));
    assert_eq!(r.header("webhook-id"), "evt-sig-1");
    assert_eq!(r.header("x-webhook-event"), "message.received");
    assert_eq!(
        r.header("x-webhook-subscription-id"),
        sub["id"].as_str().unwrap()
    );
    let ts = r.header("webhook-timestamp");
    assert_eq!(ts, r.header("x-webhook-timestamp"));
    let ts: i64 = ts.parse().unwrap();
    assert!((ts - chrono::Utc::now().timestamp()).abs() < 60);
    let s = SigningSecret::parse(sub["signing_secret"].as_str().unwrap()).unwrap();
    assert_eq!(
        r.header("webhook-signature"),
        s.sign_standard("evt-sig-1", ts, &r.body)
    );
    assert_eq!(r.header("x-webhook-signature"), s.sign_legacy(ts, &r.body));
}

/// One line of input for `verify_delivery.py`: the secret, the headers and the body received.
fn verification_line(r: &Received, secret: &Value) -> String {
    let body = std::str::from_utf8(&r.body).unwrap();
    let headers: serde_json::Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap())))
        .collect();
    let mut line = json!({"secret": secret, "headers": headers, "body": body}).to_string();
    line.push('\n');
    line
}

/// Runs `verify_delivery.py` (the `standardwebhooks` package, not our code) over `lines` and
/// checks it accepted all `n` deliveries of `evt-sig-1`.
async fn verify_independently(lines: &str, n: usize) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(python::python())
        .arg(python::script("verify_delivery.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "independent verification failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("ok evt-sig-1").count(), n, "{stdout}");
}

async fn message_edited_goes_only_to_2026_02_03_subscriptions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &rx.url("/new"), &["message.edited"], None).await;
    subscribe(
        &app,
        &key,
        &rx.url("/old?version=2025-01-01"),
        &["message.edited"],
        None,
    )
    .await;
    let p = app.publish(event(&partner, "message.edited", None)).await;
    assert_eq!(p["deliveries"], json!(1));
    let got = rx.wait_for(None, 1, WAIT).await;
    assert_eq!(got[0].path, "/new");
    assert_eq!(settled(&app).await.succeeded, 1);
}

crate::per_backend!(
    deliveries_carry_both_signatures_and_the_linq_envelope,
    message_edited_goes_only_to_2026_02_03_subscriptions,
);
