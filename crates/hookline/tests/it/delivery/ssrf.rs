//! The SSRF guard: loopback receivers are refused, by address and by name, unless allowed.

use crate::common::*;
use hookline::store::DeliveryCounts;
use hookline_core::ErrorKind;
use serde_json::json;

async fn ssrf_guard_refuses_loopback_ips_and_names_without_an_allow_list(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            loopback_allowed: false,
            ..Options::default()
        },
    )
    .await;
    let rx = TestReceiver::start().await;
    let (partner, key) = app.partner("acme").await;
    subscribe(&app, &key, &rx.url("/ip"), &["message.sent"], None).await;
    subscribe(
        &app,
        &key,
        &format!("https://localhost:{}/name", rx.port),
        &["message.sent"],
        None,
    )
    .await;
    let p = app.publish(event(&partner, "message.sent", None)).await;
    assert_eq!(p["deliveries"], json!(2));
    let c = settled(&app).await;
    assert_eq!(
        c,
        DeliveryCounts {
            failed: 2,
            ..Default::default()
        }
    );
    let attempts = app
        .attempts(&partner, p["event_id"].as_str().unwrap())
        .await;
    assert_eq!(attempts.len(), 2, "refusals are not retried: {attempts:?}");
    assert!(
        attempts
            .iter()
            .all(|a| a.error_kind == Some(ErrorKind::SsrfBlocked)),
        "{attempts:?}"
    );
    assert!(rx.received().is_empty());
}

crate::per_backend!(ssrf_guard_refuses_loopback_ips_and_names_without_an_allow_list,);
