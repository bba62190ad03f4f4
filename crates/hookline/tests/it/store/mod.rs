//! The store conformance suite: every scenario is written once against the `Store` trait and
//! run on both backends, so SQLite and PostgreSQL cannot drift apart unnoticed.
//!
//! Deterministic by construction: nothing sleeps, and every store call is given its `now`
//! explicitly (see [`fixture::at`]). Scenarios talk to the store through the thin layer in
//! [`fixture`], so a change of the trait's signatures is absorbed there, not in each scenario.

/// Instantiates each named `async fn(Fixture)` as a `sqlite` and a `postgres` test, each on a
/// fresh store. Multi-threaded, so scenarios that race tasks really run them in parallel.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let f = $crate::store::fixture::Fixture::open($crate::common::Backend::Sqlite).await;
                super::$name(f).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let f = $crate::store::fixture::Fixture::open($crate::common::Backend::Postgres).await;
                super::$name(f).await
            }
        }
    )*};
}

mod fixture;

mod claims;
mod delivery_log;
mod endpoint_health;
mod fan_out;
mod housekeeping;
mod idempotency;
mod leases;
mod outcomes;
mod partners;
mod portal_sessions;
mod query_plans;
mod rotation;
mod subscription_rules;
mod subscriptions;
mod url_key_migration;
