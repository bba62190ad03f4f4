//! The publish plan, the same on every backend: which deliveries a batch of events creates, and
//! what the batch answers once its transaction has committed.
//!
//! A publish is two steps so no callback crosses the store boundary. [`Store::plan_publish`]
//! fans the events out over their partners' active subscriptions (an event repeated within the
//! batch is planned once, under its first occurrence); the caller marks the planned deliveries
//! it wants leased to itself ([`PublishPlan::lease`]); [`Store::commit_publish`] inserts the
//! events, then the deliveries of the events that were new, and answers. A backend supplies the
//! two inserts; everything else here is written once.
//!
//! [`Store::plan_publish`]: super::DeliveryQueue::plan_publish
//! [`Store::commit_publish`]: super::DeliveryQueue::commit_publish

use hookline_core::payload::v2025;
use hookline_core::{DeliveryId, PartnerId, SubscriptionId, Timestamp, WebhookVersion};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::{DueDelivery, NewEvent, PublishBatch, Published, Subscription};

/// A subscription as publish needs it: the filter fields, and the secret so that a delivery
/// leased at insert time can be sent without another read.
pub struct Target {
    pub subscription: Subscription,
    /// As stored (possibly sealed).
    pub signing_secret: String,
    /// The secret a rotation replaced, while in its grace period (or expired: the signer checks).
    pub previous_secret: Option<super::PreviousSecret>,
}

/// One partner's active subscriptions.
pub type Targets = Arc<[Arc<Target>]>;

pub struct PublishPlan {
    events: Vec<NewEvent>,
    /// For each event, the index of the first event in the batch with its (partner, event id).
    first: Vec<usize>,
    /// For each event, its deliveries in `deliveries` (empty for repeats).
    planned: Vec<Range<usize>>,
    deliveries: Vec<PlannedDelivery>,
}

/// One event to one subscription, not yet written.
pub struct PlannedDelivery {
    event: usize,
    target: Arc<Target>,
    leased: bool,
}

impl PlannedDelivery {
    pub fn subscription_id(&self) -> &SubscriptionId {
        &self.target.subscription.id
    }

    /// The index of its event in the batch.
    pub fn event_index(&self) -> usize {
        self.event
    }

    pub fn is_leased(&self) -> bool {
        self.leased
    }
}

/// What the events insert found for an event the plan inserts (a first occurrence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Inserted now, as `events.seq`.
    New { seq: i64 },
    /// Accepted by an earlier publish, which scheduled this many deliveries.
    Before { deliveries: i64 },
}

/// A delivery row to insert: the planned delivery it is, and its event's `seq`.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRow {
    pub plan_index: usize,
    pub seq: i64,
    /// Inserted leased to this process (attempt 1, due at the lease's end).
    pub leased: bool,
}

impl PublishPlan {
    /// The partners whose active subscriptions [`new`](Self::new) needs, each once.
    pub fn partners(events: &[NewEvent]) -> Vec<PartnerId> {
        let mut partners: Vec<PartnerId> = Vec::new();
        for e in events {
            if !partners.contains(&e.partner_id) {
                partners.push(e.partner_id.clone());
            }
        }
        partners
    }

    /// Fans `events` out; `subs` holds the active subscriptions of every partner in the batch.
    pub fn new(events: Vec<NewEvent>, subs: &HashMap<PartnerId, Targets>) -> Self {
        let mut seen: HashMap<(&PartnerId, &hookline_core::EventId), usize> = HashMap::new();
        let mut first = Vec::with_capacity(events.len());
        let mut planned = Vec::with_capacity(events.len());
        let mut deliveries = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let f = *seen.entry((&e.partner_id, &e.event_id)).or_insert(i);
            first.push(f);
            let start = deliveries.len();
            if f == i {
                let targets = subs.get(&e.partner_id).map(|t| &t[..]).unwrap_or_default();
                deliveries.extend(
                    targets
                        .iter()
                        .filter(|t| {
                            t.subscription
                                .matches(e.event_type, e.phone_number.as_ref())
                        })
                        .map(|t| PlannedDelivery {
                            event: i,
                            target: t.clone(),
                            leased: false,
                        }),
                );
            }
            planned.push(start..deliveries.len());
        }
        drop(seen);
        let mut events = events;
        fill_v2025(&mut events, &planned, &deliveries);
        PublishPlan {
            events,
            first,
            planned,
            deliveries,
        }
    }

    pub fn events(&self) -> &[NewEvent] {
        &self.events
    }

    pub fn deliveries(&self) -> &[PlannedDelivery] {
        &self.deliveries
    }

    /// Keeps only the deliveries to `subscription_id` (a test event goes to one subscription,
    /// never fanned out).
    pub fn only(mut self, subscription_id: &SubscriptionId) -> Self {
        let mut kept = Vec::new();
        for (event, range) in self.planned.iter_mut().enumerate() {
            let start = kept.len();
            kept.extend(
                self.deliveries[range.clone()]
                    .iter()
                    .filter(|d| d.event == event && d.subscription_id() == subscription_id)
                    .map(|d| PlannedDelivery {
                        event,
                        target: d.target.clone(),
                        leased: d.leased,
                    }),
            );
            *range = start..kept.len();
        }
        self.deliveries = kept;
        self
    }

    /// Asks for planned delivery `index` to be committed leased to this process.
    pub fn lease(&mut self, index: usize) {
        self.deliveries[index].leased = true;
    }

    /// The events to insert (the first occurrence of each key) with their index in the batch
    /// and the number of deliveries planned for them.
    pub fn new_events(&self) -> impl Iterator<Item = (usize, &NewEvent, i64)> {
        self.events
            .iter()
            .enumerate()
            .filter(|(i, _)| self.first[*i] == *i)
            .map(|(i, e)| (i, e, self.planned[i].len() as i64))
    }

    /// The deliveries to insert, in plan order, once the events insert said which events were
    /// new. `accepted` is indexed by event; `leasing` is false when the commit has no lease.
    pub fn rows(&self, accepted: &[Option<Acceptance>], leasing: bool) -> Vec<DeliveryRow> {
        let mut rows = Vec::new();
        for (i, range) in self.planned.iter().enumerate() {
            if let Some(Acceptance::New { seq }) = accepted[i] {
                rows.extend(range.clone().map(|plan_index| DeliveryRow {
                    plan_index,
                    seq,
                    leased: leasing && self.deliveries[plan_index].leased,
                }));
            }
        }
        rows
    }

    /// The answer of a committed publish: `ids[n]` is the id `rows[n]` was inserted under;
    /// `accepted_at` is the commit's time on this node's clock.
    pub fn finish(
        self,
        accepted: &[Option<Acceptance>],
        rows: &[DeliveryRow],
        ids: &[DeliveryId],
        accepted_at: Timestamp,
    ) -> PublishBatch {
        debug_assert_eq!(rows.len(), ids.len());
        let published = (0..self.events.len())
            .map(|i| {
                let first = self.first[i];
                let (deliveries, new) = match accepted[first] {
                    Some(Acceptance::New { .. }) => (self.planned[first].len() as u32, true),
                    Some(Acceptance::Before { deliveries }) => (deliveries as u32, false),
                    None => (0, false),
                };
                Published {
                    event_id: self.events[i].event_id.clone(),
                    deliveries,
                    duplicate: !(new && first == i),
                }
            })
            .collect();
        let claimed: Vec<(usize, DueDelivery)> = rows
            .iter()
            .zip(ids)
            .filter(|(r, _)| r.leased)
            .map(|(r, id)| (r.plan_index, self.due(r.plan_index, *id, accepted_at)))
            .collect();
        PublishBatch {
            queued: rows.len() - claimed.len(),
            published,
            claimed,
        }
    }

    /// A delivery inserted leased, ready for the dispatcher.
    fn due(&self, plan_index: usize, id: DeliveryId, accepted_at: Timestamp) -> DueDelivery {
        let d = &self.deliveries[plan_index];
        let (s, e) = (&d.target.subscription, &self.events[d.event]);
        DueDelivery {
            delivery_id: id,
            attempt: 1,
            attempt_base: 0,
            subscription_id: s.id.clone(),
            target_url: s.target_url.as_str().to_owned(),
            signing_secret: d.target.signing_secret.clone(),
            previous_secret: d.target.previous_secret.clone(),
            routing_id_header: s.routing_id_header.clone(),
            routing_key_header: s.routing_key_header.clone(),
            partner_id: e.partner_id.clone(),
            event_id: e.event_id.clone(),
            event_type: e.event_type,
            created_at: e.created_at.clone(),
            trace_id: e.trace_id.clone(),
            data: e.data.clone(),
            // Only a 2025-01-01 target reads it.
            data_v2025: e
                .data_v2025
                .as_ref()
                .filter(|_| is_v2025(&d.target))
                .cloned(),
            accepted_at,
        }
    }
}

/// Converts each message event that a 2025-01-01 subscription receives, once, unless its
/// publisher supplied that version. Done here, where the fan-out is known, so an event no such
/// subscription receives (the common case) costs nothing.
fn fill_v2025(events: &mut [NewEvent], planned: &[Range<usize>], deliveries: &[PlannedDelivery]) {
    for (e, range) in events.iter_mut().zip(planned) {
        if e.data_v2025.is_some() || !v2025::is_converted(e.event_type) {
            continue;
        }
        if !deliveries[range.clone()]
            .iter()
            .any(|d| is_v2025(&d.target))
        {
            continue;
        }
        match v2025::convert(e.event_type, &e.data) {
            Ok(data) => e.data_v2025 = Some(data),
            // Validation on publish reports such data; it is delivered as published.
            Err(err) => tracing::warn!(event_id = %e.event_id, "{err}"),
        }
    }
}

fn is_v2025(target: &Target) -> bool {
    target.subscription.target_url.webhook_version() == WebhookVersion::V2025_01_01
}

/// Where a delivery row is due: at the lease's end when leased, else now.
pub fn due_at(row: &DeliveryRow, now: Timestamp, lease_until: Option<Timestamp>) -> Timestamp {
    match lease_until {
        Some(until) if row.leased => until,
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::{EventId, EventTime, EventType, TargetUrl, TraceId};

    fn target(partner: &str, events: &[&str]) -> Arc<Target> {
        Arc::new(Target {
            subscription: Subscription {
                id: SubscriptionId::generate(),
                partner_id: PartnerId::from_stored(partner),
                target_url: TargetUrl::parse("https://example.com/a", false).unwrap(),
                subscribed_events: hookline_core::event_type::parse_list(events).unwrap(),
                phone_numbers: Vec::new(),
                is_active: true,
                routing_id_header: None,
                routing_key_header: None,
                created_at: Timestamp::EPOCH,
                updated_at: Timestamp::EPOCH,
            },
            signing_secret: "whsec_x".into(),
            previous_secret: None,
        })
    }

    fn event(partner: &str, id: &str, kind: &str) -> NewEvent {
        NewEvent {
            partner_id: PartnerId::from_stored(partner),
            event_id: EventId::from_stored(id),
            event_type: EventType::parse(kind).unwrap(),
            phone_number: None,
            created_at: EventTime::at(Timestamp::EPOCH),
            trace_id: TraceId::generate(),
            data: "{}".into(),
            data_v2025: None,
        }
    }

    #[test]
    fn only_keeps_the_deliveries_to_one_subscription() {
        let (a, b) = (
            target("p", &["message.sent"]),
            target("p", &["message.sent"]),
        );
        let subs = HashMap::from([(
            PartnerId::from_stored("p"),
            Targets::from(vec![a, b.clone()]),
        )]);
        let plan = PublishPlan::new(vec![event("p", "e1", "message.sent")], &subs);
        assert_eq!(plan.deliveries().len(), 2);
        let plan = plan.only(&b.subscription.id);
        assert_eq!(plan.deliveries().len(), 1);
        assert_eq!(plan.deliveries()[0].subscription_id(), &b.subscription.id);
        assert_eq!(
            plan.new_events().next().unwrap().2,
            1,
            "the event counts one delivery"
        );
    }

    #[test]
    fn repeats_are_planned_once_and_answered_from_the_first() {
        let subs = HashMap::from([(
            PartnerId::from_stored("p"),
            Targets::from(vec![
                target("p", &["message.sent"]),
                target("p", &["message.sent", "message.received"]),
            ]),
        )]);
        let events = vec![
            event("p", "a", "message.sent"),
            event("p", "b", "message.received"),
            event("p", "a", "message.sent"),
            event("q", "c", "message.sent"),
        ];
        let mut plan = PublishPlan::new(events, &subs);
        assert_eq!(plan.deliveries().len(), 3);
        let firsts: Vec<usize> = plan.new_events().map(|(i, _, _)| i).collect();
        assert_eq!(firsts, [0, 1, 3]);
        plan.lease(0);
        plan.lease(2);
        // "b" was accepted before with 5 deliveries.
        let accepted = vec![
            Some(Acceptance::New { seq: 10 }),
            Some(Acceptance::Before { deliveries: 5 }),
            None,
            Some(Acceptance::New { seq: 11 }),
        ];
        let rows = plan.rows(&accepted, true);
        assert_eq!(rows.len(), 2, "only a's deliveries are inserted");
        let ids = [DeliveryId::from_stored(1), DeliveryId::from_stored(2)];
        let batch = plan.finish(&accepted, &rows, &ids, Timestamp::EPOCH);
        let answers: Vec<(u32, bool)> = batch
            .published
            .iter()
            .map(|p| (p.deliveries, p.duplicate))
            .collect();
        assert_eq!(answers, [(2, false), (5, true), (2, true), (0, false)]);
        assert_eq!(
            batch.claimed.len(),
            1,
            "delivery 2 belongs to b, not inserted"
        );
        assert_eq!(batch.claimed[0].0, 0);
        assert_eq!(batch.claimed[0].1.delivery_id, ids[0]);
        assert_eq!(batch.queued, 1);
    }

    #[test]
    fn marks_are_ignored_without_a_lease() {
        let subs = HashMap::from([(
            PartnerId::from_stored("p"),
            Targets::from(vec![target("p", &["message.sent"])]),
        )]);
        let mut plan = PublishPlan::new(vec![event("p", "a", "message.sent")], &subs);
        plan.lease(0);
        let accepted = vec![Some(Acceptance::New { seq: 1 })];
        let rows = plan.rows(&accepted, false);
        assert!(!rows[0].leased);
        assert_eq!(due_at(&rows[0], Timestamp::EPOCH, None), Timestamp::EPOCH);
        let batch = plan.finish(
            &accepted,
            &rows,
            &[DeliveryId::from_stored(1)],
            Timestamp::EPOCH,
        );
        assert!(batch.claimed.is_empty());
        assert_eq!(batch.queued, 1);
    }
}
