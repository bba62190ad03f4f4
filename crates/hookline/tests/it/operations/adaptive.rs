//! Adaptive concurrency over real HTTP, with short settings: a receiver that answers 503 above
//! a few concurrent requests gets far fewer of them with AIMD than with the fixed cap, neither
//! ever exceeds the cap, and a `Retry-After` pauses the whole subscription.

use crate::common::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Concurrent requests the receiver serves; past it, 503 at once.
const RECEIVER_LIMIT: usize = 4;
const CAP: usize = 16;
const EVENTS: usize = 120;

#[derive(Default)]
struct Load {
    now: AtomicUsize,
    peak: AtomicUsize,
    refused: AtomicUsize,
}

/// A plain-HTTP receiver on 127.0.0.1 that serves `RECEIVER_LIMIT` requests at a time (20 ms
/// each) and answers 503 to any beyond them.
async fn overloadable_receiver() -> (String, Arc<Load>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/h", listener.local_addr().unwrap());
    let load = Arc::new(Load::default());
    let shared = load.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let load = shared.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while read_request(&mut tcp, &mut buf).await {
                    let now = load.now.fetch_add(1, Ordering::SeqCst) + 1;
                    load.peak.fetch_max(now, Ordering::SeqCst);
                    let status = if now > RECEIVER_LIMIT {
                        load.refused.fetch_add(1, Ordering::SeqCst);
                        "503 Service Unavailable"
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        "200 OK"
                    };
                    load.now.fetch_sub(1, Ordering::SeqCst);
                    let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                    if tcp.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, load)
}

/// Reads one request (head and `content-length` body); false when the connection ends.
async fn read_request(tcp: &mut tokio::net::TcpStream, buf: &mut [u8]) -> bool {
    let mut len = 0;
    loop {
        if let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let body: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while len < end + 4 + body {
                match tcp.read(&mut buf[len..]).await {
                    Ok(n) if n > 0 => len += n,
                    _ => return false,
                }
            }
            return true;
        }
        match tcp.read(&mut buf[len..]).await {
            Ok(n) if n > 0 => len += n,
            _ => return false,
        }
    }
}

/// Delivers `EVENTS` events to the overloadable receiver; (503s it answered, peak concurrency).
async fn run(backend: Backend, adaptive: bool) -> (usize, usize) {
    let mut opts = Options::default();
    opts.raw.allow_http_targets = Some(true);
    opts.raw.adaptive_concurrency = Some(adaptive);
    opts.raw.max_in_flight_per_subscription = Some(CAP);
    opts.raw.retry_schedule = Some(vec!["100ms"; 30].join(","));
    let app = TestApp::spawn_with(backend, opts).await;
    let (url, load) = overloadable_receiver().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &url, &["message.sent"], None).await;
    let events: Vec<_> = (0..EVENTS)
        .map(|_| event(&partner, "message.sent", None))
        .collect();
    let (s, v) = app
        .admin(
            reqwest::Method::POST,
            "/admin/v1/events/batch",
            Some(json!({"events": events})),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let c = eventually("every delivery to succeed", Duration::from_secs(60), || {
        let app = &app;
        async move {
            let c = counts(app).await;
            (c.pending == 0).then_some(c)
        }
    })
    .await;
    assert_eq!(c.succeeded, EVENTS as u64, "{c:?}");
    (
        load.refused.load(Ordering::SeqCst),
        load.peak.load(Ordering::SeqCst),
    )
}

async fn aimd_backs_off_an_overloaded_receiver_within_the_cap(backend: Backend) {
    let (fixed_503, fixed_peak) = run(backend, false).await;
    let (aimd_503, aimd_peak) = run(backend, true).await;
    println!(
        "fixed cap: {fixed_503} 503s, peak {fixed_peak}; AIMD: {aimd_503} 503s, peak {aimd_peak}"
    );
    assert!(fixed_peak <= CAP && aimd_peak <= CAP, "above the cap");
    assert!(
        aimd_503 * 2 < fixed_503,
        "AIMD {aimd_503} 503s against {fixed_503} with the fixed cap"
    );
}

/// A 429 with `Retry-After: 1` pauses the subscription: the next event waits for the pause
/// although it was published after it began and has a retry schedule of its own.
async fn retry_after_pauses_the_whole_subscription(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    rx.script("/h", vec![Reply::status(429).header("retry-after", "1")]);
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &rx.url("/h"), &["message.sent"], None).await;
    let first = app.publish(event(&partner, "message.sent", None)).await;
    let first_id = first["event_id"].as_str().unwrap().to_owned();
    let refused = rx.wait_for(Some("/h"), 1, WAIT).await.remove(0);
    // Recorded means reported: the pause is in place.
    eventually("the 429 to be recorded", WAIT, || {
        let (app, partner, id) = (&app, &partner, &first_id);
        async move { (!app.attempts(partner, id).await.is_empty()).then_some(()) }
    })
    .await;
    app.publish(event(&partner, "message.sent", None)).await;
    let got = rx.wait_for(Some("/h"), 3, WAIT).await;
    for later in &got[1..] {
        let waited = later.at.duration_since(refused.at);
        assert!(
            waited >= Duration::from_millis(900),
            "sent {waited:?} after the 429 asked for 1 s"
        );
    }
    assert_eq!(settled(&app).await.succeeded, 2);
}

crate::per_backend!(
    aimd_backs_off_an_overloaded_receiver_within_the_cap,
    retry_after_pauses_the_whole_subscription,
);
