//! The partner's delivery log and redelivery over real HTTP: listing with filters and cursor
//! pages, one delivery with its attempts, retry, recovery with a real receiver, and tenant
//! isolation on every endpoint.

use crate::common::*;
use hookline::config::RawConfig;
use reqwest::Method;
use serde_json::{json, Value};

crate::per_backend!(
    the_log_lists_newest_first_with_filters_and_cursor_pages,
    a_delivery_shows_each_attempt_with_the_response_body,
    bad_log_parameters_answer_400_with_the_parameter_named,
    the_log_reads_every_query_the_document_describes,
    every_endpoint_answers_404_for_another_partners_ids,
    a_retry_redelivers_the_same_event_with_a_fresh_schedule,
    a_retry_is_refused_while_pending_and_when_the_subscription_is_inactive,
    a_recovery_redelivers_every_failed_delivery_of_its_window,
);

/// A server whose recovery runner re-queues 20 deliveries a second (2 per tick).
async fn app(backend: Backend) -> TestApp {
    let mut opts = Options::default();
    opts.raw = RawConfig {
        recovery_rate: Some(20),
        ..opts.raw
    };
    TestApp::spawn_with(backend, opts).await
}

async fn get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    app.call(key, Method::GET, path, None).await
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Publishes `n` `message.sent` events one after another; their ids, oldest first.
async fn publish_n(app: &TestApp, partner: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let p = app.publish(event(partner, "message.sent", None)).await;
        out.push(p["event_id"].as_str().unwrap().to_owned());
    }
    out
}

async fn the_log_lists_newest_first_with_filters_and_cursor_pages(backend: Backend) {
    let app = app(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let ok = subscribe(&app, &key, &rx.url("/ok"), &["message.sent"], None).await;
    let bad = subscribe(&app, &key, &rx.url("/bad"), &["message.sent"], None).await;
    rx.set_default("/bad", Reply::status(400));
    let events = publish_n(&app, &partner, 3).await;
    settled(&app).await;
    let newest_first: Vec<String> = events.iter().rev().cloned().collect();

    let path = format!("{}/deliveries", subscription_path(&ok));
    let (s, all) = get(&app, &key, &path).await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(ids(&all, "deliveries"), newest_first);
    assert_eq!(
        all["pagination"],
        json!({"has_more": false, "next_cursor": null, "per_page": 20})
    );
    let first = &all["deliveries"][0];
    for (field, want) in [
        ("webhook_event_type", json!("message.sent")),
        ("target_url", json!(rx.url("/ok"))),
        ("http_status_code", json!(200)),
        ("status", json!("success")),
        ("attempt", json!(1)),
        ("max_attempts", json!(3)),
        ("error_type", Value::Null),
        ("error_message", Value::Null),
        ("subscription_id", ok["id"].clone()),
        ("next_attempt_at", Value::Null),
    ] {
        assert_eq!(first[field], want, "{field}: {first}");
    }
    assert!(first["duration_ms"].is_i64());
    assert_eq!(first["trace_id"].as_str().unwrap().len(), 32);
    for field in ["timestamp", "created_at"] {
        assert!(hookline_core::Timestamp::parse_rfc3339(first[field].as_str().unwrap()).is_some());
    }

    // Cursor pages: 2, then 1, each delivery once, across both path prefixes.
    let (_, p1) = get(&app, &key, &format!("{path}?per_page=2")).await;
    assert_eq!(p1["pagination"]["has_more"], json!(true));
    let cursor = p1["pagination"]["next_cursor"].as_str().unwrap();
    let (_, p2) = get(
        &app,
        &key,
        &format!("/api/partner{path}?per_page=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(
        p2["pagination"],
        json!({"has_more": false, "next_cursor": null, "per_page": 2})
    );
    let paged: Vec<String> = [ids(&p1, "deliveries"), ids(&p2, "deliveries")].concat();
    assert_eq!(paged, newest_first);

    let bad_path = format!("{}/deliveries", subscription_path(&bad));
    let (_, failed) = get(&app, &key, &format!("{bad_path}?status=failed,retrying")).await;
    assert_eq!(ids(&failed, "deliveries"), newest_first);
    assert_eq!(failed["deliveries"][0]["error_type"], json!("http_status"));
    assert_eq!(failed["deliveries"][0]["http_status_code"], json!(400));
    let (_, none) = get(&app, &key, &format!("{bad_path}?status=success")).await;
    assert_eq!(none["deliveries"], json!([]));
    let (_, typed) = get(&app, &key, &format!("{path}?event_type=message.received")).await;
    assert_eq!(typed["deliveries"], json!([]));
    let future = "2999-01-01T00:00:00Z";
    let (_, later) = get(&app, &key, &format!("{path}?since={future}")).await;
    assert_eq!(later["deliveries"], json!([]));
    let (_, earlier) = get(&app, &key, &format!("{path}?until={future}")).await;
    assert_eq!(ids(&earlier, "deliveries"), newest_first);
}

async fn a_delivery_shows_each_attempt_with_the_response_body(backend: Backend) {
    let app = app(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let sub = subscribe(&app, &key, &rx.url("/flaky"), &["message.sent"], None).await;
    let long = "x".repeat(10_000);
    rx.script(
        "/flaky",
        vec![
            Reply::status(500).body("try later"),
            Reply::status(503).body(&long),
        ],
    );
    rx.set_default("/flaky", Reply::ok().body("thanks"));
    let event_id = publish_n(&app, &partner, 1).await.remove(0);
    settled(&app).await;

    let (s, d) = get(
        &app,
        &key,
        &format!("{}/deliveries/{event_id}", subscription_path(&sub)),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        (d["event_id"].as_str(), d["status"].as_str()),
        (Some(event_id.as_str()), Some("success"))
    );
    assert_eq!(d["attempt"], json!(3));
    let attempts = d["attempts"].as_array().unwrap();
    let summary: Vec<(i64, i64, Value)> = attempts
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["http_status_code"].as_i64().unwrap(),
                a["error_type"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, 500, json!("http_status")),
            (2, 503, json!("http_status")),
            (3, 200, Value::Null)
        ]
    );
    assert_eq!(attempts[0]["response_body"], json!("try later"));
    assert_eq!(
        attempts[1]["response_body"].as_str().unwrap().len(),
        4096,
        "the body as stored: its first 4 KiB"
    );
    for a in attempts {
        assert!(
            a["started_at"].is_string() && a["duration_ms"].is_i64(),
            "{a}"
        );
    }
}

/// A server, a partner's key and one subscription of it that is never delivered to.
async fn one_subscription(backend: Backend) -> (TestApp, String, Value) {
    let app = app(backend).await;
    let (_, key) = app.partner("acme").await;
    let target = "https://hooks.example.test/a";
    let sub = subscribe(&app, &key, target, &["message.sent"], None).await;
    (app, key, sub)
}

async fn bad_log_parameters_answer_400_with_the_parameter_named(backend: Backend) {
    let (app, key, sub) = one_subscription(backend).await;
    let path = format!("{}/deliveries", subscription_path(&sub));
    for (query, names) in [
        ("status=bogus", "status 'bogus'"),
        ("status=success,ok", "status 'ok'"),
        ("per_page=0", "per_page '0'"),
        ("per_page=101", "per_page '101'"),
        ("per_page=ten", "per_page 'ten'"),
        ("cursor=not-ours", "cursor"),
        ("since=yesterday", "since 'yesterday'"),
        ("until=2026-13-01T00:00:00Z", "until '2026-13-01T00:00:00Z'"),
        // RFC 3339's date-time only, as the document's `format: date-time` says.
        (
            "since=2026-01-01%2000:00:00Z",
            "since '2026-01-01 00:00:00Z'",
        ),
        ("until=2026-01-01T12:00:60Z", "until '2026-01-01T12:00:60Z'"),
        (
            "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            "until must be later",
        ),
        ("event_type=message.nope", "event_type 'message.nope'"),
    ] {
        let (s, v) = get(&app, &key, &format!("{path}?{query}")).await;
        let message = assert_error(s, &v, 400, 1005);
        assert!(message.contains(names), "{query}: {message}");
    }
    let (s, v) = get(&app, &key, &format!("{path}?per_page=1&per_page=2")).await;
    assert_error(s, &v, 400, 1003);
    let (s, v) = app
        .call(
            &key,
            Method::POST,
            &format!("{}/recover", subscription_path(&sub)),
            Some(json!({})),
        )
        .await;
    assert!(assert_error(s, &v, 400, 1001).contains("since"));
    for body in [
        json!({"since": "soon"}),
        json!({"since": "2026-01-01 00:00:00Z"}),
        json!({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
    ] {
        let (s, v) = app
            .call(
                &key,
                Method::POST,
                &format!("{}/recover", subscription_path(&sub)),
                Some(body),
            )
            .await;
        assert_error(s, &v, 400, 1005);
    }
}

/// What `/openapi.json` describes as valid is read: empty values as none, whitespace and empty
/// items in the status list, a `+` or leading zeros in `per_page`, `t`/`z` in lowercase, and a
/// leap second (23:59:60 in UTC, whatever the offset).
async fn the_log_reads_every_query_the_document_describes(backend: Backend) {
    let (app, key, sub) = one_subscription(backend).await;
    let path = format!("{}/deliveries", subscription_path(&sub));
    for query in [
        "status=&event_type=&since=&until=&per_page=&cursor=",
        "status=%20failed%20,,retrying,%E2%80%A8",
        "per_page=%2B007",
        "since=2026-01-01t00:00:00.5z&until=2026-01-01T00:00:01%2B00:00",
        "since=2016-12-31T15:59:60-08:00",
    ] {
        let (s, v) = get(&app, &key, &format!("{path}?{query}")).await;
        assert_eq!(s, 200, "{query}: {v}");
    }
    let (_, v) = get(&app, &key, &format!("{path}?per_page=%2B007")).await;
    assert_eq!(v["pagination"]["per_page"], json!(7));
}

async fn every_endpoint_answers_404_for_another_partners_ids(backend: Backend) {
    let app = app(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let (_, other_key) = app.partner("globex").await;
    let sub = subscribe(&app, &key, &rx.url("/a"), &["message.sent"], None).await;
    rx.set_default("/a", Reply::status(400));
    let event_id = publish_n(&app, &partner, 1).await.remove(0);
    settled(&app).await;
    let base = subscription_path(&sub);
    let (s, r) = app
        .call(
            &key,
            Method::POST,
            &format!("{base}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let recovery = r["recovery_id"].as_str().unwrap();

    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("{base}/deliveries"), None),
        (Method::GET, format!("{base}/deliveries/{event_id}"), None),
        (
            Method::POST,
            format!("{base}/deliveries/{event_id}/retry"),
            None,
        ),
        (
            Method::POST,
            format!("{base}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        ),
        (Method::GET, format!("{base}/recoveries/{recovery}"), None),
        (
            Method::GET,
            format!(
                "/api/v1/webhook-logs?subscription_id={}",
                sub["id"].as_str().unwrap()
            ),
            None,
        ),
    ];
    for (method, path, body) in requests {
        let (s, v) = app
            .call(&other_key, method.clone(), &path, body.clone())
            .await;
        assert_error(s, &v, 404, 2001);
        let (s, v) = app
            .call(&other_key, method, &format!("/api/partner{path}"), body)
            .await;
        assert_eq!(s, 404, "{path}: {v}");
    }
    foreign_ids_answer_404_to_the_owner_too(&app, &rx, &key, &base, &event_id).await;
}

/// The owner's key with ids that name nothing of its subscription: another partner's event,
/// an unknown recovery, another partner's subscription; and that partner's key with ours.
async fn foreign_ids_answer_404_to_the_owner_too(
    app: &TestApp,
    rx: &TestReceiver,
    key: &str,
    base: &str,
    event_id: &str,
) {
    let (other_partner, other_owner_key) = app.partner("initech").await;
    let other_sub = subscribe(
        app,
        &other_owner_key,
        &rx.url("/b"),
        &["message.sent"],
        None,
    )
    .await;
    let theirs = publish_n(app, &other_partner, 1).await.remove(0);
    for path in [
        format!("{base}/deliveries/{theirs}"),
        format!(
            "{base}/recoveries/{}",
            hookline_core::RecoveryId::generate()
        ),
        format!("{}/deliveries", subscription_path(&other_sub)),
    ] {
        let (s, v) = get(app, key, &path).await;
        assert_error(s, &v, 404, 2001);
    }
    let (s, v) = get(
        app,
        &other_owner_key,
        &format!("{}/deliveries/{event_id}", subscription_path(&other_sub)),
    )
    .await;
    assert_error(s, &v, 404, 2001);
}

/// A subscription whose receiver failed every attempt of one event: (app, receiver, key,
/// subscription, event id).
async fn one_failed(backend: Backend) -> (TestApp, TestReceiver, String, Value, String) {
    let app = app(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let sub = subscribe(&app, &key, &rx.url("/down"), &["message.sent"], None).await;
    rx.set_default("/down", Reply::status(503));
    let event_id = publish_n(&app, &partner, 1).await.remove(0);
    assert_eq!(settled(&app).await.failed, 1);
    assert_eq!(rx.received().len(), 3);
    (app, rx, key, sub, event_id)
}

async fn a_retry_redelivers_the_same_event_with_a_fresh_schedule(backend: Backend) {
    let (app, rx, key, sub, event_id) = one_failed(backend).await;
    rx.script("/down", vec![Reply::status(500)]);
    rx.set_default("/down", Reply::ok());
    let path = format!("{}/deliveries/{event_id}", subscription_path(&sub));
    let (s, v) = app
        .call(&key, Method::POST, &format!("{path}/retry"), None)
        .await;
    assert_eq!(s, 202, "{v}");
    assert!(
        ["pending", "retrying"].contains(&v["status"].as_str().unwrap()),
        "{v}"
    );
    assert_eq!(
        v["max_attempts"],
        json!(6),
        "three more attempts: a fresh schedule"
    );

    // Attempt 4 fails (500) and is retried after the schedule's first delay: attempt 5 succeeds.
    let got = rx.wait_for(Some("/down"), 5, WAIT).await;
    assert!(
        got.iter().all(|r| r.header("webhook-id") == event_id),
        "the same webhook-id"
    );
    settled(&app).await;
    let (_, d) = get(&app, &key, &path).await;
    assert_eq!(d["status"], json!("success"), "{d}");
    let numbers: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
    // A delivered one may be sent again too.
    let (s, v) = app
        .call(
            &key,
            Method::POST,
            &format!("/api/partner{path}/retry"),
            None,
        )
        .await;
    assert_eq!(s, 202, "{v}");
    rx.wait_for(Some("/down"), 6, WAIT).await;
}

async fn a_retry_is_refused_while_pending_and_when_the_subscription_is_inactive(backend: Backend) {
    let (app, rx, key, sub, event_id) = one_failed(backend).await;
    // The next attempt hangs past the delivery timeout (2 s): the delivery stays pending.
    rx.set_default(
        "/down",
        Reply::ok().delayed(std::time::Duration::from_secs(3)),
    );
    let retry = format!("{}/deliveries/{event_id}/retry", subscription_path(&sub));
    let (s, v) = app.call(&key, Method::POST, &retry, None).await;
    assert_eq!(s, 202, "{v}");
    let (s, v) = app.call(&key, Method::POST, &retry, None).await;
    let message = assert_error(s, &v, 409, 1005);
    assert!(message.contains("pending or retrying"), "{message}");

    rx.set_default("/down", Reply::status(400));
    assert_eq!(settled(&app).await.failed, 1);
    set_active(&app, &key, &sub, false).await;
    // Retry, recover and test refuse an inactive subscription alike: 400, one message.
    let (s, v) = app.call(&key, Method::POST, &retry, None).await;
    let refused = assert_error(s, &v, 400, 1005);
    let id = sub["id"].as_str().unwrap();
    assert!(
        refused.starts_with(&format!("webhook subscription '{id}' is inactive;")),
        "{refused}"
    );
    let base = subscription_path(&sub);
    for (path, body) in [
        ("recover", json!({"since": "2020-01-01T00:00:00Z"})),
        ("test", json!({})),
    ] {
        let (s, v) = app
            .call(&key, Method::POST, &format!("{base}/{path}"), Some(body))
            .await;
        assert_eq!(assert_error(s, &v, 400, 1005), refused, "{path}");
    }
    let (s, v) = app
        .call(
            &key,
            Method::POST,
            &format!("{}/deliveries/nope/retry", subscription_path(&sub)),
            None,
        )
        .await;
    assert_error(s, &v, 404, 2001);
}

async fn a_recovery_redelivers_every_failed_delivery_of_its_window(backend: Backend) {
    let app = app(backend).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let sub = subscribe(&app, &key, &rx.url("/down"), &["message.sent"], None).await;
    rx.set_default("/down", Reply::status(400));
    let since = hookline_core::Timestamp::now().rfc3339();
    let events = publish_n(&app, &partner, 5).await;
    assert_eq!(settled(&app).await.failed, 5);
    rx.set_default("/down", Reply::ok());

    let base = subscription_path(&sub);
    let (s, r) = app
        .call(
            &key,
            Method::POST,
            &format!("{base}/recover"),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["deliveries"], json!(5));
    let status_path = format!("{base}/recoveries/{}", r["recovery_id"].as_str().unwrap());
    let got = rx.wait_for(Some("/down"), 10, WAIT).await;
    let mut redelivered: Vec<String> = got[5..]
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    redelivered.sort();
    let mut want = events.clone();
    want.sort();
    assert_eq!(
        redelivered, want,
        "each failed event once more, under its own webhook-id"
    );
    let done = eventually("the recovery to complete", WAIT, || {
        let (app, key, path) = (&app, &key, &status_path);
        async move {
            let (_, v) = get(app, key, path).await;
            (v["status"] == json!("completed")).then_some(v)
        }
    })
    .await;
    assert_eq!(
        (done["queued"].clone(), done["total"].clone()),
        (json!(5), json!(5)),
        "{done}"
    );
    assert_eq!(settled(&app).await.succeeded, 5);
    // Nothing failed in a window that ended before the events: nothing to do.
    let (s, r) = app
        .call(
            &key,
            Method::POST,
            &format!("{base}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z", "until": since})),
        )
        .await;
    assert_eq!((s, r["deliveries"].clone()), (202, json!(0)), "{r}");
}
