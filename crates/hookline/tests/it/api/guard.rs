//! Authentication throttling: failed authentications are limited per client address and
//! overall (429 in the envelope, with `Retry-After`), and a client is never slowed by others'
//! failures. Clients come from different loopback addresses (127.0.0.2, …) to the server on
//! 127.0.0.1.

use crate::common::*;
use crate::per_backend;
use crate::process::wait_readyz;
use std::net::{IpAddr, Ipv4Addr};

/// A client whose connections come from 127.0.0.`last`.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .unwrap()
}

/// GET on a partner path (`admin`: an operator path) with `token`: (status, body, Retry-After).
async fn get(
    app: &TestApp,
    http: &reqwest::Client,
    admin: bool,
    token: &str,
) -> (u16, serde_json::Value, Option<u64>) {
    let path = if admin {
        "/admin/v1/partners"
    } else {
        "/v3/webhook-subscriptions"
    };
    let r = http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let (s, v) = into_parts(r).await;
    (s, v, retry_after)
}

/// `n` wrong credentials from `http`; returns how many were answered 401 before the first 429,
/// checking that every answer after it is a 429 with `Retry-After`.
async fn guess(app: &TestApp, http: &reqwest::Client, admin: bool, n: usize) -> usize {
    let mut unauthorized = 0;
    for i in 0..n {
        let (s, v, retry_after) = get(app, http, admin, &format!("hl_live_guess{i:04}")).await;
        if s == 401 && unauthorized == i {
            assert_error(s, &v, 401, 2004);
            unauthorized += 1;
        } else {
            assert_error(s, &v, 429, 1007);
            assert!(retry_after.is_some_and(|secs| secs >= 1), "{v}");
            // The SDKs read the wait from the envelope as well (CONTRACT.md §1.5).
            assert_eq!(v["error"]["retry_after"].as_u64(), retry_after, "{v}");
        }
    }
    unauthorized
}

async fn failed_authentications_are_throttled_per_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = app.partner("acme").await;
    let attacker = client_from(2);

    assert_eq!(guess(&app, &attacker, false, 30).await, 20);
    // The throttled address is refused before its key is looked at, a valid one included.
    let (s, v, _) = get(&app, &attacker, false, &key).await;
    assert_error(s, &v, 429, 1007);
    // Another client, with the right key, is not slowed at all.
    let (s, v, _) = get(&app, &client_from(3), false, &key).await;
    assert_eq!(s, 200, "{v}");

    // The admin token the same way, from another address.
    let attacker = client_from(4);
    assert_eq!(guess(&app, &attacker, true, 25).await, 20);
    let (s, v, _) = get(&app, &client_from(1), true, ADMIN_TOKEN).await;
    assert_eq!(s, 200, "{v}");
    // A request without credentials guesses nothing: 401, not counted, not throttled.
    let r = client_from(5)
        .get(app.url("/v3/webhook-subscriptions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

async fn a_spent_global_budget_refuses_only_addresses_that_failed(backend: Backend) {
    let mut opts = Options::default();
    opts.raw.auth_failures_per_minute_global = Some(10);
    let app = TestApp::spawn_with(backend, opts).await;
    let (_, key) = app.partner("acme").await;

    // 10 failures from one address spend the global budget (the address's own is 20).
    assert_eq!(guess(&app, &client_from(2), false, 12).await, 10);
    // An address that has not failed is checked as always: a valid key passes …
    let (s, v, _) = get(&app, &client_from(3), false, &key).await;
    assert_eq!(s, 200, "{v}");
    // … a wrong one is answered 401 and counted, and that address is refused next.
    assert_eq!(guess(&app, &client_from(4), false, 3).await, 1);
    let (s, v, _) = get(&app, &client_from(1), true, ADMIN_TOKEN).await;
    assert_eq!(s, 200, "{v}");
}

per_backend!(
    failed_authentications_are_throttled_per_address,
    a_spent_global_budget_refuses_only_addresses_that_failed,
);

/// Makes the test's database read-only for new sessions (as a standby in recovery is) or
/// writable again, and ends the server's sessions so its pool reconnects under the new setting.
/// `admin` is a session of the test's own, opened while the database was writable.
async fn set_read_only(admin: &mut sqlx::PgConnection, read_only: bool) {
    use sqlx::Executor;
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *admin)
        .await
        .unwrap();
    let setting = if read_only { "on" } else { "off" };
    admin
        .execute(
            format!("ALTER DATABASE \"{db}\" SET default_transaction_read_only = {setting}")
                .as_str(),
        )
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
}

/// Publishes one `message.sent` event: (status, body, Retry-After).
async fn publish_one(app: &TestApp, partner: &str) -> (u16, serde_json::Value, Option<String>) {
    let request = app
        .http
        .post(app.url("/admin/v1/events"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&event(partner, "message.sent", None));
    send_for_retry(request).await
}

/// PostgreSQL refusing writes (SQLSTATE 25006, what a standby in recovery answers too): publishes
/// are 503 code 4004 with `Retry-After`, not 500, `/readyz` is 503, and the same server recovers
/// once the database takes writes again, delivering what it accepted.
#[tokio::test]
async fn postgres_read_only_refuses_publishes_with_503_and_recovers() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &rx.url("/ro"), &["message.sent"], None).await;
    let hookline::config::DatabaseUrl::Postgres(url) = &app.settings.store.database_url else {
        unreachable!("a PostgreSQL app")
    };
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();

    set_read_only(&mut admin, true).await;
    for _ in 0..3 {
        let (s, v, retry_after) = publish_one(&app, &partner).await;
        assert_error(s, &v, 503, 4004);
        assert_eq!(retry_after.as_deref(), Some("5"), "{v}");
    }
    wait_readyz(&app.http, &app.base, 503, WAIT).await;

    set_read_only(&mut admin, false).await;
    wait_readyz(&app.http, &app.base, 200, WAIT).await;
    let (s, v, _) = publish_one(&app, &partner).await;
    assert_eq!(s, 202, "{v}");
    rx.wait_for(Some("/ro"), 1, WAIT).await;
    assert_eq!(rx.received().len(), 1, "a refused publish was delivered");
}
