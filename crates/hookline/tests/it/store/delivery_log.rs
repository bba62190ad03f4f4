//! The delivery log and redelivery: keyset pages newest first with every filter, one delivery
//! with its attempts, an event with its deliveries, single retries and recoveries.

use super::fixture::*;
use hookline::store::{
    LogEntry, LogPage, LogQuery, LogScope, NewRecovery, RecoveryStatus, RetryOutcome,
};
use hookline_core::{DeliveryStatus, LogCursor, RecoveryId};

conformance!(
    log_pages_are_newest_first_and_follow_their_cursor,
    log_filters_by_status_type_and_window,
    a_delivery_shows_every_attempt_and_an_event_every_delivery,
    a_retry_requeues_a_finished_delivery_with_a_fresh_schedule,
    a_recovery_requeues_failed_deliveries_of_its_window_in_chunks,
    a_partner_wide_recovery_walks_every_active_subscription,
    running_recoveries_share_each_chunk,
);

fn query(scope: LogScope, limit: usize) -> LogQuery {
    LogQuery {
        scope,
        statuses: vec![],
        event_type: None,
        since: None,
        until: None,
        cursor: None,
        limit,
    }
}

async fn page(f: &Fixture, q: &LogQuery) -> LogPage {
    f.store.delivery_log(q).await.unwrap()
}

fn event_ids(entries: &[LogEntry]) -> Vec<String> {
    entries.iter().map(|e| e.event_id.to_string()).collect()
}

fn id_of(e: &NewEvent) -> String {
    e.event_id.to_string()
}

/// One subscription with five deliveries, created at 1 s to 5 s: e1 succeeded, e2 failed,
/// e3 retrying (one attempt, retry due at 500 s), e4 and e5 pending (never attempted; e5 is a
/// `message.received`). Another partner's subscription gets a delivery too.
async fn five(f: &Fixture) -> (Pid, Subscription, Vec<NewEvent>) {
    let p = f.partner().await;
    let sub = f
        .subscribe(&p, Spec::to(&["message.sent", "message.received"]))
        .await;
    let other = f.partner().await;
    f.subscribe(&other, Spec::to(&["message.sent"])).await;
    let mut events = Vec::new();
    for (i, ty) in ["message.sent", "message.sent", "message.sent"]
        .iter()
        .enumerate()
    {
        let e = event(&p, ty);
        f.publish(std::slice::from_ref(&e), at(i as i64 + 1)).await;
        events.push(e);
    }
    f.publish(&[event(&other, "message.sent")], at(3)).await;
    let mut claimed = f.claim_all(at(10)).await;
    claimed.retain(|d| d.partner_id == p);
    claimed.sort_by_key(|d| d.delivery_id.get());
    f.record(
        &[
            succeeded(&claimed[0]),
            failed(&claimed[1]),
            retry_at(&claimed[2], at(500)),
        ],
        at(11),
    )
    .await;
    for (secs, ty) in [(4, "message.sent"), (5, "message.received")] {
        let e = event(&p, ty);
        f.publish(std::slice::from_ref(&e), at(secs)).await;
        events.push(e);
    }
    (p, sub, events)
}

async fn log_pages_are_newest_first_and_follow_their_cursor(f: Fixture) {
    let (_, sub, e) = five(&f).await;
    let scope = LogScope::Subscription(sub.id.clone());
    let mut q = query(scope, 2);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let p = page(&f, &q).await;
        pages += 1;
        assert!(p.entries.len() <= 2);
        seen.extend(event_ids(&p.entries));
        match p.next {
            Some(next) => {
                let round_trip = LogCursor::decode(&next.encode());
                q.cursor = round_trip;
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let newest_first: Vec<String> = e.iter().rev().map(id_of).collect();
    assert_eq!(seen, newest_first, "every delivery once, newest first");

    let all = page(&f, &query(LogScope::Subscription(sub.id.clone()), 20)).await;
    assert!(all.next.is_none());
    let statuses: Vec<DeliveryStatus> = all.entries.iter().map(|x| x.status).collect();
    use DeliveryStatus::*;
    assert_eq!(statuses, vec![Pending, Pending, Retrying, Failed, Success]);
    let retrying = &all.entries[2];
    assert_eq!(retrying.attempts, 1);
    assert!(near(retrying.next_attempt_at.unwrap(), at(500)));
    let last = retrying.last_attempt.as_ref().unwrap();
    assert_eq!((last.attempt, last.status_code), (1, Some(503)));
    assert_eq!(last.error_message.as_deref(), Some("answered 503"));
    assert!(
        all.entries[4].next_attempt_at.is_none(),
        "a finished delivery is due never"
    );
    assert!(all.entries[0].last_attempt.is_none());
    assert_eq!(all.entries[0].target_url, sub.target_url.as_str());
}

async fn log_filters_by_status_type_and_window(f: Fixture) {
    let (p, sub, e) = five(&f).await;
    let scope = || LogScope::Subscription(sub.id.clone());
    let with = |statuses: Vec<DeliveryStatus>| LogQuery {
        statuses,
        ..query(scope(), 20)
    };
    use DeliveryStatus::*;
    let ids = |v: &[usize]| v.iter().map(|i| id_of(&e[*i])).collect::<Vec<_>>();
    assert_eq!(
        event_ids(&page(&f, &with(vec![Pending])).await.entries),
        ids(&[4, 3])
    );
    assert_eq!(
        event_ids(&page(&f, &with(vec![Retrying])).await.entries),
        ids(&[2])
    );
    assert_eq!(
        event_ids(&page(&f, &with(vec![Pending, Retrying])).await.entries),
        ids(&[4, 3, 2])
    );
    assert_eq!(
        event_ids(&page(&f, &with(vec![Success, Failed])).await.entries),
        ids(&[1, 0])
    );
    assert!(page(&f, &with(vec![Cancelled])).await.entries.is_empty());

    let typed = LogQuery {
        event_type: Some(event_type("message.received")),
        ..query(scope(), 20)
    };
    assert_eq!(event_ids(&page(&f, &typed).await.entries), ids(&[4]));

    let window = LogQuery {
        since: Some(at(2)),
        until: Some(at(4)),
        ..query(scope(), 1)
    };
    let first = page(&f, &window).await;
    let second = page(
        &f,
        &LogQuery {
            cursor: first.next,
            ..window.clone()
        },
    )
    .await;
    assert_eq!(event_ids(&second.entries), ids(&[1]));
    assert!(
        second.next.is_none(),
        "created at 4 s is outside the window"
    );

    let partner_wide = page(&f, &query(LogScope::Partner(p.clone()), 20)).await;
    assert_eq!(partner_wide.entries.len(), 5, "not the other partner's");
    let everyone = page(&f, &query(LogScope::All, 20)).await;
    assert_eq!(everyone.entries.len(), 6);
}

async fn a_delivery_shows_every_attempt_and_an_event_every_delivery(f: Fixture) {
    let p = f.partner().await;
    let a = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let b = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let e = event(&p, "message.sent");
    f.publish(std::slice::from_ref(&e), at(1)).await;
    let first = f.claim_all(at(2)).await;
    let to_a = first.iter().find(|d| d.subscription_id == a.id).unwrap();
    let to_b = first.iter().find(|d| d.subscription_id == b.id).unwrap();
    f.record(&[retry_at(to_a, at(5)), succeeded(to_b)], at(3))
        .await;
    let again = f.claim_all(at(6)).await.remove(0);
    f.record(&[failed(&again)], at(7)).await;

    let (entry, attempts) = f
        .store
        .delivery_attempts(&p, &a.id, &e.event_id)
        .await
        .unwrap()
        .expect("a delivery of e to a");
    assert_eq!(entry.status, DeliveryStatus::Failed);
    assert_eq!(entry.last_attempt.as_ref().unwrap().attempt, 2);
    let numbers: Vec<(u32, Option<u16>)> = attempts
        .iter()
        .map(|x| (x.attempt, x.status_code))
        .collect();
    assert_eq!(numbers, vec![(1, Some(503)), (2, Some(400))]);
    assert_eq!(
        attempts[0].response_body.as_deref(),
        Some("body of attempt 1")
    );

    let stranger = f.partner().await;
    assert!(f
        .store
        .delivery_attempts(&stranger, &a.id, &e.event_id)
        .await
        .unwrap()
        .is_none());
    let log = f.store.event_log(&p, &e.event_id).await.unwrap().unwrap();
    assert_eq!(log.event_type, "message.sent");
    assert_eq!(log.data, r#"{"chat_id":"chat-1"}"#);
    let mut statuses: Vec<DeliveryStatus> = log.deliveries.iter().map(|d| d.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec![DeliveryStatus::Success, DeliveryStatus::Failed]
    );
    assert!(f
        .store
        .event_log(&stranger, &e.event_id)
        .await
        .unwrap()
        .is_none());
}

async fn a_retry_requeues_a_finished_delivery_with_a_fresh_schedule(f: Fixture) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let e = event(&p, "message.sent");
    f.publish(std::slice::from_ref(&e), at(1)).await;
    let d = f.claim_all(at(2)).await.remove(0);
    f.record(&[failed(&d)], at(3)).await;

    let retry = |who: Pid, now| {
        let (store, sub, event) = (f.store.clone(), sub.id.clone(), e.event_id.clone());
        async move { store.retry_delivery(&who, &sub, &event, now).await.unwrap() }
    };
    let stranger = f.partner().await;
    assert_eq!(retry(stranger, at(4)).await, RetryOutcome::NotFound);
    assert_eq!(retry(p.clone(), at(4)).await, RetryOutcome::Requeued);
    assert_eq!(f.counts().await, counts(1, 0, 0, 0));
    assert_eq!(
        retry(p.clone(), at(4)).await,
        RetryOutcome::InProgress,
        "pending already"
    );

    let again = f.claim_all(at(5)).await.remove(0);
    assert_eq!(again.delivery_id, d.delivery_id);
    assert_eq!(
        (again.attempt, again.attempt_base),
        (2, 1),
        "attempt numbers count on; the schedule starts again"
    );
    assert_eq!(again.event_id, e.event_id, "the same webhook-id");
    // A 410 fails it and deactivates the subscription: a retry would only be cancelled.
    f.record(&[gone(&again)], at(6)).await;
    assert_eq!(retry(p.clone(), at(7)).await, RetryOutcome::Inactive);
    assert_eq!(f.counts().await, counts(0, 0, 1, 0));
}

/// `n` failed deliveries to `sub`, created at 1 s, 2 s, …
async fn failed_deliveries(f: &Fixture, p: &Pid, n: i64) {
    for i in 1..=n {
        f.publish(&[event(p, "message.sent")], at(i)).await;
    }
    let claimed = f.claim_all(at(100)).await;
    let outcomes: Vec<_> = claimed.iter().map(failed).collect();
    f.record(&outcomes, at(101)).await;
}

fn recovery(p: &Pid, sub: Option<&Subscription>, since: i64, until: Option<i64>) -> NewRecovery {
    NewRecovery {
        id: RecoveryId::generate(),
        partner_id: p.clone(),
        subscription_id: sub.map(|s| s.id.clone()),
        since: at(since),
        until: until.map(at),
        now: at(200),
    }
}

async fn a_recovery_requeues_failed_deliveries_of_its_window_in_chunks(f: Fixture) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    failed_deliveries(&f, &p, 6).await;
    let r = f
        .store
        .create_recovery(&recovery(&p, Some(&sub), 2, Some(6)))
        .await
        .unwrap();
    assert_eq!(
        (r.total, r.queued, r.status),
        (4, 0, RecoveryStatus::Running)
    );

    assert_eq!(f.store.advance_recoveries(at(201), 3).await.unwrap(), 3);
    let mid = f.store.get_recovery(&p, &r.id).await.unwrap().unwrap();
    assert_eq!((mid.queued, mid.status), (3, RecoveryStatus::Running));
    assert_eq!(f.counts().await, counts(3, 0, 3, 0));
    // Re-queued deliveries that fail again are behind the cursor: not re-queued twice.
    let claimed = f.claim_all(at(202)).await;
    assert_eq!(claimed.len(), 3);
    assert!(claimed
        .iter()
        .all(|d| d.attempt == 2 && d.attempt_base == 1));
    let outcomes: Vec<_> = claimed.iter().map(failed).collect();
    f.record(&outcomes, at(203)).await;

    assert_eq!(f.store.advance_recoveries(at(204), 3).await.unwrap(), 1);
    let done = f.store.get_recovery(&p, &r.id).await.unwrap().unwrap();
    assert_eq!((done.queued, done.status), (4, RecoveryStatus::Completed));
    assert_eq!(f.store.advance_recoveries(at(205), 3).await.unwrap(), 0);
    assert_eq!(
        f.counts().await,
        counts(1, 0, 5, 0),
        "created at 1 s and 6 s: outside"
    );
    let stranger = f.partner().await;
    assert!(f
        .store
        .get_recovery(&stranger, &r.id)
        .await
        .unwrap()
        .is_none());
}

async fn a_partner_wide_recovery_walks_every_active_subscription(f: Fixture) {
    let p = f.partner().await;
    f.subscribe(&p, Spec::to(&["message.sent"])).await;
    f.subscribe(&p, Spec::to(&["message.sent"])).await;
    failed_deliveries(&f, &p, 3).await;
    let r = f
        .store
        .create_recovery(&recovery(&p, None, 0, None))
        .await
        .unwrap();
    assert_eq!(r.total, 6);
    let mut requeued = 0;
    for round in 0..10 {
        let n = f
            .store
            .advance_recoveries(at(300 + round), 2)
            .await
            .unwrap();
        assert!(n <= 2, "a chunk stays within its budget");
        requeued += n;
    }
    assert_eq!(requeued, 6);
    let done = f.store.get_recovery(&p, &r.id).await.unwrap().unwrap();
    assert_eq!((done.queued, done.status), (6, RecoveryStatus::Completed));
    assert_eq!(f.counts().await, counts(6, 0, 0, 0));
}

/// Each chunk is shared among the running recoveries: one partner's large recovery does not
/// hold another's back until it ends.
async fn running_recoveries_share_each_chunk(f: Fixture) {
    let (a, b) = (f.partner().await, f.partner().await);
    f.subscribe(&a, Spec::to(&["message.sent"])).await;
    f.subscribe(&b, Spec::to(&["message.sent"])).await;
    failed_deliveries(&f, &a, 6).await;
    failed_deliveries(&f, &b, 6).await;
    let big = f
        .store
        .create_recovery(&recovery(&a, None, 0, None))
        .await
        .unwrap();
    let small = f
        .store
        .create_recovery(&recovery(&b, None, 0, None))
        .await
        .unwrap();
    assert_eq!((big.total, small.total), (6, 6));

    assert_eq!(f.store.advance_recoveries(at(201), 4).await.unwrap(), 4);
    let queued = |p: &Pid, id| {
        let (store, p) = (f.store.clone(), p.clone());
        async move { store.get_recovery(&p, &id).await.unwrap().unwrap().queued }
    };
    assert_eq!(
        (
            queued(&a, big.id.clone()).await,
            queued(&b, small.id.clone()).await
        ),
        (2, 2)
    );
    // What one leaves unspent goes to the other.
    assert_eq!(f.store.advance_recoveries(at(202), 20).await.unwrap(), 8);
    assert_eq!(
        (queued(&a, big.id).await, queued(&b, small.id).await),
        (6, 6)
    );
}
