//! The delivery engine end to end: real HTTPS receivers on 127.0.0.1.

use super::common::*;
use super::python;
use hookline::config::Role;
use hookline::store::{Capacity, ClaimRequest, DeliveryCounts};
use hookline_core::{ErrorKind, EventId, PartnerId, SigningSecret, SubscriptionId, Timestamp};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

async fn subscribe(
    app: &TestApp,
    key: &str,
    url: &str,
    events: &[&str],
    phones: Option<&[&str]>,
) -> Value {
    let mut body = json!({"target_url": url, "subscribed_events": events});
    if let Some(p) = phones {
        body["phone_numbers"] = json!(p);
    }
    app.create_subscription(key, body).await
}

fn event(partner: &str, event_type: &str, phone: Option<&str>) -> Value {
    json!({"partner_id": partner, "event_type": event_type, "phone_number": phone,
           "data": {"chat_id": "550e8400-e29b-41d4-a716-446655440000", "text": "héllo"}})
}

async fn counts(app: &TestApp) -> DeliveryCounts {
    app.store().await.delivery_counts().await.unwrap()
}

/// Waits until no delivery is pending (all reached a final state).
async fn settled(app: &TestApp) -> DeliveryCounts {
    let store = app.store().await;
    eventually("deliveries to settle", WAIT, || {
        let store = store.clone();
        async move {
            let c = store.delivery_counts().await.unwrap();
            (c.pending == 0).then_some(c)
        }
    })
    .await
}

async fn fans_out_to_matching_subscriptions_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let (other_partner, other_key) = app.partner("other").await;
    subscribe(&app, &key, &rx.url("/all"), &["message.sent"], None).await;
    subscribe(
        &app,
        &key,
        &rx.url("/line"),
        &["message.sent"],
        Some(&["+12025551234"]),
    )
    .await;
    subscribe(
        &app,
        &key,
        &rx.url("/other-line"),
        &["message.sent"],
        Some(&["+12025550000"]),
    )
    .await;
    subscribe(
        &app,
        &key,
        &rx.url("/other-type"),
        &["message.received"],
        None,
    )
    .await;
    let inactive = subscribe(&app, &key, &rx.url("/inactive"), &["message.sent"], None).await;
    app.call(
        &key,
        Method::PUT,
        &format!(
            "/v3/webhook-subscriptions/{}",
            inactive["id"].as_str().unwrap()
        ),
        Some(json!({"is_active": false})),
    )
    .await;
    let deleted = subscribe(&app, &key, &rx.url("/deleted"), &["message.sent"], None).await;
    app.call(
        &key,
        Method::DELETE,
        &format!(
            "/v3/webhook-subscriptions/{}",
            deleted["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    subscribe(
        &app,
        &other_key,
        &rx.url("/other-partner"),
        &["message.sent"],
        None,
    )
    .await;

    let published = app
        .publish(event(&partner, "message.sent", Some("+12025551234")))
        .await;
    assert_eq!(published["deliveries"], json!(2));
    // No phone number: only unfiltered subscriptions.
    let published = app.publish(event(&partner, "message.sent", None)).await;
    assert_eq!(published["deliveries"], json!(1));

    rx.wait_for(Some("/all"), 2, WAIT).await;
    rx.wait_for(Some("/line"), 1, WAIT).await;
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            succeeded: 3,
            ..Default::default()
        }
    );
    let paths: Vec<String> = rx.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(
        paths.iter().all(|p| p == "/all" || p == "/line"),
        "{paths:?}"
    );
    let _ = other_partner;
}

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
    let trace = "8af9171a45022df2eb74ba4e4c83be0f";
    // Sent as raw text: `data` must arrive byte for byte (key order, number spelling).
    let raw = format!(
        r#"{{"partner_id":"{partner}","event_type":"message.received","event_id":"evt-sig-1","created_at":"2026-02-05T19:31:13.736444093Z","trace_id":"{trace}","data":{{"id":"m1","parts":[{{"type":"text","value":"Hello!"}}],"n":1.5e3}}}}"#
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
    let got = rx.wait_for(None, 2, WAIT).await;

    let mut lines = String::new();
    for r in &got {
        let (secret, version, sub_id) = if r.path == "/hook" {
            (&new["signing_secret"], "2026-02-03", &new["id"])
        } else {
            (&old["signing_secret"], "2025-01-01", &old["id"])
        };
        let body = std::str::from_utf8(&r.body).unwrap();
        // Byte-exact envelope in Linq's key order, data verbatim.
        assert_eq!(
            body,
            format!(
                r#"{{"api_version":"v3","webhook_version":"{version}","event_type":"message.received","event_id":"evt-sig-1","created_at":"2026-02-05T19:31:13.736444093Z","trace_id":"{trace}","partner_id":"{partner}","data":{{"id":"m1","parts":[{{"type":"text","value":"Hello!"}}],"n":1.5e3}}}}"#
            )
        );
        assert_eq!(r.header("content-type"), "application/json");
        assert!(r.header("user-agent").starts_with("hookline/"));
        assert_eq!(r.header("webhook-id"), "evt-sig-1");
        assert_eq!(r.header("x-webhook-event"), "message.received");
        assert_eq!(
            r.header("x-webhook-subscription-id"),
            sub_id.as_str().unwrap()
        );
        let ts = r.header("webhook-timestamp");
        assert_eq!(ts, r.header("x-webhook-timestamp"));
        let ts: i64 = ts.parse().unwrap();
        assert!((ts - chrono::Utc::now().timestamp()).abs() < 60);
        // Our own check, against the signer's algorithm from CONTRACT.md §3...
        let s = SigningSecret::parse(secret.as_str().unwrap()).unwrap();
        assert_eq!(
            r.header("webhook-signature"),
            s.sign_standard("evt-sig-1", ts, &r.body)
        );
        assert_eq!(r.header("x-webhook-signature"), s.sign_legacy(ts, &r.body));
        // ...and, below, an independent implementation.
        let headers: serde_json::Map<String, Value> = r
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap())))
            .collect();
        lines.push_str(&json!({"secret": secret, "headers": headers, "body": body}).to_string());
        lines.push('\n');
    }
    assert!(got
        .iter()
        .any(|r| r.path == "/hook" && r.query.as_deref() == Some("version=2026-02-03&line=1")));

    let mut child = tokio::process::Command::new(python::python())
        .arg(python::script("verify_delivery.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
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
    assert_eq!(stdout.matches("ok evt-sig-1").count(), 2, "{stdout}");
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

async fn retries_5xx_and_429_honouring_retry_after_with_the_same_webhook_id(backend: Backend) {
    let app = TestApp::spawn(backend).await; // schedule 200ms, 400ms
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &rx.url("/flaky"), &["message.sent"], None).await;
    rx.script(
        "/flaky",
        vec![
            Reply::status(500),
            Reply::status(429).header("retry-after", "1"),
            Reply::ok(),
        ],
    );
    let started = Instant::now();
    let p = app.publish(event(&partner, "message.sent", None)).await;
    let got = rx.wait_for(Some("/flaky"), 3, WAIT).await;
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(
        gap1 >= Duration::from_millis(200),
        "first retry after {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_secs(1),
        "Retry-After: 1 not honoured ({gap2:?})"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|id| *id == p["event_id"].as_str().unwrap()),
        "{ids:?}"
    );
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            succeeded: 1,
            ..Default::default()
        }
    );
    let attempts = app
        .attempts(&partner, p["event_id"].as_str().unwrap())
        .await;
    let codes: Vec<Option<u16>> = attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, vec![Some(500), Some(429), Some(200)]);
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(attempts[0].error_kind, Some(ErrorKind::HttpStatus));
    assert_eq!(attempts[2].error_kind, None);
}

async fn gives_up_after_the_last_retry_and_never_retries_other_4xx(backend: Backend) {
    let app = TestApp::spawn(backend).await; // 3 attempts in all
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &rx.url("/down"), &["message.sent"], None).await;
    subscribe(&app, &key, &rx.url("/bad"), &["message.sent"], None).await;
    subscribe(&app, &key, &rx.url("/missing"), &["message.sent"], None).await;
    rx.set_default("/down", Reply::status(503).body("maintenance"));
    rx.set_default("/bad", Reply::status(400));
    rx.set_default("/missing", Reply::status(404));
    let p = app.publish(event(&partner, "message.sent", None)).await;
    assert_eq!(p["deliveries"], json!(3));
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            failed: 3,
            ..Default::default()
        }
    );
    assert_eq!(rx.received_at("/down").len(), 3);
    assert_eq!(rx.received_at("/bad").len(), 1);
    assert_eq!(rx.received_at("/missing").len(), 1);
    let attempts = app
        .attempts(&partner, p["event_id"].as_str().unwrap())
        .await;
    assert!(attempts
        .iter()
        .any(|a| a.response_body.as_deref() == Some("maintenance")));
}

async fn gone_deactivates_the_subscription_and_redirects_are_not_followed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let gone = subscribe(&app, &key, &rx.url("/gone"), &["message.sent"], None).await;
    subscribe(&app, &key, &rx.url("/moved"), &["message.sent"], None).await;
    rx.set_default("/gone", Reply::status(410));
    rx.set_default(
        "/moved",
        Reply::status(302).header("location", &rx.url("/elsewhere")),
    );
    let p = app.publish(event(&partner, "message.sent", None)).await;
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            failed: 2,
            ..Default::default()
        }
    );
    assert_eq!(rx.received_at("/gone").len(), 1);
    assert_eq!(rx.received_at("/moved").len(), 1);
    assert!(rx.received_at("/elsewhere").is_empty());
    let (_, sub) = app
        .call(
            &key,
            Method::GET,
            &format!("/v3/webhook-subscriptions/{}", gone["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(sub["is_active"], json!(false));
    let attempts = app
        .attempts(&partner, p["event_id"].as_str().unwrap())
        .await;
    assert!(attempts
        .iter()
        .any(|a| a.error_kind == Some(ErrorKind::Redirect) && a.status_code == Some(302)));
}

async fn a_hanging_receiver_times_out_while_a_healthy_one_keeps_receiving(backend: Backend) {
    let mut opts = Options::default();
    opts.raw.delivery_timeout = Some("1s".into());
    opts.raw.retry_schedule = Some("100ms".into());
    let app = TestApp::spawn_with(backend, opts).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &rx.url("/hang"), &["message.sent"], None).await;
    subscribe(&app, &key, &rx.url("/fast"), &["message.sent"], None).await;
    rx.set_default("/hang", Reply::ok().delayed(Duration::from_secs(30)));
    let first = app.publish(event(&partner, "message.sent", None)).await;
    rx.wait_for(Some("/fast"), 1, WAIT).await;
    // While /hang holds its connection, more events to /fast arrive promptly.
    for n in 2..=5 {
        let sent = Instant::now();
        app.publish(event(&partner, "message.sent", None)).await;
        rx.wait_for(Some("/fast"), n, WAIT).await;
        assert!(
            sent.elapsed() < Duration::from_millis(900),
            "healthy receiver delayed {:?}",
            sent.elapsed()
        );
    }
    // The hanging one is timed out and retried.
    rx.wait_for(Some("/hang"), 2, WAIT).await;
    let store = app.store().await;
    let event_id = first["event_id"].as_str().unwrap().to_owned();
    let attempts = eventually("timeout attempts", WAIT, || {
        let (store, partner, event_id) = (store.clone(), partner.clone(), event_id.clone());
        async move {
            let (partner, event_id) = (
                PartnerId::from_stored(partner),
                EventId::from_stored(event_id),
            );
            let a = store.attempts_for_event(&partner, &event_id).await.unwrap();
            (a.iter()
                .filter(|a| a.error_kind == Some(ErrorKind::Timeout))
                .count()
                >= 2)
                .then_some(a)
        }
    })
    .await;
    assert!(attempts
        .iter()
        .all(|a| a.status_code.is_none_or(|c| c == 200)));
}

async fn ssrf_guard_refuses_loopback_ips_and_names_without_an_allow_list(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            loopback_allowed: false,
            ..Options::default()
        },
    )
    .await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &rx.url("/ip"), &["message.sent"], None).await;
    subscribe(
        &app,
        &key,
        &format!("https://localhost:{}/name", rx.port),
        &["message.sent"],
        None,
    )
    .await;
    let p = app.publish(event(&partner, "message.sent", None)).await;
    assert_eq!(p["deliveries"], json!(2));
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            failed: 2,
            ..Default::default()
        }
    );
    let attempts = app
        .attempts(&partner, p["event_id"].as_str().unwrap())
        .await;
    assert_eq!(attempts.len(), 2, "refusals are not retried: {attempts:?}");
    assert!(
        attempts
            .iter()
            .all(|a| a.error_kind == Some(ErrorKind::SsrfBlocked)),
        "{attempts:?}"
    );
    assert!(rx.received().is_empty());
}

async fn deactivating_or_deleting_stops_remaining_attempts(backend: Backend) {
    let mut opts = Options::default();
    opts.raw.retry_schedule = Some("1s,1s".into());
    let app = TestApp::spawn_with(backend, opts).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let a = subscribe(&app, &key, &rx.url("/a"), &["message.sent"], None).await;
    let b = subscribe(&app, &key, &rx.url("/b"), &["message.sent"], None).await;
    rx.set_default("/a", Reply::status(500));
    rx.set_default("/b", Reply::status(500));
    app.publish(event(&partner, "message.sent", None)).await;
    rx.wait_for(Some("/a"), 1, WAIT).await;
    rx.wait_for(Some("/b"), 1, WAIT).await;
    app.call(
        &key,
        Method::PUT,
        &format!("/v3/webhook-subscriptions/{}", a["id"].as_str().unwrap()),
        Some(json!({"is_active": false})),
    )
    .await;
    app.call(
        &key,
        Method::DELETE,
        &format!("/v3/webhook-subscriptions/{}", b["id"].as_str().unwrap()),
        None,
    )
    .await;
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            cancelled: 2,
            ..Default::default()
        }
    );
    assert_eq!(rx.received().len(), 2);
}

async fn publish_is_idempotent_per_partner_event_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &rx.url("/x"), &["message.sent"], None).await;
    let mut e = event(&partner, "message.sent", None);
    e["event_id"] = json!("dup-1");
    let (s, first) = app
        .admin(Method::POST, "/admin/v1/events", Some(e.clone()))
        .await;
    assert_eq!(
        (s, first.clone()),
        (202, json!({"event_id": "dup-1", "deliveries": 1}))
    );
    let (s, again) = app
        .admin(Method::POST, "/admin/v1/events", Some(e.clone()))
        .await;
    assert_eq!((s, again), (200, first));
    // In a batch too, including a repeat inside the batch.
    let mut fresh = e.clone();
    fresh["event_id"] = json!("dup-2");
    let (s, batch) = app
        .admin(
            Method::POST,
            "/admin/v1/events/batch",
            Some(json!({"events": [e, fresh.clone(), fresh]})),
        )
        .await;
    assert_eq!(s, 202, "{batch}");
    assert_eq!(batch["results"].as_array().unwrap().len(), 3);
    let c = settled(&app).await;
    assert_eq!(c.succeeded, 2);
    assert_eq!(rx.received().len(), 2);
}

async fn publish_validation_errors(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            raw: hookline::config::RawConfig {
                max_event_bytes: Some(1024),
                ..Options::default().raw
            },
            ..Options::default()
        },
    )
    .await;
    let (partner, _) = app.partner("acme").await;
    let cases: Vec<(Value, u16, u64, &str)> = vec![
        (
            json!({"partner_id": "nobody", "event_type": "message.sent", "data": {}}),
            400,
            1005,
            "nobody",
        ),
        (
            json!({"partner_id": partner, "event_type": "message.bogus", "data": {}}),
            400,
            1005,
            "message.bogus",
        ),
        (
            json!({"partner_id": partner, "event_type": "message.sent", "phone_number": "555", "data": {}}),
            400,
            1002,
            "555",
        ),
        (
            json!({"partner_id": partner, "event_type": "message.sent", "data": [1]}),
            400,
            1005,
            "JSON object",
        ),
        (
            json!({"partner_id": partner, "event_type": "message.sent"}),
            400,
            1001,
            "data",
        ),
        (
            json!({"partner_id": partner, "event_type": "message.sent", "data": {"pad": "x".repeat(2000)}}),
            413,
            1003,
            "1024",
        ),
        (
            json!({"partner_id": partner, "event_type": "message.sent", "data": {}, "created_at": "yesterday"}),
            400,
            1005,
            "created_at",
        ),
        (
            json!({"partner_id": partner, "event_type": "message.sent", "data": {}, "trace_id": "xyz"}),
            400,
            1005,
            "trace_id",
        ),
        (
            json!({"partner_id": partner, "event_type": "message.sent", "data": {}, "event_id": "has space"}),
            400,
            1005,
            "event_id",
        ),
    ];
    for (body, status, code, needle) in cases {
        let (s, v) = app
            .admin(Method::POST, "/admin/v1/events", Some(body.clone()))
            .await;
        let msg = assert_error(s, &v, status, code);
        assert!(msg.contains(needle), "{body} → {msg}");
    }
    // phone_number null is the same as absent.
    let (s, _) = app.admin(Method::POST, "/admin/v1/events",
        Some(json!({"partner_id": partner, "event_type": "message.sent", "phone_number": null, "data": {}}))).await;
    assert_eq!(s, 202);
    // Batches are all-or-nothing and name the bad element.
    let good = json!({"partner_id": partner, "event_type": "message.sent", "data": {}, "event_id": "batch-good"});
    let bad = json!({"partner_id": partner, "event_type": "nope", "data": {}});
    let (s, v) = app
        .admin(
            Method::POST,
            "/admin/v1/events/batch",
            Some(json!({"events": [good.clone(), bad]})),
        )
        .await;
    let msg = assert_error(s, &v, 400, 1005);
    assert!(msg.starts_with("events[1]."), "{msg}");
    let (s, _) = app
        .admin(Method::POST, "/admin/v1/events", Some(good))
        .await;
    assert_eq!(
        s, 202,
        "the good event of the refused batch must not have been stored"
    );
    let (s, v) = app
        .admin(
            Method::POST,
            "/admin/v1/events/batch",
            Some(json!({"events": []})),
        )
        .await;
    assert_error(s, &v, 400, 1005);
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"partner_id": partner, "event_type": "message.sent", "data": {}}))
        .collect();
    let (s, v) = app
        .admin(
            Method::POST,
            "/admin/v1/events/batch",
            Some(json!({"events": many})),
        )
        .await;
    assert_error(s, &v, 400, 1005);
    assert_eq!(counts(&app).await, DeliveryCounts::default());
}

/// The claim walks per-subscription queues: a subscription at its in-flight cap, however deep its
/// backlog, neither blocks the others nor gets more than its room.
async fn a_full_subscription_neither_blocks_others_nor_exceeds_its_room(backend: Backend) {
    let mut opts = Options::default();
    // No dispatcher: this test claims by hand.
    opts.raw.role = Some(Role::Api);
    let app = TestApp::spawn_with(backend, opts).await;
    let (partner, key) = app.partner("acme").await;
    let busy = subscribe(
        &app,
        &key,
        "https://busy.example/h",
        &["message.sent"],
        None,
    )
    .await;
    let idle = subscribe(
        &app,
        &key,
        "https://idle.example/h",
        &["message.read"],
        None,
    )
    .await;
    let (busy, idle) = (busy["id"].as_str().unwrap(), idle["id"].as_str().unwrap());
    let mut busy_events = Vec::new();
    for _ in 0..30 {
        let p = app.publish(event(&partner, "message.sent", None)).await;
        busy_events.push(p["event_id"].as_str().unwrap().to_owned());
    }
    for _ in 0..3 {
        app.publish(event(&partner, "message.read", None)).await;
    }
    let store = app.store().await;
    let claim = |in_flight: HashMap<SubscriptionId, usize>| {
        let store = store.clone();
        async move {
            let now = Timestamp::now();
            let capacity = Capacity {
                per_subscription_cap: 4,
                in_flight: &in_flight,
            };
            let request = ClaimRequest {
                now,
                lease_until: now + Duration::from_secs(60),
                limit: 10,
                capacity,
            };
            store.claim_due(&request).await.unwrap().deliveries
        }
    };

    let busy = SubscriptionId::from_stored(busy);
    let full = HashMap::from([(busy.clone(), 4)]);
    let claimed = claim(full.clone()).await;
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    assert!(claimed.iter().all(|d| d.subscription_id.as_str() == idle));
    // What is due already is the full subscription's; the next wake-up is the earliest lease.
    let now = Timestamp::now();
    let next = store.next_due_after(now).await.unwrap();
    assert!(
        next.is_some_and(|at| at > now + Duration::from_secs(50)),
        "the claimed rows' lease, a minute out: {next:?}"
    );

    let claimed = claim(HashMap::from([(busy.clone(), 1)])).await;
    let ids: Vec<&str> = claimed.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(ids, busy_events[..3], "the room (3), oldest first");
    let claimed = claim(HashMap::new()).await;
    let ids: Vec<&str> = claimed.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(ids, busy_events[3..7], "the whole cap (4), oldest first");
}

/// Delivery affinity (CONTRACT.md §3.6): the chat id goes out in `routing_id_header`; the token
/// a receiver returns in `routing_key_header` is echoed on later deliveries for that chat only,
/// and clearing `routing_key_header` forgets the tokens.
async fn routing_tokens_are_learned_per_chat_and_echoed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let sub = app
        .create_subscription(
            &key,
            json!({"target_url": rx.url("/r"), "subscribed_events": ["message.sent"],
                   "routing_key_header": "X-Route"}),
        )
        .await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    let sub_path = format!("/v3/webhook-subscriptions/{sub_id}");
    rx.script("/r", vec![Reply::ok().header("X-Route", "tok-1")]);
    let store = app.store().await;
    let publish_for = |chat: &'static str| {
        app.publish(json!({"partner_id": partner, "event_type": "message.sent",
                           "data": {"chat_id": chat, "text": "hi"}}))
    };
    let token_of = |chat: &'static str| {
        let (store, sub_id) = (store.clone(), sub_id.clone());
        async move {
            let sub_id = SubscriptionId::from_stored(sub_id);
            store.routing_token(&sub_id, chat).await.unwrap()
        }
    };

    publish_for("chat-a").await;
    let first = rx.wait_for(Some("/r"), 1, WAIT).await;
    assert_eq!(first[0].header("linq-chat-id"), "chat-a");
    assert_eq!(first[0].header("x-route"), "", "no token is known yet");
    eventually("the token to be stored", WAIT, || async {
        token_of("chat-a").await.filter(|t| t == "tok-1")
    })
    .await;

    publish_for("chat-a").await;
    publish_for("chat-b").await;
    let got = rx.wait_for(Some("/r"), 3, WAIT).await;
    let for_chat = |chat: &str| {
        got[1..]
            .iter()
            .find(|r| r.header("linq-chat-id") == chat)
            .unwrap_or_else(|| panic!("no delivery for {chat}"))
            .clone()
    };
    assert_eq!(for_chat("chat-a").header("x-route"), "tok-1");
    assert_eq!(
        for_chat("chat-b").header("x-route"),
        "",
        "tokens are per chat"
    );

    // Clearing the header turns affinity off and drops the learned tokens.
    let (s, body) = app
        .call(
            &key,
            Method::PUT,
            &sub_path,
            Some(json!({"routing_key_header": null})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(token_of("chat-a").await, None);
    publish_for("chat-a").await;
    let got = rx.wait_for(Some("/r"), 4, WAIT).await;
    assert_eq!(got[3].header("linq-chat-id"), "", "affinity is off");
    assert_eq!(got[3].header("x-route"), "");
}

/// Subscription changes are account events (CONTRACT.md §4.6): a subscription to
/// `webhook_subscription.*` hears about its own creation, then about other subscriptions' changes.
async fn subscription_changes_are_delivered_as_account_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let watched = [
        "webhook_subscription.created",
        "webhook_subscription.disabled",
        "webhook_subscription.events.updated",
        "webhook_subscription.deleted",
    ];
    // A phone filter selects lines; account events concern the account and still arrive.
    let watcher = subscribe(&app, &key, &rx.url("/w"), &watched, Some(&["+12025551234"])).await;
    let got = rx.wait_for(Some("/w"), 1, WAIT).await;
    let created = got[0].json();
    assert_eq!(created["event_type"], json!("webhook_subscription.created"));
    assert_eq!(created["partner_id"], json!(partner));
    assert_eq!(created["data"]["webhook_subscription"]["id"], watcher["id"]);
    assert_eq!(created["data"]["actor"], json!({"type": "api"}));
    assert_eq!(created["data"]["origin"], json!("api"));

    // Another subscription (never delivered to: it takes no account events) changes, then goes.
    let other = subscribe(
        &app,
        &key,
        "https://other.example/h",
        &["message.sent"],
        None,
    )
    .await;
    let path = format!(
        "/v3/webhook-subscriptions/{}",
        other["id"].as_str().unwrap()
    );
    let (s, body) = app
        .call(
            &key,
            Method::PUT,
            &path,
            Some(json!({"is_active": false, "subscribed_events": ["message.read"]})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, _) = app.call(&key, Method::DELETE, &path, None).await;
    assert_eq!(s, 204);
    let got = rx.wait_for(Some("/w"), 5, WAIT).await;
    let about_other: Vec<Value> = got
        .iter()
        .map(|r| r.json())
        .filter(|e| e["data"]["webhook_subscription"]["id"] == other["id"])
        .collect();
    let mut types: Vec<&str> = about_other
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "webhook_subscription.created",
            "webhook_subscription.deleted",
            "webhook_subscription.disabled",
            "webhook_subscription.events.updated"
        ]
    );
    let disabled = about_other
        .iter()
        .find(|e| e["event_type"] == json!("webhook_subscription.disabled"))
        .unwrap();
    assert_eq!(
        disabled["data"]["change"],
        json!({"from": true, "to": false})
    );
    let updated = about_other
        .iter()
        .find(|e| e["event_type"] == json!("webhook_subscription.events.updated"))
        .unwrap();
    assert_eq!(
        updated["data"]["change"],
        json!({"from": ["message.sent"], "to": ["message.read"]})
    );
}

/// A subscription deactivated by `410 Gone` is announced as `webhook_subscription.disabled`, a
/// change made by the platform (actor `system`, origin `linq`).
async fn gone_is_announced_as_a_platform_disable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(
        &app,
        &key,
        &rx.url("/w"),
        &["webhook_subscription.disabled"],
        None,
    )
    .await;
    let gone = subscribe(&app, &key, &rx.url("/gone"), &["message.sent"], None).await;
    rx.set_default("/gone", Reply::status(410));
    app.publish(event(&partner, "message.sent", None)).await;
    let got = rx.wait_for(Some("/w"), 1, WAIT).await;
    let e = got[0].json();
    assert_eq!(e["event_type"], json!("webhook_subscription.disabled"));
    assert_eq!(e["data"]["actor"], json!({"type": "system"}));
    assert_eq!(e["data"]["origin"], json!("linq"));
    assert_eq!(e["data"]["change"], json!({"from": true, "to": false}));
    assert_eq!(e["data"]["webhook_subscription"]["id"], gone["id"]);
}

/// A deleted subscription's backlog is cancelled as fast as claims go: it never holds a slot, so
/// waiting for one of its slots to free (or for the poll) would take a poll interval per batch.
async fn a_deleted_subscriptions_backlog_is_cancelled_promptly(backend: Backend) {
    const EVENTS: usize = 5000;
    let mut opts = Options::default();
    // Queue without delivering: nothing is sent before the subscription is gone.
    opts.raw.role = Some(Role::Api);
    let app = TestApp::spawn_with(backend, opts).await;
    let (partner, key) = app.partner("acme").await;
    let sub = subscribe(
        &app,
        &key,
        "https://gone.example/h",
        &["message.sent"],
        None,
    )
    .await;
    for _ in 0..EVENTS / 500 {
        let events: Vec<Value> = (0..500)
            .map(|_| event(&partner, "message.sent", None))
            .collect();
        let r = app
            .http
            .post(app.url("/admin/v1/events/batch"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"events": events}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let path = format!("/v3/webhook-subscriptions/{}", sub["id"].as_str().unwrap());
    let (s, _) = app.call(&key, Method::DELETE, &path, None).await;
    assert_eq!(s, 204);

    let mut app = app;
    app.settings.role = Role::All;
    let app = app.restart().await;
    // `settled` gives up after 15 s; one claim batch per poll interval would need about 40.
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            cancelled: EVENTS as u64,
            ..Default::default()
        }
    );
}

crate::per_backend!(
    fans_out_to_matching_subscriptions_only,
    deliveries_carry_both_signatures_and_the_linq_envelope,
    message_edited_goes_only_to_2026_02_03_subscriptions,
    retries_5xx_and_429_honouring_retry_after_with_the_same_webhook_id,
    gives_up_after_the_last_retry_and_never_retries_other_4xx,
    gone_deactivates_the_subscription_and_redirects_are_not_followed,
    a_hanging_receiver_times_out_while_a_healthy_one_keeps_receiving,
    ssrf_guard_refuses_loopback_ips_and_names_without_an_allow_list,
    deactivating_or_deleting_stops_remaining_attempts,
    publish_is_idempotent_per_partner_event_id,
    publish_validation_errors,
    a_full_subscription_neither_blocks_others_nor_exceeds_its_room,
    routing_tokens_are_learned_per_chat_and_echoed,
    subscription_changes_are_delivered_as_account_events,
    gone_is_announced_as_a_platform_disable,
    a_deleted_subscriptions_backlog_is_cancelled_promptly,
);
