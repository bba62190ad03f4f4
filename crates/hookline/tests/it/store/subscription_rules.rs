//! What a partner may hold: one live subscription per target, targets compared in their
//! normalised form (scheme and host case, default port) but stored as written; and at most
//! its cap of live subscriptions, counted in the insert's transaction so racing inserts
//! cannot overshoot it.

use super::fixture::*;
use std::sync::Arc;

conformance!(
    a_target_url_is_unique_in_its_normal_form_and_stored_as_written,
    the_cap_counts_a_partners_live_subscriptions_only,
    concurrent_inserts_at_the_cap_leave_exactly_the_cap,
);

/// `spelling` of a loopback target; nothing here sends.
fn at_spelling(spelling: &str) -> Spec {
    Spec::to(&["message.sent"]).at_url(&url(spelling))
}

fn assert_held_by(answer: StoreResult<Subscription>, holder: &Subscription, what: &str) {
    match answer {
        Err(StoreError::DuplicateTargetUrl { existing_id }) => assert_eq!(existing_id, holder.id),
        other => panic!("{what}: {:?}", other.map(|s| s.id)),
    }
}

async fn a_target_url_is_unique_in_its_normal_form_and_stored_as_written(f: Fixture) {
    let p = f.partner().await;
    let path = format!("/hook/{}", uuid::Uuid::new_v4().simple());
    let first = f
        .subscribe(&p, at_spelling(&format!("http://localhost{path}")))
        .await;
    for same in [
        format!("HTTP://LOCALHOST{path}"),
        format!("http://localhost:80{path}"),
    ] {
        assert_held_by(f.try_subscribe(&p, at_spelling(&same)).await, &first, &same);
    }

    let other_path = url(&format!("HTTP://LOCALHOST:80{}", path.to_uppercase()));
    let second = f
        .subscribe(&p, Spec::to(&["message.sent"]).at_url(&other_path))
        .await;
    assert_eq!(
        f.reread(&second).await.unwrap().target_url.as_str(),
        other_path.as_str(),
        "stored as written"
    );
    let moved = f
        .try_update(&second, at(1), |s| {
            s.target_url = url(&format!("http://LocalHost{path}"))
        })
        .await;
    match moved {
        Err(StoreError::DuplicateTargetUrl { existing_id }) => assert_eq!(existing_id, first.id),
        answer => panic!("moved onto a used target: {:?}", answer.map(|_| ())),
    }

    let respelled = url(&format!("HTTP://localhost:80{path}"));
    let own = f
        .update(&first, at(2), |s| s.target_url = respelled.clone())
        .await;
    assert_eq!(own, UpdateResult::Updated, "its own target, respelled");
    let first = f.reread(&first).await.unwrap();
    assert_eq!(first.target_url.as_str(), respelled.as_str());
    let again = format!("http://localhost{path}");
    assert_held_by(
        f.try_subscribe(&p, at_spelling(&again)).await,
        &first,
        "still held after the respelling",
    );
}

async fn the_cap_counts_a_partners_live_subscriptions_only(f: Fixture) {
    let (p, q) = (f.partner().await, f.partner().await);
    let spec = || Spec::to(&["message.sent"]);
    let a = f.try_subscribe_capped(&p, spec(), 2).await.unwrap();
    f.try_subscribe_capped(&p, spec().inactive(), 2)
        .await
        .unwrap();
    match f.try_subscribe_capped(&p, spec(), 2).await {
        Err(StoreError::SubscriptionLimit { limit: 2 }) => {}
        other => panic!("a third under a cap of 2: {:?}", other.map(|s| s.id)),
    }
    assert_eq!(f.listed(&p).await.len(), 2, "inactive ones count");

    assert!(
        f.try_subscribe_capped(&q, spec(), 2).await.is_ok(),
        "per partner"
    );
    assert!(f.delete(&a, at(1)).await);
    assert!(
        f.try_subscribe_capped(&p, spec(), 2).await.is_ok(),
        "deleted ones do not count"
    );
}

/// The racers start together on several threads, each in a transaction of its own (PostgreSQL)
/// or queued on the one writer (SQLite): without the count serialised per partner, several
/// count `CAP - 1` and all insert.
async fn concurrent_inserts_at_the_cap_leave_exactly_the_cap(f: Fixture) {
    const CAP: usize = 4;
    const RACERS: usize = 16;
    let p = f.partner().await;
    for _ in 0..CAP - 1 {
        f.try_subscribe_capped(&p, Spec::to(&["message.sent"]), CAP)
            .await
            .unwrap();
    }
    let f = Arc::new(f);
    // Every pooled connection open first, so no racer waits for a connect.
    futures_util::future::join_all((0..RACERS).map(|_| f.listed(&p))).await;
    let start = Arc::new(tokio::sync::Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let (f, p, start) = (f.clone(), p.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                f.try_subscribe_capped(&p, Spec::to(&["message.sent"]), CAP)
                    .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        answers.push(racer.await.unwrap());
    }
    let created = answers.iter().filter(|a| a.is_ok()).count();
    let refused = answers
        .iter()
        .filter(|a| matches!(a, Err(StoreError::SubscriptionLimit { .. })))
        .count();
    assert_eq!((created, refused), (1, RACERS - 1));
    assert_eq!(f.listed(&p).await.len(), CAP);
}
