//! The claim loop. It never waits on a receiver: each claimed delivery runs in its own task,
//! bounded by a global semaphore and a per-subscription cap, so a dead endpoint can hold at
//! most its own share of slots while every other subscription keeps flowing.

use hookline_core::time::{micros, now_micros};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::outcome::Verdict;
use super::sender::{AttemptResult, Sender};
use crate::config::Settings;
use crate::store::{AttemptRecord, ClaimRequest, DueDelivery, DynStore, NextState, Outcome};

/// Most deliveries claimed in one query.
const CLAIM_BATCH: u32 = 256;
/// Most outcomes committed in one transaction.
const OUTCOME_BATCH: usize = 512;

pub struct Dispatcher {
    store: DynStore,
    settings: Arc<Settings>,
    wake: Arc<Notify>,
    sender: Arc<Sender>,
    slots: Arc<Semaphore>,
    per_subscription: Arc<Mutex<HashMap<String, usize>>>,
    slot_freed: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(
        store: DynStore,
        settings: Arc<Settings>,
        wake: Arc<Notify>,
    ) -> anyhow::Result<Self> {
        Ok(Dispatcher {
            sender: Arc::new(Sender::new(&settings)?),
            slots: Arc::new(Semaphore::new(settings.max_in_flight)),
            store,
            settings,
            wake,
            per_subscription: Arc::default(),
            slot_freed: Arc::default(),
        })
    }

    pub async fn run(self, cancel: CancellationToken) {
        let (outcomes_tx, outcomes_rx) = mpsc::channel::<Outcome>(OUTCOME_BATCH * 4);
        let writer = tokio::spawn(write_outcomes(self.store.clone(), outcomes_rx));
        let mut backoff = Duration::from_millis(100);

        while !cancel.is_cancelled() {
            let free = self.slots.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = self.slot_freed.notified() => {}
                    _ = cancel.cancelled() => break,
                }
                continue;
            }
            let limit = (free as u32).min(CLAIM_BATCH);
            let cap = self.settings.max_in_flight_per_subscription;
            let in_flight = self.per_subscription.lock().expect("not poisoned").clone();
            let saturated = in_flight.values().any(|n| *n >= cap);
            let now = now_micros();
            let request = ClaimRequest {
                now,
                lease_until: now + micros(self.settings.lease),
                limit,
                per_subscription_cap: cap,
                in_flight: &in_flight,
            };
            let claimed = match self.store.claim_due(&request).await {
                Ok(c) => {
                    backoff = Duration::from_millis(100);
                    c
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = cancel.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let full_batch = claimed.len() as u32 == limit;
            for delivery in claimed {
                self.start(delivery, outcomes_tx.clone());
            }
            if full_batch {
                continue;
            }
            let sleep = self.until_next_due(saturated).await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = self.slot_freed.notified(), if saturated => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = cancel.cancelled() => break,
            }
        }

        self.drain().await;
        drop(outcomes_tx);
        if writer.await.is_err() {
            tracing::error!("outcome writer panicked");
        }
    }

    /// How long to sleep when nothing wakes us: until the earliest due delivery, at most the poll interval.
    async fn until_next_due(&self, saturated: bool) -> Duration {
        let poll = self.settings.poll_interval;
        if saturated {
            return poll;
        }
        match self.store.next_due_at().await {
            Ok(Some(at)) => {
                let wait = at - now_micros();
                if wait <= 0 {
                    Duration::from_millis(1)
                } else {
                    Duration::from_micros(wait as u64).min(poll)
                }
            }
            _ => poll,
        }
    }

    fn start(&self, delivery: DueDelivery, outcomes: mpsc::Sender<Outcome>) {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            // Cannot happen: we claim at most the free slots and only this loop takes them.
            Err(_) => return,
        };
        let sub = delivery.subscription_id.clone();
        *self
            .per_subscription
            .lock()
            .expect("not poisoned")
            .entry(sub.clone())
            .or_default() += 1;
        let sender = self.sender.clone();
        let schedule = self.settings.retry_schedule.clone();
        let counts = self.per_subscription.clone();
        let slot_freed = self.slot_freed.clone();
        tokio::spawn(async move {
            let result = sender.send(&delivery).await;
            let outcome = to_outcome(&delivery, result, &schedule);
            log_attempt(&delivery, &outcome);
            if outcomes.send(outcome).await.is_err() {
                tracing::error!(
                    "outcome writer gone; the lease will expire and the delivery retry"
                );
            }
            {
                let mut counts = counts.lock().expect("not poisoned");
                if let Some(n) = counts.get_mut(&sub) {
                    *n -= 1;
                    if *n == 0 {
                        counts.remove(&sub);
                    }
                }
            }
            drop(permit);
            slot_freed.notify_one();
        });
    }

    /// Waits for in-flight attempts up to the grace period. Whatever is still running then keeps
    /// its lease and is retried by the next process once the lease expires (at-least-once).
    async fn drain(&self) {
        let all = self.settings.max_in_flight as u32;
        match tokio::time::timeout(self.settings.shutdown_grace, self.slots.acquire_many(all)).await
        {
            Ok(_) => tracing::info!("in-flight deliveries finished"),
            Err(_) => tracing::warn!(
                in_flight = all as usize - self.slots.available_permits(),
                "shutdown grace elapsed; unfinished deliveries will be retried after their lease"
            ),
        }
    }
}

fn to_outcome(
    d: &DueDelivery,
    r: AttemptResult,
    schedule: &hookline_core::RetrySchedule,
) -> Outcome {
    let next = match r.verdict {
        Verdict::Delivered => NextState::Succeeded,
        Verdict::Permanent | Verdict::Gone => NextState::Failed,
        Verdict::Retry { after } => match schedule.delay_after(d.attempt) {
            None => NextState::Failed,
            Some(delay) => NextState::RetryAt(now_micros() + micros(after.unwrap_or(delay))),
        },
    };
    Outcome {
        attempt: AttemptRecord {
            delivery_id: d.delivery_id,
            attempt: d.attempt,
            started_at: r.started_at,
            duration_ms: r.duration.as_millis() as i64,
            status_code: r.status_code,
            error_kind: r.error_kind.map(|k| k.as_str()),
            error_message: r.error_message,
            response_body: r.response_body,
        },
        next,
        deactivate_subscription: (r.verdict == Verdict::Gone).then(|| d.subscription_id.clone()),
    }
}

fn log_attempt(d: &DueDelivery, o: &Outcome) {
    let a = &o.attempt;
    match o.next {
        NextState::Succeeded => tracing::debug!(
            delivery_id = d.delivery_id, event_id = %d.event_id, subscription_id = %d.subscription_id,
            attempt = a.attempt, status = a.status_code, duration_ms = a.duration_ms, "delivered"
        ),
        _ => tracing::info!(
            delivery_id = d.delivery_id, event_id = %d.event_id, subscription_id = %d.subscription_id,
            attempt = a.attempt, status = a.status_code, error_kind = a.error_kind,
            error = a.error_message.as_deref(), next = ?o.next, "delivery attempt failed"
        ),
    }
}

/// Commits outcomes in batches. A failed write is retried; if the store stays down past the
/// retries the outcomes are dropped and their leases expire, so the deliveries are sent again.
async fn write_outcomes(store: DynStore, mut rx: mpsc::Receiver<Outcome>) {
    let mut batch = Vec::with_capacity(OUTCOME_BATCH);
    while rx.recv_many(&mut batch, OUTCOME_BATCH).await > 0 {
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=8 {
            match store.record_outcomes(&batch, now_micros()).await {
                Ok(_) => break,
                Err(e) if attempt < 8 => {
                    tracing::warn!(error = %e, "recording outcomes failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => tracing::error!(
                    error = %e, outcomes = batch.len(),
                    "giving up on recording outcomes; their deliveries will be retried after the lease"
                ),
            }
        }
        batch.clear();
    }
}
