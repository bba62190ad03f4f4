//! The engine's handle. It owns the process's delivery [`Slots`], starts each attempt in its
//! own task holding a [`Permit`], and runs the [`ClaimLoop`] and the [`OutcomeRecorder`] until
//! shutdown, which it drives in order: stop claiming and hand-offs, let in-flight attempts
//! finish within the grace period, then let the recorder write what they queued.

use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::announcements::Announcer;
use super::attempt::{self, AttemptRunner};
use super::claim_loop::ClaimLoop;
use super::outcome_recorder::{OutcomeRecorder, QUEUE_CAPACITY};
use super::slots::{Permit, Reservation, Slots};
use crate::config::DeliverySettings;
use crate::secrets::Secrets;
use crate::store::{DueDelivery, DynStore, Outcome};
use hookline_core::SubscriptionId;

/// A cheap handle: the claim loop and the publisher (which hands fresh deliveries over
/// directly, each with its [`Permit`]) share one set of slots.
#[derive(Clone)]
pub struct Dispatcher {
    shared: Arc<Shared>,
}

struct Shared {
    store: DynStore,
    settings: Arc<DeliverySettings>,
    wake: Arc<Notify>,
    runner: AttemptRunner,
    slots: Slots,
    /// Taken at shutdown: nothing more starts, and the recorder ends once the attempts that
    /// hold a clone have queued their outcomes.
    outcomes: Mutex<Option<mpsc::Sender<Outcome>>>,
    outcomes_rx: Mutex<Option<mpsc::Receiver<Outcome>>>,
}

impl Dispatcher {
    pub fn new(
        store: DynStore,
        settings: Arc<DeliverySettings>,
        secrets: Secrets,
        wake: Arc<Notify>,
        listen: super::ListenHub,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel::<Outcome>(QUEUE_CAPACITY);
        Ok(Dispatcher {
            shared: Arc::new(Shared {
                runner: AttemptRunner::new(store.clone(), &settings, secrets, listen)?,
                slots: Slots::with_adaptive(
                    settings.max_in_flight,
                    settings.max_in_flight_per_subscription,
                    settings.adaptive_concurrency,
                ),
                store,
                settings,
                wake,
                outcomes: Mutex::new(Some(tx)),
                outcomes_rx: Mutex::new(Some(rx)),
            }),
        })
    }

    /// A slot for a fresh delivery to `subscription_id`, if both caps allow one now (never
    /// while shutting down).
    pub fn try_acquire(&self, subscription_id: &SubscriptionId) -> Option<Permit> {
        self.shared.slots.try_acquire(subscription_id)
    }

    /// The slots every attempt of this process holds one of (test events' too).
    pub fn slots(&self) -> Slots {
        self.shared.slots.clone()
    }

    /// Attempts in flight (or waiting for a slot) in this process: in all, and the most for
    /// one subscription.
    pub fn in_flight(&self) -> (usize, usize) {
        let slots = &self.shared.slots;
        let most = slots.in_flight().into_values().max().unwrap_or(0);
        (slots.held(), most)
    }

    /// Sends a delivery that holds its slot; the slot is freed once the attempt's outcome is
    /// queued for recording.
    pub fn start(&self, delivery: DueDelivery, permit: Permit) {
        self.spawn_attempt(delivery, Reservation::Granted(permit));
    }

    pub(super) fn spawn_attempt(&self, delivery: DueDelivery, reservation: Reservation) {
        let Some(outcomes) = self.shared.outcomes.lock().expect("not poisoned").clone() else {
            // Shutting down: an outcome could not be recorded, so do not send at all; the lease
            // expires and the delivery goes out once, from the next process.
            return;
        };
        let this = self.clone();
        let span = attempt::span(&delivery);
        let waits = matches!(reservation, Reservation::Waiting(_));
        tokio::spawn(
            async move {
                let Some(permit) = reservation.ready().await else {
                    return; // closed while waiting for a slot: the lease expires, as above
                };
                let delivery = match waits {
                    true => match this.recheck(delivery).await {
                        Some(d) => d,
                        None => return,
                    },
                    false => delivery,
                };
                let ran = this.shared.runner.run(&delivery).await;
                permit.report(ran.signal);
                if outcomes.send(ran.outcome).await.is_err() {
                    tracing::warn!(
                        "shutting down: outcome not recorded; the delivery is retried after its lease"
                    );
                }
            }
            .instrument(span),
        );
    }

    /// A claimed delivery that waited for a slot may have been claimed before a change its
    /// caller has since been answered for: a DELETE or a deactivation (it is not sent; the next
    /// claim cancels the row) or a new `target_url` or routing headers (it goes as they say now).
    /// A store that cannot say leaves it as claimed: sent, at least once.
    async fn recheck(&self, mut d: DueDelivery) -> Option<DueDelivery> {
        let store = &self.shared.store;
        match store
            .get_subscription(&d.partner_id, &d.subscription_id)
            .await
        {
            Ok(Some(sub)) if sub.is_active => {
                // Everything a PUT may have changed that the request carries.
                d.target_url = sub.target_url.as_str().to_owned();
                d.routing_id_header = sub.routing_id_header;
                d.routing_key_header = sub.routing_key_header;
                Some(d)
            }
            Ok(_) => {
                tracing::debug!("the subscription was deleted or deactivated while the delivery waited for a slot; not sent");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not re-read the subscription after waiting for a slot; sending as claimed");
                Some(d)
            }
        }
    }

    /// Claims and delivers until `cancel`, then shuts down in order. `announcer` publishes the
    /// account events of `410 Gone` deactivations; it must keep working until this returns.
    pub async fn run(self, cancel: CancellationToken, announcer: Arc<dyn Announcer>) {
        let s = self.shared.clone();
        let rx = s
            .outcomes_rx
            .lock()
            .expect("not poisoned")
            .take()
            .expect("run is called once");
        let recorder = OutcomeRecorder {
            store: s.store.clone(),
            wake: s.wake.clone(),
            announcer,
            policy: s.settings.disable_policy,
        };
        let recorder = tokio::spawn(recorder.run(rx));
        self.claim_loop(cancel).run().await;
        self.shut_down(recorder).await;
    }

    pub(super) fn claim_loop(&self, cancel: CancellationToken) -> ClaimLoop {
        let s = &self.shared;
        ClaimLoop {
            dispatcher: self.clone(),
            store: s.store.clone(),
            settings: s.settings.clone(),
            wake: s.wake.clone(),
            slots: s.slots.clone(),
            cancel,
        }
    }

    /// Stops hand-offs and waiting reservations, waits for in-flight attempts up to the grace
    /// period, then lets the recorder flush. Whatever is unfinished keeps its lease and is
    /// retried by the next process once the lease expires (at-least-once).
    async fn shut_down(&self, mut recorder: JoinHandle<()>) {
        let s = &self.shared;
        s.slots.close();
        drop(s.outcomes.lock().expect("not poisoned").take());
        match tokio::time::timeout(s.settings.shutdown_grace, s.slots.drained()).await {
            Ok(()) => tracing::info!("in-flight deliveries finished"),
            Err(_) => tracing::warn!(
                in_flight = s.slots.held(),
                "shutdown grace elapsed; unfinished deliveries will be retried after their lease"
            ),
        }
        if tokio::time::timeout(s.settings.timeout, &mut recorder)
            .await
            .is_err()
        {
            // Owned to the end: stopped, not left running past the process's shutdown.
            recorder.abort();
            tracing::warn!("outcome recorder still busy at shutdown; unrecorded deliveries retry after their lease");
        }
    }
}
