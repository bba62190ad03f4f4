//! PostgreSQL backend and multi-node scale-out: several real `hookline` processes on one
//! database, one of them SIGKILLed mid-run; split API/worker roles; a PostgreSQL restart.

mod multi_node;
mod pg_restart;

use crate::common::*;
use crate::pg::{pg_pool, PgCluster};
use crate::process::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// Waits until the database holds exactly `n` deliveries, all succeeded. Only then is a
/// receiver's record final: a delivery whose outcome was lost (its node died, or the database
/// went away) goes out again once its lease expires, after the first arrival of every event.
async fn await_all_succeeded(pool: &sqlx::PgPool, n: usize, timeout: Duration) {
    eventually(
        "every delivery to be recorded succeeded",
        timeout,
        || async move {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
                    .fetch_all(pool)
                    .await
                    .ok()?;
            (rows == vec![("succeeded".to_owned(), n as i64)]).then_some(())
        },
    )
    .await;
}
