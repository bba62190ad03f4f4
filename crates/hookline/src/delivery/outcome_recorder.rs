//! The outcome recorder: commits attempt outcomes in batches, each write fenced by attempt
//! number in the store (a stale attempt's outcome is skipped there), then announces the
//! subscriptions a `410 Gone` or a dead endpoint deactivated. Never sends anything itself.

use hookline_core::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

use super::announcements::{announce_deactivation, Announcer};
use crate::store::{DisablePolicy, DynStore, NextState, Outcome};
use crate::telemetry;

/// Most outcomes committed in one transaction.
const OUTCOME_BATCH: usize = 512;
/// Outcomes queued before attempts wait to hand theirs over.
pub(super) const QUEUE_CAPACITY: usize = OUTCOME_BATCH * 4;
/// How long a small batch of outcomes waits for company before it is written.
const OUTCOME_GATHER: Duration = Duration::from_millis(5);
/// Writes of one batch before it is given up.
const WRITE_TRIES: u32 = 8;

pub(super) struct OutcomeRecorder {
    pub store: DynStore,
    /// Woken when a retry was scheduled: it may be due before the claim loop's planned wake-up.
    pub wake: Arc<Notify>,
    pub announcer: Arc<dyn Announcer>,
    /// When a failing endpoint is deactivated (`HOOKLINE_DISABLE_AFTER`, …).
    pub policy: DisablePolicy,
}

impl OutcomeRecorder {
    /// Runs until every sender of `rx` is gone and the queue is written.
    pub async fn run(self, mut rx: mpsc::Receiver<Outcome>) {
        let mut batch = Vec::with_capacity(OUTCOME_BATCH);
        while rx.recv_many(&mut batch, OUTCOME_BATCH).await > 0 {
            if batch.len() < OUTCOME_BATCH / 8 {
                // A trickle: gather a few milliseconds of outcomes into one commit (one fsync)
                // rather than one each. An outcome lost to a crash meanwhile only means that
                // delivery is sent again after its lease, as for any crash mid-delivery.
                tokio::time::sleep(OUTCOME_GATHER).await;
                while batch.len() < OUTCOME_BATCH {
                    match rx.try_recv() {
                        Ok(o) => batch.push(o),
                        Err(_) => break,
                    }
                }
            }
            self.write(&batch).await;
            batch.clear();
        }
    }

    /// A failed write is retried; if the store stays down past the retries the outcomes are
    /// dropped and their leases expire, so the deliveries are sent again.
    async fn write(&self, batch: &[Outcome]) {
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=WRITE_TRIES {
            let started = std::time::Instant::now();
            let written = self
                .store
                .record_outcomes_with(batch, Timestamp::now(), self.policy)
                .await;
            telemetry::store_commit("outcomes", started.elapsed(), batch.len());
            match written {
                Ok(deactivated) => {
                    for d in deactivated {
                        telemetry::subscription_deactivated(d.reason.label());
                        announce_deactivation(&self.store, self.announcer.as_ref(), &d).await;
                    }
                    if batch
                        .iter()
                        .any(|o| matches!(o.next, NextState::RetryAt(_)))
                    {
                        self.wake.notify_one();
                    }
                    return;
                }
                Err(e) if attempt < WRITE_TRIES => {
                    telemetry::store_error("outcomes");
                    tracing::warn!(error = %e, "recording outcomes failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    telemetry::store_error("outcomes");
                    tracing::error!(
                        error = %e, outcomes = batch.len(),
                        "giving up on recording outcomes; their deliveries will be retried after the lease"
                    )
                }
            }
        }
    }
}
