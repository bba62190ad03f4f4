//! The delivery log's key read is index-backed on both backends: on a store seeded through SQL
//! (100,000 deliveries over two subscriptions, mostly succeeded, some failed, a few pending,
//! analysed), its plan reads `deliveries_log` in order — no scan of `deliveries`, no sort — for
//! every shape a page takes (a state range, the attempted check, the event-type check). The
//! plans are printed (`--nocapture`) and quoted in README.

use crate::common::PgDatabase;
use hookline::store::delivery_log::LOG_SELECT;
use hookline::store::postgres::{PostgresStore, LOG_KEYS_SQL as PG_KEYS};
use hookline::store::sqlite::{SqliteStore, LOG_KEYS_SQL as SQLITE_KEYS};

const N: i64 = 100_000;

/// Seed rows, written for both dialects: one partner, subscriptions `sub-a` and `sub-b`,
/// and N events with one delivery and one attempt each. `{true}` is the dialect's true.
const SEED: &str = "
INSERT INTO partners (id, name, created_at) VALUES ('p', 'plans', 0);
INSERT INTO subscriptions (id, partner_id, target_url, subscribed_events, is_active,
    signing_secret, created_at, updated_at, target_url_key)
VALUES ('sub-a', 'p', 'https://a.example/', '[\"message.sent\"]', {true}, 'whsec_x', 0, 0, 'a'),
       ('sub-b', 'p', 'https://b.example/', '[\"message.sent\"]', {true}, 'whsec_x', 0, 0, 'b');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
INSERT INTO events (partner_id, event_id, event_type, created_at, trace_id, data, deliveries,
    accepted_at)
SELECT 'p', 'e' || i, CASE WHEN i % 10 = 0 THEN 'message.received' ELSE 'message.sent' END,
       '2026-01-01T00:00:00Z', 't', '{}', 1, i FROM n;
INSERT INTO deliveries (event_seq, subscription_id, state, attempts, next_attempt_at,
    created_at, updated_at)
SELECT seq, CASE WHEN seq % 2 = 0 THEN 'sub-a' ELSE 'sub-b' END,
       CASE WHEN seq % 100 = 0 THEN 'failed' WHEN seq % 1000 = 1 THEN 'pending'
            ELSE 'succeeded' END, 1, seq, seq * 1000, seq FROM events;
INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code)
SELECT id, 1, created_at, 5, 200 FROM deliveries WHERE state <> 'pending';
ANALYZE;
";

fn seed(true_literal: &str) -> String {
    SEED.replace("{true}", true_literal)
        .replace("{n}", &N.to_string())
}

/// `(state, attempted code, event type)`: the shapes of a page's key read.
const SHAPES: [(&str, i64, Option<&str>); 4] = [
    ("succeeded", 0, None),
    ("failed", 0, Some("message.received")),
    ("pending", 2, None),
    ("pending", 1, Some("message.sent")),
];

#[tokio::test]
async fn sqlite_log_pages_read_deliveries_log_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookline.db");
    drop(SqliteStore::open(&path).await.unwrap()); // migrated
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(&seed("1")).unwrap();
    for (state, attempted, event_type) in SHAPES {
        let mut stmt = c
            .prepare(&format!("EXPLAIN QUERY PLAN {SQLITE_KEYS}"))
            .unwrap();
        let plan: Vec<String> = stmt
            .query_map(
                rusqlite::params![
                    "sub-a",
                    state,
                    i64::MIN,
                    i64::MAX,
                    i64::MAX,
                    event_type,
                    attempted,
                    21
                ],
                |r| r.get::<_, String>(3),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("\n");
        println!("SQLite, {state} {attempted} {event_type:?}:\n{plan}\n");
        assert!(
            plan.contains("SEARCH d USING INDEX deliveries_log (subscription_id=? AND state=?")
                || plan.contains(
                    "SEARCH d USING COVERING INDEX deliveries_log (subscription_id=? AND state=?"
                ),
            "{plan}"
        );
        assert!(
            !plan.contains("TEMP B-TREE"),
            "sorted after reading: {plan}"
        );
        assert!(!plan.contains("SCAN d"), "{plan}");
    }
    let plan = sqlite_rows_plan(&c);
    println!("SQLite, the rows of a page:\n{plan}\n");
    // `subscriptions` (two rows here) may be scanned; the large tables never are.
    for line in plan.lines() {
        assert!(
            !["SCAN d", "SCAN e", "SCAN a", "SCAN m"].contains(&line.trim()),
            "{plan}"
        );
    }
}

/// The rows of a page, by id: each a primary-key lookup with its event, subscription and
/// latest attempt.
fn sqlite_rows_plan(c: &rusqlite::Connection) -> String {
    let sql =
        format!("EXPLAIN QUERY PLAN {LOG_SELECT} WHERE d.id IN (SELECT value FROM json_each(?1))");
    let mut stmt = c.prepare(&sql).unwrap();
    let plan: Vec<String> = stmt
        .query_map(["[2,4,6,8]"], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    plan.join("\n")
}

#[tokio::test]
async fn postgres_log_pages_read_deliveries_log_in_order() {
    let db = PgDatabase::create().await;
    drop(PostgresStore::connect(&db.url, 2).await.unwrap()); // migrated
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::raw_sql(&seed("TRUE")).execute(&pool).await.unwrap();
    for (state, attempted, event_type) in SHAPES {
        let rows: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {PG_KEYS}"))
            .bind(vec!["sub-a", "sub-b"])
            .bind(vec![state])
            .bind(vec![attempted])
            .bind(i64::MIN)
            .bind(i64::MAX)
            .bind(i64::MAX)
            .bind(event_type)
            .bind(21_i64)
            .fetch_all(&pool)
            .await
            .unwrap();
        let plan: Vec<String> = rows.into_iter().map(|r| r.0).collect();
        let plan = plan.join("\n");
        println!("PostgreSQL, {state} {attempted} {event_type:?}:\n{plan}\n");
        assert!(
            plan.contains("Index Scan Backward using deliveries_log on deliveries d")
                || plan.contains("Index Only Scan Backward using deliveries_log on deliveries d"),
            "{plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{plan}");
        assert!(!plan.contains("hashed SubPlan"), "{plan}");
    }
    let rows: Vec<(String,)> =
        sqlx::query_as(&format!("EXPLAIN {LOG_SELECT} WHERE d.id = ANY($1)"))
            .bind(vec![2_i64, 4, 6, 8])
            .fetch_all(&pool)
            .await
            .unwrap();
    let plan = rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n");
    println!("PostgreSQL, the rows of a page:\n{plan}\n");
    // `subscriptions` (two rows here) may be scanned; the large tables never are.
    for table in ["deliveries", "events", "delivery_attempts"] {
        assert!(!plan.contains(&format!("Seq Scan on {table} ")), "{plan}");
    }
}
