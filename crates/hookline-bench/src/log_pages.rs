//! `--log-pages N`: how long a delivery-log page takes on a big store. Seeds N deliveries with
//! one attempt each through SQL into a fresh SQLite store (90 % to one subscription, 10 % to
//! another; 97 % succeeded, 2 % failed after a 503, 1 % retrying; about 10 % of the events are
//! `message.received`, spread over every state), starts hookline on it
//! (`HOOKLINE_ROLE=api`: nothing is delivered, the store stays as seeded), then times
//! `GET /v3/webhook-subscriptions/{id}/deliveries` over real HTTP for each filter a partner
//! uses, first pages and pages deep in the log (from a cursor at its middle). Reports p50/p99
//! per query shape and over all requests.

use crate::publisher::post;
use crate::report::Latency;
use crate::{log, server, Args};
use anyhow::Context;
use serde::Serialize;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct LogPagesReport {
    pub deliveries: u64,
    pub attempts: u64,
    pub store_bytes: Option<u64>,
    pub seed_secs: f64,
    pub requests_per_shape: usize,
    pub shapes: Vec<(String, Option<Latency>)>,
    pub all: Option<Latency>,
}

/// Query strings timed, each against the big subscription.
const SHAPES: [&str; 7] = [
    "",
    "status=failed",
    "status=success",
    "status=retrying",
    "status=failed,retrying&per_page=100",
    "event_type=message.received",
    "since=2026-01-01T00:00:00Z&until=2026-06-01T00:00:00Z",
];

pub async fn run(args: &Args, bin: &Path, dir: &Path, run_id: &str) -> anyhow::Result<()> {
    let n = args.log_pages;
    let db = dir.join("hookline.db");
    let database_url = format!("sqlite://{}", db.display());
    let admin_token = format!("bench-admin-{run_id}");
    let spec = |role| server::Spec {
        bin,
        database_url: &database_url,
        admin_token: &admin_token,
        role,
        log_path: dir.join("hookline.log"),
        env: Vec::new(),
    };
    // First start: migrations, a partner, a key and two subscriptions.
    let srv = server::start(&spec("api")).await?;
    let (key, subs) = two_subscriptions(&srv.base_url, &admin_token).await?;
    srv.stop().await;
    log(false, format!("seeding {n} deliveries"));
    let started = Instant::now();
    seed(&db, &subs, n).context("seeding")?;
    let seed_secs = started.elapsed().as_secs_f64();
    log(false, format!("seeded in {seed_secs:.0} s"));
    let srv = server::start(&spec("api")).await?;
    let client = reqwest::Client::new();
    let base = format!(
        "{}/v3/webhook-subscriptions/{}/deliveries",
        srv.base_url, subs[0]
    );
    let middle = middle_cursor(n);
    let rounds = 100;
    let mut shapes = Vec::new();
    let mut all = Vec::new();
    for shape in SHAPES {
        let mut us = Vec::with_capacity(2 * rounds);
        for i in 0..rounds {
            let deep = if i % 2 == 1 {
                format!("&cursor={middle}")
            } else {
                String::new()
            };
            let url = format!("{base}?{shape}{deep}");
            let t = Instant::now();
            let r = client.get(&url).bearer_auth(&key).send().await?;
            let status = r.status();
            let body = r.bytes().await?;
            anyhow::ensure!(
                status.is_success(),
                "{url}: {status}: {}",
                String::from_utf8_lossy(&body)
            );
            us.push(t.elapsed().as_micros() as u64);
        }
        all.extend_from_slice(&us);
        us.sort_unstable();
        shapes.push((shape.to_owned(), Latency::from_sorted(&us)));
    }
    srv.stop().await;
    all.sort_unstable();
    let report = LogPagesReport {
        deliveries: n,
        attempts: n,
        store_bytes: server::store_size(&database_url),
        seed_secs,
        requests_per_shape: rounds,
        shapes,
        all: Latency::from_sorted(&all),
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// A cursor halfway down the big subscription's log: the seeded `created_at` of delivery i is
/// `T0 + i` ms. The cursor format is hookline's (`LogCursor`); a bench may forge one.
fn middle_cursor(n: u64) -> String {
    use std::fmt::Write;
    let created = T0_US + (n as i64 / 2) * 1000;
    let raw = format!("d1:{created}:{}", n / 2);
    // base64url without padding, written out to keep the bench's dependencies as they are.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = raw.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..=chunk.len() {
            let _ = out.write_char(ALPHABET[((v >> (18 - 6 * k)) & 63) as usize] as char);
        }
    }
    out
}

/// 2026-01-01T00:00:00Z: the seeded log starts here, one delivery a millisecond.
const T0_US: i64 = 1_767_225_600_000_000;

async fn two_subscriptions(base: &str, admin: &str) -> anyhow::Result<(String, [String; 2])> {
    let client = reqwest::Client::new();
    let p = post(
        &client,
        &format!("{base}/admin/v1/partners"),
        admin,
        json!({"name": "log"}),
    )
    .await?;
    let pid = p["id"].as_str().context("partner id")?;
    let k = post(
        &client,
        &format!("{base}/admin/v1/partners/{pid}/api-keys"),
        admin,
        json!({}),
    )
    .await?;
    let key = k["api_key"].as_str().context("api key")?.to_owned();
    let mut ids = Vec::new();
    for n in 0..2 {
        let s = post(
            &client,
            &format!("{base}/v3/webhook-subscriptions"),
            &key,
            json!({"target_url": format!("https://log-{n}.example.test/"),
                   "subscribed_events": ["message.sent", "message.received"]}),
        )
        .await?;
        ids.push(s["id"].as_str().context("subscription id")?.to_owned());
    }
    Ok((key, [ids[0].clone(), ids[1].clone()]))
}

fn seed(db: &Path, subs: &[String; 2], n: u64) -> anyhow::Result<()> {
    let mut c = rusqlite::Connection::open(db)?;
    c.busy_timeout(Duration::from_secs(30))?;
    c.pragma_update(None, "synchronous", "OFF")?;
    let tx = c.transaction()?;
    let partner: String = tx.query_row(
        "SELECT partner_id FROM subscriptions WHERE id = ?1",
        [&subs[0]],
        |r| r.get(0),
    )?;
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO events (partner_id, event_id, event_type, created_at, trace_id, data, \
             deliveries, accepted_at) \
         SELECT ?2, 'seed-' || i, CASE WHEN (i * 2654435761) % 97 < 10 THEN 'message.received' \
                ELSE 'message.sent' END, '2026-01-01T00:00:00Z', \
                '00000000000000000000000000000000', '{}', 1, ?3 + i * 1000 FROM n",
        rusqlite::params![n as i64, partner, T0_US],
    )?;
    tx.execute(
        "INSERT INTO deliveries (event_seq, subscription_id, state, attempts, next_attempt_at, \
             created_at, updated_at) \
         SELECT seq, CASE WHEN seq % 10 = 9 THEN ?2 ELSE ?1 END, \
                CASE WHEN seq % 50 = 7 THEN 'failed' WHEN seq % 100 = 11 THEN 'pending' \
                     ELSE 'succeeded' END, 1, accepted_at + 60000000, accepted_at, accepted_at \
         FROM events",
        rusqlite::params![subs[0], subs[1]],
    )?;
    tx.execute(
        "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, \
             status_code, error_kind, error_message) \
         SELECT id, 1, created_at + 1000, 12, CASE state WHEN 'succeeded' THEN 200 ELSE 503 END, \
                CASE state WHEN 'succeeded' THEN NULL ELSE 'http_status' END, \
                CASE state WHEN 'succeeded' THEN NULL ELSE 'the receiver answered 503' END \
         FROM deliveries",
        [],
    )?;
    tx.commit()?;
    c.execute_batch("ANALYZE")?;
    Ok(())
}
