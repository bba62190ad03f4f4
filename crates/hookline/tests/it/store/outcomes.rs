//! Outcomes: each is fenced by its attempt number, moves its delivery to the next state,
//! appends to the attempt log, and may deactivate its subscription (`410 Gone`) while the
//! subscription still points at the target that answered.

use super::fixture::*;

conformance!(
    a_stale_attempts_outcome_is_skipped_and_the_fresh_one_applies,
    an_outcome_applies_once,
    delivery_counts_follow_each_state,
    attempts_for_event_lists_each_attempt_of_that_event_in_order,
    gone_deactivates_the_subscription_once_while_its_target_is_unchanged,
    gone_cancels_the_subscriptions_waiting_deliveries_at_the_next_claim,
    gone_from_a_replaced_target_does_not_deactivate,
);

/// One subscription and one event, its delivery claimed twice: attempt 1 at 1 s, whose lease
/// ended, then attempt 2 at 40 s. Returns the subscription, the event and both claims.
async fn claimed_twice(
    f: &Fixture,
    spec: Spec,
) -> (Subscription, NewEvent, DueDelivery, DueDelivery) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, spec).await;
    let e = event(&p, "message.sent");
    f.publish(std::slice::from_ref(&e), at(0)).await;
    let first = f.claim_all(at(1)).await.remove(0);
    let second = f.claim_all(at(40)).await.remove(0);
    assert_eq!(
        (first.delivery_id, first.attempt, second.attempt),
        (second.delivery_id, 1, 2)
    );
    (sub, e, first, second)
}

async fn a_stale_attempts_outcome_is_skipped_and_the_fresh_one_applies(f: Fixture) {
    let spec = Spec::to(&["message.sent"]).routing_key_header("x-route-key");
    let (sub, e, stale, fresh) = claimed_twice(&f, spec).await;

    // The stale attempt's receiver answered 410 and returned a routing token: none of it counts.
    let late = learning(gone(&stale), &stale, "x-route-key", "chat-1", "tok-stale");
    let deactivated = f.record(&[late], at(41)).await;

    assert!(
        deactivated.is_empty(),
        "a fenced-off outcome deactivates nothing"
    );
    assert_eq!(
        f.counts().await,
        counts(1, 0, 0, 0),
        "still pending, leased to attempt 2"
    );
    assert!(
        f.attempts(&e).await.is_empty(),
        "no attempt row for a fenced-off outcome"
    );
    assert!(f.reread(&sub).await.unwrap().is_active);
    assert_eq!(f.routing_token(&sub, "chat-1").await, None);

    f.record(&[succeeded(&fresh)], at(42)).await;

    assert_eq!(
        f.counts().await,
        counts(0, 1, 0, 0),
        "attempt 2's outcome applies"
    );
    let log = f.attempts(&e).await;
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].attempt, log[0].status_code), (2, Some(200)));
}

async fn an_outcome_applies_once(f: Fixture) {
    let (_, e, _, fresh) = claimed_twice(&f, Spec::to(&["message.sent"])).await;

    f.record(&[failed(&fresh)], at(41)).await;
    // Written again (a retried outcome write), and a contradicting one: the delivery is final.
    f.record(&[failed(&fresh)], at(42)).await;
    f.record(&[succeeded(&fresh)], at(43)).await;

    assert_eq!(f.counts().await, counts(0, 0, 1, 0));
    let log = f.attempts(&e).await;
    assert_eq!(log.len(), 1, "one row per attempt: {log:?}");
    assert_eq!(log[0].status_code, Some(400));
    assert!(
        f.claim_all(at(1000)).await.is_empty(),
        "a final delivery is never claimed"
    );
}

async fn delivery_counts_follow_each_state(f: Fixture) {
    let p = f.partner().await;
    let mut subs = Vec::new();
    for _ in 0..5 {
        subs.push(f.subscribe(&p, Spec::to(&["message.sent"])).await);
    }
    f.publish(&[event(&p, "message.sent")], at(1)).await;
    assert_eq!(f.counts().await, counts(5, 0, 0, 0));
    assert!(f.delete(&subs[4], at(2)).await);
    let due = f.claim(at(3), Room::plenty()).await.deliveries;
    assert_eq!(due.len(), 4);
    assert_eq!(
        f.counts().await,
        counts(4, 0, 0, 1),
        "leased is still pending"
    );

    f.record(
        &[
            succeeded(&due[0]),
            failed(&due[1]),
            retry_at(&due[2], at(60)),
        ],
        at(4),
    )
    .await;

    assert_eq!(
        f.counts().await,
        counts(2, 1, 1, 1),
        "one retrying and one in flight are pending"
    );
}

async fn attempts_for_event_lists_each_attempt_of_that_event_in_order(f: Fixture) {
    let (p, q) = (f.partner().await, f.partner().await);
    f.subscribe(&p, Spec::to(&["message.sent"])).await;
    f.subscribe(&p, Spec::to(&["message.sent"])).await;
    f.subscribe(&q, Spec::to(&["message.sent"])).await;
    let e = with_id(&event(&p, "message.sent"), "evt-shared-id");
    let unrelated = event(&p, "message.sent");
    let same_id_elsewhere = with_id(&event(&q, "message.sent"), "evt-shared-id");
    f.publish(&[e.clone(), unrelated, same_id_elsewhere.clone()], at(1))
        .await;

    let first = f.claim_all(at(2)).await;
    let retries: Vec<_> = first.iter().map(|d| retry_at(d, at(10))).collect();
    f.record(&retries, at(3)).await;
    let second = f.claim_all(at(11)).await;
    let done: Vec<_> = second.iter().map(succeeded).collect();
    f.record(&done, at(12)).await;

    let mut mine: Vec<_> = of_event(&first, &e)
        .into_iter()
        .chain(of_event(&second, &e))
        .map(|d| (d.delivery_id, d.attempt))
        .collect();
    mine.sort();
    let log = f.attempts(&e).await;
    let listed: Vec<_> = log.iter().map(|a| (a.delivery_id, a.attempt)).collect();
    assert_eq!(
        listed, mine,
        "this event's attempts only, by delivery then attempt"
    );
    for a in &log {
        let (status, kind) = if a.attempt == 1 {
            (503, Some("http_status"))
        } else {
            (200, None)
        };
        assert_eq!(a.status_code, Some(status));
        assert_eq!(a.error_kind.map(|k| k.to_string()), kind.map(String::from));
        assert_eq!(a.started_at, started_at(a.attempt), "stored as given");
        assert_eq!(a.duration_ms, 7);
        assert_eq!(
            a.response_body.as_deref(),
            Some(&*format!("body of attempt {}", a.attempt))
        );
        assert_eq!(a.error_message.is_some(), a.attempt == 1);
    }
    assert_eq!(
        f.attempts(&same_id_elsewhere).await.len(),
        2,
        "the other partner's event with that id has its own log"
    );
}

async fn gone_deactivates_the_subscription_once_while_its_target_is_unchanged(f: Fixture) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let bystander = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    f.publish(
        &[event(&p, "message.sent"), event(&p, "message.sent")],
        at(1),
    )
    .await;
    let due = f.claim_all(at(2)).await;
    let to_sub: Vec<_> = due.iter().filter(|d| d.subscription_id == sub.id).collect();
    assert_eq!(to_sub.len(), 2);

    let deactivated = f.record(&[gone(to_sub[0])], at(3)).await;

    assert_eq!(deactivated.len(), 1);
    assert_eq!(deactivated[0].subscription_id, sub.id);
    let stored = f.reread(&sub).await.unwrap();
    assert!(!stored.is_active, "410 deactivates");
    assert!(stored.updated_at > sub.updated_at, "and moves updated_at");
    assert!(f.reread(&bystander).await.unwrap().is_active);

    let again = f.record(&[gone(to_sub[1])], at(4)).await;
    assert!(
        again.is_empty(),
        "an inactive subscription is not deactivated again"
    );
    assert_eq!(
        f.counts().await,
        counts(2, 0, 2, 0),
        "both 410s failed their delivery"
    );
    let after = f.publish(&[event(&p, "message.sent")], at(5)).await;
    assert_eq!(
        after[0].deliveries, 1,
        "new events go to the bystander only"
    );
}

async fn gone_cancels_the_subscriptions_waiting_deliveries_at_the_next_claim(f: Fixture) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let bystander = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let events = [event(&p, "message.sent"), event(&p, "message.sent")];
    f.publish(&events, at(1)).await;
    // One slot per subscription: each one's second delivery waits in the queue.
    let first = f
        .claim(
            at(2),
            Room {
                cap: 1,
                ..Room::plenty()
            },
        )
        .await;
    assert!(first.held_back);
    let to_sub = first
        .deliveries
        .iter()
        .find(|d| d.subscription_id == sub.id);
    let deactivated = f.record(&[gone(to_sub.unwrap())], at(3)).await;
    assert_eq!(deactivated.len(), 1);

    let next = f.claim(at(4), Room::plenty()).await;

    assert_eq!(
        pairs(&next.deliveries),
        pairs_for(&events[1], &[&bystander]),
        "the deactivated subscription's backlog is not sent"
    );
    assert!(next.more_due, "it was cancelled instead");
    assert_eq!(f.counts().await, counts(2, 0, 1, 1));
}

async fn gone_from_a_replaced_target_does_not_deactivate(f: Fixture) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    f.publish(&[event(&p, "message.sent")], at(1)).await;
    let due = f.claim_all(at(2)).await;
    let moved = f.update(&sub, at(3), |s| s.target_url = fresh_url()).await;
    assert_eq!(moved, UpdateResult::Updated);

    let deactivated = f.record(&[gone(&due[0])], at(4)).await;

    assert!(
        deactivated.is_empty(),
        "the old target's 410 says nothing of the new one"
    );
    let stored = f.reread(&sub).await.unwrap();
    assert!(stored.is_active);
    assert_eq!(stored.updated_at, at(3), "left as the update wrote it");
    assert_eq!(
        f.counts().await,
        counts(0, 0, 1, 0),
        "the delivery itself failed"
    );
}
