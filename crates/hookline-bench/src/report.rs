//! The result of a run: one struct, printed as a table or as one JSON object.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// From latencies in µs, sorted ascending; `None` when empty.
    pub fn from_sorted(us: &[u64]) -> Option<Latency> {
        let pick = |q: f64| {
            let rank = ((q * us.len() as f64).ceil() as usize).clamp(1, us.len());
            us[rank - 1] as f64 / 1000.0
        };
        (!us.is_empty()).then(|| Latency {
            p50_ms: pick(0.50),
            p90_ms: pick(0.90),
            p99_ms: pick(0.99),
            max_ms: pick(1.0),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub store: String,
    pub mode: String,
    pub events: u64,
    pub endpoints: usize,
    pub concurrency: usize,
    pub payload_bytes: usize,
    pub batch: usize,
    pub rate: f64,
    pub backlog: bool,

    pub published_events: u64,
    pub failed_events: u64,
    pub publish_requests: u64,
    pub retried_requests: u64,
    pub first_publish_error: Option<String>,
    pub publish_secs: f64,
    pub publish_rate: f64,

    pub expected_deliveries: u64,
    pub unique_deliveries: u64,
    pub duplicates: u64,
    pub unparsable: u64,
    pub complete: bool,
    /// First publish → last delivery.
    pub e2e_secs: f64,
    pub delivery_rate: f64,
    /// Backlog mode: delivering server's start → last delivery.
    pub drain_secs: Option<f64>,
    pub drain_rate: Option<f64>,
    pub latency: Option<Latency>,
    /// `--baseline`: the publisher posting the same events straight to the receiver, same run.
    pub direct_rate: Option<f64>,
    /// `delivery_rate / direct_rate` (the drain rate in backlog mode).
    pub delivery_ratio: Option<f64>,

    pub server_idle_rss_mb: f64,
    pub server_peak_rss_mb: f64,
    /// `--rss-after`: RSS that long after the last delivery.
    pub server_rss_after_mb: Option<f64>,
    pub server_cpu_s: f64,
    pub server_cpu_ms_per_delivery: Option<f64>,
    /// PostgreSQL: CPU seconds of the local database's processes during the run.
    pub database_cpu_s: Option<f64>,
    /// Everything the store side spent per delivery: hookline (both servers in backlog mode)
    /// plus the database's processes.
    pub total_cpu_ms_per_delivery: Option<f64>,
    /// Backlog mode: the `--role api` server that took the events in.
    pub ingest_server_peak_rss_mb: Option<f64>,
    pub ingest_server_cpu_s: Option<f64>,
    /// CPU seconds of this benchmark process (publisher + receiver).
    pub bench_cpu_s: f64,
    pub store_bytes: Option<u64>,

    pub log_path: String,
    pub log_warn_lines: u64,
    pub log_error_lines: u64,
    pub nproc: usize,
    pub cpu_model: String,
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "n/a".into())
}

type Rows = Vec<(&'static str, String)>;

impl Report {
    pub fn set_direct_rate(&mut self, direct: Option<f64>) {
        let rate = self.drain_rate.unwrap_or(self.delivery_rate);
        self.direct_rate = direct;
        self.delivery_ratio = direct.filter(|d| *d > 0.0).map(|d| rate / d);
    }

    /// Prints the report as a two-column table: what was run, what was delivered, what it
    /// cost, and where to look next.
    pub fn print_table(&self) {
        let mut rows = self.setup_rows();
        rows.extend(self.delivery_rows());
        rows.extend(self.cost_rows());
        rows.extend(self.context_rows());
        print_rows(&rows);
    }

    /// The run's configuration and the publish phase.
    fn setup_rows(&self) -> Rows {
        vec![
            ("store", self.store.clone()),
            ("mode", self.mode.clone()),
            (
                "events × endpoints",
                format!("{} × {}", self.events, self.endpoints),
            ),
            ("concurrency", self.concurrency.to_string()),
            ("payload", format!("{} B", self.payload_bytes)),
            (
                "published",
                format!(
                    "{} ok, {} failed, {} requests ({} retried)",
                    self.published_events,
                    self.failed_events,
                    self.publish_requests,
                    self.retried_requests
                ),
            ),
            (
                "publish rate",
                format!(
                    "{:.0} events/s  ({:.2} s)",
                    self.publish_rate, self.publish_secs
                ),
            ),
        ]
    }

    /// Deliveries: completeness, rates and latency.
    fn delivery_rows(&self) -> Rows {
        let mut rows = vec![
            (
                "deliveries",
                format!(
                    "{} / {} unique{}, {} duplicates",
                    self.unique_deliveries,
                    self.expected_deliveries,
                    if self.complete { "" } else { " (INCOMPLETE)" },
                    self.duplicates
                ),
            ),
            (
                "delivery rate e2e",
                format!(
                    "{:.0} deliveries/s  ({:.2} s first publish → last delivery)",
                    self.delivery_rate, self.e2e_secs
                ),
            ),
        ];
        if self.backlog {
            rows.push((
                "drain rate",
                format!(
                    "{}  ({} s worker start → last delivery)",
                    opt(self.drain_rate, |r| format!("{r:.0} deliveries/s")),
                    opt(self.drain_secs, |s| format!("{s:.2}"))
                ),
            ));
        }
        if let (Some(direct), Some(ratio)) = (self.direct_rate, self.delivery_ratio) {
            rows.push((
                "direct-post ceiling",
                format!("{direct:.0} posts/s  (hookline reached {ratio:.3} of it)"),
            ));
        }
        rows.push((
            "latency p50/p90/p99/max",
            opt(self.latency.as_ref(), |l| {
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1} ms",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
                )
            }),
        ));
        rows
    }

    /// Memory, CPU and disk: the servers', the database's and the benchmark's own.
    fn cost_rows(&self) -> Rows {
        let mut rows = vec![
            (
                "server RSS idle/peak",
                format!(
                    "{:.1} / {:.1} MiB{}",
                    self.server_idle_rss_mb,
                    self.server_peak_rss_mb,
                    self.server_rss_after_mb
                        .map(|m| format!(", {m:.1} MiB after the load"))
                        .unwrap_or_default()
                ),
            ),
            (
                "server CPU",
                format!(
                    "{:.2} s  ({} per delivery)",
                    self.server_cpu_s,
                    opt(self.server_cpu_ms_per_delivery, |m| format!("{m:.3} ms"))
                ),
            ),
        ];
        if let Some(db) = self.database_cpu_s {
            rows.push((
                "database CPU",
                format!("{db:.2} s  (local PostgreSQL processes)"),
            ));
        }
        if self.backlog {
            rows.push((
                "ingest server (api)",
                format!(
                    "peak RSS {} MiB, CPU {} s",
                    opt(self.ingest_server_peak_rss_mb, |m| format!("{m:.1}")),
                    opt(self.ingest_server_cpu_s, |c| format!("{c:.2}"))
                ),
            ));
        }
        rows.push(self.total_cpu_row());
        rows.push(("bench CPU (pub+recv)", format!("{:.2} s", self.bench_cpu_s)));
        rows.push((
            "store size",
            opt(self.store_bytes, |b| {
                format!("{:.1} MiB ({b} B)", b as f64 / 1048576.0)
            }),
        ));
        rows
    }

    /// CPU per delivery over everything that took part, naming the parts.
    fn total_cpu_row(&self) -> (&'static str, String) {
        let mut parts = vec!["hookline"];
        if self.backlog {
            parts.push("ingest server");
        }
        if self.database_cpu_s.is_some() {
            parts.push("PostgreSQL");
        }
        (
            "CPU per delivery, all",
            format!(
                "{}  ({})",
                opt(self.total_cpu_ms_per_delivery, |m| format!("{m:.3} ms")),
                parts.join(" + ")
            ),
        )
    }

    /// The server log, the machine, and the first publish error if any.
    fn context_rows(&self) -> Rows {
        let mut rows = vec![
            (
                "server log",
                format!(
                    "{} WARN, {} ERROR lines  {}",
                    self.log_warn_lines, self.log_error_lines, self.log_path
                ),
            ),
            ("machine", format!("{} × {}", self.nproc, self.cpu_model)),
        ];
        if let Some(e) = &self.first_publish_error {
            rows.push(("first publish error", e.clone()));
        }
        rows
    }
}

/// Prints `key  value` lines with the keys padded to the longest one.
fn print_rows(rows: &[(&str, String)]) {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
}
