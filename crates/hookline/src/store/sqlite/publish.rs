//! Publishing on SQLite: the plan from the fan-out cache (or a reader), the commit as one job
//! on the writer thread. The plan and the answer are [`publish_plan`]'s.

use hookline_core::{DeliveryId, PartnerId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

use super::subscriptions::load_subscriptions;
use super::SqliteStore;
use crate::store::publish_plan::{due_at, Acceptance, PublishPlan, Targets};
use crate::store::rows::{self, FAN_OUT_COLUMNS};
use crate::store::{NewEvent, PublishBatch, StoreResult};

impl SqliteStore {
    pub(super) async fn plan_publish(&self, events: Vec<NewEvent>) -> StoreResult<PublishPlan> {
        // Subscriptions come from the cache or a reader, outside the write transaction: the
        // single writer only writes. A subscription changed in between is caught at claim time.
        let mut subs: HashMap<PartnerId, Targets> = HashMap::new();
        let mut missing: Vec<PartnerId> = Vec::new();
        let generation = {
            let cache = self.fan_out_cache.lock().expect("not poisoned");
            for p in PublishPlan::partners(&events) {
                match cache.by_partner.get(&p) {
                    Some(t) => {
                        subs.insert(p, t.clone());
                    }
                    None => missing.push(p),
                }
            }
            cache.generation
        };
        if !missing.is_empty() {
            let loaded: Vec<(PartnerId, Targets)> = self
                .read(move |c| {
                    let mut out = Vec::new();
                    for p in missing {
                        let rows = load_subscriptions(
                            c,
                            &format!(
                                "SELECT {FAN_OUT_COLUMNS} FROM subscriptions \
                                 WHERE partner_id = ?1 AND deleted_at IS NULL AND is_active = 1"
                            ),
                            &[&p.as_str()],
                            true,
                        )?;
                        out.push((p, rows::targets(rows)?));
                    }
                    Ok(out)
                })
                .await?;
            let mut cache = self.fan_out_cache.lock().expect("not poisoned");
            let fresh = cache.generation == generation;
            for (p, t) in loaded {
                if fresh {
                    cache.by_partner.insert(p.clone(), t.clone());
                }
                subs.insert(p, t);
            }
        }
        Ok(PublishPlan::new(events, &subs))
    }

    pub(super) async fn commit_publish(
        &self,
        plan: PublishPlan,
        now: Timestamp,
        lease_until: Option<Timestamp>,
    ) -> StoreResult<PublishBatch> {
        // The answer (and the deliveries handed to the dispatcher, with their payload copies)
        // is built after the job, off the single writer thread.
        let (plan, accepted, rows, ids) = self
            .write_shared(false, move |tx| {
            let accepted = insert_events(tx, &plan, now)?;
            let rows = plan.rows(&accepted, lease_until.is_some());
            let ids = {
                let mut insert_delivery = tx.prepare_cached(
                    "INSERT INTO deliveries (event_seq, subscription_id, state, attempts, \
                     next_attempt_at, created_at, updated_at) VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?5) \
                     RETURNING id",
                )?;
                let mut ids = Vec::with_capacity(rows.len());
                for r in &rows {
                    let sub = plan.deliveries()[r.plan_index].subscription_id();
                    let due = due_at(r, now, lease_until).as_micros();
                    let id: i64 = insert_delivery.query_row(
                        params![r.seq, sub.as_str(), i64::from(r.leased), due, now.as_micros()],
                        |r| r.get(0),
                    )?;
                    ids.push(DeliveryId::from_stored(id));
                }
                ids
            };
            Ok((plan, accepted, rows, ids))
        })
        .await?;
        Ok(plan.finish(&accepted, &rows, &ids, now))
    }
}

/// Inserts the plan's new events; for each event in the batch, what the insert found.
fn insert_events(
    tx: &Connection,
    plan: &PublishPlan,
    now: Timestamp,
) -> StoreResult<Vec<Option<Acceptance>>> {
    let mut insert_event = tx.prepare_cached(
        "INSERT INTO events (partner_id, event_id, event_type, phone_number, created_at, \
         trace_id, data, deliveries, accepted_at, data_v2025) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (partner_id, event_id) DO NOTHING RETURNING seq",
    )?;
    let mut existing =
        tx.prepare_cached("SELECT deliveries FROM events WHERE partner_id = ?1 AND event_id = ?2")?;
    let mut accepted = vec![None; plan.events().len()];
    for (i, e, deliveries) in plan.new_events() {
        let seq: Option<i64> = insert_event
            .query_row(
                params![
                    e.partner_id.as_str(),
                    e.event_id.as_str(),
                    e.event_type.as_str(),
                    e.phone_number.as_ref().map(|p| p.as_str()),
                    e.created_at.as_str(),
                    e.trace_id.as_str(),
                    e.data,
                    deliveries,
                    now.as_micros(),
                    e.data_v2025
                ],
                |r| r.get(0),
            )
            .optional()?;
        accepted[i] = Some(match seq {
            Some(seq) => Acceptance::New { seq },
            None => Acceptance::Before {
                deliveries: existing
                    .query_row(params![e.partner_id.as_str(), e.event_id.as_str()], |r| {
                        r.get(0)
                    })?,
            },
        });
    }
    Ok(accepted)
}
