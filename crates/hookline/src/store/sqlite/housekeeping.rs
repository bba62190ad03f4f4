//! Housekeeping on SQLite: gauges counted on a read connection (WAL: the writer is not
//! blocked), purge batches as one short job each on the writer thread, and freed pages given
//! back by paced `incremental_vacuum` steps when the file was created with
//! `auto_vacuum = INCREMENTAL` (every file hookline creates; see README for older ones).

use async_trait::async_trait;
use hookline_core::Timestamp;
use rusqlite::{params, Connection};
use std::path::Path;
use std::time::Duration;

use super::SqliteStore;
use crate::store::housekeeping::{before_cutoff, GONE_SUBSCRIPTIONS_WHERE};
use crate::store::{Housekeeping, Leftovers, PurgeBatch, PurgeRequest, StoreResult, StoreStats};

/// Free pages kept for reuse, as a share of the file: what a steady purge frees is taken again
/// by the next inserts, so giving it back and growing again would only cost I/O.
const FREE_SLACK_DIVISOR: i64 = 10;

#[async_trait]
impl Housekeeping for SqliteStore {
    async fn sample_stats(&self, now: Timestamp, _max_age: Duration) -> StoreResult<StoreStats> {
        let path = self.path.clone();
        self.read(move |c| {
            let mut stats = count(c, now)?;
            stats.size_bytes = size_on_disk(&path);
            Ok(stats)
        })
        .await
    }

    async fn purge_batch(&self, req: &PurgeRequest) -> StoreResult<PurgeBatch> {
        let req = *req;
        self.write(move |c| Ok(purge(c, &req)?)).await
    }

    async fn reclaim_space(&self, max_pages: u32) -> StoreResult<u64> {
        self.write(move |c| Ok(reclaim(c, max_pages)?)).await
    }

    async fn purge_leftovers(&self, cutoff: Timestamp, limit: usize) -> StoreResult<Leftovers> {
        let (cutoff, limit) = (cutoff.as_micros(), limit as i64);
        self.write(move |c| Ok(leftovers(c, cutoff, limit)?)).await
    }
}

fn leftovers(c: &mut Connection, cutoff: i64, limit: i64) -> rusqlite::Result<Leftovers> {
    let tx = c.transaction()?;
    let gone = GONE_SUBSCRIPTIONS_WHERE.replace("{cutoff}", "?1");
    let ids: Vec<String> = tx
        .prepare(&format!(
            "SELECT s.id FROM subscriptions s WHERE {gone} LIMIT ?2"
        ))?
        .query_map(params![cutoff, limit], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut subscriptions = 0;
    for id in &ids {
        tx.execute(
            "DELETE FROM routing_tokens WHERE subscription_id = ?1",
            [id],
        )?;
        subscriptions += tx.execute("DELETE FROM subscriptions WHERE id = ?1", [id])? as u64;
    }
    let recoveries = tx.execute(
        "DELETE FROM recoveries WHERE id IN (SELECT id FROM recoveries \
             WHERE status = 'completed' AND updated_at < ?1 LIMIT ?2)",
        params![cutoff, limit],
    )? as u64;
    tx.commit()?;
    Ok(Leftovers {
        subscriptions,
        recoveries,
        busy: false,
    })
}

fn count(c: &Connection, now: Timestamp) -> rusqlite::Result<StoreStats> {
    let now_us = now.as_micros();
    let (pending, retrying, due, oldest): (i64, i64, i64, Option<i64>) = c.query_row(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE attempts > 0), \
                COUNT(*) FILTER (WHERE next_attempt_at <= ?1), \
                MIN(next_attempt_at) FILTER (WHERE next_attempt_at <= ?1) \
         FROM deliveries WHERE state = 'pending'",
        [now_us],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let (active, inactive): (i64, i64) = c.query_row(
        "SELECT COUNT(*) FILTER (WHERE is_active), COUNT(*) FILTER (WHERE NOT is_active) \
         FROM subscriptions WHERE deleted_at IS NULL",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(StoreStats {
        sampled_at: now,
        pending: pending as u64,
        retrying: retrying as u64,
        due: due as u64,
        oldest_due_age: oldest.map_or(Duration::ZERO, |at| now.since(Timestamp::from_micros(at))),
        subscriptions_active: active as u64,
        subscriptions_inactive: inactive as u64,
        size_bytes: 0,
    })
}

/// The database file and its WAL as the file system sees them.
fn size_on_disk(path: &Path) -> u64 {
    let wal = format!("{}-wal", path.display());
    [path.to_owned(), wal.into()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn purge(c: &mut Connection, req: &PurgeRequest) -> rusqlite::Result<PurgeBatch> {
    let tx = c.transaction()?;
    let cutoff = req.cutoff.as_micros();
    let rows: Vec<(i64, i64)> = tx
        .prepare_cached("SELECT seq, accepted_at FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?
        .query_map(params![req.after_seq, req.limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let (old, finished) = before_cutoff(&rows, cutoff, req.limit);
    let mut batch = PurgeBatch {
        finished,
        next_after_seq: rows[..old].last().map_or(req.after_seq, |r| r.0),
        ..PurgeBatch::default()
    };
    {
        // Index-backed, one event at a time: deliveries by `deliveries_event`, attempts by
        // their `(delivery_id, attempt)` key, events by `seq`.
        let mut keep = tx.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = ?1 \
                 AND (state = 'pending' OR updated_at >= ?2))",
        )?;
        let mut attempts = tx.prepare_cached(
            "DELETE FROM delivery_attempts WHERE delivery_id IN \
                 (SELECT id FROM deliveries WHERE event_seq = ?1)",
        )?;
        let mut deliveries = tx.prepare_cached("DELETE FROM deliveries WHERE event_seq = ?1")?;
        let mut events = tx.prepare_cached("DELETE FROM events WHERE seq = ?1")?;
        for (seq, _) in &rows[..old] {
            if keep.query_row(params![seq, cutoff], |r| r.get::<_, bool>(0))? {
                continue;
            }
            batch.attempts += attempts.execute([seq])? as u64;
            batch.deliveries += deliveries.execute([seq])? as u64;
            batch.events += events.execute([seq])? as u64;
        }
    }
    tx.commit()?;
    Ok(batch)
}

fn reclaim(c: &mut Connection, max_pages: u32) -> rusqlite::Result<u64> {
    let pragma = |name: &str| c.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0));
    // 2 = INCREMENTAL; a file created before hookline set it has 0 (NONE): its free pages are
    // reused by later inserts but never given back.
    if pragma("auto_vacuum")? != 2 {
        return Ok(0);
    }
    let (free, pages) = (pragma("freelist_count")?, pragma("page_count")?);
    let excess = free - pages / FREE_SLACK_DIVISOR;
    if excess <= 0 {
        return Ok(0);
    }
    let step = excess.min(i64::from(max_pages));
    // The pragma frees one page per step of its statement: run it to the end.
    let mut vacuum = c.prepare(&format!("PRAGMA incremental_vacuum({step})"))?;
    let mut rows = vacuum.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    drop(vacuum);
    Ok((free - pragma("freelist_count")?).max(0) as u64)
}
