//! PostgreSQL's clock as every node sees it. Leases and due times are compared across nodes, so
//! they are written on the database's clock: a node whose own clock runs ahead would otherwise
//! take over deliveries whose lease has not expired yet, and send them twice.

use crate::store::StoreResult;
use hookline_core::time::now_micros;
use hookline_core::Timestamp;
use sqlx::PgPool;
use std::sync::Mutex;
use std::time::Instant;

/// How long a measured offset is trusted before it is measured again (clocks drift).
const REFRESH_MICROS: i64 = 10_000_000;
/// A disagreement this large between this node's wall clock and its monotonic clock since the
/// last measurement means the wall clock was stepped (NTP, an operator): measure again at once.
const STEP_MICROS: i64 = 100_000;

#[derive(Default)]
pub struct DbClock {
    last: Mutex<Option<Measurement>>,
}

#[derive(Clone, Copy)]
struct Measurement {
    /// Database time minus this node's time, in microseconds.
    offset: i64,
    /// This node's wall-clock and monotonic time when it was taken.
    node_micros: i64,
    at: Instant,
}

impl Measurement {
    fn still_good(&self, now: i64) -> bool {
        let elapsed = self.at.elapsed().as_micros() as i64;
        elapsed < REFRESH_MICROS && ((now - self.node_micros) - elapsed).abs() < STEP_MICROS
    }
}

impl DbClock {
    /// What to add to this node's time to read the database's clock; measured again when the
    /// last measurement is old or this node's clock was stepped since. A failed re-measurement
    /// keeps the last offset; with no measurement at all this fails, so the node claims nothing
    /// on its own clock.
    pub async fn offset(&self, pool: &PgPool) -> StoreResult<i64> {
        let last = *self.last.lock().expect("not poisoned");
        if let Some(m) = last.filter(|m| m.still_good(now_micros())) {
            return Ok(m.offset);
        }
        match measure(pool).await {
            Ok(offset) => {
                *self.last.lock().expect("not poisoned") = Some(Measurement {
                    offset,
                    node_micros: now_micros(),
                    at: Instant::now(),
                });
                Ok(offset)
            }
            Err(e) => match last {
                Some(m) => {
                    tracing::warn!(error = %e, "measuring PostgreSQL's clock failed; keeping the last offset");
                    Ok(m.offset)
                }
                None => Err(e.into()),
            },
        }
    }
}

/// Converts between this node's clock and the database's, for one operation: times from the
/// API and the claim loop go in with [`db_micros`](Self::db_micros), due times come back with
/// [`node_time`](Self::node_time).
#[derive(Debug, Clone, Copy)]
pub struct DbTime {
    /// Database time minus this node's time, in microseconds.
    shift: i64,
}

impl DbTime {
    pub fn db_micros(self, t: Timestamp) -> i64 {
        t.as_micros() + self.shift
    }

    pub fn node_time(self, micros: i64) -> Timestamp {
        Timestamp::from_micros(micros - self.shift)
    }
}

impl DbClock {
    pub async fn time(&self, pool: &PgPool) -> StoreResult<DbTime> {
        Ok(DbTime {
            shift: self.offset(pool).await?,
        })
    }
}

/// Samples per measurement; the one with the shortest round trip is kept.
const SAMPLES: usize = 3;

async fn measure(pool: &PgPool) -> sqlx::Result<i64> {
    // Timed on a connection already in hand: waiting for one would widen the window in which
    // the database read its clock.
    let mut conn = pool.acquire().await?;
    let mut best: Option<(i64, i64)> = None;
    for _ in 0..SAMPLES {
        let before = now_micros();
        let db: i64 =
            sqlx::query_scalar("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint")
                .fetch_one(&mut *conn)
                .await?;
        let after = now_micros();
        let round_trip = after - before;
        if best.is_none_or(|(rtt, _)| round_trip < rtt) {
            best = Some((round_trip, offset_from(before, db, after)));
        }
    }
    Ok(best.expect("at least one sample").1)
}

fn offset_from(before: i64, db: i64, after: i64) -> i64 {
    db - (before + (after - before) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stepped_or_old_measurement_is_taken_again() {
        let now = now_micros();
        let fresh = Measurement {
            offset: 0,
            node_micros: now,
            at: Instant::now(),
        };
        assert!(fresh.still_good(now));
        assert!(
            !fresh.still_good(now - 5_000_000),
            "wall clock stepped back"
        );
        assert!(
            !fresh.still_good(now + 5_000_000),
            "wall clock stepped forward"
        );
        let old = Measurement {
            at: Instant::now() - std::time::Duration::from_secs(11),
            node_micros: now - 11_000_000,
            ..fresh
        };
        assert!(!old.still_good(now));
    }

    #[test]
    fn offset_is_taken_at_the_middle_of_the_round_trip() {
        assert_eq!(offset_from(1_000, 1_500, 2_000), 0);
        assert_eq!(offset_from(1_000, 61_001_500, 2_000), 61_000_000);
        assert_eq!(offset_from(1_000, 500, 2_000), -1_000);
    }
}
