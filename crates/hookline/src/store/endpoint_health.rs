//! Dead-endpoint detection, the same on every backend. Each subscription row carries the start
//! of the first failed attempt since its last success (`failing_since`) and the deliveries that
//! failed for good since then (`exhausted_failures`). The outcome write keeps both current in
//! its own transaction — no scan — and deactivates a subscription once every attempt has failed
//! for [`DisablePolicy::after`] with at least [`DisablePolicy::min_failures`] exhausted
//! deliveries. A backend supplies the two SQL statements.

use hookline_core::{SubscriptionId, Timestamp};

use super::{DisablePolicy, NextState, Outcome};

/// What one batch of applied outcomes did to one subscription's health columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChange {
    pub subscription_id: SubscriptionId,
    /// A success in the batch: the columns are set to the values below, not added to.
    pub reset: bool,
    /// The first failed attempt after the batch's last success (or in the batch, without one).
    pub failing_since: Option<Timestamp>,
    /// Deliveries failed for good after the batch's last success.
    pub exhausted: u64,
}

impl HealthChange {
    /// Whether the batch may have made the subscription dead (worth the check's statement).
    pub fn may_kill(&self, policy: &DisablePolicy) -> bool {
        policy.after.is_some() && self.exhausted > 0
    }
}

/// Folds `applied` (outcomes whose fenced write went through, in the order they were recorded)
/// into one change per subscription, first-seen order.
pub fn changes<'a>(applied: impl IntoIterator<Item = &'a Outcome>) -> Vec<HealthChange> {
    let mut changes: Vec<HealthChange> = Vec::new();
    for o in applied {
        let i = match changes
            .iter()
            .position(|c| c.subscription_id == o.subscription_id)
        {
            Some(i) => i,
            None => {
                changes.push(HealthChange {
                    subscription_id: o.subscription_id.clone(),
                    reset: false,
                    failing_since: None,
                    exhausted: 0,
                });
                changes.len() - 1
            }
        };
        let c = &mut changes[i];
        match o.next {
            NextState::Succeeded => {
                c.reset = true;
                c.failing_since = None;
                c.exhausted = 0;
            }
            NextState::RetryAt(_) => {
                c.failing_since.get_or_insert(o.attempt.started_at);
            }
            NextState::Failed => {
                c.failing_since.get_or_insert(o.attempt.started_at);
                c.exhausted += 1;
            }
        }
    }
    changes
}

/// The latest `failing_since` that makes a subscription dead at `now`; `None` when the policy
/// never deactivates.
pub fn dead_before(policy: &DisablePolicy, now: Timestamp) -> Option<Timestamp> {
    let after = policy.after?;
    Some(Timestamp::from_micros(now.as_micros().saturating_sub(
        i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
    )))
}

/// The `data.summary` of the `webhook_subscription.disabled` event of a dead endpoint.
pub fn dead_summary(failing_since: Timestamp, exhausted: u64) -> String {
    format!(
        "Webhook subscription disabled: every delivery attempt has failed since {} \
         ({exhausted} deliveries failed after all retries, none succeeded)",
        failing_since.rfc3339()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AttemptRecord;
    use hookline_core::DeliveryId;

    fn outcome(sub: &str, at: i64, next: NextState) -> Outcome {
        Outcome {
            subscription_id: SubscriptionId::from_stored(sub),
            attempt: AttemptRecord {
                delivery_id: DeliveryId::from_stored(1),
                attempt: 1,
                started_at: Timestamp::from_micros(at),
                duration_ms: 1,
                status_code: None,
                error_kind: None,
                error_message: None,
                response_body: None,
            },
            next,
            deactivate_subscription: None,
            learned_routing_token: None,
        }
    }

    #[test]
    fn a_success_resets_and_later_failures_count_from_it() {
        let retry = NextState::RetryAt(Timestamp::from_micros(99));
        let batch = [
            outcome("a", 1, NextState::Failed),
            outcome("b", 2, retry),
            outcome("a", 3, NextState::Succeeded),
            outcome("a", 4, retry),
            outcome("a", 5, NextState::Failed),
            outcome("b", 6, NextState::Failed),
        ];
        let c = changes(&batch);
        assert_eq!(
            c,
            vec![
                HealthChange {
                    subscription_id: SubscriptionId::from_stored("a"),
                    reset: true,
                    failing_since: Some(Timestamp::from_micros(4)),
                    exhausted: 1,
                },
                HealthChange {
                    subscription_id: SubscriptionId::from_stored("b"),
                    reset: false,
                    failing_since: Some(Timestamp::from_micros(2)),
                    exhausted: 1,
                },
            ]
        );
        let off = DisablePolicy {
            after: None,
            min_failures: 1,
        };
        assert!(!c[0].may_kill(&off));
        assert!(c[0].may_kill(&DisablePolicy::default()));
    }

    #[test]
    fn the_cutoff_is_the_policy_before_now() {
        let policy = DisablePolicy {
            after: Some(std::time::Duration::from_secs(2)),
            min_failures: 1,
        };
        let now = Timestamp::from_micros(5_000_000);
        assert_eq!(
            dead_before(&policy, now),
            Some(Timestamp::from_micros(3_000_000))
        );
        let off = DisablePolicy {
            after: None,
            ..policy
        };
        assert_eq!(dead_before(&off, now), None);
    }
}
