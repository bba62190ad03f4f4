//! The delivery log, the same on every backend: what a log query asks, what a page holds, and
//! how a page is put together from a backend's index reads.
//!
//! A page never uses OFFSET. Each requested status maps to one stored state (and, for pending,
//! whether an attempt was recorded), and `deliveries_log (subscription_id, state, created_at,
//! id)` holds each (subscription, state) newest first. A backend reads at most `limit + 1` keys
//! from each such range below the cursor ([`LogSteps::keys`]); [`page`] merges them, keeps the
//! newest `limit + 1`, and loads the rows of the page. The cost is a few index probes per
//! range, whatever the subscription's size and however rare the status asked for.
//! `event_type` is checked per key read (deliveries do not carry it), so a type that is rare
//! among a subscription's deliveries reads past the others.

use hookline_core::{
    DeliveryId, DeliveryStatus, EventId, EventType, LogCursor, PartnerId, SubscriptionId,
    Timestamp, TraceId,
};
use std::future::Future;

use super::rows::AttemptRow;
use super::{AttemptRecord, StoreResult};

/// Which deliveries a log query reads.
#[derive(Debug, Clone)]
pub enum LogScope {
    Subscription(SubscriptionId),
    /// Every subscription of the partner, deleted ones included.
    Partner(PartnerId),
    /// Every partner's (operator).
    All,
}

#[derive(Debug, Clone)]
pub struct LogQuery {
    pub scope: LogScope,
    /// Empty: every status.
    pub statuses: Vec<DeliveryStatus>,
    pub event_type: Option<EventType>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// The end of the previous page.
    pub cursor: Option<LogCursor>,
    pub limit: usize,
}

/// One delivery as the log shows it, with its latest recorded attempt.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub delivery_id: DeliveryId,
    pub partner_id: PartnerId,
    pub subscription_id: SubscriptionId,
    pub event_id: EventId,
    /// As stored (the name of a type this build may not know any more).
    pub event_type: String,
    pub trace_id: TraceId,
    /// The subscription's current target.
    pub target_url: String,
    pub status: DeliveryStatus,
    /// Attempts started, the one in flight included.
    pub attempts: u32,
    /// Attempts started before the last redelivery; its retry schedule counts from there.
    pub attempt_base: u32,
    pub created_at: Timestamp,
    /// Pending deliveries only: when the next attempt is due (or its lease ends).
    pub next_attempt_at: Option<Timestamp>,
    pub last_attempt: Option<AttemptRecord>,
}

pub struct LogPage {
    pub entries: Vec<LogEntry>,
    /// Set when more entries follow this page.
    pub next: Option<LogCursor>,
}

/// A stored event with every delivery of it (operator lookup).
pub struct EventLog {
    pub event_id: EventId,
    pub partner_id: PartnerId,
    pub event_type: String,
    pub phone_number: Option<String>,
    /// As the publisher wrote it.
    pub created_at: String,
    pub trace_id: TraceId,
    /// The publisher's JSON object, verbatim.
    pub data: String,
    pub accepted_at: Timestamp,
    pub deliveries: Vec<LogEntry>,
}

/// One index range of a page: a stored state, and for `pending` whether an attempt was
/// recorded (`None`: either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateRange {
    pub state: &'static str,
    pub attempted: Option<bool>,
}

impl StateRange {
    /// The attempted filter as SQL takes it: 0 either, 1 none recorded, 2 some recorded.
    pub fn attempted_code(self) -> i64 {
        match self.attempted {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        }
    }
}

/// The ranges that hold `statuses` (all of them when empty).
pub fn ranges(statuses: &[DeliveryStatus]) -> Vec<StateRange> {
    let all = statuses.is_empty();
    let has = |s| all || statuses.contains(&s);
    let mut out = Vec::new();
    match (has(DeliveryStatus::Pending), has(DeliveryStatus::Retrying)) {
        (true, true) => out.push(StateRange {
            state: "pending",
            attempted: None,
        }),
        (pending, retrying) if pending || retrying => out.push(StateRange {
            state: "pending",
            attempted: Some(retrying),
        }),
        _ => {}
    }
    for s in [
        DeliveryStatus::Success,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
    ] {
        if has(s) {
            out.push(StateRange {
                state: s.stored_state(),
                attempted: None,
            });
        }
    }
    out
}

/// The bounds of the key reads, as SQL takes them: `created_at >= low` and
/// `(created_at, id) < (high_created_at, high_id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBounds {
    pub low: i64,
    pub high_created_at: i64,
    pub high_id: i64,
}

impl KeyBounds {
    pub fn of(q: &LogQuery) -> KeyBounds {
        let until = q
            .until
            .map_or((i64::MAX, i64::MAX), |t| (t.as_micros(), i64::MIN));
        let (high_created_at, high_id) = match q.cursor {
            Some(c) => until.min((c.created_at, c.id)),
            None => until,
        };
        KeyBounds {
            low: q.since.map_or(i64::MIN, Timestamp::as_micros),
            high_created_at,
            high_id,
        }
    }
}

/// The columns of a [`LogEntry`], and the joins that give them: the delivery, its event, its
/// subscription, and its latest recorded attempt (one probe of the attempt log's unique index).
pub const LOG_SELECT: &str = "SELECT d.id, d.subscription_id, d.state, d.attempts, \
     d.attempt_base, d.next_attempt_at, d.created_at, e.partner_id, e.event_id, e.event_type, \
     e.trace_id, s.target_url, a.attempt, a.started_at, a.duration_ms, a.status_code, \
     a.error_kind, a.error_message \
     FROM deliveries d JOIN events e ON e.seq = d.event_seq \
          JOIN subscriptions s ON s.id = d.subscription_id \
          LEFT JOIN delivery_attempts a ON a.delivery_id = d.id AND a.attempt = \
              (SELECT MAX(m.attempt) FROM delivery_attempts m WHERE m.delivery_id = d.id)";

/// A row of [`LOG_SELECT`], in its column order.
#[derive(sqlx::FromRow)]
pub struct LogRow {
    pub id: i64,
    pub subscription_id: String,
    pub state: String,
    pub attempts: i64,
    pub attempt_base: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub partner_id: String,
    pub event_id: String,
    pub event_type: String,
    pub trace_id: String,
    pub target_url: String,
    pub attempt: Option<i64>,
    pub started_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub status_code: Option<i64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
}

impl From<LogRow> for LogEntry {
    fn from(r: LogRow) -> Self {
        let last_attempt = r.attempt.map(|attempt| {
            AttemptRecord::from(AttemptRow {
                delivery_id: r.id,
                attempt,
                started_at: r.started_at.unwrap_or_default(),
                duration_ms: r.duration_ms.unwrap_or_default(),
                status_code: r.status_code,
                error_kind: r.error_kind,
                error_message: r.error_message,
                response_body: None,
            })
        });
        let status = DeliveryStatus::of(&r.state, last_attempt.is_some());
        LogEntry {
            delivery_id: DeliveryId::from_stored(r.id),
            partner_id: PartnerId::from_stored(r.partner_id),
            subscription_id: SubscriptionId::from_stored(r.subscription_id),
            event_id: EventId::from_stored(r.event_id),
            event_type: r.event_type,
            trace_id: TraceId::from_stored(r.trace_id),
            target_url: r.target_url,
            status,
            attempts: r.attempts as u32,
            attempt_base: r.attempt_base as u32,
            created_at: Timestamp::from_micros(r.created_at),
            next_attempt_at: (r.state == "pending")
                .then(|| Timestamp::from_micros(r.next_attempt_at)),
            last_attempt,
        }
    }
}

/// A backend's reads for one page, on one connection.
pub(crate) trait LogSteps {
    /// The subscription ids the scope covers.
    fn subscriptions(&mut self, scope: &LogScope)
        -> impl Future<Output = StoreResult<Vec<String>>>;
    /// Up to `limit` `(created_at, id)` keys from each (subscription, range), newest first,
    /// within `bounds` and of `event_type` when given.
    fn keys(
        &mut self,
        subscriptions: &[String],
        ranges: &[StateRange],
        bounds: KeyBounds,
        event_type: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<(i64, i64)>>>;
    /// The rows of these delivery ids, in any order.
    fn rows(&mut self, ids: &[i64]) -> impl Future<Output = StoreResult<Vec<LogRow>>>;
}

/// One page of the log (see the module docs).
pub(crate) async fn page(steps: &mut impl LogSteps, q: &LogQuery) -> StoreResult<LogPage> {
    let subscriptions = steps.subscriptions(&q.scope).await?;
    let ranges = ranges(&q.statuses);
    if subscriptions.is_empty() || ranges.is_empty() || q.limit == 0 {
        return Ok(LogPage {
            entries: Vec::new(),
            next: None,
        });
    }
    let bounds = KeyBounds::of(q);
    let event_type = q.event_type.as_ref().map(EventType::as_str);
    let mut keys = steps
        .keys(&subscriptions, &ranges, bounds, event_type, q.limit + 1)
        .await?;
    keys.sort_unstable_by(|a, b| b.cmp(a));
    keys.dedup();
    let more = keys.len() > q.limit;
    keys.truncate(q.limit);
    let ids: Vec<i64> = keys.iter().map(|k| k.1).collect();
    let mut entries: Vec<LogEntry> = steps
        .rows(&ids)
        .await?
        .into_iter()
        .map(LogEntry::from)
        .collect();
    entries.sort_unstable_by_key(|e| {
        std::cmp::Reverse((e.created_at.as_micros(), e.delivery_id.get()))
    });
    let next = more.then(|| {
        let (created_at, id) = *keys.last().expect("a full page has a last key");
        LogCursor { created_at, id }
    });
    Ok(LogPage { entries, next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryStatus::*;

    #[test]
    fn statuses_map_to_index_ranges() {
        let states = |s: &[DeliveryStatus]| {
            ranges(s)
                .into_iter()
                .map(|r| (r.state, r.attempted))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            states(&[]),
            vec![
                ("pending", None),
                ("succeeded", None),
                ("failed", None),
                ("cancelled", None)
            ]
        );
        assert_eq!(states(&[Retrying]), vec![("pending", Some(true))]);
        assert_eq!(
            states(&[Pending, Failed]),
            vec![("pending", Some(false)), ("failed", None)]
        );
        assert_eq!(states(&[Pending, Retrying]), vec![("pending", None)]);
    }

    #[test]
    fn bounds_take_the_tighter_of_until_and_cursor() {
        let mut q = LogQuery {
            scope: LogScope::All,
            statuses: vec![],
            event_type: None,
            since: Some(Timestamp::from_micros(5)),
            until: Some(Timestamp::from_micros(100)),
            cursor: Some(LogCursor {
                created_at: 50,
                id: 7,
            }),
            limit: 20,
        };
        let b = KeyBounds::of(&q);
        assert_eq!((b.low, b.high_created_at, b.high_id), (5, 50, 7));
        q.cursor = Some(LogCursor {
            created_at: 200,
            id: 7,
        });
        assert_eq!(KeyBounds::of(&q).high_created_at, 100);
        assert_eq!(KeyBounds::of(&q).high_id, i64::MIN);
    }
}
