//! Prometheus metrics: every metric's name, help text and buckets in this one file, and the small
//! functions the rest of the server calls at its seams (one line each), so instrumenting a step
//! never spreads metric names or label values around the code.
//!
//! The recorder is process-global (the `metrics` crate's facade) and installed once by
//! [`install`]; `GET /metrics` renders it ([`render`]). Until it is installed (unit tests, the
//! `migrate` command) every call here is a no-op.
//!
//! Cardinality: no label carries a partner, subscription, event or URL. Every label value comes
//! from a closed set: event types (the catalogue), route templates (axum's `MatchedPath`, or
//! `unmatched`), HTTP methods and status codes, attempt results and error kinds, operation names.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const EVENTS_PUBLISHED: &str = "hookline_events_published_total";
pub const DELIVERIES_CREATED: &str = "hookline_deliveries_created_total";
pub const ATTEMPTS: &str = "hookline_delivery_attempts_total";
pub const ATTEMPT_DURATION: &str = "hookline_delivery_attempt_duration_seconds";
pub const INGEST_TO_DELIVERY: &str = "hookline_ingest_to_delivery_seconds";
pub const PUBLISH_DURATION: &str = "hookline_publish_duration_seconds";
pub const STORE_COMMIT_DURATION: &str = "hookline_store_commit_duration_seconds";
pub const STORE_COMMIT_SIZE: &str = "hookline_store_commit_size";
pub const STORE_ERRORS: &str = "hookline_store_errors_total";
pub const DELIVERIES_PENDING: &str = "hookline_deliveries_pending";
pub const DELIVERIES_RETRYING: &str = "hookline_deliveries_retrying";
pub const DELIVERIES_DUE: &str = "hookline_deliveries_due";
pub const OLDEST_DUE_AGE: &str = "hookline_oldest_due_delivery_age_seconds";
pub const QUEUE_SAMPLE_AGE: &str = "hookline_queue_sample_age_seconds";
pub const IN_FLIGHT: &str = "hookline_deliveries_in_flight";
pub const IN_FLIGHT_MAX_SUBSCRIPTION: &str = "hookline_deliveries_in_flight_max_per_subscription";
pub const SUBSCRIPTIONS: &str = "hookline_subscriptions";
pub const SUBSCRIPTIONS_DEACTIVATED: &str = "hookline_subscriptions_deactivated_total";
pub const HTTP_REQUESTS: &str = "hookline_http_requests_total";
pub const STORE_SIZE: &str = "hookline_store_size_bytes";
pub const READY: &str = "hookline_ready";
pub const PURGED: &str = "hookline_retention_purged_total";
pub const BUILD_INFO: &str = "hookline_build_info";
pub const PAYLOAD_VIOLATIONS: &str = "hookline_payload_violations_total";

/// Every metric: name, help text, and histogram buckets (`None` for counters and gauges).
/// The help texts are what `/metrics` shows; README's Monitoring section lists the same.
pub const CATALOGUE: &[(&str, &str, Option<&[f64]>)] = &[
    (EVENTS_PUBLISHED, "Events accepted (first acceptance of an event id), by event type", None),
    (DELIVERIES_CREATED, "Deliveries scheduled by publishes", None),
    (ATTEMPTS, "Delivery attempts, by result (delivered, retry, failed) and error kind (none when the receiver answered 2xx)", None),
    (ATTEMPT_DURATION, "Duration of one delivery attempt (connect, send, answer), by result", Some(LATENCY_BUCKETS)),
    (INGEST_TO_DELIVERY, "From an event's acceptance to the end of its first delivery attempt", Some(LATENCY_BUCKETS)),
    (PUBLISH_DURATION, "A publish call through the group commit (queueing, plan, commit), per request", Some(LATENCY_BUCKETS)),
    (STORE_COMMIT_DURATION, "Duration of one store transaction, by operation (publish, claim, outcomes, purge)", Some(LATENCY_BUCKETS)),
    (STORE_COMMIT_SIZE, "Rows one store transaction carried: events per publish group, deliveries per claim, outcomes per batch, events per purge batch", Some(SIZE_BUCKETS)),
    (STORE_ERRORS, "Store operations that failed, by operation (publish, claim, outcomes, sample, purge)", None),
    (DELIVERIES_PENDING, "Deliveries not final yet: queued, in flight or waiting for a retry (whole store; sampled)", None),
    (DELIVERIES_RETRYING, "Pending deliveries attempted at least once (in flight included; sampled)", None),
    (DELIVERIES_DUE, "Pending deliveries due now (sampled)", None),
    (OLDEST_DUE_AGE, "How long the oldest due delivery has been due (0 when none is; sampled)", None),
    (QUEUE_SAMPLE_AGE, "Age of the queue sample the queue gauges show", None),
    (IN_FLIGHT, "Delivery attempts this process has in flight", None),
    (IN_FLIGHT_MAX_SUBSCRIPTION, "The most attempts this process has in flight to one subscription", None),
    (SUBSCRIPTIONS, "Live subscriptions, by state (active, inactive; sampled)", None),
    (SUBSCRIPTIONS_DEACTIVATED, "Subscriptions the engine deactivated, by reason (gone: the receiver answered 410)", None),
    (HTTP_REQUESTS, "HTTP requests answered, by method, route template and status", None),
    (STORE_SIZE, "Store size on disk (SQLite: database file and WAL; PostgreSQL: pg_database_size; sampled)", None),
    (READY, "1 while this node is ready (what /readyz answers), else 0", None),
    (PURGED, "Rows removed by retention, by table (events, deliveries, attempts)", None),
    (BUILD_INFO, "Always 1; the version label names this build", None),
    (PAYLOAD_VIOLATIONS, "Published events whose data broke their type's schema, by event type and HOOKLINE_VALIDATE_PAYLOADS mode (warn: accepted; strict: refused)", None),
];

/// Seconds: 1 ms to 30 s, for requests, attempts and transactions alike.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle). A test process
/// running several servers shares it: their figures add up, as several nodes' would.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        for (name, _, buckets) in CATALOGUE {
            if let Some(buckets) = buckets {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                    .expect("bucket lists are not empty");
            }
        }
        let handle = builder
            .install_recorder()
            .expect("no other metrics recorder is installed");
        describe();
        handle
    })
}

/// Help texts, and the series that should be visible before anything happened (a dashboard
/// or an alert on a counter that does not exist yet shows "no data", not 0).
fn describe() {
    for (name, help, buckets) in CATALOGUE {
        match buckets {
            Some(_) => metrics::describe_histogram!(*name, *help),
            None if name.ends_with("_total") => metrics::describe_counter!(*name, *help),
            None => metrics::describe_gauge!(*name, *help),
        }
    }
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    counter!(DELIVERIES_CREATED).absolute(0);
    counter!(SUBSCRIPTIONS_DEACTIVATED, "reason" => "gone").absolute(0);
    for result in ["delivered", "retry", "failed"] {
        counter!(ATTEMPTS, "result" => result, "error_kind" => "none").absolute(0);
    }
    for op in ["publish", "claim", "outcomes", "sample", "purge"] {
        counter!(STORE_ERRORS, "operation" => op).absolute(0);
    }
    for table in ["events", "deliveries", "attempts"] {
        counter!(PURGED, "table" => table).absolute(0);
    }
}

/// The Prometheus text format of every metric; empty before [`install`].
pub fn render() -> String {
    HANDLE.get().map(|h| h.render()).unwrap_or_default()
}

/// What a scrape shows now of the counter `name`, summed by the value of its label `label`
/// (series without it are left out). For the portal's health view, so that it shows the very
/// numbers of `/metrics`; empty before [`install`].
pub fn counter_by_label(name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for line in render().lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, labels) = series.split_once('{').unwrap_or((series, ""));
        let found = labels
            .trim_end_matches('}')
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == label);
        if let (true, Some((_, v)), Ok(n)) = (metric == name, found, value.parse::<f64>()) {
            *sums.entry(v.trim_matches('"').to_owned()).or_default() += n;
        }
    }
    sums
}

/// Folds recorded histogram samples into their buckets. Rendering does it too; this bounds the
/// memory they take when nothing scrapes for a long time.
pub fn upkeep() {
    if let Some(h) = HANDLE.get() {
        h.run_upkeep();
    }
}

pub fn event_published(event_type: &'static str) {
    counter!(EVENTS_PUBLISHED, "event_type" => event_type).increment(1);
}

pub fn deliveries_created(n: usize) {
    counter!(DELIVERIES_CREATED).increment(n as u64);
}

/// One attempt ended: `result` is `delivered`, `retry` or `failed`; `error_kind` `none` when
/// the receiver answered 2xx. `first_since_ingest`: for a first attempt, the time since the
/// event was accepted.
pub fn attempt(
    result: &'static str,
    error_kind: &'static str,
    took: Duration,
    first_since_ingest: Option<Duration>,
) {
    counter!(ATTEMPTS, "result" => result, "error_kind" => error_kind).increment(1);
    histogram!(ATTEMPT_DURATION, "result" => result).record(took);
    if let Some(latency) = first_since_ingest {
        histogram!(INGEST_TO_DELIVERY).record(latency);
    }
}

/// Records the time from its creation to its drop with `record`: every way out of a scope
/// (an early return, an error) is timed.
pub struct Timer {
    started: Instant,
    record: fn(Duration),
}

impl Timer {
    pub fn new(record: fn(Duration)) -> Self {
        Timer {
            started: Instant::now(),
            record,
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        (self.record)(self.started.elapsed());
    }
}

pub fn publish_call(took: Duration) {
    histogram!(PUBLISH_DURATION).record(took);
}

/// A store transaction of `operation` that carried `rows` rows and took `took`.
pub fn store_commit(operation: &'static str, took: Duration, rows: usize) {
    histogram!(STORE_COMMIT_DURATION, "operation" => operation).record(took);
    histogram!(STORE_COMMIT_SIZE, "operation" => operation).record(rows as f64);
}

pub fn store_error(operation: &'static str) {
    counter!(STORE_ERRORS, "operation" => operation).increment(1);
}

pub fn payload_violation(event_type: &'static str, mode: &'static str) {
    counter!(PAYLOAD_VIOLATIONS, "event_type" => event_type, "mode" => mode).increment(1);
}

pub fn subscription_deactivated(reason: &'static str) {
    counter!(SUBSCRIPTIONS_DEACTIVATED, "reason" => reason).increment(1);
}

pub fn purged(events: u64, deliveries: u64, attempts: u64) {
    counter!(PURGED, "table" => "events").increment(events);
    counter!(PURGED, "table" => "deliveries").increment(deliveries);
    counter!(PURGED, "table" => "attempts").increment(attempts);
}

/// `route` is a route template or `unmatched`; `method` one of the standard methods or `other`.
pub fn http_request(method: &'static str, route: String, status: u16) {
    counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status.to_string())
        .increment(1);
}

/// Sets a gauge; `label` is an optional `(name, value)` pair from a closed set.
pub fn set_gauge(name: &'static str, label: Option<(&'static str, &'static str)>, value: f64) {
    match label {
        Some((k, v)) => gauge!(name, k => v).set(value),
        None => gauge!(name).set(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters end in `_total` (Prometheus convention, and [`describe`] tells the kinds
    /// apart by it); nothing else does; every name is unique.
    #[test]
    fn names_follow_the_conventions() {
        let mut seen = std::collections::HashSet::new();
        for (name, help, buckets) in CATALOGUE {
            assert!(name.starts_with("hookline_"), "{name}");
            assert!(seen.insert(name), "{name} twice");
            assert!(!help.is_empty());
            if buckets.is_some() {
                assert!(!name.ends_with("_total"), "{name}");
            }
        }
    }
}
