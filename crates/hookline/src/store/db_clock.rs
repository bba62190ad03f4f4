//! PostgreSQL's clock as every node sees it. Leases and due times are compared across nodes, so
//! they are written on the database's clock: a node whose own clock runs ahead would otherwise
//! take over deliveries whose lease has not expired yet, and send them twice.

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
    /// last measurement is old. A failed measurement keeps the last offset.
    pub async fn offset(&self, pool: &PgPool) -> i64 {
        let now = now_micros();
        if now - self.measured_at.load(Ordering::Relaxed) > REFRESH_MICROS {
            match measure(pool).await {
                Ok(offset) => {
                    self.offset.store(offset, Ordering::Relaxed);
                    self.measured_at.store(now, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "measuring PostgreSQL's clock failed"),
            }
        }
        self.offset.load(Ordering::Relaxed)
    }
}

async fn measure(pool: &PgPool) -> sqlx::Result<i64> {
    let before = now_micros();
    let db: i64 =
        sqlx::query_scalar("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint")
            .fetch_one(pool)
            .await?;
    let after = now_micros();
    // The database read its clock somewhere in the round trip; the middle is the best guess.
    Ok(offset_from(before, db, after))
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
