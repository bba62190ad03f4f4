//! Test events (`POST /v3/webhook-subscriptions/{id}/test`): one synthetic event through the
//! normal signed path to one subscription. It is published like any event (so it is in the
//! delivery log: event, delivery and attempt rows), but planned for that subscription only and
//! committed leased to the caller, which sends its only attempt at once and waits for it. It is
//! never retried; its outcome is recorded like any other (a `410 Gone` still deactivates).

use hookline_core::{SubscriptionId, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use super::announcements::{announce_deactivation, Announcer};
use super::attempt::{self, AttemptRunner};
use super::slots::Slots;
use super::ListenHub;
use crate::config::{DeliverySettings, DisablePolicy};
use crate::secrets::Secrets;
use crate::store::{AttemptRecord, DynStore, NewEvent, StoreResult};

pub struct TestSender {
    store: DynStore,
    runner: AttemptRunner,
    lease: Duration,
    policy: DisablePolicy,
    announcer: Arc<dyn Announcer>,
    /// The dispatcher's: a test attempt holds a slot like any other, so the in-flight caps
    /// (`HOOKLINE_MAX_IN_FLIGHT`, `…_PER_SUBSCRIPTION`) bound test events too.
    slots: Option<Slots>,
}

/// What [`TestSender::send`] came to.
pub enum Tested {
    /// Sent; its attempt, once recorded.
    Attempted(AttemptRecord),
    /// The subscription does not receive the event (it was deactivated, changed or deleted
    /// meanwhile): nothing was written.
    NotReceived,
    /// The subscription (or the process) has as many attempts in flight as its cap allows:
    /// nothing was written.
    Busy,
    /// The node is shutting down and starts no attempt: nothing was written.
    Stopping,
}

impl TestSender {
    pub fn new(
        store: DynStore,
        settings: &DeliverySettings,
        secrets: Secrets,
        announcer: Arc<dyn Announcer>,
        listen: ListenHub,
    ) -> anyhow::Result<Self> {
        Ok(TestSender {
            runner: AttemptRunner::new(store.clone(), settings, secrets, listen)?,
            store,
            lease: settings.lease,
            policy: settings.disable_policy,
            announcer,
            slots: None,
        })
    }

    /// Takes a slot of `slots` for each test attempt.
    pub fn sharing(mut self, slots: Option<Slots>) -> Self {
        self.slots = slots;
        self
    }

    /// Sends `event` to `subscription_id` only and answers with its attempt, once recorded.
    pub async fn send(
        &self,
        event: NewEvent,
        subscription_id: &SubscriptionId,
    ) -> StoreResult<Tested> {
        let permit = match &self.slots {
            Some(slots) => match slots.try_acquire(subscription_id) {
                Some(permit) => Some(permit),
                None if slots.is_closed() => return Ok(Tested::Stopping),
                None => return Ok(Tested::Busy),
            },
            None => None,
        };
        let mut plan = self
            .store
            .plan_publish(vec![event])
            .await?
            .only(subscription_id);
        if plan.deliveries().is_empty() {
            return Ok(Tested::NotReceived);
        }
        plan.lease(0);
        let now = Timestamp::now();
        let mut batch = self
            .store
            .commit_publish(plan, now, Some(now + self.lease))
            .await?;
        let Some((_, due)) = batch.claimed.pop() else {
            return Ok(Tested::NotReceived);
        };
        let span = attempt::span(&due);
        let ran = self.runner.run_test(&due).instrument(span).await;
        let deactivated = self
            .store
            .record_outcomes_with(
                std::slice::from_ref(&ran.outcome),
                Timestamp::now(),
                self.policy,
            )
            .await?;
        drop(permit);
        for d in deactivated {
            announce_deactivation(&self.store, self.announcer.as_ref(), &d).await;
        }
        Ok(Tested::Attempted(ran.outcome.attempt))
    }
}
