//! Signing-secret rotation in the store: the new secret replaces the old, which is kept (with
//! its expiry) for deliveries claimed or handed off during the grace period; only the
//! partner's own live subscription rotates.

use super::fixture::*;

conformance!(
    a_rotation_keeps_the_previous_secret_for_claims_and_hand_offs,
    a_rotation_without_grace_drops_the_previous_secret,
    only_the_partners_own_live_subscription_rotates,
);

async fn a_rotation_keeps_the_previous_secret_for_claims_and_hand_offs(f: Fixture) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let rotated = f
        .store
        .rotate_signing_secret(&p, &sub.id, "whsec_new", Some(at(100)), at(10))
        .await
        .unwrap();
    assert!(rotated);
    let after = f.reread(&sub).await.unwrap();
    assert!(after.updated_at > sub.updated_at, "a rotation is a change");
    assert_eq!(
        f.signing_secrets().await,
        vec![(sub.id.to_string(), "whsec_new".to_owned())]
    );
    let previous = f.store.previous_signing_secrets().await.unwrap();
    assert_eq!(previous, vec![(sub.id.clone(), SECRET.to_owned())]);

    f.publish(&[event(&p, "message.sent")], at(11)).await;
    let claimed = f.claim_all(at(12)).await.remove(0);
    assert_eq!(claimed.signing_secret, "whsec_new");
    let kept = claimed
        .previous_secret
        .expect("the previous secret travels");
    assert_eq!((kept.stored.as_str(), kept.expires_at), (SECRET, at(100)));

    let (_, leased) = f.publish_leased(&[event(&p, "message.sent")], at(13)).await;
    let kept = leased[0].previous_secret.as_ref().expect("hand-offs too");
    assert_eq!(kept.stored, SECRET);

    // Reseal (HOOKLINE_SECRET_KEY changes) compares and sets the previous secret too.
    assert!(f
        .store
        .replace_previous_signing_secret(&sub.id, SECRET, "sealed-old")
        .await
        .unwrap());
    assert!(!f
        .store
        .replace_previous_signing_secret(&sub.id, SECRET, "again")
        .await
        .unwrap());
}

async fn a_rotation_without_grace_drops_the_previous_secret(f: Fixture) {
    let p = f.partner().await;
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let store = &f.store;
    assert!(store
        .rotate_signing_secret(&p, &sub.id, "whsec_2", Some(at(100)), at(10))
        .await
        .unwrap());
    assert!(store
        .rotate_signing_secret(&p, &sub.id, "whsec_3", None, at(20))
        .await
        .unwrap());
    assert!(store.previous_signing_secrets().await.unwrap().is_empty());
    f.publish(&[event(&p, "message.sent")], at(21)).await;
    let claimed = f.claim_all(at(22)).await.remove(0);
    assert_eq!(claimed.signing_secret, "whsec_3");
    assert!(claimed.previous_secret.is_none());
}

async fn only_the_partners_own_live_subscription_rotates(f: Fixture) {
    let (p, q) = (f.partner().await, f.partner().await);
    let sub = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let store = &f.store;
    assert!(!store
        .rotate_signing_secret(&q, &sub.id, "whsec_x", None, at(10))
        .await
        .unwrap());
    assert!(f.delete(&sub, at(20)).await);
    assert!(!store
        .rotate_signing_secret(&p, &sub.id, "whsec_x", None, at(30))
        .await
        .unwrap());
    assert_eq!(f.signing_secrets().await[0].1, SECRET);
}
