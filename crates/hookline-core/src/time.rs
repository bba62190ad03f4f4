//! Time as the store keeps it (integer microseconds since the Unix epoch) and as the API shows it.

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A point in time, in microseconds since the Unix epoch: the one timestamp type of the domain
/// (the store keeps the integer, the API shows RFC 3339). Plain integers stay inside SQL.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    pub fn now() -> Self {
        Timestamp(now_micros())
    }

    pub fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        parse_rfc3339(s).map(Timestamp)
    }

    /// A time a request names (a filter, a window): strictly RFC 3339's `date-time`, see
    /// [`parse_date_time`].
    pub fn parse_date_time(s: &str) -> Option<Self> {
        parse_date_time(s).map(Timestamp)
    }

    pub fn rfc3339(self) -> String {
        rfc3339(self.0)
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(micros(d)))
    }

    pub fn saturating_sub(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(micros(d)))
    }

    /// How long after `earlier` this is; zero if it is not later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// An event's `created_at` as its publisher wrote it. Clients see this exact text in the
/// envelope (offset, precision and all), so it is kept verbatim rather than re-rendered from
/// [`Timestamp`]; parsing it on construction guarantees it is RFC 3339 and gives the instant.
#[derive(Clone, PartialEq, Eq)]
pub struct EventTime {
    text: String,
    at: Timestamp,
}

impl EventTime {
    /// `raw` as an event's `created_at`, or the message saying why it is not one (the server's
    /// and the CLI's check alike).
    pub fn parse_created_at(raw: &str) -> Result<Self, String> {
        Self::parse(raw).ok_or_else(|| {
            format!(
                "created_at '{}' is not an RFC 3339 time",
                crate::text::quote(raw)
            )
        })
    }

    /// `None` unless `raw` is RFC 3339.
    pub fn parse(raw: &str) -> Option<Self> {
        Timestamp::parse_rfc3339(raw).map(|at| EventTime {
            text: raw.to_owned(),
            at,
        })
    }

    /// The time `at`, rendered as the API renders times (UTC, microseconds).
    pub fn at(at: Timestamp) -> Self {
        EventTime {
            text: at.rfc3339(),
            at,
        }
    }

    /// Text that passed [`parse`](Self::parse) before it was stored.
    pub fn from_stored(text: String) -> Self {
        let at = Timestamp::parse_rfc3339(&text).unwrap_or_default();
        EventTime { text, at }
    }

    /// The verbatim text, as it goes into the envelope.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn timestamp(&self) -> Timestamp {
        self.at
    }
}

impl fmt::Debug for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where "now" comes from. Production reads the system clock; tests and the PostgreSQL store
/// (which runs on the database's clock) supply their own.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

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

/// Exactly RFC 3339 §5.6's `date-time`, which is what JSON Schema's `format: date-time` (and so
/// the OpenAPI document) promises: chrono's parser also takes a space for the `T` and a leap
/// second at any minute, which are refused here. A leap second is `23:59:60` in UTC, whatever
/// the offset.
pub fn parse_date_time(s: &str) -> Option<i64> {
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let utc = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
    let leap_second = utc.nanosecond() >= 1_000_000_000;
    if leap_second && (utc.hour(), utc.minute()) != (23, 59) {
        return None;
    }
    Some(utc.timestamp_micros())
}

pub fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a duration (use a number with ms, s, m, h or d, e.g. 500ms or 10s)")]
pub struct InvalidDuration(pub String);

/// Durations as operators write them: `250ms`, `10s`, `5m`, `1h`, `30d`.
pub fn parse_duration(raw: &str) -> Result<Duration, InvalidDuration> {
    let s = raw.trim();
    // Zero needs no unit: every unit reads it alike.
    if !s.is_empty() && s.bytes().all(|b| b == b'0') {
        return Ok(Duration::ZERO);
    }
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| InvalidDuration(raw.to_owned()))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| InvalidDuration(raw.to_owned()))?;
    let seconds = |per: u64| n.checked_mul(per).map(Duration::from_secs);
    let d = match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        _ => None,
    };
    // A count too large for its unit is as unreadable as a missing unit.
    d.ok_or_else(|| InvalidDuration(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5d").unwrap(), Duration::from_secs(432_000));
        assert!(parse_duration("999999999999999999d").is_err());
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration(" 00 ").unwrap(), Duration::ZERO);
        for bad in ["", "10", "s", "1.5s", "-1s", "10 days"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps() {
        let t = Timestamp::from_micros(1_000_000);
        assert_eq!(
            t + Duration::from_millis(1),
            Timestamp::from_micros(1_001_000)
        );
        assert_eq!(
            (t + Duration::from_secs(2)).since(t),
            Duration::from_secs(2)
        );
        assert_eq!(t.since(t + Duration::from_secs(2)), Duration::ZERO);
        assert_eq!(Timestamp::parse_rfc3339(&t.rfc3339()), Some(t));
    }

    #[test]
    fn event_times_keep_the_publishers_text() {
        let t = EventTime::parse("2026-02-05T20:31:13.7+01:00").unwrap();
        assert_eq!(t.as_str(), "2026-02-05T20:31:13.7+01:00");
        assert_eq!(t.timestamp(), Timestamp::from_micros(1_770_319_873_700_000));
        assert!(EventTime::parse("yesterday").is_none());
        let now = Timestamp::from_micros(1_770_319_873_736_444);
        assert_eq!(EventTime::at(now).as_str(), "2026-02-05T19:31:13.736444Z");
        assert_eq!(EventTime::from_stored(now.rfc3339()).timestamp(), now);
    }

    #[test]
    fn date_times_are_rfc3339_section_5_6_exactly() {
        let at = |s: &str| parse_date_time(s);
        assert_eq!(
            at("2026-02-05T19:31:13.736444Z"),
            Some(1_770_319_873_736_444)
        );
        assert_eq!(
            at("2026-02-05t20:31:13.736444+01:00"),
            Some(1_770_319_873_736_444)
        );
        assert_eq!(at("2026-02-05T19:31:13z"), at("2026-02-05T19:31:13-00:00"));
        // A leap second is 23:59:60 in UTC: one second past 23:59:59, like the next midnight.
        assert_eq!(at("2016-12-31T23:59:60Z"), at("2017-01-01T00:00:00Z"));
        assert!(at("2016-12-31T15:59:60.5-08:00").is_some());
        for refused in [
            "2026-02-05 19:31:13Z",
            "2026-02-05T19:31:60Z",
            "2026-02-05T19:31:13",
            "2026-02-05T19:31Z",
            "2026-02-05T19:31:13.Z",
            "2026-02-05T19:31:13+0100",
            "2026-02-30T19:31:13Z",
            " 2026-02-05T19:31:13Z",
            "",
        ] {
            assert_eq!(at(refused), None, "{refused:?}");
        }
        // Stored and publisher-written times keep chrono's wider reading.
        assert!(parse_rfc3339("2026-02-05 19:31:13Z").is_some());
    }

    #[test]
    fn rfc3339_roundtrip() {
        let t = 1_770_319_873_736_444;
        assert_eq!(rfc3339(t), "2026-02-05T19:31:13.736444Z");
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
    }
}
