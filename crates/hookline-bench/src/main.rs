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
//!    `--rate` events/s. Each event's `data` is a valid `message.received` message (about 800
//!    bytes) plus `"sent_at_us": <unix µs at send>` and `"pad": "xx…"` padding it to
//!    `--payload-bytes`. Failed requests are retried (up to 10 times, with back-off).
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

mod args;
mod direct;
mod log_pages;
mod overload;
mod publisher;
mod receiver;
mod recovery;
mod server;

mod report;
mod soak;

use anyhow::{bail, Context};
use args::Args;
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
    if args.overload {
        let opts = overload::Options {
            events: args.events,
            limit: args.overload_limit,
            service: Duration::from_millis(args.service_ms),
            rounds: args.rounds,
            timeout: Duration::from_secs(args.timeout),
            json: args.json,
        };
        let result = overload::run(&bin, &dir, &run_id, &opts).await;
        if !args.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return result;
    }
    if args.recovery > 0 || args.log_pages > 0 {
        let result = if args.recovery > 0 {
            recovery::run(&args, &bin, &dir, &run_id).await
        } else {
            log_pages::run(&args, &bin, &dir, &run_id).await
        };
        if !args.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return result;
    }
    if args.soak_minutes > 0.0 {
        return soak::main(&args, &bin, &dir, &run_id).await;
    }
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
    let ctx = RunContext::new(args, bin, dir, run_id);
    let (receiver_addr, received) = receiver::start().await?;
    log(ctx.quiet, format!("receiver on {receiver_addr}"));

    // Without --backlog one server does everything and logs to `hookline.log`; with it the
    // ingest server gets its own log, and `hookline.log` belongs to the delivering server.
    let ingest_log = if args.backlog {
        dir.join("hookline-ingest.log")
    } else {
        ctx.log_path.clone()
    };
    let mut srv = ctx.start_first_server(ingest_log.clone()).await?;
    let setup = ctx.set_up(&srv, receiver_addr).await?;
    let mut idle = srv.stats();
    let database_cpu_start = ctx.is_postgres().then(server::postgres_cpu_s);

    let scraper = (args.scrape_metrics_ms > 0)
        .then(|| soak::spawn_scraper(&srv.base_url, Duration::from_millis(args.scrape_metrics_ms)));
    let published = ctx.publish(&srv, setup.partner_id).await?;
    let expected = published.outcome.accepted * args.endpoints as u64;

    let mut drain = None;
    let mut log_paths = vec![ingest_log];
    if args.backlog {
        let (delivering, backlog) = ctx.switch_to_delivering_server(srv).await?;
        srv = delivering;
        idle = srv.stats();
        drain = Some(backlog);
        log_paths.push(ctx.log_path.clone());
    }

    let exited = wait_for_deliveries(&mut srv, &received, expected, args.timeout, ctx.quiet).await;
    let measured = Measured::take(&srv, &received, idle, database_cpu_start, &ctx.database_url);
    if let Some((task, scrapes)) = scraper {
        task.abort();
        let n = scrapes.load(std::sync::atomic::Ordering::Relaxed);
        log(
            ctx.quiet,
            format!("/metrics scraped {n} times during the run"),
        );
    }
    let rss_after_mb = match (args.rss_after, exited) {
        (secs, None) if secs > 0 => {
            log(ctx.quiet, format!("idle for {secs} s, then sampling RSS"));
            tokio::time::sleep(Duration::from_secs(secs)).await;
            Some(mib(srv.stats().rss_kb))
        }
        _ => None,
    };
    stop_server(srv, exited).await;
    let direct_rate = match args.baseline {
        true => Some(direct::ceiling(args, ctx.run_id, receiver_addr, ctx.quiet).await?),
        false => None,
    };
    let log_counts = count_log_lines(&log_paths);
    let mut report = build_report(
        args,
        published,
        expected,
        drain,
        measured,
        RunLogs {
            path: &ctx.log_path,
            counts: log_counts,
        },
    );
    report.server_rss_after_mb = rss_after_mb;
    report.set_direct_rate(direct_rate);
    Ok(report)
}

/// What every phase of a run shares: the command line, the store, and how to start hookline on it.
struct RunContext<'a> {
    args: &'a Args,
    bin: &'a Path,
    run_id: &'a str,
    database_url: String,
    admin_token: String,
    /// The delivering server's log (the only server's without `--backlog`).
    log_path: PathBuf,
    quiet: bool,
}

/// What the publish phase produced.
struct Published {
    outcome: publisher::Outcome,
    /// First publish request → last publish response.
    secs: f64,
}

/// Backlog mode: the ingest server's last sample, and when the delivering server was started.
struct Drain {
    ingest: server::ProcStats,
    start_us: u64,
}

/// Everything sampled once the wait for deliveries ended, before the server is stopped.
struct Measured {
    /// The delivering server after set-up (or after its start, in backlog mode).
    idle: server::ProcStats,
    end: server::ProcStats,
    database_cpu_s: Option<f64>,
    own: server::ProcStats,
    store_bytes: Option<u64>,
    snap: receiver::Snapshot,
}

/// The server log named in the report, and WARN/ERROR lines counted over every server's log.
struct RunLogs<'a> {
    path: &'a Path,
    counts: (u64, u64),
}

impl<'a> RunContext<'a> {
    fn new(args: &'a Args, bin: &'a Path, dir: &Path, run_id: &'a str) -> Self {
        let database_url = match &args.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", dir.join("hookline.db").display()),
        };
        RunContext {
            args,
            bin,
            run_id,
            database_url,
            admin_token: format!("bench-admin-{run_id}"),
            log_path: dir.join("hookline.log"),
            quiet: args.json,
        }
    }

    fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }

    fn spec(&self, role: &'static str, log_path: PathBuf) -> server::Spec<'_> {
        server::Spec {
            bin: self.bin,
            database_url: &self.database_url,
            admin_token: &self.admin_token,
            role,
            log_path,
            env: self
                .args
                .server_env
                .iter()
                .cloned()
                .chain(
                    [
                        ("HOOKLINE_RETENTION", &self.args.retention),
                        ("HOOKLINE_RETENTION_INTERVAL", &self.args.retention_interval),
                    ]
                    .into_iter()
                    .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v))),
                )
                .collect(),
        }
    }

    /// Starts the server that takes the events in: role `api` in backlog mode (nothing is
    /// delivered yet), `all` otherwise.
    async fn start_first_server(&self, log_path: PathBuf) -> anyhow::Result<server::Server> {
        let role = if self.args.backlog { "api" } else { "all" };
        let srv = server::start(&self.spec(role, log_path)).await?;
        log(
            self.quiet,
            format!(
                "hookline pid {} on {} (role {role}), store {}",
                srv.pid, srv.base_url, self.database_url
            ),
        );
        Ok(srv)
    }

    /// The publish phase's plan: `events` events to `srv` as the command line says.
    fn plan(&self, srv: &server::Server, partner_id: String, events: u64) -> publisher::Plan {
        let args = self.args;
        publisher::Plan {
            base_url: srv.base_url.clone(),
            admin_token: self.admin_token.clone(),
            partner_id,
            run_id: self.run_id.to_owned(),
            events,
            concurrency: args.concurrency,
            payload_bytes: args.payload_bytes,
            batch: args.batch as usize,
            rate: args.rate,
            direct: false,
        }
    }

    /// The partner, its key and the subscriptions to the receiver at `receiver`.
    async fn set_up(
        &self,
        srv: &server::Server,
        receiver: std::net::SocketAddr,
    ) -> anyhow::Result<publisher::Setup> {
        let (token, endpoints) = (&self.admin_token, self.args.endpoints);
        publisher::setup(&srv.base_url, token, receiver, endpoints, self.run_id).await
    }

    async fn publish(&self, srv: &server::Server, partner_id: String) -> anyhow::Result<Published> {
        let args = self.args;
        log(self.quiet, format!("publishing {} events", args.events));
        let outcome = publisher::run(self.plan(srv, partner_id, args.events)).await?;
        let secs = (outcome.finished_us - outcome.started_us) as f64 / 1e6;
        log(
            self.quiet,
            format!(
                "published {} events in {secs:.2} s ({} failed)",
                outcome.accepted, outcome.failed
            ),
        );
        Ok(Published { outcome, secs })
    }

    /// Backlog mode: samples and stops the ingest server, then starts a delivering one on the
    /// same store; the drain is timed from just before that start.
    async fn switch_to_delivering_server(
        &self,
        ingest_srv: server::Server,
    ) -> anyhow::Result<(server::Server, Drain)> {
        let ingest = ingest_srv.stats();
        ingest_srv.stop().await;
        log(
            self.quiet,
            "ingest server stopped; starting delivering server",
        );
        let start_us = now_us();
        let srv = server::start(&self.spec("all", self.log_path.clone())).await?;
        Ok((srv, Drain { ingest, start_us }))
    }
}

/// Waits until `expected` unique deliveries arrived, `timeout_s` passed or hookline exited;
/// returns hookline's exit status if it exited.
async fn wait_for_deliveries(
    srv: &mut server::Server,
    received: &receiver::State,
    expected: u64,
    timeout_s: u64,
    quiet: bool,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let mut last_progress = Instant::now();
    while received.unique() < expected {
        if let Some(status) = srv.exited() {
            return Some(status);
        }
        if Instant::now() > deadline {
            break;
        }
        let n = received.unique();
        if !quiet && last_progress.elapsed() > Duration::from_secs(5) {
            eprintln!("[bench] {n} / {expected} deliveries");
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

impl Measured {
    /// Samples the server, the database, this process, the store and the receiver, in that order.
    fn take(
        srv: &server::Server,
        received: &receiver::State,
        idle: server::ProcStats,
        database_cpu_start: Option<f64>,
        database_url: &str,
    ) -> Measured {
        let end = srv.stats();
        let database_cpu_s = database_cpu_start.map(|start| server::postgres_cpu_s() - start);
        let own = server::proc_stats(std::process::id()).unwrap_or_default();
        let store_bytes = server::store_size(database_url);
        let snap = received.snapshot();
        Measured {
            idle,
            end,
            database_cpu_s,
            own,
            store_bytes,
            snap,
        }
    }
}

/// Stops the server, or, if it already exited, says so with the tail of its log.
async fn stop_server(srv: server::Server, exited: Option<std::process::ExitStatus>) {
    if let Some(status) = exited {
        eprintln!(
            "[bench] hookline exited early ({status}); log tail:\n{}",
            server::log_tail(&srv.log_path, 20)
        );
    } else {
        srv.stop().await;
    }
}

/// WARN and ERROR lines summed over the given server logs.
fn count_log_lines(paths: &[PathBuf]) -> (u64, u64) {
    let (mut warn, mut error) = (0, 0);
    for p in paths {
        let (w, e) = server::log_counts(p);
        warn += w;
        error += e;
    }
    (warn, error)
}

/// How events were published, in words, for the report.
fn mode_description(args: &Args) -> String {
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
    mode
}

fn per_second(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn build_report(
    args: &Args,
    published: Published,
    expected: u64,
    drain: Option<Drain>,
    measured: Measured,
    logs: RunLogs<'_>,
) -> Report {
    let Published {
        outcome,
        secs: publish_secs,
    } = published;
    let Measured {
        idle,
        end,
        database_cpu_s,
        own,
        store_bytes,
        snap,
    } = measured;
    let ingest = drain.as_ref().map(|d| d.ingest);
    let e2e_secs = snap.last_us.saturating_sub(outcome.started_us) as f64 / 1e6;
    let drain_secs = drain.map(|d| snap.last_us.saturating_sub(d.start_us) as f64 / 1e6);
    Report {
        store: if store_bytes.is_some() {
            "sqlite".into()
        } else {
            "postgres".into()
        },
        mode: mode_description(args),
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
        publish_rate: per_second(outcome.accepted, publish_secs),
        expected_deliveries: expected,
        unique_deliveries: snap.unique,
        duplicates: snap.duplicates,
        unparsable: snap.unparsable,
        complete: snap.unique >= expected && outcome.failed == 0,
        e2e_secs,
        delivery_rate: per_second(snap.unique, e2e_secs),
        drain_secs,
        drain_rate: drain_secs.map(|s| per_second(snap.unique, s)),
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
        server_rss_after_mb: None,
        direct_rate: None,
        delivery_ratio: None,
        ingest_server_peak_rss_mb: ingest.map(|s| mib(s.hwm_kb)),
        ingest_server_cpu_s: ingest.map(|s| s.cpu_s),
        bench_cpu_s: own.cpu_s,
        store_bytes,
        log_path: logs.path.display().to_string(),
        log_warn_lines: logs.counts.0,
        log_error_lines: logs.counts.1,
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_model: cpu_model(),
    }
}
