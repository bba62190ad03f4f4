//! The real `hookline` binary as a child OS process: spawn it with a set of environment
//! variables on a free loopback port, wait for `/readyz`, kill it; set up a partner through its
//! API, publish batches to it, and count what arrives.

#![allow(dead_code)]

use super::common::{eventually, into_parts, TestReceiver, ADMIN_TOKEN};
use super::receiver::Received;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The variables every test node shares: the test admin token, loopback allowed for deliveries,
/// the test CA trusted, and debug logs.
pub fn base_env() -> Vec<(&'static str, String)> {
    vec![
        ("HOOKLINE_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("HOOKLINE_SSRF_ALLOW", "127.0.0.0/8".to_owned()),
        (
            "HOOKLINE_EXTRA_ROOT_CERTS",
            super::receiver::ca_pem_path().display().to_string(),
        ),
        ("HOOKLINE_LOG", "debug".to_owned()),
    ]
}

/// [`base_env`] and `extra`.
pub fn node_env(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = base_env();
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

/// A client for talking to nodes, with a timeout so a hung node fails the test.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One running `hookline serve` process. Killed (SIGKILL) when dropped.
pub struct Node {
    pub child: tokio::process::Child,
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Where its stderr (the logs) goes.
    pub log: PathBuf,
}

impl Node {
    /// Spawns `hookline serve` on `port` with exactly `env` (plus `HOOKLINE_LISTEN`); stderr goes
    /// to `log`. Does not wait for readiness: see [`Node::wait_ready`] and [`Node::start`].
    pub fn spawn(port: u16, env: &[(&str, String)], log: &Path) -> Node {
        let file = std::fs::File::create(log).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
        cmd.arg("serve")
            .env("HOOKLINE_LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Node {
            child: cmd.spawn().expect("spawning the hookline binary"),
            port,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        }
    }

    /// Spawns on a free port and waits until `/readyz` answers 200.
    pub async fn start(env: &[(&str, String)], log: &Path) -> Node {
        let mut node = Node::spawn(free_port(), env, log);
        node.wait_ready().await;
        node
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits (20 s at most) until `/readyz` answers 200; fails at once, with the log, if the
    /// process exits first.
    pub async fn wait_ready(&mut self) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "hookline on port {} exited with {status} before it was ready; log:\n{}",
                    self.port,
                    self.log_text()
                );
            }
            if let Ok(r) = http.get(self.url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "hookline on port {} did not become ready; log:\n{}",
                self.port,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL, and reap the process.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Waits until `GET {base}/readyz` answers `status` (e.g. 503 while the store is down); returns
/// that answer's body.
pub async fn wait_readyz(
    http: &reqwest::Client,
    base: &str,
    status: u16,
    timeout: Duration,
) -> serde_json::Value {
    eventually(
        &format!("{base}/readyz to answer {status}"),
        timeout,
        || async move {
            let r = http.get(format!("{base}/readyz")).send().await.ok()?;
            if r.status() != status {
                return None;
            }
            Some(r.json().await.unwrap_or_default())
        },
    )
    .await
}

/// A partner with an API key and one subscription, made through a node's API.
pub struct Tenant {
    pub partner_id: String,
    pub api_key: String,
    pub subscription_id: String,
    pub signing_secret: String,
}

/// Creates a partner `name`, an API key and one subscription to `message.received` at
/// `target_url`, all through the node at `base`.
pub async fn set_up_tenant(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    target_url: &str,
) -> Tenant {
    let r = http
        .post(format!("{base}/admin/v1/partners"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    let (s, partner) = into_parts(r).await;
    assert_eq!(s, 201, "{partner}");
    let partner_id = partner["id"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{base}/admin/v1/partners/{partner_id}/api-keys"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    let (s, key) = into_parts(r).await;
    assert_eq!(s, 201, "{key}");
    let api_key = key["api_key"].as_str().unwrap().to_owned();
    let sub = create_subscription(http, base, &api_key, target_url).await;
    Tenant {
        partner_id,
        api_key,
        subscription_id: sub["id"].as_str().unwrap().to_owned(),
        signing_secret: sub["signing_secret"].as_str().unwrap().to_owned(),
    }
}

/// Subscribes `target_url` to `message.received` through the node at `base`; returns the
/// created subscription.
pub async fn create_subscription(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    target_url: &str,
) -> Value {
    let r = http
        .post(format!("{base}/v3/webhook-subscriptions"))
        .bearer_auth(key)
        .json(&json!({"target_url": target_url, "subscribed_events": ["message.received"]}))
        .send()
        .await
        .unwrap();
    let (s, sub) = into_parts(r).await;
    assert_eq!(s, 201, "{sub}");
    sub
}

/// Published with explicit ids, so a batch can be retried through another node without
/// creating new events (publishing is idempotent per `event_id`).
fn batch_body(partner_id: &str, ids: &[String]) -> Value {
    let events: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"partner_id": partner_id, "event_type": "message.received",
                   "event_id": id, "data": {"id": id}})
        })
        .collect();
    json!({ "events": events })
}

/// Publishes one `message.received` event per id in one batch request to the node at `base`.
pub async fn post_batch(
    http: &reqwest::Client,
    base: &str,
    partner_id: &str,
    ids: &[String],
) -> Result<(u16, Value), reqwest::Error> {
    let r = http
        .post(format!("{base}/admin/v1/events/batch"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&batch_body(partner_id, ids))
        .send()
        .await?;
    Ok(into_parts(r).await)
}

/// Arrivals per `webhook-id` (the event id).
pub fn per_event(all: &[Received]) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in all {
        *seen.entry(r.header("webhook-id").to_owned()).or_default() += 1;
    }
    seen
}

/// Waits until every id in `want` has arrived at least once; fails naming the missing ones.
/// Returns the arrivals per event id.
pub async fn await_every_event(
    rx: &TestReceiver,
    want: &HashSet<String>,
    timeout: Duration,
) -> HashMap<String, usize> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut scanned = 0;
    rx.wait_until(timeout, |all| {
        for r in &all[scanned..] {
            let id = r.header("webhook-id");
            if want.contains(id) {
                seen.insert(id.to_owned());
            }
        }
        scanned = all.len();
        seen.len() == want.len()
    })
    .await;
    let counts = rx.with_received(per_event);
    let mut missing: Vec<&String> = want.iter().filter(|id| !counts.contains_key(*id)).collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "{} of {} accepted events never delivered within {timeout:?}, e.g. {:?}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(5)]
    );
    counts
}

/// Arrivals beyond the first, summed over the events in `of`.
pub fn duplicates(counts: &HashMap<String, usize>, of: &HashSet<String>) -> usize {
    of.iter()
        .map(|id| counts.get(id).map_or(0, |n| n - 1))
        .sum()
}
