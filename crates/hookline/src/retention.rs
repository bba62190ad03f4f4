//! Retention: the background purge of finished events (`HOOKLINE_RETENTION`).
//!
//! Every `interval` a pass removes the events accepted more than `keep` ago whose deliveries
//! are all final (and none updated since), with their deliveries and attempts, in small
//! batches: each batch is one short transaction ([`PURGE_BATCH`] events), followed by a pause
//! of a few times its own duration, so the purge takes a bounded share of the store (on SQLite,
//! of its one writer) and publishes, claims and outcomes are never queued behind a long
//! delete. Then subscriptions deleted before the cutoff that nothing names any more (their
//! deliveries purged) and completed recoveries go, and space beyond a slack is given back in
//! paced steps (SQLite).
//! Pending deliveries are never touched, whatever their age. On PostgreSQL one node at a time
//! purges (the store's advisory lock); the others find it busy and skip the pass.

use hookline_core::Timestamp;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::config::RetentionSettings;
use crate::store::{DynStore, PurgeRequest};
use crate::telemetry;

/// Events looked at per batch.
pub const PURGE_BATCH: usize = 250;
/// The pause after a batch, as a multiple of the batch's duration: at most 1 / (1 + 3) of the
/// store's time goes to purging.
const PAUSE_FACTOR: u32 = 3;
/// Never less than this between batches.
const MIN_PAUSE: Duration = Duration::from_millis(5);
/// Deleted subscriptions (and completed recoveries) looked at per `purge_leftovers` step.
const LEFTOVER_BATCH: usize = 500;
/// Pages given back per `reclaim_space` step.
const RECLAIM_STEP: u32 = 256;

pub struct Purger {
    pub store: DynStore,
    pub settings: RetentionSettings,
}

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
    pub batches: u64,
    /// Deleted subscriptions nothing names any more, and completed recoveries, both older
    /// than the cutoff.
    pub subscriptions: u64,
    pub recoveries: u64,
}

impl Purger {
    /// Purges every `interval` until `cancel`. With retention off it only waits for `cancel`.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let Some(keep) = self.settings.keep else {
            cancel.cancelled().await;
            return Ok(());
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.settings.interval) => {}
            }
            let pass = self
                .pass(Timestamp::now().saturating_sub(keep), &cancel)
                .await;
            if pass.events + pass.subscriptions + pass.recoveries > 0 {
                tracing::info!(
                    events = pass.events,
                    deliveries = pass.deliveries,
                    attempts = pass.attempts,
                    batches = pass.batches,
                    deleted_subscriptions = pass.subscriptions,
                    completed_recoveries = pass.recoveries,
                    "retention: purged finished events"
                );
            }
        }
    }

    /// One pass over the events accepted before `cutoff`, batch by batch, then the space.
    pub async fn pass(&self, cutoff: Timestamp, cancel: &CancellationToken) -> Pass {
        let mut total = Pass::default();
        let mut after_seq = 0;
        loop {
            let started = Instant::now();
            let req = PurgeRequest {
                cutoff,
                after_seq,
                limit: PURGE_BATCH,
            };
            let batch = match self.store.purge_batch(&req).await {
                Ok(batch) => batch,
                Err(e) => {
                    telemetry::store_error("purge");
                    tracing::warn!(error = %e, "retention: a purge batch failed; next pass retries");
                    return total;
                }
            };
            let took = started.elapsed();
            telemetry::store_commit("purge", took, batch.events as usize);
            telemetry::purged(batch.events, batch.deliveries, batch.attempts);
            total.events += batch.events;
            total.deliveries += batch.deliveries;
            total.attempts += batch.attempts;
            total.batches += 1;
            if batch.busy || batch.finished {
                break;
            }
            after_seq = batch.next_after_seq;
            if pause(took, cancel).await {
                return total;
            }
        }
        self.leftovers(cutoff, cancel, &mut total).await;
        self.reclaim(cancel).await;
        total
    }

    /// What the events' purge leaves behind: deleted subscriptions whose deliveries are gone,
    /// completed recoveries, in batches paced like the events'.
    async fn leftovers(&self, cutoff: Timestamp, cancel: &CancellationToken, total: &mut Pass) {
        loop {
            let started = Instant::now();
            let done = match self.store.purge_leftovers(cutoff, LEFTOVER_BATCH).await {
                Ok(l) => {
                    total.subscriptions += l.subscriptions;
                    total.recoveries += l.recoveries;
                    let limit = LEFTOVER_BATCH as u64;
                    l.busy || (l.subscriptions < limit && l.recoveries < limit)
                }
                Err(e) => {
                    telemetry::store_error("purge");
                    tracing::warn!(error = %e, "retention: purging deleted subscriptions failed; next pass retries");
                    true
                }
            };
            if done || pause(started.elapsed(), cancel).await {
                return;
            }
        }
    }

    async fn reclaim(&self, cancel: &CancellationToken) {
        loop {
            let started = Instant::now();
            match self.store.reclaim_space(RECLAIM_STEP).await {
                Ok(0) => return,
                Ok(_) if !pause(started.elapsed(), cancel).await => {}
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "retention: giving back free space failed");
                    return;
                }
            }
        }
    }
}

/// Sleeps a few times `took`; true when cancelled meanwhile.
async fn pause(took: Duration, cancel: &CancellationToken) -> bool {
    let pause = (took * PAUSE_FACTOR).max(MIN_PAUSE);
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(pause) => false,
    }
}
