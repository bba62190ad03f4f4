//! The store's vocabulary: what goes in and comes out of the [`Store`](super::Store) traits,
//! beyond the domain types of `hookline_core`.

use hookline_core::{
    DeliveryId, ErrorKind, EventId, EventTime, EventType, PartnerId, PhoneNumber, RoutingHeader,
    SubscriptionId, Timestamp, TraceId,
};
use std::collections::HashMap;

use super::Subscription;

/// A partner's API key as the operator pages list it: never the key or its hash.
/// `list_api_keys` lists the keys not revoked, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeySummary {
    pub id: hookline_core::ApiKeyId,
    pub name: Option<String>,
    pub created_at: Timestamp,
}

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
    /// The `data` 2025-01-01 subscriptions receive: the publisher's `data_by_version`, else
    /// set by the publish plan (`hookline_core::payload::v2025`) when such a subscription
    /// matches a message event; stored beside `data`.
    pub data_v2025: Option<String>,
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
    /// Attempts made before the delivery was last redelivered: the retry schedule counts
    /// from there (`attempt - attempt_base` is the attempt within it).
    pub attempt_base: u32,
    pub subscription_id: SubscriptionId,
    /// As stored; the sender parses it once per subscription and caches the result.
    pub target_url: String,
    /// As stored: possibly sealed (see `hookline_core::sealing`).
    pub signing_secret: String,
    /// The secret a rotation replaced, while it may still be in its grace period.
    pub previous_secret: Option<PreviousSecret>,
    pub routing_id_header: Option<RoutingHeader>,
    pub routing_key_header: Option<RoutingHeader>,
    pub partner_id: PartnerId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub created_at: EventTime,
    pub trace_id: TraceId,
    pub data: String,
    /// The 2025-01-01 `data` stored with the event (see [`NewEvent::data_v2025`]); the signer
    /// uses it for a 2025-01-01 target.
    pub data_v2025: Option<String>,
    /// When the event was accepted, on this node's clock (the ingest→delivery latency).
    pub accepted_at: Timestamp,
}

/// A signing secret a rotation replaced: deliveries are signed with it too (after the current
/// one) until `expires_at`, so receivers can switch secrets without missing a delivery.
#[derive(Clone)]
pub struct PreviousSecret {
    /// As stored, like [`DueDelivery::signing_secret`].
    pub stored: String,
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for PreviousSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreviousSecret(<redacted>, until {:?})", self.expires_at)
    }
}

impl PreviousSecret {
    /// From the two stored columns; `None` when there is no previous secret.
    pub fn from_columns(stored: Option<String>, expires_at: Option<i64>) -> Option<Self> {
        Some(PreviousSecret {
            stored: stored?,
            expires_at: Timestamp::from_micros(expires_at?),
        })
    }
}

pub struct PublishBatch {
    /// One answer per event, in request order.
    pub published: Vec<Published>,
    /// Deliveries committed leased to this process (attempt 1), to send now, each with its index
    /// in [`PublishPlan::deliveries`](super::PublishPlan::deliveries). Planned deliveries marked for leasing but missing here
    /// were not inserted (their event had been accepted before).
    pub claimed: Vec<(usize, DueDelivery)>,
    /// Deliveries committed due now for any worker to claim.
    pub queued: usize,
}

/// How many more deliveries this worker may start per subscription.
pub struct Capacity<'a> {
    /// The limit of a subscription without one of its own in `limits`.
    pub per_subscription_cap: usize,
    /// Deliveries this worker has in flight, by subscription.
    pub in_flight: &'a HashMap<SubscriptionId, usize>,
    /// Subscriptions whose limit is not `per_subscription_cap`: learned by adaptive
    /// concurrency (always below the cap), or 0 while a `Retry-After` pauses them.
    pub limits: &'a HashMap<SubscriptionId, usize>,
}

impl Capacity<'_> {
    pub fn room(&self, subscription_id: &SubscriptionId) -> usize {
        let busy = self.in_flight.get(subscription_id).copied().unwrap_or(0);
        let limit = self.limits.get(subscription_id).copied();
        limit
            .unwrap_or(self.per_subscription_cap)
            .saturating_sub(busy)
    }

    /// The room of every subscription in `in_flight` or `limits`, as a JSON object for SQL that
    /// looks it up by subscription id (any other has `per_subscription_cap`).
    pub fn room_json(&self) -> String {
        let room: HashMap<&SubscriptionId, usize> = self
            .in_flight
            .keys()
            .chain(self.limits.keys())
            .map(|id| (id, self.room(id)))
            .collect();
        serde_json::to_string(&room).expect("map serialises")
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
    /// The delivery's subscription: its health (dead-endpoint detection) follows the outcome.
    pub subscription_id: SubscriptionId,
    pub attempt: AttemptRecord,
    pub next: NextState,
    /// `410 Gone`: the receiver asked us to stop.
    pub deactivate_subscription: Option<Deactivation>,
    /// A routing token the receiver returned that differs from the one sent.
    pub learned_routing_token: Option<LearnedRoutingToken>,
}

/// A subscription to deactivate because its receiver answered `410 Gone` (only while it still
/// points at the target that answered), or one the outcome write found dead.
#[derive(Debug, Clone)]
pub struct Deactivation {
    pub partner_id: PartnerId,
    pub subscription_id: SubscriptionId,
    /// As stored (see [`DueDelivery::target_url`]).
    pub target_url: String,
    pub reason: DeactivationReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeactivationReason {
    /// The receiver answered `410 Gone`.
    Gone,
    /// Every attempt failed since `failing_since`, longer than `HOOKLINE_DISABLE_AFTER`, with
    /// `exhausted` deliveries failed for good (at least `HOOKLINE_DISABLE_MIN_FAILURES`).
    DeadEndpoint {
        failing_since: Timestamp,
        exhausted: u64,
    },
}

impl DeactivationReason {
    /// The `reason` label of `hookline_subscriptions_deactivated_total`.
    pub fn label(&self) -> &'static str {
        match self {
            DeactivationReason::Gone => "gone",
            DeactivationReason::DeadEndpoint { .. } => "dead_endpoint",
        }
    }
}

pub use crate::config::DisablePolicy;

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
    /// The partner has `limit` live subscriptions already (`HOOKLINE_MAX_SUBSCRIPTIONS_PER_PARTNER`).
    #[error("the partner has {limit} live subscriptions already")]
    SubscriptionLimit { limit: usize },
    /// The store cannot take writes now — disk full, read-only, in recovery, unreachable, or
    /// this process is stopping — and a later retry may succeed. The text (with the cause) is
    /// for the log; callers answer 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(anyhow::Error),
}

impl StoreError {
    /// Sorts a failure by its typed cause anywhere in the chain: a SQLite or PostgreSQL error
    /// that means "cannot write now" (see each backend's `is_unavailable`) is
    /// [`StoreError::Unavailable`]; anything else stays [`StoreError::Other`].
    pub fn classify(e: anyhow::Error) -> StoreError {
        let unavailable = e.chain().any(|cause| {
            cause
                .downcast_ref::<rusqlite::Error>()
                .is_some_and(super::sqlite::is_unavailable)
                || cause
                    .downcast_ref::<sqlx::Error>()
                    .is_some_and(super::postgres::is_unavailable)
        });
        if unavailable {
            StoreError::Unavailable(format!("{e:#}"))
        } else {
            StoreError::Other(e)
        }
    }

    /// The same error for another waiter (a group commit answers several requests with one
    /// failure); the class is kept, the cause becomes text.
    pub fn share(&self) -> StoreError {
        match self {
            StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
            StoreError::SubscriptionLimit { limit } => {
                StoreError::SubscriptionLimit { limit: *limit }
            }
            StoreError::DuplicateTargetUrl { existing_id } => StoreError::DuplicateTargetUrl {
                existing_id: existing_id.clone(),
            },
            StoreError::Other(e) => StoreError::Other(anyhow::anyhow!("{e:#}")),
        }
    }
}

impl From<anyhow::Error> for StoreError {
    fn from(e: anyhow::Error) -> Self {
        StoreError::classify(e)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::classify(e.into())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
