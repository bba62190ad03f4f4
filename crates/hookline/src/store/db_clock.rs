//! PostgreSQL's clock as every node sees it. Leases and due times are compared across nodes, so
//! they are written on the database's clock: a node whose own clock runs ahead would otherwise
//! take over deliveries whose lease has not expired yet, and send them twice.

use super::StoreResult;
use hookline_core::time::now_micros;
use sqlx::PgPool;
use std::sync::atomic::{AtomicI64, Ordering};

/// How long a measured offset is trusted before it is measured again (clocks drift; NTP steps).
const REFRESH_MICROS: i64 = 10_000_000;

#[derive(Default)]
pub struct DbClock {
    /// Database time minus this node's time, in microseconds.
    offset: AtomicI64,
    /// This node's time of the last measurement; 0 = never measured.
    measured_at: AtomicI64,
}

impl DbClock {
    /// What to add to this node's time to read the database's clock; measured again when the
    /// last measurement is old. A failed re-measurement keeps the last offset; with no
    /// measurement at all this fails, so the node claims nothing on its own clock.
    pub async fn offset(&self, pool: &PgPool) -> StoreResult<i64> {
        let now = now_micros();
        let measured_at = self.measured_at.load(Ordering::Relaxed);
        if now - measured_at > REFRESH_MICROS {
            match measure(pool).await {
                Ok(offset) => {
                    self.offset.store(offset, Ordering::Relaxed);
                    self.measured_at.store(now, Ordering::Relaxed);
                }
                Err(e) if measured_at == 0 => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, "measuring PostgreSQL's clock failed; keeping the last offset")
                }
            }
        }
        Ok(self.offset.load(Ordering::Relaxed))
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
    fn offset_is_taken_at_the_middle_of_the_round_trip() {
        assert_eq!(offset_from(1_000, 1_500, 2_000), 0);
        assert_eq!(offset_from(1_000, 61_001_500, 2_000), 61_000_000);
        assert_eq!(offset_from(1_000, 500, 2_000), -1_000);
    }
}
