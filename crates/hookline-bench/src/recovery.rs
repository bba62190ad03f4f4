//! `--recovery N`: does a recovery hurt live traffic? Two runs back to back, each on a fresh
//! SQLite store: steady publishing at `--rate` (500 events/s by default here) to one live
//! subscription, (A) alone, then (B) while a recovery re-queues N failed deliveries of a second
//! subscription (same receiver, another path). Reports the live ingest→delivery latency of
//! both, and how long the recovery took.
//!
//! The N failed deliveries are seeded through SQL (events and deliveries rows, `failed` after
//! one attempt) into the running server's store, as an outage would have left them; their
//! `data.sent_at_us` is 0, so the receiver counts them without mixing them into the live
//! latencies. The recovery goes at hookline's default `HOOKLINE_RECOVERY_RATE`.

use crate::publisher::{self, post};
use crate::report::Latency;
use crate::{log, now_us, receiver, server, Args};
use anyhow::Context;
use serde::Serialize;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct RecoveryReport {
    pub recovered_deliveries: u64,
    pub live_events: u64,
    pub rate: f64,
    pub without_recovery: RunResult,
    pub with_recovery: RunResult,
    /// p99 with / p99 without.
    pub p99_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct RunResult {
    pub live_latency: Option<Latency>,
    pub live_delivered: u64,
    pub recovered: u64,
    /// Recover request → last recovered delivery.
    pub recovery_secs: Option<f64>,
    pub server_cpu_s: f64,
}

pub async fn run(args: &Args, bin: &Path, dir: &Path, run_id: &str) -> anyhow::Result<()> {
    let rate = if args.rate > 0.0 { args.rate } else { 500.0 };
    let without = one_run(args, bin, &dir.join("a"), run_id, rate, 0).await?;
    let with = one_run(args, bin, &dir.join("b"), run_id, rate, args.recovery).await?;
    let p99 = |r: &RunResult| r.live_latency.as_ref().map(|l| l.p99_ms);
    let report = RecoveryReport {
        recovered_deliveries: args.recovery,
        live_events: args.events,
        rate,
        p99_ratio: p99(&with).zip(p99(&without)).map(|(w, o)| w / o),
        without_recovery: without,
        with_recovery: with,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn one_run(
    args: &Args,
    bin: &Path,
    dir: &Path,
    run_id: &str,
    rate: f64,
    recover: u64,
) -> anyhow::Result<RunResult> {
    std::fs::create_dir_all(dir)?;
    let db = dir.join("hookline.db");
    let database_url = format!("sqlite://{}", db.display());
    let admin_token = format!("bench-admin-{run_id}");
    let (receiver_addr, received) = receiver::start().await?;
    let srv = server::start(&server::Spec {
        bin,
        database_url: &database_url,
        admin_token: &admin_token,
        role: "all",
        log_path: dir.join("hookline.log"),
        env: Vec::new(),
    })
    .await?;
    let live = publisher::setup(&srv.base_url, &admin_token, receiver_addr, 1, run_id).await?;
    let (key, sub) = recovery_subscription(&srv.base_url, &admin_token, receiver_addr).await?;
    if recover > 0 {
        seed_failed(&db, &sub, recover).context("seeding failed deliveries")?;
    }
    log(
        false,
        format!("{recover} failed deliveries seeded; publishing at {rate}/s"),
    );
    let plan = publisher::Plan {
        base_url: srv.base_url.clone(),
        admin_token: admin_token.clone(),
        partner_id: live.partner_id,
        run_id: run_id.to_owned(),
        events: args.events,
        concurrency: args.concurrency.min(16),
        payload_bytes: args.payload_bytes,
        batch: 0,
        rate,
        direct: false,
    };
    let publishing = tokio::spawn(publisher::run(plan));
    let recover_start = Instant::now();
    if recover > 0 {
        tokio::time::sleep(Duration::from_secs(1)).await; // steady state first
        post(
            &reqwest::Client::new(),
            &format!("{}/v3/webhook-subscriptions/{sub}/recover", srv.base_url),
            &key,
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await?;
    }
    let outcome = publishing.await??;
    let expected = outcome.accepted + recover;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut recovery_secs = None;
    while received.unique() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if recover > 0 && received.unique() >= expected {
        recovery_secs = Some(recover_start.elapsed().as_secs_f64() - 1.0);
    }
    let cpu = srv.stats().cpu_s;
    srv.stop().await;
    let snap = received.snapshot();
    Ok(RunResult {
        live_latency: Latency::from_sorted(&snap.latencies_us),
        live_delivered: snap.latencies_us.len() as u64,
        recovered: snap.unique - snap.latencies_us.len() as u64,
        recovery_secs,
        server_cpu_s: cpu,
    })
}

/// A second partner with a subscription to `http://<receiver>/recovered` (for
/// `message.sent`, which the live traffic never publishes): (api key, subscription id).
async fn recovery_subscription(
    base: &str,
    admin_token: &str,
    receiver: std::net::SocketAddr,
) -> anyhow::Result<(String, String)> {
    let client = reqwest::Client::new();
    let p = post(
        &client,
        &format!("{base}/admin/v1/partners"),
        admin_token,
        json!({"name": "recovery"}),
    )
    .await?;
    let pid = p["id"].as_str().context("partner id")?;
    let k = post(
        &client,
        &format!("{base}/admin/v1/partners/{pid}/api-keys"),
        admin_token,
        json!({}),
    )
    .await?;
    let key = k["api_key"].as_str().context("api key")?.to_owned();
    let s = post(
        &client,
        &format!("{base}/v3/webhook-subscriptions"),
        &key,
        json!({"target_url": format!("http://{receiver}/recovered"), "subscribed_events": ["message.sent"]}),
    )
    .await?;
    Ok((key, s["id"].as_str().context("subscription id")?.to_owned()))
}

/// `n` events of the subscription's partner, each with one delivery that failed after one
/// attempt, created a minute ago; written next to the running server (SQLite takes writers
/// from several processes, one at a time).
fn seed_failed(db: &Path, subscription: &str, n: u64) -> anyhow::Result<()> {
    let mut c = rusqlite::Connection::open(db)?;
    c.busy_timeout(Duration::from_secs(30))?;
    let created = (now_us() - 60_000_000) as i64;
    let tx = c.transaction()?;
    let partner: String = tx.query_row(
        "SELECT partner_id FROM subscriptions WHERE id = ?1",
        [subscription],
        |r| r.get(0),
    )?;
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO events (partner_id, event_id, event_type, created_at, trace_id, data, \
             deliveries, accepted_at) \
         SELECT ?2, 'lost-' || i, 'message.sent', '2026-01-01T00:00:00Z', \
                '00000000000000000000000000000000', \
                '{\"sent_at_us\":0,\"pad\":\"\"}', 1, ?3 FROM n",
        rusqlite::params![n as i64, partner, created],
    )?;
    tx.execute(
        "INSERT INTO deliveries (event_seq, subscription_id, state, attempts, next_attempt_at, \
             created_at, updated_at) \
         SELECT seq, ?1, 'failed', 1, ?2, ?2, ?2 FROM events WHERE partner_id = ?3",
        rusqlite::params![subscription, created, partner],
    )?;
    tx.commit()?;
    Ok(())
}
