//! The real binary, killed with SIGKILL mid-delivery and restarted: nothing accepted is lost.

use super::common::*;
use super::process::{base_env, free_port, Node};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const EVENTS: usize = 3000;

fn spawn_hookline(dir: &Path, port: u16, log_name: &str) -> Node {
    let mut env = base_env();
    env.extend([
        (
            "HOOKLINE_DATABASE_URL",
            format!("sqlite://{}", dir.join("hookline.db").display()),
        ),
        (
            "HOOKLINE_RETRY_SCHEDULE",
            "200ms,200ms,200ms,200ms,200ms".into(),
        ),
        ("HOOKLINE_RETRY_JITTER", "0".into()),
        ("HOOKLINE_DELIVERY_TIMEOUT", "2s".into()),
        ("HOOKLINE_CONNECT_TIMEOUT", "1s".into()),
        ("HOOKLINE_MAX_IN_FLIGHT_PER_SUBSCRIPTION", "16".into()),
    ]);
    Node::spawn(port, &env, &dir.join(log_name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_no_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let rx = TestReceiver::start().await;
    rx.set_default("/sink", Reply::ok().delayed(Duration::from_millis(50)));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut first = spawn_hookline(dir.path(), port, "first.log");
    first.wait_ready().await;

    let partner: Value = http
        .post(format!("{base}/admin/v1/partners"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "crash"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = partner["id"].as_str().unwrap();
    let key: Value = http
        .post(format!("{base}/admin/v1/partners/{pid}/api-keys"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_key = key["api_key"].as_str().unwrap().to_owned();
    let sub: Value = http
        .post(format!("{base}/v3/webhook-subscriptions"))
        .bearer_auth(&api_key)
        .json(&json!({"target_url": rx.url("/sink"), "subscribed_events": ["message.received"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = sub["signing_secret"].as_str().unwrap().to_owned();

    for chunk in 0..EVENTS / 100 {
        let events: Vec<Value> = (0..100)
            .map(|i| json!({"partner_id": pid, "event_type": "message.received",
                            "event_id": format!("crash-{}", chunk * 100 + i), "data": {"n": chunk * 100 + i}}))
            .collect();
        let r = http
            .post(format!("{base}/admin/v1/events/batch"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"events": events}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }

    rx.wait_for(Some("/sink"), EVENTS / 10, Duration::from_secs(60))
        .await;
    first.kill().await; // SIGKILL
    let delivered_before = rx.received().len();
    assert!(
        delivered_before < EVENTS,
        "everything was delivered before the kill; the test proves nothing"
    );

    let mut second = spawn_hookline(dir.path(), port, "second.log");
    second.wait_ready().await;
    let deadline = Duration::from_secs(90);
    let start = std::time::Instant::now();
    let per_event = loop {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for r in rx.received() {
            *seen.entry(r.header("webhook-id").to_owned()).or_default() += 1;
        }
        if seen.len() == EVENTS || start.elapsed() > deadline {
            break seen;
        }
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            rx.wait_for(Some("/sink"), usize::MAX, Duration::from_millis(200)),
        )
        .await;
    };
    let missing: Vec<String> = (0..EVENTS)
        .map(|i| format!("crash-{i}"))
        .filter(|id| !per_event.contains_key(id))
        .collect();
    let duplicates: usize = per_event.values().map(|n| n - 1).sum();
    println!("crash test: {EVENTS} events, {delivered_before} delivered before SIGKILL, {duplicates} duplicate deliveries after restart");
    assert!(
        missing.is_empty(),
        "{} events never delivered, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    second.kill().await;

    // Secrets never reach the logs, even at debug level.
    for log in ["first.log", "second.log"] {
        let text = std::fs::read_to_string(dir.path().join(log)).unwrap();
        assert!(!text.contains(&secret), "{log} contains the signing secret");
        assert!(!text.contains(&api_key), "{log} contains the API key");
        assert!(
            !text.contains(ADMIN_TOKEN),
            "{log} contains the admin token"
        );
    }
}
