//! What an attempt's result means for its delivery: [`decide`] is the one place that chooses
//! between delivered, retry and fail. Nothing here does I/O or reads the clock.

use hookline_core::{ErrorKind, RetrySchedule, Timestamp};
use std::time::Duration;

use crate::store::NextState;

/// What happened on the wire, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempted {
    /// The receiver answered; `retry_after` is its `Retry-After`, when it sent a readable one.
    Answered {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer came: the request could not be made or did not complete.
    Failed(ErrorKind),
}

impl Attempted {
    /// The kind stored in the attempt log; `None` for a 2xx.
    pub fn error_kind(self) -> Option<ErrorKind> {
        match self {
            Attempted::Answered { status, .. } => match status {
                200..=299 => None,
                300..=399 => Some(ErrorKind::Redirect),
                _ => Some(ErrorKind::HttpStatus),
            },
            Attempted::Failed(kind) => Some(kind),
        }
    }
}

/// The delivery's next state, and whether the receiver asked to deactivate its subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub next: NextState,
    /// `410 Gone`: the subscription is deactivated (while it still points at that target).
    pub deactivate: bool,
}

/// The longest `Retry-After` honoured; longer asks are capped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Decides what follows attempt number `attempt` (1-based), made at `now`:
/// - 2xx is delivered;
/// - 5xx, 429 and failures without an answer are retried on `schedule` until it runs out,
///   except a refused (SSRF) or invalid destination, which no retry can fix;
/// - 429 and 503 wait for the receiver's `Retry-After` instead, capped at [`MAX_RETRY_AFTER`]
///   (still only while the schedule has attempts left);
/// - 410 fails and deactivates the subscription; every other status (3xx, 4xx) fails.
pub fn decide(
    attempted: Attempted,
    attempt: u32,
    schedule: &RetrySchedule,
    now: Timestamp,
) -> Decision {
    let fail = Decision {
        next: NextState::Failed,
        deactivate: false,
    };
    let retry_after = match attempted {
        Attempted::Answered { status, .. } if (200..=299).contains(&status) => {
            return Decision {
                next: NextState::Succeeded,
                deactivate: false,
            }
        }
        Attempted::Answered { status: 410, .. } => {
            return Decision {
                next: NextState::Failed,
                deactivate: true,
            }
        }
        Attempted::Answered {
            status: 429 | 503,
            retry_after,
        } => retry_after.map(|d| d.min(MAX_RETRY_AFTER)),
        Attempted::Answered {
            status: 500..=599, ..
        } => None,
        Attempted::Answered { .. } => return fail,
        Attempted::Failed(ErrorKind::SsrfBlocked | ErrorKind::InvalidTarget) => return fail,
        Attempted::Failed(_) => None,
    };
    match schedule.delay_after(attempt) {
        None => fail,
        Some(delay) => Decision {
            // A receiver may ask for more time than the schedule gives, never for less: a
            // `Retry-After: 0` must not spend every retry within a second.
            next: NextState::RetryAt(now + retry_after.map_or(delay, |asked| asked.max(delay))),
            deactivate: false,
        },
    }
}

/// `Retry-After` as delta-seconds or an HTTP date (relative to `now`).
/// Delta-seconds are digits only (no sign); more of them than a `u64` holds is still a wait
/// (cut to the cap by [`decide`]). Dates in any of the three forms RFC 9110 says a recipient
/// must accept: `Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT` and
/// `Sun Nov  6 08:49:37 1994`.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = chrono::DateTime::<chrono::Utc>::from(httpdate::parse_http_date(value).ok()?);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::EPOCH;

    fn secs(n: u64) -> Timestamp {
        NOW + Duration::from_secs(n)
    }

    fn schedule() -> RetrySchedule {
        RetrySchedule::parse("5s,10s", 0.0).unwrap()
    }

    fn status(status: u16) -> Attempted {
        Attempted::Answered {
            status,
            retry_after: None,
        }
    }

    fn next(attempted: Attempted, attempt: u32) -> NextState {
        let d = decide(attempted, attempt, &schedule(), NOW);
        assert!(!d.deactivate, "{attempted:?}");
        d.next
    }

    #[test]
    fn success_is_final_on_any_attempt() {
        for s in [200, 204, 299] {
            assert_eq!(next(status(s), 1), NextState::Succeeded);
            assert_eq!(next(status(s), 3), NextState::Succeeded);
        }
    }

    #[test]
    fn server_errors_follow_the_schedule_until_it_runs_out() {
        for s in [500, 502, 503, 504, 429] {
            assert_eq!(next(status(s), 1), NextState::RetryAt(secs(5)), "{s}");
            assert_eq!(next(status(s), 2), NextState::RetryAt(secs(10)), "{s}");
            assert_eq!(next(status(s), 3), NextState::Failed, "{s}");
        }
    }

    #[test]
    fn client_errors_and_redirects_fail_at_once() {
        for s in [301, 302, 307, 400, 401, 403, 404, 409, 422] {
            assert_eq!(next(status(s), 1), NextState::Failed, "{s}");
        }
    }

    #[test]
    fn gone_fails_and_deactivates() {
        let d = decide(status(410), 1, &schedule(), NOW);
        assert_eq!(
            d,
            Decision {
                next: NextState::Failed,
                deactivate: true
            }
        );
    }

    #[test]
    fn retry_after_is_honoured_for_429_and_503_only_and_capped() {
        let asks = |status, secs| Attempted::Answered {
            status,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(next(asks(429, 7), 1), NextState::RetryAt(secs(7)));
        assert_eq!(next(asks(503, 17), 2), NextState::RetryAt(secs(17)));
        // Shorter than the schedule's delay: the schedule's.
        assert_eq!(next(asks(503, 7), 2), NextState::RetryAt(secs(10)));
        assert_eq!(next(asks(429, 0), 1), NextState::RetryAt(secs(5)));
        assert_eq!(next(asks(429, 86_400), 1), NextState::RetryAt(secs(600)));
        assert_eq!(next(asks(500, 7), 1), NextState::RetryAt(secs(5)));
        // The schedule still bounds the number of attempts.
        assert_eq!(next(asks(429, 7), 3), NextState::Failed);
    }

    #[test]
    fn failures_without_an_answer_retry_unless_the_destination_is_refused() {
        for kind in [
            ErrorKind::Timeout,
            ErrorKind::Connect,
            ErrorKind::Dns,
            ErrorKind::Tls,
            ErrorKind::SecretUnavailable,
            ErrorKind::Other,
        ] {
            let f = Attempted::Failed(kind);
            assert_eq!(next(f, 1), NextState::RetryAt(secs(5)), "{kind}");
            assert_eq!(next(f, 3), NextState::Failed, "{kind}");
        }
        for kind in [ErrorKind::SsrfBlocked, ErrorKind::InvalidTarget] {
            assert_eq!(
                next(Attempted::Failed(kind), 1),
                NextState::Failed,
                "{kind}"
            );
        }
    }

    #[test]
    fn an_empty_schedule_never_retries() {
        let none = RetrySchedule::parse("", 0.0).unwrap();
        assert_eq!(decide(status(500), 1, &none, NOW).next, NextState::Failed);
    }

    #[test]
    fn error_kinds_of_answers() {
        assert_eq!(status(204).error_kind(), None);
        assert_eq!(status(302).error_kind(), Some(ErrorKind::Redirect));
        assert_eq!(status(500).error_kind(), Some(ErrorKind::HttpStatus));
        assert_eq!(
            Attempted::Failed(ErrorKind::Tls).error_kind(),
            Some(ErrorKind::Tls)
        );
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
        for other_form in [
            "Wednesday, 21-Oct-15 07:28:30 GMT",
            "Wed Oct 21 07:28:30 2015",
        ] {
            assert_eq!(
                parse_retry_after(other_form, now),
                Some(Duration::from_secs(30)),
                "{other_form}"
            );
        }
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX)),
            "too many digits is still a wait"
        );
        for refused in ["soon", "+40", "-5", "1.5", "", "4 0"] {
            assert_eq!(parse_retry_after(refused, now), None, "{refused:?}");
        }
    }
}
