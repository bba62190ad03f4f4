//! Idempotent publish: an event id is accepted once per partner, and every repeat — in the
//! same batch, a later batch, or a concurrent one — is answered from that first acceptance
//! and schedules nothing.

use super::fixture::*;

conformance!(
    repeats_in_one_batch_make_one_event_and_share_its_count,
    a_repeat_in_a_later_batch_schedules_nothing_and_reports_the_first_count,
    a_repeat_keeps_the_first_count_after_the_subscriptions_change,
    a_repeat_published_with_slots_hands_nothing_over,
    concurrent_repeats_make_one_event_and_tell_every_caller_the_same_count,
    event_ids_are_idempotency_keys_per_partner,
);

async fn repeats_in_one_batch_make_one_event_and_share_its_count(f: Fixture) {
    let p = f.partner().await;
    let a = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let b = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let e = event(&p, "message.sent");
    let other = event(&p, "message.sent");

    let answers = f
        .publish(&[e.clone(), other.clone(), e.clone(), e.clone()], at(1))
        .await;

    let shape: Vec<(String, u32, bool)> = answers
        .iter()
        .map(|a| (a.event_id.to_string(), a.deliveries, a.duplicate))
        .collect();
    let (id, other_id) = (e.event_id.to_string(), other.event_id.to_string());
    assert_eq!(
        shape,
        [
            (id.clone(), 2, false),
            (other_id, 2, false),
            (id.clone(), 2, true),
            (id, 2, true),
        ],
        "one answer per event in request order; repeats answered from the first"
    );
    let due = f.claim_all(at(2)).await;
    assert_eq!(
        pairs(of_event(&due, &e)),
        pairs_for(&e, &[&a, &b]),
        "one delivery per subscription, however often the batch repeats the event"
    );
    assert_eq!(
        f.counts().await,
        counts(4, 0, 0, 0),
        "2 events × 2 subscriptions"
    );
}

async fn a_repeat_in_a_later_batch_schedules_nothing_and_reports_the_first_count(f: Fixture) {
    let p = f.partner().await;
    let a = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let e = event(&p, "message.sent");

    let first = f.publish(std::slice::from_ref(&e), at(1)).await;
    assert_eq!((first[0].deliveries, first[0].duplicate), (1, false));
    let delivered = f.claim_all(at(2)).await;
    assert_eq!(pairs(&delivered), pairs_for(&e, &[&a]));
    f.record(&[succeeded(&delivered[0])], at(3)).await;

    let again = f.publish(std::slice::from_ref(&e), at(4)).await;
    assert_eq!(
        (again[0].deliveries, again[0].duplicate),
        (1, true),
        "told the first acceptance's count, as a duplicate"
    );
    assert!(
        f.claim_all(at(5)).await.is_empty(),
        "a repeat after delivery sends nothing again"
    );
    assert_eq!(f.counts().await, counts(0, 1, 0, 0));
}

async fn a_repeat_keeps_the_first_count_after_the_subscriptions_change(f: Fixture) {
    let p = f.partner().await;
    let a = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let e = event(&p, "message.sent");
    assert_eq!(
        f.publish(std::slice::from_ref(&e), at(1)).await[0].deliveries,
        1
    );

    let b = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let c = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let again = f.publish(std::slice::from_ref(&e), at(2)).await;

    assert_eq!((again[0].deliveries, again[0].duplicate), (1, true));
    let due = f.claim_all(at(3)).await;
    assert_eq!(
        pairs(&due),
        pairs_for(&e, &[&a]),
        "subscriptions created after the first acceptance ({}, {}) get nothing",
        b.id,
        c.id
    );
}

async fn a_repeat_published_with_slots_hands_nothing_over(f: Fixture) {
    let p = f.partner().await;
    let a = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let (e, fresh) = (event(&p, "message.sent"), event(&p, "message.sent"));
    f.publish(std::slice::from_ref(&e), at(1)).await;

    let (answers, leased) = f
        .publish_leased(&[e.clone(), fresh.clone(), fresh.clone()], at(2))
        .await;

    let told: Vec<(u32, bool)> = answers
        .iter()
        .map(|a| (a.deliveries, a.duplicate))
        .collect();
    assert_eq!(told, [(1, true), (1, false), (1, true)]);
    assert_eq!(
        pairs(&leased),
        pairs_for(&fresh, &[&a]),
        "only the new event's delivery, once, is handed over"
    );
    let queued = f.claim_all(at(3)).await;
    assert_eq!(
        pairs(&queued),
        pairs_for(&e, &[&a]),
        "the first acceptance's, untouched"
    );
    assert_eq!(queued[0].attempt, 1);
    assert_eq!(f.counts().await, counts(2, 0, 0, 0));
}

async fn concurrent_repeats_make_one_event_and_tell_every_caller_the_same_count(f: Fixture) {
    const CALLERS: usize = 8;
    let p = f.partner().await;
    let subs = [
        f.subscribe(&p, Spec::to(&["message.sent"])).await,
        f.subscribe(&p, Spec::to(&["message.sent"])).await,
        f.subscribe(&p, Spec::to(&["message.sent"])).await,
    ];
    let shared = event(&p, "message.sent");
    // Each caller also brings an event of its own, so the repeats race inside real batches.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CALLERS));
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let (store, barrier) = (f.store.clone(), barrier.clone());
        let batch = [event(&p, "message.sent"), shared.clone()];
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            publish_on(&store, &batch, at(1)).await
        }));
    }
    let mut firsts = 0;
    for task in tasks {
        let answers = task.await.unwrap();
        assert_eq!(answers[0].deliveries, 3, "a caller's own event");
        assert!(!answers[0].duplicate);
        assert_eq!(answers[1].deliveries, 3, "every caller told the same count");
        firsts += usize::from(!answers[1].duplicate);
    }
    assert_eq!(
        firsts, 1,
        "exactly one caller's publish accepted the shared event"
    );

    let due = f.claim_all(at(2)).await;
    let sub_refs: Vec<&_> = subs.iter().collect();
    assert_eq!(
        pairs(of_event(&due, &shared)),
        pairs_for(&shared, &sub_refs),
        "one delivery per subscription for the shared event"
    );
    assert_eq!(
        due.len(),
        3 * (CALLERS + 1),
        "and 3 for each caller's own event"
    );
    assert_eq!(f.counts().await, counts(3 * (CALLERS as u64 + 1), 0, 0, 0));
}

async fn event_ids_are_idempotency_keys_per_partner(f: Fixture) {
    let (p, q) = (f.partner().await, f.partner().await);
    let a = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let b = f.subscribe(&q, Spec::to(&["message.sent"])).await;
    let ep = with_id(&event(&p, "message.sent"), "order-1");
    let eq = with_id(&event(&q, "message.sent"), "order-1");

    let first = f.publish(std::slice::from_ref(&ep), at(1)).await;
    let second = f.publish(std::slice::from_ref(&eq), at(2)).await;

    assert!(
        !first[0].duplicate && !second[0].duplicate,
        "another partner's id is no repeat"
    );
    let mut got = targets_of(&f.claim_all(at(3)).await);
    got.sort();
    assert_eq!(got, ids(&[&a, &b]));
}
