//! Group commit for publishes: concurrent publish requests are gathered into one store
//! transaction (one fsync) instead of one each. A request is answered only after the
//! transaction holding its events has committed.

use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::delivery::slots::Permit;
use crate::delivery::Dispatcher;
use crate::store::{DynStore, NewEvent, PublishBatch, Published, StoreError, StoreResult};
use hookline_core::Timestamp;
use std::time::Duration;

/// Upper bound of events per group transaction; keeps one commit short.
const MAX_GROUP_EVENTS: usize = 2000;

type Reply = oneshot::Sender<Result<Vec<Published>, String>>;

#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<(Vec<NewEvent>, Reply)>,
}

impl Publisher {
    /// With a `dispatcher` (this process delivers), new deliveries go to it directly, leased
    /// for `lease`, as long as it has free slots; the rest wait in the store for any worker.
    pub fn spawn(
        store: DynStore,
        wake: Arc<Notify>,
        dispatcher: Option<(Dispatcher, Duration)>,
    ) -> Self {
        let (queue, rx) = mpsc::channel(4096);
        tokio::spawn(run(store, wake, dispatcher, rx));
        Publisher { queue }
    }

    pub async fn publish(&self, events: Vec<NewEvent>) -> StoreResult<Vec<Published>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((events, reply))
            .await
            .map_err(|_| anyhow::anyhow!("publisher stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("publisher stopped"))?
            .map_err(|e| StoreError::Other(anyhow::anyhow!(e)))
    }
}

async fn run(
    store: DynStore,
    wake: Arc<Notify>,
    dispatcher: Option<(Dispatcher, Duration)>,
    mut rx: mpsc::Receiver<(Vec<NewEvent>, Reply)>,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        let mut total = group[0].0.len();
        while total < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(next) => {
                    total += next.0.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let all: Vec<NewEvent> = group.iter().flat_map(|(e, _)| e.iter().cloned()).collect();
        let events = all.len();
        match commit_group(&store, dispatcher.as_ref(), all).await {
            Ok(batch) => {
                if batch.queued > 0 {
                    wake.notify_one();
                }
                let mut results = batch.published.into_iter();
                for (events, reply) in group {
                    let mine: Vec<Published> = results.by_ref().take(events.len()).collect();
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(e) => {
                tracing::error!(error = ?e, events, "publish transaction failed");
                let msg = format!("{e:#}");
                for (_, reply) in group {
                    let _ = reply.send(Err(msg.clone()));
                }
            }
        }
    }
}

/// Plans the group, takes a slot for each planned delivery this process can start now (those
/// are committed leased to it), commits, and starts each leased delivery with its permit.
/// Permits of deliveries that were not inserted (repeats of events accepted before, a failed
/// commit) are dropped, which frees them.
async fn commit_group(
    store: &DynStore,
    dispatcher: Option<&(Dispatcher, Duration)>,
    events: Vec<NewEvent>,
) -> StoreResult<PublishBatch> {
    let mut plan = store.plan_publish(events).await?;
    let now = Timestamp::now();
    let Some((d, lease)) = dispatcher else {
        return store.commit_publish(plan, now, None).await;
    };
    let mut permits: Vec<Option<Permit>> = plan
        .deliveries()
        .iter()
        .map(|p| d.try_acquire(p.subscription_id()))
        .collect();
    for (i, permit) in permits.iter().enumerate() {
        if permit.is_some() {
            plan.lease(i);
        }
    }
    let mut batch = store.commit_publish(plan, now, Some(now + *lease)).await?;
    for (i, delivery) in std::mem::take(&mut batch.claimed) {
        match permits.get_mut(i).and_then(Option::take) {
            Some(permit) => d.start(delivery, permit),
            // Not a reason to exceed a cap: the lease expires and any worker claims it then.
            None => tracing::error!(
                delivery_id = delivery.delivery_id.get(),
                "the store leased a delivery that was not marked; it waits for its lease"
            ),
        }
    }
    Ok(batch)
}
