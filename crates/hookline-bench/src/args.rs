//! The command line: one flag per knob of a run, and the scenario switches.

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "hookline-bench",
    about = "Benchmark hookline end to end: publish events, receive deliveries, measure"
)]
pub struct Args {
    /// The hookline binary [default: `hookline` next to this executable].
    #[arg(long)]
    pub hookline: Option<PathBuf>,
    /// Store to use [default: SQLite in a fresh temporary directory].
    #[arg(long)]
    pub database_url: Option<String>,
    /// Events to publish.
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Subscriptions (receiver endpoints); every event is delivered to each.
    #[arg(long, default_value_t = 1)]
    pub endpoints: usize,
    /// Concurrent publishing connections.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Size of each event's `data` object, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub payload_bytes: usize,
    /// Events per batch request; 0 = single-event requests.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub batch: u64,
    /// Steady publish rate in events/s; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Publish with no worker running (HOOKLINE_ROLE=api), then start one and measure the drain.
    #[arg(long)]
    pub backlog: bool,
    /// Seconds to wait for all deliveries, from the first publish.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Keep the temporary directory (store and server log).
    #[arg(long)]
    pub keep: bool,
    /// Tiny run for CI (200 events, concurrency 8, 120 s timeout).
    #[arg(long)]
    pub smoke: bool,
    /// Compare the fixed per-subscription cap with adaptive concurrency (AIMD) against a
    /// receiver that answers 503 past `--overload-limit` concurrent requests (see overload.rs).
    #[arg(long)]
    pub overload: bool,
    /// Concurrent requests the `--overload` receiver serves; it answers 503 past them.
    #[arg(long, default_value_t = 20)]
    pub overload_limit: usize,
    /// How long the `--overload` receiver takes per served request, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub service_ms: u64,
    /// `--overload` runs of each mode, alternating.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// A `HOOKLINE_*` setting for the server, as `NAME=VALUE` (repeatable), e.g.
    /// `--server-env HOOKLINE_ADAPTIVE_CONCURRENCY=false`.
    #[arg(long, value_parser = parse_server_env)]
    pub server_env: Vec<(String, String)>,
    /// Recovery scenario (`recovery.rs`): N failed deliveries re-queued while publishing
    /// `--events` at `--rate` (default 500/s), against the same run without; SQLite only.
    #[arg(long, default_value_t = 0)]
    pub recovery: u64,
    /// Delivery-log scenario (`log_pages.rs`): seed N deliveries (one attempt each) through SQL,
    /// then time log pages over HTTP; SQLite only.
    #[arg(long, default_value_t = 0)]
    pub log_pages: u64,
    /// Soak: publish at `--rate` for this many minutes and report window by window (see soak.rs).
    #[arg(long, default_value_t = 0.0)]
    pub soak_minutes: f64,
    /// Soak: length of a reporting window, in seconds.
    #[arg(long, default_value_t = 60)]
    pub window_secs: u64,
    /// HOOKLINE_RETENTION for the server (`2m`, `0` keeps everything) [default: hookline's].
    #[arg(long)]
    pub retention: Option<String>,
    /// HOOKLINE_RETENTION_INTERVAL for the server.
    #[arg(long)]
    pub retention_interval: Option<String>,
    /// Scrape `/metrics` every this many milliseconds during the run (0 = never).
    #[arg(long, default_value_t = 0)]
    pub scrape_metrics_ms: u64,
    /// Also measure the direct-post ceiling in the same run: once hookline is stopped, the same
    /// publisher posts the same events, unpaced and one per request, straight to the receiver.
    /// The report gives hookline's delivery rate as a ratio of it.
    #[arg(long)]
    pub baseline: bool,
    /// Sample the server's RSS this many seconds after the last delivery (memory given back
    /// once the load is over); 0 = don't.
    #[arg(long, default_value_t = 0)]
    pub rss_after: u64,
}

fn parse_server_env(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if k.starts_with("HOOKLINE_") => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected HOOKLINE_NAME=VALUE, got '{raw}'")),
    }
}
