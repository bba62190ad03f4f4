//! The claim loop. It never waits on a receiver: each claimed delivery runs in its own task,
//! holding a [`Permit`] of the process's [`Slots`], so a dead endpoint can hold at most its own
//! share of slots while every other subscription keeps flowing.

use hookline_core::time::now_micros;
use hookline_core::{SubscriptionId, Timestamp};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::attempt::{self, AttemptRunner};
use super::slots::{Permit, Reservation, Slots};
use crate::account_events;
use crate::config::Settings;
use crate::store::{
    Capacity, ClaimRequest, Deactivation, DueDelivery, DynStore, NextState, Outcome,
};

/// Most deliveries claimed in one query.
const CLAIM_BATCH: u32 = 256;
/// When fewer slots than this are free, the claim loop waits up to [`BATCH_WINDOW`] for more.
fn low_water(settings: &Settings) -> usize {
    (settings.max_in_flight / 8).clamp(1, 64)
}
const BATCH_WINDOW: Duration = Duration::from_millis(2);
/// Most outcomes committed in one transaction.
const OUTCOME_BATCH: usize = 512;
/// How long a small batch of outcomes waits for company before it is written.
const OUTCOME_GATHER: Duration = Duration::from_millis(5);

/// A cheap handle: the claim loop ([`Dispatcher::run`]) and the publisher (which hands fresh
/// deliveries over directly, each with its [`Permit`]) share one set of slots.
#[derive(Clone)]
pub struct Dispatcher {
    shared: Arc<Shared>,
}

struct Shared {
    store: DynStore,
    settings: Arc<Settings>,
    wake: Arc<Notify>,
    runner: AttemptRunner,
    slots: Slots,
    /// Taken at shutdown: nothing more starts and the outcome writer can finish.
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
                runner: AttemptRunner::new(store.clone(), &settings)?,
                slots: Slots::new(
                    settings.max_in_flight,
                    settings.max_in_flight_per_subscription,
                ),
                store,
                settings,
                wake,
                outcomes: Mutex::new(Some(tx)),
                outcomes_rx: Mutex::new(Some(rx)),
            }),
        })
    }

    /// A slot for a fresh delivery to `subscription_id`, if both caps allow one now.
    pub fn try_acquire(&self, subscription_id: &SubscriptionId) -> Option<Permit> {
        self.shared.slots.try_acquire(subscription_id)
    }

    /// Sends a delivery that holds its slot; the slot is freed when the attempt's outcome is
    /// queued for recording.
    pub fn start(&self, delivery: DueDelivery, permit: Permit) {
        self.spawn_attempt(delivery, Reservation::Granted(permit));
    }

    fn spawn_attempt(&self, delivery: DueDelivery, reservation: Reservation) {
        let Some(outcomes) = self.shared.outcomes.lock().expect("not poisoned").clone() else {
            // Shutting down: an outcome could not be recorded, so do not send at all; the lease
            // expires and the delivery goes out once, from the next process.
            return;
        };
        let this = self.clone();
        let span = attempt::span(&delivery);
        tokio::spawn(
            async move {
                let Some(_permit) = reservation.ready().await else {
                    return; // closed while waiting for a slot: the lease expires, as above
                };
                let outcome = this.shared.runner.run(&delivery).await;
                if outcomes.send(outcome).await.is_err() {
                    tracing::warn!(
                        "shutting down: outcome not recorded; the delivery is retried after its lease"
                    );
                }
            }
            .instrument(span),
        );
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
            let free = s.slots.free();
            if free < low_water(&s.settings) {
                // Claiming one delivery per finished one costs a transaction each: wait until a
                // batch's worth of slots is free (or briefly, when the receivers are slow).
                tokio::select! {
                    _ = s.slots.freed() => {}
                    _ = cancel.cancelled() => break,
                }
                if s.slots.free() < low_water(&s.settings) {
                    tokio::select! {
                        _ = tokio::time::sleep(BATCH_WINDOW) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
            }
            let free = s.slots.free();
            if free == 0 {
                continue;
            }
            let limit = (free as u32).min(CLAIM_BATCH);
            let cap = s.settings.max_in_flight_per_subscription;
            let in_flight = s.slots.in_flight();
            let now = Timestamp::now();
            let request = ClaimRequest {
                now,
                lease_until: now + s.settings.lease,
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
                // Usually granted at once; waits if a publish hand-off took the room since the
                // claim's snapshot of `in_flight`.
                let reservation = s.slots.reserve(&delivery.subscription_id);
                self.spawn_attempt(delivery, reservation);
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
                _ = s.slots.freed(), if held_back => {
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
        s.slots.close();
        let outcomes = s.outcomes.lock().expect("not poisoned").take();
        drop(outcomes);
        self.drain().await;
        if tokio::time::timeout(s.settings.delivery_timeout, writer)
            .await
            .is_err()
        {
            tracing::warn!("outcome writer still busy at shutdown; unrecorded deliveries retry after their lease");
        }
    }

    /// How long to sleep when nothing wakes us: until the earliest delivery due after the claim
    /// at `claimed_at`, at most the poll interval.
    async fn until_next_due(&self, claimed_at: Timestamp) -> Duration {
        let poll = self.shared.settings.poll_interval;
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
        match tokio::time::timeout(s.settings.shutdown_grace, s.slots.drained()).await {
            Ok(()) => tracing::info!("in-flight deliveries finished"),
            Err(_) => tracing::warn!(
                in_flight = s.slots.held(),
                "shutdown grace elapsed; unfinished deliveries will be retried after their lease"
            ),
        }
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
