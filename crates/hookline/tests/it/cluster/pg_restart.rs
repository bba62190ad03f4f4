//! PostgreSQL stopped and started again under a running node: nothing accepted is lost.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_run_loses_nothing() {
    let began = Instant::now();
    let pg = PgCluster::init();
    pg.start().await;
    let dir = tempfile::tempdir().unwrap();
    let rx = TestReceiver::start().await;
    rx.track_overlaps();
    rx.set_default("/sink", Reply::ok().delayed(Duration::from_millis(50)));
    let url = pg.url();
    let node = start_node(&url, dir.path()).await;
    let http = http_client();
    let pid = set_up_tenant(&http, &node.base, "cluster", &rx.url("/sink"))
        .await
        .partner_id;
    let publisher = Publisher {
        http: &http,
        base: &node.base,
        pid: &pid,
    };

    let mut accepted: HashSet<String> = HashSet::new();
    accepted.extend(publisher.publish_all("before").await);

    // Stop PostgreSQL while deliveries flow (~160/s at 8 in flight × 50 ms).
    assert!(
        rx.wait_until(Duration::from_secs(60), |all| all.len() >= 100)
            .await,
        "100 deliveries did not arrive within 60 s"
    );
    pg.stop_immediate().await;
    let delivered_before_stop = rx.with_received(|all| per_event(all).len());
    assert!(
        delivered_before_stop < 500,
        "everything was delivered before PostgreSQL stopped; the test proves nothing"
    );
    let outage = Instant::now();
    let body = wait_readyz(&http, &node.base, 503, Duration::from_secs(30)).await;
    let readyz_503_after = outage.elapsed();
    assert_error(503, &body, 503, 4004);
    let refused = publisher.assert_publishing_is_refused().await;

    pg.start().await;
    let restarted = Instant::now();
    wait_readyz(&http, &node.base, 200, Duration::from_secs(60)).await;
    let ready_after = restarted.elapsed();
    accepted.extend(publisher.publish_all("after").await);

    await_every_event(&rx, &accepted, Duration::from_secs(90)).await;

    // Every delivery ends succeeded; then the receiver's record is final (an attempt whose
    // outcome was lost in the outage goes out again after its lease: a duplicate).
    let pool = pg_pool(&url).await;
    await_all_succeeded(&pool, accepted.len(), Duration::from_secs(60)).await;
    let dups = rx.with_received(|all| duplicates(&per_event(all), &accepted));
    assert_outage_events_left_no_trace(&rx, &pool).await;
    let overlapping = rx.overlapping_arrivals();
    assert!(
        overlapping.is_empty(),
        "arrivals while the same webhook-id was in flight: {overlapping:?}"
    );
    pool.close().await;
    drop(node);
    println!(
        "postgres restart: {} events accepted, all delivered; {delivered_before_stop} delivered \
         before the stop; /readyz 503 {readyz_503_after:?} into the outage, 200 again \
         {ready_after:?} after the restart; publishes during the outage refused with (status, \
         code) {refused:?}; {dups} duplicate deliveries; total {:?}",
        accepted.len(),
        began.elapsed()
    );
}

async fn start_node(database_url: &str, dir: &std::path::Path) -> Node {
    let env = node_env(&[
        ("HOOKLINE_DATABASE_URL", database_url),
        ("HOOKLINE_DATABASE_POOL_SIZE", "4"),
        ("HOOKLINE_DELIVERY_TIMEOUT", "2s"),
        ("HOOKLINE_CONNECT_TIMEOUT", "1s"),
        ("HOOKLINE_RETRY_SCHEDULE", "200ms,200ms,200ms,200ms,200ms"),
        ("HOOKLINE_RETRY_JITTER", "0"),
        ("HOOKLINE_MAX_IN_FLIGHT_PER_SUBSCRIPTION", "8"),
    ]);
    Node::start(&env, &dir.join("node.log")).await
}

/// Publishes events for one partner through one node.
struct Publisher<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    pid: &'a str,
}

impl Publisher<'_> {
    /// Publishes 500 events `{prefix}-000`… in batches of 50, each accepted; returns their ids.
    async fn publish_all(&self, prefix: &str) -> Vec<String> {
        let ids: Vec<String> = (0..500).map(|i| format!("{prefix}-{i:03}")).collect();
        for chunk in ids.chunks(50) {
            let (s, v) = post_batch(self.http, self.base, self.pid, chunk)
                .await
                .unwrap();
            assert_eq!(s, 202, "{v}");
        }
        ids
    }

    /// Publishing during the outage is refused with the error envelope, never a false 202.
    /// Two concurrent batches of `outage-…` events; returns each answer's (status, code).
    async fn assert_publishing_is_refused(&self) -> Vec<(u16, Value)> {
        let refused = futures_util::future::join_all((0..2).map(|attempt| {
            let ids: Vec<String> = (0..10).map(|i| format!("outage-{attempt}-{i}")).collect();
            async move {
                post_batch(self.http, self.base, self.pid, &ids)
                    .await
                    .unwrap()
            }
        }))
        .await;
        // Retryable: the store cannot take the write now (a lost connection), not a 500.
        for (s, body) in &refused {
            assert_error(*s, body, 503, 4004);
        }
        refused
            .into_iter()
            .map(|(s, mut b)| (s, b["error"]["code"].take()))
            .collect()
    }
}

/// No event refused during the outage was delivered or stored.
async fn assert_outage_events_left_no_trace(rx: &TestReceiver, pool: &sqlx::PgPool) {
    let outage_delivered = rx.with_received(|all| {
        per_event(all)
            .keys()
            .filter(|k| k.starts_with("outage-"))
            .count()
    });
    assert_eq!(
        outage_delivered, 0,
        "an event refused during the outage was delivered"
    );
    let outage_stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE event_id LIKE 'outage-%'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        outage_stored, 0,
        "an event refused during the outage was stored"
    );
}
