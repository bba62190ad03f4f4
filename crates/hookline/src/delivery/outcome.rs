//! What an attempt's result means for the delivery: the one place failures are classified
//! as retryable or permanent.

use std::time::Duration;

pub use hookline_core::ErrorKind;

/// What the next step for the delivery is, before the schedule is consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again; `after` is the receiver's `Retry-After`, when it sent one.
    Retry {
        after: Option<Duration>,
    },
    Permanent,
    /// `410 Gone`: fail and deactivate the subscription.
    Gone,
}

/// The longest `Retry-After` we honour; longer asks are capped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// 2xx is success; 5xx and 429 are retried; 410 deactivates; every other status (3xx and 4xx) is final.
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Gone,
        429 | 503 => Verdict::Retry {
            after: retry_after.map(|d| d.min(MAX_RETRY_AFTER)),
        },
        500..=599 => Verdict::Retry { after: None },
        _ => Verdict::Permanent,
    }
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify_status(200, None), Verdict::Delivered);
        assert_eq!(classify_status(204, None), Verdict::Delivered);
        for s in [500, 502, 503, 504, 429] {
            assert!(
                matches!(classify_status(s, None), Verdict::Retry { .. }),
                "{s}"
            );
        }
        for s in [301, 302, 307, 400, 401, 403, 404, 409, 422] {
            assert_eq!(classify_status(s, None), Verdict::Permanent, "{s}");
        }
        assert_eq!(classify_status(410, None), Verdict::Gone);
    }

    #[test]
    fn retry_after_is_bounded_and_only_for_429_503() {
        let long = Some(Duration::from_secs(86400));
        assert_eq!(
            classify_status(429, long),
            Verdict::Retry {
                after: Some(MAX_RETRY_AFTER)
            }
        );
        assert_eq!(classify_status(500, long), Verdict::Retry { after: None });
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
