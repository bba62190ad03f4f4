//! Persistence: a trait per aggregate, one implementation per backend, SQL kept per backend.
//!
//! Everything that must be atomic is one method here (an event and its deliveries; an attempt
//! and the delivery's next state), so no caller can split a transaction by accident.
//!
//! Layout: the traits and the shared vocabulary ([`types`]) live here; control flow both
//! backends share is written once beside them ([`publish_plan`], [`claim`], [`delivery_log`],
//! [`recovery`], `subscription_writes`, `migrate`); `sqlite/` and `postgres/` hold one file
//! per aggregate with that backend's SQL steps (the log in `attempts.rs`, redelivery in
//! `redelivery.rs`). Next: retention purges go to [`AttemptLog`]. Secret rotation is
//! [`SubscriptionStore`]'s (`subscriptions.rs`); dead-endpoint detection rides on the outcome
//! write (`endpoint_health`).

pub mod claim;
pub mod delivery_log;
pub mod endpoint_health;
mod housekeeping;
mod migrate;
mod portal_rows;
pub mod postgres;
pub mod publish_plan;
pub mod recovery;
mod rows;
pub mod sqlite;
mod steps;
mod subscription_writes;
pub mod types;

use async_trait::async_trait;
use hookline_core::{
    ApiKeyHash, ApiKeyId, EventId, PartnerId, PortalSession, RecoveryId, SubscriptionId, Timestamp,
};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use delivery_log::{EventLog, LogEntry, LogPage, LogQuery, LogScope};
pub use hookline_core::{ApiKeyRecord, Partner, Subscription};
pub use housekeeping::{Housekeeping, Leftovers, PurgeBatch, PurgeRequest, StoreStats};
pub use publish_plan::{PlannedDelivery, PublishPlan};
pub use recovery::{NewRecovery, Recovery, RecoveryStatus, RetryOutcome};
pub use types::*;

pub type DynStore = Arc<dyn Store>;

/// A whole store: every aggregate on one backend.
#[async_trait]
pub trait Store:
    PartnerStore + SubscriptionStore + DeliveryQueue + AttemptLog + PortalSessionStore + Housekeeping
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
    async fn list_api_keys(&self, partner_id: &PartnerId) -> StoreResult<Vec<ApiKeySummary>>;
}

/// Subscriptions (always scoped to a partner), their signing secrets (and the previous one
/// during a rotation's grace period), and the routing tokens learned for them.
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
    /// Rotation: `new` (stored form) becomes the signing secret. With `previous_expires_at`,
    /// the secret it replaces stays valid beside it until then (one previous secret: a
    /// rotation during a grace period ends the oldest at once); without, it ends now.
    /// Moves `updated_at` past `now`. False when the partner has no such live subscription.
    async fn rotate_signing_secret(
        &self,
        partner_id: &PartnerId,
        id: &SubscriptionId,
        new: &str,
        previous_expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Every stored previous (rotated-out) signing secret: `(id, stored value)`.
    async fn previous_signing_secrets(&self) -> StoreResult<Vec<(SubscriptionId, String)>>;
    /// Replaces a stored previous secret if it still is `old`; false when it changed meanwhile.
    async fn replace_previous_signing_secret(
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
    /// fence is skipped and logged, not an error), and each subscription's health
    /// ([`endpoint_health`]). Returns the subscriptions this call deactivated: those still
    /// active and still at the target that answered `410 Gone`, and those `policy` finds dead.
    async fn record_outcomes_with(
        &self,
        outcomes: &[Outcome],
        now: Timestamp,
        policy: DisablePolicy,
    ) -> StoreResult<Vec<Deactivation>>;
    /// [`record_outcomes_with`](Self::record_outcomes_with) the default policy.
    async fn record_outcomes(
        &self,
        outcomes: &[Outcome],
        now: Timestamp,
    ) -> StoreResult<Vec<Deactivation>> {
        self.record_outcomes_with(outcomes, now, DisablePolicy::default())
            .await
    }
    /// The earliest `next_attempt_at` after `after` among pending deliveries, to sleep until
    /// then. Work due already is the claim's: after a claim that did not fill its batch, what is
    /// still due belongs to full subscriptions, which wait for a freed slot instead.
    async fn next_due_after(&self, after: Timestamp) -> StoreResult<Option<Timestamp>>;
    async fn delivery_counts(&self) -> StoreResult<DeliveryCounts>;
    /// Redelivers one finished delivery of the partner's subscription: due now, with a fresh
    /// retry schedule (see [`recovery`]). Refused while it is pending or its subscription is
    /// inactive.
    async fn retry_delivery(
        &self,
        partner_id: &PartnerId,
        subscription_id: &SubscriptionId,
        event_id: &EventId,
        now: Timestamp,
    ) -> StoreResult<RetryOutcome>;
    /// Records a recovery with its `total` (failed deliveries in the window now) for the
    /// recovery runner to work off.
    async fn create_recovery(&self, new: &NewRecovery) -> StoreResult<Recovery>;
    async fn get_recovery(
        &self,
        partner_id: &PartnerId,
        id: &RecoveryId,
    ) -> StoreResult<Option<Recovery>>;
    /// Re-queues up to `budget` deliveries of running recoveries (one transaction); how many.
    async fn advance_recoveries(&self, now: Timestamp, budget: usize) -> StoreResult<u64>;
}

/// The attempt log: what each delivery attempt did. Delivery-log queries and retention go here.
#[async_trait]
pub trait AttemptLog: Send + Sync + 'static {
    async fn attempts_for_event(
        &self,
        partner_id: &PartnerId,
        event_id: &EventId,
    ) -> StoreResult<Vec<AttemptRecord>>;
    /// One page of the delivery log, newest first (see [`delivery_log`]).
    async fn delivery_log(&self, query: &LogQuery) -> StoreResult<LogPage>;
    /// One delivery of the partner's subscription with every recorded attempt, oldest first.
    async fn delivery_attempts(
        &self,
        partner_id: &PartnerId,
        subscription_id: &SubscriptionId,
        event_id: &EventId,
    ) -> StoreResult<Option<(LogEntry, Vec<AttemptRecord>)>>;
    /// An event with every delivery of it (operator).
    async fn event_log(
        &self,
        partner_id: &PartnerId,
        event_id: &EventId,
    ) -> StoreResult<Option<EventLog>>;
}

/// Portal links and sessions ([`hookline_core::portal`]), by their token's hash. A row past its
/// `expires_at` is never returned, and is deleted by the next [`create_portal_session`].
///
/// [`create_portal_session`]: PortalSessionStore::create_portal_session
#[async_trait]
pub trait PortalSessionStore: Send + Sync + 'static {
    /// Stores a link or a session, after deleting every row expired at `now`.
    async fn create_portal_session(&self, row: &PortalSession, now: Timestamp) -> StoreResult<()>;
    /// Exchanges the live link `link` for a session stored under `session_hash` with
    /// `csrf_token`, for the link's principal and until the link's `expires_at`, atomically:
    /// the link is deleted, so of two racing exchanges one gets `None`.
    async fn redeem_portal_link(
        &self,
        link: &ApiKeyHash,
        session_hash: &ApiKeyHash,
        csrf_token: &str,
        now: Timestamp,
    ) -> StoreResult<Option<PortalSession>>;
    /// The live session (not a link) stored under `hash`.
    async fn portal_session(
        &self,
        hash: &ApiKeyHash,
        now: Timestamp,
    ) -> StoreResult<Option<PortalSession>>;
    /// Sign-out: the session stops working at once.
    async fn end_portal_session(&self, hash: &ApiKeyHash) -> StoreResult<()>;
}
