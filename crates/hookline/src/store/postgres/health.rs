//! Dead-endpoint detection on PostgreSQL: [`endpoint_health`]'s changes in one statement of the
//! outcome transaction, then one check of the subscriptions that may have died. Subscription
//! columns keep the node's clock, like every subscription write.

use hookline_core::{PartnerId, SubscriptionId, Timestamp};
use sqlx::{Postgres, Transaction};

use crate::store::endpoint_health::{self, HealthChange};
use crate::store::{Deactivation, DeactivationReason, DisablePolicy, StoreResult};

/// Writes `changes` and deactivates the subscriptions `policy` finds dead at `now`.
pub(super) async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    changes: &mut [HealthChange],
    policy: DisablePolicy,
    now: Timestamp,
) -> StoreResult<Vec<Deactivation>> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    // Rows locked in id order: two nodes writing overlapping batches cannot deadlock here.
    changes.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
    // A success on a healthy subscription matches no row: nothing is written or locked.
    sqlx::query(
        "UPDATE subscriptions s SET \
            failing_since = CASE WHEN u.reset THEN u.since ELSE COALESCE(s.failing_since, u.since) END, \
            exhausted_failures = CASE WHEN u.reset THEN u.exhausted \
                                      ELSE s.exhausted_failures + u.exhausted END \
         FROM UNNEST($1::text[], $2::bool[], $3::bigint[], $4::bigint[]) AS u(id, reset, since, exhausted) \
         WHERE s.id = u.id AND (NOT u.reset OR s.failing_since IS DISTINCT FROM u.since \
                                OR s.exhausted_failures <> u.exhausted)",
    )
    .bind(changes.iter().map(|c| c.subscription_id.as_str()).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.reset).collect::<Vec<_>>())
    .bind(
        changes
            .iter()
            .map(|c| c.failing_since.map(Timestamp::as_micros))
            .collect::<Vec<_>>(),
    )
    .bind(changes.iter().map(|c| c.exhausted as i64).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    let Some(before) = endpoint_health::dead_before(&policy, now) else {
        return Ok(Vec::new());
    };
    let suspects: Vec<&str> = changes
        .iter()
        .filter(|c| c.may_kill(&policy))
        .map(|c| c.subscription_id.as_str())
        .collect();
    if suspects.is_empty() {
        return Ok(Vec::new());
    }
    let killed: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "UPDATE subscriptions SET is_active = FALSE, updated_at = GREATEST($2, updated_at + 1) \
         WHERE id = ANY($1) AND is_active AND deleted_at IS NULL \
           AND failing_since <= $3 AND exhausted_failures >= $4 \
         RETURNING id, partner_id, target_url, failing_since, exhausted_failures",
    )
    .bind(&suspects)
    .bind(now.as_micros())
    .bind(before.as_micros())
    .bind(policy.min_failures as i64)
    .fetch_all(&mut **tx)
    .await?;
    Ok(killed
        .into_iter()
        .map(
            |(id, partner_id, target_url, since, exhausted)| Deactivation {
                partner_id: PartnerId::from_stored(partner_id),
                subscription_id: SubscriptionId::from_stored(id),
                target_url,
                reason: DeactivationReason::DeadEndpoint {
                    failing_since: Timestamp::from_micros(since),
                    exhausted: exhausted as u64,
                },
            },
        )
        .collect())
}
