//! What `/readyz` means: this node can accept work now. Not ready while it is stopping, while
//! its publisher is not running, or while the store refuses writes — found by a small committed
//! write ([`Store::probe_write`](crate::store::Store::probe_write)), run on demand and cached
//! briefly so a busy health checker costs at most one probe per [`PROBE_TTL`].
//!
//! A publish the store refused makes the next check probe afresh, so the node turns not ready at
//! once; the probe, not traffic, decides when it is ready again, so a node a load balancer took
//! out of rotation comes back by itself once the store takes writes again.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::publish::Publisher;
use crate::store::DynStore;

/// How long one probe's verdict stands.
pub const PROBE_TTL: Duration = Duration::from_secs(1);
/// A probe that takes longer counts as a failure: a load balancer's check must get an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Readiness {
    stopping: CancellationToken,
    /// The last probe: when, the publisher's refusal count then, and why it failed (`None`: it
    /// succeeded). The lock is held across a probe, so concurrent checks share one.
    last: Arc<tokio::sync::Mutex<Option<Probe>>>,
}

struct Probe {
    at: Instant,
    refusals: u64,
    failure: Option<String>,
}

impl Readiness {
    /// Not ready from the moment `stopping` is cancelled.
    pub fn new(stopping: CancellationToken) -> Self {
        Readiness {
            stopping,
            last: Arc::default(),
        }
    }

    /// Cancelled when the process starts shutting down: long-lived answers (listen streams) end
    /// on it so shutdown does not wait for them.
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// `Err(why)` when this node should not be sent work; `why` is safe to show anyone.
    pub async fn check(&self, store: &DynStore, publisher: &Publisher) -> Result<(), String> {
        if self.stopping.is_cancelled() {
            return Err("shutting down".into());
        }
        if !publisher.is_running() {
            return Err("publisher stopped".into());
        }
        let refusals = publisher.refusals();
        let mut last = self.last.lock().await;
        let fresh = last
            .as_ref()
            .filter(|p| p.refusals == refusals && p.at.elapsed() < PROBE_TTL);
        if let Some(probe) = fresh {
            return probe.failure.clone().map_or(Ok(()), Err);
        }
        let failure = match tokio::time::timeout(PROBE_TIMEOUT, store.probe_write()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => {
                // The cause goes to the log, not to an unauthenticated caller.
                tracing::warn!(error = %e, "readiness: the store refused a write");
                Some("the store refuses writes".to_owned())
            }
            Err(_) => Some(format!(
                "the store did not take a write within {PROBE_TIMEOUT:?}"
            )),
        };
        *last = Some(Probe {
            at: Instant::now(),
            refusals,
            failure: failure.clone(),
        });
        failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn not_ready_while_stopping_or_without_a_publisher() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
        let (publisher, task) = Publisher::new(
            store.clone(),
            Arc::new(tokio::sync::Notify::new()),
            None,
            Duration::from_millis(1),
        );
        let publisher_stop = CancellationToken::new();
        let running = tokio::spawn(task.run(publisher_stop.clone()));
        let stopping = CancellationToken::new();
        let readiness = Readiness::new(stopping.clone());
        assert_eq!(readiness.check(&store, &publisher).await, Ok(()));

        publisher_stop.cancel();
        running.await.unwrap();
        assert_eq!(
            readiness.check(&store, &publisher).await,
            Err("publisher stopped".to_owned())
        );
        stopping.cancel();
        assert_eq!(
            readiness.check(&store, &publisher).await,
            Err("shutting down".to_owned())
        );
    }
}
