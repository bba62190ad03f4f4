//! Deactivation announcements: when a receiver answers `410 Gone`, or its endpoint has been dead
//! for `HOOKLINE_DISABLE_AFTER`, the store deactivates its subscription and the partner is told
//! with a `webhook_subscription.disabled` account event (actor `system`, the reason in
//! `data.summary`), published like any other event through the [`Announcer`] (the Publisher's
//! group commit in a running server). The deactivation is committed already; a failure here
//! loses only the notification.

use async_trait::async_trait;

use crate::account_events;
use crate::store::{
    endpoint_health, Deactivation, DeactivationReason, DynStore, NewEvent, StoreResult,
};

/// Where the engine publishes the events it originates. Implemented by the Publisher, so an
/// announcement shares its group commit and its hand-off to this process's slots, and the
/// engine does not depend on the publishing module.
#[async_trait]
pub trait Announcer: Send + Sync + 'static {
    async fn publish(&self, events: Vec<NewEvent>) -> StoreResult<()>;
}

/// Publishes `webhook_subscription.disabled` for a subscription hookline deactivated.
pub async fn announce_deactivation(store: &DynStore, announcer: &dyn Announcer, d: &Deactivation) {
    let summary = match d.reason {
        DeactivationReason::Gone => {
            tracing::warn!(subscription_id = %d.subscription_id, "receiver answered 410 Gone; subscription deactivated");
            None
        }
        DeactivationReason::DeadEndpoint {
            failing_since,
            exhausted,
        } => {
            tracing::warn!(subscription_id = %d.subscription_id, failing_since = %failing_since.rfc3339(),
                exhausted, "every delivery attempt failed for HOOKLINE_DISABLE_AFTER; subscription deactivated");
            Some(endpoint_health::dead_summary(failing_since, exhausted))
        }
    };
    let published = match store
        .get_subscription(&d.partner_id, &d.subscription_id)
        .await
    {
        Ok(Some(sub)) => {
            let events = match &summary {
                Some(summary) => account_events::disabled_by_platform(&sub, summary),
                None => account_events::disabled_by_receiver(&sub),
            };
            announcer.publish(events).await
        }
        // Deleted meanwhile: the deletion was announced instead.
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = published {
        tracing::error!(error = %e, subscription_id = %d.subscription_id, "publishing webhook_subscription.disabled failed");
    }
}
