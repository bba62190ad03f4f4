//! How long a listen stream and its session live: a stream the client reads is a request in
//! progress however long it lasts (not an idle connection), and a session ends only once the
//! grace after its *last* stream has passed, however many streams resumed or took it over.

use hookline_client::{Client, ListenEvent, ListenOptions};
use std::time::{Duration, Instant};

use crate::common::{event, eventually, Backend, Options, TestApp, WAIT};

async fn listening(app: &TestApp, key: &str) -> usize {
    super::listen::listen_subscriptions(app, key).await.len()
}

/// A server with `opts` (keep-alives every 100 ms), a partner, its client, and the options of a
/// listen session for `message.received`: (app, partner id, key, client, options).
async fn set_up(mut opts: Options) -> (TestApp, String, String, Client, ListenOptions) {
    opts.raw.listen_keepalive = Some("100ms".into());
    let app = TestApp::spawn_with(Backend::Sqlite, opts).await;
    let (pid, key) = app.partner("listener").await;
    let c = Client::builder(&app.base).api_key(&key).build().unwrap();
    let options = ListenOptions {
        events: vec!["message.received".into()],
        ..Default::default()
    };
    (app, pid, key, c, options)
}

#[tokio::test]
async fn a_stream_outlives_the_idle_timeout_while_it_is_read() {
    let mut opts = Options::default();
    opts.raw.idle_timeout = Some("1s".into());
    let (app, pid, _, c, options) = set_up(opts).await;
    let mut stream = c.listen(&options).await.unwrap();
    let Some(ListenEvent::Session(_)) = stream.next().await.unwrap() else {
        panic!("the stream starts with its session")
    };
    // Three idle timeouts with the stream open (keep-alives flowing), then a delivery down the
    // same stream: the connection was not closed as idle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let published = app.publish(event(&pid, "message.received", None)).await;
    let Some(ListenEvent::Delivery(d)) = stream.next().await.unwrap() else {
        panic!("a delivery on the same stream")
    };
    assert_eq!(
        d.headers["webhook-id"],
        published["event_id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn a_session_lasts_the_grace_after_its_last_stream_not_its_first() {
    let grace = Duration::from_secs(3);
    let mut opts = Options::default();
    opts.raw.listen_grace = Some("3s".into());
    let (app, _, key, c, options) = set_up(opts).await;
    let mut first = c.listen(&options).await.unwrap();
    let Some(ListenEvent::Session(session)) = first.next().await.unwrap() else {
        panic!("session")
    };
    let resume = ListenOptions {
        session: Some(session.subscription_id.clone()),
        ..options
    };
    drop(first);
    let first_closed = Instant::now();
    // A resume, then a second stream taking the session over from it.
    let mut second = c.listen(&resume).await.unwrap();
    second.next().await.unwrap();
    let mut third = c.listen(&resume).await.unwrap();
    third.next().await.unwrap();
    drop(second);
    tokio::time::sleep(grace.mul_f32(0.8)).await;
    drop(third);
    let last_closed = Instant::now();
    // Past the first stream's grace, inside the last one's: the session is still there.
    tokio::time::sleep(
        (first_closed + grace + Duration::from_millis(500))
            .saturating_duration_since(Instant::now()),
    )
    .await;
    let listed = listening(&app, &key).await;
    // Measured after the listing: one answered past the last stream's grace proves nothing.
    assert!(
        last_closed.elapsed() < grace,
        "the test ran too slowly to show anything"
    );
    assert_eq!(listed, 1, "deleted by an earlier stream's grace");
    eventually(
        "the session to end after its last stream's grace",
        WAIT,
        || async { (listening(&app, &key).await == 0).then_some(()) },
    )
    .await;
    assert!(
        last_closed.elapsed() >= grace,
        "ended before its last stream's grace"
    );
}
