//! The real binary, killed with SIGKILL mid-delivery and restarted: nothing accepted is lost.

use super::common::*;
use super::process::*;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

const EVENTS: usize = 3000;

fn spawn_hookline(dir: &Path, port: u16, log_name: &str, workers: &str) -> Node {
    let database_url = format!("sqlite://{}", dir.join("hookline.db").display());
    let env = node_env(&[
        ("HOOKLINE_WORKER_THREADS", workers),
        ("HOOKLINE_DATABASE_URL", database_url.as_str()),
        ("HOOKLINE_RETRY_SCHEDULE", "200ms,200ms,200ms,200ms,200ms"),
        ("HOOKLINE_RETRY_JITTER", "0"),
        ("HOOKLINE_DELIVERY_TIMEOUT", "2s"),
        ("HOOKLINE_CONNECT_TIMEOUT", "1s"),
        ("HOOKLINE_MAX_IN_FLIGHT_PER_SUBSCRIPTION", "16"),
    ]);
    Node::spawn(port, &env, &dir.join(log_name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_no_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let rx = TestReceiver::start().await;
    rx.set_default("/sink", Reply::ok().delayed(Duration::from_millis(50)));
    // The restarted process takes the same port: the test talks to "the server", not a node.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = http_client();
    let mut first = spawn_hookline(dir.path(), port, "first.log", "2");
    first.wait_ready().await;
    let tenant = set_up_tenant(&http, &base, "crash", &rx.url("/sink")).await;

    let ids: Vec<String> = (0..EVENTS).map(|i| format!("crash-{i}")).collect();
    for chunk in ids.chunks(100) {
        let (s, v) = post_batch(&http, &base, &tenant.partner_id, chunk)
            .await
            .unwrap();
        assert_eq!(s, 202, "{v}");
    }

    rx.wait_for(Some("/sink"), EVENTS / 10, Duration::from_secs(60))
        .await;
    first.kill().await; // SIGKILL
    let delivered_before = rx.received().len();
    assert!(
        delivered_before < EVENTS,
        "everything was delivered before the kill; the test proves nothing"
    );

    // The restart runs on a one-thread runtime: recovery and delivery do not need a second.
    let mut second = spawn_hookline(dir.path(), port, "second.log", "1");
    second.wait_ready().await;
    let started = second.log_text();
    assert!(
        started.contains("workers=1"),
        "HOOKLINE_WORKER_THREADS=1:\n{started}"
    );
    let want: HashSet<String> = ids.into_iter().collect();
    let per_event = await_every_event(&rx, &want, Duration::from_secs(90)).await;
    let duplicates = duplicates(&per_event, &want);
    println!("crash test: {EVENTS} events, {delivered_before} delivered before SIGKILL, {duplicates} duplicate deliveries after restart");
    second.kill().await;

    // Secrets never reach the logs, even at debug level.
    for log in ["first.log", "second.log"] {
        let text = std::fs::read_to_string(dir.path().join(log)).unwrap();
        assert!(
            !text.contains(&tenant.signing_secret),
            "{log} contains the signing secret"
        );
        assert!(
            !text.contains(&tenant.api_key),
            "{log} contains the API key"
        );
        assert!(
            !text.contains(ADMIN_TOKEN),
            "{log} contains the admin token"
        );
    }
}
