//! Row shapes shared by both backends (the schemas use the same column types) and their
//! conversion into domain types. Values read back passed validation on the way in, so they are
//! trusted (`from_stored`); only what could fail to parse is checked.

use anyhow::Context;
use hookline_core::{
    event_type, phone, DeliveryId, ErrorKind, EventId, EventTime, EventType, PartnerId,
    PhoneNumber, RoutingHeader, SubscriptionId, TargetUrl, Timestamp, TraceId,
};

use super::publish_plan::Target;
use super::{
    AttemptRecord, DeliveryCounts, DueDelivery, NextState, Outcome, Partner, Subscription,
};

pub const SUBSCRIPTION_COLUMNS: &str = "id, partner_id, target_url, subscribed_events, \
     phone_numbers, is_active, routing_id_header, routing_key_header, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub struct SubscriptionRow {
    /// Only selected by publish, which may hand deliveries straight to the dispatcher.
    #[sqlx(default)]
    pub signing_secret: Option<String>,
    /// Selected with `signing_secret` (see [`PreviousSecret`](super::PreviousSecret)).
    #[sqlx(default)]
    pub previous_signing_secret: Option<String>,
    #[sqlx(default)]
    pub previous_secret_expires_at: Option<i64>,
    pub id: String,
    pub partner_id: String,
    pub target_url: String,
    pub subscribed_events: String,
    pub phone_numbers: Option<String>,
    pub is_active: bool,
    pub routing_id_header: Option<String>,
    pub routing_key_header: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SubscriptionRow {
    pub fn into_domain(self) -> anyhow::Result<Subscription> {
        let events: Vec<String> = serde_json::from_str(&self.subscribed_events)?;
        let phones: Vec<String> = self
            .phone_numbers
            .map(|p| serde_json::from_str(&p))
            .transpose()?
            .unwrap_or_default();
        Ok(Subscription {
            target_url: TargetUrl::from_stored(&self.target_url)
                .with_context(|| format!("stored target_url of {}", self.id))?,
            subscribed_events: event_type::parse_list(&events)
                .map_err(|unknown| anyhow::anyhow!("stored unknown event types {unknown:?}"))?,
            phone_numbers: phone::parse_list(&phones)?,
            id: SubscriptionId::from_stored(self.id),
            partner_id: PartnerId::from_stored(self.partner_id),
            is_active: self.is_active,
            routing_id_header: self.routing_id_header.map(RoutingHeader::from_stored),
            routing_key_header: self.routing_key_header.map(RoutingHeader::from_stored),
            created_at: Timestamp::from_micros(self.created_at),
            updated_at: Timestamp::from_micros(self.updated_at),
        })
    }
}

pub fn subscriptions(rows: Vec<SubscriptionRow>) -> anyhow::Result<Vec<Subscription>> {
    rows.into_iter().map(SubscriptionRow::into_domain).collect()
}

/// What publish needs of a partner's active subscriptions: the filter fields and the secret.
pub const FAN_OUT_COLUMNS: &str = "id, partner_id, target_url, subscribed_events, \
     phone_numbers, is_active, routing_id_header, routing_key_header, created_at, updated_at, \
     signing_secret, previous_signing_secret, previous_secret_expires_at";

pub fn targets(rows: Vec<SubscriptionRow>) -> anyhow::Result<super::publish_plan::Targets> {
    rows.into_iter()
        .map(|mut r| {
            let signing_secret = r
                .signing_secret
                .take()
                .context("publish must select signing_secret (FAN_OUT_COLUMNS)")?;
            let previous_secret = super::PreviousSecret::from_columns(
                r.previous_signing_secret.take(),
                r.previous_secret_expires_at.take(),
            );
            Ok(std::sync::Arc::new(Target {
                subscription: r.into_domain()?,
                signing_secret,
                previous_secret,
            }))
        })
        .collect()
}

#[derive(sqlx::FromRow)]
pub struct PartnerRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

impl From<PartnerRow> for Partner {
    fn from(r: PartnerRow) -> Self {
        Partner {
            id: PartnerId::from_stored(r.id),
            name: r.name,
            created_at: Timestamp::from_micros(r.created_at),
        }
    }
}

pub const DUE_COLUMNS: &str =
    "d.id, d.attempts, d.attempt_base, s.id AS subscription_id, s.target_url, \
     s.signing_secret, s.previous_signing_secret, s.previous_secret_expires_at, \
     s.routing_id_header, s.routing_key_header, \
     (s.is_active AND s.deleted_at IS NULL) AS live, \
     e.partner_id, e.event_id, e.event_type, e.created_at, e.trace_id, e.data, e.data_v2025, \
     e.accepted_at";

#[derive(sqlx::FromRow)]
pub struct DueRow {
    pub id: i64,
    pub attempts: i64,
    pub attempt_base: i64,
    pub subscription_id: String,
    pub target_url: String,
    pub signing_secret: String,
    pub previous_signing_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub routing_id_header: Option<String>,
    pub routing_key_header: Option<String>,
    pub live: bool,
    pub partner_id: String,
    pub event_id: String,
    pub event_type: String,
    pub created_at: String,
    pub trace_id: String,
    pub data: String,
    pub data_v2025: Option<String>,
    pub accepted_at: i64,
}

impl TryFrom<DueRow> for DueDelivery {
    type Error = anyhow::Error;

    fn try_from(r: DueRow) -> anyhow::Result<Self> {
        Ok(DueDelivery {
            delivery_id: DeliveryId::from_stored(r.id),
            attempt: r.attempts as u32,
            attempt_base: r.attempt_base as u32,
            event_type: EventType::parse(&r.event_type)
                .map_err(|_| anyhow::anyhow!("stored unknown event type {:?}", r.event_type))?,
            subscription_id: SubscriptionId::from_stored(r.subscription_id),
            target_url: r.target_url,
            signing_secret: r.signing_secret,
            previous_secret: super::PreviousSecret::from_columns(
                r.previous_signing_secret,
                r.previous_secret_expires_at,
            ),
            routing_id_header: r.routing_id_header.map(RoutingHeader::from_stored),
            routing_key_header: r.routing_key_header.map(RoutingHeader::from_stored),
            partner_id: PartnerId::from_stored(r.partner_id),
            event_id: EventId::from_stored(r.event_id),
            created_at: EventTime::from_stored(r.created_at),
            trace_id: TraceId::from_stored(r.trace_id),
            data: r.data,
            data_v2025: r.data_v2025,
            accepted_at: Timestamp::from_micros(r.accepted_at),
        })
    }
}

pub fn due_deliveries(rows: Vec<DueRow>) -> anyhow::Result<Vec<DueDelivery>> {
    rows.into_iter().map(DueDelivery::try_from).collect()
}

pub const ATTEMPT_COLUMNS: &str = "a.delivery_id, a.attempt, a.started_at, a.duration_ms, \
     a.status_code, a.error_kind, a.error_message, a.response_body";

#[derive(sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: i64,
    pub attempt: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
}

impl From<AttemptRow> for AttemptRecord {
    fn from(r: AttemptRow) -> Self {
        AttemptRecord {
            delivery_id: DeliveryId::from_stored(r.delivery_id),
            attempt: r.attempt as u32,
            started_at: Timestamp::from_micros(r.started_at),
            duration_ms: r.duration_ms,
            status_code: r.status_code.map(|c| c as u16),
            error_kind: r.error_kind.as_deref().map(ErrorKind::from_stored),
            error_message: r.error_message,
            response_body: r.response_body,
        }
    }
}

pub fn json_list<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> String {
    serde_json::to_string(
        &items
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .collect::<Vec<_>>(),
    )
    .expect("strings serialise")
}

pub fn events_column(sub: &Subscription) -> String {
    json_list(sub.subscribed_events.iter().map(|e| e.as_str()))
}

/// NULL means every line.
pub fn phones_column(phones: &[PhoneNumber]) -> Option<String> {
    (!phones.is_empty()).then(|| json_list(phones.iter().map(|p| p.as_str())))
}

pub fn header_column(h: &Option<RoutingHeader>) -> Option<&str> {
    h.as_ref().map(RoutingHeader::as_str)
}

/// Groups outcome columns for the fenced update.
pub fn next_state_columns(next: NextState) -> (&'static str, Option<i64>) {
    match next {
        NextState::Succeeded => ("succeeded", None),
        NextState::Failed => ("failed", None),
        NextState::RetryAt(at) => ("pending", Some(at.as_micros())),
    }
}

pub fn counts_from(rows: Vec<(String, i64)>) -> DeliveryCounts {
    let mut c = DeliveryCounts::default();
    for (state, n) in rows {
        let n = n as u64;
        match state.as_str() {
            "pending" => c.pending = n,
            "succeeded" => c.succeeded = n,
            "failed" => c.failed = n,
            "cancelled" => c.cancelled = n,
            _ => {}
        }
    }
    c
}

/// One outcome as the batch update sees it: (delivery id, attempt, state, next attempt at).
pub fn outcome_row(o: &Outcome) -> (i64, i64, &'static str, Option<i64>) {
    let (state, next_at) = next_state_columns(o.next);
    (
        o.attempt.delivery_id.get(),
        o.attempt.attempt as i64,
        state,
        next_at,
    )
}

/// What the fenced update returns for an outcome it applied: (delivery id, attempt).
pub fn applied_key(o: &Outcome) -> (i64, i64) {
    (o.attempt.delivery_id.get(), o.attempt.attempt as i64)
}
