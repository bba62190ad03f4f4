//! `/metrics` scraped after real deliveries: each counter moved by exactly what happened, the
//! sampled gauges show the queue, and every metric the dashboard and the alert rules name is
//! exported.

use super::{scrape, Scrape};
use crate::common::{
    eventually, into_parts, workspace_root, Backend, Options, PgDatabase, Reply, TestApp,
    TestReceiver, ADMIN_TOKEN, WAIT,
};
use crate::per_backend;
use crate::process::{
    create_subscription, free_port, http_client, node_env, post_batch, set_up_tenant, Node, Tenant,
};
use serde_json::json;
use std::collections::BTreeSet;

per_backend!(counters_move_as_deliveries_happen);

/// A store for a node of its own: a SQLite file in `dir`, or a fresh PostgreSQL database.
async fn database(backend: Backend, dir: &std::path::Path) -> (String, Option<PgDatabase>) {
    match backend {
        Backend::Sqlite => (format!("sqlite://{}", dir.join("m.db").display()), None),
        Backend::Postgres => {
            let db = PgDatabase::create().await;
            (db.url.clone(), Some(db))
        }
    }
}

const DELIVERED: &[(&str, &str)] = &[("result", "delivered"), ("error_kind", "none")];
const RETRY: &[(&str, &str)] = &[("result", "retry"), ("error_kind", "http_status")];
const FAILED: &[(&str, &str)] = &[("result", "failed"), ("error_kind", "http_status")];

async fn counters_move_as_deliveries_happen(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = database(backend, dir.path()).await;
    let rx = TestReceiver::start().await;
    rx.set_default("/fail", Reply::status(500));
    rx.set_default("/gone", Reply::status(410));
    let env = node_env(&[
        ("HOOKLINE_DATABASE_URL", &url),
        ("HOOKLINE_RETRY_SCHEDULE", "1h"),
        ("HOOKLINE_METRICS_SAMPLE_INTERVAL", "100ms"),
    ]);
    let node = Node::start(&env, &dir.path().join("node.log")).await;
    let http = http_client();
    let metrics = node.url("/metrics");
    let t = set_up_tenant(&http, &node.base, "metrics", &rx.url("/ok")).await;
    create_subscription(&http, &node.base, &t.api_key, &rx.url("/fail")).await;
    let before = scrape(&http, &metrics).await;

    traffic(&http, &node, &rx, &t).await;
    // Outcomes are recorded (and counted) a moment after the receiver saw them; the gauges
    // follow at the next sample.
    let after = eventually("the counters and gauges to settle", WAIT, || {
        let (http, metrics) = (http.clone(), metrics.clone());
        async move {
            let s = scrape(&http, &metrics).await;
            let settled = s.value("hookline_delivery_attempts_total", DELIVERED) == 11.0
                && s.value("hookline_delivery_attempts_total", RETRY) == 11.0
                && s.value("hookline_delivery_attempts_total", FAILED) == 1.0
                && s.value("hookline_subscriptions", &[("state", "inactive")]) == 1.0
                && s.value("hookline_deliveries_pending", &[]) == 11.0
                && s.value("hookline_deliveries_in_flight", &[]) == 0.0;
            settled.then_some(s)
        }
    })
    .await;
    counters_moved_by_what_happened(&before, &after);
    gauges_show_the_queue(&after);
    every_metric_the_dashboard_and_alerts_name_is_exported(&after);
    the_portal_health_view_shows_the_same_numbers(&node, &after).await;
}

/// The operator's health page: the queue gauges and this node's counters as scraped (nothing
/// moved since `after`: every delivery left is waiting for its retry in an hour).
async fn the_portal_health_view_shows_the_same_numbers(node: &Node, after: &Scrape) {
    let mut operator = crate::portal::Visitor::at(&node.base);
    let signed_in = operator.sign_in(ADMIN_TOKEN, true).await;
    assert_eq!(signed_in.status, 303);
    let page = operator.get("/portal/admin/health").await;
    assert_eq!(page.status, 200);
    let gauge = |name: &str| after.value(name, &[]) as u64;
    let (pending, due, retrying) = (
        gauge("hookline_deliveries_pending"),
        gauge("hookline_deliveries_due"),
        gauge("hookline_deliveries_retrying"),
    );
    let text = page.body.replace('\n', " ");
    for shown in [
        format!("<div class=\"n\">{pending}</div>"),
        format!("deliveries pending: {due} due now, {retrying} retrying"),
        // 11 retried and 1 failed of 23 attempts; one 410 deactivation.
        "52.2 %".to_owned(),
        "12 of 23 attempts by this node failed".to_owned(),
        "deactivated by this node: 1 on 410 Gone, 0 as dead endpoints".to_owned(),
    ] {
        assert!(text.contains(&shown), "{shown} in {text}");
    }
}

/// Ten events in one batch to /ok and /fail (500, retried in an hour), then one more once /gone
/// (410) is subscribed, and a GET of an unknown subscription id.
async fn traffic(http: &reqwest::Client, node: &Node, rx: &TestReceiver, t: &Tenant) {
    let ids: Vec<String> = (0..10).map(|i| format!("m-{i}")).collect();
    let (s, v) = post_batch(http, &node.base, &t.partner_id, &ids)
        .await
        .unwrap();
    assert_eq!(s, 202, "{v}");
    rx.wait_for(Some("/ok"), 10, WAIT).await;
    rx.wait_for(Some("/fail"), 10, WAIT).await;
    create_subscription(http, &node.base, &t.api_key, &rx.url("/gone")).await;
    let event = json!({"partner_id": t.partner_id, "event_type": "message.received", "data": {}});
    let r = http
        .post(node.url("/admin/v1/events"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(into_parts(r).await.0, 202);
    rx.wait_for(Some("/gone"), 1, WAIT).await;
    let missing = http
        .get(node.url("/v3/webhook-subscriptions/sub_nope"))
        .bearer_auth(&t.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

fn counters_moved_by_what_happened(before: &Scrape, after: &Scrape) {
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let published = [("event_type", "message.received")];
    assert_eq!(moved("hookline_events_published_total", &published), 11.0);
    assert_eq!(moved("hookline_deliveries_created_total", &[]), 23.0);
    assert_eq!(
        moved("hookline_ingest_to_delivery_seconds_count", &[]),
        23.0
    );
    let delivered = [("result", "delivered")];
    assert_eq!(
        moved(
            "hookline_delivery_attempt_duration_seconds_count",
            &delivered
        ),
        11.0
    );
    assert_eq!(
        moved(
            "hookline_subscriptions_deactivated_total",
            &[("reason", "gone")]
        ),
        1.0
    );
    // Two publish requests, and two account events through the same Publisher: /gone's
    // creation and its deactivation.
    assert_eq!(moved("hookline_publish_duration_seconds_count", &[]), 4.0);
    let account = [("event_type", "webhook_subscription.disabled")];
    assert_eq!(moved("hookline_events_published_total", &account), 1.0);
    let http_requests = |route: &str, method: &str, status: &str| {
        moved(
            "hookline_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(http_requests("/admin/v1/events/batch", "POST", "202"), 1.0);
    assert_eq!(http_requests("/admin/v1/events", "POST", "202"), 1.0);
    assert_eq!(
        http_requests("/v3/webhook-subscriptions", "POST", "201"),
        1.0
    );
    // The template, not the id: one series however many ids are asked for.
    assert_eq!(
        http_requests("/v3/webhook-subscriptions/{id}", "GET", "404"),
        1.0
    );
    let commits = |op: &str| {
        moved(
            "hookline_store_commit_duration_seconds_count",
            &[("operation", op)],
        )
    };
    assert!(commits("publish") >= 2.0);
    assert!(commits("outcomes") >= 1.0);
}

/// The 11 deliveries to /fail wait for their retry in an hour; nothing else is pending.
fn gauges_show_the_queue(after: &Scrape) {
    assert_eq!(after.value("hookline_deliveries_retrying", &[]), 11.0);
    assert_eq!(after.value("hookline_deliveries_due", &[]), 0.0);
    assert_eq!(
        after.value("hookline_oldest_due_delivery_age_seconds", &[]),
        0.0
    );
    assert_eq!(
        after.value("hookline_subscriptions", &[("state", "active")]),
        2.0
    );
    assert_eq!(after.value("hookline_ready", &[]), 1.0);
    assert!(after.value("hookline_store_size_bytes", &[]) > 0.0);
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(after.value("hookline_build_info", &version), 1.0);
}

/// The metric names in `text`: `hookline_…` tokens.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("hookline_") {
        let start = i + at;
        let end = start
            + bytes[start..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || **b == b'_')
                .count();
        names.insert(text[start..end].to_owned());
        i = end;
    }
    names
}

/// What a histogram's series are called: the name the `# TYPE` line gives.
fn family(name: &str, scrape: &Scrape) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if scrape.types.get(base).is_some_and(|t| t == "histogram") {
                return base.to_owned();
            }
        }
    }
    name.to_owned()
}

fn every_metric_the_dashboard_and_alerts_name_is_exported(scrape: &Scrape) {
    let root = workspace_root();
    for file in [
        "deploy/grafana/hookline.json",
        "deploy/prometheus/alerts.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let names = metric_names(&text);
        assert!(names.len() >= 5, "{file} names only {names:?}");
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !scrape.types.contains_key(&family(n, scrape)))
            .collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics /metrics does not export: {missing:?}"
        );
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/hookline.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 8));
}

/// `HOOKLINE_METRICS_LISTEN`: `/metrics` moves to its own port and leaves the main one.
#[tokio::test]
async fn a_separate_metrics_listener_takes_metrics_off_the_main_port() {
    let port = free_port();
    let mut opts = Options::default();
    opts.raw.metrics_listen = Some(format!("127.0.0.1:{port}"));
    let app = TestApp::spawn_with(Backend::Sqlite, opts).await;
    let http = reqwest::Client::new();
    let main = http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(main.status(), 404);
    let own = scrape(&http, &format!("http://127.0.0.1:{port}/metrics")).await;
    assert!(
        own.types.contains_key("hookline_build_info"),
        "{}",
        own.text
    );
    let other = http
        .get(format!("http://127.0.0.1:{port}/v3/webhook-subscriptions"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404, "only /metrics there");
}
