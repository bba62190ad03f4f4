//! Operator state, partners and their API keys: what request authentication reads.

use super::fixture::*;

conformance!(
    bootstrap_stores_the_admin_token_the_first_partner_and_its_key,
    partners_are_listed_in_creation_order,
    a_revoked_key_no_longer_names_its_partner,
);

async fn bootstrap_stores_the_admin_token_the_first_partner_and_its_key(f: Fixture) {
    assert!(f.store.is_fresh().await.unwrap(), "a new store is fresh");
    assert!(f.store.admin_token_hash().await.unwrap().is_none());
    let admin = hookline_core::ApiKey::generate("hl_admin_").hash();
    let partner = partner_record("default", at(0));
    let key = key_record(&partner.id);

    f.store
        .bootstrap(Some(&admin), &partner, &key)
        .await
        .unwrap();

    assert!(!f.store.is_fresh().await.unwrap());
    assert_eq!(f.store.admin_token_hash().await.unwrap(), Some(admin));
    let listed = f.store.list_partners().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (&listed[0].id, &listed[0].name),
        (&partner.id, &partner.name)
    );
    assert_eq!(listed[0].created_at, at(0));
    assert_eq!(
        f.store.partner_for_key(&key.hash).await.unwrap(),
        Some(partner.id.clone())
    );
}

async fn partners_are_listed_in_creation_order(f: Fixture) {
    let later = partner_record("later", at(2));
    let earlier = partner_record("earlier", at(1));
    f.store.create_partner(&later).await.unwrap();
    f.store.create_partner(&earlier).await.unwrap();

    let names: Vec<String> = f
        .store
        .list_partners()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["earlier", "later"]);
    assert!(f.store.partner_exists(&earlier.id).await.unwrap());
    let never_stored = partner_record("never", at(3));
    assert!(!f.store.partner_exists(&never_stored.id).await.unwrap());
}

async fn a_revoked_key_no_longer_names_its_partner(f: Fixture) {
    let (p, q) = (f.partner().await, f.partner().await);
    let (revoked, kept) = (key_record(&p), key_record(&p));
    f.store.create_api_key(&revoked).await.unwrap();
    f.store.create_api_key(&kept).await.unwrap();
    assert_eq!(
        f.store.partner_for_key(&revoked.hash).await.unwrap(),
        Some(p.clone())
    );

    let by_other_partner = f
        .store
        .revoke_api_key(&q, &revoked.id, at(1))
        .await
        .unwrap();
    assert!(!by_other_partner, "a partner revokes only its own keys");
    assert_eq!(
        f.store.partner_for_key(&revoked.hash).await.unwrap(),
        Some(p.clone())
    );

    assert!(f
        .store
        .revoke_api_key(&p, &revoked.id, at(2))
        .await
        .unwrap());
    assert!(
        !f.store
            .revoke_api_key(&p, &revoked.id, at(3))
            .await
            .unwrap(),
        "revoked once"
    );
    assert_eq!(f.store.partner_for_key(&revoked.hash).await.unwrap(), None);
    assert_eq!(
        f.store.partner_for_key(&kept.hash).await.unwrap(),
        Some(p),
        "the partner's other key still works"
    );
}
