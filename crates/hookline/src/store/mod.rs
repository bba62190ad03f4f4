//! Persistence: a trait per aggregate, one implementation per backend, SQL kept per backend.
//!
//! Everything that must be atomic is one method here (an event and its deliveries; an attempt
//! and the delivery's next state), so no caller can split a transaction by accident.
//!
//! Layout: the traits and the shared vocabulary ([`types`]) live here; control flow both
//! backends share is written once beside them ([`publish_plan`], [`claim`],
//! `subscription_writes`, `migrate`); `sqlite/` and `postgres/` hold one file per aggregate
//! with that backend's SQL steps. Next: delivery-log queries and retention purges go to
//! [`AttemptLog`] (`attempts.rs` per backend), secret rotation to [`SubscriptionStore`]
//! (`subscriptions.rs`).

pub mod claim;
mod housekeeping;
mod migrate;
pub mod postgres;
pub mod publish_plan;
mod rows;
pub mod sqlite;
mod steps;
mod subscription_writes;
pub mod types;

use async_trait::async_trait;
use hookline_core::{ApiKeyHash, ApiKeyId, EventId, PartnerId, SubscriptionId, Timestamp};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use hookline_core::{ApiKeyRecord, Partner, Subscription};
pub use housekeeping::{Housekeeping, PurgeBatch, PurgeRequest, StoreStats};
pub use publish_plan::{PlannedDelivery, PublishPlan};
pub use types::*;

pub type DynStore = Arc<dyn Store>;

/// A whole store: every aggregate on one backend.
#[async_trait]
pub trait Store:
    PartnerStore + SubscriptionStore + DeliveryQueue + AttemptLog + Housekeeping
{
    async fn ping(&self) -> StoreResult<()>;
    /// Commits a small write shaped like a publish's (readiness): fails with
    /// [`StoreError::Unavailable`] while the store refuses writes.
    async fn probe_write(&self) -> StoreResult<()>;
}

/// Partners, their API keys, and the operator's settings.
#[async_trait]
pub trait PartnerStore: Send + Sync + 'static {
    async fn admin_token_hash(&self) -> StoreResult<Option<ApiKeyHash>>;
    /// True when no partner exists yet: the first start.
    async fn is_fresh(&self) -> StoreResult<bool>;
    /// First start: stores the admin token hash (when generated), the default partner and its key, atomically.
    async fn bootstrap(
        &self,
        admin_hash: Option<&ApiKeyHash>,
        partner: &Partner,
        key: &ApiKeyRecord,
    ) -> StoreResult<()>;
    async fn create_partner(&self, partner: &Partner) -> StoreResult<()>;
    async fn list_partners(&self) -> StoreResult<Vec<Partner>>;
    async fn partner_exists(&self, partner_id: &PartnerId) -> StoreResult<bool>;
    async fn create_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// False when the key does not exist for that partner (or was already revoked).
    async fn revoke_api_key(
        &self,
        partner_id: &PartnerId,
        key_id: &ApiKeyId,
        now: Timestamp,
    ) -> StoreResult<bool>;
    async fn partner_for_key(&self, hash: &ApiKeyHash) -> StoreResult<Option<PartnerId>>;
}

/// Subscriptions (always scoped to a partner), their signing secrets, and the routing tokens
/// learned for them. Secret rotation goes here next.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + 'static {
    /// Refused with [`StoreError::SubscriptionLimit`] when the partner already has `cap` live
    /// subscriptions: counted in the insert's transaction, with concurrent inserts for the
    /// partner serialised, so racing creates cannot overshoot.
    async fn insert_subscription(&self, new: &NewSubscription, cap: usize) -> StoreResult<()>;
    async fn list_subscriptions(&self, partner_id: &PartnerId) -> StoreResult<Vec<Subscription>>;
    async fn get_subscription(
        &self,
        partner_id: &PartnerId,
        id: &SubscriptionId,
    ) -> StoreResult<Option<Subscription>>;
    /// Writes `sub` if the stored row still has `read_updated_at` (a compare-and-set, so two
    /// concurrent partial updates cannot undo each other). `forget_routing_tokens` drops the
    /// tokens learned under the previous `routing_key_header`.
    async fn update_subscription(
        &self,
        sub: &Subscription,
        read_updated_at: Timestamp,
        forget_routing_tokens: bool,
    ) -> StoreResult<UpdateResult>;
    async fn delete_subscription(
        &self,
        partner_id: &PartnerId,
        id: &SubscriptionId,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Every subscription's stored signing secret, deleted ones included: `(id, stored value)`.
    async fn signing_secrets(&self) -> StoreResult<Vec<(SubscriptionId, String)>>;
    /// Replaces a stored signing secret if it still is `old`; false when it changed meanwhile.
    async fn replace_signing_secret(
        &self,
        id: &SubscriptionId,
        old: &str,
        new: &str,
    ) -> StoreResult<bool>;
    /// The routing token last learned for this subscription and chat.
    async fn routing_token(
        &self,
        subscription_id: &SubscriptionId,
        chat_id: &str,
    ) -> StoreResult<Option<String>>;
}

/// The delivery queue: publishing (events and their deliveries), claiming, outcomes, leases.
#[async_trait]
pub trait DeliveryQueue: Send + Sync + 'static {
    /// Wakes `wake` when another process commits deliveries (PostgreSQL `LISTEN`), until
    /// `cancel`; the caller owns the returned listener task and joins it at shutdown. A
    /// single-process store has nothing to watch and returns `None`.
    async fn watch_wakeups(
        &self,
        _wake: Arc<tokio::sync::Notify>,
        _cancel: CancellationToken,
    ) -> StoreResult<Option<JoinHandle<()>>> {
        Ok(None)
    }
    /// Step one of a publish: fans `events` out over their partners' active subscriptions
    /// ([`Subscription::matches`]); an event repeated within the batch is planned once. Nothing
    /// is written. The caller may then [`lease`](PublishPlan::lease) planned deliveries to
    /// itself before [`commit_publish`](Self::commit_publish).
    async fn plan_publish(&self, events: Vec<NewEvent>) -> StoreResult<PublishPlan>;
    /// Step two: commits every event and its planned deliveries in one transaction. Events whose
    /// id the partner used before are answered from the first acceptance and get no deliveries.
    /// With `lease_until`, the deliveries marked in the plan are committed already leased to
    /// this process and returned ready to send (the common path skips the claim round trip);
    /// without it the marks are ignored.
    async fn commit_publish(
        &self,
        plan: PublishPlan,
        now: Timestamp,
        lease_until: Option<Timestamp>,
    ) -> StoreResult<PublishBatch>;
    /// Plans and commits with nothing leased: every delivery waits for a claim.
    async fn publish(&self, events: Vec<NewEvent>, now: Timestamp) -> StoreResult<PublishBatch> {
        let plan = self.plan_publish(events).await?;
        self.commit_publish(plan, now, None).await
    }
    /// Leases due deliveries (oldest first) until `lease_until`, at most `limit` in all and no
    /// more per subscription than its room (see [`claim`]); the cost does not grow with the
    /// backlog.
    /// Deliveries whose subscription is inactive or deleted are cancelled instead of returned.
    async fn claim_due(&self, req: &ClaimRequest<'_>) -> StoreResult<Claimed>;
    /// Writes each attempt and its delivery's next state, fenced by attempt number (a stale
    /// fence is skipped and logged, not an error). Returns the subscriptions this call
    /// deactivated: those still active and still at the target that answered `410 Gone`.
    async fn record_outcomes(
        &self,
        outcomes: &[Outcome],
        now: Timestamp,
    ) -> StoreResult<Vec<Deactivation>>;
    /// The earliest `next_attempt_at` after `after` among pending deliveries, to sleep until
    /// then. Work due already is the claim's: after a claim that did not fill its batch, what is
    /// still due belongs to full subscriptions, which wait for a freed slot instead.
    async fn next_due_after(&self, after: Timestamp) -> StoreResult<Option<Timestamp>>;
    async fn delivery_counts(&self) -> StoreResult<DeliveryCounts>;
}

/// The attempt log: what each delivery attempt did. Delivery-log queries and retention go here.
#[async_trait]
pub trait AttemptLog: Send + Sync + 'static {
    async fn attempts_for_event(
        &self,
        partner_id: &PartnerId,
        event_id: &EventId,
    ) -> StoreResult<Vec<AttemptRecord>>;
}
