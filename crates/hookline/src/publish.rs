//! Group commit for publishes: concurrent publish requests are gathered into one store
//! transaction (one fsync) instead of one each. A request is answered only after the
//! transaction holding its events has committed.

use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::store::{DynStore, NewEvent, Published, StoreError, StoreResult};

/// Upper bound of events per group transaction; keeps one commit short.
const MAX_GROUP_EVENTS: usize = 2000;

type Reply = oneshot::Sender<Result<Vec<Published>, String>>;

#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<(Vec<NewEvent>, Reply)>,
}

impl Publisher {
    pub fn spawn(store: DynStore, wake: Arc<Notify>) -> Self {
        let (queue, rx) = mpsc::channel(4096);
        tokio::spawn(run(store, wake, rx));
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

async fn run(store: DynStore, wake: Arc<Notify>, mut rx: mpsc::Receiver<(Vec<NewEvent>, Reply)>) {
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
        match store.publish(&all, now).await {
            Ok(results) => {
                if results.iter().any(|p| p.deliveries > 0 && !p.duplicate) {
                    wake.notify_one();
                }
                let mut results = results.into_iter();
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
    }
}
