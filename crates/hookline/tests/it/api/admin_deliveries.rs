//! The operator's delivery log over real HTTP: listing across partners with filters, one
//! event with every delivery of it, and bulk retry with a real receiver.

use crate::common::*;
use hookline::config::RawConfig;
use reqwest::Method;
use serde_json::{json, Value};

/// A named inactive subscription is refused, as the partner's recover refuses it: its
/// deliveries would never be sent, which a 202 would hide.
async fn a_bulk_retry_of_an_inactive_subscription_is_400(backend: Backend) {
    let (app, _rx, [(pa, key_a, sub_a, _), _]) = two_partners(backend).await;
    let sub = sub_a["id"].as_str().unwrap();
    let r = app
        .http
        .put(app.url(&format!("/v3/webhook-subscriptions/{sub}")))
        .bearer_auth(&key_a)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let inactive = json!({"partner_id": pa, "subscription_id": sub, "status": "failed",
                          "since": "2020-01-01T00:00:00Z"});
    let (s, v) = app
        .admin(Method::POST, "/admin/v1/deliveries/retry", Some(inactive))
        .await;
    assert!(assert_error(s, &v, 400, 1005).contains("inactive"), "{v}");
}

crate::per_backend!(
    the_operator_lists_every_partners_deliveries_and_filters_them,
    an_event_lookup_shows_every_delivery_of_the_event,
    a_bulk_retry_redelivers_a_partners_failed_deliveries,
    a_bulk_retry_of_an_inactive_subscription_is_400,
);

async fn admin_get(app: &TestApp, path: &str) -> (u16, Value) {
    app.admin(Method::GET, path, None).await
}

/// Two partners, each with one subscription whose receiver refused one event (400).
async fn two_partners(
    backend: Backend,
) -> (TestApp, TestReceiver, [(String, String, Value, String); 2]) {
    let mut opts = Options::default();
    opts.raw = RawConfig {
        recovery_rate: Some(20),
        ..opts.raw
    };
    let app = TestApp::spawn_with(backend, opts).await;
    let rx = TestReceiver::start().await;
    let mut out = Vec::new();
    for name in ["acme", "globex"] {
        let (partner, key) = app.partner(name).await;
        let path = format!("/{name}");
        rx.set_default(&path, Reply::status(400));
        let sub = subscribe(&app, &key, &rx.url(&path), &["message.sent"], None).await;
        let p = app.publish(event(&partner, "message.sent", None)).await;
        out.push((
            partner,
            key,
            sub,
            p["event_id"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(settled(&app).await.failed, 2);
    let [a, b]: [_; 2] = out.try_into().unwrap();
    (app, rx, [a, b])
}

async fn the_operator_lists_every_partners_deliveries_and_filters_them(backend: Backend) {
    let (app, _rx, [(pa, key_a, sub_a, ev_a), (pb, _, sub_b, ev_b)]) = two_partners(backend).await;
    let (s, all) = admin_get(&app, "/admin/v1/deliveries").await;
    assert_eq!(s, 200, "{all}");
    let seen: Vec<(Value, Value)> = all["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["partner_id"].clone(), d["event_id"].clone()))
        .collect();
    assert_eq!(
        seen,
        vec![(json!(pb), json!(ev_b)), (json!(pa), json!(ev_a))]
    );
    assert_eq!(all["deliveries"][0]["status"], json!("failed"));

    let (_, only_a) = admin_get(
        &app,
        &format!("/admin/v1/deliveries?partner_id={pa}&status=failed"),
    )
    .await;
    assert_eq!(only_a["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(only_a["deliveries"][0]["subscription_id"], sub_a["id"]);
    let sub_b_id = sub_b["id"].as_str().unwrap();
    let (_, by_sub) = admin_get(
        &app,
        &format!("/admin/v1/deliveries?subscription_id={sub_b_id}"),
    )
    .await;
    assert_eq!(by_sub["deliveries"][0]["event_id"], json!(ev_b));
    for mismatch in [
        format!("/admin/v1/deliveries?partner_id={pa}&subscription_id={sub_b_id}"),
        "/admin/v1/deliveries?partner_id=nobody".to_owned(),
        "/admin/v1/deliveries?subscription_id=not-a-uuid".to_owned(),
        "/admin/v1/deliveries?status=success".to_owned(),
    ] {
        let (s, v) = admin_get(&app, &mismatch).await;
        assert_eq!(
            (s, v["deliveries"].clone()),
            (200, json!([])),
            "{mismatch}: {v}"
        );
    }
    let (_, paged) = admin_get(&app, "/admin/v1/deliveries?per_page=1").await;
    assert_eq!(paged["pagination"]["has_more"], json!(true));
    let (s, v) = admin_get(&app, "/admin/v1/deliveries?status=nope").await;
    assert_error(s, &v, 400, 1005);
    let (s, v) = app
        .call(&key_a, Method::GET, "/admin/v1/deliveries", None)
        .await;
    assert_error(s, &v, 401, 2004);
}

async fn an_event_lookup_shows_every_delivery_of_the_event(backend: Backend) {
    let (app, rx, [(pa, key_a, _, ev_a), (pb, _, _, _)]) = two_partners(backend).await;
    // A second subscription of partner A that takes the next event.
    rx.set_default("/second", Reply::ok());
    subscribe(&app, &key_a, &rx.url("/second"), &["message.sent"], None).await;
    let mut e = event(&pa, "message.sent", Some("+12025551234"));
    e["event_id"] = json!("evt-admin-lookup");
    app.publish(e).await;
    settled(&app).await;

    let (s, v) = admin_get(
        &app,
        &format!("/admin/v1/events/evt-admin-lookup?partner_id={pa}"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["event_type"], json!("message.sent"));
    assert_eq!(v["phone_number"], json!("+12025551234"));
    assert_eq!(v["data"]["text"], json!("héllo"));
    let mut statuses: Vec<&str> = v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(statuses, vec!["failed", "success"]);
    let (s, v) = admin_get(&app, &format!("/admin/v1/events/{ev_a}?partner_id={pa}")).await;
    assert_eq!((s, v["deliveries"].as_array().unwrap().len()), (200, 1));

    let (s, v) = admin_get(&app, &format!("/admin/v1/events/{ev_a}?partner_id={pb}")).await;
    assert_error(s, &v, 404, 2001);
    let (s, v) = admin_get(&app, &format!("/admin/v1/events/{ev_a}")).await;
    assert!(assert_error(s, &v, 400, 1001).contains("partner_id"));
    let (s, v) = admin_get(&app, &format!("/admin/v1/events/no%20such?partner_id={pa}")).await;
    assert_error(s, &v, 404, 2001);
    // A partner id is up to 128 characters, as the document counts them (not bytes): 128
    // two-byte ones name no partner (404), one more is refused (400).
    for (n, status) in [(128, 404), (129, 400)] {
        let partner = "%C3%A9".repeat(n);
        let (s, v) = admin_get(
            &app,
            &format!("/admin/v1/events/{ev_a}?partner_id={partner}"),
        )
        .await;
        assert_eq!(s, status, "{n} characters: {v}");
    }
}

async fn a_bulk_retry_redelivers_a_partners_failed_deliveries(backend: Backend) {
    let (app, rx, [(pa, _, _, ev_a), (pb, _, _, _)]) = two_partners(backend).await;
    rx.set_default("/acme", Reply::ok());
    let body = json!({"partner_id": pa, "status": "failed", "since": "2020-01-01T00:00:00Z"});
    let (s, r) = app
        .admin(Method::POST, "/admin/v1/deliveries/retry", Some(body))
        .await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["deliveries"], json!(1), "only partner A's");
    let got = rx.wait_for(Some("/acme"), 2, WAIT).await;
    assert_eq!(got[1].header("webhook-id"), ev_a);
    let path = format!(
        "/admin/v1/recoveries/{}?partner_id={pa}",
        r["recovery_id"].as_str().unwrap()
    );
    let done = eventually("the bulk retry to complete", WAIT, || {
        let (app, path) = (&app, &path);
        async move {
            let (_, v) = admin_get(app, path).await;
            (v["status"] == json!("completed")).then_some(v)
        }
    })
    .await;
    assert_eq!(
        (done["queued"].clone(), done["total"].clone()),
        (json!(1), json!(1))
    );
    let c = settled(&app).await;
    assert_eq!((c.succeeded, c.failed), (1, 1), "partner B's stays failed");
    assert_eq!(rx.received_at("/globex").len(), 1);

    let (s, v) = admin_get(&app, &path.replace(&pa, &pb)).await;
    assert_error(s, &v, 404, 2001);
    for (bad, code) in [
        (
            json!({"partner_id": pa, "status": "success", "since": "2020-01-01T00:00:00Z"}),
            1005,
        ),
        (
            json!({"partner_id": "nobody", "status": "failed", "since": "2020-01-01T00:00:00Z"}),
            1005,
        ),
        (
            json!({"partner_id": pa, "status": "failed", "since": "then"}),
            1005,
        ),
        (json!({"partner_id": pa, "status": "failed"}), 1001),
    ] {
        let (s, v) = app
            .admin(
                Method::POST,
                "/admin/v1/deliveries/retry",
                Some(bad.clone()),
            )
            .await;
        assert_error(s, &v, 400, code);
    }
    let other_sub = json!({"partner_id": pa, "subscription_id": hookline_core::SubscriptionId::generate().to_string(),
                           "status": "failed", "since": "2020-01-01T00:00:00Z"});
    let (s, v) = app
        .admin(Method::POST, "/admin/v1/deliveries/retry", Some(other_sub))
        .await;
    assert_error(s, &v, 404, 2001);
}
