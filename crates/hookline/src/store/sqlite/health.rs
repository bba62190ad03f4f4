//! Dead-endpoint detection on SQLite: [`endpoint_health`]'s changes written in the outcome
//! transaction, then the check of the subscriptions that may have died.

use hookline_core::{PartnerId, SubscriptionId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};

use crate::store::endpoint_health::{self, HealthChange};
use crate::store::{Deactivation, DeactivationReason, DisablePolicy, StoreResult};

/// Writes `changes` and deactivates the subscriptions `policy` finds dead at `now` (µs).
pub(super) fn apply(
    tx: &Connection,
    changes: &[HealthChange],
    policy: DisablePolicy,
    now: i64,
) -> StoreResult<Vec<Deactivation>> {
    // A success on a healthy subscription matches no row: nothing is written.
    let mut reset = tx.prepare_cached(
        "UPDATE subscriptions SET failing_since = ?2, exhausted_failures = ?3 \
         WHERE id = ?1 AND (failing_since IS NOT ?2 OR exhausted_failures != ?3)",
    )?;
    let mut add = tx.prepare_cached(
        "UPDATE subscriptions SET failing_since = COALESCE(failing_since, ?2), \
         exhausted_failures = exhausted_failures + ?3 WHERE id = ?1",
    )?;
    let mut kill = tx.prepare_cached(
        "UPDATE subscriptions SET is_active = 0, updated_at = MAX(?2, updated_at + 1) \
         WHERE id = ?1 AND is_active = 1 AND deleted_at IS NULL \
           AND failing_since <= ?3 AND exhausted_failures >= ?4 \
         RETURNING partner_id, target_url, failing_since, exhausted_failures",
    )?;
    let dead_before = endpoint_health::dead_before(&policy, Timestamp::from_micros(now));
    let mut deactivated = Vec::new();
    for c in changes {
        let since = c.failing_since.map(Timestamp::as_micros);
        let (id, exhausted) = (c.subscription_id.as_str(), c.exhausted as i64);
        match c.reset {
            true => reset.execute(params![id, since, exhausted])?,
            false => add.execute(params![id, since, exhausted])?,
        };
        let Some(before) = dead_before.filter(|_| c.may_kill(&policy)) else {
            continue;
        };
        let killed = kill
            .query_row(
                params![id, now, before.as_micros(), policy.min_failures as i64],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()?;
        if let Some((partner_id, target_url, since, exhausted)) = killed {
            deactivated.push(Deactivation {
                partner_id: PartnerId::from_stored(partner_id),
                subscription_id: SubscriptionId::from_stored(id),
                target_url,
                reason: DeactivationReason::DeadEndpoint {
                    failing_since: Timestamp::from_micros(since),
                    exhausted: exhausted as u64,
                },
            });
        }
    }
    Ok(deactivated)
}
