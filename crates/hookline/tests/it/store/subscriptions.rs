//! Subscription writes the delivery path depends on: the compare-and-set update (Updated,
//! Stale, Gone), signing secrets replaced in place, and the routing tokens learned for a
//! subscription's routing key header.

use super::fixture::*;

conformance!(
    update_is_a_compare_and_set_on_the_version_read,
    update_of_a_deleted_or_foreign_subscription_is_gone,
    a_partner_lists_gets_and_deletes_only_its_own_live_subscriptions,
    a_target_url_is_unique_among_a_partners_live_subscriptions,
    a_signing_secret_is_replaced_only_from_its_stored_value_and_deliveries_carry_the_new_one,
    a_routing_token_is_learned_only_under_the_subscriptions_current_header,
    routing_tokens_are_kept_across_other_changes_and_forgotten_when_the_header_changes,
    routing_tokens_are_forgotten_when_the_subscription_is_deleted_and_not_learned_after,
);

async fn update_is_a_compare_and_set_on_the_version_read(f: Fixture) {
    let p = f.partner().await;
    let read = f.subscribe(&p, Spec::to(&["message.sent"])).await;

    let first = f
        .update(&read, at(2), |s| {
            s.subscribed_events = vec![event_type("message.read")]
        })
        .await;
    assert_eq!(first, UpdateResult::Updated);
    let lost = f.update(&read, at(3), |s| s.is_active = false).await;
    assert_eq!(
        lost,
        UpdateResult::Stale,
        "the row changed since it was read"
    );

    let stored = f.reread(&read).await.unwrap();
    assert!(stored.is_active, "the stale write changed nothing");
    assert_eq!(stored.subscribed_events, [event_type("message.read")]);
    assert_eq!(stored.updated_at, at(2));
    let reapplied = f.update(&stored, at(3), |s| s.is_active = false).await;
    assert_eq!(reapplied, UpdateResult::Updated, "read again and reapplied");
    let stored = f.reread(&read).await.unwrap();
    assert!(!stored.is_active);
    assert_eq!(
        stored.subscribed_events,
        [event_type("message.read")],
        "both changes hold"
    );
}

async fn update_of_a_deleted_or_foreign_subscription_is_gone(f: Fixture) {
    let (p, q) = (f.partner().await, f.partner().await);
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;

    let mut foreign = sub.clone();
    foreign.partner_id = q.clone();
    let as_q = f.update(&foreign, at(2), |s| s.is_active = false).await;
    assert_eq!(
        as_q,
        UpdateResult::Gone,
        "another partner's subscription does not exist for q"
    );
    assert!(f.reread(&sub).await.unwrap().is_active);

    assert!(f.delete(&sub, at(3)).await);
    let stale_and_deleted = f.update(&sub, at(4), |s| s.is_active = false).await;
    assert_eq!(
        stale_and_deleted,
        UpdateResult::Gone,
        "deleted wins over stale"
    );
    let deleted_version = Subscription {
        updated_at: at(3),
        ..sub.clone()
    };
    let current_but_deleted = f.update(&deleted_version, at(4), |_| {}).await;
    assert_eq!(current_but_deleted, UpdateResult::Gone);
    assert!(f.reread(&sub).await.is_none());
    assert!(!f.delete(&sub, at(5)).await, "deleted once");
}

async fn a_partner_lists_gets_and_deletes_only_its_own_live_subscriptions(f: Fixture) {
    let (p, q) = (f.partner().await, f.partner().await);
    let (a, b) = (
        f.subscribe(&p, Spec::to(&["message.sent"])).await,
        f.subscribe(&p, Spec::to(&["message.sent"]).inactive())
            .await,
    );
    let theirs = f.subscribe(&q, Spec::to(&["message.sent"])).await;
    assert_eq!(
        f.listed(&p).await,
        ids(&[&a, &b]),
        "inactive ones are listed too"
    );

    let as_q = f.store.get_subscription(&q, &a.id).await.unwrap();
    assert!(as_q.is_none(), "q cannot read p's subscription");
    assert!(!f.store.delete_subscription(&q, &a.id, at(1)).await.unwrap());
    assert!(f.reread(&a).await.is_some(), "nor delete it");
    let got = f.reread(&b).await.unwrap();
    assert_eq!((&got.target_url, got.is_active), (&b.target_url, false));

    assert!(f.delete(&a, at(2)).await);
    assert_eq!(f.listed(&p).await, ids(&[&b]), "deleted ones are not");
    assert_eq!(f.listed(&q).await, ids(&[&theirs]));
}

async fn a_target_url_is_unique_among_a_partners_live_subscriptions(f: Fixture) {
    let (p, q) = (f.partner().await, f.partner().await);
    let first = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let url = first.target_url.clone();

    match f
        .try_subscribe(&p, Spec::to(&["message.read"]).at_url(&url))
        .await
    {
        Err(StoreError::DuplicateTargetUrl { existing_id }) => assert_eq!(existing_id, first.id),
        other => panic!(
            "a second live subscription to {url}: {:?}",
            other.map(|s| s.id)
        ),
    }
    let other = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    match f
        .try_update(&other, at(1), |s| s.target_url = url.clone())
        .await
    {
        Err(StoreError::DuplicateTargetUrl { existing_id }) => assert_eq!(existing_id, first.id),
        answer => panic!("moved onto a used target: {:?}", answer.map(|_| ())),
    }
    assert_ne!(f.reread(&other).await.unwrap().target_url, url, "unchanged");

    let elsewhere = f
        .try_subscribe(&q, Spec::to(&["message.sent"]).at_url(&url))
        .await;
    assert!(elsewhere.is_ok(), "another partner may use the same target");
    assert!(f.delete(&first, at(2)).await);
    let again = f
        .try_subscribe(&p, Spec::to(&["message.sent"]).at_url(&url))
        .await;
    assert!(again.is_ok(), "free again once the subscription is deleted");
}

async fn a_signing_secret_is_replaced_only_from_its_stored_value_and_deliveries_carry_the_new_one(
    f: Fixture,
) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let deleted = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    assert!(f.delete(&deleted, at(1)).await);
    let mut all = vec![
        (sub.id.to_string(), SECRET.to_owned()),
        (deleted.id.to_string(), SECRET.to_owned()),
    ];
    all.sort();
    assert_eq!(
        f.signing_secrets().await,
        all,
        "deleted subscriptions included"
    );
    // Published once before the change, so a backend that caches fan-out has the old secret.
    let (_, before) = f.publish_leased(&[event(&p, "message.sent")], at(2)).await;
    assert_eq!(before[0].signing_secret, SECRET);

    assert!(
        !f.replace_secret(&sub, "whsec_not_the_stored_one", "whsec_new")
            .await
    );
    assert!(f.replace_secret(&sub, SECRET, "whsec_new").await);
    assert!(
        !f.replace_secret(&sub, SECRET, "whsec_newer").await,
        "replaced once"
    );

    let (_, leased) = f.publish_leased(&[event(&p, "message.sent")], at(3)).await;
    assert_eq!(
        leased[0].signing_secret, "whsec_new",
        "handed over at publish"
    );
    f.publish(&[event(&p, "message.sent")], at(4)).await;
    let claimed = f.claim_all(at(5)).await;
    assert_eq!(claimed[0].signing_secret, "whsec_new", "claimed");
}

/// Publishes one event to `sub`'s partner and claims its delivery to `sub` at `at(secs)`.
async fn deliver_one(f: &Fixture, sub: &Subscription, secs: i64) -> DueDelivery {
    f.publish(&[event(&sub.partner_id, "message.sent")], at(secs))
        .await;
    let due = f.claim_all(at(secs + 1)).await;
    due.into_iter()
        .find(|d| d.subscription_id == sub.id)
        .expect("a delivery to sub")
}

async fn a_routing_token_is_learned_only_under_the_subscriptions_current_header(f: Fixture) {
    let p = f.partner().await;
    let keyed = Spec::to(&["message.sent"]).routing_key_header("x-route-key");
    let sub = f.subscribe(&p, keyed).await;
    let unkeyed = f.subscribe(&p, Spec::to(&["message.sent"])).await;

    let d = deliver_one(&f, &sub, 1).await;
    learn_on_success(&f, &d, "x-route-key", "chat-1", "tok-1", 3).await;
    assert_eq!(
        f.routing_token(&sub, "chat-1").await.as_deref(),
        Some("tok-1")
    );
    assert_eq!(f.routing_token(&sub, "chat-2").await, None, "per chat");

    let d = deliver_one(&f, &sub, 4).await;
    learn_on_success(&f, &d, "x-route-key", "chat-1", "tok-2", 6).await;
    assert_eq!(
        f.routing_token(&sub, "chat-1").await.as_deref(),
        Some("tok-2"),
        "a newer token replaces the last"
    );

    // Sent while the subscription used another header (it was changed since).
    let d = deliver_one(&f, &sub, 7).await;
    learn_on_success(&f, &d, "x-old-key", "chat-1", "tok-old", 9).await;
    assert_eq!(
        f.routing_token(&sub, "chat-1").await.as_deref(),
        Some("tok-2")
    );

    let d = deliver_one(&f, &unkeyed, 10).await;
    learn_on_success(&f, &d, "x-route-key", "chat-1", "tok-u", 12).await;
    assert_eq!(
        f.routing_token(&unkeyed, "chat-1").await,
        None,
        "a subscription without a routing key header learns nothing"
    );
}

/// Records `d` succeeded at `secs`, its response carrying `token` for `chat` under `header_name`.
async fn learn_on_success(
    f: &Fixture,
    d: &DueDelivery,
    header_name: &str,
    chat: &str,
    token: &str,
    secs: i64,
) {
    f.record(
        &[learning(succeeded(d), d, header_name, chat, token)],
        at(secs),
    )
    .await;
}

async fn routing_tokens_are_kept_across_other_changes_and_forgotten_when_the_header_changes(
    f: Fixture,
) {
    let p = f.partner().await;
    let keyed = Spec::to(&["message.sent"]).routing_key_header("x-route-key");
    let sub = f.subscribe(&p, keyed).await;
    let d = deliver_one(&f, &sub, 1).await;
    learn_on_success(&f, &d, "x-route-key", "chat-1", "tok-1", 3).await;

    let other_change = f.update(&sub, at(4), |s| s.is_active = false).await;
    assert_eq!(other_change, UpdateResult::Updated);
    assert_eq!(
        f.routing_token(&sub, "chat-1").await.as_deref(),
        Some("tok-1"),
        "kept while the header stays"
    );
    let sub = f.reread(&sub).await.unwrap();
    let renamed = f
        .update(&sub, at(5), |s| {
            s.is_active = true;
            s.routing_key_header = Some(header("x-new-key"));
        })
        .await;
    assert_eq!(renamed, UpdateResult::Updated);
    assert_eq!(
        f.routing_token(&sub, "chat-1").await,
        None,
        "dropped with the old header"
    );

    let d = deliver_one(&f, &sub, 6).await;
    learn_on_success(&f, &d, "x-new-key", "chat-1", "tok-new", 8).await;
    assert_eq!(
        f.routing_token(&sub, "chat-1").await.as_deref(),
        Some("tok-new"),
        "learned again under the new header"
    );
}

async fn routing_tokens_are_forgotten_when_the_subscription_is_deleted_and_not_learned_after(
    f: Fixture,
) {
    let p = f.partner().await;
    let keyed = Spec::to(&["message.sent"]).routing_key_header("x-route-key");
    let sub = f.subscribe(&p, keyed).await;
    let d = deliver_one(&f, &sub, 1).await;
    learn_on_success(&f, &d, "x-route-key", "chat-1", "tok-1", 3).await;
    assert_eq!(
        f.routing_token(&sub, "chat-1").await.as_deref(),
        Some("tok-1")
    );

    // A delivery claimed before the delete whose outcome is recorded after it.
    let d = deliver_one(&f, &sub, 4).await;
    assert!(f.delete(&sub, at(6)).await);
    assert_eq!(
        f.routing_token(&sub, "chat-1").await,
        None,
        "deleted with the subscription"
    );
    learn_on_success(&f, &d, "x-route-key", "chat-1", "tok-late", 7).await;
    assert_eq!(
        f.routing_token(&sub, "chat-1").await,
        None,
        "an outcome after the delete learns nothing"
    );
}
