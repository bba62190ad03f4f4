//! The retry schedule: how long to wait after each failed attempt, and when to give up.

use crate::time::{parse_duration, InvalidDuration};
use rand::Rng;
use std::time::Duration;

/// Delays between attempts. `delays[n]` is the wait after failed attempt `n + 1`; once they are
/// used up the delivery fails for good. Each delay is spread by ±`jitter` so a receiver that
/// comes back is not hit by every queued retry in the same instant.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: f64,
}

/// Linq documents "10 retries over ~25 minutes with exponential backoff": these add up to 1515 s.
pub const DEFAULT_DELAYS: &str = "5s,10s,20s,40s,80s,160s,300s,300s,300s,300s";
pub const DEFAULT_JITTER: f64 = 0.2;

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule::parse(DEFAULT_DELAYS, DEFAULT_JITTER).expect("default schedule parses")
    }
}

impl RetrySchedule {
    pub fn parse(list: &str, jitter: f64) -> Result<Self, InvalidDuration> {
        let delays = if list.trim().is_empty() {
            Vec::new()
        } else {
            list.split(',')
                .map(parse_duration)
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(RetrySchedule {
            delays,
            jitter: jitter.clamp(0.0, 1.0),
        })
    }

    /// The first attempt plus one per delay.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The wait after failed attempt `attempt` (1-based), or `None` when no retry is left.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        self.delay_after_with(attempt, rand::thread_rng().gen_range(-1.0..=1.0))
    }

    /// As [`delay_after`](Self::delay_after) with the jitter draw given (`-1.0..=1.0`), for tests.
    pub fn delay_after_with(&self, attempt: u32, unit: f64) -> Option<Duration> {
        let base = *self.delays.get(attempt.checked_sub(1)? as usize)?;
        Some(base.mul_f64(1.0 + self.jitter * unit.clamp(-1.0, 1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_ten_retries_over_about_25_minutes() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 11);
        let total: Duration = s.delays().iter().sum();
        assert_eq!(total, Duration::from_secs(1515));
        assert_eq!(s.delay_after_with(1, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(s.delay_after_with(10, 0.0), Some(Duration::from_secs(300)));
        assert_eq!(s.delay_after_with(11, 0.0), None);
        assert_eq!(s.delay_after_with(0, 0.0), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let s = RetrySchedule::default();
        assert_eq!(s.delay_after_with(1, 1.0), Some(Duration::from_secs(6)));
        assert_eq!(s.delay_after_with(1, -1.0), Some(Duration::from_secs(4)));
        for _ in 0..100 {
            let d = s.delay_after(2).unwrap();
            assert!(d >= Duration::from_secs(8) && d <= Duration::from_secs(12));
        }
    }

    #[test]
    fn custom_and_empty_schedules() {
        let s = RetrySchedule::parse("100ms, 2s", 0.0).unwrap();
        assert_eq!(s.max_attempts(), 3);
        assert_eq!(s.delay_after(2), Some(Duration::from_secs(2)));
        assert_eq!(RetrySchedule::parse("", 0.0).unwrap().max_attempts(), 1);
        assert!(RetrySchedule::parse("5s,oops", 0.0).is_err());
    }
}
