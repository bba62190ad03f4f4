//! Publishing on PostgreSQL: the plan from one read outside the commit's transaction, the
//! commit as a fixed number of statements. The plan and the answer are [`publish_plan`]'s.
//!
//! [`publish_plan`]: crate::store::publish_plan

use hookline_core::{DeliveryId, PartnerId, Timestamp};
use sqlx::{Postgres, Transaction};
use std::collections::HashMap;

use super::{PostgresStore, WAKE_CHANNEL};
use crate::store::publish_plan::{due_at, Acceptance, DeliveryRow, PublishPlan, Targets};
use crate::store::rows::{self, SubscriptionRow, FAN_OUT_COLUMNS};
use crate::store::{NewEvent, PublishBatch, StoreResult};

impl PostgresStore {
    pub(super) async fn plan_publish(&self, events: Vec<NewEvent>) -> StoreResult<PublishPlan> {
        // Read outside the commit's transaction: under READ COMMITTED a read inside it would see
        // no more than this one, and a subscription changed in between is caught at claim time.
        let mut subs: HashMap<PartnerId, Targets> = HashMap::new();
        for p in PublishPlan::partners(&events) {
            let rows: Vec<SubscriptionRow> = sqlx::query_as(&format!(
                "SELECT {FAN_OUT_COLUMNS} FROM subscriptions \
                 WHERE partner_id = $1 AND deleted_at IS NULL AND is_active"
            ))
            .bind(p.as_str())
            .fetch_all(&self.pool)
            .await?;
            subs.insert(p, rows::targets(rows)?);
        }
        Ok(PublishPlan::new(events, &subs))
    }

    pub(super) async fn commit_publish(
        &self,
        plan: PublishPlan,
        now: Timestamp,
        lease_until: Option<Timestamp>,
    ) -> StoreResult<PublishBatch> {
        let db = self.db_time().await?;
        let on_db = |t: Timestamp| Timestamp::from_micros(db.db_micros(t));
        let accepted_at = now;
        let (now, lease_until) = (on_db(now), lease_until.map(on_db));
        // A fixed number of statements per batch: each is a network round trip.
        let mut tx = self.pool.begin().await?;
        let accepted = insert_events(&mut tx, &plan, now).await?;
        let rows = plan.rows(&accepted, lease_until.is_some());
        let ids = insert_deliveries(&mut tx, &plan, &rows, now, lease_until).await?;
        if rows.iter().any(|r| !r.leased) {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(WAKE_CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(plan.finish(&accepted, &rows, &ids, accepted_at))
    }
}

type EventKey = (String, String);

/// Inserts the plan's new events; for each event in the batch, what the insert found.
async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    plan: &PublishPlan,
    now: Timestamp,
) -> StoreResult<Vec<Option<Acceptance>>> {
    // Rows go in (partner_id, event_id) order: two nodes inserting overlapping ids then wait
    // on each other in the same order instead of deadlocking.
    let mut new: Vec<(usize, &NewEvent, i64)> = plan.new_events().collect();
    new.sort_by(|a, b| (&a.1.partner_id, &a.1.event_id).cmp(&(&b.1.partner_id, &b.1.event_id)));
    let column = |f: fn(&NewEvent) -> &str| new.iter().map(|n| f(n.1)).collect::<Vec<&str>>();
    let phones: Vec<Option<&str>> = new
        .iter()
        .map(|n| n.1.phone_number.as_ref().map(|p| p.as_str()))
        .collect();
    let counts: Vec<i64> = new.iter().map(|n| n.2).collect();
    // ON CONFLICT makes concurrent publishes of one event_id on two nodes create one event:
    // the second waits on the unique index, then skips the row the first committed.
    let inserted: Vec<(i64, String, String)> = sqlx::query_as(
        "INSERT INTO events (partner_id, event_id, event_type, phone_number, created_at, \
         trace_id, data, deliveries, data_v2025, accepted_at) \
         SELECT u.*, $10 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                                    $6::text[], $7::text[], $8::bigint[], $9::text[]) AS u \
         ON CONFLICT (partner_id, event_id) DO NOTHING RETURNING seq, partner_id, event_id",
    )
    .bind(column(|e| e.partner_id.as_str()))
    .bind(column(|e| e.event_id.as_str()))
    .bind(column(|e| e.event_type.as_str()))
    .bind(&phones)
    .bind(column(|e| e.created_at.as_str()))
    .bind(column(|e| e.trace_id.as_str()))
    .bind(column(|e| &e.data))
    .bind(&counts)
    .bind(
        new.iter()
            .map(|n| n.1.data_v2025.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(now.as_micros())
    .fetch_all(&mut **tx)
    .await?;
    let all_new = inserted.len() == new.len();
    let inserted: HashMap<EventKey, i64> = inserted
        .into_iter()
        .map(|(seq, p, e)| ((p, e), seq))
        .collect();
    let mut prior: HashMap<EventKey, i64> = HashMap::new();
    if !all_new {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT partner_id, event_id, deliveries FROM events \
             WHERE (partner_id, event_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
        )
        .bind(column(|e| e.partner_id.as_str()))
        .bind(column(|e| e.event_id.as_str()))
        .fetch_all(&mut **tx)
        .await?;
        prior = rows.into_iter().map(|(p, e, n)| ((p, e), n)).collect();
    }
    let mut accepted = vec![None; plan.events().len()];
    for (i, e, _) in new {
        let key = (
            e.partner_id.as_str().to_owned(),
            e.event_id.as_str().to_owned(),
        );
        accepted[i] = Some(match inserted.get(&key) {
            Some(seq) => Acceptance::New { seq: *seq },
            None => Acceptance::Before {
                deliveries: prior.get(&key).copied().unwrap_or_default(),
            },
        });
    }
    Ok(accepted)
}

/// Inserts the delivery rows; their ids, in `rows` order.
async fn insert_deliveries(
    tx: &mut Transaction<'_, Postgres>,
    plan: &PublishPlan,
    rows: &[DeliveryRow],
    now: Timestamp,
    lease_until: Option<Timestamp>,
) -> StoreResult<Vec<DeliveryId>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let sub = |r: &DeliveryRow| plan.deliveries()[r.plan_index].subscription_id().as_str();
    let returned: Vec<(i64, i64, String)> = sqlx::query_as(
        "INSERT INTO deliveries (event_seq, subscription_id, state, attempts, \
         next_attempt_at, created_at, updated_at) \
         SELECT u.seq, u.sub, 'pending', u.attempts, u.due, $5, $5 \
         FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) AS u(seq, sub, attempts, due) \
         RETURNING id, event_seq, subscription_id",
    )
    .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
    .bind(rows.iter().map(sub).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| i64::from(r.leased)).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| due_at(r, now, lease_until).as_micros())
            .collect::<Vec<_>>(),
    )
    .bind(now.as_micros())
    .fetch_all(&mut **tx)
    .await?;
    // RETURNING promises no order: pair rows by (event, subscription), unique within a publish.
    let ids: HashMap<(i64, String), i64> = returned
        .into_iter()
        .map(|(id, seq, sub)| ((seq, sub), id))
        .collect();
    rows.iter()
        .map(|r| {
            ids.get(&(r.seq, sub(r).to_owned()))
                .map(|id| DeliveryId::from_stored(*id))
                .ok_or_else(|| anyhow::anyhow!("a delivery insert returned no id").into())
        })
        .collect()
}
