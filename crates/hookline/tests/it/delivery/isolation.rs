//! One slow or busy subscription never holds up the others: timeouts and the per-subscription
//! in-flight cap in the claim.

use crate::common::*;
use hookline::config::Role;
use hookline::store::{Capacity, ClaimRequest};
use hookline_core::{ErrorKind, EventId, PartnerId, SubscriptionId, Timestamp};
use std::collections::HashMap;
use std::time::{Duration, Instant};

async fn a_hanging_receiver_times_out_while_a_healthy_one_keeps_receiving(backend: Backend) {
    let mut opts = Options::default();
    opts.raw.delivery_timeout = Some("1s".into());
    opts.raw.retry_schedule = Some("100ms".into());
    let app = TestApp::spawn_with(backend, opts).await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &rx.url("/hang"), &["message.sent"], None).await;
    subscribe(&app, &key, &rx.url("/fast"), &["message.sent"], None).await;
    rx.set_default("/hang", Reply::ok().delayed(Duration::from_secs(30)));
    let first = app.publish(event(&partner, "message.sent", None)).await;
    rx.wait_for(Some("/fast"), 1, WAIT).await;
    // While /hang holds its connection, more events to /fast arrive promptly.
    for n in 2..=5 {
        let sent = Instant::now();
        app.publish(event(&partner, "message.sent", None)).await;
        rx.wait_for(Some("/fast"), n, WAIT).await;
        assert!(
            sent.elapsed() < Duration::from_millis(900),
            "healthy receiver delayed {:?}",
            sent.elapsed()
        );
    }
    // The hanging one is timed out and retried.
    rx.wait_for(Some("/hang"), 2, WAIT).await;
    let store = app.store().await;
    let event_id = first["event_id"].as_str().unwrap().to_owned();
    let attempts = eventually("timeout attempts", WAIT, || {
        let (store, partner, event_id) = (store.clone(), partner.clone(), event_id.clone());
        async move {
            let (partner, event_id) = (
                PartnerId::from_stored(partner),
                EventId::from_stored(event_id),
            );
            let a = store.attempts_for_event(&partner, &event_id).await.unwrap();
            (a.iter()
                .filter(|a| a.error_kind == Some(ErrorKind::Timeout))
                .count()
                >= 2)
                .then_some(a)
        }
    })
    .await;
    assert!(attempts
        .iter()
        .all(|a| a.status_code.is_none_or(|c| c == 200)));
}

/// The claim walks per-subscription queues: a subscription at its in-flight cap, however deep its
/// backlog, neither blocks the others nor gets more than its room.
async fn a_full_subscription_neither_blocks_others_nor_exceeds_its_room(backend: Backend) {
    let mut opts = Options::default();
    // No dispatcher: this test claims by hand.
    opts.raw.role = Some(Role::Api);
    let app = TestApp::spawn_with(backend, opts).await;
    let (partner, key) = app.partner("acme").await;
    let busy = subscribe(
        &app,
        &key,
        "https://busy.example/h",
        &["message.sent"],
        None,
    )
    .await;
    let idle = subscribe(
        &app,
        &key,
        "https://idle.example/h",
        &["message.read"],
        None,
    )
    .await;
    let (busy, idle) = (busy["id"].as_str().unwrap(), idle["id"].as_str().unwrap());
    let mut busy_events = Vec::new();
    for _ in 0..30 {
        let p = app.publish(event(&partner, "message.sent", None)).await;
        busy_events.push(p["event_id"].as_str().unwrap().to_owned());
    }
    for _ in 0..3 {
        app.publish(event(&partner, "message.read", None)).await;
    }
    let store = app.store().await;
    let claim = |in_flight: HashMap<SubscriptionId, usize>| {
        let store = store.clone();
        async move {
            let now = Timestamp::now();
            let capacity = Capacity {
                per_subscription_cap: 4,
                in_flight: &in_flight,
                limits: &HashMap::new(),
            };
            let request = ClaimRequest {
                now,
                lease_until: now + Duration::from_secs(60),
                limit: 10,
                capacity,
            };
            store.claim_due(&request).await.unwrap().deliveries
        }
    };

    let busy = SubscriptionId::from_stored(busy);
    let full = HashMap::from([(busy.clone(), 4)]);
    let claimed = claim(full.clone()).await;
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    assert!(claimed.iter().all(|d| d.subscription_id.as_str() == idle));
    // What is due already is the full subscription's; the next wake-up is the earliest lease.
    let now = Timestamp::now();
    let next = store.next_due_after(now).await.unwrap();
    assert!(
        next.is_some_and(|at| at > now + Duration::from_secs(50)),
        "the claimed rows' lease, a minute out: {next:?}"
    );

    let claimed = claim(HashMap::from([(busy.clone(), 1)])).await;
    let ids: Vec<&str> = claimed.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(ids, busy_events[..3], "the room (3), oldest first");
    let claimed = claim(HashMap::new()).await;
    let ids: Vec<&str> = claimed.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(ids, busy_events[3..7], "the whole cap (4), oldest first");
}

crate::per_backend!(
    a_hanging_receiver_times_out_while_a_healthy_one_keeps_receiving,
    a_full_subscription_neither_blocks_others_nor_exceeds_its_room,
);
