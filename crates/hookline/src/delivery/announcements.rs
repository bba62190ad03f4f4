//! 410 announcements: when a receiver answers `410 Gone`, the store deactivates its subscription
//! and the partner is told with a `webhook_subscription.disabled` account event, published like
//! any other event through the [`Announcer`] (the Publisher's group commit in a running server).
//! The deactivation is committed already; a failure here loses only the notification.

use async_trait::async_trait;

use crate::account_events;
use crate::store::{Deactivation, DynStore, NewEvent, StoreResult};

/// Where the engine publishes the events it originates. Implemented by the Publisher, so an
/// announcement shares its group commit and its hand-off to this process's slots, and the
/// engine does not depend on the publishing module.
#[async_trait]
pub trait Announcer: Send + Sync + 'static {
    async fn publish(&self, events: Vec<NewEvent>) -> StoreResult<()>;
}

/// Publishes `webhook_subscription.disabled` for a subscription a `410 Gone` deactivated.
pub(super) async fn announce_deactivation(
    store: &DynStore,
    announcer: &dyn Announcer,
    d: &Deactivation,
) {
    tracing::warn!(subscription_id = %d.subscription_id, "receiver answered 410 Gone; subscription deactivated");
    let published = match store
        .get_subscription(&d.partner_id, &d.subscription_id)
        .await
    {
        Ok(Some(sub)) => {
            announcer
                .publish(account_events::disabled_by_receiver(&sub))
                .await
        }
        // Deleted meanwhile: the deletion was announced instead.
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = published {
        tracing::error!(error = %e, subscription_id = %d.subscription_id, "publishing webhook_subscription.disabled failed");
    }
}
