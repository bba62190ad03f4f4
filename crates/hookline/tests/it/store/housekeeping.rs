//! Housekeeping: the queue gauges, and retention purges (what goes, what stays, batches that
//! resume where the last one stopped, two purgers at once).

use super::fixture::*;
use hookline::config::RetentionSettings;
use hookline::retention::Purger;
use hookline::store::{Outcome, PurgeRequest, StoreStats};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

conformance!(
    stats_count_the_queue_and_the_subscriptions,
    a_purge_removes_finished_events_and_keeps_the_rest,
    two_purgers_at_once_remove_each_event_once,
    deleted_subscriptions_and_completed_recoveries_go_once_nothing_names_them,
);

async fn stats(f: &Fixture, now: Ts) -> StoreStats {
    f.store.sample_stats(now, Duration::ZERO).await.unwrap()
}

async fn stats_count_the_queue_and_the_subscriptions(f: Fixture) {
    let p = f.partner().await;
    f.subscribe(&p, Spec::to(&["message.sent"])).await;
    f.subscribe(&p, Spec::to(&["message.sent"]).inactive())
        .await;
    let events: Vec<NewEvent> = (0..3).map(|_| event(&p, "message.sent")).collect();
    f.publish(&events, at(0)).await;
    let claimed = f
        .claim(
            at(1),
            Room {
                limit: 1,
                ..Room::plenty()
            },
        )
        .await;
    assert_eq!(claimed.deliveries.len(), 1);

    let s = stats(&f, at(10)).await;
    assert_eq!(
        (s.pending, s.retrying, s.due),
        (3, 1, 2),
        "three pending, one leased (attempted), two due: {s:?}"
    );
    assert_eq!(
        s.oldest_due_age.as_secs(),
        10,
        "due since 0 s, counted at 10 s"
    );
    assert_eq!((s.subscriptions_active, s.subscriptions_inactive), (1, 1));
    assert!(s.size_bytes > 0);

    f.record(&[succeeded(&claimed.deliveries[0])], at(11)).await;
    let s = stats(&f, at(12)).await;
    assert_eq!((s.pending, s.retrying, s.due), (2, 0, 2), "{s:?}");
}

/// Publishes `e` at `published` and, unless `outcome` is None, claims its delivery one second
/// later and records `outcome(delivery)` at `settled`.
async fn delivered(
    f: &Fixture,
    e: &NewEvent,
    published: i64,
    settled: i64,
    outcome: fn(&DueDelivery) -> Outcome,
) {
    f.publish(std::slice::from_ref(e), at(published)).await;
    let mut claimed = f.claim_all(at(published + 1)).await;
    assert_eq!(claimed.len(), 1);
    f.record(&[outcome(&claimed.remove(0))], at(settled)).await;
}

fn retry_later(d: &DueDelivery) -> Outcome {
    retry_at(d, at(5000))
}

/// Batches of 2 until the pass is over, as the purger runs them; what they removed in all.
async fn purge_all(f: &Fixture, cutoff: Ts) -> (u64, u64, u64) {
    let (mut after_seq, mut total, mut batches) = (0, (0, 0, 0), 0);
    loop {
        let req = PurgeRequest {
            cutoff,
            after_seq,
            limit: 2,
        };
        let b = f.store.purge_batch(&req).await.unwrap();
        assert!(!b.busy);
        total = (
            total.0 + b.events,
            total.1 + b.deliveries,
            total.2 + b.attempts,
        );
        batches += 1;
        assert!(batches < 20, "the pass never finished");
        if b.finished {
            return total;
        }
        after_seq = b.next_after_seq;
    }
}

async fn a_purge_removes_finished_events_and_keeps_the_rest(f: Fixture) {
    let p = f.partner().await;
    f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let ok = event(&p, "message.sent");
    let failed_ = event(&p, "message.sent");
    let unmatched = event(&p, "message.read"); // no subscription: no deliveries at all
    let pending = event(&p, "message.sent");
    let settled_late = event(&p, "message.sent");
    let recent = event(&p, "message.sent");
    delivered(&f, &ok, 0, 2, succeeded).await;
    delivered(&f, &failed_, 3, 5, failed).await;
    f.publish(std::slice::from_ref(&unmatched), at(6)).await;
    delivered(&f, &pending, 7, 9, retry_later).await;
    delivered(&f, &settled_late, 10, 200, succeeded).await;
    delivered(&f, &recent, 150, 151, succeeded).await;

    // Cutoff at 100 s: the first three go; the pending one stays whatever its age, the one
    // settled after the cutoff and the one accepted after it stay too.
    assert_eq!(purge_all(&f, at(100)).await, (3, 2, 2));
    assert!(f.attempts(&ok).await.is_empty());
    assert!(f.attempts(&failed_).await.is_empty());
    assert_eq!(f.attempts(&pending).await.len(), 1);
    assert_eq!(f.attempts(&settled_late).await.len(), 1);
    assert_eq!(f.attempts(&recent).await.len(), 1);
    assert_eq!(f.counts().await, counts(1, 2, 0, 0));
    // The pending delivery is still claimable when it is due.
    assert_eq!(f.claim_all(at(5000)).await.len(), 1);

    assert_eq!(purge_all(&f, at(100)).await, (0, 0, 0), "nothing twice");
    assert_eq!(purge_all(&f, at(1000)).await, (2, 2, 2), "later, the rest");
    assert_eq!(f.counts().await, counts(1, 0, 0, 0));
}

/// On PostgreSQL the second purger finds the first one's lock and leaves the pass to it; on
/// SQLite the writer runs their batches one after the other. Either way each event goes once,
/// every one of them goes, and neither fails.
async fn two_purgers_at_once_remove_each_event_once(f: Fixture) {
    let p = f.partner().await;
    f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let events: Vec<NewEvent> = (0..600).map(|_| event(&p, "message.sent")).collect();
    f.publish(&events, at(0)).await;
    let mut outcomes: Vec<Outcome> = Vec::new();
    while outcomes.len() < 600 {
        let claimed = f.claim(at(1), Room::plenty()).await.deliveries;
        assert!(!claimed.is_empty(), "600 deliveries were due");
        outcomes.extend(claimed.iter().map(succeeded));
    }
    f.record(&outcomes, at(2)).await;

    let purger = || Purger {
        store: f.store.clone(),
        settings: RetentionSettings {
            keep: Some(Duration::from_secs(1)),
            interval: Duration::from_secs(1),
        },
    };
    let (a, b) = (purger(), purger());
    let cancel = CancellationToken::new();
    let (x, y) = tokio::join!(a.pass(at(100), &cancel), b.pass(at(100), &cancel));
    assert_eq!(x.events + y.events, 600, "{x:?} {y:?}");
    assert_eq!(x.attempts + y.attempts, 600);
    assert_eq!(f.counts().await, counts(0, 0, 0, 0));
}

/// A SQLite store hookline creates gives the pages a purge freed back to the file system
/// (`auto_vacuum = INCREMENTAL`), keeping a tenth of the file free for the next inserts.
#[tokio::test]
async fn sqlite_gives_freed_pages_back_beyond_a_slack() {
    let f = Fixture::open(crate::common::Backend::Sqlite).await;
    let p = f.partner().await;
    f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let data = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096));
    let events: Vec<NewEvent> = (0..1000)
        .map(|_| NewEvent {
            data: data.clone(),
            ..event(&p, "message.sent")
        })
        .collect();
    f.publish(&events, at(0)).await;
    let mut outcomes: Vec<Outcome> = Vec::new();
    while outcomes.len() < 1000 {
        let claimed = f.claim(at(1), Room::plenty()).await.deliveries;
        outcomes.extend(claimed.iter().map(succeeded));
    }
    f.record(&outcomes, at(2)).await;
    let db = rusqlite::Connection::open(f.sqlite_path().unwrap()).unwrap();
    let pragma = |name: &str| {
        db.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    assert_eq!(pragma("auto_vacuum"), 2, "INCREMENTAL");
    let full = pragma("page_count");

    let purger = Purger {
        store: f.store.clone(),
        settings: RetentionSettings {
            keep: Some(Duration::from_secs(1)),
            interval: Duration::from_secs(1),
        },
    };
    let pass = purger.pass(at(100), &CancellationToken::new()).await;
    assert_eq!(pass.events, 1000);
    let (pages, free) = (pragma("page_count"), pragma("freelist_count"));
    assert!(pages < full / 4, "{full} pages before, {pages} after");
    assert!(free <= pages / 10, "{free} of {pages} pages left free");
}

/// After the events: subscriptions deleted before the cutoff go once nothing names them (their
/// deliveries purged), with recoveries completed before it; live subscriptions, ones deleted
/// after the cutoff and ones still named stay.
async fn deleted_subscriptions_and_completed_recoveries_go_once_nothing_names_them(f: Fixture) {
    let p = f.partner().await;
    let live = f.subscribe(&p, Spec::to(&["message.read"])).await;
    let named = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let bare = f.subscribe(&p, Spec::to(&["message.delivered"])).await;
    let late = f.subscribe(&p, Spec::to(&["message.failed"])).await;
    let e = event(&p, "message.sent");
    delivered(&f, &e, 0, 2, succeeded).await;
    assert!(f.delete(&named, at(3)).await && f.delete(&bare, at(3)).await);
    assert!(f.delete(&late, at(150)).await);
    let recovery = f
        .store
        .create_recovery(&hookline::store::NewRecovery {
            id: hookline_core::RecoveryId::generate(),
            partner_id: p.clone(),
            subscription_id: None,
            since: at(0),
            until: None,
            now: at(200),
        })
        .await
        .unwrap();
    assert_eq!(recovery.total, 0, "nothing failed");
    f.store.advance_recoveries(at(201), 10).await.unwrap();
    let done = f
        .store
        .get_recovery(&p, &recovery.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, hookline::store::RecoveryStatus::Completed);
    let leftovers = |cutoff| {
        let store = f.store.clone();
        async move {
            let l = store.purge_leftovers(at(cutoff), 10).await.unwrap();
            (l.subscriptions, l.recoveries)
        }
    };

    assert_eq!(
        leftovers(100).await,
        (1, 0),
        "the bare one; `named` has a delivery"
    );
    assert_eq!(purge_all(&f, at(100)).await, (1, 1, 1));
    assert_eq!(leftovers(100).await, (1, 0), "now `named` too");
    assert_eq!(leftovers(100).await, (0, 0), "nothing twice");
    assert_eq!(
        leftovers(1000).await,
        (1, 1),
        "later: `late`, and the recovery"
    );
    assert!(f.reread(&live).await.is_some());
    assert!(f
        .store
        .get_recovery(&p, &recovery.id)
        .await
        .unwrap()
        .is_none());
}
