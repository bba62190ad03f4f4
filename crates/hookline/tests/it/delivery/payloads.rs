//! Event payloads end to end (issue 15): every CONTRACT.md §4.4 seed example passes `strict`
//! validation and arrives in a shape linq-python's typed models parse strictly; a
//! `?version=2025-01-01` subscription receives Linq's 2025 shape (§4.5) for each message event;
//! broken payloads are refused with the path and rule (`strict`) or delivered and logged (`warn`).

use crate::common::*;
use crate::python;
use hookline::config::{RawConfig, ValidatePayloads};
use serde_json::{json, Value};

const TRACE: &str = "8af9171a45022df2eb74ba4e4c83be0f";

fn fixture() -> Value {
    serde_json::from_str(include_str!("payloads.json")).unwrap()
}

async fn app_validating(backend: Backend, mode: ValidatePayloads) -> TestApp {
    let mut opts = Options::default();
    opts.raw = RawConfig {
        validate_payloads: Some(mode),
        ..opts.raw
    };
    TestApp::spawn_with(backend, opts).await
}

async fn seed_examples_parse_and_old_subscribers_get_the_2025_shape(backend: Backend) {
    let app = app_validating(backend, ValidatePayloads::Strict).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let (status, catalogue) = app
        .admin(reqwest::Method::GET, "/admin/v1/event-types", None)
        .await;
    assert_eq!(status, 200, "{catalogue}");
    assert_eq!(catalogue["validation"], "strict");
    let seed: Vec<&Value> = catalogue["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["seed"] == true)
        .collect();
    assert_eq!(seed.len(), 25);
    let names: Vec<&str> = seed
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    let messages = [
        "message.sent",
        "message.received",
        "message.read",
        "message.delivered",
    ];
    subscribe(&app, &key, &rx.url("/new?version=2026-02-03"), &names, None).await;
    subscribe(
        &app,
        &key,
        &rx.url("/old?version=2025-01-01"),
        &messages,
        None,
    )
    .await;
    for e in &seed {
        let t = e["event_type"].as_str().unwrap();
        let body = json!({"partner_id": partner, "event_type": t, "event_id": format!("seed-{t}"),
            "created_at": "2026-02-05T19:31:13.736444093Z", "trace_id": TRACE, "data": e["example"]});
        let (s, v) = app
            .admin(reqwest::Method::POST, "/admin/v1/events", Some(body))
            .await;
        assert_eq!(s, 202, "{t} refused under strict: {v}");
    }
    let new = rx.wait_for(Some("/new"), 25, WAIT).await;
    let lines: String = new
        .iter()
        .map(|r| format!("{}\n", std::str::from_utf8(&r.body).unwrap()))
        .collect();
    let parsed = run_python("check_payloads.py", &lines).await;
    assert_eq!(parsed.matches("ok ").count(), 25, "{parsed}");

    let expected = &fixture()["expected_2025"];
    let old = rx.wait_for(Some("/old"), 4, WAIT).await;
    for r in &old {
        let got = r.json();
        let t = got["event_type"].as_str().unwrap();
        let want = json!({"api_version": "v3", "webhook_version": "2025-01-01", "event_type": t,
            "event_id": format!("seed-{t}"), "created_at": "2026-02-05T19:31:13.736444093Z",
            "trace_id": TRACE, "partner_id": partner, "data": expected[t]});
        assert_eq!(got, want, "{t}");
    }
}

/// CONTRACT.md §4.5's own message: derived, it equals §4.5 but for the two times the 2026
/// shape does not carry (README: filled from `sent_at`); supplied by the publisher in
/// `data_by_version`, it arrives exactly as §4.5.
async fn linqs_2025_example_is_derived_or_taken_from_data_by_version(backend: Backend) {
    let app = app_validating(backend, ValidatePayloads::Strict).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(
        &app,
        &key,
        &rx.url("/old?version=2025-01-01"),
        &["message.received"],
        None,
    )
    .await;
    let f = fixture();
    let c45 = &f["contract_4_5"];
    let mut derived = json!({"partner_id": partner, "event_type": "message.received",
        "event_id": "derived", "created_at": c45["created_at"], "trace_id": c45["trace_id"],
        "data": f["contract_4_5_as_2026"]});
    app.publish(derived.clone()).await;
    derived["event_id"] = c45["event_id"].clone();
    derived["data_by_version"] = json!({"2025-01-01": c45["data"]});
    app.publish(derived).await;
    let got = rx.wait_for(Some("/old"), 2, WAIT).await;
    for r in got {
        let body = r.json();
        let mut want = c45.clone();
        want["partner_id"] = json!(partner);
        if body["event_id"] == "derived" {
            want["event_id"] = json!("derived");
            want["data"]["message"]["created_at"] = json!("2026-02-05T19:31:13.074Z");
            want["data"]["message"]["updated_at"] = json!("2026-02-05T19:31:13.074Z");
        }
        assert_eq!(body, want);
    }
}

/// The broken payloads of the issue: each refused under `strict` naming the path and the rule;
/// under `warn` each is delivered.
async fn broken_payloads_are_refused_with_the_path_or_delivered_under_warn(backend: Backend) {
    let example = |t: &str| {
        let e = hookline_core::EventType::parse(t).unwrap();
        hookline_core::payload::catalogue::entry(e).example.clone()
    };
    let mut missing = example("message.received");
    missing.as_object_mut().unwrap().remove("sender_handle");
    let mut wrong_type = example("reaction.added");
    wrong_type["part_index"] = json!("first");
    let mut unknown_part = example("message.sent");
    unknown_part["parts"][0] = json!({"type": "hologram", "value": "x"});
    let cases = [
        ("message.received", missing, "data does not match the message.received schema: \"sender_handle\" is a required property (rule: required"),
        ("reaction.added", wrong_type, "data/part_index does not match the reaction.added schema: \"first\" is not of types \"null\", \"integer\" (rule: type"),
        ("message.sent", unknown_part, "data/parts/0/type does not match the message.sent schema: \"hologram\" is not one of"),
    ];
    let strict = app_validating(backend, ValidatePayloads::Strict).await;
    let (partner, _) = strict.partner("acme").await;
    for (t, data, want) in &cases {
        let (s, v) = strict
            .admin(
                reqwest::Method::POST,
                "/admin/v1/events",
                Some(json!({"partner_id": partner, "event_type": t, "data": data})),
            )
            .await;
        let message = assert_error(s, &v, 400, 1005);
        assert!(message.starts_with(want), "{message}");
    }
    let (s, v) = strict
        .admin(
            reqwest::Method::POST,
            "/admin/v1/events/batch",
            Some(json!({"events": [
            {"partner_id": partner, "event_type": "message.sent", "data": example("message.sent")},
            {"partner_id": partner, "event_type": cases[2].0, "data": cases[2].1}]})),
        )
        .await;
    assert!(
        assert_error(s, &v, 400, 1005).starts_with("events[1].data/parts/0/type"),
        "{v}"
    );

    let warn = app_validating(backend, ValidatePayloads::Warn).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = warn.partner("acme").await;
    subscribe(
        &warn,
        &key,
        &rx.url("/w"),
        &["message.received", "reaction.added", "message.sent"],
        None,
    )
    .await;
    for (t, data, _) in cases {
        let p = warn
            .publish(json!({"partner_id": partner, "event_type": t, "data": data}))
            .await;
        assert_eq!(p["deliveries"], 1);
    }
    rx.wait_for(Some("/w"), 3, WAIT).await;
    let metrics = warn.get_text("/metrics", None).await;
    assert!(
        metrics.contains(
            "hookline_payload_violations_total{event_type=\"reaction.added\",mode=\"warn\"}"
        ),
        "{metrics}"
    );
}

async fn run_python(script: &str, input: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(python::python())
        .arg(python::script(script))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

crate::per_backend!(
    seed_examples_parse_and_old_subscribers_get_the_2025_shape,
    linqs_2025_example_is_derived_or_taken_from_data_by_version,
    broken_payloads_are_refused_with_the_path_or_delivered_under_warn,
);
