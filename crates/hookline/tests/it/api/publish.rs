//! Publishing events through the operator API: idempotency per event id, validation, batches.

use crate::common::*;
use hookline::store::DeliveryCounts;
use reqwest::Method;
use serde_json::{json, Value};

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
    let mut repeated = first.clone();
    repeated["repeated"] = json!(true);
    assert_eq!((s, again), (200, repeated));
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
    let repeats: Vec<_> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["event_id"].as_str().unwrap(), r.get("repeated").is_some()))
        .collect();
    assert_eq!(
        repeats,
        [("dup-1", true), ("dup-2", false), ("dup-2", true)]
    );
    let c = settled(&app).await;
    assert_eq!(c.succeeded, 2);
    assert_eq!(rx.received().len(), 2);
}

/// An app whose events may be at most 1 KiB, so the size limit is cheap to hit.
async fn spawn_with_1_kib_events(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            raw: hookline::config::RawConfig {
                max_event_bytes: Some(1024),
                ..Options::default().raw
            },
            ..Options::default()
        },
    )
    .await
}

/// Events `POST /admin/v1/events` refuses, with the status, code and a word of the message each
/// gets.
fn invalid_events(partner: &str) -> Vec<(Value, u16, u64, &'static str)> {
    vec![
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
    ]
}

async fn invalid_events_are_refused_with_a_code_and_a_message_naming_the_problem(backend: Backend) {
    let app = spawn_with_1_kib_events(backend).await;
    let (partner, _) = app.partner("acme").await;
    for (body, status, code, needle) in invalid_events(&partner) {
        let (s, v) = app
            .admin(Method::POST, "/admin/v1/events", Some(body.clone()))
            .await;
        let msg = assert_error(s, &v, status, code);
        assert!(msg.contains(needle), "{body} → {msg}");
    }
    assert_eq!(counts(&app).await, DeliveryCounts::default());
}

async fn a_null_phone_number_is_the_same_as_an_absent_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (partner, _) = app.partner("acme").await;
    let (s, _) = app.admin(Method::POST, "/admin/v1/events",
        Some(json!({"partner_id": partner, "event_type": "message.sent", "phone_number": null, "data": {}}))).await;
    assert_eq!(s, 202);
}

async fn a_batch_with_one_bad_event_is_refused_whole_naming_the_bad_element(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (partner, _) = app.partner("acme").await;
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
}

/// An unknown partner in a batch is named with its place, like the batch's other errors; long
/// ids are quoted cut to 64 characters.
async fn an_unknown_partner_in_a_batch_names_its_place_and_long_ids_are_quoted_cut(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (partner, _) = app.partner("acme").await;
    let good = json!({"partner_id": partner, "event_type": "message.sent", "data": {}});
    let stranger = json!({"partner_id": "y".repeat(100), "event_type": "message.sent", "data": {}});
    let (s, v) = app
        .admin(
            Method::POST,
            "/admin/v1/events/batch",
            Some(json!({"events": [good.clone(), good.clone(), stranger]})),
        )
        .await;
    let msg = assert_error(s, &v, 400, 1005);
    assert!(msg.starts_with("events[2]: Unknown partner_id"), "{msg}");
    assert!(msg.contains(&format!("{}…", "y".repeat(64))), "{msg}");
    assert!(!msg.contains(&"y".repeat(65)), "{msg}");
    for field in ["event_id", "trace_id", "created_at"] {
        let mut e = good.clone();
        e[field] = json!("x".repeat(300));
        let (s, v) = app.admin(Method::POST, "/admin/v1/events", Some(e)).await;
        let msg = assert_error(s, &v, 400, 1005);
        assert!(
            msg.contains(&format!("{}…", "x".repeat(64))),
            "{field}: {msg}"
        );
        assert!(!msg.contains(&"x".repeat(65)), "{field}: {msg}");
    }
    assert_eq!(counts(&app).await, DeliveryCounts::default());
}

async fn empty_batches_and_batches_over_1000_events_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (partner, _) = app.partner("acme").await;
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

crate::per_backend!(
    publish_is_idempotent_per_partner_event_id,
    invalid_events_are_refused_with_a_code_and_a_message_naming_the_problem,
    a_null_phone_number_is_the_same_as_an_absent_one,
    a_batch_with_one_bad_event_is_refused_whole_naming_the_bad_element,
    empty_batches_and_batches_over_1000_events_are_refused,
    an_unknown_partner_in_a_batch_names_its_place_and_long_ids_are_quoted_cut,
    data_receivers_cannot_parse_is_refused_and_data_is_shown_as_published,
);

/// `data` is delivered byte for byte, so what receivers' parsers refuse is refused at publish
/// (syntax alone lets it through), naming the value; the event view shows `data` as published.
async fn data_receivers_cannot_parse_is_refused_and_data_is_shown_as_published(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (partner, _) = app.partner("acme").await;
    let publish = |path: &'static str, body: String| {
        let req = app.http.post(app.url(path)).bearer_auth(ADMIN_TOKEN);
        async move {
            let r = req.header("content-type", "application/json").body(body);
            into_parts(r.send().await.unwrap()).await
        }
    };
    let event = |data: &str| {
        format!(r#"{{"partner_id":"{partner}","event_type":"message.sent","data":{data}}}"#)
    };
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
    for (data, needle) in [
        (
            r#"{"n":1e400}"#,
            "a number beyond the range of a double at line 1",
        ),
        (r#"{"s":"\ud800"}"#, "surrogate pair, not a character"),
        (deep.as_str(), "nested more than 127 deep"),
    ] {
        let (s, v) = publish("/admin/v1/events", event(data)).await;
        let msg = assert_error(s, &v, 400, 1005);
        assert!(
            msg.starts_with("data has a value JSON parsers refuse: "),
            "{msg}"
        );
        assert!(msg.contains(needle), "{data} → {msg}");
    }
    let version = r#"{},"data_by_version":{"2025-01-01":{"n":-1e999}}"#;
    let (s, v) = publish(
        "/admin/v1/events/batch",
        format!(r#"{{"events":[{}]}}"#, event(version)),
    )
    .await;
    let msg = assert_error(s, &v, 400, 1005);
    assert!(
        msg.starts_with("events[0].data_by_version.2025-01-01 has a value"),
        "{msg}"
    );
    assert_eq!(counts(&app).await, DeliveryCounts::default());

    let data = r#"{"z":-0,"big":18446744073709551616,"f":1.50}"#;
    let (s, v) = publish("/admin/v1/events", event(data)).await;
    assert_eq!(s, 202, "{v}");
    let path = format!(
        "/admin/v1/events/{}?partner_id={partner}",
        v["event_id"].as_str().unwrap()
    );
    let shown = app.get_text(&path, Some(ADMIN_TOKEN)).await;
    assert!(shown.contains(&format!(r#""data":{data}"#)), "{shown}");
}

/// Unreadable `data` is refused whatever `HOOKLINE_VALIDATE_PAYLOADS` says: with `off` nothing
/// else reads it, with `strict` it is not a schema violation but this.
#[tokio::test]
async fn data_receivers_cannot_parse_is_refused_in_every_validation_mode() {
    use hookline::config::{RawConfig, ValidatePayloads};
    for mode in [ValidatePayloads::Off, ValidatePayloads::Strict] {
        let mut opts = Options::default();
        opts.raw = RawConfig {
            validate_payloads: Some(mode),
            ..opts.raw
        };
        let app = TestApp::spawn_with(Backend::Sqlite, opts).await;
        let (partner, _) = app.partner("acme").await;
        let body = format!(
            r#"{{"partner_id":"{partner}","event_type":"message.sent","data":{{"n":1e400}}}}"#
        );
        let r = app
            .http
            .post(app.url("/admin/v1/events"))
            .bearer_auth(ADMIN_TOKEN);
        let r = r.header("content-type", "application/json").body(body);
        let (s, v) = into_parts(r.send().await.unwrap()).await;
        let msg = assert_error(s, &v, 400, 1005);
        assert!(
            msg.starts_with("data has a value JSON parsers refuse: a number beyond"),
            "{mode:?}: {msg}"
        );
    }
}
