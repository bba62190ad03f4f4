//! Several real `hookline` processes on one PostgreSQL database: one SIGKILLed mid-run, and
//! split API and worker roles.

use super::*;
use std::path::Path;

const CLUSTER_EVENTS: usize = 3000;
const CLUSTER_BATCH: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_one_sigkilled_deliver_every_event() {
    let began = Instant::now();
    let db = PgDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let rx = TestReceiver::start().await;
    rx.track_overlaps();
    rx.set_default("/sink", Reply::ok().delayed(Duration::from_millis(20)));
    let [n1, mut n2, n3] = start_three_nodes(&db, dir.path()).await;
    let http = http_client();
    let pid = set_up_tenant(&http, &n1.base, "cluster", &rx.url("/sink"))
        .await
        .partner_id;

    let ids: Vec<String> = (0..CLUSTER_EVENTS).map(|i| format!("cl-{i:05}")).collect();
    let want: HashSet<String> = ids.iter().cloned().collect();
    let bases = [n1.base.clone(), n2.base.clone(), n3.base.clone()];
    let publisher = spawn_publisher(http.clone(), pid, bases, &ids);

    let fifth = CLUSTER_EVENTS / 5;
    assert!(
        rx.wait_until(Duration::from_secs(60), |all| all.len() >= fifth)
            .await,
        "{fifth} deliveries did not arrive within 60 s"
    );
    n2.kill().await; // SIGKILL: its leased deliveries go out again once their lease expires
    let killed_at = Instant::now();

    let delivered_before_kill = rx.with_received(|all| per_event(all).len());
    assert!(
        delivered_before_kill < CLUSTER_EVENTS,
        "everything was delivered before the kill; the test proves nothing"
    );
    let retried_batches = publisher.await.unwrap();

    await_every_event(&rx, &want, Duration::from_secs(90)).await;
    let all_in = killed_at.elapsed();

    // Every delivery ends succeeded. Only then is the receiver's record final: the deliveries the
    // dead node had sent but not recorded go out again when their lease expires, after the
    // first arrival of every event (those are the duplicates).
    let pool = pg_pool(&db.url).await;
    await_all_succeeded(&pool, CLUSTER_EVENTS, Duration::from_secs(30)).await;
    let settled = killed_at.elapsed();
    let dups = rx.with_received(|all| duplicates(&per_event(all), &want));

    assert_no_overlapping_arrivals(&rx);

    let by_delivery = attempts_by_delivery(&pool).await;
    assert_eq!(
        by_delivery.len(),
        CLUSTER_EVENTS,
        "deliveries without attempts"
    );
    let retried_deliveries = assert_attempts_are_sequential(&by_delivery);

    // What the extra attempts were: failed attempts by error kind, and deliveries whose first
    // recorded attempt is not 1 (an earlier attempt went unrecorded: its node died holding it).
    let failed = failed_attempts(&pool).await;
    let unrecorded_first = by_delivery.values().filter(|log| log[0].0 > 1).count();

    let delivered_by = successful_sends_logged(&[&n1, &n2, &n3]);
    println!(
        "three nodes: {CLUSTER_EVENTS} events; {delivered_before_kill} delivered before node 2 was \
         SIGKILLed; every event in {all_in:?} after the kill, every delivery succeeded \
         {settled:?} after it; {dups} duplicate deliveries; \
         {retried_batches} batch requests retried on another node; {retried_deliveries} deliveries \
         with more than one attempt ({unrecorded_first} whose first recorded attempt is not 1; \
         failed attempts by (error kind, status, count): {failed:?}); successful sends logged per \
         node {delivered_by:?}; \
         peak distinct webhook-ids in flight {}; total {:?}",
        rx.peak_in_flight_ids(),
        began.elapsed()
    );
}

/// Never two requests for one delivery at once: a lease held by a live node excludes others.
fn assert_no_overlapping_arrivals(rx: &TestReceiver) {
    let overlapping = rx.overlapping_arrivals();
    assert!(
        overlapping.is_empty(),
        "{} arrivals came while another request with the same webhook-id was in flight, e.g. {:?}",
        overlapping.len(),
        &overlapping[..overlapping.len().min(5)]
    );
}

/// How many successful sends each node logged.
fn successful_sends_logged(nodes: &[&Node]) -> Vec<usize> {
    nodes
        .iter()
        .map(|n| n.log_text().matches("delivered").count())
        .collect()
}

/// Three nodes on `db`, started at once on the empty database: they race to migrate and
/// bootstrap it.
async fn start_three_nodes(db: &PgDatabase, dir: &Path) -> [Node; 3] {
    let env = node_env(&[
        ("HOOKLINE_DATABASE_URL", db.url.as_str()),
        ("HOOKLINE_DATABASE_POOL_SIZE", "4"),
        ("HOOKLINE_DELIVERY_TIMEOUT", "2s"),
        ("HOOKLINE_CONNECT_TIMEOUT", "1s"), // lease = 2 × (2 s + 1 s) = 6 s
        ("HOOKLINE_RETRY_SCHEDULE", "200ms,200ms,200ms,200ms,200ms"),
        ("HOOKLINE_RETRY_JITTER", "0"),
        ("HOOKLINE_MAX_IN_FLIGHT_PER_SUBSCRIPTION", "16"),
    ]);
    let (mut n1, mut n2, mut n3) = (
        Node::spawn(free_port(), &env, &dir.join("node1.log")),
        Node::spawn(free_port(), &env, &dir.join("node2.log")),
        Node::spawn(free_port(), &env, &dir.join("node3.log")),
    );
    tokio::join!(n1.wait_ready(), n2.wait_ready(), n3.wait_ready());
    [n1, n2, n3]
}

/// Publishes `ids` in batches of CLUSTER_BATCH, batch k to node k mod 3. A batch whose node is
/// gone (SIGKILLed) is retried through the next node: the same event ids, so nothing is
/// published twice. Returns how many batch requests were retried.
fn spawn_publisher(
    http: reqwest::Client,
    pid: String,
    bases: [String; 3],
    ids: &[String],
) -> tokio::task::JoinHandle<usize> {
    let batches: Vec<Vec<String>> = ids.chunks(CLUSTER_BATCH).map(<[_]>::to_vec).collect();
    tokio::spawn(async move {
        let mut retried = 0;
        for (k, batch) in batches.iter().enumerate() {
            let mut node = k % 3;
            let mut tries = 0;
            loop {
                match post_batch(&http, &bases[node], &pid, batch).await {
                    Ok((202, v)) => {
                        let results = v["results"].as_array().unwrap();
                        assert_eq!(results.len(), batch.len(), "{v}");
                        break;
                    }
                    other => {
                        tries += 1;
                        retried += 1;
                        assert!(tries < 6, "batch {k} not accepted by any node: {other:?}");
                        node = (node + 1) % 3;
                    }
                }
            }
        }
        retried
    })
}

/// Attempt log per delivery id: (attempt, started_at µs, duration ms), by attempt number.
type AttemptLog = BTreeMap<i64, Vec<(i64, i64, i64)>>;

async fn attempts_by_delivery(pool: &sqlx::PgPool) -> AttemptLog {
    let attempts: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT delivery_id, attempt, started_at, duration_ms FROM delivery_attempts \
         ORDER BY delivery_id, attempt",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut by_delivery = AttemptLog::new();
    for (delivery, attempt, started_at, duration_ms) in attempts {
        by_delivery
            .entry(delivery)
            .or_default()
            .push((attempt, started_at, duration_ms));
    }
    by_delivery
}

/// For every delivery, attempt numbers are distinct and attempts never overlap. Returns how many
/// deliveries took more than one attempt.
fn assert_attempts_are_sequential(by_delivery: &AttemptLog) -> usize {
    let mut retried_deliveries = 0;
    for (delivery, log) in by_delivery {
        if log.len() > 1 || log[0].0 > 1 {
            retried_deliveries += 1;
        }
        for pair in log.windows(2) {
            let ((a1, s1, d1), (a2, s2, _)) = (pair[0], pair[1]);
            assert!(
                a2 > a1,
                "delivery {delivery}: attempt numbers repeat: {log:?}"
            );
            assert!(
                s2 >= s1 + d1 * 1000,
                "delivery {delivery}: attempt {a2} started while attempt {a1} ran: {log:?}"
            );
        }
    }
    retried_deliveries
}

/// Failed attempts counted by (error kind, status code), most frequent first.
async fn failed_attempts(pool: &sqlx::PgPool) -> Vec<(Option<String>, Option<i64>, i64)> {
    sqlx::query_as(
        "SELECT error_kind, status_code, COUNT(*) FROM delivery_attempts \
         WHERE status_code IS DISTINCT FROM 200 GROUP BY 1, 2 ORDER BY 3 DESC",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_through_one_node_stops_deliveries_claimed_by_another() {
    let began = Instant::now();
    let db = PgDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let rx = TestReceiver::start().await;
    rx.set_default("/dead", Reply::status(500));
    let (a, b) = start_api_and_worker_nodes(&db, dir.path()).await;
    let http = http_client();
    let Tenant {
        partner_id: pid,
        api_key: key,
        subscription_id: sub,
        ..
    } = set_up_tenant(&http, &a.base, "cluster", &rx.url("/dead")).await;
    assert_worker_serves_only_health(&http, &b, &key).await;

    let (s, v) = post_batch(&http, &a.base, &pid, &["deact-1".to_owned()])
        .await
        .unwrap();
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["results"][0]["deliveries"], json!(1), "{v}");
    rx.wait_for(Some("/dead"), 2, Duration::from_secs(30)).await;

    // Deactivate through the API node while the worker node keeps retrying the delivery.
    deactivate(&http, &a, &key, &sub).await;
    let at_deactivation = rx.received_at("/dead").len();

    // The bound: the change is committed before the PUT answers, and every claim, on any node,
    // reads the subscription in the claiming transaction, so the very next claim of this
    // delivery cancels it. Only an attempt claimed before the commit and still in flight (at
    // most the delivery timeout) can still reach the receiver: at most one more request.
    let pool = pg_pool(&db.url).await;
    assert_eq!(await_delivery_settled(&pool).await, "cancelled");
    let at_cancel = rx.received_at("/dead").len();
    assert!(
        at_cancel <= at_deactivation + 1,
        "{} requests after the deactivation (at most one in flight may still arrive)",
        at_cancel - at_deactivation
    );

    await_barrier_delivery(&http, &a, &key, &pid, &rx).await;
    let at_end = rx.received_at("/dead").len();
    assert_eq!(
        at_end, at_cancel,
        "the cancelled delivery was sent again after it was cancelled"
    );
    let recorded: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id \
         JOIN events e ON e.seq = d.event_seq WHERE e.event_id = 'deact-1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        recorded as usize, at_end,
        "every attempt that reached the receiver is in the attempt log"
    );
    drop((a, b));
    println!(
        "deactivation: {at_deactivation} attempts before the PUT answered, {} after it, \
         none after the cancellation; total {:?}",
        at_end - at_deactivation,
        began.elapsed()
    );
}

/// An `api` node and a `worker` node on `db`, retrying every 300 ms, 30 times.
async fn start_api_and_worker_nodes(db: &PgDatabase, dir: &Path) -> (Node, Node) {
    let schedule = vec!["300ms"; 30].join(",");
    let common = [
        ("HOOKLINE_DATABASE_URL", db.url.as_str()),
        ("HOOKLINE_DATABASE_POOL_SIZE", "4"),
        ("HOOKLINE_DELIVERY_TIMEOUT", "2s"),
        ("HOOKLINE_CONNECT_TIMEOUT", "1s"),
        ("HOOKLINE_RETRY_SCHEDULE", schedule.as_str()),
        ("HOOKLINE_RETRY_JITTER", "0"),
    ];
    let mut api_env = node_env(&common);
    api_env.push(("HOOKLINE_ROLE", "api".into()));
    let mut worker_env = node_env(&common);
    worker_env.push(("HOOKLINE_ROLE", "worker".into()));
    let a = Node::start(&api_env, &dir.join("api.log")).await;
    let b = Node::start(&worker_env, &dir.join("worker.log")).await;
    (a, b)
}

/// The worker serves health and readiness only: the partner and operator APIs are 404 there.
async fn assert_worker_serves_only_health(http: &reqwest::Client, worker: &Node, key: &str) {
    for path in ["/healthz", "/readyz"] {
        let r = http.get(worker.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "worker {path}");
    }
    for (path, token) in [
        ("/v3/webhook-subscriptions", key),
        ("/admin/v1/partners", ADMIN_TOKEN),
    ] {
        let r = http
            .get(worker.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (s, body) = into_parts(r).await;
        assert_error(s, &body, 404, 2001);
    }
}

async fn deactivate(http: &reqwest::Client, node: &Node, key: &str, sub: &str) {
    let r = http
        .put(node.url(&format!("/v3/webhook-subscriptions/{sub}")))
        .bearer_auth(key)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    let (s, v) = into_parts(r).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["is_active"], json!(false), "{v}");
}

/// Waits until the only delivery leaves `pending`, and returns its state.
async fn await_delivery_settled(pool: &sqlx::PgPool) -> String {
    eventually(
        "the delivery to be cancelled",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                let state: String = sqlx::query_scalar("SELECT state FROM deliveries")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
                (state != "pending").then_some(state)
            }
        },
    )
    .await
}

/// A barrier proving the worker kept claiming after the cancellation: a new subscription whose
/// first two attempts fail, so its delivery takes three claims spaced by the 300 ms retry
/// delay, longer than the cancelled delivery's own retry delay. Had the cancelled delivery
/// still been claimable, it would have gone out again meanwhile.
async fn await_barrier_delivery(
    http: &reqwest::Client,
    api: &Node,
    key: &str,
    pid: &str,
    rx: &TestReceiver,
) {
    rx.script(
        "/barrier",
        vec![Reply::status(500), Reply::status(500), Reply::ok()],
    );
    create_subscription(http, &api.base, key, &rx.url("/barrier")).await;
    let (s, v) = post_batch(http, &api.base, pid, &["deact-barrier".to_owned()])
        .await
        .unwrap();
    assert_eq!(s, 202, "{v}");
    rx.wait_for(Some("/barrier"), 3, Duration::from_secs(30))
        .await;
}
