//! The real binary stopped (SIGSTOP) with a subscription at its in-flight cap and a backlog,
//! publishes queued against it while it is stopped, then resumed (SIGCONT): the per-subscription
//! cap holds as the freed slots, the claim loop and the publish hand-offs all wake at once (the
//! case that once reached 147 requests in flight with the cap at 128).

use super::common::*;
use super::process::*;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

const CAP: usize = 8;
const BACKLOG: usize = 40;
const QUEUED_PUBLISHES: usize = 20;

fn stop(node: &Node, signal: &str) {
    let pid = node.child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// One single-event publish per task, sent at once; each resolves to (status, event id).
fn queue_publishes(
    http: &reqwest::Client,
    node: &Node,
    partner_id: &str,
) -> Vec<tokio::task::JoinHandle<(u16, String)>> {
    (0..QUEUED_PUBLISHES)
        .map(|i| {
            let (http, url) = (http.clone(), node.url("/admin/v1/events"));
            let id = format!("queued-{i}");
            let body = json!({"partner_id": partner_id, "event_type": "message.received",
                              "event_id": id, "data": {"id": id}});
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), id)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_subscription_cap_holds_when_a_stopped_process_resumes_with_queued_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let rx = TestReceiver::start().await;
    rx.track_overlaps();
    rx.set_default("/capped", Reply::ok().delayed(Duration::from_millis(400)));
    let http = http_client();
    let database_url = format!("sqlite://{}", dir.path().join("hookline.db").display());
    let cap = CAP.to_string();
    let env = node_env(&[
        ("HOOKLINE_DATABASE_URL", database_url.as_str()),
        ("HOOKLINE_MAX_IN_FLIGHT_PER_SUBSCRIPTION", cap.as_str()),
        ("HOOKLINE_RETRY_SCHEDULE", "200ms,200ms,200ms,200ms,200ms"),
        ("HOOKLINE_RETRY_JITTER", "0"),
        ("HOOKLINE_LOG", "info"),
    ]);
    let mut node = Node::start(&env, &dir.path().join("node.log")).await;
    let tenant = set_up_tenant(&http, &node.base, "sigstop", &rx.url("/capped")).await;

    // A backlog: the cap in flight, the rest waiting in the store.
    let backlog: Vec<String> = (0..BACKLOG).map(|i| format!("backlog-{i}")).collect();
    let (s, v) = post_batch(&http, &node.base, &tenant.partner_id, &backlog)
        .await
        .unwrap();
    assert_eq!(s, 202, "{v}");
    rx.wait_for(Some("/capped"), CAP, Duration::from_secs(30))
        .await;

    // Stopped with the cap in flight: the receiver answers them meanwhile, and publishes queue
    // up in the listen backlog, to be handed to delivery the moment the process runs again.
    stop(&node, "-STOP");
    let queued = queue_publishes(&http, &node, &tenant.partner_id);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(&node, "-CONT");

    let mut want: HashSet<String> = backlog.into_iter().collect();
    for publish in queued {
        let (status, id) = publish.await.unwrap();
        assert_eq!(status, 202, "{id}");
        want.insert(id);
    }
    let counts = await_every_event(&rx, &want, Duration::from_secs(60)).await;
    let peak = rx.peak_in_flight_ids();
    println!(
        "SIGSTOP/SIGCONT: {} events delivered, peak {peak} in flight with the cap at {CAP}, {} duplicates",
        want.len(),
        duplicates(&counts, &want)
    );
    assert!(
        peak <= CAP,
        "{peak} deliveries in flight at once; the cap is {CAP}"
    );
    assert_eq!(
        peak, CAP,
        "the subscription never reached its cap: the test proves nothing"
    );
    assert!(
        rx.overlapping_arrivals().is_empty(),
        "one delivery sent twice at once: {:?}",
        rx.overlapping_arrivals()
    );
    node.kill().await;
}
