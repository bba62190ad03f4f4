//! When and how long to wait before sending a request again: the rules of Linq's SDKs
//! (CONTRACT.md §1.4), so hookline's client behaves as partners' code already expects.

use reqwest::header::HeaderMap;
use std::time::{Duration, SystemTime};

/// How a client retries. The default is Linq's SDKs': 2 retries (3 attempts), waiting what
/// `retry-after-ms`/`Retry-After` say when that is within 60 s, else `min(0.5 s × 2ⁿ, 8 s)` less up
/// to 25 % jitter.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 turns retrying off.
    pub max_retries: u32,
    /// The first backoff delay, doubled on each retry.
    pub initial_delay: Duration,
    /// The longest backoff delay.
    pub max_delay: Duration,
    /// A server's `Retry-After` longer than this is ignored in favour of the backoff; it also
    /// bounds the whole budget: at most `max_retries` waits of at most this long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Whether an answer with `status` and `headers` should be sent again. `x-should-retry`
    /// decides when present; else 408, 409, 429 and 5xx are retried.
    pub fn should_retry(status: u16, headers: &HeaderMap) -> bool {
        match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
            Some("true") => return true,
            Some("false") => return false,
            _ => {}
        }
        matches!(status, 408 | 409 | 429) || status >= 500
    }

    /// How long to wait before retry number `retry` (0 for the first), given the answer's
    /// headers if there was an answer.
    pub fn delay(&self, retry: u32, headers: Option<&HeaderMap>) -> Duration {
        if let Some(asked) = headers.and_then(|h| retry_after(h, SystemTime::now())) {
            if asked > Duration::ZERO && asked <= self.max_retry_after {
                return asked;
            }
        }
        let backoff = self
            .initial_delay
            .saturating_mul(2u32.saturating_pow(retry.min(16)))
            .min(self.max_delay);
        let jitter = 1.0 - 0.25 * rand::random::<f64>();
        backoff.mul_f64(jitter)
    }
}

/// `retry-after-ms` (milliseconds), else `Retry-After` (seconds, possibly fractional, or an
/// HTTP date).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return duration_from_secs(ms / 1000.0);
    }
    let value = get("retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return duration_from_secs(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn duration_from_secs(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn statuses_retried_as_the_sdks_do() {
        let none = HeaderMap::new();
        for s in [408, 409, 429, 500, 502, 503, 504] {
            assert!(RetryPolicy::should_retry(s, &none), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(!RetryPolicy::should_retry(s, &none), "{s}");
        }
        let no = headers(&[("x-should-retry", "false")]);
        assert!(!RetryPolicy::should_retry(409, &no));
        assert!(!RetryPolicy::should_retry(503, &no));
        let yes = headers(&[("x-should-retry", "true")]);
        assert!(RetryPolicy::should_retry(400, &yes));
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "5")]), now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
    }

    #[test]
    fn delays_are_bounded() {
        let p = RetryPolicy::default();
        let asked = headers(&[("retry-after", "2")]);
        assert_eq!(p.delay(0, Some(&asked)), Duration::from_secs(2));
        // Past the bound the server's wish is ignored for the backoff.
        let long = headers(&[("retry-after", "3600")]);
        assert!(p.delay(0, Some(&long)) <= Duration::from_millis(500));
        for n in 0..40 {
            let d = p.delay(n, None);
            assert!(d <= Duration::from_secs(8), "{n}: {d:?}");
            assert!(d >= Duration::from_millis(375).min(p.max_delay.mul_f64(0.75)));
        }
    }
}
