//! `hookline listen` end to end: a real server, the real binary holding a real stream, events
//! arriving verified and forwarded to a real local receiver, the delivery log, and the
//! ephemeral subscription gone after a clean close and after the client is killed.

use hookline_client::{Client, ListenAck, ListenEvent, ListenOptions};
use hookline_verify::{Secret, Verifier};
use reqwest::Method;
use serde_json::Value;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{command, PlainReceiver};
use crate::common::{event, eventually, Backend, Options, TestApp, WAIT};
use crate::per_backend;

per_backend!(
    listen_verifies_forwards_and_cleans_up,
    unacknowledged_deliveries_come_back_on_reconnect
);

async fn spawn(backend: Backend) -> TestApp {
    let mut opts = Options::default();
    opts.raw.listen_grace = Some("1s".into());
    opts.raw.listen_keepalive = Some("100ms".into());
    TestApp::spawn_with(backend, opts).await
}

/// The partner's listen subscriptions, as the API lists them.
pub(super) async fn listen_subscriptions(app: &TestApp, key: &str) -> Vec<Value> {
    let (_, list) = app
        .call(key, Method::GET, "/v3/webhook-subscriptions", None)
        .await;
    list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["target_url"]
                .as_str()
                .unwrap()
                .contains("listen.hookline.invalid")
        })
        .cloned()
        .collect()
}

async fn listen_subscriptions_gone(app: &TestApp, key: &str, what: &str) {
    eventually(what, WAIT, || async {
        listen_subscriptions(app, key)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}

/// Starts `hookline listen`; returns the child and its stderr lines once it is ready, with the
/// session's signing secret.
async fn start_listen(
    app: &TestApp,
    key: &str,
    forward: &str,
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    String,
) {
    start_listen_to(app, key, "message.received", forward).await
}

/// [`start_listen`] for other event types (comma-separated).
async fn start_listen_to(
    app: &TestApp,
    key: &str,
    events: &str,
    forward: &str,
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    String,
) {
    let mut cmd = command(app);
    cmd.env("HOOKLINE_API_KEY", key)
        .args(["listen", "--events", events, "--forward-to", forward])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut secret = None;
    let ready = tokio::time::timeout(WAIT, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if let Some(s) = line.strip_prefix("Signing secret for this session: ") {
                secret = Some(s.to_owned());
            }
            if line.starts_with("Forwarding to") {
                return;
            }
        }
        panic!("listen exited before it was ready");
    })
    .await;
    assert!(ready.is_ok(), "listen did not get ready");
    let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    (child, stdout, secret.expect("the secret is printed"))
}

/// The listener's next line on stdout (one per event).
async fn next_line(
    stdout: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> String {
    tokio::time::timeout(WAIT, stdout.next_line())
        .await
        .expect("a line within the wait")
        .unwrap()
        .expect("the listener is still running")
}

fn signal(child: &tokio::process::Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

async fn listen_verifies_forwards_and_cleans_up(backend: Backend) {
    let app = spawn(backend).await;
    let (pid, key) = app.partner("listener").await;
    let local = PlainReceiver::start(200).await;
    let (mut child, mut stdout, secret) = start_listen(&app, &key, &local.url).await;
    assert_eq!(listen_subscriptions(&app, &key).await.len(), 1);

    let published = app.publish(event(&pid, "message.received", None)).await;
    let event_id = published["event_id"].as_str().unwrap().to_owned();
    let got = local.wait_for(1).await;
    // Forwarded as sent: the body and both signatures verify with the session's secret.
    let verifier = Verifier::new(Secret::parse(&secret).unwrap());
    verifier.verify(&got[0].headers, &got[0].body).unwrap();
    verifier
        .verify_legacy(&got[0].headers, &got[0].body)
        .unwrap();
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["event_id"], Value::from(event_id.as_str()));
    let line = next_line(&mut stdout).await;
    assert!(
        line.contains("message.received") && line.contains(&event_id),
        "{line}"
    );
    assert!(
        line.contains("verified") && line.contains("-> 200"),
        "{line}"
    );
    // Recorded in the delivery log like any delivery, with the local receiver's status.
    let attempts = eventually("the attempt to be logged", WAIT, || async {
        let a = app.attempts(&pid, &event_id).await;
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(attempts[0].status_code, Some(200));

    // Ctrl-C: exits 0 and the subscription is gone at once.
    signal(&child, rustix::process::Signal::INT);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(listen_subscriptions(&app, &key).await.is_empty());

    // Killed without a goodbye: gone after the grace.
    let (child, _stdout, _) = start_listen(&app, &key, &local.url).await;
    assert_eq!(listen_subscriptions(&app, &key).await.len(), 1);
    signal(&child, rustix::process::Signal::KILL);
    listen_subscriptions_gone(&app, &key, "the killed listener's subscription to go").await;
}

/// The session's stream is attached before its subscription is created, so a listener that
/// subscribes to `webhook_subscription.created` gets its own session's announcement on the
/// first attempt rather than after a failed one and its retry.
#[tokio::test]
async fn the_sessions_own_creation_arrives_on_the_first_attempt() {
    let app = spawn(Backend::Sqlite).await;
    let (pid, key) = app.partner("listener").await;
    let local = PlainReceiver::start(200).await;
    let (mut child, mut stdout, _) =
        start_listen_to(&app, &key, "webhook_subscription.created", &local.url).await;
    let line = next_line(&mut stdout).await;
    assert!(line.contains("webhook_subscription.created"), "{line}");
    let got = local.wait_for(1).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    let session = &listen_subscriptions(&app, &key).await[0];
    assert_eq!(
        body["data"]["webhook_subscription"]["id"], session["id"],
        "its own creation"
    );
    let event_id = body["event_id"].as_str().unwrap();
    let attempts = eventually("the attempt to be logged", WAIT, || async {
        let a = app.attempts(&pid, event_id).await;
        (!a.is_empty()).then_some(a)
    })
    .await;
    let answers: Vec<_> = attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(answers, [Some(200)], "one attempt, delivered");
    child.kill().await.unwrap();
}

/// A local receiver answering 410 deactivates the session's subscription, as a real endpoint's
/// would; the listener says so instead of waiting for events that no longer come.
#[tokio::test]
async fn a_410_from_the_local_receiver_is_called_out() {
    let app = spawn(Backend::Sqlite).await;
    let (pid, key) = app.partner("gone").await;
    let local = PlainReceiver::start(410).await;
    let (mut child, mut stdout, _) = start_listen(&app, &key, &local.url).await;
    app.publish(event(&pid, "message.received", None)).await;
    let line = next_line(&mut stdout).await;
    assert!(
        line.contains("-> 410") && line.contains("deactivated"),
        "{line}"
    );
    let _ = child.kill().await;
}

async fn unacknowledged_deliveries_come_back_on_reconnect(backend: Backend) {
    let app = spawn(backend).await;
    let (pid, key) = app.partner("reconnect").await;
    let c = Client::builder(&app.base).api_key(&key).build().unwrap();
    let options = ListenOptions {
        events: vec!["message.received".into()],
        ..Default::default()
    };
    let mut stream = c.listen(&options).await.unwrap();
    let Some(ListenEvent::Session(session)) = stream.next().await.unwrap() else {
        panic!("the stream starts with its session")
    };
    let published = app.publish(event(&pid, "message.received", None)).await;
    let Some(ListenEvent::Delivery(first)) = stream.next().await.unwrap() else {
        panic!("a delivery")
    };
    // Dropped without acknowledging; back within the grace.
    drop(stream);
    let resume = ListenOptions {
        session: Some(session.subscription_id.clone()),
        ..options
    };
    let mut stream = c.listen(&resume).await.unwrap();
    let Some(ListenEvent::Session(resumed)) = stream.next().await.unwrap() else {
        panic!("session")
    };
    assert_eq!(resumed.subscription_id, session.subscription_id);
    assert_eq!(resumed.signing_secret, None);
    let Some(ListenEvent::Delivery(again)) = stream.next().await.unwrap() else {
        panic!("the delivery again")
    };
    assert_eq!(again.headers["webhook-id"], first.headers["webhook-id"]);
    assert_eq!(
        again.headers["webhook-id"],
        published["event_id"].as_str().unwrap()
    );
    let secret = Secret::parse(session.signing_secret.as_ref().unwrap()).unwrap();
    Verifier::new(secret)
        .verify(&again.headers, again.body.as_bytes())
        .unwrap();
    c.ack_listen(
        &session.subscription_id,
        &ListenAck {
            delivery: again.delivery.clone(),
            status: Some(204),
            body: None,
            error: None,
        },
    )
    .await
    .unwrap();
    let event_id = published["event_id"].as_str().unwrap();
    let attempts = eventually("the delivered attempt", WAIT, || async {
        let a = app.attempts(&pid, event_id).await;
        a.iter().any(|a| a.status_code == Some(204)).then_some(a)
    })
    .await;
    assert!(attempts.len() >= 2, "{attempts:?}");
    stale_and_foreign_acks_are_refused(&app, &c, &session.subscription_id, again.delivery, &resume)
        .await;
    drop(stream);
    listen_subscriptions_gone(&app, &key, "the dropped stream's subscription to go").await;
}

async fn stale_and_foreign_acks_are_refused(
    app: &TestApp,
    c: &Client,
    session: &str,
    delivery: String,
    resume: &ListenOptions,
) {
    // An acknowledgement nobody waits for, and another partner's session, answer 404.
    let stale = c
        .ack_listen(
            session,
            &ListenAck {
                delivery,
                status: Some(200),
                body: None,
                error: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(stale.status(), Some(404));
    let (_, other) = app.partner("other").await;
    let other = Client::builder(&app.base).api_key(&other).build().unwrap();
    let err = other.listen(resume).await.err().unwrap();
    assert_eq!(
        err.api().map(|e| (e.status, e.code)),
        Some((404, Some(2001)))
    );
}

per_backend!(listen_refuses_bad_requests_in_the_envelope);

async fn listen_refuses_bad_requests_in_the_envelope(backend: Backend) {
    let app = spawn(backend).await;
    let (_, key) = app.partner("mistakes").await;
    let get = |query: String| {
        let (app, key) = (&app, key.clone());
        async move {
            app.call(&key, Method::GET, &format!("/v3/listen{query}"), None)
                .await
        }
    };
    let (s, b) = get("?events=message.nope".into()).await;
    assert!(crate::common::assert_error(s, &b, 400, 1005).contains("message.nope"));
    let (s, b) = get("?phone_numbers=555".into()).await;
    crate::common::assert_error(s, &b, 400, 1002);
    let (s, b) = get("?session=not-a-uuid".into()).await;
    crate::common::assert_error(s, &b, 404, 2001);
    // A subscription that is not a listen session cannot be resumed as one.
    let sub = crate::common::subscribe(
        &app,
        &key,
        "https://example.com/x",
        &["message.received"],
        None,
    )
    .await;
    let (s, b) = get(format!("?session={}", sub["id"].as_str().unwrap())).await;
    crate::common::assert_error(s, &b, 404, 2001);
    let (s, b) = app
        .call("hl_live_wrong", Method::GET, "/v3/listen", None)
        .await;
    crate::common::assert_error(s, &b, 401, 2004);

    let acks = format!("/v3/listen/{}/acks", sub["id"].as_str().unwrap());
    let (s, b) = app
        .call(
            &key,
            Method::POST,
            &acks,
            Some(serde_json::json!({"delivery": "1"})),
        )
        .await;
    assert!(crate::common::assert_error(s, &b, 400, 1001).contains("status"));
    let (s, b) = app
        .call(
            &key,
            Method::POST,
            &acks,
            Some(serde_json::json!({"delivery": "1", "status": 42})),
        )
        .await;
    crate::common::assert_error(s, &b, 400, 1005);
    let (s, b) = app
        .call(
            &key,
            Method::POST,
            &acks,
            Some(serde_json::json!({"delivery": "1", "status": 200})),
        )
        .await;
    crate::common::assert_error(s, &b, 404, 2001);
    let (s, b) = app
        .call(
            &key,
            Method::POST,
            &acks,
            Some(serde_json::json!({"status": 200})),
        )
        .await;
    crate::common::assert_error(s, &b, 400, 1001);
}
