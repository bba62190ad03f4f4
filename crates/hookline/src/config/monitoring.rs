//! The monitoring and retention sections: where `/metrics` is served, how often the queue is
//! sampled, and how long finished events are kept.

use anyhow::Context;
use std::net::SocketAddr;
use std::time::Duration;

use super::{positive, RawConfig};

/// What `/metrics` shows and where.
#[derive(Debug, Clone)]
pub struct MonitoringSettings {
    /// A listener of its own for `/metrics`; `None` serves it on the main port.
    pub metrics_listen: Option<SocketAddr>,
    /// How often the queue gauges are read from the store (on PostgreSQL, by one node for all).
    pub sample_interval: Duration,
}

/// Retention: events whose deliveries are all final are removed this long after acceptance.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// `None` keeps everything (`HOOKLINE_RETENTION=0`).
    pub keep: Option<Duration>,
    /// Time between purge passes; a pass removes everything past the retention, in batches.
    pub interval: Duration,
}

impl MonitoringSettings {
    pub(super) fn from_raw(raw: &RawConfig) -> anyhow::Result<Self> {
        let metrics_listen = raw
            .metrics_listen
            .as_deref()
            .map(|a| {
                a.parse().with_context(|| {
                    format!("HOOKLINE_METRICS_LISTEN '{a}' is not an address:port (e.g. 127.0.0.1:9090)")
                })
            })
            .transpose()?;
        Ok(MonitoringSettings {
            metrics_listen,
            sample_interval: sample_interval(raw)?,
        })
    }
}

/// `HOOKLINE_METRICS_SAMPLE_INTERVAL`: how often the gauges are sampled, and so how old a
/// sample the portal's health view may show.
pub(super) fn sample_interval(raw: &RawConfig) -> anyhow::Result<Duration> {
    positive(
        raw.metrics_sample_interval.as_deref(),
        "5s",
        "HOOKLINE_METRICS_SAMPLE_INTERVAL",
    )
}

impl RetentionSettings {
    pub(super) fn from_raw(raw: &RawConfig) -> anyhow::Result<Self> {
        let keep = match raw.retention.as_deref().map(str::trim) {
            Some("0") => None,
            other => Some(positive(other, "30d", "HOOKLINE_RETENTION")?),
        };
        Ok(RetentionSettings {
            keep,
            interval: positive(
                raw.retention_interval.as_deref(),
                "1m",
                "HOOKLINE_RETENTION_INTERVAL",
            )?,
        })
    }
}
