//! Group commit for publishes: concurrent publish requests are gathered into one store
//! transaction (one fsync) instead of one each. A request is answered only after the
//! transaction holding its events has committed.
//!
//! When this process delivers, each new delivery it has a slot for is committed leased to it
//! and handed to the [`Dispatcher`] with its [`Permit`], skipping the claim round trip.
//! The task is owned by the caller: [`PublisherTask::run`] ends at shutdown after answering
//! every request it accepted.

use async_trait::async_trait;
use hookline_core::Timestamp;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::delivery::slots::Permit;
use crate::delivery::{Announcer, Dispatcher};
use crate::store::{DynStore, NewEvent, PublishBatch, Published, StoreError, StoreResult};
use crate::telemetry;

/// Upper bound of events per group transaction; keeps one commit short.
const MAX_GROUP_EVENTS: usize = 2000;

type Reply = oneshot::Sender<StoreResult<Vec<Published>>>;
type Request = (Vec<NewEvent>, Reply);

/// A cheap handle for publishing; clones share one task.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<Request>,
    /// This process's dispatcher wake-up (see [`wake_dispatcher`](Self::wake_dispatcher)).
    wake: Arc<Notify>,
    /// Group commits the store refused ([`StoreError::Unavailable`]) so far: readiness probes
    /// afresh when this moves.
    refusals: Arc<AtomicU64>,
}

/// The publisher's work, to be run (and awaited) by whoever owns the process's tasks.
pub struct PublisherTask {
    store: DynStore,
    /// How long a publish that finds nothing else queued waits for another to share its commit
    /// (and its fsync), `HOOKLINE_PUBLISH_GATHER`. Measured at a steady 500 events/s (README,
    /// Performance): 1 ms saves about 6 % of the CPU per event and adds about 1.8 ms to the
    /// median ingest→delivery latency (tokio's timers round up to the next millisecond).
    gather: Duration,
    wake: Arc<Notify>,
    /// This process's dispatcher and the lease of a handed-over delivery; `None` when it does
    /// not deliver (every delivery then waits in the store for any worker).
    handoff: Option<(Dispatcher, Duration)>,
    rx: mpsc::Receiver<Request>,
    refusals: Arc<AtomicU64>,
}

impl Publisher {
    pub fn new(
        store: DynStore,
        wake: Arc<Notify>,
        handoff: Option<(Dispatcher, Duration)>,
        gather: Duration,
    ) -> (Publisher, PublisherTask) {
        let (queue, rx) = mpsc::channel(4096);
        let refusals = Arc::new(AtomicU64::new(0));
        let task = PublisherTask {
            store,
            gather,
            wake: wake.clone(),
            handoff,
            rx,
            refusals: refusals.clone(),
        };
        (
            Publisher {
                queue,
                wake,
                refusals,
            },
            task,
        )
    }

    /// A stopped publisher (shutdown, or its task died) is a store that takes no writes: the
    /// caller answers 503 and the client retries, here after a restart or on another node.
    pub async fn publish(&self, events: Vec<NewEvent>) -> StoreResult<Vec<Published>> {
        let stopped = || StoreError::Unavailable("publisher stopped".into());
        let _timer = telemetry::Timer::new(telemetry::publish_call);
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((events, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Work was made due now by other means than a publish (a redelivery): this process's
    /// dispatcher claims at once instead of at its next poll. Other nodes are woken by the
    /// store (PostgreSQL `NOTIFY`).
    pub fn wake_dispatcher(&self) {
        self.wake.notify_one();
    }

    /// False once the task has stopped taking work (shutdown, or it ended).
    pub fn is_running(&self) -> bool {
        !self.queue.is_closed()
    }

    /// How many group commits the store has refused ([`StoreError::Unavailable`]) so far.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }
}

/// The engine's own events (`410 Gone` announcements) share the group commit.
#[async_trait]
impl Announcer for Publisher {
    async fn publish(&self, events: Vec<NewEvent>) -> StoreResult<()> {
        Publisher::publish(self, events).await.map(drop)
    }
}

impl PublisherTask {
    /// Commits groups until `stop`. Then it takes no more work (a later publish fails with
    /// "publisher stopped"), commits and answers every request already queued, and returns.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            let first = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                next = self.rx.recv() => match next {
                    Some(request) => request,
                    None => return, // every handle is gone: nothing can be queued
                },
            };
            self.commit_group(first).await;
        }
        self.rx.close();
        while let Some(first) = self.rx.recv().await {
            self.commit_group(first).await;
        }
    }

    /// Commits `first` and whatever else is queued (up to [`MAX_GROUP_EVENTS`]) in one
    /// transaction, and answers each request.
    async fn commit_group(&mut self, first: Request) {
        let mut group = vec![first];
        let mut total = group[0].0.len();
        while total < MAX_GROUP_EVENTS {
            let next = match self.rx.try_recv() {
                Ok(next) => next,
                Err(_) if group.len() == 1 && !self.gather.is_zero() => {
                    match tokio::time::timeout(self.gather, self.rx.recv()).await {
                        Ok(Some(next)) => next,
                        _ => break,
                    }
                }
                Err(_) => break,
            };
            total += next.0.len();
            group.push(next);
        }
        // The events move into one batch (no copy of their payloads); each request keeps its
        // count to take its answers back in order.
        let mut all: Vec<NewEvent> = Vec::with_capacity(total);
        let mut replies = Vec::with_capacity(group.len());
        for (events, reply) in group {
            replies.push((events.len(), reply));
            all.extend(events);
        }
        let events = all.len();
        let types: Vec<&'static str> = all.iter().map(|e| e.event_type.as_str()).collect();
        let started = std::time::Instant::now();
        let result = commit(&self.store, self.handoff.as_ref(), all).await;
        telemetry::store_commit("publish", started.elapsed(), events);
        let refused = matches!(result, Err(StoreError::Unavailable(_)));
        if refused {
            self.refusals.fetch_add(1, Ordering::Relaxed);
        }
        match result {
            Ok(batch) => {
                if batch.queued > 0 {
                    self.wake.notify_one();
                }
                count_published(&types, &batch.published);
                let mut results = batch.published.into_iter();
                for (count, reply) in replies {
                    let mine: Vec<Published> = results.by_ref().take(count).collect();
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(e) => {
                telemetry::store_error("publish");
                if refused {
                    tracing::warn!(error = %e, events, "the store refused a publish; answering 503");
                } else {
                    tracing::error!(error = ?e, events, "publish transaction failed");
                }
                for (_, reply) in replies {
                    let _ = reply.send(Err(e.share()));
                }
            }
        }
    }
}

/// Events accepted for the first time, by type, and the deliveries they scheduled.
fn count_published(types: &[&'static str], published: &[Published]) {
    let mut deliveries = 0;
    for (event_type, p) in types.iter().zip(published).filter(|(_, p)| !p.duplicate) {
        telemetry::event_published(event_type);
        deliveries += p.deliveries as usize;
    }
    telemetry::deliveries_created(deliveries);
}

/// Plans the group, takes a slot for each planned delivery this process can start now (those
/// are committed leased to it), commits, and starts each leased delivery with its permit.
/// Permits of deliveries that were not inserted (repeats of events accepted before, a failed
/// commit) are dropped, which frees them.
async fn commit(
    store: &DynStore,
    handoff: Option<&(Dispatcher, Duration)>,
    events: Vec<NewEvent>,
) -> StoreResult<PublishBatch> {
    let mut plan = store.plan_publish(events).await?;
    let now = Timestamp::now();
    let Some((d, lease)) = handoff else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use hookline_core::{EventId, EventTime, EventType, Partner, TraceId};

    async fn store() -> (DynStore, Partner, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
        let partner = Partner::issue("p", Timestamp::now()).unwrap();
        store.create_partner(&partner).await.unwrap();
        (store, partner, dir)
    }

    fn event(partner: &Partner, id: &str) -> NewEvent {
        NewEvent {
            partner_id: partner.id.clone(),
            event_id: EventId::parse(id).unwrap(),
            event_type: EventType::parse("message.sent").unwrap(),
            phone_number: None,
            created_at: EventTime::at(Timestamp::now()),
            trace_id: TraceId::generate(),
            data: "{}".to_owned(),
            data_v2025: None,
        }
    }

    /// Shutdown: requests queued before the stop are committed and answered; later ones are
    /// refused, and the task returns rather than waiting for handles to go away.
    #[tokio::test]
    async fn a_stopped_publisher_answers_what_it_holds_and_takes_nothing_more() {
        let (store, partner, _dir) = store().await;
        let (publisher, task) = Publisher::new(
            store,
            Arc::new(Notify::new()),
            None,
            Duration::from_millis(1),
        );
        let mut answers = Vec::new();
        for id in ["e1", "e2", "e3"] {
            let (reply, answer) = oneshot::channel();
            publisher
                .queue
                .send((vec![event(&partner, id)], reply))
                .await
                .unwrap();
            answers.push(answer);
        }
        let stop = CancellationToken::new();
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), task.run(stop))
            .await
            .expect("the task ends although handles remain");
        for (answer, id) in answers.into_iter().zip(["e1", "e2", "e3"]) {
            let published = answer.await.expect("answered").expect("committed");
            assert_eq!(published.len(), 1);
            assert_eq!(published[0].event_id.as_str(), id);
            assert!(!published[0].duplicate);
        }
        let late = publisher.publish(vec![event(&partner, "e4")]).await;
        assert!(late.is_err(), "accepted after the stop");
    }
}
