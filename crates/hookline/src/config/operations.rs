//! Settings of day-2 delivery operations: when a dead endpoint's subscription is deactivated,
//! how fast recoveries re-queue, and how `hookline listen` streams are kept.

use anyhow::Context;
use hookline_core::time::parse_duration;
use std::time::Duration;

use super::{positive, RawConfig};

/// When an endpoint counts as dead (`HOOKLINE_DISABLE_AFTER`, `HOOKLINE_DISABLE_MIN_FAILURES`):
/// every attempt failed for at least `after`, with at least `min_failures` deliveries failed
/// for good and no success in between. `after: None` never deactivates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisablePolicy {
    pub after: Option<Duration>,
    pub min_failures: u64,
}

impl Default for DisablePolicy {
    fn default() -> Self {
        DisablePolicy {
            after: Some(Duration::from_secs(5 * 24 * 3600)),
            min_failures: 10,
        }
    }
}

impl DisablePolicy {
    pub(super) fn from_raw(raw: &RawConfig) -> anyhow::Result<Self> {
        let default = DisablePolicy::default();
        let after = match raw.disable_after.as_deref().map(str::trim) {
            None => default.after,
            Some("0") => None,
            Some(text) => {
                let d = parse_duration(text).context("HOOKLINE_DISABLE_AFTER")?;
                (!d.is_zero()).then_some(d)
            }
        };
        let min_failures = raw.disable_min_failures.unwrap_or(default.min_failures);
        anyhow::ensure!(
            min_failures > 0,
            "HOOKLINE_DISABLE_MIN_FAILURES must be positive"
        );
        Ok(DisablePolicy {
            after,
            min_failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(after: Option<&str>, min: Option<u64>) -> anyhow::Result<DisablePolicy> {
        DisablePolicy::from_raw(&RawConfig {
            disable_after: after.map(Into::into),
            disable_min_failures: min,
            ..RawConfig::default()
        })
    }

    #[test]
    fn defaults_zero_and_bad_values() {
        assert_eq!(policy(None, None).unwrap(), DisablePolicy::default());
        assert_eq!(policy(Some("0"), None).unwrap().after, None);
        assert_eq!(
            policy(Some("90s"), Some(3)).unwrap(),
            DisablePolicy {
                after: Some(Duration::from_secs(90)),
                min_failures: 3
            }
        );
        let e = format!("{:#}", policy(Some("soon"), None).unwrap_err());
        assert!(e.contains("HOOKLINE_DISABLE_AFTER"), "{e}");
        let e = format!("{:#}", policy(None, Some(0)).unwrap_err());
        assert!(e.contains("HOOKLINE_DISABLE_MIN_FAILURES"), "{e}");
    }
}

/// `hookline listen` streams (see `api::listen`).
#[derive(Debug, Clone)]
pub struct ListenStreamSettings {
    /// How long an ephemeral subscription waits for its client to come back.
    pub grace: Duration,
    /// Keep-alive interval of an idle stream.
    pub keepalive: Duration,
}

impl ListenStreamSettings {
    pub(super) fn from_raw(raw: &RawConfig) -> anyhow::Result<Self> {
        let grace = parse_duration(raw.listen_grace.as_deref().unwrap_or("30s"))
            .context("HOOKLINE_LISTEN_GRACE")?;
        let keepalive = positive(
            raw.listen_keepalive.as_deref(),
            "15s",
            "HOOKLINE_LISTEN_KEEPALIVE",
        )?;
        Ok(ListenStreamSettings { grace, keepalive })
    }
}

/// The recovery runner (`delivery::recovery`): how fast bulk re-queues go, so that a large
/// recovery does not crowd out live traffic.
#[derive(Debug, Clone)]
pub struct RecoverySettings {
    /// Deliveries re-queued per second on each delivering node.
    pub rate_per_second: u32,
    /// How often a running recovery is advanced (by `rate_per_second × tick` deliveries).
    pub tick: Duration,
    /// How often the runner looks for recoveries while none is running.
    pub idle_poll: Duration,
}

impl RecoverySettings {
    pub(super) fn from_raw(raw: &RawConfig) -> anyhow::Result<Self> {
        let rate_per_second = raw.recovery_rate.unwrap_or(1000);
        anyhow::ensure!(
            rate_per_second > 0,
            "HOOKLINE_RECOVERY_RATE must be positive"
        );
        Ok(RecoverySettings {
            rate_per_second,
            tick: Duration::from_millis(100),
            idle_poll: Duration::from_secs(1),
        })
    }

    /// Deliveries one tick may re-queue (at least one).
    pub fn per_tick(&self) -> usize {
        ((f64::from(self.rate_per_second) * self.tick.as_secs_f64()).ceil() as usize).max(1)
    }
}
