//! `linq webhooks logs` against hookline: the request the Linq CLI makes (linq-cli
//! `src/commands/webhooks/logs.ts`, CONTRACT.md §5.2) — its query, its headers — and its
//! response decoded the way the CLI does: every `WebhookLog` field with the type its interface
//! declares, `pagination`, and the three statuses it renders.

use crate::common::*;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

crate::per_backend!(
    the_linq_cli_logs_request_gets_its_response_shape,
    the_compatibility_endpoint_refuses_what_the_cli_never_sends,
);

/// The CLI's `WebhookLog` interface: no optional or nullable field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct WebhookLog {
    event_id: String,
    webhook_event_type: String,
    target_url: String,
    http_status_code: u16,
    duration_ms: u64,
    timestamp: String,
    status: String,
    attempt: u32,
    max_attempts: u32,
    error_type: String,
    error_message: String,
    trace_id: String,
    subscription_id: String,
}

#[derive(Debug, Deserialize)]
struct Pagination {
    has_more: bool,
    next_cursor: Option<String>,
    per_page: u32,
}

#[derive(Debug, Deserialize)]
struct WebhookLogsResponse {
    webhook_logs: Vec<WebhookLog>,
    pagination: Pagination,
}

/// `queryLogs` of logs.ts: `${LINQ_LOGS_URL}/v1/webhook-logs?${params}` with the CLI's headers.
/// `status` `all` is left out, as the CLI does. CONTRACT.md §5.2 also lists `partner_id`
/// (older CLI versions); both carry the profile's org id, which hookline ignores.
async fn query_logs(
    logs_url: &str,
    token: &str,
    subscription_id: &str,
    limit: usize,
    status: &str,
    event: Option<&str>,
) -> (u16, String) {
    let mut params = vec![
        ("partner_id", "org-from-linq-login".to_owned()),
        ("org_id", "org-from-linq-login".to_owned()),
        ("subscription_id", subscription_id.to_owned()),
        ("per_page", limit.min(50).to_string()),
    ];
    if status != "all" {
        params.push(("status", status.to_owned()));
    }
    if let Some(e) = event {
        params.push(("event_type", e.to_owned()));
    }
    let response = reqwest::Client::new()
        .get(format!("{logs_url}/v1/webhook-logs"))
        .query(&params)
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {token}"))
        .timeout(std::time::Duration::from_secs(15))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `printLog`'s status column.
fn rendered(log: &WebhookLog) -> String {
    let code = |fallback: &str| match log.http_status_code {
        0 => fallback.to_owned(),
        c => c.to_string(),
    };
    match log.status.as_str() {
        "success" => format!("{} OK", log.http_status_code),
        "failed" => format!("{} Failed", code("ERR")),
        "retrying" => format!("{} Retry {}/{}", code("---"), log.attempt, log.max_attempts),
        other => panic!("status {other} is not one the CLI knows"),
    }
}

async fn logs(app: &TestApp, key: &str, sub: &Value, status: &str) -> WebhookLogsResponse {
    let logs_url = app.url("/api"); // LINQ_LOGS_URL=<hookline>/api
    let (s, body) = query_logs(
        &logs_url,
        key,
        sub["id"].as_str().unwrap(),
        20,
        status,
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Three events to one receiver: delivered (200), refused (404), and retrying (503, asked to
/// come back in a minute). Their ids, oldest first, once each attempt is logged.
async fn three_outcomes(app: &TestApp, rx: &TestReceiver, partner: &str) -> Vec<String> {
    rx.script(
        "/hook",
        vec![
            Reply::ok(),
            Reply::status(404).body("no such hook"),
            // Retried in a minute: still retrying while the test looks.
            Reply::status(503).header("retry-after", "60"),
        ],
    );
    let mut ids = Vec::new();
    for ty in ["message.sent", "message.received", "message.sent"] {
        let p = app.publish(event(partner, ty, None)).await;
        ids.push(p["event_id"].as_str().unwrap().to_owned());
        rx.wait_for(Some("/hook"), ids.len(), WAIT).await;
        eventually("the attempt to be logged", WAIT, || {
            let (app, partner, id) = (app, partner, ids.last().unwrap().clone());
            async move { (!app.attempts(partner, &id).await.is_empty()).then_some(()) }
        })
        .await;
    }

    ids
}

async fn the_linq_cli_logs_request_gets_its_response_shape(backend: Backend) {
    let app = TestApp::spawn(backend).await; // 3 attempts in all
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    let sub = subscribe(
        &app,
        &key,
        &rx.url("/hook"),
        &["message.sent", "message.received"],
        None,
    )
    .await;
    let ids = three_outcomes(&app, &rx, &partner).await;

    let all = logs(&app, &key, &sub, "all").await;
    assert_eq!(all.webhook_logs.len(), 3);
    assert!(!all.pagination.has_more && all.pagination.next_cursor.is_none());
    assert_eq!(all.pagination.per_page, 20);
    let shown: Vec<(String, String)> = all
        .webhook_logs
        .iter()
        .map(|l| (l.event_id.clone(), rendered(l)))
        .collect();
    assert_eq!(
        shown,
        vec![
            (ids[2].clone(), "503 Retry 1/3".to_owned()),
            (ids[1].clone(), "404 Failed".to_owned()),
            (ids[0].clone(), "200 OK".to_owned()),
        ]
    );
    let ok = &all.webhook_logs[2];
    assert_eq!(
        (ok.error_type.as_str(), ok.error_message.as_str()),
        ("", "")
    );
    assert_eq!(ok.subscription_id, sub["id"].as_str().unwrap());
    assert_eq!(ok.target_url, rx.url("/hook"));
    assert_eq!(ok.trace_id.len(), 32);
    assert!(hookline_core::Timestamp::parse_rfc3339(&ok.timestamp).is_some());
    assert_eq!(all.webhook_logs[1].error_type, "http_status");
    assert_eq!(all.webhook_logs[1].webhook_event_type, "message.received");

    for (status, want) in [
        ("success", &ids[0]),
        ("failed", &ids[1]),
        ("retrying", &ids[2]),
    ] {
        let only = logs(&app, &key, &sub, status).await;
        let got: Vec<&String> = only.webhook_logs.iter().map(|l| &l.event_id).collect();
        assert_eq!(got, vec![want], "--status {status}");
    }
    let logs_url = app.url("/api");
    let (_, body) = query_logs(
        &logs_url,
        &key,
        sub["id"].as_str().unwrap(),
        20,
        "all",
        Some("message.received"),
    )
    .await;
    let typed: WebhookLogsResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(typed.webhook_logs.len(), 1, "--event message.received");

    cursor_pages(&app, &key, &sub, &ids).await;
}

/// `--last 2`: a page of 2 and a cursor to the rest.
async fn cursor_pages(app: &TestApp, key: &str, sub: &Value, ids: &[String]) {
    let logs_url = app.url("/api");
    let (_, body) = query_logs(&logs_url, key, sub["id"].as_str().unwrap(), 2, "all", None).await;
    let page: WebhookLogsResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (page.webhook_logs.len(), page.pagination.has_more),
        (2, true)
    );
    let cursor = page.pagination.next_cursor.unwrap();
    let (s, rest) = app
        .call(
            key,
            Method::GET,
            &format!(
                "/api/v1/webhook-logs?subscription_id={}&per_page=2&cursor={cursor}",
                sub["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(rest["webhook_logs"][0]["event_id"], json!(ids[0]));
}

async fn the_compatibility_endpoint_refuses_what_the_cli_never_sends(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let sub = subscribe(
        &app,
        &key,
        "https://hooks.example.test/a",
        &["message.sent"],
        None,
    )
    .await;
    let id = sub["id"].as_str().unwrap();
    let (s, v) = app
        .call(
            "hl_live_wrong",
            Method::GET,
            &format!("/api/v1/webhook-logs?subscription_id={id}"),
            None,
        )
        .await;
    assert_error(s, &v, 401, 2004);
    let (s, v) = app
        .call(
            &key,
            Method::GET,
            &format!("/api/v1/webhook-logs?subscription_id={id}&status=cancelled"),
            None,
        )
        .await;
    assert!(assert_error(s, &v, 400, 1005).contains("success, failed, retrying"));
    let (s, v) = app
        .call(
            &key,
            Method::GET,
            "/api/v1/webhook-logs?subscription_id=nope",
            None,
        )
        .await;
    assert_error(s, &v, 404, 2001);
    // Without a subscription: the key's partner's whole log.
    let (s, v) = app
        .call(&key, Method::GET, "/api/v1/webhook-logs", None)
        .await;
    assert_eq!((s, v["webhook_logs"].clone()), (200, json!([])), "{v}");
}
