//! Settings of day-2 delivery operations: when a dead endpoint's subscription is deactivated.

use anyhow::Context;
use hookline_core::time::parse_duration;
use std::time::Duration;

use super::RawConfig;

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
