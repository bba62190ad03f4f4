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
    /// Only selected by publish, which may hand deliveries straight to the dispatcher.
    #[sqlx(default)]
    signing_secret: Option<String>,
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

/// What publish needs of a partner's active subscriptions: the filter fields and the secret.
pub const FAN_OUT_COLUMNS: &str = "id, partner_id, target_url, subscribed_events, \
     phone_numbers, is_active, routing_id_header, routing_key_header, created_at, updated_at, \
     signing_secret";

pub struct Target {
    pub subscription: Subscription,
    pub signing_secret: String,
}

pub fn targets(rows: Vec<SubscriptionRow>) -> anyhow::Result<Vec<Target>> {
    rows.into_iter()
        .map(|mut r| {
            let signing_secret = r
                .signing_secret
                .take()
                .context("publish must select signing_secret (FAN_OUT_COLUMNS)")?;
            Ok(Target {
                subscription: r.into_domain()?,
                signing_secret,
            })
        })
        .collect()
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

/// Whether a subscription receives an event: DESIGN.md's filter rule. The phone-number filter
/// selects lines, so account events (about the whole account) pass it.
pub fn matches(sub: &Subscription, event: &NewEvent) -> bool {
    sub.is_active
        && sub.subscribed_events.contains(&event.event_type)
        && (sub.phone_numbers.is_empty()
            || event.event_type.is_account_event()
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
pub fn fan_out<'a, T: AsRef<[Target]>>(
    events: &[NewEvent],
    subs: &'a HashMap<String, T>,
) -> Vec<Vec<&'a Target>> {
    events
        .iter()
        .map(|e| {
            subs.get(&e.partner_id)
                .map(|list| {
                    list.as_ref()
                        .iter()
                        .filter(|t| matches(&t.subscription, e))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// The answer for every event in request order, and the deliveries to create. `inserted` maps
/// the keys the insert created to their `seq`; `prior` holds the stored delivery counts of keys
/// accepted before this batch. A key repeated within the batch counts once.
pub struct PublishOutcome<'a> {
    pub published: Vec<Published>,
    pub deliveries: Vec<NewDelivery<'a>>,
}

pub struct NewDelivery<'a> {
    pub seq: i64,
    pub event: &'a NewEvent,
    pub target: &'a Target,
    /// Leased to this process at insert time (see [`super::Claimer`]).
    pub claimed: bool,
}

pub fn settle_publish<'a>(
    events: &'a [NewEvent],
    targets: &[Vec<&'a Target>],
    inserted: &HashMap<EventKey, i64>,
    prior: &HashMap<EventKey, i64>,
    claimer: Option<&mut super::Claimer<'_>>,
) -> PublishOutcome<'a> {
    let mut answered: HashMap<EventKey, u32> = HashMap::new();
    let mut published = Vec::with_capacity(events.len());
    let mut deliveries = Vec::new();
    for (event, targets) in events.iter().zip(targets) {
        let key = event_key(event);
        let (count, duplicate) = if let Some(n) = answered.get(&key) {
            (*n, true)
        } else if let Some(seq) = inserted.get(&key) {
            deliveries.extend(targets.iter().map(|t| NewDelivery {
                seq: *seq,
                event,
                target: t,
                claimed: false,
            }));
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
    if let Some(claimer) = claimer {
        for d in &mut deliveries {
            d.claimed = (claimer.reserve)(&d.target.subscription.id);
        }
    }
    PublishOutcome {
        published,
        deliveries,
    }
}

/// A delivery leased at insert time, ready for the dispatcher.
pub fn due_from(id: i64, d: &NewDelivery<'_>) -> DueDelivery {
    let s = &d.target.subscription;
    DueDelivery {
        delivery_id: id,
        attempt: 1,
        subscription_id: s.id.clone(),
        target_url: s.target_url.as_str().to_owned(),
        signing_secret: d.target.signing_secret.clone(),
        routing_id_header: s.routing_id_header.clone(),
        routing_key_header: s.routing_key_header.clone(),
        partner_id: d.event.partner_id.clone(),
        event_id: d.event.event_id.clone(),
        event_type: d.event.event_type.as_str().to_owned(),
        created_at: d.event.created_at.clone(),
        trace_id: d.event.trace_id.clone(),
        data: d.event.data.clone(),
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

/// Pairs the ids an insert returned, as `(id, event seq, subscription id)` in any order, with the
/// deliveries that were leased at insert time.
pub fn claimed_deliveries(
    ids: Vec<(i64, i64, String)>,
    deliveries: &[NewDelivery<'_>],
) -> Vec<DueDelivery> {
    let ids: HashMap<(i64, String), i64> = ids
        .into_iter()
        .map(|(id, seq, sub)| ((seq, sub), id))
        .collect();
    deliveries
        .iter()
        .filter(|d| d.claimed)
        .filter_map(|d| {
            let id = ids.get(&(d.seq, d.target.subscription.id.clone()))?;
            Some(due_from(*id, d))
        })
        .collect()
}

/// The same rows read through rusqlite (the SQLite store runs whole transactions on its own
/// thread rather than through sqlx's per-statement channel).
pub mod sqlite_rows {
    use super::*;
    use rusqlite::Row;

    pub fn subscription(row: &Row<'_>, with_secret: bool) -> rusqlite::Result<SubscriptionRow> {
        Ok(SubscriptionRow {
            signing_secret: if with_secret {
                row.get("signing_secret")?
            } else {
                None
            },
            id: row.get("id")?,
            partner_id: row.get("partner_id")?,
            target_url: row.get("target_url")?,
            subscribed_events: row.get("subscribed_events")?,
            phone_numbers: row.get("phone_numbers")?,
            is_active: row.get("is_active")?,
            routing_id_header: row.get("routing_id_header")?,
            routing_key_header: row.get("routing_key_header")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }

    pub fn partner(row: &Row<'_>) -> rusqlite::Result<Partner> {
        Ok(Partner {
            id: row.get("id")?,
            name: row.get("name")?,
            created_at: row.get("created_at")?,
        })
    }

    pub fn due(row: &Row<'_>) -> rusqlite::Result<DueRow> {
        Ok(DueRow {
            id: row.get("id")?,
            attempts: row.get("attempts")?,
            subscription_id: row.get("subscription_id")?,
            target_url: row.get("target_url")?,
            signing_secret: row.get("signing_secret")?,
            routing_id_header: row.get("routing_id_header")?,
            routing_key_header: row.get("routing_key_header")?,
            live: row.get("live")?,
            partner_id: row.get("partner_id")?,
            event_id: row.get("event_id")?,
            event_type: row.get("event_type")?,
            created_at: row.get("created_at")?,
            trace_id: row.get("trace_id")?,
            data: row.get("data")?,
        })
    }

    pub fn attempt(row: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
        Ok(AttemptRow {
            delivery_id: row.get("delivery_id")?,
            attempt: row.get("attempt")?,
            started_at: row.get("started_at")?,
            duration_ms: row.get("duration_ms")?,
            status_code: row.get("status_code")?,
            error_kind: row.get("error_kind")?,
            error_message: row.get("error_message")?,
            response_body: row.get("response_body")?,
        }
        .into())
    }
}
