//! Retention in a running server: finished events go with their deliveries and attempts once
//! older than `HOOKLINE_RETENTION`; events with a delivery still waiting for a retry stay.

use crate::common::{
    counts, eventually, subscribe, Backend, Options, Reply, TestApp, TestReceiver, WAIT,
};
use crate::per_backend;

per_backend!(finished_events_go_and_pending_ones_stay);

async fn finished_events_go_and_pending_ones_stay(backend: Backend) {
    let rx = TestReceiver::start().await;
    rx.set_default("/fail", Reply::status(500));
    let mut opts = Options::default();
    opts.raw.retention = Some("1s".into());
    opts.raw.retention_interval = Some("100ms".into());
    opts.raw.retry_schedule = Some("1h".into());
    let app = TestApp::spawn_with(backend, opts).await;
    let (ok_partner, ok_key) = app.partner("ok").await;
    let (fail_partner, fail_key) = app.partner("fail").await;
    subscribe(&app, &ok_key, &rx.url("/ok"), &["message.received"], None).await;
    subscribe(
        &app,
        &fail_key,
        &rx.url("/fail"),
        &["message.received"],
        None,
    )
    .await;
    let mut ok_ids = Vec::new();
    for _ in 0..5 {
        let v = app
            .publish(crate::common::event(&ok_partner, "message.received", None))
            .await;
        ok_ids.push(v["event_id"].as_str().unwrap().to_owned());
    }
    let v = app
        .publish(crate::common::event(
            &fail_partner,
            "message.received",
            None,
        ))
        .await;
    let fail_id = v["event_id"].as_str().unwrap().to_owned();
    rx.wait_for(Some("/ok"), 5, WAIT).await;
    rx.wait_for(Some("/fail"), 1, WAIT).await;

    // A second later the purger takes the delivered events; the failing one waits for its
    // retry in an hour and stays, with its attempt. (The receiver saw the deliveries a moment
    // before their outcomes were recorded: until then all six are pending.)
    let left = eventually("the delivered events to be purged", WAIT, || async {
        let c = counts(&app).await;
        (c.succeeded == 0 && c.pending == 1).then_some(c)
    })
    .await;
    assert_eq!((left.pending, left.failed, left.cancelled), (1, 0, 0));
    for id in &ok_ids {
        assert!(
            app.attempts(&ok_partner, id).await.is_empty(),
            "{id} kept its attempts"
        );
    }
    assert_eq!(app.attempts(&fail_partner, &fail_id).await.len(), 1);
}
