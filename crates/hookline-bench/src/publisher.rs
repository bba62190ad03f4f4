//! The publishing side: set-up calls (partner, API key, subscriptions) and the publish phase,
//! `concurrency` workers each with its own keep-alive connection, single-event or batch requests,
//! optionally paced to a steady rate.

use crate::now_us;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Setup {
    pub partner_id: String,
}

pub async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let resp = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("POST {url}: {status}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// One partner, one API key, `endpoints` subscriptions to `http://<receiver>/hook/<n>`.
pub async fn setup(
    base: &str,
    admin_token: &str,
    receiver: SocketAddr,
    endpoints: usize,
    run_id: &str,
) -> anyhow::Result<Setup> {
    let client = reqwest::Client::new();
    let partner = post(
        &client,
        &format!("{base}/admin/v1/partners"),
        admin_token,
        json!({"name": format!("bench-{run_id}")}),
    )
    .await?;
    let partner_id = partner["id"].as_str().context("partner id")?.to_owned();
    let key = post(
        &client,
        &format!("{base}/admin/v1/partners/{partner_id}/api-keys"),
        admin_token,
        json!({}),
    )
    .await?;
    let api_key = key["api_key"].as_str().context("api_key")?.to_owned();
    for n in 0..endpoints {
        post(
            &client,
            &format!("{base}/v3/webhook-subscriptions"),
            &api_key,
            json!({
                "target_url": format!("http://{receiver}/hook/{n}"),
                "subscribed_events": ["message.received"],
            }),
        )
        .await?;
    }
    Ok(Setup { partner_id })
}

pub struct Plan {
    pub base_url: String,
    pub admin_token: String,
    pub partner_id: String,
    pub run_id: String,
    pub events: u64,
    pub concurrency: usize,
    pub payload_bytes: usize,
    /// 0 = single-event requests.
    pub batch: usize,
    /// Events per second; 0 = as fast as possible.
    pub rate: f64,
    /// The direct-post baseline: each event goes as one unauthenticated POST to
    /// `{base_url}/direct`, the receiver itself, instead of through hookline.
    pub direct: bool,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub started_us: u64,
    pub finished_us: u64,
    /// Events the server accepted (202, or 200 for a retried duplicate).
    pub accepted: u64,
    /// Events given up on after all retries.
    pub failed: u64,
    /// Requests that failed and were retried.
    pub retried_requests: u64,
    pub requests: u64,
    pub first_error: Option<String>,
}

const ATTEMPTS: u32 = 10;

/// A valid `message.received` `data` (it passes the catalogue's schema, so the server's default
/// payload validation takes its normal path), before the two fields the benchmark adds: the
/// receiver reads `sent_at_us` for latency, and `pad` brings the object to `--payload-bytes`.
const MESSAGE: &str = r#"{"id":"89e3566e-1d13-49e5-a8ee-48490d5bfeb7","chat":{"id":"8f392755-6865-4b18-880a-227f9d8b458f","is_group":false,"health_status":{"status":"HEALTHY","doc_url":"https://docs.linqapp.com/channel/imessage/guides/chats/chat-health","updated_at":"2026-01-04T05:48:51Z"},"owner_handle":{"id":"6d6c617f-187a-4dcd-a0d5-988347a8c092","handle":"+12025551234","joined_at":"2026-01-04T05:48:51.321469Z","service":"iMessage","is_me":true,"status":"active"}},"direction":"inbound","sender_handle":{"id":"e604375a-5913-483a-8278-c631e8f0ffda","handle":"+12025559876","joined_at":"2026-01-04T05:48:51.321469Z","service":"iMessage","is_me":false,"status":"active"},"parts":[{"type":"text","value":"Hello!"}],"service":"iMessage","sent_at":"2026-02-05T19:31:13.074Z""#;

fn data_json(pad: &str, sent_us: u64) -> String {
    format!(r#"{MESSAGE},"sent_at_us":{sent_us},"pad":"{pad}"}}"#)
}

fn event_json(plan: &Plan, pad: &str, index: u64, sent_us: u64) -> String {
    format!(
        r#"{{"partner_id":"{}","event_type":"message.received","event_id":"bench-{}-{index}","data":{}}}"#,
        plan.partner_id,
        plan.run_id,
        data_json(pad, sent_us)
    )
}

/// Sends one request (retrying), returns (accepted events, retries, last error).
async fn send(
    client: &reqwest::Client,
    plan: &Plan,
    pad: &str,
    range: std::ops::Range<u64>,
) -> (u64, u64, Option<String>) {
    let count = range.end - range.start;
    let mut retries = 0;
    let mut last_err = None;
    for attempt in 0..ATTEMPTS {
        let sent_us = now_us();
        let (url, body) = if plan.direct {
            (
                format!("{}/direct", plan.base_url),
                event_json(plan, pad, range.start, sent_us),
            )
        } else if plan.batch == 0 {
            (
                format!("{}/admin/v1/events", plan.base_url),
                event_json(plan, pad, range.start, sent_us),
            )
        } else {
            let events: Vec<String> = range
                .clone()
                .map(|i| event_json(plan, pad, i, sent_us))
                .collect();
            (
                format!("{}/admin/v1/events/batch", plan.base_url),
                format!(r#"{{"events":[{}]}}"#, events.join(",")),
            )
        };
        let result = client
            .post(url)
            .bearer_auth(&plan.admin_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match result {
            Ok(resp) if resp.status().is_success() => {
                // Drain the body so the connection is reused.
                let _ = resp.bytes().await;
                return (count, retries, last_err);
            }
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                last_err = Some(format!("{status}: {}", truncate(&text, 300)));
            }
            Err(e) => last_err = Some(format!("{e:#}")),
        }
        retries += 1;
        tokio::time::sleep(Duration::from_millis(50 * (1 << attempt.min(5)))).await;
    }
    (0, retries, last_err)
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub async fn run(plan: Plan) -> anyhow::Result<Outcome> {
    let plan = Arc::new(plan);
    let per_request = plan.batch.max(1) as u64;
    let units = plan.events.div_ceil(per_request);
    let base = data_json("", now_us());
    let pad: Arc<str> = "x"
        .repeat(plan.payload_bytes.saturating_sub(base.len()))
        .into();
    let next = Arc::new(AtomicU64::new(0));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let start = tokio::time::Instant::now();
    let started_us = now_us();
    let mut workers = Vec::with_capacity(plan.concurrency);
    for _ in 0..plan.concurrency.max(1) {
        let (plan, pad, next, outcome) = (plan.clone(), pad.clone(), next.clone(), outcome.clone());
        workers.push(tokio::spawn(async move {
            // One client per worker: one keep-alive connection each.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .build()
                .expect("http client");
            let (mut accepted, mut failed, mut retried, mut requests) = (0, 0, 0, 0);
            let mut first_error = None;
            loop {
                let unit = next.fetch_add(1, Ordering::Relaxed);
                if unit >= units {
                    break;
                }
                let range = unit * per_request..((unit + 1) * per_request).min(plan.events);
                if plan.rate > 0.0 {
                    let due = start + Duration::from_secs_f64(range.start as f64 / plan.rate);
                    tokio::time::sleep_until(due).await;
                }
                let count = range.end - range.start;
                let (ok, retries, err) = send(&client, &plan, &pad, range).await;
                requests += 1 + retries;
                accepted += ok;
                failed += count - ok;
                retried += retries;
                if first_error.is_none() {
                    first_error = err;
                }
            }
            let mut o = outcome.lock().expect("outcome lock");
            o.accepted += accepted;
            o.failed += failed;
            o.retried_requests += retried;
            o.requests += requests;
            if o.first_error.is_none() {
                o.first_error = first_error;
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let mut o = std::mem::take(&mut *outcome.lock().expect("outcome lock"));
    o.started_us = started_us;
    o.finished_us = now_us();
    Ok(o)
}
