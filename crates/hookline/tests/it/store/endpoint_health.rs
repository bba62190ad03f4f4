//! Dead-endpoint detection in the outcome write: a subscription whose every attempt failed for
//! the policy's duration, with enough deliveries failed for good and no success in between, is
//! deactivated by the write that finds it dead, once; a success resets the count, and so does
//! re-enabling the subscription.

use super::fixture::*;
use hookline::store::{Deactivation, DeactivationReason, DisablePolicy, Outcome};
use std::time::Duration;

conformance!(
    a_subscription_failing_long_enough_is_deactivated_once,
    a_success_or_a_re_enable_starts_the_count_again,
    a_policy_without_a_duration_never_deactivates,
);

const POLICY: DisablePolicy = DisablePolicy {
    after: Some(Duration::from_secs(100)),
    min_failures: 2,
};

/// Publishes one event for `sub` at `secs`, claims it a second later and records `next` for
/// that attempt (started then) a second after that, under `policy`.
async fn attempt(
    f: &Fixture,
    sub: &Subscription,
    secs: i64,
    next: fn(&DueDelivery) -> Outcome,
    policy: DisablePolicy,
) -> Vec<Deactivation> {
    f.publish(&[event(&sub.partner_id, "message.sent")], at(secs))
        .await;
    let d = f.claim_all(at(secs + 1)).await.remove(0);
    let mut o = next(&d);
    o.attempt.started_at = at(secs + 1);
    f.store
        .record_outcomes_with(&[o], at(secs + 2), policy)
        .await
        .unwrap()
}

async fn a_subscription_failing_long_enough_is_deactivated_once(f: Fixture) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    assert!(attempt(&f, &sub, 0, failed, POLICY).await.is_empty());
    assert!(
        attempt(&f, &sub, 50, failed, POLICY).await.is_empty(),
        "two failures, but within 100 s of the first"
    );
    // A retry is a failed attempt, not a delivery failed for good: no check.
    let retry = |d: &DueDelivery| retry_at(d, at(1_000));
    assert!(attempt(&f, &sub, 200, retry, POLICY).await.is_empty());
    assert!(f.reread(&sub).await.unwrap().is_active);

    let dead = attempt(&f, &sub, 300, failed, POLICY).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].subscription_id, sub.id);
    assert_eq!(dead[0].partner_id, p);
    assert_eq!(dead[0].target_url, sub.target_url.as_str());
    match dead[0].reason {
        DeactivationReason::DeadEndpoint {
            failing_since,
            exhausted,
        } => {
            assert!(near(failing_since, at(1)), "the first failed attempt");
            assert_eq!(exhausted, 3);
        }
        other => panic!("{other:?}"),
    }
    assert!(!f.reread(&sub).await.unwrap().is_active);
}

async fn a_success_or_a_re_enable_starts_the_count_again(f: Fixture) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    assert!(attempt(&f, &sub, 0, failed, POLICY).await.is_empty());
    assert!(attempt(&f, &sub, 150, succeeded, POLICY).await.is_empty());
    assert!(attempt(&f, &sub, 160, failed, POLICY).await.is_empty());
    assert!(
        attempt(&f, &sub, 200, failed, POLICY).await.is_empty(),
        "failing since 161 s only: the success at 151 s reset the count"
    );
    assert_eq!(attempt(&f, &sub, 300, failed, POLICY).await.len(), 1);

    // Re-enabled by the partner: the history before it no longer counts.
    let read = f.reread(&sub).await.unwrap();
    f.update(&read, at(400), |s| s.is_active = true).await;
    assert!(attempt(&f, &sub, 410, failed, POLICY).await.is_empty());
    assert!(attempt(&f, &sub, 420, failed, POLICY).await.is_empty());
    assert!(f.reread(&sub).await.unwrap().is_active);
}

async fn a_policy_without_a_duration_never_deactivates(f: Fixture) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let off = DisablePolicy {
        after: None,
        min_failures: 1,
    };
    for secs in [0, 1_000, 100_000] {
        assert!(attempt(&f, &sub, secs, failed, off).await.is_empty());
    }
    assert!(f.reread(&sub).await.unwrap().is_active);
}
