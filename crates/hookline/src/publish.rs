//! Group commit for publishes: concurrent publish requests are gathered into one store
//! transaction (one fsync) instead of one each. A request is answered only after the
//! transaction holding its events has committed.

use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::delivery::Dispatcher;
use crate::store::{Claimer, DynStore, NewEvent, Published, StoreError, StoreResult};
use std::collections::HashMap;
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
        let now = hookline_core::time::now_micros();
        let mut reserved: HashMap<String, usize> = HashMap::new();
        let result = match &dispatcher {
            Some((d, lease)) => {
                let mut reserve = |sub: &str| {
                    let ok = d.try_reserve(sub);
                    if ok {
                        *reserved.entry(sub.to_owned()).or_default() += 1;
                    }
                    ok
                };
                let mut claimer = Claimer {
                    lease_until: now + hookline_core::time::micros(*lease),
                    reserve: &mut reserve,
                };
                store.publish(&all, now, Some(&mut claimer)).await
            }
            None => store.publish(&all, now, None).await,
        };
        match result {
            Ok(batch) => {
                if let Some((d, _)) = &dispatcher {
                    for delivery in batch.claimed {
                        if let Some(n) = reserved.get_mut(&delivery.subscription_id) {
                            *n -= 1;
                        }
                        d.start_reserved(delivery);
                    }
                }
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
                tracing::error!(error = ?e, events = all.len(), "publish transaction failed");
                let msg = format!("{e:#}");
                for (_, reply) in group {
                    let _ = reply.send(Err(msg.clone()));
                }
            }
        }
        // Slots reserved for deliveries that were not handed over (repeats, a failed commit).
        if let Some((d, _)) = &dispatcher {
            for (sub, n) in reserved {
                for _ in 0..n {
                    d.release(&sub);
                }
            }
        }
    }
}
