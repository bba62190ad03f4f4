//! The recovery runner: works off recoveries (bulk re-queues of failed deliveries, see
//! `store::recovery`) at a bounded pace, `HOOKLINE_RECOVERY_RATE` deliveries per second on
//! this node, so a recovery of a hundred thousand deliveries does not crowd out live traffic:
//! re-queued deliveries join the due queue a chunk at a time instead of all at once.

use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::RecoverySettings;
use crate::store::DynStore;
use hookline_core::Timestamp;

pub struct RecoveryRunner {
    pub store: DynStore,
    /// This process's dispatcher, woken when a chunk made deliveries due.
    pub wake: Arc<Notify>,
    pub settings: RecoverySettings,
}

impl RecoveryRunner {
    /// Advances running recoveries every tick until `cancel`; polls slower while none runs. A
    /// store failure is logged and retried at the idle pace: the recovery's cursor is in the
    /// store, so nothing is lost or repeated.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let per_tick = self.settings.per_tick();
        let mut pause = self.settings.idle_poll;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(pause) => {}
            }
            pause = match self
                .store
                .advance_recoveries(Timestamp::now(), per_tick)
                .await
            {
                Ok(0) => self.settings.idle_poll,
                Ok(requeued) => {
                    tracing::debug!(requeued, "recovery chunk re-queued");
                    self.wake.notify_one();
                    self.settings.tick
                }
                Err(e) => {
                    tracing::warn!(error = %e, "advancing recoveries failed; retrying");
                    self.settings.idle_poll
                }
            };
        }
    }
}
