//! The one place that knows the store trait's signatures: opening a store, building partners,
//! subscriptions and events, publishing, claiming and writing outcomes. Scenarios use only
//! these helpers and the fields of what the store returns.

use crate::common::{Backend, PgDatabase};
use hookline::store::postgres::PostgresStore;
use hookline::store::sqlite::SqliteStore;
pub use hookline::store::{
    ApiKeyRecord, AttemptRecord, DeliveryCounts, DueDelivery, DynStore, NewEvent, Partner,
    Published, StoreError, StoreResult, Subscription, UpdateResult,
};
use hookline::store::{
    Capacity, ClaimRequest, Claimed, Deactivation, DeactivationReason, LearnedRoutingToken,
    NewSubscription, NextState, Outcome,
};
use hookline_core::{
    ErrorKind, EventId, EventTime, EventType, PartnerId, PhoneNumber, RoutingHeader,
    SubscriptionId, TargetUrl, Timestamp, TraceId,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A point in time as the store takes it.
pub type Ts = Timestamp;
/// A partner id as the store takes it.
pub type Pid = PartnerId;

/// Every scenario's clock starts here (2026-03-01T00:00:00Z) and moves only when it says so.
const T0: i64 = 1_772_323_200_000_000;

/// `secs` seconds after the start of the scenario's clock. Scenarios space their instants whole
/// seconds apart: the PostgreSQL store shifts `now` by its measured offset to the database's
/// clock (microseconds on one machine), which must never reorder two instants.
pub fn at(secs: i64) -> Ts {
    Timestamp::from_micros(T0 + secs * 1_000_000)
}

/// `t` is `expected` as a store reports it back. The PostgreSQL store converts times it returns
/// from the database's clock with its current offset, which may have been measured again
/// (by microseconds) since the time was written; a second is far beyond that.
pub fn near(t: Ts, expected: Ts) -> bool {
    t.since(expected).max(expected.since(t)) < Duration::from_secs(1)
}

/// How long a claim leases what it hands out.
pub const LEASE_SECS: u64 = 30;
const LEASE: Duration = Duration::from_secs(LEASE_SECS);

/// A store opened directly (no server), on a fresh file or database that lives as long as it.
pub struct Fixture {
    pub store: DynStore,
    _sqlite_dir: Option<tempfile::TempDir>,
    _pg: Option<PgDatabase>,
}

impl Fixture {
    pub async fn open(backend: Backend) -> Fixture {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let store = SqliteStore::open(&dir.path().join("hookline.db"))
                    .await
                    .unwrap();
                Fixture {
                    store: Arc::new(store),
                    _sqlite_dir: Some(dir),
                    _pg: None,
                }
            }
            Backend::Postgres => {
                let db = PgDatabase::create().await;
                let store = PostgresStore::connect(&db.url, 8).await.unwrap();
                Fixture {
                    store: Arc::new(store),
                    _sqlite_dir: None,
                    _pg: Some(db),
                }
            }
        }
    }

    /// The database file, on SQLite.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self._sqlite_dir
            .as_ref()
            .map(|d| d.path().join("hookline.db"))
    }

    /// A new partner, stored; its id.
    pub async fn partner(&self) -> Pid {
        let partner = partner_record("acme", at(0));
        self.store.create_partner(&partner).await.unwrap();
        partner.id
    }

    /// Creates the subscription `spec` describes for `partner`, stored as of `at(0)`.
    pub async fn subscribe(&self, partner: &Pid, spec: Spec) -> Subscription {
        self.try_subscribe(partner, spec).await.unwrap()
    }

    /// [`subscribe`](Self::subscribe), answering the store's refusal instead of failing.
    pub async fn try_subscribe(&self, partner: &Pid, spec: Spec) -> StoreResult<Subscription> {
        self.try_subscribe_capped(partner, spec, usize::MAX).await
    }

    /// [`try_subscribe`](Self::try_subscribe) for a partner allowed `cap` live subscriptions.
    pub async fn try_subscribe_capped(
        &self,
        partner: &Pid,
        spec: Spec,
        cap: usize,
    ) -> StoreResult<Subscription> {
        let subscription = Subscription {
            id: SubscriptionId::generate(),
            partner_id: partner.clone(),
            target_url: spec.url.unwrap_or_else(fresh_url),
            subscribed_events: spec.events.iter().map(|e| event_type(e)).collect(),
            phone_numbers: spec.phones.iter().map(|p| phone(p)).collect(),
            is_active: spec.active,
            routing_id_header: None,
            routing_key_header: spec.routing_key_header.map(header),
            created_at: at(0),
            updated_at: at(0),
        };
        self.store
            .insert_subscription(
                &NewSubscription {
                    subscription: subscription.clone(),
                    signing_secret: SECRET.into(),
                },
                cap,
            )
            .await?;
        Ok(subscription)
    }

    /// The subscription as stored now (None once deleted).
    pub async fn reread(&self, sub: &Subscription) -> Option<Subscription> {
        self.store
            .get_subscription(&sub.partner_id, &sub.id)
            .await
            .unwrap()
    }

    pub async fn delete(&self, sub: &Subscription, now: Ts) -> bool {
        self.store
            .delete_subscription(&sub.partner_id, &sub.id, now)
            .await
            .unwrap()
    }

    /// Updates the subscription as the API does: `change` applied to the version `read`,
    /// stamped `now`, written only if the stored row is still that version; tokens learned
    /// under the routing key header are dropped when the change replaces that header.
    pub async fn update(
        &self,
        read: &Subscription,
        now: Ts,
        change: impl FnOnce(&mut Subscription),
    ) -> UpdateResult {
        self.try_update(read, now, change).await.unwrap()
    }

    /// [`update`](Self::update), answering the store's refusal instead of failing.
    pub async fn try_update(
        &self,
        read: &Subscription,
        now: Ts,
        change: impl FnOnce(&mut Subscription),
    ) -> StoreResult<UpdateResult> {
        let mut sub = read.clone();
        change(&mut sub);
        sub.updated_at = now;
        let forget_routing_tokens = sub.routing_key_header != read.routing_key_header;
        self.store
            .update_subscription(&sub, read.updated_at, forget_routing_tokens)
            .await
    }

    /// The partner's live subscriptions as [`ids`] lists them.
    pub async fn listed(&self, partner: &Pid) -> Vec<String> {
        let subs = self.store.list_subscriptions(partner).await.unwrap();
        ids(&subs.iter().collect::<Vec<_>>())
    }

    /// Publishes with nothing leased at commit: every new delivery waits in the queue.
    pub async fn publish(&self, events: &[NewEvent], now: Ts) -> Vec<Published> {
        publish_on(&self.store, events, now).await
    }

    /// Publishes with a slot for every new delivery, so each is committed leased to the
    /// caller until `now + LEASE_SECS` and returned ready to send.
    pub async fn publish_leased(
        &self,
        events: &[NewEvent],
        now: Ts,
    ) -> (Vec<Published>, Vec<DueDelivery>) {
        self.publish_leasing(events, now, |_| true).await
    }

    /// Publishes with a slot for each new delivery to a subscription `slot_for` accepts: those
    /// are committed leased until `now + LEASE_SECS` and returned; the rest are due at once.
    pub async fn publish_leasing(
        &self,
        events: &[NewEvent],
        now: Ts,
        slot_for: impl Fn(&SubscriptionId) -> bool,
    ) -> (Vec<Published>, Vec<DueDelivery>) {
        let mut plan = self.store.plan_publish(events.to_vec()).await.unwrap();
        let wanted: Vec<usize> = (0..plan.deliveries().len())
            .filter(|i| slot_for(plan.deliveries()[*i].subscription_id()))
            .collect();
        for i in wanted {
            plan.lease(i);
        }
        let batch = self
            .store
            .commit_publish(plan, now, Some(now + LEASE))
            .await
            .unwrap();
        let leased = batch.claimed.into_iter().map(|(_, d)| d).collect();
        (batch.published, leased)
    }

    /// A claim at `now` leasing until `now + LEASE_SECS`.
    pub async fn claim(&self, now: Ts, room: Room<'_>) -> Claimed {
        let in_flight: HashMap<SubscriptionId, usize> =
            room.busy.iter().map(|(s, n)| (s.id.clone(), *n)).collect();
        let req = ClaimRequest {
            now,
            lease_until: now + LEASE,
            limit: room.limit,
            capacity: Capacity {
                per_subscription_cap: room.cap,
                in_flight: &in_flight,
                limits: &HashMap::new(),
            },
        };
        self.store.claim_due(&req).await.unwrap()
    }

    /// Everything due at `now`, with room to spare.
    pub async fn claim_all(&self, now: Ts) -> Vec<DueDelivery> {
        let claimed = self.claim(now, Room::plenty()).await;
        assert!(!claimed.more_due && !claimed.held_back, "room was plenty");
        claimed.deliveries
    }

    pub async fn record(&self, outcomes: &[Outcome], now: Ts) -> Vec<Deactivation> {
        self.store.record_outcomes(outcomes, now).await.unwrap()
    }

    pub async fn counts(&self) -> DeliveryCounts {
        self.store.delivery_counts().await.unwrap()
    }

    pub async fn attempts(&self, event: &NewEvent) -> Vec<AttemptRecord> {
        self.store
            .attempts_for_event(&event.partner_id, &event.event_id)
            .await
            .unwrap()
    }

    /// Every subscription's stored secret as `(subscription id, secret)`, sorted.
    pub async fn signing_secrets(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .store
            .signing_secrets()
            .await
            .unwrap()
            .into_iter()
            .map(|(id, secret)| (id.to_string(), secret))
            .collect();
        all.sort();
        all
    }

    pub async fn replace_secret(&self, sub: &Subscription, old: &str, new: &str) -> bool {
        self.store
            .replace_signing_secret(&sub.id, old, new)
            .await
            .unwrap()
    }

    pub async fn routing_token(&self, sub: &Subscription, chat: &str) -> Option<String> {
        self.store.routing_token(&sub.id, chat).await.unwrap()
    }
}

/// The signing secret every subscription is created with (stored as given).
pub const SECRET: &str = "whsec_conformance";

/// A partner not yet stored, named `name`, created at `created_at`.
pub fn partner_record(name: &str, created_at: Ts) -> Partner {
    Partner {
        id: PartnerId::generate(),
        name: name.into(),
        created_at,
    }
}

/// A new API key for `partner`, not yet stored: the record holds its hash only.
pub fn key_record(partner: &Pid) -> ApiKeyRecord {
    ApiKeyRecord::issue(partner, Some("conformance".into()), at(0)).1
}

/// What [`Fixture::publish`] does, on a store handle a spawned task owns.
pub async fn publish_on(store: &DynStore, events: &[NewEvent], now: Ts) -> Vec<Published> {
    store.publish(events.to_vec(), now).await.unwrap().published
}

/// What a claim may take: at most `limit` in all, at most `cap` in flight per subscription,
/// with `busy` already in flight.
#[derive(Clone, Copy)]
pub struct Room<'a> {
    pub limit: u32,
    pub cap: usize,
    pub busy: &'a [(&'a Subscription, usize)],
}

impl Room<'_> {
    pub fn plenty() -> Room<'static> {
        Room {
            limit: 1000,
            cap: 1000,
            busy: &[],
        }
    }
}

/// A subscription to create; by default active, to `message.sent`, on every line.
pub struct Spec {
    url: Option<TargetUrl>,
    events: Vec<&'static str>,
    phones: Vec<&'static str>,
    active: bool,
    routing_key_header: Option<&'static str>,
}

impl Spec {
    pub fn to(events: &[&'static str]) -> Spec {
        Spec {
            url: None,
            events: events.to_vec(),
            phones: Vec::new(),
            active: true,
            routing_key_header: None,
        }
    }

    pub fn on_lines(mut self, phones: &[&'static str]) -> Spec {
        self.phones = phones.to_vec();
        self
    }

    /// Receives the `version` payload format (`?version=` on its URL).
    pub fn version(mut self, version: &str) -> Spec {
        self.url = Some(url(&format!("{}?version={version}", fresh_url())));
        self
    }

    /// Sends to `url` instead of a fresh one.
    pub fn at_url(mut self, url: &TargetUrl) -> Spec {
        self.url = Some(url.clone());
        self
    }

    pub fn inactive(mut self) -> Spec {
        self.active = false;
        self
    }

    pub fn routing_key_header(mut self, name: &'static str) -> Spec {
        self.routing_key_header = Some(name);
        self
    }
}

/// Loopback only: nothing here sends, but a target must never point off this machine.
pub fn fresh_url() -> TargetUrl {
    url(&format!(
        "http://127.0.0.1:9/hook/{}",
        uuid::Uuid::new_v4().simple()
    ))
}

pub fn url(raw: &str) -> TargetUrl {
    TargetUrl::parse(raw, true).unwrap()
}

/// A routing header name as a subscription stores it.
pub fn header(name: &str) -> RoutingHeader {
    RoutingHeader::parse("routing_key_header", Some(name))
        .unwrap()
        .unwrap()
}

pub fn event_type(name: &str) -> EventType {
    EventType::parse(name).unwrap()
}

fn phone(raw: &str) -> PhoneNumber {
    PhoneNumber::parse(raw).unwrap()
}

/// A new event (fresh id) of type `ty` for `partner`, about no line in particular.
pub fn event(partner: &Pid, ty: &str) -> NewEvent {
    NewEvent {
        partner_id: partner.clone(),
        event_id: EventId::generate(),
        event_type: event_type(ty),
        phone_number: None,
        created_at: EventTime::at(at(0)),
        trace_id: TraceId::generate(),
        data: r#"{"chat_id":"chat-1"}"#.into(),
        data_v2025: None,
    }
}

/// A new event of type `ty` on line `line`.
pub fn line_event(partner: &Pid, ty: &str, line: &str) -> NewEvent {
    NewEvent {
        phone_number: Some(phone(line)),
        ..event(partner, ty)
    }
}

/// `event` under the publisher's id `id` (an idempotency key).
pub fn with_id(event: &NewEvent, id: &str) -> NewEvent {
    NewEvent {
        event_id: EventId::parse(id).unwrap(),
        ..event.clone()
    }
}

/// The outcome of sending `d`, `next`, with a plausible attempt record.
pub fn outcome(d: &DueDelivery, next: NextState, status: u16) -> Outcome {
    Outcome {
        subscription_id: d.subscription_id.clone(),
        attempt: AttemptRecord {
            delivery_id: d.delivery_id,
            attempt: d.attempt,
            started_at: started_at(d.attempt),
            duration_ms: 7,
            status_code: Some(status),
            error_kind: (status >= 300).then_some(ErrorKind::HttpStatus),
            error_message: (status >= 300).then(|| format!("answered {status}")),
            response_body: Some(format!("body of attempt {}", d.attempt)),
        },
        next,
        deactivate_subscription: None,
        learned_routing_token: None,
    }
}

/// When attempt `n` of a delivery started, as [`outcome`] records it.
pub fn started_at(n: u32) -> Ts {
    at(1000 + i64::from(n))
}

pub fn succeeded(d: &DueDelivery) -> Outcome {
    outcome(d, NextState::Succeeded, 200)
}

pub fn failed(d: &DueDelivery) -> Outcome {
    outcome(d, NextState::Failed, 400)
}

pub fn retry_at(d: &DueDelivery, when: Ts) -> Outcome {
    outcome(d, NextState::RetryAt(when), 503)
}

/// `410 Gone` from the target `d` was sent to: fail it and deactivate its subscription.
pub fn gone(d: &DueDelivery) -> Outcome {
    Outcome {
        deactivate_subscription: Some(Deactivation {
            partner_id: d.partner_id.clone(),
            subscription_id: d.subscription_id.clone(),
            target_url: d.target_url.clone(),
            reason: DeactivationReason::Gone,
        }),
        ..outcome(d, NextState::Failed, 410)
    }
}

/// `o`, with the receiver having returned `token` for `chat` in header `header_name`.
pub fn learning(
    mut o: Outcome,
    d: &DueDelivery,
    header_name: &str,
    chat: &str,
    token: &str,
) -> Outcome {
    o.learned_routing_token = Some(LearnedRoutingToken {
        subscription_id: d.subscription_id.clone(),
        header: header(header_name),
        chat_id: chat.into(),
        token: token.into(),
    });
    o
}

/// Which subscription each delivery is for, sorted: what fan-out decided.
pub fn targets_of<'a>(deliveries: impl IntoIterator<Item = &'a DueDelivery>) -> Vec<String> {
    let mut ids: Vec<String> = deliveries
        .into_iter()
        .map(|d| d.subscription_id.to_string())
        .collect();
    ids.sort();
    ids
}

/// Subscription ids as [`targets_of`] returns them.
pub fn ids(subs: &[&Subscription]) -> Vec<String> {
    let mut ids: Vec<String> = subs.iter().map(|s| s.id.to_string()).collect();
    ids.sort();
    ids
}

/// `(event id, subscription id)` of each delivery, sorted.
pub fn pairs<'a>(deliveries: impl IntoIterator<Item = &'a DueDelivery>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = deliveries
        .into_iter()
        .map(|d| (d.event_id.to_string(), d.subscription_id.to_string()))
        .collect();
    pairs.sort();
    pairs
}

/// The `(event id, subscription id)` pairs of one delivery of `e` to each of `subs`, sorted.
pub fn pairs_for(e: &NewEvent, subs: &[&Subscription]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = subs
        .iter()
        .map(|s| (e.event_id.to_string(), s.id.to_string()))
        .collect();
    pairs.sort();
    pairs
}

/// The deliveries of one event.
pub fn of_event<'a>(deliveries: &'a [DueDelivery], event: &NewEvent) -> Vec<&'a DueDelivery> {
    deliveries
        .iter()
        .filter(|d| d.event_id == event.event_id && d.partner_id == event.partner_id)
        .collect()
}

pub fn counts(pending: u64, succeeded: u64, failed: u64, cancelled: u64) -> DeliveryCounts {
    DeliveryCounts {
        pending,
        succeeded,
        failed,
        cancelled,
    }
}
