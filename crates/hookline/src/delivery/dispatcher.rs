//! The claim loop. It never waits on a receiver: each claimed delivery runs in its own task,
//! bounded by a global semaphore and a per-subscription cap, so a dead endpoint can hold at
//! most its own share of slots while every other subscription keeps flowing.

use hookline_core::time::now_micros;
use hookline_core::{ErrorKind, SubscriptionId, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::outcome::Verdict;
use super::sender::{affinity_chat, Affinity, AttemptResult, Sender};
use crate::account_events;
use crate::config::Settings;
use crate::store::{
    AttemptRecord, Capacity, ClaimRequest, Deactivation, DueDelivery, DynStore,
    LearnedRoutingToken, NextState, Outcome,
};

/// Most deliveries claimed in one query.
const CLAIM_BATCH: u32 = 256;
/// When fewer slots than this are free, the claim loop waits up to [`BATCH_WINDOW`] for more.
fn low_water(settings: &Settings) -> usize {
    (settings.delivery.max_in_flight / 8).clamp(1, 64)
}
const BATCH_WINDOW: Duration = Duration::from_millis(2);
/// Most outcomes committed in one transaction.
const OUTCOME_BATCH: usize = 512;
/// How long a small batch of outcomes waits for company before it is written.
const OUTCOME_GATHER: Duration = Duration::from_millis(5);

/// A cheap handle: the claim loop ([`Dispatcher::run`]) and the publisher (which hands fresh
/// deliveries over directly, see [`crate::store::PublishPlan::lease`]) share one set of slots.
#[derive(Clone)]
pub struct Dispatcher {
    shared: Arc<Shared>,
}

struct Shared {
    store: DynStore,
    settings: Arc<Settings>,
    wake: Arc<Notify>,
    sender: Sender,
    slots: Semaphore,
    /// Deliveries started beyond the free slots (a claim raced a publish hand-off); they give
    /// back nothing when they finish, so the slot count stays exact.
    overdraft: Mutex<usize>,
    per_subscription: Mutex<HashMap<SubscriptionId, usize>>,
    slot_freed: Notify,
    /// Taken at shutdown: hand-offs stop and the outcome writer can finish.
    outcomes: Mutex<Option<mpsc::Sender<Outcome>>>,
    outcomes_rx: Mutex<Option<mpsc::Receiver<Outcome>>>,
}

impl Dispatcher {
    pub fn new(
        store: DynStore,
        settings: Arc<Settings>,
        wake: Arc<Notify>,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel::<Outcome>(OUTCOME_BATCH * 4);
        Ok(Dispatcher {
            shared: Arc::new(Shared {
                sender: Sender::new(&settings)?,
                slots: Semaphore::new(settings.delivery.max_in_flight),
                overdraft: Mutex::new(0),
                store,
                settings,
                wake,
                per_subscription: Mutex::default(),
                slot_freed: Notify::new(),
                outcomes: Mutex::new(Some(tx)),
                outcomes_rx: Mutex::new(Some(rx)),
            }),
        })
    }

    /// Takes a slot for one delivery to `subscription_id` if both the global and the
    /// per-subscription limits allow; the slot is given back when that delivery finishes.
    pub fn try_reserve(&self, subscription_id: &SubscriptionId) -> bool {
        let s = &self.shared;
        if s.outcomes.lock().expect("not poisoned").is_none() {
            return false;
        }
        let mut counts = s.per_subscription.lock().expect("not poisoned");
        let n = counts.entry(subscription_id.clone()).or_default();
        if *n >= s.settings.delivery.max_in_flight_per_subscription {
            return false;
        }
        match s.slots.try_acquire() {
            Ok(permit) => {
                permit.forget();
                *n += 1;
                true
            }
            Err(_) => false,
        }
    }

    /// Gives back a slot that [`try_reserve`](Self::try_reserve) took but no delivery used.
    pub fn release(&self, subscription_id: &SubscriptionId) {
        let s = &self.shared;
        {
            let mut counts = s.per_subscription.lock().expect("not poisoned");
            if let Some(n) = counts.get_mut(subscription_id) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(subscription_id);
                }
            }
        }
        let mut overdraft = s.overdraft.lock().expect("not poisoned");
        if *overdraft > 0 {
            *overdraft -= 1;
        } else {
            s.slots.add_permits(1);
        }
        drop(overdraft);
        s.slot_freed.notify_one();
    }

    /// Sends a delivery whose slot is already reserved.
    pub fn start_reserved(&self, delivery: DueDelivery) {
        let Some(outcomes) = self.shared.outcomes.lock().expect("not poisoned").clone() else {
            // Shutting down: an outcome could not be recorded, so do not send at all; the lease
            // expires and the delivery goes out once, from the next process.
            self.release(&delivery.subscription_id);
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let s = &this.shared;
            let affinity = this.affinity(&delivery).await;
            let result = s.sender.send(&delivery, affinity.as_ref()).await;
            let outcome = to_outcome(
                &delivery,
                result,
                affinity,
                &s.settings.delivery.retry_schedule,
            );
            log_attempt(&delivery, &outcome);
            if outcomes.send(outcome).await.is_err() {
                tracing::warn!(
                    delivery_id = delivery.delivery_id.get(),
                    "shutting down: outcome not recorded; the delivery is retried after its lease"
                );
            }
            this.release(&delivery.subscription_id);
        });
    }

    /// Occupies a slot for a claimed delivery (claims never exceed the free slots they saw, but a
    /// publish hand-off may have taken one since).
    fn occupy(&self, subscription_id: &SubscriptionId) {
        let s = &self.shared;
        *s.per_subscription
            .lock()
            .expect("not poisoned")
            .entry(subscription_id.clone())
            .or_default() += 1;
        match s.slots.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(_) => *s.overdraft.lock().expect("not poisoned") += 1,
        }
    }

    pub async fn run(self, cancel: CancellationToken) {
        let s = self.shared.clone();
        let rx = s
            .outcomes_rx
            .lock()
            .expect("not poisoned")
            .take()
            .expect("run is called once");
        let writer = tokio::spawn(write_outcomes(s.store.clone(), rx, s.wake.clone()));
        let mut backoff = Duration::from_millis(100);

        while !cancel.is_cancelled() {
            let free = s.slots.available_permits();
            if free < low_water(&s.settings) {
                // Claiming one delivery per finished one costs a transaction each: wait until a
                // batch's worth of slots is free (or briefly, when the receivers are slow).
                tokio::select! {
                    _ = s.slot_freed.notified() => {}
                    _ = cancel.cancelled() => break,
                }
                if s.slots.available_permits() < low_water(&s.settings) {
                    tokio::select! {
                        _ = tokio::time::sleep(BATCH_WINDOW) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
            }
            let free = s.slots.available_permits();
            if free == 0 {
                continue;
            }
            let limit = (free as u32).min(CLAIM_BATCH);
            let cap = s.settings.delivery.max_in_flight_per_subscription;
            let in_flight = self.in_flight();
            let now = Timestamp::now();
            let request = ClaimRequest {
                now,
                lease_until: now + s.settings.delivery.lease,
                limit,
                capacity: Capacity {
                    per_subscription_cap: cap,
                    in_flight: &in_flight,
                },
            };
            let claimed = match s.store.claim_due(&request).await {
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
            let (more_due, held_back) = (claimed.more_due, claimed.held_back);
            let handed_out = !claimed.deliveries.is_empty();
            for delivery in claimed.deliveries {
                self.occupy(&delivery.subscription_id);
                self.start_reserved(delivery);
            }
            if more_due {
                if !handed_out {
                    // Only cancellations, or rows another node is committing right now: a
                    // moment's pause, not a spin.
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(1)) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
                continue;
            }
            let sleep = self.until_next_due(now).await;
            tokio::select! {
                _ = s.wake.notified() => {}
                _ = s.slot_freed.notified(), if held_back => {
                    // A full subscription may have room now. Let a few more of its deliveries
                    // finish so the claim takes a batch, not one row per transaction.
                    tokio::select! {
                        _ = tokio::time::sleep(BATCH_WINDOW) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
                _ = tokio::time::sleep(sleep) => {}
                _ = cancel.cancelled() => break,
            }
        }

        // Stop hand-offs, wait for what is in flight, then let the writer flush and finish.
        let outcomes = s.outcomes.lock().expect("not poisoned").take();
        drop(outcomes);
        self.drain().await;
        if tokio::time::timeout(s.settings.delivery.timeout, writer)
            .await
            .is_err()
        {
            tracing::warn!("outcome writer still busy at shutdown; unrecorded deliveries retry after their lease");
        }
    }

    /// The chat and its learned routing token, for subscriptions with delivery affinity. A
    /// failed lookup sends without the token rather than holding the delivery back.
    async fn affinity(&self, d: &DueDelivery) -> Option<Affinity> {
        let chat_id = affinity_chat(d)?;
        let token = match self
            .shared
            .store
            .routing_token(&d.subscription_id, &chat_id)
            .await
        {
            Ok(token) => token,
            Err(e) => {
                tracing::warn!(error = %e, subscription_id = %d.subscription_id, "reading the routing token failed; sending without it");
                None
            }
        };
        Some(Affinity { chat_id, token })
    }

    fn in_flight(&self) -> HashMap<SubscriptionId, usize> {
        self.shared
            .per_subscription
            .lock()
            .expect("not poisoned")
            .clone()
    }

    /// How long to sleep when nothing wakes us: until the earliest delivery due after the claim
    /// at `claimed_at`, at most the poll interval.
    async fn until_next_due(&self, claimed_at: Timestamp) -> Duration {
        let poll = self.shared.settings.delivery.poll_interval;
        match self.shared.store.next_due_after(claimed_at).await {
            Ok(Some(at)) => {
                let wait = at.as_micros() - now_micros();
                if wait <= 0 {
                    Duration::from_millis(1)
                } else {
                    Duration::from_micros(wait as u64).min(poll)
                }
            }
            _ => poll,
        }
    }

    /// Waits for in-flight attempts up to the grace period. Whatever is still running then keeps
    /// its lease and is retried by the next process once the lease expires (at-least-once).
    async fn drain(&self) {
        let s = &self.shared;
        let all = s.settings.delivery.max_in_flight as u32;
        match tokio::time::timeout(
            s.settings.delivery.shutdown_grace,
            s.slots.acquire_many(all),
        )
        .await
        {
            Ok(_) => tracing::info!("in-flight deliveries finished"),
            Err(_) => tracing::warn!(
                in_flight = all as usize - s.slots.available_permits(),
                "shutdown grace elapsed; unfinished deliveries will be retried after their lease"
            ),
        }
    }
}

fn to_outcome(
    d: &DueDelivery,
    r: AttemptResult,
    affinity: Option<Affinity>,
    schedule: &hookline_core::RetrySchedule,
) -> Outcome {
    let learned_routing_token = match (affinity, r.routing_token, &d.routing_key_header) {
        (Some(a), Some(token), Some(header)) if a.token.as_ref() != Some(&token) => {
            Some(LearnedRoutingToken {
                subscription_id: d.subscription_id.clone(),
                header: header.clone(),
                chat_id: a.chat_id,
                token,
            })
        }
        _ => None,
    };
    let next = match r.verdict {
        Verdict::Delivered => NextState::Succeeded,
        Verdict::Permanent | Verdict::Gone => NextState::Failed,
        Verdict::Retry { after } => match schedule.delay_after(d.attempt) {
            None => NextState::Failed,
            Some(delay) => NextState::RetryAt(Timestamp::now() + after.unwrap_or(delay)),
        },
    };
    Outcome {
        attempt: AttemptRecord {
            delivery_id: d.delivery_id,
            attempt: d.attempt,
            started_at: Timestamp::from_micros(r.started_at),
            duration_ms: r.duration.as_millis() as i64,
            status_code: r.status_code,
            error_kind: r.error_kind,
            error_message: r.error_message,
            response_body: r.response_body,
        },
        next,
        deactivate_subscription: (r.verdict == Verdict::Gone).then(|| Deactivation {
            partner_id: d.partner_id.clone(),
            subscription_id: d.subscription_id.clone(),
            target_url: d.target_url.clone(),
        }),
        learned_routing_token,
    }
}

fn log_attempt(d: &DueDelivery, o: &Outcome) {
    let a = &o.attempt;
    match o.next {
        NextState::Succeeded => tracing::debug!(
            delivery_id = d.delivery_id.get(), event_id = %d.event_id, subscription_id = %d.subscription_id,
            attempt = a.attempt, status = a.status_code, duration_ms = a.duration_ms, "delivered"
        ),
        _ => tracing::info!(
            delivery_id = d.delivery_id.get(), event_id = %d.event_id, subscription_id = %d.subscription_id,
            attempt = a.attempt, status = a.status_code, error_kind = a.error_kind.map(ErrorKind::as_str),
            error = a.error_message.as_deref(), next = ?o.next, "delivery attempt failed"
        ),
    }
}

/// Tells the partner (an account event) that a subscription was deactivated by a `410 Gone`.
/// The deactivation is committed already; a failure here only loses the notification.
async fn announce_deactivation(store: &DynStore, d: &Deactivation, wake: &Notify) {
    tracing::warn!(subscription_id = %d.subscription_id, "receiver answered 410 Gone; subscription deactivated");
    let published = match store
        .get_subscription(&d.partner_id, &d.subscription_id)
        .await
    {
        Ok(Some(sub)) => {
            let events = account_events::disabled_by_receiver(&sub);
            store.publish(events, Timestamp::now()).await.map(|_| ())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    match published {
        Ok(()) => wake.notify_one(),
        Err(e) => tracing::error!(error = %e, "publishing webhook_subscription.disabled failed"),
    }
}

/// Commits outcomes in batches. A failed write is retried; if the store stays down past the
/// retries the outcomes are dropped and their leases expire, so the deliveries are sent again.
async fn write_outcomes(store: DynStore, mut rx: mpsc::Receiver<Outcome>, wake: Arc<Notify>) {
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
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=8 {
            match store.record_outcomes(&batch, Timestamp::now()).await {
                Ok(deactivated) => {
                    for d in deactivated {
                        announce_deactivation(&store, &d, &wake).await;
                    }
                    // A retry may now be due before the claim loop's planned wake-up.
                    if batch
                        .iter()
                        .any(|o| matches!(o.next, NextState::RetryAt(_)))
                    {
                        wake.notify_one();
                    }
                    break;
                }
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
