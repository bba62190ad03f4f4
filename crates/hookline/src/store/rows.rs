//! Row shapes shared by both backends (the schemas use the same column types) and their
//! conversion into domain types, plus the fan-out filter.

use anyhow::Context;
use hookline_core::{event_type, phone, PhoneNumber, TargetUrl, WebhookVersion};
use std::collections::HashMap;

use super::{AttemptRecord, DueDelivery, NewEvent, Partner, Published, Subscription};

pub const SUBSCRIPTION_COLUMNS: &str = "id, partner_id, target_url, subscribed_events, \
     phone_numbers, is_active, routing_id_header, routing_key_header, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub struct SubscriptionRow {
    id: String,
    partner_id: String,
    target_url: String,
    subscribed_events: String,
    phone_numbers: Option<String>,
    is_active: bool,
    routing_id_header: Option<String>,
    routing_key_header: Option<String>,
    created_at: i64,
    updated_at: i64,
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
            // Stored values passed validation on the way in; `allow_http` only widens, so accept here.
            target_url: TargetUrl::parse(&self.target_url, true)
                .with_context(|| format!("stored target_url of {}", self.id))?,
            subscribed_events: event_type::parse_list(&events)
                .map_err(|unknown| anyhow::anyhow!("stored unknown event types {unknown:?}"))?,
            phone_numbers: phone::parse_list(&phones)?,
            id: self.id,
            partner_id: self.partner_id,
            is_active: self.is_active,
            routing_id_header: self.routing_id_header,
            routing_key_header: self.routing_key_header,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub fn subscriptions(rows: Vec<SubscriptionRow>) -> anyhow::Result<Vec<Subscription>> {
    rows.into_iter().map(SubscriptionRow::into_domain).collect()
}

#[derive(sqlx::FromRow)]
pub struct PartnerRow {
    id: String,
    name: String,
    created_at: i64,
}

impl From<PartnerRow> for Partner {
    fn from(r: PartnerRow) -> Self {
        Partner {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

pub const DUE_COLUMNS: &str = "d.id, d.attempts, s.id AS subscription_id, s.target_url, \
     s.signing_secret, s.routing_id_header, s.routing_key_header, \
     (s.is_active AND s.deleted_at IS NULL) AS live, \
     e.partner_id, e.event_id, e.event_type, e.created_at, e.trace_id, e.data";

#[derive(sqlx::FromRow)]
pub struct DueRow {
    id: i64,
    attempts: i64,
    subscription_id: String,
    target_url: String,
    signing_secret: String,
    routing_id_header: Option<String>,
    routing_key_header: Option<String>,
    pub live: bool,
    partner_id: String,
    event_id: String,
    event_type: String,
    created_at: String,
    trace_id: String,
    data: String,
}

impl DueRow {
    pub fn id(&self) -> i64 {
        self.id
    }
}

impl From<DueRow> for DueDelivery {
    fn from(r: DueRow) -> Self {
        DueDelivery {
            delivery_id: r.id,
            attempt: r.attempts as u32,
            subscription_id: r.subscription_id,
            target_url: r.target_url,
            signing_secret: r.signing_secret,
            routing_id_header: r.routing_id_header,
            routing_key_header: r.routing_key_header,
            partner_id: r.partner_id,
            event_id: r.event_id,
            event_type: r.event_type,
            created_at: r.created_at,
            trace_id: r.trace_id,
            data: r.data,
        }
    }
}

pub const ATTEMPT_COLUMNS: &str = "a.delivery_id, a.attempt, a.started_at, a.duration_ms, \
     a.status_code, a.error_kind, a.error_message, a.response_body";

#[derive(sqlx::FromRow)]
pub struct AttemptRow {
    delivery_id: i64,
    attempt: i64,
    started_at: i64,
    duration_ms: i64,
    status_code: Option<i64>,
    error_kind: Option<String>,
    error_message: Option<String>,
    response_body: Option<String>,
}

impl From<AttemptRow> for AttemptRecord {
    fn from(r: AttemptRow) -> Self {
        AttemptRecord {
            delivery_id: r.delivery_id,
            attempt: r.attempt as u32,
            started_at: r.started_at,
            duration_ms: r.duration_ms,
            status_code: r.status_code.map(|c| c as u16),
            error_kind: r
                .error_kind
                .map(|k| crate::delivery::ErrorKind::static_name(&k)),
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

/// Whether a subscription receives an event: DESIGN.md's filter rule.
pub fn matches(sub: &Subscription, event: &NewEvent) -> bool {
    sub.is_active
        && sub.subscribed_events.contains(&event.event_type)
        && (sub.phone_numbers.is_empty()
            || event
                .phone_number
                .as_ref()
                .is_some_and(|p| sub.phone_numbers.contains(p)))
        && !(event.event_type.is_message_edited()
            && sub.target_url.webhook_version() != WebhookVersion::V2026_02_03)
}

/// Groups outcome columns for the fenced update.
pub fn next_state_columns(next: super::NextState) -> (&'static str, Option<i64>) {
    match next {
        super::NextState::Succeeded => ("succeeded", None),
        super::NextState::Failed => ("failed", None),
        super::NextState::RetryAt(at) => ("pending", Some(at)),
    }
}

pub fn counts_from(rows: Vec<(String, i64)>) -> super::DeliveryCounts {
    let mut c = super::DeliveryCounts::default();
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

pub type EventKey = (String, String);

pub fn event_key(e: &NewEvent) -> EventKey {
    (e.partner_id.clone(), e.event_id.clone())
}

/// The subscriptions each event goes to, by the fan-out rule; `subs` holds every partner's
/// active subscriptions.
pub fn fan_out<'a>(
    events: &[NewEvent],
    subs: &'a HashMap<String, Vec<Subscription>>,
) -> Vec<Vec<&'a str>> {
    events
        .iter()
        .map(|e| {
            subs.get(&e.partner_id)
                .map(|list| {
                    list.iter()
                        .filter(|s| matches(s, e))
                        .map(|s| s.id.as_str())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Which events a batch insert must skip as repeats, and the answer for every event in
/// request order. `inserted` maps the keys the insert created to their `seq`; `prior` holds the
/// stored delivery counts of keys accepted before this batch.
pub struct PublishOutcome {
    pub published: Vec<Published>,
    /// `(event seq, subscription id)` for every delivery to create.
    pub deliveries: Vec<(i64, String)>,
}

pub fn settle_publish(
    events: &[NewEvent],
    targets: &[Vec<&str>],
    inserted: &HashMap<EventKey, i64>,
    prior: &HashMap<EventKey, i64>,
) -> PublishOutcome {
    let mut answered: HashMap<EventKey, u32> = HashMap::new();
    let mut published = Vec::with_capacity(events.len());
    let mut deliveries = Vec::new();
    for (event, targets) in events.iter().zip(targets) {
        let key = event_key(event);
        let (count, duplicate) = if let Some(n) = answered.get(&key) {
            (*n, true)
        } else if let Some(seq) = inserted.get(&key) {
            deliveries.extend(targets.iter().map(|s| (*seq, (*s).to_owned())));
            answered.insert(key, targets.len() as u32);
            (targets.len() as u32, false)
        } else {
            let n = prior.get(&key).copied().unwrap_or_default() as u32;
            answered.insert(key, n);
            (n, true)
        };
        published.push(Published {
            event_id: event.event_id.clone(),
            deliveries: count,
            duplicate,
        });
    }
    PublishOutcome {
        published,
        deliveries,
    }
}

/// One outcome as the batch update sees it: (delivery id, attempt, state, next attempt at).
pub fn outcome_row(o: &super::Outcome) -> (i64, i64, &'static str, Option<i64>) {
    let (state, next_at) = next_state_columns(o.next);
    (
        o.attempt.delivery_id,
        o.attempt.attempt as i64,
        state,
        next_at,
    )
}

/// What the fenced update returns for an outcome it applied: (delivery id, attempt).
pub fn applied_key(o: &super::Outcome) -> (i64, i64) {
    (o.attempt.delivery_id, o.attempt.attempt as i64)
}
