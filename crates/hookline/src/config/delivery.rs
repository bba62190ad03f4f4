//! The delivery section: how receivers are reached, how much is sent at once, when to retry.

use anyhow::Context;
use hookline_core::retry::{DEFAULT_DELAYS, DEFAULT_JITTER};
use hookline_core::RetrySchedule;
use ipnet::IpNet;
use std::time::Duration;

use super::{positive, DeliverySettings, DisablePolicy, RawConfig, SHUTDOWN_GRACE};

impl DeliverySettings {
    pub(super) fn from_raw(raw: &RawConfig) -> anyhow::Result<Self> {
        let ssrf_allow = parse_ssrf_allow(raw.ssrf_allow.as_deref().unwrap_or(""))?;
        if let Some(path) = &raw.extra_root_certs {
            anyhow::ensure!(
                path.is_file(),
                "HOOKLINE_EXTRA_ROOT_CERTS: no file at {}",
                path.display()
            );
        }
        let jitter = raw.retry_jitter.unwrap_or(DEFAULT_JITTER);
        anyhow::ensure!(
            (0.0..=1.0).contains(&jitter),
            "HOOKLINE_RETRY_JITTER must be between 0.0 and 1.0"
        );
        let retry_schedule = RetrySchedule::parse(
            raw.retry_schedule.as_deref().unwrap_or(DEFAULT_DELAYS),
            jitter,
        )
        .context("HOOKLINE_RETRY_SCHEDULE")?;
        let timeout = positive(
            raw.delivery_timeout.as_deref(),
            "10s",
            "HOOKLINE_DELIVERY_TIMEOUT",
        )?;
        // Zero would fail every connection at once.
        let connect_timeout = positive(
            raw.connect_timeout.as_deref(),
            "5s",
            "HOOKLINE_CONNECT_TIMEOUT",
        )?;
        let max_in_flight = raw.max_in_flight.unwrap_or(512);
        let per_sub = raw.max_in_flight_per_subscription.unwrap_or(128);
        anyhow::ensure!(max_in_flight > 0, "HOOKLINE_MAX_IN_FLIGHT must be positive");
        anyhow::ensure!(
            per_sub > 0,
            "HOOKLINE_MAX_IN_FLIGHT_PER_SUBSCRIPTION must be positive"
        );
        Ok(DeliverySettings {
            ssrf_allow,
            extra_root_certs: raw.extra_root_certs.clone(),
            retry_schedule,
            timeout,
            connect_timeout,
            // Short: steady traffic reuses its connections anyway, many receivers close theirs
            // after 5-60 s, and each idle connection holds ~30 KiB that a burst's hundreds kept
            // (README, Performance). A reconnect only costs when traffic to a host is sparse.
            receiver_idle_timeout: positive(
                raw.receiver_idle_timeout.as_deref(),
                "15s",
                "HOOKLINE_RECEIVER_IDLE_TIMEOUT",
            )?,
            max_in_flight,
            max_in_flight_per_subscription: per_sub,
            lease: (timeout + connect_timeout) * 2,
            poll_interval: Duration::from_secs(1),
            shutdown_grace: SHUTDOWN_GRACE,
            adaptive_concurrency: raw.adaptive_concurrency.unwrap_or(true),
            disable_policy: DisablePolicy::from_raw(raw)?,
        })
    }
}

/// Comma-separated CIDRs (a bare address is its own /32 or /128).
fn parse_ssrf_allow(raw: &str) -> anyhow::Result<Vec<IpNet>> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .with_context(|| {
                    format!("HOOKLINE_SSRF_ALLOW: '{s}' is not a CIDR (e.g. 127.0.0.0/8)")
                })
        })
        .collect()
}
