//! Redelivery, the same on every backend: a single retry (what it may do to which delivery),
//! and recoveries, bulk re-queues of failed deliveries worked off a chunk at a time.
//!
//! A re-queued delivery becomes `pending`, due now, with `attempt_base` set to its attempt
//! count: its attempt numbers keep counting up (they fence outcomes and key the attempt log)
//! while its retry schedule starts again from the first delay. Its event, and so its
//! `event_id` (`webhook-id`), is unchanged, so receivers deduplicate it like any retry.
//!
//! A recovery walks `deliveries_log` in (subscription, created_at, id) order from a cursor it
//! keeps in its row, so each chunk is a few index range reads, a delivery is re-queued by a
//! recovery at most once (one that fails again is behind the cursor), and a runner that dies
//! mid-way resumes where the last committed chunk ended.

use hookline_core::{PartnerId, RecoveryId, SubscriptionId, Timestamp};
use std::future::Future;

use super::StoreResult;

/// What a retry of one delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Due now, with a fresh retry schedule.
    Requeued,
    /// No such delivery for this partner and subscription.
    NotFound,
    /// It is pending or retrying already.
    InProgress,
    /// Its subscription is inactive: a retry would be cancelled at once.
    Inactive,
}

/// What a retry found, from the delivery's stored state and whether its subscription is live:
/// `Ok(())` to re-queue it.
pub fn retry_allowed(found: Option<(&str, bool)>) -> Result<(), RetryOutcome> {
    match found {
        None => Err(RetryOutcome::NotFound),
        Some(("pending", _)) => Err(RetryOutcome::InProgress),
        Some((_, false)) => Err(RetryOutcome::Inactive),
        Some(_) => Ok(()),
    }
}

#[derive(Debug, Clone)]
pub struct NewRecovery {
    pub id: RecoveryId,
    pub partner_id: PartnerId,
    /// `None`: every active subscription of the partner.
    pub subscription_id: Option<SubscriptionId>,
    /// Deliveries created at or after.
    pub since: Timestamp,
    /// Created before; `None`: no end.
    pub until: Option<Timestamp>,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryStatus {
    Running,
    Completed,
}

impl RecoveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryStatus::Running => "running",
            RecoveryStatus::Completed => "completed",
        }
    }

    pub fn from_stored(s: &str) -> Self {
        if s == "running" {
            RecoveryStatus::Running
        } else {
            RecoveryStatus::Completed
        }
    }
}

#[derive(Debug, Clone)]
pub struct Recovery {
    pub id: RecoveryId,
    pub partner_id: PartnerId,
    pub subscription_id: Option<SubscriptionId>,
    pub status: RecoveryStatus,
    /// Failed deliveries in the window when the recovery was made.
    pub total: u64,
    /// Re-queued so far. Deliveries retried by other means meanwhile are skipped, and ones
    /// that failed in the window after the recovery was made may be included, so a completed
    /// recovery's count can differ from `total` by those.
    pub queued: u64,
    pub created_at: Timestamp,
}

pub const RECOVERY_COLUMNS: &str =
    "id, partner_id, subscription_id, status, total, queued, created_at";

#[derive(sqlx::FromRow)]
pub struct RecoveryRow {
    pub id: String,
    pub partner_id: String,
    pub subscription_id: Option<String>,
    pub status: String,
    pub total: i64,
    pub queued: i64,
    pub created_at: i64,
}

impl From<RecoveryRow> for Recovery {
    fn from(r: RecoveryRow) -> Self {
        Recovery {
            id: RecoveryId::from_stored(r.id),
            partner_id: PartnerId::from_stored(r.partner_id),
            subscription_id: r.subscription_id.map(SubscriptionId::from_stored),
            status: RecoveryStatus::from_stored(&r.status),
            total: r.total as u64,
            queued: r.queued as u64,
            created_at: Timestamp::from_micros(r.created_at),
        }
    }
}

/// The window's end as stored: `until` (exclusive), or no end.
pub fn until_column(until: Option<Timestamp>) -> i64 {
    until.map_or(i64::MAX, Timestamp::as_micros)
}

/// A running recovery as the runner advances it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Progress {
    pub id: String,
    pub partner_id: String,
    pub subscription_id: Option<String>,
    pub since_at: i64,
    pub until_at: i64,
    pub queued: i64,
    /// The subscription the cursor is in ('' before the first).
    pub cursor_subscription: String,
    pub cursor_created_at: i64,
    pub cursor_id: i64,
}

pub const PROGRESS_COLUMNS: &str = "id, partner_id, subscription_id, since_at, until_at, \
     queued, cursor_subscription, cursor_created_at, cursor_id";

/// Past every key: the cursor of a subscription that has been walked to its end.
const EXHAUSTED: i64 = i64::MAX;

/// A backend's SQL for advancing recoveries, all in one transaction.
pub(crate) trait RecoverySteps {
    /// Running recoveries, oldest first; on PostgreSQL locked (skipping those another node
    /// is advancing).
    fn running(&mut self, limit: usize) -> impl Future<Output = StoreResult<Vec<Progress>>>;
    /// The recovery's active subscriptions with ids at or after `from`, in id order.
    fn live_subscriptions(
        &mut self,
        p: &Progress,
        from: &str,
    ) -> impl Future<Output = StoreResult<Vec<String>>>;
    /// Up to `limit` `(created_at, id)` of the subscription's failed deliveries created in the
    /// window, strictly after `after`, oldest first.
    fn failed_keys(
        &mut self,
        subscription: &str,
        p: &Progress,
        after: (i64, i64),
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<(i64, i64)>>>;
    /// Re-queues those still failed; how many were.
    fn requeue(&mut self, ids: &[i64], now: i64) -> impl Future<Output = StoreResult<u64>>;
    fn save(&mut self, p: &Progress, done: bool, now: i64)
        -> impl Future<Output = StoreResult<()>>;
    fn commit(self) -> impl Future<Output = StoreResult<()>>;
}

/// Re-queues up to `budget` deliveries of running recoveries, oldest recovery first, each taking
/// an even share of what the ones before it left (so one partner's recovery of a million
/// deliveries does not hold every other recovery back until it ends), and marks those walked to
/// their end completed. Returns how many were re-queued.
pub(crate) async fn advance<S: RecoverySteps>(
    mut steps: S,
    now: i64,
    budget: usize,
) -> StoreResult<u64> {
    let mut unspent = budget;
    let mut requeued = 0;
    let running = steps.running(8).await?;
    let count = running.len();
    for (i, mut p) in running.into_iter().enumerate() {
        if unspent == 0 {
            break;
        }
        let share = unspent.div_ceil(count - i);
        let mut left = share;
        let subs = steps
            .live_subscriptions(&p, &p.cursor_subscription.clone())
            .await?;
        let mut done = true;
        for sub in subs {
            let after = if sub == p.cursor_subscription {
                (p.cursor_created_at, p.cursor_id)
            } else {
                (p.since_at, 0)
            };
            let keys = steps.failed_keys(&sub, &p, after, left).await?;
            let ids: Vec<i64> = keys.iter().map(|k| k.1).collect();
            let n = steps.requeue(&ids, now).await?;
            requeued += n;
            p.queued += n as i64;
            left -= keys.len();
            p.cursor_subscription = sub;
            (p.cursor_created_at, p.cursor_id) = match keys.last() {
                Some(&last) if left == 0 => last,
                _ => (EXHAUSTED, EXHAUSTED),
            };
            if left == 0 {
                // Out of budget: whether this subscription had more is the next chunk's question.
                done = false;
                break;
            }
        }
        steps.save(&p, done, now).await?;
        unspent -= share - left;
    }
    steps.commit().await?;
    Ok(requeued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_needs_a_finished_delivery_of_a_live_subscription() {
        assert_eq!(retry_allowed(None), Err(RetryOutcome::NotFound));
        assert_eq!(
            retry_allowed(Some(("pending", true))),
            Err(RetryOutcome::InProgress)
        );
        assert_eq!(
            retry_allowed(Some(("failed", false))),
            Err(RetryOutcome::Inactive)
        );
        for state in ["failed", "succeeded", "cancelled"] {
            assert_eq!(retry_allowed(Some((state, true))), Ok(()));
        }
    }
}
