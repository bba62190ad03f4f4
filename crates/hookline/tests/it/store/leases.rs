//! Leases and due times: a claimed delivery belongs to its claimer until the lease ends, and
//! to the next claim after; retries wait for their time; claims take the oldest due first.

use super::fixture::*;

conformance!(
    a_claimed_delivery_is_not_claimed_again_before_its_lease_ends_and_is_after,
    a_delivery_leased_at_publish_is_claimed_only_after_its_lease_ends,
    only_deliveries_given_a_slot_at_publish_are_committed_leased,
    a_retry_is_claimed_at_its_time_and_not_before,
    claims_take_the_oldest_due_first,
);

async fn a_claimed_delivery_is_not_claimed_again_before_its_lease_ends_and_is_after(f: Fixture) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let e = event(&p, "message.sent");
    f.publish(std::slice::from_ref(&e), at(1)).await;

    let first = f.claim_all(at(10)).await;
    assert_eq!(pairs(&first), pairs_for(&e, &[&sub]));
    assert_eq!(first[0].attempt, 1);

    // The lease runs LEASE_SECS (30 s) from the claim at 10 s.
    assert!(f.claim_all(at(11)).await.is_empty(), "leased right after");
    assert!(f.claim_all(at(38)).await.is_empty(), "leased until 40 s");
    let again = f.claim_all(at(41)).await;
    assert_eq!(
        pairs(&again),
        pairs(&first),
        "the lease ended: claimable again"
    );
    assert_eq!(again[0].delivery_id, first[0].delivery_id);
    assert_eq!(again[0].attempt, 2, "a new claim is a new attempt");
    assert!(f.claim_all(at(42)).await.is_empty(), "and leased again");
}

async fn a_delivery_leased_at_publish_is_claimed_only_after_its_lease_ends(f: Fixture) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let e = event(&p, "message.sent");

    let (answers, leased) = f.publish_leased(std::slice::from_ref(&e), at(1)).await;
    assert_eq!((answers[0].deliveries, answers[0].duplicate), (1, false));
    assert_eq!(
        pairs(&leased),
        pairs_for(&e, &[&sub]),
        "handed over at commit"
    );
    assert_eq!(leased[0].attempt, 1);
    assert_eq!(
        f.counts().await,
        counts(1, 0, 0, 0),
        "still pending while in flight"
    );

    assert!(
        f.claim_all(at(2)).await.is_empty(),
        "leased to the publisher"
    );
    assert!(f.claim_all(at(30)).await.is_empty(), "leased until 31 s");
    let again = f.claim_all(at(32)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_id, leased[0].delivery_id);
    assert_eq!(again[0].attempt, 2, "the publisher's send was attempt 1");
}

async fn only_deliveries_given_a_slot_at_publish_are_committed_leased(f: Fixture) {
    let p = f.partner().await;
    let with_slot = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let without = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let e = event(&p, "message.sent");

    let (answers, leased) = f
        .publish_leasing(std::slice::from_ref(&e), at(1), |id| *id == with_slot.id)
        .await;

    assert_eq!(answers[0].deliveries, 2, "both are scheduled");
    assert_eq!(
        pairs(&leased),
        pairs_for(&e, &[&with_slot]),
        "one handed over"
    );
    let queued = f.claim_all(at(5)).await;
    assert_eq!(
        pairs(&queued),
        pairs_for(&e, &[&without]),
        "the other is due at once"
    );
    assert_eq!(queued[0].attempt, 1);
    // The slot's lease ended at 31 s; the claim at 5 s leases until 35 s.
    let expired = f.claim_all(at(33)).await;
    assert_eq!(
        pairs(&expired),
        pairs_for(&e, &[&with_slot]),
        "after its lease ends"
    );
    assert_eq!(expired[0].attempt, 2);
}

async fn a_retry_is_claimed_at_its_time_and_not_before(f: Fixture) {
    let p = f.partner().await;
    f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let e = event(&p, "message.sent");
    f.publish(std::slice::from_ref(&e), at(1)).await;
    let first = f.claim_all(at(2)).await;

    f.record(&[retry_at(&first[0], at(100))], at(3)).await;

    assert_eq!(
        f.counts().await,
        counts(1, 0, 0, 0),
        "a retry stays pending"
    );
    let next_due = f.store.next_due_after(at(3)).await.unwrap();
    assert!(
        next_due.is_some_and(|t| near(t, at(100))),
        "next due at the retry time, not at the lease end: {next_due:?}"
    );
    assert!(
        f.claim_all(at(50)).await.is_empty(),
        "the retry time, not the ended lease (32 s), decides"
    );
    assert!(f.claim_all(at(99)).await.is_empty());
    let retried = f.claim_all(at(101)).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].delivery_id, first[0].delivery_id);
    assert_eq!(retried[0].attempt, 2);
}

async fn claims_take_the_oldest_due_first(f: Fixture) {
    let p = f.partner().await;
    let (a, b) = (
        f.subscribe(&p, Spec::to(&["message.sent"])).await,
        f.subscribe(&p, Spec::to(&["message.received"])).await,
    );
    let first = event(&p, "message.received");
    let second = event(&p, "message.sent");
    let third = event(&p, "message.received");
    f.publish(std::slice::from_ref(&first), at(1)).await;
    f.publish(std::slice::from_ref(&second), at(2)).await;
    f.publish(std::slice::from_ref(&third), at(3)).await;
    assert!(
        f.claim_all(at(0)).await.is_empty(),
        "nothing is due before it was published"
    );

    let one = Room {
        limit: 1,
        ..Room::plenty()
    };
    let mut order = Vec::new();
    for n in 0..3 {
        let claimed = f.claim(at(10), one).await;
        assert_eq!(claimed.deliveries.len(), 1, "claim {n}");
        order.push(pairs(&claimed.deliveries).remove(0));
    }
    assert_eq!(
        order,
        [
            pairs_for(&first, &[&b]).remove(0),
            pairs_for(&second, &[&a]).remove(0),
            pairs_for(&third, &[&b]).remove(0),
        ]
    );
}
