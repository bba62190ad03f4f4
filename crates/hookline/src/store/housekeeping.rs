//! Housekeeping: what monitoring reads from the store (queue and subscription gauges, the
//! store's size) and what retention removes from it. Kept apart from the hot-path aggregates:
//! nothing here is on the way of a publish, a claim or an outcome, and every method is built
//! so that it cannot stall them (short transactions, index-backed, bounded batches).

use async_trait::async_trait;
use hookline_core::Timestamp;
use std::time::Duration;

use super::StoreResult;

/// The queue and subscription gauges as of `sampled_at`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreStats {
    /// When these were counted (this node's clock).
    pub sampled_at: Timestamp,
    /// Deliveries not final yet: queued, in flight, or waiting for a retry.
    pub pending: u64,
    /// Pending deliveries attempted at least once (those in flight included).
    pub retrying: u64,
    /// Pending deliveries due at `sampled_at`.
    pub due: u64,
    /// How long the oldest due delivery had been due at `sampled_at`.
    pub oldest_due_age: Duration,
    pub subscriptions_active: u64,
    pub subscriptions_inactive: u64,
    /// Bytes on disk: the SQLite file and its WAL, or PostgreSQL's `pg_database_size`.
    pub size_bytes: u64,
}

/// One purge batch: events accepted before `cutoff` whose deliveries are all final and none of
/// them updated since `cutoff`, scanning events in `seq` order after `after_seq`.
#[derive(Debug, Clone, Copy)]
pub struct PurgeRequest {
    pub cutoff: Timestamp,
    pub after_seq: i64,
    /// Events looked at in this batch (removed or kept).
    pub limit: usize,
}

/// What one purge batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeBatch {
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
    /// Where the next batch of this pass starts.
    pub next_after_seq: i64,
    /// The scan reached events accepted after the cutoff (or the end): the pass is over.
    pub finished: bool,
    /// Another node is purging (PostgreSQL): this one leaves the pass to it.
    pub busy: bool,
}

/// What one [`Housekeeping::purge_leftovers`] call removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub subscriptions: u64,
    pub recoveries: u64,
    /// Another node is purging (PostgreSQL).
    pub busy: bool,
}

/// Subscriptions (`s`) deleted before `{cutoff}` (each backend's placeholder) that no delivery
/// or recovery names any more: nothing can show or use them.
pub(crate) const GONE_SUBSCRIPTIONS_WHERE: &str =
    "s.deleted_at IS NOT NULL AND s.deleted_at < {cutoff} \
     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.subscription_id = s.id) \
     AND NOT EXISTS (SELECT 1 FROM recoveries r WHERE r.subscription_id = s.id)";

#[async_trait]
pub trait Housekeeping: Send + Sync + 'static {
    /// The gauges. SQLite counts them at once. PostgreSQL shares one sample between all nodes
    /// (a row in `queue_stats`): a node recounts only when the sample is older than `max_age`,
    /// and only one node at a time (an advisory lock); the others read the row.
    async fn sample_stats(&self, now: Timestamp, max_age: Duration) -> StoreResult<StoreStats>;
    /// Removes one batch of finished events with their deliveries and attempts, in one short
    /// transaction. Pending deliveries are never removed, whatever their age. On PostgreSQL only
    /// one node purges at a time (a transaction-scoped advisory lock; the others get `busy`).
    async fn purge_batch(&self, req: &PurgeRequest) -> StoreResult<PurgeBatch>;
    /// Returns up to `max_pages` free pages to the file system beyond a slack kept for reuse
    /// (SQLite with `auto_vacuum = INCREMENTAL`); the number returned. PostgreSQL's autovacuum
    /// makes freed space reusable by itself: nothing to do there.
    async fn reclaim_space(&self, max_pages: u32) -> StoreResult<u64>;
    /// Removes, in one short transaction, up to `limit` subscriptions deleted before `cutoff`
    /// that no delivery or recovery names any more (with their routing tokens), and up to
    /// `limit` recoveries completed before `cutoff`. Without it both only grow, and every
    /// partner-wide log page probes every subscription the partner ever had.
    async fn purge_leftovers(&self, cutoff: Timestamp, limit: usize) -> StoreResult<Leftovers>;
}

/// How many events of a candidate list may go: the prefix accepted before `cutoff`, and
/// whether the scan reached the cutoff (or the end of the table) with it.
pub(crate) fn before_cutoff(rows: &[(i64, i64)], cutoff: i64, limit: usize) -> (usize, bool) {
    let old = rows.iter().take_while(|(_, at)| *at < cutoff).count();
    (old, old < rows.len() || rows.len() < limit)
}

#[cfg(test)]
mod tests {
    use super::before_cutoff;

    #[test]
    fn the_scan_stops_at_the_first_event_past_the_cutoff() {
        assert_eq!(before_cutoff(&[(1, 5), (2, 6), (3, 20)], 10, 3), (2, true));
        assert_eq!(before_cutoff(&[(1, 5), (2, 6), (3, 7)], 10, 3), (3, false));
        assert_eq!(before_cutoff(&[(1, 5)], 10, 3), (1, true));
        assert_eq!(before_cutoff(&[], 10, 3), (0, true));
    }
}
