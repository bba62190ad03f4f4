//! What a claim hands out and what it tells the claimer: per-subscription room (`held_back`),
//! a full batch or cancellations (`more_due`), and the cancelling of deliveries whose
//! subscription was deleted or deactivated after they were scheduled.

use super::fixture::*;

conformance!(
    held_back_is_reported_exactly_when_a_subscription_had_no_room_for_due_work,
    a_full_batch_reports_more_due_and_the_last_batch_does_not,
    a_subscription_at_its_room_does_not_hide_other_subscriptions_due_work,
    a_claim_cancels_deliveries_of_deleted_subscriptions_and_reports_more_due,
    a_claim_cancels_deliveries_of_deactivated_subscriptions_only,
);

/// Publishes one `message.sent` per entry of `secs`, each at `at(secs)`, in that order.
async fn publish_at(f: &Fixture, p: &Pid, secs: &[i64]) -> Vec<NewEvent> {
    let mut events = Vec::new();
    for s in secs {
        let e = event(p, "message.sent");
        f.publish(std::slice::from_ref(&e), at(*s)).await;
        events.push(e);
    }
    events
}

async fn held_back_is_reported_exactly_when_a_subscription_had_no_room_for_due_work(f: Fixture) {
    let p = f.partner().await;
    let a = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    publish_at(&f, &p, &[1, 2]).await;
    let busy = [(&a, 1)];

    let full = f
        .claim(
            at(10),
            Room {
                cap: 1,
                busy: &busy,
                ..Room::plenty()
            },
        )
        .await;
    assert!(full.deliveries.is_empty(), "no room at all");
    assert!(full.held_back, "due work was left for lack of room");
    assert!(!full.more_due, "nothing else is due");

    let one_slot = f
        .claim(
            at(10),
            Room {
                cap: 1,
                ..Room::plenty()
            },
        )
        .await;
    assert_eq!(one_slot.deliveries.len(), 1, "room for one");
    assert!(one_slot.held_back, "the second was left for lack of room");

    let roomy = f
        .claim(
            at(10),
            Room {
                cap: 2,
                busy: &busy,
                ..Room::plenty()
            },
        )
        .await;
    assert_eq!(roomy.deliveries.len(), 1, "the one left");
    assert!(!roomy.held_back, "room for everything due");
    assert!(!roomy.more_due);
}

async fn a_full_batch_reports_more_due_and_the_last_batch_does_not(f: Fixture) {
    let p = f.partner().await;
    f.subscribe(&p, Spec::to(&["message.sent"])).await;
    f.subscribe(&p, Spec::to(&["message.sent"])).await;
    publish_at(&f, &p, &[1, 2]).await; // 4 deliveries
    let batch = |limit| Room {
        limit,
        ..Room::plenty()
    };

    let first = f.claim(at(10), batch(3)).await;
    assert_eq!(first.deliveries.len(), 3);
    assert!(first.more_due, "the batch was full");
    assert!(!first.held_back);
    let last = f.claim(at(10), batch(3)).await;
    assert_eq!(last.deliveries.len(), 1);
    assert!(
        !last.more_due,
        "the batch had room left: nothing more is due"
    );
    let none = f.claim(at(10), batch(3)).await;
    assert!(none.deliveries.is_empty() && !none.more_due && !none.held_back);
}

async fn a_subscription_at_its_room_does_not_hide_other_subscriptions_due_work(f: Fixture) {
    let p = f.partner().await;
    let busy_sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let other = f.subscribe(&p, Spec::to(&["message.received"])).await;
    // The oldest due work, enough to fill a batch, is all `busy_sub`'s.
    publish_at(&f, &p, &[1, 2, 3]).await;
    let late = event(&p, "message.received");
    f.publish(std::slice::from_ref(&late), at(4)).await;
    let busy = [(&busy_sub, 1)];

    let claimed = f
        .claim(
            at(10),
            Room {
                limit: 2,
                cap: 1,
                busy: &busy,
            },
        )
        .await;

    assert_eq!(
        pairs(&claimed.deliveries),
        pairs_for(&late, &[&other]),
        "past the head of the queue to the subscription with room"
    );
    assert!(
        claimed.held_back,
        "busy_sub's work was left for lack of room"
    );

    // With one slot free, busy_sub's oldest goes too; its others still wait.
    let e = publish_at(&f, &p, &[5]).await.remove(0);
    let freed = f
        .claim(
            at(10),
            Room {
                limit: 2,
                cap: 1,
                busy: &[],
            },
        )
        .await;
    assert_eq!(
        freed.deliveries.len(),
        1,
        "busy_sub's room is one: {:?}",
        pairs(&freed.deliveries)
    );
    assert_eq!(freed.deliveries[0].subscription_id, busy_sub.id);
    assert_ne!(
        freed.deliveries[0].event_id, e.event_id,
        "its oldest, not the newest"
    );
    assert!(freed.held_back);
}

async fn a_claim_cancels_deliveries_of_deleted_subscriptions_and_reports_more_due(f: Fixture) {
    let p = f.partner().await;
    let live = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let doomed = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let events = publish_at(&f, &p, &[1, 2]).await;
    assert!(f.delete(&doomed, at(3)).await);

    let claimed = f.claim(at(10), Room::plenty()).await;

    assert_eq!(
        targets_of(&claimed.deliveries),
        ids(&[&live, &live]),
        "only the live subscription's deliveries are handed out"
    );
    assert!(
        claimed.more_due,
        "cancelling counts as more work done than handed out"
    );
    assert_eq!(
        f.counts().await,
        counts(2, 0, 0, 2),
        "the deleted one's two are cancelled"
    );
    let after = f.claim(at(100), Room::plenty()).await;
    assert_eq!(
        pairs(&after.deliveries),
        pairs(&claimed.deliveries),
        "a cancelled delivery never comes back, even after the leases end"
    );
    assert!(!after.more_due);
    assert!(
        f.attempts(&events[0]).await.is_empty(),
        "cancelling is not an attempt"
    );
}

async fn a_claim_cancels_deliveries_of_deactivated_subscriptions_only(f: Fixture) {
    let p = f.partner().await;
    let live = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let off = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let back_on = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let e = publish_at(&f, &p, &[1]).await.remove(0);

    let disable = |s: &mut Subscription| s.is_active = false;
    assert_eq!(f.update(&off, at(2), disable).await, UpdateResult::Updated);
    assert_eq!(
        f.update(&back_on, at(2), disable).await,
        UpdateResult::Updated
    );
    let disabled = f.reread(&back_on).await.unwrap();
    assert_eq!(
        f.update(&disabled, at(3), |s| s.is_active = true).await,
        UpdateResult::Updated
    );

    let claimed = f.claim(at(10), Room::plenty()).await;

    assert_eq!(
        pairs(&claimed.deliveries),
        pairs_for(&e, &[&live, &back_on]),
        "whether a subscription is active is decided at claim time"
    );
    assert!(claimed.more_due, "one was cancelled");
    assert_eq!(f.counts().await, counts(2, 0, 0, 1));
}
