//! `hookline-bench`: measures hookline end to end, in one command.
//!
//! What it does:
//!
//! 1. Starts a minimal loopback receiver (hyper HTTP/1.1 on 127.0.0.1:0) that answers every
//!    delivery `200` with an empty body. For each delivery it records the arrival time, reads
//!    `event_id` and `data.sent_at_us` from the body, and de-duplicates on `(path, event_id)`
//!    (delivery is at-least-once).
//! 2. Starts `hookline serve` as a child process on a free loopback port, with a fresh SQLite
//!    store in a temporary directory (or `--database-url`), its output going to
//!    `hookline.log` in that directory, and waits for `GET /readyz` → 200.
//! 3. Creates one partner, one API key and `--endpoints` subscriptions
//!    (`http://<receiver>/hook/0`, `/hook/1`, …) for `message.received`.
//! 4. Publishes `--events` events through the operator API from `--concurrency` workers, each on
//!    its own keep-alive connection, as single-event requests (`POST /admin/v1/events`) or batches
//!    of `--batch` events (`POST /admin/v1/events/batch`), as fast as possible or paced at
//!    `--rate` events/s. Each event's `data` is `{"sent_at_us": <unix µs at send>, "pad": "xx…"}`
//!    padded to `--payload-bytes`. Failed requests are retried (up to 10 times, with back-off).
//! 5. Waits until every expected delivery (accepted events × endpoints) has arrived, or
//!    `--timeout` passes, or hookline exits.
//!
//! What it reports:
//!
//! * publish rate: accepted events / (last publish response − first publish request);
//! * end-to-end delivery rate: unique deliveries / (last delivery − first publish request);
//! * ingest→delivery latency p50/p90/p99/max: arrival − `sent_at_us`, over unique deliveries
//!   (exact percentiles over all samples; publisher, hookline and receiver share one clock);
//! * duplicates (deliveries of an already seen `(path, event_id)`, seen before the run ended);
//! * server RSS (`VmRSS` after set-up, before publishing; `VmHWM` at the end) and CPU seconds
//!   (`utime + stime` from `/proc/<pid>/stat`), also per delivery;
//! * the benchmark's own CPU seconds (publisher + receiver), since it shares the machine;
//! * store size on disk: the SQLite file plus `-wal` and `-shm` (n/a for PostgreSQL).
//!
//! `--backlog` runs the publish phase against hookline started with `HOOKLINE_ROLE=api` (events
//! and pending deliveries are stored, nothing is delivered), stops it, starts `HOOKLINE_ROLE=all`
//! on the same store and measures the drain: unique deliveries / (start of the delivering
//! process → last delivery). The receiver stays up throughout; the "receiver down" of the issue
//! is modelled by no worker running. Latencies in this mode include the wait in the backlog.
//!
//! Note that the benchmark shares the machine with hookline: publisher and receiver use CPU too.
//! `--smoke` is a tiny run for CI. The exit status is 0 only when every delivery arrived.

mod publisher;
mod receiver;
mod server;

mod report;

use anyhow::{bail, Context};
use clap::Parser;
use report::{Latency, Report};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Unix time in microseconds (the clock shared by publisher and receiver).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[derive(Parser, Debug)]
#[command(
    name = "hookline-bench",
    about = "Benchmark hookline end to end: publish events, receive deliveries, measure"
)]
struct Args {
    /// The hookline binary [default: `hookline` next to this executable].
    #[arg(long)]
    hookline: Option<PathBuf>,
    /// Store to use [default: SQLite in a fresh temporary directory].
    #[arg(long)]
    database_url: Option<String>,
    /// Events to publish.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Subscriptions (receiver endpoints); every event is delivered to each.
    #[arg(long, default_value_t = 1)]
    endpoints: usize,
    /// Concurrent publishing connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Size of each event's `data` object, in bytes.
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
    /// Events per batch request; 0 = single-event requests.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1000))]
    batch: u64,
    /// Steady publish rate in events/s; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Publish with no worker running (HOOKLINE_ROLE=api), then start one and measure the drain.
    #[arg(long)]
    backlog: bool,
    /// Seconds to wait for all deliveries, from the first publish.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Keep the temporary directory (store and server log).
    #[arg(long)]
    keep: bool,
    /// Tiny run for CI (200 events, concurrency 8, 120 s timeout).
    #[arg(long)]
    smoke: bool,
}

fn default_hookline() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name("hookline"))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn log(quiet: bool, msg: impl AsRef<str>) {
    if !quiet {
        eprintln!("[bench] {}", msg.as_ref());
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.events = 200;
        args.concurrency = 8;
        args.timeout = 120;
    }
    if args.endpoints == 0 || args.events == 0 {
        bail!("--events and --endpoints must be at least 1");
    }
    let bin = match &args.hookline {
        Some(p) => p.clone(),
        None => default_hookline()?,
    };
    if !bin.is_file() {
        bail!(
            "hookline binary not found at {} (build it with `cargo build --release -p hookline` or pass --hookline)",
            bin.display()
        );
    }
    let run_id = format!("{}-{}", std::process::id(), now_us());
    let dir = std::env::temp_dir().join(format!("hookline-bench-{run_id}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = run(&args, &bin, &dir, &run_id).await;
    let complete = matches!(&result, Ok(r) if r.complete);
    let keep = args.keep || !complete;
    if keep {
        eprintln!("[bench] kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut report = result?;
    if !keep {
        report.log_path += " (removed; --keep keeps it)";
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print_table();
    }
    if !report.complete {
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: &Args, bin: &Path, dir: &Path, run_id: &str) -> anyhow::Result<Report> {
    let quiet = args.json;
    let database_url = match &args.database_url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", dir.join("hookline.db").display()),
    };
    let admin_token = format!("bench-admin-{run_id}");
    let (receiver_addr, received) = receiver::start().await?;
    log(quiet, format!("receiver on {receiver_addr}"));

    let first_role = if args.backlog { "api" } else { "all" };
    let log_path = dir.join("hookline.log");
    let spec = |role, log_path: PathBuf| server::Spec {
        bin,
        database_url: &database_url,
        admin_token: &admin_token,
        role,
        log_path,
    };
    let ingest_log = if args.backlog {
        dir.join("hookline-ingest.log")
    } else {
        log_path.clone()
    };
    let mut srv = server::start(&spec(first_role, ingest_log.clone())).await?;
    log(
        quiet,
        format!(
            "hookline pid {} on {} (role {first_role}), store {database_url}",
            srv.pid, srv.base_url
        ),
    );
    let setup = publisher::setup(
        &srv.base_url,
        &admin_token,
        receiver_addr,
        args.endpoints,
        run_id,
    )
    .await?;
    let mut idle = srv.stats();
    let is_postgres = database_url.starts_with("postgres");
    let database_cpu_start = is_postgres.then(server::postgres_cpu_s);

    log(quiet, format!("publishing {} events", args.events));
    let outcome = publisher::run(publisher::Plan {
        base_url: srv.base_url.clone(),
        admin_token: admin_token.clone(),
        partner_id: setup.partner_id,
        run_id: run_id.to_owned(),
        events: args.events,
        concurrency: args.concurrency,
        payload_bytes: args.payload_bytes,
        batch: args.batch as usize,
        rate: args.rate,
    })
    .await?;
    let publish_secs = (outcome.finished_us - outcome.started_us) as f64 / 1e6;
    log(
        quiet,
        format!(
            "published {} events in {publish_secs:.2} s ({} failed)",
            outcome.accepted, outcome.failed
        ),
    );
    let expected = outcome.accepted * args.endpoints as u64;

    let mut ingest = None;
    let mut drain_start_us = None;
    let mut log_paths = vec![ingest_log];
    if args.backlog {
        let stats = srv.stats();
        ingest = Some(stats);
        srv.stop().await;
        log(quiet, "ingest server stopped; starting delivering server");
        drain_start_us = Some(now_us());
        srv = server::start(&spec("all", log_path.clone())).await?;
        idle = srv.stats();
        log_paths.push(log_path.clone());
    }

    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut last_progress = (received.unique(), Instant::now());
    let mut exited = None;
    while received.unique() < expected {
        if let Some(status) = srv.exited() {
            exited = Some(status);
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        let n = received.unique();
        if !quiet && last_progress.1.elapsed() > Duration::from_secs(5) {
            eprintln!("[bench] {n} / {expected} deliveries");
            last_progress = (n, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end = srv.stats();
    let database_cpu_s = database_cpu_start.map(|start| server::postgres_cpu_s() - start);
    let own = server::proc_stats(std::process::id()).unwrap_or_default();
    let store_bytes = server::store_size(&database_url);
    let snap = received.snapshot();
    if let Some(status) = exited {
        eprintln!(
            "[bench] hookline exited early ({status}); log tail:\n{}",
            server::log_tail(&srv.log_path, 20)
        );
    } else {
        srv.stop().await;
    }

    let (mut warn, mut error) = (0, 0);
    for p in &log_paths {
        let (w, e) = server::log_counts(p);
        warn += w;
        error += e;
    }
    let e2e_secs = snap.last_us.saturating_sub(outcome.started_us) as f64 / 1e6;
    let rate = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let drain_secs = drain_start_us.map(|t| snap.last_us.saturating_sub(t) as f64 / 1e6);
    let mut mode = match args.batch {
        0 => "single-event requests".to_owned(),
        n => format!("batch requests of {n}"),
    };
    if args.rate > 0.0 {
        mode += &format!(", paced at {} events/s", args.rate);
    }
    if args.backlog {
        mode += ", backlog drain";
    }

    Ok(Report {
        store: if store_bytes.is_some() {
            "sqlite".into()
        } else {
            "postgres".into()
        },
        mode,
        events: args.events,
        endpoints: args.endpoints,
        concurrency: args.concurrency,
        payload_bytes: args.payload_bytes,
        batch: args.batch as usize,
        rate: args.rate,
        backlog: args.backlog,
        published_events: outcome.accepted,
        failed_events: outcome.failed,
        publish_requests: outcome.requests,
        retried_requests: outcome.retried_requests,
        first_publish_error: outcome.first_error,
        publish_secs,
        publish_rate: rate(outcome.accepted, publish_secs),
        expected_deliveries: expected,
        unique_deliveries: snap.unique,
        duplicates: snap.duplicates,
        unparsable: snap.unparsable,
        complete: snap.unique >= expected && outcome.failed == 0,
        e2e_secs,
        delivery_rate: rate(snap.unique, e2e_secs),
        drain_secs,
        drain_rate: drain_secs.map(|s| rate(snap.unique, s)),
        latency: Latency::from_sorted(&snap.latencies_us),
        server_idle_rss_mb: mib(idle.rss_kb),
        server_peak_rss_mb: mib(end.hwm_kb),
        server_cpu_s: end.cpu_s,
        server_cpu_ms_per_delivery: (snap.unique > 0)
            .then(|| end.cpu_s * 1000.0 / snap.unique as f64),
        database_cpu_s,
        total_cpu_ms_per_delivery: (snap.unique > 0).then(|| {
            (end.cpu_s + ingest.map_or(0.0, |s| s.cpu_s) + database_cpu_s.unwrap_or(0.0)) * 1000.0
                / snap.unique as f64
        }),
        ingest_server_peak_rss_mb: ingest.map(|s| mib(s.hwm_kb)),
        ingest_server_cpu_s: ingest.map(|s| s.cpu_s),
        bench_cpu_s: own.cpu_s,
        store_bytes,
        log_path: log_path.display().to_string(),
        log_warn_lines: warn,
        log_error_lines: error,
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_model: cpu_model(),
    })
}
