//! Time as the store keeps it (integer microseconds since the Unix epoch) and as the API shows it.

use chrono::{DateTime, SecondsFormat, Utc};
use std::time::Duration;

pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// RFC 3339 in UTC with microseconds, e.g. `2026-02-05T19:31:13.736444Z`.
pub fn rfc3339(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc).timestamp_micros())
}

pub fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a duration (use a number with ms, s, m or h, e.g. 500ms or 10s)")]
pub struct InvalidDuration(pub String);

/// Durations as operators write them: `250ms`, `10s`, `5m`, `1h`.
pub fn parse_duration(raw: &str) -> Result<Duration, InvalidDuration> {
    let s = raw.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| InvalidDuration(raw.to_owned()))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| InvalidDuration(raw.to_owned()))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(InvalidDuration(raw.to_owned())),
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        for bad in ["", "10", "s", "1.5s", "-1s", "10 days"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_roundtrip() {
        let t = 1_770_319_873_736_444;
        assert_eq!(rfc3339(t), "2026-02-05T19:31:13.736444Z");
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
    }
}
