//! hookline-client over real HTTP: every call against a real server, and its retries against
//! a scripted server that fails on purpose.

use axum::http::{HeaderMap, StatusCode};
use hookline_client::{
    Client, CreateSubscription, Error, NewEvent, RetryPolicy, UpdateSubscription,
};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Backend, TestApp, TestReceiver, ADMIN_TOKEN};
use crate::per_backend;

per_backend!(client_drives_the_partner_and_operator_apis);

fn admin(app: &TestApp) -> Client {
    Client::builder(&app.base)
        .admin_token(ADMIN_TOKEN)
        .build()
        .unwrap()
}

async fn client_drives_the_partner_and_operator_apis(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rx = TestReceiver::start().await;
    let op = admin(&app);
    let partner = op.create_partner("client-test").await.unwrap();
    assert!(op
        .list_partners()
        .await
        .unwrap()
        .partners
        .iter()
        .any(|p| p.id == partner.id));
    let key = op.create_api_key(&partner.id, Some("k")).await.unwrap();
    // The SDKs' prefix works as a base URL too.
    let c = Client::builder(format!("{}/api/partner/", app.base))
        .api_key(&key.api_key)
        .build()
        .unwrap();
    assert!(c.event_types().await.unwrap().events.len() >= 75);
    let created = c
        .create_subscription(&CreateSubscription {
            target_url: rx.url("/client"),
            subscribed_events: vec!["message.received".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(created.signing_secret.starts_with("whsec_"));
    let id = created.subscription.id.clone();
    assert_eq!(c.get_subscription(&id).await.unwrap(), created.subscription);
    assert_eq!(c.list_subscriptions().await.unwrap().subscriptions.len(), 1);

    // An event without an id gets one from the client; a batch likewise.
    let event = NewEvent {
        partner_id: partner.id.clone(),
        event_type: "message.received".into(),
        phone_number: None,
        data: json!({"chat_id": "c1"}),
        event_id: None,
        created_at: None,
        trace_id: None,
    };
    let published = op.publish(&event).await.unwrap();
    assert_eq!(published.deliveries, 1);
    assert!(uuid::Uuid::parse_str(&published.event_id).is_ok());
    let batch = op.publish_batch(&vec![event.clone(); 3]).await.unwrap();
    assert_eq!(batch.results.len(), 3);
    rx.wait_for(None, 4, crate::common::WAIT).await;

    let updated = c
        .update_subscription(
            &id,
            &UpdateSubscription {
                is_active: Some(false),
                phone_numbers: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!updated.is_active);
    c.delete_subscription(&id).await.unwrap();
    errors_carry_the_envelope(&app, &c, &op, &partner.id, &key.id, &id).await;
}

async fn errors_carry_the_envelope(
    app: &TestApp,
    c: &Client,
    op: &Client,
    partner: &str,
    key_id: &str,
    id: &str,
) {
    let Error::Api(e) = c.get_subscription(id).await.unwrap_err() else {
        panic!("expected an API error")
    };
    assert_eq!((e.status, e.code), (404, Some(2001)));
    assert!(e.message.contains(id), "{}", e.message);
    assert_eq!(e.trace_id.as_ref().map(String::len), Some(32));
    let bad = Client::builder(&app.base)
        .api_key("hl_live_nope")
        .build()
        .unwrap();
    let e = bad.list_subscriptions().await.unwrap_err();
    assert_eq!(e.api().map(|e| (e.status, e.code)), Some((401, Some(2004))));
    op.revoke_api_key(partner, key_id).await.unwrap();
    assert_eq!(
        c.list_subscriptions().await.unwrap_err().status(),
        Some(401)
    );
    // A call without the credential it needs fails before any request.
    assert!(matches!(
        admin(app).list_subscriptions().await,
        Err(Error::Config(_))
    ));
}

/// A server that answers each request with the next of `script` (status, headers), recording
/// the bodies; after the script, 202 with the event id of the request.
async fn scripted(
    script: Vec<(u16, Vec<(&'static str, &'static str)>)>,
) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let script = Arc::new(Mutex::new(script.into_iter()));
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let (seen, script) = (s.clone(), script.clone());
        async move {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            seen.lock().unwrap().push(v.clone());
            let next = script.lock().unwrap().next();
            let mut headers = HeaderMap::new();
            match next {
                Some((status, hs)) => {
                    for (k, v) in hs {
                        headers.insert(k, v.parse().unwrap());
                    }
                    let body = json!({"success": false, "error": {"status": status, "code": 3006,
                        "message": "scripted", "doc_url": "https://x"}, "trace_id": "t"});
                    (
                        StatusCode::from_u16(status).unwrap(),
                        headers,
                        body.to_string(),
                    )
                }
                None => {
                    let answer = json!({"event_id": v["event_id"], "deliveries": 0});
                    (StatusCode::ACCEPTED, headers, answer.to_string())
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

fn fast(base: &str) -> Client {
    Client::builder(base)
        .admin_token("t")
        .retry(RetryPolicy {
            initial_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        })
        .build()
        .unwrap()
}

fn event() -> NewEvent {
    NewEvent {
        partner_id: "p".into(),
        event_type: "message.received".into(),
        phone_number: None,
        data: json!({}),
        event_id: None,
        created_at: None,
        trace_id: None,
    }
}

#[tokio::test]
async fn retries_keep_the_event_id_and_honour_retry_after() {
    let (base, seen) = scripted(vec![
        (503, vec![("retry-after-ms", "20")]),
        (429, vec![("retry-after", "0.02")]),
    ])
    .await;
    let started = std::time::Instant::now();
    let published = fast(&base).publish(&event()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(40));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|b| b["event_id"] == json!(published.event_id)),
        "{seen:?}"
    );
}

#[tokio::test]
async fn what_is_retried_and_what_is_not() {
    for (script, requests, status) in [
        // x-should-retry: false wins over a retryable status.
        (vec![(409, vec![("x-should-retry", "false")])], 1, Some(409)),
        (vec![(400, vec![])], 1, Some(400)),
        // A 409 without it is retried, as by the SDKs: 3 attempts, then the error.
        (vec![(409, vec![]); 3], 3, Some(409)),
        (vec![(408, vec![]), (500, vec![])], 3, None),
        // x-should-retry: true makes a 400 retryable.
        (vec![(400, vec![("x-should-retry", "true")])], 2, None),
    ] {
        let (base, seen) = scripted(script.clone()).await;
        let result = fast(&base).publish(&event()).await;
        assert_eq!(
            result.as_ref().err().and_then(Error::status),
            status,
            "{script:?}"
        );
        assert_eq!(seen.lock().unwrap().len(), requests, "{script:?}");
    }
    let policy_off = Client::builder("http://127.0.0.1:9")
        .admin_token("t")
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    assert!(matches!(
        policy_off.list_partners().await,
        Err(Error::Transport(_))
    ));
}
