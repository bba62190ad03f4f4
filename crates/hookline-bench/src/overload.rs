//! `--overload`: adaptive concurrency against a receiver that can take only so much. The
//! receiver serves `--overload-limit` requests at a time (each `--service-ms`) and answers
//! `503` at once to any beyond them, as an overloaded endpoint behind a proxy does. The same
//! events go through hookline with the fixed per-subscription cap
//! (`HOOKLINE_ADAPTIVE_CONCURRENCY=false`) and with AIMD, alternately, `--rounds` times each,
//! each on a fresh SQLite store, with hookline's default retry schedule. Reported per run: the
//! 503s the receiver sent (failed attempts), the peak concurrency it saw, and the time from the
//! first publish to the last first delivery.

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

use crate::{now_us, publisher, server};

pub struct Options {
    pub events: u64,
    pub limit: usize,
    pub service: Duration,
    pub rounds: usize,
    pub timeout: Duration,
    pub json: bool,
}

#[derive(Default)]
struct Load {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    refused: AtomicU64,
    served: AtomicU64,
    first: Mutex<HashSet<String>>,
    last_first_us: AtomicU64,
}

#[derive(Serialize)]
pub struct RunResult {
    pub mode: &'static str,
    pub events: u64,
    pub delivered: u64,
    /// 503s the receiver answered: attempts that failed for want of capacity.
    pub refused: u64,
    /// Requests served (200), duplicates included.
    pub served: u64,
    pub peak_concurrency: usize,
    /// First publish → last first delivery; `None` when not every event arrived in time.
    pub secs: Option<f64>,
}

/// Runs the comparison and prints it.
pub async fn run(bin: &Path, dir: &Path, run_id: &str, opts: &Options) -> anyhow::Result<()> {
    let mut results = Vec::new();
    for round in 0..opts.rounds {
        for adaptive in [false, true] {
            let sub = dir.join(format!("overload-{round}-{adaptive}"));
            std::fs::create_dir_all(&sub)?;
            let r = one_run(
                bin,
                &sub,
                &format!("{run_id}-{round}-{adaptive}"),
                adaptive,
                opts,
            )
            .await?;
            if !opts.json {
                eprintln!(
                    "[bench] {:>5}: {} of {} delivered, {} 503s, peak {} concurrent, {}",
                    r.mode,
                    r.delivered,
                    r.events,
                    r.refused,
                    r.peak_concurrency,
                    r.secs
                        .map_or("not finished".into(), |s| format!("{s:.2} s"))
                );
            }
            results.push(r);
        }
    }
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(())
}

async fn one_run(
    bin: &Path,
    dir: &Path,
    run_id: &str,
    adaptive: bool,
    opts: &Options,
) -> anyhow::Result<RunResult> {
    let (addr, load) = receiver(opts.limit, opts.service).await?;
    let database_url = format!("sqlite://{}", dir.join("hookline.db").display());
    let admin_token = format!("bench-admin-{run_id}");
    let spec = server::Spec {
        bin,
        database_url: &database_url,
        admin_token: &admin_token,
        role: "all",
        log_path: dir.join("hookline.log"),
        env: vec![("HOOKLINE_ADAPTIVE_CONCURRENCY".into(), adaptive.to_string())],
    };
    let srv = server::start(&spec).await?;
    let setup = publisher::setup(&srv.base_url, &admin_token, addr, 1, run_id).await?;
    let outcome = publisher::run(publisher::Plan {
        base_url: srv.base_url.clone(),
        admin_token: admin_token.clone(),
        partner_id: setup.partner_id,
        run_id: run_id.to_owned(),
        events: opts.events,
        concurrency: 4,
        payload_bytes: 256,
        batch: 100,
        rate: 0.0,
        direct: false,
    })
    .await
    .context("publishing")?;
    let deadline = Instant::now() + opts.timeout;
    let delivered = || load.first.lock().expect("receiver lock").len() as u64;
    while delivered() < outcome.accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    srv.stop().await;
    let finished = delivered() >= outcome.accepted;
    let last = load.last_first_us.load(Ordering::SeqCst);
    Ok(RunResult {
        mode: if adaptive { "AIMD" } else { "fixed" },
        events: outcome.accepted,
        delivered: delivered(),
        refused: load.refused.load(Ordering::SeqCst),
        served: load.served.load(Ordering::SeqCst),
        peak_concurrency: load.peak.load(Ordering::SeqCst),
        secs: finished.then(|| last.saturating_sub(outcome.started_us) as f64 / 1e6),
    })
}

/// The overloadable receiver on 127.0.0.1:0; it serves until the process exits.
async fn receiver(limit: usize, service: Duration) -> anyhow::Result<(SocketAddr, Arc<Load>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let load = Arc::new(Load::default());
    let shared = load.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let load = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(req, load.clone(), limit, service));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, load))
}

#[derive(serde::Deserialize)]
struct Envelope {
    event_id: String,
}

async fn handle(
    req: Request<Incoming>,
    load: Arc<Load>,
    limit: usize,
    service: Duration,
) -> Result<Response<Empty<Bytes>>, hyper::Error> {
    let now = load.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    load.peak.fetch_max(now, Ordering::SeqCst);
    let body = req.into_body().collect().await;
    let mut answer = Response::new(Empty::new());
    if now > limit {
        load.refused.fetch_add(1, Ordering::SeqCst);
        *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    } else {
        tokio::time::sleep(service).await;
        load.served.fetch_add(1, Ordering::SeqCst);
        if let Ok(env) = serde_json::from_slice::<Envelope>(&body?.to_bytes()) {
            if load
                .first
                .lock()
                .expect("receiver lock")
                .insert(env.event_id)
            {
                load.last_first_us.fetch_max(now_us(), Ordering::SeqCst);
            }
        }
    }
    load.in_flight.fetch_sub(1, Ordering::SeqCst);
    Ok(answer)
}
