//! Persistence: one trait, one implementation per backend, SQL kept per backend.
//!
//! Everything that must be atomic is one method here (an event and its deliveries; an attempt
//! and the delivery's next state), so no caller can split a transaction by accident.

pub mod claim;
mod db_clock;
pub mod postgres;
pub mod publish_plan;
mod rows;
pub mod sqlite;

use async_trait::async_trait;
use hookline_core::{
    ApiKeyHash, ApiKeyId, DeliveryId, ErrorKind, EventId, EventTime, EventType, PartnerId,
    PhoneNumber, RoutingHeader, SubscriptionId, Timestamp, TraceId,
};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use hookline_core::{ApiKeyRecord, Partner, Subscription};
pub use publish_plan::{PlannedDelivery, PublishPlan};

pub type DynStore = Arc<dyn Store>;

/// The signing secret travels separately so listing code never holds it.
pub struct NewSubscription {
    pub subscription: Subscription,
    /// As stored: sealed when a secret key is configured, else the plain `whsec_` value.
    pub signing_secret: String,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub partner_id: PartnerId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub phone_number: Option<PhoneNumber>,
    /// The publisher's text, verbatim into the envelope.
    pub created_at: EventTime,
    pub trace_id: TraceId,
    /// The publisher's JSON object, verbatim.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub event_id: EventId,
    pub deliveries: u32,
    /// The event id had been accepted before: nothing new was scheduled.
    pub duplicate: bool,
}

/// A claimed delivery with everything needed to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery_id: DeliveryId,
    /// The number of this attempt (1-based); fences the outcome write.
    pub attempt: u32,
    pub subscription_id: SubscriptionId,
    /// As stored; the sender parses it once per subscription and caches the result.
    pub target_url: String,
    /// As stored: possibly sealed (see `hookline_core::sealing`).
    pub signing_secret: String,
    pub routing_id_header: Option<RoutingHeader>,
    pub routing_key_header: Option<RoutingHeader>,
    pub partner_id: PartnerId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub created_at: EventTime,
    pub trace_id: TraceId,
    pub data: String,
}

pub struct PublishBatch {
    /// One answer per event, in request order.
    pub published: Vec<Published>,
    /// Deliveries committed leased to this process (attempt 1), to send now, each with its index
    /// in [`PublishPlan::deliveries`]. Planned deliveries marked for leasing but missing here
    /// were not inserted (their event had been accepted before).
    pub claimed: Vec<(usize, DueDelivery)>,
    /// Deliveries committed due now for any worker to claim.
    pub queued: usize,
}

/// How many more deliveries this worker may start per subscription.
pub struct Capacity<'a> {
    pub per_subscription_cap: usize,
    /// Deliveries this worker has in flight, by subscription.
    pub in_flight: &'a HashMap<SubscriptionId, usize>,
}

impl Capacity<'_> {
    pub fn room(&self, subscription_id: &SubscriptionId) -> usize {
        let busy = self.in_flight.get(subscription_id).copied().unwrap_or(0);
        self.per_subscription_cap.saturating_sub(busy)
    }

    /// The in-flight map as a JSON object, for SQL that looks counts up by subscription id.
    pub fn in_flight_json(&self) -> String {
        serde_json::to_string(self.in_flight).expect("map serialises")
    }
}

pub struct Claimed {
    /// Leased and ready to send.
    pub deliveries: Vec<DueDelivery>,
    /// More is due right now than this claim handed out: its batch was full, it cancelled
    /// deliveries of inactive or deleted subscriptions instead, or (PostgreSQL) another node took
    /// rows it had chosen. Claim again at once.
    pub more_due: bool,
    /// Due work was left because its subscription had no room: claim again when a slot frees.
    pub held_back: bool,
}

impl Claimed {
    /// A claim that handed nothing out.
    pub fn nothing(more_due: bool, held_back: bool) -> Self {
        Claimed {
            deliveries: Vec::new(),
            more_due,
            held_back,
        }
    }
}

pub struct ClaimRequest<'a> {
    pub now: Timestamp,
    pub lease_until: Timestamp,
    pub limit: u32,
    pub capacity: Capacity<'a>,
}

#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: DeliveryId,
    pub attempt: u32,
    pub started_at: Timestamp,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub error_kind: Option<ErrorKind>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextState {
    Succeeded,
    RetryAt(Timestamp),
    Failed,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub attempt: AttemptRecord,
    pub next: NextState,
    /// `410 Gone`: the receiver asked us to stop.
    pub deactivate_subscription: Option<Deactivation>,
    /// A routing token the receiver returned that differs from the one sent.
    pub learned_routing_token: Option<LearnedRoutingToken>,
}

/// A subscription to deactivate because its receiver answered `410 Gone`; only while it still
/// points at the target that answered.
#[derive(Debug, Clone)]
pub struct Deactivation {
    pub partner_id: PartnerId,
    pub subscription_id: SubscriptionId,
    /// As stored (see [`DueDelivery::target_url`]).
    pub target_url: String,
}

/// Delivery affinity (CONTRACT.md §3.6): a token to echo on later deliveries for one chat.
#[derive(Debug, Clone)]
pub struct LearnedRoutingToken {
    pub subscription_id: SubscriptionId,
    /// The `routing_key_header` the token came back in; stored only while the subscription
    /// still uses that header (clearing or renaming it drops the tokens).
    pub header: RoutingHeader,
    pub chat_id: String,
    pub token: String,
}

/// What a conditional subscription update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateResult {
    Updated,
    /// Deleted (or never existed for this partner).
    Gone,
    /// Changed by someone else since it was read; read again and reapply.
    Stale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryCounts {
    pub pending: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("target_url is already used by subscription {existing_id}")]
    DuplicateTargetUrl { existing_id: SubscriptionId },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Other(e.into())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn ping(&self) -> StoreResult<()>;

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

    // Operator state.
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

    // Subscriptions, always scoped to a partner.
    async fn insert_subscription(&self, new: &NewSubscription) -> StoreResult<()>;
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

    // The delivery queue.
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
    /// The routing token last learned for this subscription and chat.
    async fn routing_token(
        &self,
        subscription_id: &SubscriptionId,
        chat_id: &str,
    ) -> StoreResult<Option<String>>;
    async fn attempts_for_event(
        &self,
        partner_id: &PartnerId,
        event_id: &EventId,
    ) -> StoreResult<Vec<AttemptRecord>>;
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every migration file is embedded and applied, in order, on both backends: a file added to
    /// `migrations/` but not listed would silently never run.
    #[test]
    fn every_migration_file_is_embedded_in_order() {
        for (backend, listed) in [
            ("sqlite", super::sqlite::MIGRATIONS),
            ("postgres", super::postgres::MIGRATIONS),
        ] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend);
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            assert_eq!(files.len(), listed.len(), "{backend}: {files:?}");
            for (n, ((version, sql), file)) in listed.iter().zip(&files).enumerate() {
                assert_eq!(
                    *version,
                    n as i64 + 1,
                    "{backend}: versions count up from 1"
                );
                let name = file.file_name().unwrap().to_string_lossy();
                assert!(
                    name.starts_with(&format!("{version:04}_")),
                    "{backend}: {name}"
                );
                assert_eq!(
                    *sql,
                    std::fs::read_to_string(file).unwrap(),
                    "{backend}: {name}"
                );
            }
        }
    }
}
