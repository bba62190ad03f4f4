//! Migration 0005 on a store the previous schema wrote: every subscription gets the
//! `target_url_key` a new insert would store; of live rows that share a key under the new
//! rule the oldest keeps it and the others get none; rows still load as written.

use crate::common::PgDatabase;
use hookline::store::postgres::PostgresStore;
use hookline::store::sqlite::SqliteStore;
use hookline::store::DynStore;
use hookline_core::PartnerId;
use std::sync::Arc;

/// The migrations before 0005.
const BEFORE: [&str; 4] = [
    "0001_init",
    "0002_subscription_queues",
    "0003_routing_tokens",
    "0004_global_due_index",
];

/// Partner `p`'s subscriptions before the migration: (id, target_url, created_at, deleted).
const ROWS: [(&str, &str, i64, bool); 4] = [
    ("s1", "HTTPS://EXAMPLE.COM:443/x", 1, false),
    ("s2", "https://example.com/x", 2, false),
    ("s3", "https://example.com/x", 0, true),
    ("s4", "https://bücher.example/y", 3, false),
];

const INSERT: &str = "INSERT INTO subscriptions (id, partner_id, target_url, subscribed_events, \
    is_active, signing_secret, created_at, updated_at, deleted_at) \
    VALUES ($1, 'p', $2, '[\"message.sent\"]', TRUE, 'whsec_x', $3, $3, $4)";

fn migration(backend: &str, name: &str) -> String {
    let path = format!(
        "{}/migrations/{backend}/{name}.sql",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

fn want() -> Vec<(String, Option<String>)> {
    let key = Some("https://example.com/x".to_owned());
    vec![
        ("s1".into(), key.clone()),
        ("s2".into(), None),
        ("s3".into(), key),
        ("s4".into(), Some("https://xn--bcher-kva.example/y".into())),
    ]
}

async fn rows_load_as_written(store: DynStore) {
    let listed = store
        .list_subscriptions(&PartnerId::from_stored("p"))
        .await
        .unwrap();
    let urls: Vec<&str> = listed.iter().map(|s| s.target_url.as_str()).collect();
    assert_eq!(urls, [ROWS[0].1, ROWS[1].1, ROWS[3].1]);
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookline.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            .unwrap();
        for (n, name) in BEFORE.iter().enumerate() {
            c.execute_batch(&migration("sqlite", name)).unwrap();
            c.execute("INSERT INTO schema_version VALUES (?1)", [n as i64 + 1])
                .unwrap();
        }
        c.execute("INSERT INTO partners VALUES ('p', 'acme', 0)", [])
            .unwrap();
        for (id, url, created, deleted) in ROWS {
            let deleted_at = deleted.then_some(created + 10);
            c.execute(
                &INSERT.replace('$', "?"),
                rusqlite::params![id, url, created, deleted_at],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    let keys: Vec<(String, Option<String>)> = c
        .prepare("SELECT id, target_url_key FROM subscriptions ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(keys, want());
    rows_load_as_written(Arc::new(store)).await;
}

#[tokio::test]
async fn postgres() {
    let db = PgDatabase::create().await;
    let pool = crate::pg::pg_pool(&db.url).await;
    sqlx::raw_sql("CREATE TABLE schema_version (version BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    for (n, name) in BEFORE.iter().enumerate() {
        sqlx::raw_sql(&migration("postgres", name))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO schema_version VALUES ($1)")
            .bind(n as i64 + 1)
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO partners VALUES ('p', 'acme', 0)")
        .execute(&pool)
        .await
        .unwrap();
    for (id, url, created, deleted) in ROWS {
        sqlx::query(INSERT)
            .bind(id)
            .bind(url)
            .bind(created)
            .bind(deleted.then_some(created + 10))
            .execute(&pool)
            .await
            .unwrap();
    }
    let store = PostgresStore::connect(&db.url, 2).await.unwrap();
    let keys: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, target_url_key FROM subscriptions ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(keys, want());
    rows_load_as_written(Arc::new(store)).await;
}
