//! Portal links and sessions, and the key listing of the operator pages.

use super::fixture::*;
use hookline_core::{PortalPrincipal, PortalSession, PortalTokenKind};

conformance!(
    a_link_opens_one_session_once,
    expired_links_and_sessions_are_refused_and_purged,
    an_ended_session_is_gone_and_a_link_is_not_a_session,
    listed_api_keys_leave_out_revoked_ones,
);

fn issue(
    kind: PortalTokenKind,
    principal: PortalPrincipal,
    from: i64,
    to: i64,
) -> (hookline_core::ApiKey, PortalSession) {
    PortalSession::issue(kind, principal, at(from), at(to))
}

async fn a_link_opens_one_session_once(f: Fixture) {
    let partner = f.partner().await;
    let (link, row) = issue(
        PortalTokenKind::Link,
        PortalPrincipal::Partner(partner.clone()),
        0,
        3600,
    );
    f.store.create_portal_session(&row, at(0)).await.unwrap();
    let (session, fresh) = issue(PortalTokenKind::Session, PortalPrincipal::Operator, 10, 10);

    let opened = f
        .store
        .redeem_portal_link(&link.hash(), &session.hash(), &fresh.csrf_token, at(10))
        .await
        .unwrap()
        .expect("a live link opens a session");
    // The link decides whom the session is for and when it ends.
    assert_eq!(opened.principal, PortalPrincipal::Partner(partner));
    assert_eq!(opened.kind, PortalTokenKind::Session);
    assert_eq!(opened.expires_at, at(3600));
    assert_eq!(opened.csrf_token, fresh.csrf_token);
    assert_eq!(
        f.store
            .portal_session(&session.hash(), at(20))
            .await
            .unwrap(),
        Some(opened)
    );
    let (other, _) = issue(PortalTokenKind::Session, PortalPrincipal::Operator, 0, 0);
    assert_eq!(
        f.store
            .redeem_portal_link(&link.hash(), &other.hash(), "x", at(11))
            .await
            .unwrap(),
        None,
        "a link works once"
    );
    assert_eq!(
        f.store.portal_session(&other.hash(), at(20)).await.unwrap(),
        None
    );
}

async fn expired_links_and_sessions_are_refused_and_purged(f: Fixture) {
    let (link, row) = issue(PortalTokenKind::Link, PortalPrincipal::Operator, 0, 60);
    f.store.create_portal_session(&row, at(0)).await.unwrap();
    let (token, session) = issue(PortalTokenKind::Session, PortalPrincipal::Operator, 0, 60);
    f.store
        .create_portal_session(&session, at(0))
        .await
        .unwrap();
    assert!(f
        .store
        .portal_session(&token.hash(), at(59))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        f.store.portal_session(&token.hash(), at(60)).await.unwrap(),
        None
    );
    let (next, _) = issue(PortalTokenKind::Session, PortalPrincipal::Operator, 0, 0);
    assert_eq!(
        f.store
            .redeem_portal_link(&link.hash(), &next.hash(), "x", at(60))
            .await
            .unwrap(),
        None,
        "an expired link opens nothing"
    );
    // A later write purges expired rows; the live one stays.
    let (live_token, live) = issue(
        PortalTokenKind::Session,
        PortalPrincipal::Operator,
        61,
        7200,
    );
    f.store.create_portal_session(&live, at(61)).await.unwrap();
    assert_eq!(
        f.store.portal_session(&token.hash(), at(0)).await.unwrap(),
        None,
        "purged"
    );
    assert!(f
        .store
        .portal_session(&live_token.hash(), at(62))
        .await
        .unwrap()
        .is_some());
}

async fn an_ended_session_is_gone_and_a_link_is_not_a_session(f: Fixture) {
    let (link, row) = issue(PortalTokenKind::Link, PortalPrincipal::Operator, 0, 600);
    f.store.create_portal_session(&row, at(0)).await.unwrap();
    assert_eq!(
        f.store.portal_session(&link.hash(), at(1)).await.unwrap(),
        None,
        "a link's token is no session cookie"
    );
    let (token, session) = issue(PortalTokenKind::Session, PortalPrincipal::Operator, 0, 600);
    f.store
        .create_portal_session(&session, at(0))
        .await
        .unwrap();
    f.store.end_portal_session(&token.hash()).await.unwrap();
    assert_eq!(
        f.store.portal_session(&token.hash(), at(1)).await.unwrap(),
        None
    );
}

async fn listed_api_keys_leave_out_revoked_ones(f: Fixture) {
    let partner = f.partner().await;
    let (kept, gone) = (key_record(&partner), key_record(&partner));
    f.store.create_api_key(&kept).await.unwrap();
    f.store.create_api_key(&gone).await.unwrap();
    assert!(f
        .store
        .revoke_api_key(&partner, &gone.id, at(1))
        .await
        .unwrap());
    let listed = f.store.list_api_keys(&partner).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, kept.id);
    assert_eq!(listed[0].name.as_deref(), Some("conformance"));
    assert!(f
        .store
        .list_api_keys(&hookline_core::PartnerId::generate())
        .await
        .unwrap()
        .is_empty());
}
