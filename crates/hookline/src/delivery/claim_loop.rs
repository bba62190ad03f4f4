//! The claim loop: leases due deliveries in batches (committed at once) and starts each with a
//! slot. It never waits on a receiver, and it claims no more than the slots it sees free and
//! the room each subscription has, so one query fills a batch instead of one row per query.

use hookline_core::Timestamp;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::dispatcher::Dispatcher;
use super::slots::Slots;
use crate::config::Settings;
use crate::store::{Capacity, ClaimRequest, Claimed, DynStore, StoreResult};

/// Most deliveries claimed in one query.
const CLAIM_BATCH: u32 = 256;
/// When fewer slots than this are free, the loop waits up to [`BATCH_WINDOW`] for more.
fn low_water(settings: &Settings) -> usize {
    (settings.max_in_flight / 8).clamp(1, 64)
}
const BATCH_WINDOW: Duration = Duration::from_millis(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

pub(super) struct ClaimLoop {
    pub dispatcher: Dispatcher,
    pub store: DynStore,
    pub settings: Arc<Settings>,
    /// Woken by new work: a publish that queued deliveries, a scheduled retry, another node.
    pub wake: Arc<Notify>,
    pub slots: Slots,
    pub cancel: CancellationToken,
}

impl ClaimLoop {
    /// Claims until `cancel`; what was started keeps running (the dispatcher drains it).
    pub async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        while !self.cancel.is_cancelled() {
            if self.wait_for_room().await.is_break() {
                break;
            }
            let free = self.slots.free();
            if free == 0 {
                continue;
            }
            let now = Timestamp::now();
            let claimed = match self.claim(now, free).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed; retrying");
                    if self.pause(backoff).await.is_break() {
                        break;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = FIRST_BACKOFF;
            if self.start_and_wait(claimed, now).await.is_break() {
                break;
            }
        }
    }

    /// Claiming one delivery per finished one costs a transaction each: when few slots are free,
    /// wait until a batch's worth is (or briefly, when the receivers are slow).
    async fn wait_for_room(&self) -> ControlFlow<()> {
        let low_water = low_water(&self.settings);
        if self.slots.free() >= low_water {
            return Continue(());
        }
        tokio::select! {
            _ = self.slots.freed() => {}
            _ = self.cancel.cancelled() => return Break(()),
        }
        if self.slots.free() < low_water {
            return self.pause(BATCH_WINDOW).await;
        }
        Continue(())
    }

    async fn claim(&self, now: Timestamp, free: usize) -> StoreResult<Claimed> {
        let in_flight = self.slots.in_flight();
        let request = ClaimRequest {
            now,
            lease_until: now + self.settings.lease,
            limit: (free as u32).min(CLAIM_BATCH),
            capacity: Capacity {
                per_subscription_cap: self.settings.max_in_flight_per_subscription,
                in_flight: &in_flight,
            },
        };
        self.store.claim_due(&request).await
    }

    /// Starts what was claimed, then decides when to claim again: at once when more is due,
    /// else on a wake-up, a freed slot (if work was held back), or the next due time.
    async fn start_and_wait(&self, claimed: Claimed, claimed_at: Timestamp) -> ControlFlow<()> {
        let (more_due, held_back) = (claimed.more_due, claimed.held_back);
        let handed_out = !claimed.deliveries.is_empty();
        for delivery in claimed.deliveries {
            // Usually granted at once; waits if a publish hand-off took the room since the
            // claim's snapshot of `in_flight`.
            let reservation = self.slots.reserve(&delivery.subscription_id);
            self.dispatcher.spawn_attempt(delivery, reservation);
        }
        if more_due {
            // Only cancellations, or rows another node is committing right now: a moment's
            // pause, not a spin.
            return match handed_out {
                true => Continue(()),
                false => self.pause(Duration::from_millis(1)).await,
            };
        }
        let sleep = self.until_next_due(claimed_at).await;
        tokio::select! {
            _ = self.wake.notified() => Continue(()),
            // A full subscription may have room now. Let a few more of its deliveries finish
            // so the claim takes a batch, not one row per transaction.
            _ = self.slots.freed(), if held_back => self.pause(BATCH_WINDOW).await,
            _ = tokio::time::sleep(sleep) => Continue(()),
            _ = self.cancel.cancelled() => Break(()),
        }
    }

    /// How long to sleep when nothing wakes us: until the earliest delivery due after the claim
    /// at `claimed_at`, at most the poll interval.
    async fn until_next_due(&self, claimed_at: Timestamp) -> Duration {
        let poll = self.settings.poll_interval;
        match self.store.next_due_after(claimed_at).await {
            Ok(Some(at)) => {
                let now = Timestamp::now();
                if at <= now {
                    Duration::from_millis(1)
                } else {
                    at.since(now).min(poll)
                }
            }
            _ => poll,
        }
    }

    /// Sleeps `d`, or stops early on cancellation.
    async fn pause(&self, d: Duration) -> ControlFlow<()> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Continue(()),
            _ = self.cancel.cancelled() => Break(()),
        }
    }
}
