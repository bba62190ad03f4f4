//! PostgreSQL backend and multi-node scale-out: several real `hookline` processes on one
//! database, one of them SIGKILLed mid-run; split API/worker roles; a PostgreSQL restart.

use super::common::*;
use super::process::{base_env, free_port, wait_readyz, Node};
use super::receiver::Received;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Published with explicit ids, so a batch can be retried through another node without
/// creating new events (publishing is idempotent per `event_id`).
fn batch_body(partner_id: &str, ids: &[String]) -> Value {
    let events: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"partner_id": partner_id, "event_type": "message.received",
                   "event_id": id, "data": {"id": id}})
        })
        .collect();
    json!({ "events": events })
}

async fn post_batch(
    http: &reqwest::Client,
    base: &str,
    partner_id: &str,
    ids: &[String],
) -> Result<(u16, Value), reqwest::Error> {
    let r = http
        .post(format!("{base}/admin/v1/events/batch"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&batch_body(partner_id, ids))
        .send()
        .await?;
    Ok(into_parts(r).await)
}

/// Creates a partner, an API key and one subscription to `message.received` at `target_url`,
/// all through the node at `base`: (partner_id, api_key, subscription_id).
async fn setup_partner(
    http: &reqwest::Client,
    base: &str,
    target_url: &str,
) -> (String, String, String) {
    let r = http
        .post(format!("{base}/admin/v1/partners"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "cluster"}))
        .send()
        .await
        .unwrap();
    let (s, partner) = into_parts(r).await;
    assert_eq!(s, 201, "{partner}");
    let pid = partner["id"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{base}/admin/v1/partners/{pid}/api-keys"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "cluster"}))
        .send()
        .await
        .unwrap();
    let (s, key) = into_parts(r).await;
    assert_eq!(s, 201, "{key}");
    let key = key["api_key"].as_str().unwrap().to_owned();
    let sub = create_subscription(http, base, &key, target_url).await;
    (pid, key, sub)
}

async fn create_subscription(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    target_url: &str,
) -> String {
    let r = http
        .post(format!("{base}/v3/webhook-subscriptions"))
        .bearer_auth(key)
        .json(&json!({"target_url": target_url, "subscribed_events": ["message.received"]}))
        .send()
        .await
        .unwrap();
    let (s, sub) = into_parts(r).await;
    assert_eq!(s, 201, "{sub}");
    sub["id"].as_str().unwrap().to_owned()
}

/// Arrivals per `webhook-id` (the event id).
fn per_event(all: &[Received]) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in all {
        *seen.entry(r.header("webhook-id").to_owned()).or_default() += 1;
    }
    seen
}

/// Waits until every id in `want` has arrived at least once; fails naming the missing ones.
/// Returns the arrivals per event id.
async fn await_every_event(
    rx: &TestReceiver,
    want: &HashSet<String>,
    timeout: Duration,
) -> HashMap<String, usize> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut scanned = 0;
    rx.wait_until(timeout, |all| {
        for r in &all[scanned..] {
            let id = r.header("webhook-id");
            if want.contains(id) {
                seen.insert(id.to_owned());
            }
        }
        scanned = all.len();
        seen.len() == want.len()
    })
    .await;
    let counts = rx.with_received(per_event);
    let mut missing: Vec<&String> = want.iter().filter(|id| !counts.contains_key(*id)).collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "{} of {} accepted events never delivered within {timeout:?}, e.g. {:?}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(5)]
    );
    counts
}

fn duplicates(counts: &HashMap<String, usize>, of: &HashSet<String>) -> usize {
    of.iter()
        .map(|id| counts.get(id).map_or(0, |n| n - 1))
        .sum()
}

fn node_env(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = base_env();
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

async fn pg_pool(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap()
}

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
    let env = node_env(&[
        ("HOOKLINE_DATABASE_URL", db.url.as_str()),
        ("HOOKLINE_DATABASE_POOL_SIZE", "4"),
        ("HOOKLINE_DELIVERY_TIMEOUT", "2s"),
        ("HOOKLINE_CONNECT_TIMEOUT", "1s"), // lease = 2 × (2 s + 1 s) = 6 s
        ("HOOKLINE_RETRY_SCHEDULE", "200ms,200ms,200ms,200ms,200ms"),
        ("HOOKLINE_RETRY_JITTER", "0"),
        ("HOOKLINE_MAX_IN_FLIGHT_PER_SUBSCRIPTION", "16"),
    ]);
    // All three start at once on the empty database: they race to migrate and bootstrap it.
    let (mut n1, mut n2, mut n3) = (
        Node::spawn(free_port(), &env, &dir.path().join("node1.log")),
        Node::spawn(free_port(), &env, &dir.path().join("node2.log")),
        Node::spawn(free_port(), &env, &dir.path().join("node3.log")),
    );
    tokio::join!(n1.wait_ready(), n2.wait_ready(), n3.wait_ready());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (pid, _key, _sub) = setup_partner(&http, &n1.base, &rx.url("/sink")).await;

    let ids: Vec<String> = (0..CLUSTER_EVENTS).map(|i| format!("cl-{i:05}")).collect();
    let want: HashSet<String> = ids.iter().cloned().collect();
    let bases = [n1.base.clone(), n2.base.clone(), n3.base.clone()];
    // Batch k goes to node k mod 3. A batch whose node is gone (SIGKILLed below) is retried
    // through the next node: the same event ids, so nothing is published twice.
    let publisher = {
        let (http, pid, bases) = (http.clone(), pid.clone(), bases.clone());
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
    };

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
    eventually(
        "every delivery to be recorded succeeded",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
                        .fetch_all(&pool)
                        .await
                        .ok()?;
                (rows == vec![("succeeded".to_owned(), CLUSTER_EVENTS as i64)]).then_some(())
            }
        },
    )
    .await;
    let settled = killed_at.elapsed();
    let dups = rx.with_received(|all| duplicates(&per_event(all), &want));

    // Never two requests for one delivery at once: a lease held by a live node excludes others.
    let overlapping = rx.overlapping_arrivals();
    assert!(
        overlapping.is_empty(),
        "{} arrivals came while another request with the same webhook-id was in flight, e.g. {:?}",
        overlapping.len(),
        &overlapping[..overlapping.len().min(5)]
    );

    // The attempt log: for every delivery, attempt numbers are distinct and attempts never overlap.
    let attempts: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT delivery_id, attempt, started_at, duration_ms FROM delivery_attempts \
         ORDER BY delivery_id, attempt",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut by_delivery: BTreeMap<i64, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for (delivery, attempt, started_at, duration_ms) in attempts {
        by_delivery
            .entry(delivery)
            .or_default()
            .push((attempt, started_at, duration_ms));
    }
    assert_eq!(
        by_delivery.len(),
        CLUSTER_EVENTS,
        "deliveries without attempts"
    );
    let mut retried_deliveries = 0;
    for (delivery, log) in &by_delivery {
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

    // What the extra attempts were: failed attempts by error kind, and deliveries whose first
    // recorded attempt is not 1 (an earlier attempt went unrecorded: its node died holding it).
    let failed: Vec<(Option<String>, Option<i64>, i64)> = sqlx::query_as(
        "SELECT error_kind, status_code, COUNT(*) FROM delivery_attempts \
         WHERE status_code IS DISTINCT FROM 200 GROUP BY 1, 2 ORDER BY 3 DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let unrecorded_first = by_delivery.values().filter(|log| log[0].0 > 1).count();

    let delivered_by: Vec<usize> = [&n1, &n2, &n3]
        .iter()
        .map(|n| n.log_text().matches("delivered").count())
        .collect();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_through_one_node_stops_deliveries_claimed_by_another() {
    let began = Instant::now();
    let db = PgDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let rx = TestReceiver::start().await;
    rx.set_default("/dead", Reply::status(500));
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
    let a = Node::start(&api_env, &dir.path().join("api.log")).await;
    let b = Node::start(&worker_env, &dir.path().join("worker.log")).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // The worker serves health and readiness only.
    for path in ["/healthz", "/readyz"] {
        let r = http.get(b.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "worker {path}");
    }
    let (pid, key, sub) = setup_partner(&http, &a.base, &rx.url("/dead")).await;
    let r = http
        .get(b.url("/v3/webhook-subscriptions"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (s, body) = into_parts(r).await;
    assert_error(s, &body, 404, 2001);
    let r = http
        .get(b.url("/admin/v1/partners"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let (s, body) = into_parts(r).await;
    assert_error(s, &body, 404, 2001);

    let (s, v) = post_batch(&http, &a.base, &pid, &["deact-1".to_owned()])
        .await
        .unwrap();
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["results"][0]["deliveries"], json!(1), "{v}");
    rx.wait_for(Some("/dead"), 2, Duration::from_secs(30)).await;

    // Deactivate through the API node while the worker node keeps retrying the delivery.
    let r = http
        .put(a.url(&format!("/v3/webhook-subscriptions/{sub}")))
        .bearer_auth(&key)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    let (s, v) = into_parts(r).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["is_active"], json!(false), "{v}");
    let at_deactivation = rx.received_at("/dead").len();

    // The bound: the change is committed before the PUT answers, and every claim, on any node,
    // reads the subscription in the claiming transaction, so the very next claim of this
    // delivery cancels it. Only an attempt claimed before the commit and still in flight (at
    // most the delivery timeout) can still reach the receiver: at most one more request.
    let pool = pg_pool(&db.url).await;
    let state = eventually(
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
    .await;
    assert_eq!(state, "cancelled");
    let at_cancel = rx.received_at("/dead").len();
    assert!(
        at_cancel <= at_deactivation + 1,
        "{} requests after the deactivation (at most one in flight may still arrive)",
        at_cancel - at_deactivation
    );

    // A barrier proving the worker kept claiming after the cancellation: a new subscription whose
    // first two attempts fail, so its delivery takes three claims spaced by the 300 ms retry
    // delay, longer than the cancelled delivery's own retry delay. Had the cancelled delivery
    // still been claimable, it would have gone out again meanwhile.
    rx.script(
        "/barrier",
        vec![Reply::status(500), Reply::status(500), Reply::ok()],
    );
    create_subscription(&http, &a.base, &key, &rx.url("/barrier")).await;
    let (s, v) = post_batch(&http, &a.base, &pid, &["deact-barrier".to_owned()])
        .await
        .unwrap();
    assert_eq!(s, 202, "{v}");
    rx.wait_for(Some("/barrier"), 3, Duration::from_secs(30))
        .await;
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

/// A PostgreSQL cluster of this test's own (initdb in a temp dir, its own port), so stopping it
/// never disturbs the shared server other tests use. Stopped (`-m immediate`) when dropped.
struct PrivatePg {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
}

fn run_as_postgres(program: &Path, args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .map_err(|e| format!("running runuser {}: {e}", program.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {args:?} failed ({}): {}{}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl PrivatePg {
    /// Fails the test with a clear message when the machine cannot run a private cluster.
    fn init() -> PrivatePg {
        const NEEDS: &str = "this test needs root, `runuser`, a `postgres` OS user and PostgreSQL \
                             server binaries under /usr/lib/postgresql/*/bin";
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
            .max()
            .unwrap_or_else(|| panic!("no PostgreSQL server binaries found: {NEEDS}"));
        let dir = tempfile::Builder::new().prefix("hl-pg-").tempdir().unwrap();
        let status = std::process::Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .status()
            .unwrap_or_else(|e| panic!("chown: {e}; {NEEDS}"));
        assert!(
            status.success(),
            "chown postgres {} failed: {NEEDS}",
            dir.path().display()
        );
        let data = dir.path().join("data");
        run_as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )
        .unwrap_or_else(|e| panic!("initdb failed: {e}\n{NEEDS}"));
        PrivatePg {
            bin,
            data,
            port: free_port(),
            dir,
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-D", self.data.to_str().unwrap()];
        all.extend_from_slice(args);
        run_as_postgres(&self.bin.join("pg_ctl"), &all)
    }

    /// Starts the server and waits until it accepts connections (`-w`).
    async fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let args = [
            "-o".to_owned(),
            opts,
            "-l".to_owned(),
            log.display().to_string(),
            "-w".to_owned(),
            "start".to_owned(),
        ];
        let (bin, data) = (self.bin.clone(), self.data.clone());
        tokio::task::spawn_blocking(move || {
            let mut all = vec!["-D", data.to_str().unwrap()];
            all.extend(args.iter().map(String::as_str));
            run_as_postgres(&bin.join("pg_ctl"), &all)
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| {
            panic!(
                "starting PostgreSQL: {e}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    }

    /// Stops the server at once: every backend is killed, no checkpoint (recovery on next start).
    async fn stop_immediate(&self) {
        let (bin, data) = (self.bin.clone(), self.data.clone());
        tokio::task::spawn_blocking(move || {
            run_as_postgres(
                &bin.join("pg_ctl"),
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            )
        })
        .await
        .unwrap()
        .unwrap();
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        // Not running (already stopped) is fine.
        let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_run_loses_nothing() {
    let began = Instant::now();
    let pg = PrivatePg::init();
    pg.start().await;
    let dir = tempfile::tempdir().unwrap();
    let rx = TestReceiver::start().await;
    rx.track_overlaps();
    rx.set_default("/sink", Reply::ok().delayed(Duration::from_millis(50)));
    let url = pg.url();
    let env = node_env(&[
        ("HOOKLINE_DATABASE_URL", url.as_str()),
        ("HOOKLINE_DATABASE_POOL_SIZE", "4"),
        ("HOOKLINE_DELIVERY_TIMEOUT", "2s"),
        ("HOOKLINE_CONNECT_TIMEOUT", "1s"),
        ("HOOKLINE_RETRY_SCHEDULE", "200ms,200ms,200ms,200ms,200ms"),
        ("HOOKLINE_RETRY_JITTER", "0"),
        ("HOOKLINE_MAX_IN_FLIGHT_PER_SUBSCRIPTION", "8"),
    ]);
    let node = Node::start(&env, &dir.path().join("node.log")).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (pid, _key, _sub) = setup_partner(&http, &node.base, &rx.url("/sink")).await;

    let mut accepted: HashSet<String> = HashSet::new();
    let publish_all = |ids: Vec<String>| {
        let (http, base, pid) = (http.clone(), node.base.clone(), pid.clone());
        async move {
            for chunk in ids.chunks(50) {
                let (s, v) = post_batch(&http, &base, &pid, chunk).await.unwrap();
                assert_eq!(s, 202, "{v}");
            }
            ids
        }
    };
    accepted.extend(publish_all((0..500).map(|i| format!("before-{i:03}")).collect()).await);

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

    // Publishing during the outage is refused with the error envelope, never a false 202.
    let refused = futures_util::future::join_all((0..2).map(|attempt| {
        let ids: Vec<String> = (0..10).map(|i| format!("outage-{attempt}-{i}")).collect();
        let (http, base, pid) = (&http, &node.base, &pid);
        async move { post_batch(http, base, pid, &ids).await.unwrap() }
    }))
    .await;
    for (s, body) in &refused {
        assert!(
            (500..600).contains(s),
            "publish during the outage: {s} {body}"
        );
        assert_eq!(body["success"], json!(false), "{body}");
        assert_eq!(body["error"]["status"], json!(s), "{body}");
    }
    let refused: Vec<(u16, &Value)> = refused
        .iter()
        .map(|(s, b)| (*s, &b["error"]["code"]))
        .collect();

    pg.start().await;
    let restarted = Instant::now();
    wait_readyz(&http, &node.base, 200, Duration::from_secs(60)).await;
    let ready_after = restarted.elapsed();
    accepted.extend(publish_all((0..500).map(|i| format!("after-{i:03}")).collect()).await);

    await_every_event(&rx, &accepted, Duration::from_secs(90)).await;

    // Every delivery ends succeeded; then the receiver's record is final (an attempt whose
    // outcome was lost in the outage goes out again after its lease: a duplicate).
    let pool = pg_pool(&url).await;
    let want_succeeded = accepted.len() as i64;
    eventually(
        "every delivery to be recorded succeeded",
        Duration::from_secs(60),
        || {
            let pool = pool.clone();
            async move {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
                        .fetch_all(&pool)
                        .await
                        .ok()?;
                (rows == vec![("succeeded".to_owned(), want_succeeded)]).then_some(())
            }
        },
    )
    .await;
    let (dups, outage_delivered) = rx.with_received(|all| {
        let counts = per_event(all);
        let outage = counts.keys().filter(|k| k.starts_with("outage-")).count();
        (duplicates(&counts, &accepted), outage)
    });
    assert_eq!(
        outage_delivered, 0,
        "an event refused during the outage was delivered"
    );
    let outage_stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE event_id LIKE 'outage-%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        outage_stored, 0,
        "an event refused during the outage was stored"
    );
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
