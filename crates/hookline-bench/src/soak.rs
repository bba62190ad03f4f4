//! `--soak-minutes N`: a steady `--rate` for N minutes, measured window by window
//! (`--window-secs`, a minute by default), to see whether hookline holds a steady load with
//! retention purging underneath (`--retention`, passed as `HOOKLINE_RETENTION`).
//!
//! Each window reports the rate offered (the publisher's pacing) against the unique deliveries
//! that arrived in it, the ingest→delivery latency of those deliveries (p50, p99, max), the
//! store's size (`hookline_store_size_bytes` from hookline's own `/metrics`, so SQLite and
//! PostgreSQL alike), the events purged so far, and the server's RSS. The summary gives the
//! whole run's p99, the worst full window's delivered/offered ratio, and the store size at the
//! middle and at the end of the publishing (a plateau shows as equal sizes).
//!
//! `--scrape-metrics-ms` (any run) scrapes `/metrics` that often meanwhile: the A/B of what a
//! scrape costs.

use crate::report::Latency;
use crate::{log, publisher, receiver, Args, RunContext};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

#[derive(Debug, Serialize)]
pub struct Window {
    /// Seconds since the first publish at the window's end.
    pub end_secs: f64,
    pub offered_per_sec: f64,
    pub delivered_per_sec: f64,
    pub latency: Option<Latency>,
    pub store_bytes: Option<f64>,
    pub purged_events: Option<f64>,
    pub server_rss_mb: f64,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub store: String,
    pub rate: f64,
    pub minutes: f64,
    pub retention: String,
    pub published: u64,
    pub failed: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub complete: bool,
    pub latency: Option<Latency>,
    /// The lowest delivered/offered over windows entirely within the publishing.
    pub worst_window_ratio: Option<f64>,
    pub store_bytes_mid: Option<f64>,
    pub store_bytes_end: Option<f64>,
    pub windows: Vec<Window>,
}

/// Scrapes `{base}/metrics` every `every` until aborted; the handle's count is the scrapes.
pub fn spawn_scraper(
    base: &str,
    every: Duration,
) -> (JoinHandle<()>, Arc<std::sync::atomic::AtomicU64>) {
    let url = format!("{base}/metrics");
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = count.clone();
    let task = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Ok(r) = http.get(&url).send().await {
                if r.bytes().await.is_ok() {
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    });
    (task, count)
}

/// A metric's value from a scrape (the first series of that name).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// The soak run, its report and its exit status.
pub async fn main(args: &Args, bin: &Path, dir: &Path, run_id: &str) -> anyhow::Result<()> {
    let report = run(args, bin, dir, run_id).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print();
    }
    if report.complete && !args.keep {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        eprintln!("[bench] kept {}", dir.display());
    }
    if !report.complete {
        std::process::exit(1);
    }
    Ok(())
}

pub async fn run(args: &Args, bin: &Path, dir: &Path, run_id: &str) -> anyhow::Result<SoakReport> {
    anyhow::ensure!(args.rate > 0.0, "--soak-minutes needs --rate");
    let ctx = RunContext::new(args, bin, dir, run_id);
    let (receiver_addr, received) = receiver::start().await?;
    let mut srv = ctx.start_first_server(ctx.log_path.clone()).await?;
    let setup = ctx.set_up(&srv, receiver_addr).await?;
    let secs = args.soak_minutes * 60.0;
    let events = (args.rate * secs).round() as u64;
    let expected = events * args.endpoints as u64;
    log(
        ctx.quiet,
        format!("soak: {events} events at {} /s for {secs} s", args.rate),
    );
    let publishing = tokio::spawn(publisher::run(ctx.plan(&srv, setup.partner_id, events)));
    let window = Duration::from_secs(args.window_secs.max(1));
    let http = reqwest::Client::new();
    let (mut windows, mut seen, mut last_unique) = (Vec::new(), 0, 0);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs) + Duration::from_secs(args.timeout);
    loop {
        tokio::time::sleep_until((start + window * (windows.len() as u32 + 1)).into()).await;
        let (len, mut latencies) = received.since(seen);
        seen = len;
        latencies.sort_unstable();
        let unique = received.unique();
        let scrape = scrape_metrics(&http, &srv.base_url).await;
        let end = start.elapsed().as_secs_f64();
        let begin = end - window.as_secs_f64();
        let offered = args.rate * (end.min(secs) - begin.min(secs)).max(0.0) / window.as_secs_f64();
        let w = Window {
            end_secs: end,
            offered_per_sec: offered,
            delivered_per_sec: (unique - last_unique) as f64 / window.as_secs_f64(),
            latency: Latency::from_sorted(&latencies),
            store_bytes: metric(&scrape, "hookline_store_size_bytes"),
            purged_events: purged(&scrape),
            server_rss_mb: srv.stats().rss_kb as f64 / 1024.0,
        };
        last_unique = unique;
        print_window(&w, ctx.quiet);
        windows.push(w);
        let done = publishing.is_finished() && unique >= expected;
        if done || Instant::now() > deadline || srv.exited().is_some() {
            break;
        }
    }
    let outcome = publishing.await??;
    let snap = received.snapshot();
    srv.stop().await;
    Ok(summarize(
        args, &ctx, windows, outcome, snap, secs, expected,
    ))
}

/// `{base}/metrics`, or empty. Tried twice: the kept-alive connection of the previous window's
/// scrape may have been closed by the server's idle timeout just as it is reused.
async fn scrape_metrics(http: &reqwest::Client, base: &str) -> String {
    for _ in 0..2 {
        if let Ok(r) = http.get(format!("{base}/metrics")).send().await {
            if let Ok(text) = r.text().await {
                return text;
            }
        }
    }
    String::new()
}

/// `hookline_retention_purged_total` for the events table, whatever the label order.
fn purged(text: &str) -> Option<f64> {
    text.lines()
        .find(|l| {
            l.starts_with("hookline_retention_purged_total{") && l.contains("table=\"events\"")
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

fn print_window(w: &Window, quiet: bool) {
    let lat = w.latency.as_ref();
    log(
        quiet,
        format!(
            "t={:>5.0}s offered {:>7.1}/s delivered {:>7.1}/s p50 {:>7.1} ms p99 {:>8.1} ms max {:>8.1} ms store {:>8} MiB purged {:>8} rss {:>6.1} MiB",
            w.end_secs,
            w.offered_per_sec,
            w.delivered_per_sec,
            lat.map_or(0.0, |l| l.p50_ms),
            lat.map_or(0.0, |l| l.p99_ms),
            lat.map_or(0.0, |l| l.max_ms),
            // "-": this window's scrape of /metrics failed (a busy server), not an empty store.
            w.store_bytes
                .map_or("-".to_owned(), |b| format!("{:.1}", b / 1048576.0)),
            w.purged_events.map_or("-".to_owned(), |n| n.to_string()),
            w.server_rss_mb,
        ),
    );
}

fn summarize(
    args: &Args,
    ctx: &RunContext<'_>,
    windows: Vec<Window>,
    outcome: publisher::Outcome,
    snap: receiver::Snapshot,
    secs: f64,
    expected: u64,
) -> SoakReport {
    let full: Vec<&Window> = windows
        .iter()
        .filter(|w| w.end_secs <= secs + 0.5)
        .collect();
    let worst = full
        .iter()
        .map(|w| w.delivered_per_sec / w.offered_per_sec.max(1e-9))
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))));
    let size_at = |t: f64| {
        full.iter()
            .rfind(|w| w.end_secs <= t + 0.5)
            .and_then(|w| w.store_bytes)
    };
    SoakReport {
        store: if ctx.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
        .into(),
        rate: args.rate,
        minutes: args.soak_minutes,
        retention: args
            .retention
            .clone()
            .unwrap_or_else(|| "default (30d)".into()),
        published: outcome.accepted,
        failed: outcome.failed,
        delivered: snap.unique,
        duplicates: snap.duplicates,
        complete: snap.unique >= expected && outcome.failed == 0,
        latency: Latency::from_sorted(&snap.latencies_us),
        worst_window_ratio: worst,
        store_bytes_mid: size_at(secs / 2.0),
        store_bytes_end: size_at(secs),
        windows,
    }
}

impl SoakReport {
    pub fn print(&self) {
        let mib = |b: Option<f64>| b.map_or("n/a".into(), |b| format!("{:.1} MiB", b / 1048576.0));
        println!(
            "soak: {} at {} events/s for {} min, retention {}",
            self.store, self.rate, self.minutes, self.retention
        );
        println!(
            "published {} (failed {}), delivered {} unique, {} duplicates, complete: {}",
            self.published, self.failed, self.delivered, self.duplicates, self.complete
        );
        if let Some(l) = &self.latency {
            println!(
                "ingest→delivery p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
            );
        }
        if let Some(r) = self.worst_window_ratio {
            println!("worst full window: delivered {:.1} % of offered", r * 100.0);
        }
        println!(
            "store size at mid-run {}, at the end of publishing {}",
            mib(self.store_bytes_mid),
            mib(self.store_bytes_end)
        );
    }
}
